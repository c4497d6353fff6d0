package store_test

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// chainedEvents reads the chain as an attacker with database access
// would: each link's seq and its event, in chain order.
func chainedEvents(t testing.TB, f *fixture) ([]int64, []keyledger.AuditEvent) {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT c.seq, e.id, e.at, coalesce(e.actor_id, 0), e.actor_email, e.action,
		coalesce(e.key_id::text, ''), e.key_name, coalesce(e.key_version, 0), coalesce(e.subject_id, 0), e.subject_email,
		e.environment, e.ip, e.user_agent, e.reason, e.details::text
		FROM audit_chain c JOIN audit_events e ON e.id = c.event_id ORDER BY c.seq`)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []int64
	var events []keyledger.AuditEvent
	for rows.Next() {
		var seq int64
		var e keyledger.AuditEvent
		if err := rows.Scan(&seq, &e.ID, &e.Time, &e.ActorID, &e.ActorEmail, &e.Action, &e.KeyID, &e.KeyName, &e.KeyVersion,
			&e.SubjectID, &e.SubjectEmail, &e.Environment, &e.IP, &e.UserAgent, &e.Reason, &e.Details); err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, seq)
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return seqs, events
}

// rewriteLinks recomputes every link of the chain with link and writes
// them back with triggers off, as a database superuser covering an edit
// would.
func rewriteLinks(t testing.TB, f *fixture, link func(prev []byte, e *keyledger.AuditEvent) []byte, extraSQL ...string) {
	t.Helper()
	seqs, events := chainedEvents(t, f)
	ctx := context.Background()
	err := pgx.BeginFunc(ctx, f.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL session_replication_role = replica"); err != nil {
			return err
		}
		var prev []byte
		for i := range events {
			prev = link(prev, &events[i])
			if _, err := tx.Exec(ctx, "UPDATE audit_chain SET hash = $2 WHERE seq = $1", seqs[i], prev); err != nil {
				return err
			}
		}
		for _, q := range extraSQL {
			if _, err := tx.Exec(ctx, q); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("rewrite links: %v", err)
	}
}

// Someone with superuser access to Postgres but not the master key edits
// an event and recomputes every later link: with plain SHA-256 (the old,
// public format) or with HMAC under a key they guessed. They may also flip
// the links' format back to the unkeyed one. Verify must catch each.
func TestVerifyAuditCatchesRecomputedChainWithoutMasterKey(t *testing.T) {
	t.Parallel()
	guessed := []byte(strings.Repeat("k", 32))
	tests := []struct {
		name  string
		link  func(prev []byte, e *keyledger.AuditEvent) []byte
		extra []string
	}{
		{"sha256 recomputed", keyledger.ChainHash, nil},
		{"sha256 recomputed, format flipped to unkeyed", keyledger.ChainHash, []string{"UPDATE audit_chain SET format = 1"}},
		{"sha256 recomputed, format flipped, keyed start moved past the end", keyledger.ChainHash,
			[]string{"UPDATE audit_chain SET format = 1", "UPDATE audit_chain_keying SET keyed_from = 1000000"}},
		{"sha256 recomputed, keyed start deleted", keyledger.ChainHash,
			[]string{"UPDATE audit_chain SET format = 1", "DELETE FROM audit_chain_keying"}},
		{"hmac under a guessed key", func(prev []byte, e *keyledger.AuditEvent) []byte {
			return keyledger.ChainHMAC(guessed, prev, e)
		}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, ids := auditFixture(t)
			f.asSuperuser(t, "UPDATE audit_events SET reason = 'nothing to see' WHERE id = $1", ids[2])
			rewriteLinks(t, f.fixture, tc.link, tc.extra...)
			r, err := f.s.VerifyAudit(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if r.OK() {
				t.Fatalf("a chain recomputed without the master key verified: %+v", r)
			}
			t.Logf("caught: %s", r.Problem)
		})
	}
}
