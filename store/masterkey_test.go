package store_test

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

func TestRotateMasterKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, storetest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	opts := store.Options{PasswordParams: storetest.FastPasswords()}
	oldKEK := storetest.NewKeyring(t).Primary()
	newKEK := storetest.NewKeyring(t).Primary()
	ring := func(primary crypto.KEK, others ...crypto.KEK) *crypto.Keyring {
		r, err := crypto.NewKeyring(primary, others...)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	s1, err := store.New(ctx, pool, ring(oldKEK), opts)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{s: s1, pool: pool}
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	values := map[string]string{}
	for i := range 5 {
		v := secretValue(t, "sk-proj-")
		k := f.key(t, alice, devKey("key "+string(rune('a'+i)), alice.Email, v))
		values[k.ID] = v
	}
	archived := f.key(t, alice, devKey("archived", alice.Email, secretValue(t, "sk-proj-")))
	if err := s1.ArchiveKey(ctx, as(alice), archived.ID); err != nil {
		t.Fatal(err)
	}
	ciphertexts := func() map[string][]byte {
		rows, err := pool.Query(ctx, "SELECT key_id::text, ciphertext FROM key_versions WHERE destroyed_at IS NULL")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[string][]byte{}
		for rows.Next() {
			var id string
			var c []byte
			if err := rows.Scan(&id, &c); err != nil {
				t.Fatal(err)
			}
			out[id] = c
		}
		return out
	}
	before := ciphertexts()

	// Both keys loaded, the new one primary.
	s2, err := store.New(ctx, pool, ring(newKEK, oldKEK), opts)
	if err != nil {
		t.Fatalf("store with new primary and old key: %v", err)
	}
	var progress []store.RotationProgress
	report, err := s2.RotateMasterKey(ctx, 2, func(p store.RotationProgress) {
		if p.Table == "key_versions" {
			progress = append(progress, p)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := rewrapped(report, "key_versions"); n != 5 {
		t.Errorf("re-wrapped %d versions, want 5 (the archived one has nothing to wrap)", n)
	}
	if len(progress) != 3 || progress[len(progress)-1].Remaining != 0 || progress[len(progress)-1].Rewrapped != 5 {
		t.Errorf("progress of key_versions in batches of 2: %+v", progress)
	}
	if n := f.count(t, "SELECT count(*) FROM key_versions WHERE destroyed_at IS NULL AND kek_id <> $1", newKEK.ID()); n != 0 {
		t.Errorf("%d versions still under the old key", n)
	}
	if n := f.count(t, "SELECT count(*) FROM instance_secrets WHERE kek_id <> $1", newKEK.ID()); n != 0 {
		t.Errorf("%d instance secrets still under the old key", n)
	}
	after := ciphertexts()
	for id, c := range before {
		if !bytes.Equal(after[id], c) {
			t.Errorf("ciphertext of %s changed", id)
		}
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1", keyledger.ActionMasterKeyRotate); n != 1 {
		t.Errorf("%d rotation events, want 1", n)
	}
	// Resuming finds nothing left.
	if report, err := s2.RotateMasterKey(ctx, 2, nil); err != nil || rewrapped(report, "") != 0 {
		t.Errorf("second rotation: %+v, %v", report, err)
	}

	// The old key can go now.
	s3, err := store.New(ctx, pool, ring(newKEK), opts)
	if err != nil {
		t.Fatalf("store with only the new key: %v", err)
	}
	for id, v := range values {
		got, err := s3.Reveal(ctx, as(alice), id, "")
		if err != nil || got.Value != v {
			t.Errorf("reveal %s under the new key: %v", id, err)
		}
	}
	if !bytes.Equal(s3.CookieKey(), s1.CookieKey()) {
		t.Error("the cookie key changed with the master key: every session would die")
	}
	// And the old key alone no longer opens the database.
	if _, err := store.New(context.Background(), pool, ring(oldKEK), opts); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Errorf("old key alone after rotation: %v", err)
	}
}

// rewrapped sums what a rotation re-wrapped in table, or in all tables
// for "".
func rewrapped(report []store.RotationProgress, table string) int {
	n := 0
	for _, r := range report {
		if table == "" || r.Table == table {
			n += r.Rewrapped
		}
	}
	return n
}
