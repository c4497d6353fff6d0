package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

// TestSealedColumnsCoverSchema fails when the schema holds an envelope the
// registry (store/sealed.go) does not list: a column named kek_id or
// wrapped_dek, or ending in _kek_id or _wrapped_dek, is part of an
// envelope, and rotation and the startup check know only what the registry
// lists. It also checks that each entry's columns exist, so a renamed
// column is caught here rather than at the next rotation.
func TestSealedColumnsCoverSchema(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	ctx := t.Context()
	rows, err := pool.Query(ctx, `SELECT table_name::text, column_name::text FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name NOT IN (SELECT table_name FROM information_schema.views)
		AND (column_name ~ '(^|_)kek_id$' OR column_name ~ '(^|_)wrapped_dek$')
		ORDER BY 1, 2`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	listed := map[string]bool{}
	for _, c := range store.SealedColumns() {
		listed[c.Table+"."+strings.TrimSuffix(c.KEKID, "kek_id")] = true
	}
	// keyring_check holds one canary per master key (crypto.SealCanary),
	// not an envelope: it is checked, not re-wrapped, at startup.
	notEnvelopes := map[string]bool{"keyring_check.kek_id": true}
	found := 0
	for rows.Next() {
		var table, column string
		if err := rows.Scan(&table, &column); err != nil {
			t.Fatal(err)
		}
		if notEnvelopes[table+"."+column] {
			continue
		}
		found++
		prefix := strings.TrimSuffix(strings.TrimSuffix(column, "kek_id"), "wrapped_dek")
		if !listed[table+"."+prefix] {
			t.Errorf("%s.%s is part of an envelope, but no entry of sealedColumns (store/sealed.go) lists %s.%s*: master-key rotation would leave it under the old key and the startup check would not see it",
				table, column, table, prefix)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Fatal("found no envelope column at all: the query is wrong")
	}
	for _, c := range store.SealedColumns() {
		for _, col := range c.Columns {
			var n int
			if err := pool.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns
				WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2`, c.Table, col).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 1 {
				t.Errorf("sealed column %s: %s.%s does not exist", c.Name, c.Table, col)
			}
		}
	}
}

// sealedSnapshot is nonce||ciphertext of every live row of every sealed
// column, by column and key: what a rotation must not touch.
func sealedSnapshot(t *testing.T, r *rotationFixture) map[string]map[string][]byte {
	t.Helper()
	out := map[string]map[string][]byte{}
	for _, c := range store.SealedColumns() {
		nonce, ct := c.Columns[len(c.Key)+2], c.Columns[len(c.Key)+3]
		keys := make([]string, len(c.Key))
		for i, k := range c.Key {
			keys[i] = k + "::text"
		}
		rows, err := r.pool.Query(t.Context(), fmt.Sprintf("SELECT concat_ws('/', %s), %s || %s FROM %s WHERE %s",
			strings.Join(keys, ", "), nonce, ct, c.Table, c.Live))
		if err != nil {
			t.Fatal(err)
		}
		out[c.Name] = map[string][]byte{}
		for rows.Next() {
			var k string
			var b []byte
			if err := rows.Scan(&k, &b); err != nil {
				t.Fatal(err)
			}
			out[c.Name][k] = b
		}
		rows.Close()
	}
	return out
}

// countUnder counts the live envelopes of c sealed under kekID.
func (r *rotationFixture) countUnder(c store.SealedColumn, kekID string) int {
	r.t.Helper()
	var n int
	if err := r.pool.QueryRow(r.t.Context(), fmt.Sprintf("SELECT count(*) FROM %s WHERE %s AND %s = $1", c.Table, c.Live, c.KEKID), kekID).Scan(&n); err != nil {
		r.t.Fatal(err)
	}
	return n
}

// seedEverySealed puts something into every sealed column the registry
// knows, under s's primary key. A new registry entry fails the rotation
// tests until it is seeded here.
func (r *rotationFixture) seedEverySealed(s *store.Store) (keys map[string]string, totp map[*keyledger.User]string) {
	r.t.Helper()
	f := &fixture{s: s, pool: r.pool}
	lead := f.user(r.t, "lead@example.com", keyledger.RoleLead)
	keys = map[string]string{}
	for i := range 5 {
		v := secretValue(r.t, "sk-proj-")
		keys[f.key(r.t, lead, devKey(fmt.Sprintf("key %d", i), lead.Email, v)).ID] = v
	}
	// A destroyed version has no envelope: the rotation must skip it.
	k := f.key(r.t, lead, devKey("archived", lead.Email, secretValue(r.t, "sk-proj-")))
	if err := s.ArchiveKey(context.Background(), as(lead), k.ID); err != nil {
		r.t.Fatal(err)
	}
	totp = map[*keyledger.User]string{}
	for _, who := range []string{"alice@example.com", "bob@example.com", "carol@example.com"} {
		u, secret := r.enroll(s, who)
		totp[u] = secret
	}
	// Enrolment begun, not confirmed: sealed too, and must still confirm.
	pending := f.user(r.t, "pending@example.com", keyledger.RoleMember)
	enr, err := s.BeginTOTP(context.Background(), as(pending), "keyledger-test")
	if err != nil {
		r.t.Fatal(err)
	}
	totp[pending] = enr.Secret
	// Provider connections' admin keys; a removed one has no envelope.
	admin := f.user(r.t, "admin@example.com", keyledger.RoleAdmin)
	for i, p := range []string{"openai", "anthropic", "openai"} {
		adminKey := secretValue(r.t, "sk-admin-")
		if p == "anthropic" {
			adminKey = secretValue(r.t, "sk-ant-admin01-")
		}
		c, err := s.AddProviderConnection(context.Background(), as(admin), newStubAdmin(),
			keyledger.ProviderConnectionInput{Provider: p, Name: fmt.Sprintf("org %d", i), AdminKey: adminKey})
		if err != nil {
			r.t.Fatal(err)
		}
		if i == 2 {
			if err := s.RemoveProviderConnection(context.Background(), as(admin), c.ID); err != nil {
				r.t.Fatal(err)
			}
		}
	}
	return keys, totp
}

// TestRotateMasterKeyCoversEverySealedColumn seeds every sealed column of
// the registry under the old key, rotates, drops the old key, and checks
// per column: nothing left under the old key, ciphertexts untouched,
// every envelope opens; then the things that use them work: reveals,
// two-factor sign-in, confirming a pending enrolment.
func TestRotateMasterKeyCoversEverySealedColumn(t *testing.T) {
	t.Parallel()
	r := newRotationFixture(t)
	ctx := t.Context()
	s1 := r.mustOpen(r.oldKEK)
	keys, totp := r.seedEverySealed(s1)
	before := map[string]int{}
	for _, c := range store.SealedColumns() {
		if before[c.Name] = r.countUnder(c, r.oldKEK.ID()); before[c.Name] == 0 {
			t.Fatalf("nothing sealed in %s: seed it in seedEverySealed, or the rotation of it goes untested", c.Name)
		}
	}
	snap := sealedSnapshot(t, r)

	s2 := r.mustOpen(r.newKEK, r.oldKEK)
	report, err := s2.RotateMasterKey(ctx, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(report) != len(store.SealedColumns()) {
		t.Errorf("report has %d tables, want one per sealed column (%d): %+v", len(report), len(store.SealedColumns()), report)
	}
	for _, p := range report {
		if p.Rewrapped != before[p.Table] || p.Remaining != 0 {
			t.Errorf("%s: re-wrapped %d with %d left, want %d and 0", p.Table, p.Rewrapped, p.Remaining, before[p.Table])
		}
	}
	for _, c := range store.SealedColumns() {
		if n := r.countUnder(c, r.oldKEK.ID()); n != 0 {
			t.Errorf("%s: %d envelopes still under the old key", c.Name, n)
		}
	}
	after := sealedSnapshot(t, r)
	for name, rows := range snap {
		for k, b := range rows {
			if !bytes.Equal(after[name][k], b) {
				t.Errorf("%s %s: nonce or ciphertext changed", name, k)
			}
		}
	}

	s3, err := r.open(r.newKEK)
	if err != nil {
		t.Fatalf("only the new key after the rotation: %v", err)
	}
	for _, c := range store.SealedColumns() {
		rows, err := s3.SealedKeys(ctx, c.Name)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != before[c.Name] {
			t.Errorf("%s: %d live rows, want %d", c.Name, len(rows), before[c.Name])
		}
		for _, k := range rows {
			if _, err := s3.OpenSealed(ctx, c.Name, k...); err != nil {
				t.Errorf("%s %v does not open with only the new key: %v", c.Name, k, err)
			}
		}
	}
	lead, err := s3.UserByEmail(ctx, "lead@example.com")
	if err != nil {
		t.Fatal(err)
	}
	for id, v := range keys {
		got, err := s3.Reveal(ctx, as(lead), id, "after the rotation")
		if err != nil || got.Value != v {
			t.Errorf("reveal %s with only the new key: %v", id, err)
		}
	}
	for u, secret := range totp {
		if !u.TOTPEnabled {
			if _, err := s3.ConfirmTOTP(ctx, as(u), "", totpCode(t, secret, r.clock.Now()), ""); err != nil {
				t.Errorf("confirm a pending enrolment with only the new key: %v", err)
			}
			continue
		}
		if err := r.signIn(s3, u, secret); err != nil {
			t.Errorf("two-factor sign-in of %s with only the new key: %v", u.Email, err)
		}
	}
	// The old key alone no longer opens the database, and the refusal
	// names every sealed column.
	_, err = r.open(r.oldKEK)
	for _, c := range store.SealedColumns() {
		want := fmt.Sprintf("%s: %d values sealed under master key id %s, which is not loaded", c.Name, r.countUnder(c, r.newKEK.ID()), r.newKEK.ID())
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("start with only the old key: %v\nwant it to say %q", err, want)
		}
	}
}

// TestSealedTOTPSwappedOrTamperedDoesNotOpen: after a rotation, moving a
// TOTP envelope to another user's row, or altering one, makes it fail to
// open (an authentication error), never open to the other user's secret.
func TestSealedTOTPSwappedOrTamperedDoesNotOpen(t *testing.T) {
	t.Parallel()
	r := newRotationFixture(t)
	ctx := t.Context()
	s1 := r.mustOpen(r.oldKEK)
	alice, aliceSecret := r.enroll(s1, "alice@example.com")
	bob, bobSecret := r.enroll(s1, "bob@example.com")
	s2 := r.mustOpen(r.newKEK, r.oldKEK)
	if _, err := s2.RotateMasterKey(ctx, 500, nil); err != nil {
		t.Fatal(err)
	}
	open := func(u *keyledger.User) ([]byte, error) {
		return s2.OpenSealed(ctx, "users.totp", fmt.Sprint(u.ID))
	}
	for u, want := range map[*keyledger.User]string{alice: aliceSecret, bob: bobSecret} {
		if got, err := open(u); err != nil || string(got) != want {
			t.Fatalf("%s's secret after the rotation: %v", u.Email, err)
		}
	}

	f := &fixture{s: s2, pool: r.pool}
	f.asSuperuser(t, `UPDATE users u SET totp_kek_id = o.totp_kek_id, totp_wrapped_dek = o.totp_wrapped_dek, totp_nonce = o.totp_nonce, totp_ciphertext = o.totp_ciphertext
		FROM users o WHERE (u.id, o.id) IN (($1::bigint, $2::bigint), ($2, $1))`, alice.ID, bob.ID)
	for _, u := range []*keyledger.User{alice, bob} {
		got, err := open(u)
		if !errors.Is(err, crypto.ErrDecrypt) {
			t.Errorf("%s's row holding the other's envelope: opened %v, err %v; want ErrDecrypt", u.Email, got != nil, err)
		}
		if got != nil && slices.Contains([]string{aliceSecret, bobSecret}, string(got)) {
			t.Errorf("%s's row opened to a secret", u.Email)
		}
		if err := r.signIn(s2, u, map[*keyledger.User]string{alice: bobSecret, bob: aliceSecret}[u]); err == nil {
			t.Errorf("%s signed in with the other user's TOTP code", u.Email)
		}
	}

	// Tampering: a flipped bit in the ciphertext; the old key's id on a
	// re-wrapped DEK (both keys loaded, so only authentication can tell).
	carol, _ := r.enroll(s1, "carol@example.com")
	dave, _ := r.enroll(s1, "dave@example.com")
	if _, err := s2.RotateMasterKey(ctx, 500, nil); err != nil {
		t.Fatal(err)
	}
	f.asSuperuser(t, "UPDATE users SET totp_ciphertext = set_byte(totp_ciphertext, 0, get_byte(totp_ciphertext, 0) # 1) WHERE id = $1", carol.ID)
	f.asSuperuser(t, "UPDATE users SET totp_kek_id = $2 WHERE id = $1", dave.ID, r.oldKEK.ID())
	for _, u := range []*keyledger.User{carol, dave} {
		if _, err := open(u); !errors.Is(err, crypto.ErrDecrypt) {
			t.Errorf("%s's tampered envelope: %v, want ErrDecrypt", u.Email, err)
		}
	}
}

// TestRotateMasterKeyWaitsForHeldRows: when the only rows left are held
// by a request (a sign-in locks its user row), the rotation waits for them
// instead of giving up: users.totp is small enough that one sign-in at the
// wrong moment would otherwise fail the whole run.
func TestRotateMasterKeyWaitsForHeldRows(t *testing.T) {
	t.Parallel()
	r := newRotationFixture(t)
	ctx := t.Context()
	s1 := r.mustOpen(r.oldKEK)
	u, secret := r.enroll(s1, "busy@example.com")
	s2 := r.mustOpen(r.newKEK, r.oldKEK)

	hold, err := r.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A safety net for an early t.Fatal; the Rollback below is checked.
	defer func() { _ = hold.Rollback(context.Background()) }()
	if _, err := hold.Exec(ctx, "SELECT 1 FROM users WHERE id = $1 FOR UPDATE", u.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var report []store.RotationProgress
	go func() {
		var err error
		report, err = s2.RotateMasterKey(context.Background(), 500, nil)
		done <- err
	}()
	// Release the row once the rotation is waiting for it (or has
	// already given up).
	for waiting := false; !waiting; {
		select {
		case err := <-done:
			t.Fatalf("rotation ended while the row was held: %v", err)
		default:
		}
		if err := r.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype IN ('transactionid', 'tuple') AND NOT granted)`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
	}
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("rotation: %v", err)
	}
	if n := rewrapped(report, "users.totp"); n != 1 {
		t.Errorf("re-wrapped %d TOTP secrets, want 1: %+v", n, report)
	}
	s3, err := r.open(r.newKEK)
	if err != nil {
		t.Fatalf("only the new key: %v", err)
	}
	if err := r.signIn(s3, u, secret); err != nil {
		t.Errorf("sign-in after the rotation: %v", err)
	}
}
