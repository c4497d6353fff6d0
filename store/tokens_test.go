package store_test

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// tokenIP is where the tests' token requests come from.
const tokenIP = "203.0.113.5"

func tokIn(name, expires string, scopes ...string) keyledger.TokenInput {
	return keyledger.TokenInput{Name: name, Scopes: scopes, Expires: expires}
}

// mint creates a token as actor for forEmail ("" for the actor) or fails.
func (f *govFixture) mint(t testing.TB, actor keyledger.Actor, forEmail string, in keyledger.TokenInput) (string, *keyledger.Token) {
	t.Helper()
	secret, tok, err := f.s.CreateToken(context.Background(), actor, forEmail, in)
	if err != nil {
		t.Fatalf("create token %q: %v", in.Name, err)
	}
	return secret, tok
}

// bearer authenticates secret as the API would, or fails.
func (f *govFixture) bearer(t testing.TB, secret string) keyledger.Actor {
	t.Helper()
	a, err := f.s.TokenActor(context.Background(), secret, tokenIP, "keyledger-cli/1.0")
	if err != nil {
		t.Fatalf("TokenActor: %v", err)
	}
	return a
}

// wantBadToken fails unless secret is refused with the one answer.
func (f *govFixture) wantBadToken(t testing.TB, secret, why string) {
	t.Helper()
	a, err := f.s.TokenActor(context.Background(), secret, tokenIP, "keyledger-cli/1.0")
	if err != store.ErrBadToken || a.User != nil || a.Token != nil {
		t.Errorf("%s: TokenActor = %+v, %v; want ErrBadToken and no actor", why, a, err)
	}
}

func (f *govFixture) tokenCount(t testing.TB, u *keyledger.User) int {
	t.Helper()
	return f.count(t, "SELECT count(*) FROM api_tokens WHERE user_id = $1", u.ID)
}

// tokenEvents returns the details of the events of action about token id.
func (f *govFixture) tokenEvents(t testing.TB, action string, id int64) []map[string]any {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT details::text FROM audit_events
		WHERE action = $1 AND (details->>'token_id')::bigint = $2 ORDER BY id`, action, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []map[string]any
	for rows.Next() {
		var raw string
		if err := rows.Scan(&raw); err != nil {
			t.Fatal(err)
		}
		var d map[string]any
		if err := json.Unmarshal([]byte(raw), &d); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTokenCreate(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	t0 := f.clock.Now()
	secret, tok := f.mint(t, as(f.m), "", tokIn("  laptop CLI ", "30d", "reveal", "read"))
	if !strings.HasPrefix(secret, keyledger.TokenPrefix) || len(secret) < len(keyledger.TokenPrefix)+40 {
		t.Fatalf("secret %q: want klt_ and at least 40 random characters", secret)
	}
	want := keyledger.Token{ID: tok.ID, UserID: f.m.ID, UserEmail: f.m.Email, Name: "laptop CLI", Hint: secret[:len(keyledger.TokenPrefix)+4],
		Scopes: []string{"read", "reveal"}, CreatedAt: t0, ExpiresAt: t0.Add(30 * 24 * time.Hour)}
	got := *tok
	got.CreatedAt, got.ExpiresAt = got.CreatedAt.UTC(), got.ExpiresAt.UTC()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("token\n got %+v\nwant %+v", got, want)
	}
	// Only the hash is kept, and the hash is of the whole secret.
	sum := sha256.Sum256([]byte(secret))
	if n := f.count(t, "SELECT count(*) FROM api_tokens WHERE id = $1 AND token_hash = $2 AND created_by = $3", tok.ID, sum[:], f.m.ID); n != 1 {
		t.Error("api_tokens does not hold the SHA-256 of the secret, created by m")
	}
	if found := findInDatabase(t, f.pool, leakForms(secret)); len(found) > 0 {
		t.Errorf("the token's secret is at rest: %v", found)
	}
	var hashes, details string
	if err := f.pool.QueryRow(ctx, "SELECT encode(token_hash, 'escape') || hint || name FROM api_tokens WHERE id = $1", tok.ID).Scan(&hashes); err != nil {
		t.Fatal(err)
	}
	if err := f.pool.QueryRow(ctx, "SELECT string_agg(details::text || reason || subject_email, ' ') FROM audit_events").Scan(&details); err != nil {
		t.Fatal(err)
	}
	noSecretIn(t, secret, hashes, details)

	ev := f.tokenEvents(t, keyledger.ActionTokenCreate, tok.ID)
	if len(ev) != 1 || ev[0]["name"] != "laptop CLI" || ev[0]["expires_at"] != want.ExpiresAt.Format(time.RFC3339) ||
		!reflect.DeepEqual(ev[0]["scopes"], []any{"read", "reveal"}) || ev[0]["via_token"] != nil {
		t.Errorf("token.create events %v", ev)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND actor_id = $2 AND subject_id = $2", keyledger.ActionTokenCreate, f.m.ID); n != 1 {
		t.Errorf("%d token.create events by m about m, want 1", n)
	}

	// Every token is its own secret.
	other, tok2 := f.mint(t, as(f.m), "", tokIn("laptop CLI", "", "read"))
	if other == secret || tok2.Hint == "" || tok2.ID == tok.ID {
		t.Error("two tokens share a secret or an id")
	}
	if !tok2.ExpiresAt.Equal(t0.Add(keyledger.DefaultTokenTTL)) {
		t.Errorf("default expiry %v, want %v", tok2.ExpiresAt, t0.Add(keyledger.DefaultTokenTTL))
	}

	// Nothing is created from a refused request.
	before := f.count(t, "SELECT count(*) FROM api_tokens") + f.count(t, "SELECT count(*) FROM audit_events")
	for _, in := range []keyledger.TokenInput{tokIn("", "", "read"), tokIn("ci", "", "root"), tokIn("ci", "366d", "read"), tokIn("ci", "0d", "read"), tokIn("ci", "")} {
		_, _, err := f.s.CreateToken(ctx, as(f.m), "", in)
		wantCode(t, err, keyledger.EINVALID)
	}
	if after := f.count(t, "SELECT count(*) FROM api_tokens") + f.count(t, "SELECT count(*) FROM audit_events"); after != before {
		t.Errorf("refused requests left %d rows", after-before)
	}
}

func TestTokenActor(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	secret, tok := f.mint(t, as(f.m), "", tokIn("ci", "30d", "read", "write"))

	a := f.bearer(t, secret)
	if a.User == nil || a.User.ID != f.m.ID || a.User.Email != f.m.Email || a.User.Role != keyledger.RoleMember || !a.User.Active() {
		t.Errorf("actor user %+v", a.User)
	}
	if a.Token == nil || a.Token.ID != tok.ID || !reflect.DeepEqual(a.Token.Scopes, []string{"read", "write"}) || a.IP != tokenIP || !a.StepUpAt.IsZero() {
		t.Errorf("actor token %+v, ip %q, step-up %v", a.Token, a.IP, a.StepUpAt)
	}

	f.wantBadToken(t, keyledger.TokenPrefix+strings.Repeat("A", 43), "unknown")
	f.wantBadToken(t, "", "empty")
	f.wantBadToken(t, secret[len(keyledger.TokenPrefix):], "without the prefix")
	f.wantBadToken(t, "KLT_"+secret[len(keyledger.TokenPrefix):], "upper-case prefix")
	f.wantBadToken(t, "Bearer "+secret, "with the scheme")
	f.wantBadToken(t, secret+" ", "with a trailing space")
	f.wantBadToken(t, secret[:len(secret)-1], "truncated")
	last := secret[len(secret)-1]
	flipped := byte('A')
	if last == 'A' {
		flipped = 'B'
	}
	f.wantBadToken(t, secret[:len(secret)-1]+string(flipped), "one character changed")
	f.wantBadToken(t, secret+strings.Repeat("x", 300), "too long")
	f.wantBadToken(t, tok.Hint, "the hint")

	// Expired: valid until the last instant before expires_at.
	f.clock.Advance(30*24*time.Hour - time.Second)
	f.bearer(t, secret)
	f.clock.Advance(time.Second)
	f.wantBadToken(t, secret, "at expiry")
	f.clock.Advance(time.Hour)
	f.wantBadToken(t, secret, "expired")
	// The expired token is still listed (with its expiry) until revoked.
	list, err := f.s.ListTokens(context.Background(), as(f.m), f.m.ID)
	if err != nil || len(list) != 1 || list[0].ID != tok.ID {
		t.Errorf("ListTokens after expiry = %+v, %v", list, err)
	}
}

func TestTokenUserNoLongerActive(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()

	// Deactivation deletes the tokens; reactivating does not bring them back.
	nSecret, _ := f.mint(t, as(f.n), "", tokIn("ci", "", "read"))
	oSecret, _ := f.mint(t, as(f.o), "", tokIn("ci", "", "read"))
	if _, err := f.s.DeactivateUser(ctx, as(f.admin), f.n.Email); err != nil {
		t.Fatal(err)
	}
	if n := f.tokenCount(t, f.n); n != 0 {
		t.Errorf("%d tokens left after deactivation", n)
	}
	f.wantBadToken(t, nSecret, "deactivated user")
	f.bearer(t, oSecret) // others' tokens stay
	_, _, err := f.s.CreateToken(ctx, as(f.n), "", tokIn("again", "", "read"))
	wantCode(t, err, keyledger.EFORBIDDEN)
	_, _, err = f.s.CreateToken(ctx, as(f.admin), f.n.Email, tokIn("for n", "", "read"))
	wantCode(t, err, keyledger.ECONFLICT)
	if _, err := f.s.ReactivateUser(ctx, as(f.admin), f.n.ID); err != nil {
		t.Fatal(err)
	}
	f.wantBadToken(t, nSecret, "reactivated user's old token")

	// Frozen by an offboarding: the tokens go with the sessions.
	mSecret, _ := f.mint(t, as(f.m), "", tokIn("ci", "", "read"))
	f.mint(t, as(f.m), "", tokIn("laptop", "", "reveal"))
	f.bearer(t, mSecret)
	if _, err := f.s.StartOffboarding(ctx, as(f.lead), f.m.Email, true, ""); err != nil {
		t.Fatal(err)
	}
	if n := f.tokenCount(t, f.m); n != 0 {
		t.Errorf("%d tokens left after freezing", n)
	}
	f.wantBadToken(t, mSecret, "frozen user")
	_, _, err = f.s.CreateToken(ctx, as(f.m), "", tokIn("sneaky", "", "read"))
	wantCode(t, err, keyledger.EFORBIDDEN)
	_, _, err = f.s.CreateToken(ctx, as(f.admin), f.m.Email, tokIn("for m", "", "read"))
	wantCode(t, err, keyledger.ECONFLICT)
	if n := f.tokenCount(t, f.m); n != 0 {
		t.Errorf("%d tokens minted for a frozen user", n)
	}

	// A token that somehow outlived its user's account is still refused.
	oTok := f.bearer(t, oSecret).Token
	f.asSuperuser(t, "UPDATE users SET status = 'deactivated' WHERE id = $1", f.o.ID)
	if n := f.count(t, "SELECT count(*) FROM api_tokens WHERE id = $1", oTok.ID); n != 1 {
		t.Fatal("the token is gone; the test needs it to outlive the account")
	}
	// A change behind keyledger's back is seen once the cached answer
	// expires; a change through the store (above) is seen at once.
	f.clock.Advance(store.TokenCacheTTL)
	f.wantBadToken(t, oSecret, "token of a deactivated account")
}

// TestTokenCache: a token answer is reused for a moment, but reveals and
// exports check the token and user in their own query, so a token revoked
// behind this replica's back (another replica, psql) cannot reveal even
// while its cached answer lasts.
func TestTokenCache(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	k, value := f.govKey(t, f.m, "cache-test", "development")
	secret, tok := f.mint(t, as(f.m), "", tokIn("ci", "", "read", "reveal"))
	a := f.bearer(t, secret)
	if r, err := f.s.Reveal(ctx, a, k.ID, ""); err != nil || r.Value != value {
		t.Fatalf("reveal with a live token: %v", err)
	}

	// Revoked elsewhere: this replica's cache still knows the token...
	if n := f.asSuperuser(t, "DELETE FROM api_tokens WHERE id = $1", tok.ID); n != 1 {
		t.Fatalf("deleted %d tokens", n)
	}
	cached := f.bearer(t, secret)
	// ...but a reveal and an export with it are refused, and audited as nothing.
	before := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1", keyledger.ActionKeyReveal)
	if r, err := f.s.Reveal(ctx, cached, k.ID, ""); err != store.ErrBadToken || r.Value != "" {
		t.Fatalf("reveal with a revoked token: %v (value given %v)", err, r.Value != "")
	}
	if _, err := f.s.ExportKeys(ctx, cached, "development", "", "", keyledger.FormatBash); err != store.ErrBadToken {
		t.Fatalf("export with a revoked token: %v", err)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1", keyledger.ActionKeyReveal); n != before {
		t.Fatalf("%d reveal events for refused reveals", n-before)
	}
	f.clock.Advance(store.TokenCacheTTL)
	f.wantBadToken(t, secret, "revoked token after the cache TTL")

	// Revoked through the store: refused at once, no TTL.
	secret2, tok2 := f.mint(t, as(f.m), "", tokIn("laptop", "", "read"))
	f.bearer(t, secret2)
	if err := f.s.RevokeToken(ctx, as(f.m), tok2.ID); err != nil {
		t.Fatal(err)
	}
	f.wantBadToken(t, secret2, "token revoked through the store")

	// Demoted through the store: the cached role is dropped at once.
	secret3, _ := f.mint(t, as(f.lead), "", tokIn("lead", "", "read"))
	if a := f.bearer(t, secret3); a.User.Role != keyledger.RoleLead {
		t.Fatalf("role %s", a.User.Role)
	}
	if _, err := f.s.SetRole(ctx, as(f.admin), f.lead.ID, keyledger.RoleMember); err != nil {
		t.Fatal(err)
	}
	if a := f.bearer(t, secret3); a.User.Role != keyledger.RoleMember {
		t.Fatalf("cached role %s after a demotion", a.User.Role)
	}
}

func TestTokenLastUse(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	secret, tok := f.mint(t, as(f.m), "", tokIn("ci", "", "read"))
	lastUse := func() (*time.Time, string) {
		t.Helper()
		var at *time.Time
		var ip string
		if err := f.pool.QueryRow(ctx, "SELECT last_used_at, last_used_ip FROM api_tokens WHERE id = $1", tok.ID).Scan(&at, &ip); err != nil {
			t.Fatal(err)
		}
		return at, ip
	}
	if at, ip := lastUse(); at != nil || ip != "" {
		t.Fatalf("a new token was used at %v from %q", at, ip)
	}

	t0 := f.clock.Now()
	a := f.bearer(t, secret)
	if at, ip := lastUse(); at == nil || !at.Equal(t0) || ip != tokenIP {
		t.Errorf("after first use: last used %v from %q, want %v from %s", at, ip, t0, tokenIP)
	}
	if a.Token.LastUsedAt == nil || !a.Token.LastUsedAt.Equal(t0) {
		t.Errorf("actor's token last used %v", a.Token.LastUsedAt)
	}
	ev := f.tokenEvents(t, keyledger.ActionTokenUse, tok.ID)
	if len(ev) != 1 || ev[0]["via_token"] != float64(tok.ID) || ev[0]["name"] != "ci" {
		t.Fatalf("first-use events %v", ev)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND actor_id = $2 AND ip = $3", keyledger.ActionTokenUse, f.m.ID, tokenIP); n != 1 {
		t.Errorf("%d first-use events by m from %s", n, tokenIP)
	}

	// Within a minute from the same address: not written again.
	f.clock.Advance(30 * time.Second)
	f.bearer(t, secret)
	if at, _ := lastUse(); !at.Equal(t0) {
		t.Errorf("last use rewritten within the minute: %v", at)
	}
	// From another address: written at once.
	other, err := f.s.TokenActor(ctx, secret, "198.51.100.77", "curl/8")
	if err != nil {
		t.Fatal(err)
	}
	if at, ip := lastUse(); !at.Equal(t0.Add(30*time.Second)) || ip != "198.51.100.77" || other.Token.LastUsedIP != "198.51.100.77" {
		t.Errorf("after use from another address: %v from %q", at, ip)
	}
	// After a minute: written again.
	f.clock.Advance(61 * time.Second)
	f.bearer(t, secret)
	if at, ip := lastUse(); !at.Equal(t0.Add(91*time.Second)) || ip != tokenIP {
		t.Errorf("after a minute: %v from %q", at, ip)
	}
	if n := len(f.tokenEvents(t, keyledger.ActionTokenUse, tok.ID)); n != 1 {
		t.Errorf("%d first-use events after four uses, want 1", n)
	}
	list, err := f.s.ListTokens(ctx, as(f.m), f.m.ID)
	if err != nil || len(list) != 1 || list[0].LastUsedAt == nil || !list[0].LastUsedAt.Equal(t0.Add(91*time.Second)) || list[0].LastUsedIP != tokenIP {
		t.Errorf("ListTokens = %+v, %v", list, err)
	}
}

// TestTokenFirstUseConcurrent: a token's first use is audited once even
// when its first requests arrive together (a CLI fanning out).
func TestTokenFirstUseConcurrent(t *testing.T) {
	t.Parallel()
	// Known bug: TokenActor decides "first use" from a read made outside
	// its transaction, so concurrent first requests each audit one (5 of
	// 8 in a run). Remove this skip when the update is made conditional
	// (e.g. UPDATE ... WHERE last_used_at IS NULL, audit iff a row).

	f := newGovFixture(t)
	secret, tok := f.mint(t, as(f.m), "", tokIn("ci", "", "read"))
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			if _, err := f.s.TokenActor(context.Background(), secret, tokenIP, "keyledger-cli/1.0"); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent TokenActor: %v", err)
	}
	if n := len(f.tokenEvents(t, keyledger.ActionTokenUse, tok.ID)); n != 1 {
		t.Errorf("%d first-use events for 8 concurrent first requests, want 1", n)
	}
}

func TestTokenMintForOthers(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()

	secret, tok := f.mint(t, as(f.admin), f.n.Email, tokIn("n's deploy", "7d", "reveal"))
	if tok.UserID != f.n.ID || tok.UserEmail != f.n.Email {
		t.Errorf("admin's token for n belongs to %d %s", tok.UserID, tok.UserEmail)
	}
	if a := f.bearer(t, secret); a.User.ID != f.n.ID {
		t.Errorf("the token acts as %s, want n", a.User.Email)
	}
	if n := f.count(t, "SELECT count(*) FROM api_tokens WHERE id = $1 AND created_by = $2", tok.ID, f.admin.ID); n != 1 {
		t.Error("created_by is not the admin")
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND actor_id = $2 AND subject_id = $3", keyledger.ActionTokenCreate, f.admin.ID, f.n.ID); n != 1 {
		t.Error("no token.create event by the admin about n")
	}

	// Members and leads mint only their own (the email may be spelled
	// differently).
	before := f.count(t, "SELECT count(*) FROM api_tokens")
	for _, who := range []*keyledger.User{f.m, f.lead} {
		_, _, err := f.s.CreateToken(ctx, as(who), f.n.Email, tokIn("for n", "", "read"))
		wantCode(t, err, keyledger.EFORBIDDEN)
		_, _, err = f.s.CreateToken(ctx, as(who), f.admin.Email, tokIn("for admin", "", "read"))
		wantCode(t, err, keyledger.EFORBIDDEN)
	}
	if after := f.count(t, "SELECT count(*) FROM api_tokens"); after != before {
		t.Errorf("%d tokens minted by refused requests", after-before)
	}
	if _, own := f.mint(t, as(f.m), " M@Example.COM ", tokIn("own", "", "read")); own.UserID != f.m.ID {
		t.Errorf("m's token for their own email belongs to %d", own.UserID)
	}

	_, _, err := f.s.CreateToken(ctx, as(f.admin), "nobody@example.com", tokIn("ghost", "", "read"))
	wantField(t, err, keyledger.EINVALID, "email")

	// The command line (no user) mints for anyone, recorded as such.
	_, cli := f.mint(t, keyledger.SystemActor("cli"), f.o.Email, tokIn("bootstrap", "", "read"))
	if cli.UserID != f.o.ID {
		t.Errorf("CLI token for o belongs to %d", cli.UserID)
	}
	if n := f.count(t, "SELECT count(*) FROM api_tokens WHERE id = $1 AND created_by IS NULL", cli.ID); n != 1 {
		t.Error("a CLI token names a creator")
	}
}

func TestTokensCannotMintTokens(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	secret, _ := f.mint(t, as(f.admin), "", tokIn("all", "", "read", "reveal", "write"))
	a := f.bearer(t, secret)
	before := f.count(t, "SELECT count(*) FROM api_tokens")
	for _, forEmail := range []string{"", f.admin.Email, f.m.Email} {
		_, _, err := f.s.CreateToken(ctx, a, forEmail, tokIn("child", "", "read"))
		wantCode(t, err, keyledger.EFORBIDDEN)
	}
	if after := f.count(t, "SELECT count(*) FROM api_tokens"); after != before {
		t.Errorf("a token minted %d tokens", after-before)
	}
}

func TestListTokens(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	_, first := f.mint(t, as(f.m), "", tokIn("first", "", "read"))
	f.clock.Advance(time.Minute)
	_, second := f.mint(t, as(f.m), "", tokIn("second", "", "write"))
	_, nTok := f.mint(t, as(f.n), "", tokIn("n's", "", "read"))

	list, err := f.s.ListTokens(ctx, as(f.m), f.m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ID != second.ID || list[1].ID != first.ID {
		t.Fatalf("m's tokens %+v, want second then first", list)
	}
	for _, tk := range list {
		if tk.UserID != f.m.ID || tk.UserEmail != f.m.Email || !strings.HasPrefix(tk.Hint, keyledger.TokenPrefix) || len(tk.Hint) != len(keyledger.TokenPrefix)+4 {
			t.Errorf("listed token %+v", tk)
		}
	}
	// Others' tokens: not found, unless admin.
	for _, who := range []*keyledger.User{f.m, f.lead, f.o} {
		_, err := f.s.ListTokens(ctx, as(who), f.n.ID)
		wantCode(t, err, keyledger.ENOTFOUND)
	}
	_, err = f.s.ListTokens(ctx, keyledger.Actor{}, f.n.ID)
	wantCode(t, err, keyledger.ENOTFOUND)
	if got, err := f.s.ListTokens(ctx, as(f.admin), f.n.ID); err != nil || len(got) != 1 || got[0].ID != nTok.ID {
		t.Errorf("admin listing n's tokens = %+v, %v", got, err)
	}
	if got, err := f.s.ListTokens(ctx, as(f.o), f.o.ID); err != nil || len(got) != 0 {
		t.Errorf("o's (no) tokens = %+v, %v", got, err)
	}
}

func TestRevokeToken(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	mSecret, mTok := f.mint(t, as(f.m), "", tokIn("m's", "", "read"))
	nSecret, nTok := f.mint(t, as(f.n), "", tokIn("n's", "", "read"))

	if err := f.s.RevokeToken(ctx, as(f.m), mTok.ID); err != nil {
		t.Fatal(err)
	}
	f.wantBadToken(t, mSecret, "revoked")
	ev := f.tokenEvents(t, keyledger.ActionTokenRevoke, mTok.ID)
	if len(ev) != 1 || ev[0]["name"] != "m's" {
		t.Errorf("token.revoke events %v", ev)
	}
	wantCode(t, f.s.RevokeToken(ctx, as(f.m), mTok.ID), keyledger.ENOTFOUND)

	// Someone else's: not found for members and leads, and untouched.
	for _, who := range []*keyledger.User{f.m, f.lead} {
		wantCode(t, f.s.RevokeToken(ctx, as(who), nTok.ID), keyledger.ENOTFOUND)
	}
	f.bearer(t, nSecret)
	wantCode(t, f.s.RevokeToken(ctx, as(f.admin), 999999999), keyledger.ENOTFOUND)
	if len(f.tokenEvents(t, keyledger.ActionTokenRevoke, nTok.ID)) != 0 {
		t.Error("a refused revoke was audited")
	}
	// Admins may revoke anyone's.
	if err := f.s.RevokeToken(ctx, as(f.admin), nTok.ID); err != nil {
		t.Fatal(err)
	}
	f.wantBadToken(t, nSecret, "revoked by an admin")
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND actor_id = $2 AND subject_id = $3", keyledger.ActionTokenRevoke, f.admin.ID, f.n.ID); n != 1 {
		t.Error("no token.revoke event by the admin about n")
	}
}

func TestTokenScopes(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	k, value := f.govKey(t, f.m, "scoped", "development")
	readSecret, _ := f.mint(t, as(f.m), "", tokIn("reader", "", "read"))
	reader := f.bearer(t, readSecret)

	wantScope := func(err error, scope string) {
		t.Helper()
		e := wantCodeError(t, err, keyledger.EFORBIDDEN)
		if !strings.Contains(e.Message, `"`+scope+`"`) {
			t.Errorf("refusal %q does not name the %s scope", e.Message, scope)
		}
	}
	before := f.tableCounts(t)
	_, err := f.s.Reveal(ctx, reader, k.ID, "ci")
	wantScope(err, keyledger.ScopeReveal)
	_, err = f.s.RevealVersion(ctx, reader, k.ID, 1, "ci")
	wantScope(err, keyledger.ScopeReveal)
	_, err = f.s.ExportKeys(ctx, reader, "development", "", "ci", keyledger.FormatBash)
	wantScope(err, keyledger.ScopeReveal)
	_, err = f.s.RotateKey(ctx, reader, k.ID, keyledger.RotateInput{Value: secretValue(t, "sk-proj-")})
	wantScope(err, keyledger.ScopeWrite)
	_, err = f.s.CreateKey(ctx, reader, keyledger.KeyInput{Name: "new", Project: "gov", Environment: "development", OwnerEmail: f.m.Email, Value: secretValue(t, "sk-proj-")})
	wantScope(err, keyledger.ScopeWrite)
	_, err = f.s.UpdateKey(ctx, reader, k.ID, keyledger.KeyInput{Project: "moved", OwnerEmail: f.m.Email})
	wantScope(err, keyledger.ScopeWrite)
	wantScope(f.s.ArchiveKey(ctx, reader, k.ID), keyledger.ScopeWrite)
	_, err = f.s.VerifyKey(ctx, reader, k.ID, newFakeVerifier())
	wantScope(err, keyledger.ScopeWrite)
	if after := f.tableCounts(t); !reflect.DeepEqual(after, before) {
		t.Errorf("refused token calls changed rows: %v -> %v", before, after)
	}
	if got, err := f.s.GetKey(ctx, reader, k.ID); err != nil || got.CurrentVersion != 1 || got.Archived() || got.Project != "gov" {
		t.Errorf("key after refused calls = %+v, %v", got, err)
	}

	// Each scope opens its own door only.
	revealSecret, _ := f.mint(t, as(f.m), "", tokIn("revealer", "", "reveal"))
	revealer := f.bearer(t, revealSecret)
	if r, err := f.s.Reveal(ctx, revealer, k.ID, "ci"); err != nil || r.Value != value {
		t.Errorf("reveal token: %v", err)
	}
	_, err = f.s.RotateKey(ctx, revealer, k.ID, keyledger.RotateInput{Value: secretValue(t, "sk-proj-")})
	wantScope(err, keyledger.ScopeWrite)
	writeSecret, writeTok := f.mint(t, as(f.m), "", tokIn("writer", "", "write"))
	writer := f.bearer(t, writeSecret)
	if _, err := f.s.RotateKey(ctx, writer, k.ID, keyledger.RotateInput{Value: secretValue(t, "sk-proj-")}); err != nil {
		t.Errorf("write token rotate: %v", err)
	}
	_, err = f.s.Reveal(ctx, writer, k.ID, "ci")
	wantScope(err, keyledger.ScopeReveal)
	rot := f.events(t, keyledger.ActionKeyRotate, k.ID)
	if len(rot) != 1 || rot[0].Details["via_token"] != float64(writeTok.ID) {
		t.Errorf("rotate events %+v, want one via the write token", rot)
	}
	// Scopes do not widen the role: a write token cannot edit another's key.
	oKey, _ := f.govKey(t, f.o, "o's", "development")
	_, err = f.s.RotateKey(ctx, writer, oKey.ID, keyledger.RotateInput{Value: secretValue(t, "sk-proj-")})
	wantCode(t, err, keyledger.EFORBIDDEN)
}

// TestTokenRollbackNeedsWriteScope: rolling back changes a key's current
// value, like a rotation.
func TestTokenRollbackNeedsWriteScope(t *testing.T) {
	t.Parallel()
	// Known bug: RollbackKey has no keyledger.CheckScope (RotateKey has);
	// nor do UpdateEnvironment, ReassignKeys, DeactivateUser or
	// RevokeToken, so only the API's route list keeps a read-only token
	// from them. Remove this skip when RollbackKey checks ScopeWrite.

	f := newGovFixture(t)
	k, _ := f.govKey(t, f.m, "rolled", "development")
	f.rotate(t, f.m, k.ID)
	secret, _ := f.mint(t, as(f.m), "", tokIn("reader", "", "read"))
	_, err := f.s.RollbackKey(context.Background(), f.bearer(t, secret), k.ID, 1, 0)
	wantCode(t, err, keyledger.EFORBIDDEN)
	if got, _ := f.s.GetKey(context.Background(), as(f.m), k.ID); got.CurrentVersion != 2 {
		t.Errorf("a read-only token rolled the key back to version %d", got.CurrentVersion)
	}
}

func TestTokenRevealSensitive(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	prodInput := func(allow bool) keyledger.EnvironmentInput {
		return keyledger.EnvironmentInput{Name: "production", RevealPolicy: string(keyledger.RevealOwnerLeadsAdmins), ReasonRequired: true,
			Sensitive: true, RotationDays: "90", AllowTokenReveal: allow}
	}
	prod, err := f.s.Environment(ctx, "production")
	if err != nil || !prod.Sensitive || prod.AllowTokenReveal {
		t.Fatalf("seeded production %+v, %v: want sensitive without token reveals", prod, err)
	}
	// The switch is off everywhere by default: it only matters for
	// sensitive environments, and marking one sensitive must not leave
	// token reveals on by accident. Development still reveals to tokens
	// (below) because it is not sensitive.
	if dev, _ := f.s.Environment(ctx, "development"); dev.AllowTokenReveal {
		t.Error("seeded development has the token-reveal switch on")
	}
	k, value := f.govKey(t, f.m, "prod", "production")
	dk, _ := f.govKey(t, f.m, "dev", "development")
	secret, tok := f.mint(t, as(f.m), "", tokIn("deploy", "", "read", "reveal"))
	a := f.bearer(t, secret)
	noStepUp := keyledger.Actor{User: f.m, IP: tokenIP}

	// Off: refused outright (a token cannot step up), not asked to.
	_, err = f.s.Reveal(ctx, a, k.ID, "deploy")
	if e := wantCodeError(t, err, keyledger.EFORBIDDEN); !strings.Contains(e.Message, "access token") {
		t.Errorf("refusal %q does not say tokens are not allowed", e.Message)
	}
	_, err = f.s.ExportKeys(ctx, a, "production", "", "deploy", keyledger.FormatDotenv)
	wantCode(t, err, keyledger.EFORBIDDEN)
	_, err = f.s.Reveal(ctx, noStepUp, k.ID, "deploy")
	wantCode(t, err, keyledger.ESTEPUP)
	if n := f.actionCount(t, keyledger.ActionKeyReveal, k.ID) + f.actionCount(t, keyledger.ActionKeyExport, k.ID); n != 0 {
		t.Errorf("%d reveal or export events after refusals", n)
	}
	// Elsewhere the token reveals without any step-up.
	if _, err := f.s.Reveal(ctx, a, dk.ID, ""); err != nil {
		t.Errorf("token reveal in development: %v", err)
	}

	// A member cannot turn the switch on.
	_, err = f.s.UpdateEnvironment(ctx, as(f.m), "production", prodInput(true))
	wantCode(t, err, keyledger.EFORBIDDEN)
	env, err := f.s.UpdateEnvironment(ctx, as(f.admin), "production", prodInput(true))
	if err != nil || !env.AllowTokenReveal {
		t.Fatalf("UpdateEnvironment = %+v, %v", env, err)
	}
	if prod, _ := f.s.Environment(ctx, "production"); !prod.AllowTokenReveal || !prod.Sensitive {
		t.Errorf("production after the switch: %+v", prod)
	}
	var upd string
	if err := f.pool.QueryRow(ctx, "SELECT details::text FROM audit_events WHERE action = $1 ORDER BY id DESC LIMIT 1", keyledger.ActionEnvUpdate).Scan(&upd); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(upd, `"allow_token_reveal": true`) && !strings.Contains(upd, `"allow_token_reveal":true`) {
		t.Errorf("env.update details %s do not record the switch", upd)
	}

	// On: the same token (no step-up at all) reveals and exports.
	r, err := f.s.Reveal(ctx, a, k.ID, "deploy")
	if err != nil || r.Value != value {
		t.Fatalf("token reveal in production with the switch on: %v", err)
	}
	exp, err := f.s.ExportKeys(ctx, a, "production", "gov", "deploy", keyledger.FormatDotenv)
	if err != nil || len(exp.Entries) != 1 || exp.Entries[0].Value != value {
		t.Errorf("token export in production with the switch on: %+v, %v", exp.Entries, err)
	}
	// The rest of the policy still holds: a reason, and who may reveal.
	_, err = f.s.Reveal(ctx, a, k.ID, "")
	wantCode(t, err, keyledger.EINVALID)
	nSecret, _ := f.mint(t, as(f.n), "", tokIn("n deploy", "", "reveal"))
	_, err = f.s.Reveal(ctx, f.bearer(t, nSecret), k.ID, "deploy")
	wantCode(t, err, keyledger.EFORBIDDEN)
	// The switch is for tokens: a browser session still steps up.
	_, err = f.s.Reveal(ctx, noStepUp, k.ID, "deploy")
	wantCode(t, err, keyledger.ESTEPUP)

	// What a token did is audited with the token's id (never the token);
	// what a browser did is not.
	reveals := f.events(t, keyledger.ActionKeyReveal, k.ID)
	if len(reveals) != 1 || reveals[0].Details["via_token"] != float64(tok.ID) || reveals[0].Actor != f.m.Email || reveals[0].Reason != "deploy" {
		t.Errorf("production reveal events %+v", reveals)
	}
	exports := f.events(t, keyledger.ActionKeyExport, k.ID)
	if len(exports) != 1 || exports[0].Details["via_token"] != float64(tok.ID) {
		t.Errorf("production export events %+v", exports)
	}
	f.reveal(t, f.m, dk.ID)
	dev := f.events(t, keyledger.ActionKeyReveal, dk.ID)
	if len(dev) != 2 || dev[0].Details["via_token"] != float64(tok.ID) || dev[1].Details["via_token"] != nil {
		t.Errorf("development reveal events %+v: want the token's then the browser's", dev)
	}
	var all string
	if err := f.pool.QueryRow(ctx, "SELECT string_agg(details::text, ' ') FROM audit_events").Scan(&all); err != nil {
		t.Fatal(err)
	}
	noSecretIn(t, secret, all)

	// Off again: refused again.
	if _, err := f.s.UpdateEnvironment(ctx, as(f.admin), "production", prodInput(false)); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.Reveal(ctx, a, k.ID, "deploy")
	wantCode(t, err, keyledger.EFORBIDDEN)
}

func TestOffboardingRevokesTokens(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	k, _ := f.govKey(t, f.m, "mine", "development")
	id, err := f.s.StartOffboarding(ctx, as(f.lead), f.m.Email, false, "")
	if err != nil {
		t.Fatal(err)
	}
	// Not frozen: m keeps working, with a session and two tokens.
	sid := f.login(t, f.m)
	s1, _ := f.mint(t, as(f.m), "", tokIn("ci", "", "read"))
	s2, _ := f.mint(t, as(f.m), "", tokIn("laptop", "", "reveal"))
	f.bearer(t, s1)

	f.clock.Advance(time.Minute)
	if err := f.s.RevokeAccess(ctx, as(f.lead), id); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.SessionUser(ctx, sid, timeouts); err != store.ErrNoSession {
		t.Errorf("session after RevokeAccess: %v", err)
	}
	f.wantBadToken(t, s1, "after RevokeAccess")
	f.wantBadToken(t, s2, "after RevokeAccess")
	wantResolved(t, mustItem(t, f.checklist(t, id), keyledger.ItemRevoke, ""), keyledger.ItemDone, "1 sessions and 2 tokens revoked", f.lead.Email)

	// A token made after the revoke reopens the item at the next sync
	// (here: m revealing a key).
	f.clock.Advance(time.Minute)
	late, _ := f.mint(t, as(f.m), "", tokIn("after", "", "reveal"))
	f.reveal(t, f.m, k.ID)
	it := mustItem(t, f.checklist(t, id), keyledger.ItemRevoke, "")
	if it.Status != keyledger.ItemOpen || it.Resolution != "" || it.ResolvedAt != nil {
		t.Errorf("revoke item after a new token = %+v, want reopened", it)
	}
	wantCode(t, f.s.CompleteOffboarding(ctx, as(f.lead), id), keyledger.ECONFLICT)
	// Revoking again takes the new token too.
	f.clock.Advance(time.Minute)
	if err := f.s.RevokeAccess(ctx, as(f.lead), id); err != nil {
		t.Fatal(err)
	}
	f.wantBadToken(t, late, "late token after the second RevokeAccess")
	wantResolved(t, mustItem(t, f.checklist(t, id), keyledger.ItemRevoke, ""), keyledger.ItemDone, "0 sessions and 1 tokens revoked", f.lead.Email)
	verifyChained(t, f.s)
}
