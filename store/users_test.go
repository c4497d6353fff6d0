package store_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

func TestCreateUserValidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := t.Context()
	good := keyledger.NewUser{Email: "new@example.com", Name: "New", Role: keyledger.RoleMember, Password: testPassword}
	tests := []struct {
		name  string
		edit  func(*keyledger.NewUser)
		field string
	}{
		{"empty email", func(n *keyledger.NewUser) { n.Email = "" }, "email"},
		{"email without at", func(n *keyledger.NewUser) { n.Email = "new.example.com" }, "email"},
		{"email with space", func(n *keyledger.NewUser) { n.Email = "new user@example.com" }, "email"},
		{"email with angle bracket", func(n *keyledger.NewUser) { n.Email = "<new>@example.com" }, "email"},
		{"email too long", func(n *keyledger.NewUser) { n.Email = strings.Repeat("a", 250) + "@example.com" }, "email"},
		{"email with NUL", func(n *keyledger.NewUser) { n.Email = "new\x00@example.com" }, "email"},
		{"name with control char", func(n *keyledger.NewUser) { n.Name = "New\x1b[31m" }, "name"},
		{"name with newline", func(n *keyledger.NewUser) { n.Name = "New\nUser" }, "name"},
		{"name too long", func(n *keyledger.NewUser) { n.Name = strings.Repeat("é", 201) }, "name"},
		{"name invalid UTF-8", func(n *keyledger.NewUser) { n.Name = "New\xff" }, "name"},
		{"empty role", func(n *keyledger.NewUser) { n.Role = "" }, "role"},
		{"unknown role", func(n *keyledger.NewUser) { n.Role = "superuser" }, "role"},
		{"short password", func(n *keyledger.NewUser) { n.Password = "short" }, "password"},
		{"password 11 runes", func(n *keyledger.NewUser) { n.Password = strings.Repeat("ü", 11) }, "password"},
		{"password too long", func(n *keyledger.NewUser) { n.Password = strings.Repeat("x", 1025) }, "password"},
		{"password with control char", func(n *keyledger.NewUser) { n.Password = "correct horse\x07battery" }, "password"},
	}
	before := f.tableCounts(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			in := good
			tc.edit(&in)
			u, err := f.s.CreateUser(ctx, keyledger.SystemActor("test"), in)
			wantField(t, err, keyledger.EINVALID, tc.field)
			if u != nil {
				t.Errorf("got user %+v with an error", u)
			}
		})
	}
	if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("refused users changed the tables: before %v, after %v", before, after)
	}

	// The good input works, normalized, and is audited.
	in := good
	in.Email = "  New@Example.COM "
	u, err := f.s.CreateUser(ctx, keyledger.SystemActor("cli"), in)
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "new@example.com" || u.Role != keyledger.RoleMember || !u.Active() || u.ID == 0 {
		t.Errorf("created %+v", u)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2 AND actor_email = 'cli'", keyledger.ActionUserCreate, u.ID); n != 1 {
		t.Errorf("%d user.create events, want 1", n)
	}
	if n := f.count(t, "SELECT count(*) FROM users WHERE password_hash LIKE '$argon2id$%' AND id = $1", u.ID); n != 1 {
		t.Error("password not stored as an argon2id PHC string")
	}
}

func TestCreateUserDuplicateEmail(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := t.Context()
	f.user(t, "maria@example.com", keyledger.RoleMember)
	for _, email := range []string{"maria@example.com", "MARIA@example.com", " Maria@Example.Com"} {
		before := f.tableCounts(t)
		_, err := f.s.CreateUser(ctx, keyledger.SystemActor("test"), keyledger.NewUser{Email: email, Role: keyledger.RoleLead, Password: testPassword})
		wantField(t, err, keyledger.ECONFLICT, "email")
		if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
			t.Errorf("%s: duplicate changed the tables: %v -> %v", email, before, after)
		}
	}
}

func TestCreateUserOnlyAdminOrSystem(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := t.Context()
	admin := f.user(t, "admin@example.com", keyledger.RoleAdmin)
	lead := f.user(t, "lead@example.com", keyledger.RoleLead)
	member := f.user(t, "member@example.com", keyledger.RoleMember)
	goneAdmin := f.user(t, "gone@example.com", keyledger.RoleAdmin)
	if _, err := f.s.DeactivateUser(ctx, as(admin), goneAdmin.Email); err != nil {
		t.Fatal(err)
	}
	goneAdmin.Status = keyledger.UserDeactivated
	tests := []struct {
		name  string
		actor keyledger.Actor
		ok    bool
	}{
		{"system", keyledger.SystemActor("cli"), true},
		{"admin", as(admin), true},
		{"lead", as(lead), false},
		{"member", as(member), false},
		{"deactivated admin", as(goneAdmin), false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := f.tableCounts(t)
			u, err := f.s.CreateUser(ctx, tc.actor, keyledger.NewUser{
				Email: fmt.Sprintf("created%d@example.com", i), Role: keyledger.RoleAdmin, Password: testPassword})
			if tc.ok {
				if err != nil || u == nil {
					t.Fatalf("CreateUser: %v", err)
				}
				return
			}
			wantCode(t, err, keyledger.EFORBIDDEN)
			if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("refused creation changed the tables: %v -> %v", before, after)
			}
		})
	}
}

func TestAuthenticate(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := t.Context()
	admin := f.user(t, "admin@example.com", keyledger.RoleAdmin)
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	gone := f.user(t, "gone@example.com", keyledger.RoleMember)
	if _, err := f.s.DeactivateUser(ctx, as(admin), gone.Email); err != nil {
		t.Fatal(err)
	}
	meta := keyledger.Actor{IP: "203.0.113.5", UserAgent: "browser"}

	for _, email := range []string{"alice@example.com", "  ALICE@Example.com "} {
		u, err := f.s.Authenticate(ctx, meta, email, testPassword)
		if err != nil {
			t.Fatalf("Authenticate(%q): %v", email, err)
		}
		if u.ID != alice.ID || u.Email != alice.Email || !u.Active() {
			t.Errorf("Authenticate(%q) = %+v, want alice", email, u)
		}
	}

	failures := []struct {
		name, email, password, reason string
	}{
		{"wrong password", "alice@example.com", "not the password at all", "wrong_password"},
		{"password differs in case", "alice@example.com", strings.ToUpper(testPassword), "wrong_password"},
		{"empty password", "alice@example.com", "", "wrong_password"},
		{"unknown email", "nobody@example.com", testPassword, "unknown_email"},
		{"deactivated user, right password", "gone@example.com", testPassword, "deactivated"},
	}
	for _, tc := range failures {
		t.Run(tc.name, func(t *testing.T) {
			before := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND details->>'reason' = $2", keyledger.ActionSignInFailed, tc.reason)
			u, err := f.s.Authenticate(ctx, meta, tc.email, tc.password)
			if u != nil {
				t.Errorf("got user %+v", u)
			}
			// The very same error value: nothing tells the cases apart.
			if err != store.ErrBadCredentials {
				t.Fatalf("err = %v, want store.ErrBadCredentials", err)
			}
			after := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND details->>'reason' = $2 AND subject_email = $3 AND ip = $4",
				keyledger.ActionSignInFailed, tc.reason, tc.email, meta.IP)
			if after != before+1 {
				t.Errorf("%d %s events for %s, want %d", after, tc.reason, tc.email, before+1)
			}
		})
	}
	// The error says nothing about which part was wrong.
	if msg := keyledger.ErrorMessage(store.ErrBadCredentials); strings.Contains(strings.ToLower(msg), "unknown") || strings.Contains(msg, "deactivated") {
		t.Errorf("message tells the cases apart: %q", msg)
	}
	if found := findInDatabase(t, f.pool, map[string]string{"password": testPassword, "upper-password": strings.ToUpper(testPassword)}); len(found) > 0 {
		t.Errorf("a password is stored in plain text: %v", found)
	}
	// A successful sign-in is not itself audited by Authenticate (StartSession
	// does that), but failures counted: 3 + 1 + 1.
	if n := f.count(t, "SELECT count(*) FROM login_failures"); n != 5 {
		t.Errorf("%d login failures recorded, want 5", n)
	}
}

func TestAuthenticateThrottlePerAccount(t *testing.T) {
	t.Parallel()
	limits := store.ThrottleLimits{Window: 15 * time.Minute, PerAccount: 3, PerIP: 100}
	f := newFixture(t, store.Options{Throttle: limits})
	ctx := t.Context()
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	f.user(t, "bob@example.com", keyledger.RoleMember)

	for i := range limits.PerAccount {
		// Each failure from another address: the account limit counts them all.
		meta := keyledger.Actor{IP: fmt.Sprintf("198.51.100.%d", i+1)}
		if _, err := f.s.Authenticate(ctx, meta, alice.Email, "wrong password number "+fmt.Sprint(i)); err != store.ErrBadCredentials {
			t.Fatalf("failure %d: %v", i, err)
		}
	}
	meta := keyledger.Actor{IP: "198.51.100.200"}
	u, err := f.s.Authenticate(ctx, meta, alice.Email, testPassword)
	if keyledger.ErrorCode(err) != keyledger.ETOOMANY || u != nil {
		t.Fatalf("right password after %d failures: user %v, err %v; want ErrThrottled", limits.PerAccount, u, err)
	}
	wantCode(t, err, keyledger.ETOOMANY)
	// Same for the account in another spelling.
	if _, err := f.s.Authenticate(ctx, meta, "ALICE@example.com", testPassword); keyledger.ErrorCode(err) != keyledger.ETOOMANY {
		t.Fatalf("upper-case email: %v, want ErrThrottled", err)
	}
	// Another account from the same address is fine.
	if _, err := f.s.Authenticate(ctx, meta, "bob@example.com", testPassword); err != nil {
		t.Fatalf("bob: %v", err)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_email = $2", keyledger.ActionSignInThrottle, alice.Email); n != 2 {
		t.Errorf("%d throttle events, want 2", n)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_email = $2", keyledger.ActionSignInFailed, alice.Email); n != 3 {
		t.Errorf("%d failure events, want 3", n)
	}
	if found := findInDatabase(t, f.pool, map[string]string{"password": testPassword, "wrong": "wrong password number"}); len(found) > 0 {
		t.Errorf("a password is stored: %v", found)
	}
}

func TestAuthenticateThrottlePerIP(t *testing.T) {
	t.Parallel()
	limits := store.ThrottleLimits{Window: 15 * time.Minute, PerAccount: 100, PerIP: 4}
	f := newFixture(t, store.Options{Throttle: limits})
	ctx := t.Context()
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	attacker := keyledger.Actor{IP: "198.51.100.66", UserAgent: "sprayer"}
	for i := range limits.PerIP {
		// A password spray: different emails, one address.
		email := fmt.Sprintf("user%d@example.com", i)
		if i == 0 {
			email = alice.Email
		}
		if _, err := f.s.Authenticate(ctx, attacker, email, "Summer2024!Summer2024!"); err != store.ErrBadCredentials {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := f.s.Authenticate(ctx, attacker, alice.Email, testPassword); keyledger.ErrorCode(err) != keyledger.ETOOMANY {
		t.Fatalf("from the spraying address: %v, want ErrThrottled", err)
	}
	if _, err := f.s.Authenticate(ctx, attacker, "fresh@example.com", "anything at all here"); keyledger.ErrorCode(err) != keyledger.ETOOMANY {
		t.Fatalf("fresh email from the spraying address: %v, want ErrThrottled", err)
	}
	// Alice from her own address still gets in: one failure on her account.
	if _, err := f.s.Authenticate(ctx, keyledger.Actor{IP: "203.0.113.9"}, alice.Email, testPassword); err != nil {
		t.Fatalf("alice from elsewhere: %v", err)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND ip = $2", keyledger.ActionSignInThrottle, attacker.IP); n != 2 {
		t.Errorf("%d throttle events, want 2", n)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE details::text LIKE '%Summer2024%' OR reason LIKE '%Summer2024%'"); n != 0 {
		t.Errorf("the sprayed password is in %d audit events", n)
	}
}

// The throttle window must follow the store's clock (Options.Now), the
// same clock that judges it; otherwise a store with a clock ahead of or
// behind the database never or always throttles.
func TestAuthenticateThrottleFollowsStoreClock(t *testing.T) {
	t.Parallel()
	clk := newClock()
	clk.Advance(30 * 24 * time.Hour) // the store's clock runs ahead of the database's
	limits := store.ThrottleLimits{Window: 15 * time.Minute, PerAccount: 2, PerIP: 100}
	f := newFixture(t, store.Options{Throttle: limits, Now: clk.Now})
	ctx := t.Context()
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	meta := keyledger.Actor{IP: "198.51.100.1"}
	for range limits.PerAccount {
		if _, err := f.s.Authenticate(ctx, meta, alice.Email, "wrong wrong wrong"); err != store.ErrBadCredentials {
			t.Fatal(err)
		}
	}
	if _, err := f.s.Authenticate(ctx, meta, alice.Email, testPassword); keyledger.ErrorCode(err) != keyledger.ETOOMANY {
		t.Fatalf("after %d failures: %v, want ErrThrottled", limits.PerAccount, err)
	}
	// Once the window has passed, the account is free again.
	clk.Advance(limits.Window + time.Second)
	if _, err := f.s.Authenticate(ctx, meta, alice.Email, testPassword); err != nil {
		t.Fatalf("after the window: %v", err)
	}
}

func TestAuthenticateRehash(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, storetest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	ring := storetest.NewKeyring(t)
	oldParams := storetest.FastPasswords()
	oldStore, err := store.New(ctx, pool, ring, store.Options{PasswordParams: oldParams})
	if err != nil {
		t.Fatal(err)
	}
	u, err := oldStore.CreateUser(ctx, keyledger.SystemActor("test"), keyledger.NewUser{Email: "alice@example.com", Role: keyledger.RoleMember, Password: testPassword})
	if err != nil {
		t.Fatal(err)
	}
	hash := func() string {
		var h string
		if err := pool.QueryRow(ctx, "SELECT password_hash FROM users WHERE id = $1", u.ID).Scan(&h); err != nil {
			t.Fatal(err)
		}
		return h
	}
	oldHash := hash()
	if !strings.Contains(oldHash, "$m=64,t=1,p=1$") {
		t.Fatalf("old hash %q lacks the old parameters", oldHash)
	}
	// Signing in with unchanged parameters keeps the hash.
	if _, err := oldStore.Authenticate(ctx, keyledger.Actor{}, u.Email, testPassword); err != nil {
		t.Fatal(err)
	}
	if hash() != oldHash {
		t.Fatal("hash changed although the parameters did not")
	}

	newParams := *oldParams
	newParams.MemoryKiB, newParams.Time = 128, 2
	newStore, err := store.New(ctx, pool, ring, store.Options{PasswordParams: &newParams})
	if err != nil {
		t.Fatal(err)
	}
	// A wrong password does not rehash.
	if _, err := newStore.Authenticate(ctx, keyledger.Actor{}, u.Email, "wrong password here"); err != store.ErrBadCredentials {
		t.Fatal(err)
	}
	if hash() != oldHash {
		t.Fatal("a failed sign-in changed the hash")
	}
	if _, err := newStore.Authenticate(ctx, keyledger.Actor{}, u.Email, testPassword); err != nil {
		t.Fatal(err)
	}
	newHash := hash()
	if !strings.HasPrefix(newHash, "$argon2id$v=19$m=128,t=2,p=1$") {
		t.Fatalf("hash after sign-in with new parameters = %q, want m=128,t=2,p=1", newHash)
	}
	ok, rehash, err := crypto.VerifyPassword(testPassword, newHash, newParams)
	if !ok || rehash || err != nil {
		t.Fatalf("new hash: ok %v, rehash %v, err %v", ok, rehash, err)
	}
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2", keyledger.ActionPasswordRehash, u.ID).Scan(&n); err != nil || n != 1 {
		t.Errorf("%d rehash events (err %v), want 1", n, err)
	}
	// Signing in again with the same parameters leaves the new hash alone.
	if _, err := newStore.Authenticate(ctx, keyledger.Actor{}, u.Email, testPassword); err != nil {
		t.Fatal(err)
	}
	if hash() != newHash {
		t.Error("second sign-in rehashed again")
	}
}

func TestDeactivateUser(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := t.Context()
	admin := f.user(t, "admin@example.com", keyledger.RoleAdmin)
	lead := f.user(t, "lead@example.com", keyledger.RoleLead)
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	_, err := f.s.DeactivateUser(ctx, as(lead), alice.Email)
	wantCode(t, err, keyledger.EFORBIDDEN)
	_, err = f.s.DeactivateUser(ctx, as(admin), "nobody@example.com")
	wantCode(t, err, keyledger.ENOTFOUND)
	u, err := f.s.DeactivateUser(ctx, as(admin), "ALICE@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if u.Active() || u.Status != keyledger.UserDeactivated {
		t.Errorf("after deactivation: %+v", u)
	}
	got, err := f.s.UserByEmail(ctx, alice.Email)
	if err != nil || got.Active() {
		t.Errorf("UserByEmail: %+v, %v", got, err)
	}
	active, err := f.s.ActiveUsers(ctx, keyledger.SystemActor("test"))
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range active {
		if a.ID == alice.ID {
			t.Error("deactivated user listed as active")
		}
	}
	if n, err := f.s.CountUsers(ctx); err != nil || n != 3 {
		t.Errorf("CountUsers = %d, %v", n, err)
	}
	if _, err := f.s.UserByEmail(ctx, "nobody@example.com"); keyledger.ErrorCode(err) != keyledger.ENOTFOUND {
		t.Errorf("UserByEmail(unknown): %v", err)
	}
}
