package store_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

// revealFixture has one key per seeded environment, owned by a member.
type revealFixture struct {
	*fixture
	admin, lead, owner, other, gone *keyledger.User
	keys                            map[string]*keyledger.Key // by environment
	values                          map[string]string
}

func newRevealFixture(t *testing.T) *revealFixture {
	t.Helper()
	f := &revealFixture{fixture: newFixture(t, store.Options{}), keys: map[string]*keyledger.Key{}, values: map[string]string{}}
	f.admin = f.user(t, "admin@example.com", keyledger.RoleAdmin)
	f.lead = f.user(t, "lead@example.com", keyledger.RoleLead)
	f.owner = f.user(t, "owner@example.com", keyledger.RoleMember)
	f.other = f.user(t, "other@example.com", keyledger.RoleMember)
	f.gone = f.user(t, "gone@example.com", keyledger.RoleLead)
	for _, env := range []string{"development", "staging", "production"} {
		v := secretValue(t, "sk-proj-")
		f.values[env] = v
		f.keys[env] = f.key(t, f.owner, keyledger.KeyInput{Name: "OpenAI " + env, Project: "chatbot", Environment: env, OwnerEmail: f.owner.Email, Value: v})
	}
	if _, err := f.s.DeactivateUser(context.Background(), as(f.admin), f.gone.Email); err != nil {
		t.Fatal(err)
	}
	// f.gone keeps the stale Status "active": Reveal must re-read it.
	return f
}

func (f *revealFixture) reveals(t testing.TB, keyID string) int {
	t.Helper()
	return f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND key_id = $2", keyledger.ActionKeyReveal, keyID)
}

func TestRevealPolicyMatrix(t *testing.T) {
	t.Parallel()
	f := newRevealFixture(t)
	ctx := t.Context()
	type row struct {
		role string
		user *keyledger.User
		// allowed per environment: development, staging, production
		dev, staging, prod bool
	}
	rows := []row{
		{"admin", f.admin, true, true, true},
		{"lead", f.lead, true, true, true},
		{"member, owner", f.owner, true, true, true},
		{"member, not owner", f.other, true, true, false},
		{"deactivated lead", f.gone, false, false, false},
	}
	for _, r := range rows {
		for env, allowed := range map[string]bool{"development": r.dev, "staging": r.staging, "production": r.prod} {
			t.Run(r.role+"/"+env, func(t *testing.T) {
				k := f.keys[env]
				before := f.reveals(t, k.ID)
				reason := "debugging ticket #42 — löwe"
				got, err := f.s.Reveal(ctx, as(r.user), k.ID, "  "+reason+"\n")
				if !allowed {
					e := wantCodeError(t, err, keyledger.EFORBIDDEN)
					if got.Value != "" || got.Key != nil {
						t.Errorf("refused reveal returned %+v", got)
					}
					if strings.Contains(err.Error(), f.values[env]) || strings.Contains(e.Message, f.values[env]) {
						t.Error("error holds the value")
					}
					if n := f.reveals(t, k.ID); n != before {
						t.Errorf("refused reveal wrote %d reveal events", n-before)
					}
					return
				}
				if err != nil {
					t.Fatalf("Reveal: %v", err)
				}
				if got.Value != f.values[env] || got.Version != 1 || got.Key == nil || got.Key.ID != k.ID {
					t.Errorf("Reveal = version %d key %v, value ok %v", got.Version, got.Key, got.Value == f.values[env])
				}
				if n := f.reveals(t, k.ID); n != before+1 {
					t.Fatalf("%d reveal events, want %d", n, before+1)
				}
				var actorID int64
				var gotReason, details, envName, ip, ua string
				var version int
				if err := f.pool.QueryRow(ctx, `SELECT actor_id, reason, key_version, details::text, environment, ip, user_agent FROM audit_events
					WHERE action = $1 AND key_id = $2 ORDER BY id DESC LIMIT 1`, keyledger.ActionKeyReveal, k.ID).
					Scan(&actorID, &gotReason, &version, &details, &envName, &ip, &ua); err != nil {
					t.Fatal(err)
				}
				if actorID != r.user.ID || gotReason != reason || version != 1 || envName != env || ip != "192.0.2.10" || ua != "store-test/1.0" {
					t.Errorf("reveal event: actor %d reason %q version %d env %q ip %q ua %q", actorID, gotReason, version, envName, ip, ua)
				}
				if details != "{}" {
					t.Errorf("reveal event details %s, want {}", details)
				}
			})
		}
	}
	// Who has seen the production key: owner, admin and lead.
	recs, err := f.s.KeyReveals(ctx, as(f.lead), f.keys["production"].ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, rr := range recs {
		seen[rr.Email] = true
		if !rr.StillValid || rr.Version != 1 || rr.Action != keyledger.ActionKeyReveal {
			t.Errorf("reveal record %+v", rr)
		}
	}
	if len(seen) != 3 || !seen[f.owner.Email] || !seen[f.admin.Email] || !seen[f.lead.Email] {
		t.Errorf("KeyReveals lists %v", seen)
	}
}

func TestRevealReason(t *testing.T) {
	t.Parallel()
	f := newRevealFixture(t)
	ctx := t.Context()
	tests := []struct {
		env, reason string
		field       bool // EINVALID on "reason"
	}{
		{"development", "", false},
		{"development", "   ", false},
		{"staging", "", true},
		{"staging", " \t\n ", true},
		{"production", "", true},
		{"production", "   ", true},
		{"development", "bad\x07bell", true},
		{"staging", "line one\nline two", true},
		{"production", "escape \x1b[31mred", true},
		{"production", "nul \x00 byte", true},
		{"production", "bad utf-8 \xff", true},
		{"production", "separator \u2028 here", true},
		{"production", strings.Repeat("r", 501), true},
		{"production", strings.Repeat("r", 500), false},
	}
	for _, tc := range tests {
		k := f.keys[tc.env]
		before := f.reveals(t, k.ID)
		got, err := f.s.Reveal(ctx, as(f.owner), k.ID, tc.reason)
		if !tc.field {
			if err != nil || got.Value != f.values[tc.env] {
				t.Errorf("%s reason %q: %v", tc.env, tc.reason, err)
			}
			continue
		}
		if keyledger.ErrorCode(err) != keyledger.EINVALID || keyledger.FieldErrors(err)["reason"] == "" {
			t.Errorf("%s reason %q: %v, want EINVALID on reason", tc.env, tc.reason, err)
		}
		if got.Value != "" {
			t.Errorf("%s reason %q: value returned with an error", tc.env, tc.reason)
		}
		if n := f.reveals(t, k.ID); n != before {
			t.Errorf("%s reason %q: refused reveal audited", tc.env, tc.reason)
		}
	}
}

func TestRevealNotFound(t *testing.T) {
	t.Parallel()
	f := newRevealFixture(t)
	ctx := t.Context()
	before := f.tableCounts(t)
	for _, id := range []string{
		"", "garbage", "00000000-0000-0000-0000-000000000000", "6f1c2e1a-4b5d-4e6f-8a9b-0c1d2e3f4a5b",
		"'; DROP TABLE keys; --", f.keys["development"].ID + "x", "../" + f.keys["development"].ID,
		strings.ToUpper("6f1c2e1a-4b5d-4e6f-8a9b-0c1d2e3f4a5b"),
	} {
		got, err := f.s.Reveal(ctx, as(f.admin), id, "looking")
		wantCode(t, err, keyledger.ENOTFOUND)
		if got.Value != "" {
			t.Errorf("%q: value", id)
		}
	}
	// No user: unauthorized, not a crash.
	_, err := f.s.Reveal(ctx, keyledger.Actor{}, f.keys["development"].ID, "")
	wantCode(t, err, keyledger.EUNAUTHORIZED)
	if after := f.tableCounts(t); after["audit_events"] != before["audit_events"] {
		t.Errorf("failed reveals were audited as reveals: %v -> %v", before, after)
	}
	// An upper-case id is the same key.
	got, err := f.s.Reveal(ctx, as(f.admin), strings.ToUpper(f.keys["development"].ID), "")
	if err != nil || got.Value != f.values["development"] {
		t.Errorf("upper-case id: %v", err)
	}
}

func TestRevealFailsClosedWithoutAudit(t *testing.T) {
	t.Parallel()
	f := newRevealFixture(t)
	ctx := t.Context()
	k := f.keys["production"]
	exec := func(sql string) {
		t.Helper()
		if _, err := f.pool.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec(`CREATE FUNCTION test_refuse_audit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'audit storage is broken (test)'; END $$`)
	exec(`CREATE TRIGGER test_refuse_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION test_refuse_audit()`)
	before := f.tableCounts(t)
	for _, u := range []*keyledger.User{f.owner, f.admin} {
		got, err := f.s.Reveal(ctx, as(u), k.ID, "incident")
		if err == nil {
			t.Fatalf("Reveal succeeded without its audit event: %q", got.Value)
		}
		if got.Value != "" || got.Key != nil {
			t.Errorf("failed reveal returned %+v", got)
		}
		if keyledger.ErrorCode(err) != keyledger.EINTERNAL {
			t.Errorf("code %s, want internal: %v", keyledger.ErrorCode(err), err)
		}
		if strings.Contains(err.Error(), f.values["production"]) || strings.Contains(keyledger.ErrorMessage(err), "audit storage") {
			t.Errorf("error leaks detail to the user: %q", keyledger.ErrorMessage(err))
		}
	}
	// Registering is refused the same way, leaving no key behind.
	_, err := f.s.CreateKey(ctx, as(f.owner), devKey("unaudited", f.owner.Email, secretValue(t, "sk-proj-")))
	if err == nil {
		t.Error("CreateKey succeeded without its audit event")
	}
	if after := f.tableCounts(t); after["keys"] != before["keys"] || after["key_versions"] != before["key_versions"] {
		t.Errorf("unaudited changes committed: %v -> %v", before, after)
	}

	exec(`DROP TRIGGER test_refuse_audit ON audit_events`)
	got, err := f.s.Reveal(ctx, as(f.owner), k.ID, "incident")
	if err != nil || got.Value != f.values["production"] {
		t.Fatalf("after repair: %v", err)
	}
	if n := f.reveals(t, k.ID); n != 1 {
		t.Errorf("%d reveal events, want 1", n)
	}
}

const integrityMessage = "integrity check"

func (f *revealFixture) wantTampered(t *testing.T, keyID string) {
	t.Helper()
	before := f.reveals(t, keyID)
	got, err := f.s.Reveal(context.Background(), as(f.admin), keyID, "tamper check")
	if err == nil {
		t.Fatalf("tampered key revealed %q", got.Value)
	}
	wantCode(t, err, keyledger.EINTERNAL)
	if !strings.Contains(keyledger.ErrorMessage(err), integrityMessage) {
		t.Errorf("message %q does not mention the %s", keyledger.ErrorMessage(err), integrityMessage)
	}
	if got.Value != "" || got.Key != nil {
		t.Errorf("tampered reveal returned %+v", got)
	}
	if n := f.reveals(t, keyID); n != before {
		t.Errorf("failed reveal was audited as a reveal")
	}
}

func TestRevealDetectsTampering(t *testing.T) {
	t.Parallel()
	f := newRevealFixture(t)
	ctx := t.Context()
	k := f.keys["production"]
	flip := func(col, pos string) string {
		return "UPDATE key_versions SET " + col + " = set_byte(" + col + ", " + pos + ", get_byte(" + col + ", " + pos + ") # 1) WHERE key_id = $1 AND version = 1"
	}
	tests := []struct{ name, tamper, restore string }{
		{"ciphertext first byte", flip("ciphertext", "0"), flip("ciphertext", "0")},
		{"ciphertext tag", flip("ciphertext", "octet_length(ciphertext) - 1"), flip("ciphertext", "octet_length(ciphertext) - 1")},
		{"nonce", flip("nonce", "5"), flip("nonce", "5")},
		{"wrapped DEK nonce", flip("wrapped_dek", "0"), flip("wrapped_dek", "0")},
		{"wrapped DEK body", flip("wrapped_dek", "40"), flip("wrapped_dek", "40")},
		{"kek id", "UPDATE key_versions SET kek_id = kek_id || 'x' WHERE key_id = $1", "UPDATE key_versions SET kek_id = left(kek_id, -1) WHERE key_id = $1"},
		{"truncated ciphertext", "UPDATE key_versions SET ciphertext = substr(ciphertext, 1, 10) WHERE key_id = $1", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.restore == "" {
				// Keep a copy to restore from.
				f.asSuperuser(t, "CREATE TEMP TABLE IF NOT EXISTS saved AS SELECT * FROM key_versions WHERE key_id = $1", k.ID)
			}
			if n := f.asSuperuser(t, tc.tamper, k.ID); n != 1 {
				t.Fatalf("tampered %d rows", n)
			}
			f.wantTampered(t, k.ID)
			if tc.restore != "" {
				f.asSuperuser(t, tc.restore, k.ID)
				got, err := f.s.Reveal(ctx, as(f.admin), k.ID, "after restore")
				if err != nil || got.Value != f.values["production"] {
					t.Fatalf("after restoring the byte: %v", err)
				}
			}
		})
	}
}

func TestRevealDetectsSwappedEnvelopes(t *testing.T) {
	t.Parallel()
	f := newRevealFixture(t)
	ctx := t.Context()
	a, b, c := f.keys["development"], f.keys["staging"], f.keys["production"]
	n := f.asSuperuser(t, `UPDATE key_versions v SET kek_id = o.kek_id, wrapped_dek = o.wrapped_dek, nonce = o.nonce, ciphertext = o.ciphertext
		FROM key_versions o WHERE v.version = 1 AND o.version = 1
		AND ((v.key_id = $1 AND o.key_id = $2) OR (v.key_id = $2 AND o.key_id = $1))`, a.ID, b.ID)
	if n != 2 {
		t.Fatalf("swapped %d rows", n)
	}
	f.wantTampered(t, a.ID)
	f.wantTampered(t, b.ID)
	got, err := f.s.Reveal(ctx, as(f.admin), c.ID, "untouched")
	if err != nil || got.Value != f.values["production"] {
		t.Errorf("untouched key: %v", err)
	}
	// Copying one key's envelope over another's (same value twice) fails too.
	f.asSuperuser(t, `UPDATE key_versions v SET kek_id = o.kek_id, wrapped_dek = o.wrapped_dek, nonce = o.nonce, ciphertext = o.ciphertext
		FROM key_versions o WHERE v.key_id = $1 AND o.key_id = $2`, a.ID, c.ID)
	f.wantTampered(t, a.ID)
	// Moving a version to another version number of the same key fails too.
	f.asSuperuser(t, `UPDATE keys SET current_version = 2 WHERE id = $1`, c.ID)
	f.asSuperuser(t, `INSERT INTO key_versions (key_id, version, kek_id, wrapped_dek, nonce, ciphertext, masked_hint)
		SELECT key_id, 2, kek_id, wrapped_dek, nonce, ciphertext, masked_hint FROM key_versions WHERE key_id = $1 AND version = 1`, c.ID)
	f.wantTampered(t, c.ID)
}

func TestRevealMissingVersion(t *testing.T) {
	t.Parallel()
	f := newRevealFixture(t)
	k := f.keys["development"]
	f.asSuperuser(t, `UPDATE keys SET current_version = 7 WHERE id = $1`, k.ID)
	got, err := f.s.Reveal(t.Context(), as(f.owner), k.ID, "")
	wantCode(t, err, keyledger.EINTERNAL)
	if got.Value != "" || f.reveals(t, k.ID) != 0 {
		t.Error("missing version revealed or audited")
	}
}

func TestWrongMasterKey(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, storetest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	ring := storetest.NewKeyring(t)
	opts := store.Options{PasswordParams: storetest.FastPasswords()}
	s, err := store.New(ctx, pool, ring, opts)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{s: s, pool: pool}
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	value := secretValue(t, "sk-proj-")
	k := f.key(t, alice, devKey("k", alice.Email, value))

	wrong, err := store.New(ctx, pool, storetest.NewKeyring(t), opts)
	if err == nil {
		t.Fatal("store.New accepted a different master key")
	}
	if wrong != nil {
		t.Error("store.New returned a store with its error")
	}
	if !strings.Contains(err.Error(), "master key") {
		t.Errorf("error %q does not mention the master key", err)
	}
	// The right key still opens everything, and a restart with it works.
	s2, err := store.New(ctx, pool, ring, opts)
	if err != nil {
		t.Fatalf("restart with the right key: %v", err)
	}
	got, err := s2.Reveal(ctx, as(alice), k.ID, "")
	if err != nil || got.Value != value {
		t.Fatalf("reveal after restart: %v", err)
	}
	// A tampered canary is caught at startup too.
	f.asSuperuser(t, "UPDATE keyring_check SET canary = set_byte(canary, 30, get_byte(canary, 30) # 1)")
	if _, err := store.New(ctx, pool, ring, opts); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Errorf("tampered canary: %v", err)
	}
}

func TestConcurrentRevealsChainAudit(t *testing.T) {
	t.Parallel()
	f := newRevealFixture(t)
	ctx := t.Context()
	users := []*keyledger.User{f.admin, f.lead, f.owner, f.other}
	const workers, each = 20, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				env := []string{"development", "staging"}[i%2]
				got, err := f.s.Reveal(ctx, as(users[w%len(users)]), f.keys[env].ID, "load test")
				if err == nil && got.Value != f.values[env] {
					err = context.Canceled // any non-nil marker
				}
				if err != nil {
					errs <- err
				}
			}
		})
	}
	// Verify while reveals are still committing: the chain must never look
	// broken, only incomplete.
	for range 5 {
		r, err := f.s.VerifyAudit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK() {
			t.Errorf("VerifyAudit during reveals: %+v", r)
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent reveal: %v", err)
	}
	r := verifyChained(t, f.s)
	total := f.count(t, "SELECT count(*) FROM audit_events")
	if r.Checked != int64(total) {
		t.Errorf("Checked %d, want all %d events", r.Checked, total)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1", keyledger.ActionKeyReveal); n != workers*each {
		t.Errorf("%d reveal events, want %d", n, workers*each)
	}
}
