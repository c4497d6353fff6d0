package store_test

import (
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

// Someone holding the master key and superuser access can open the chain
// key, edit an event and recompute every HMAC link: verify alone then
// passes. A checkpoint signed before, kept elsewhere, catches it.
func TestCheckpointCatchesRewriteWithMasterKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, storetest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	kr := storetest.NewKeyring(t)
	s, err := store.New(ctx, pool, kr, store.Options{PasswordParams: storetest.FastPasswords()})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{s: s, pool: pool}
	for _, e := range []string{"a@example.com", "b@example.com", "c@example.com"} {
		f.user(t, e, keyledger.RoleMember)
	}
	verifyChained(t, s)
	cp, err := s.Checkpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cp.Seq != 3 || cp.KeyedFrom != 1 || len(cp.Link) != 64 {
		t.Fatalf("checkpoint %+v", cp)
	}
	// The checkpoint survives its trip through a log line or a chat.
	parsed, err := keyledger.ParseAuditCheckpoint([]byte(cp.Token()))
	if err != nil || parsed.JSON() != cp.JSON() {
		t.Fatalf("token round trip: %v\n%s\n%s", err, parsed.JSON(), cp.JSON())
	}
	f.user(t, "d@example.com", keyledger.RoleMember)
	verifyChained(t, s)
	if r, err := s.VerifyAuditWith(ctx, store.VerifyOptions{Checkpoint: &cp}); err != nil || !r.OK() {
		t.Fatalf("untouched chain against its checkpoint: %+v, %v", r, err)
	}

	// The attack, with the master key.
	var env crypto.Envelope
	if err := pool.QueryRow(ctx, "SELECT kek_id, wrapped_dek, nonce, ciphertext FROM instance_secrets WHERE name = 'audit-chain'").
		Scan(&env.KEKID, &env.WrappedDEK, &env.Nonce, &env.Ciphertext); err != nil {
		t.Fatal(err)
	}
	key, err := kr.Open("instance/audit-chain", env)
	if err != nil {
		t.Fatal(err)
	}
	f.asSuperuser(t, "UPDATE audit_events SET reason = 'rewritten' WHERE id = (SELECT event_id FROM audit_chain WHERE seq = 2)")
	rewriteLinks(t, f, func(prev []byte, e *keyledger.AuditEvent) []byte { return keyledger.ChainHMAC(key, prev, e) })

	r, err := s.VerifyAudit(ctx)
	if err != nil || !r.OK() {
		t.Fatalf("the rewrite with the key should pass verify without a checkpoint (else this test does not model it): %+v, %v", r, err)
	}
	r, err = s.VerifyAuditWith(ctx, store.VerifyOptions{Checkpoint: &cp})
	if err != nil {
		t.Fatal(err)
	}
	if r.OK() || !strings.Contains(r.Problem, "checkpoint") || r.BadSeq != 3 {
		t.Errorf("rewrite with the master key not caught by the checkpoint: %+v", r)
	}

	// A checkpoint edited to match the rewritten chain fails its signature.
	forged := cp
	forged.Link = strings.Repeat("0", 64)
	if r, err := s.VerifyAuditWith(ctx, store.VerifyOptions{Checkpoint: &forged}); err != nil || r.OK() || !strings.Contains(r.Problem, "signature") {
		t.Errorf("edited checkpoint: %+v, %v", r, err)
	}
}
