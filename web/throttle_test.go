package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/web"
)

// Sign-in throttling through the HTTP stack (docs/security.md, "Sign-in
// throttling"): findings 2 (step-up brute force), 3 (oversized input) and
// 4 (lockout as a weapon).

// webClock is a controllable store clock.
type webClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *webClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *webClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// forwardedFor sends every request as if a trusted proxy had seen it
// come from ip.
type forwardedFor struct {
	ip   string
	next http.RoundTripper
}

func (f forwardedFor) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Forwarded-For", f.ip)
	return f.next.RoundTrip(r)
}

// clientFrom is a fresh browser at address ip (the env must trust
// 127.0.0.1 as its proxy).
func (e *testEnv) clientFrom(t testing.TB, ip string) *client {
	jar, _ := cookiejar.New(nil)
	c := &client{t: t, env: e, http: &http.Client{Jar: jar, Transport: forwardedFor{ip: ip, next: http.DefaultTransport},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	c.get("/login")
	return c
}

func retryAfter(t testing.TB, resp *http.Response) time.Duration {
	t.Helper()
	secs, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || secs <= 0 {
		t.Fatalf("status %d with Retry-After %q, want a number of seconds", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	return time.Duration(secs) * time.Second
}

func auditRows(t testing.TB, c *client, query string) int {
	t.Helper()
	resp, body := c.get("/audit?" + query)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /audit?%s = %d", query, resp.StatusCode)
	}
	return strings.Count(body, `data-testid="audit-row"`)
}

// TestThrottleStepUpBruteForce (finding 2): guessing step-up codes from a
// stolen session is throttled after five failures, each failure and each
// refusal is audited, and the right code is refused while throttled, on
// /step-up and on the step_up field of a reveal alike.
func TestThrottleStepUpBruteForce(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	k := env.createKey("member", "production", "prod-openai", authzSecret())
	secret, recovery := enrollTOTP(t, env.client().login("member"))
	// A second session, signed in with a recovery code so that the
	// authenticator's next code is still unused.
	c := env.client()
	passwordStep(t, c, "member", "")
	if resp, _ := c.post("/login/2fa", url.Values{"code": {recovery[0]}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("second factor = %d", resp.StatusCode)
	}
	expectSignedIn(t, c)
	right := totpCode(t, secret, time.Now().Add(30*time.Second))
	wrong := fmt.Sprintf("%06d", (mustAtoi(t, right)+500000)%1000000)
	hashes := env.Store.PasswordHashes()
	for i := range 5 {
		if resp, _ := c.post("/step-up", url.Values{"secret": {wrong}, "next": {"/profile"}}); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong code %d = %d, want 401", i+1, resp.StatusCode)
		}
	}
	for i := range 10 {
		resp, body := c.post("/step-up", url.Values{"secret": {wrong}, "next": {"/profile"}})
		if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Try again in") {
			t.Fatalf("guess %d after five failures = %d, want 429 with when to come back", i+6, resp.StatusCode)
		}
		retryAfter(t, resp)
	}
	resp, body := c.post("/step-up", url.Values{"secret": {right}, "next": {"/profile"}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Location") != "" {
		t.Fatalf("right code while throttled = %d %q, want 429", resp.StatusCode, resp.Header.Get("Location"))
	}
	if strings.Contains(body, right) {
		t.Error("the code is echoed back")
	}
	c.get("/keys/" + k.ID)
	resp, _ = c.post("/keys/"+k.ID+"/reveal", url.Values{"reason": {"deploy"}, "step_up": {right}})
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("reveal with the right code while throttled = %d, want 429", resp.StatusCode)
	}
	retryAfter(t, resp)
	if got := env.Store.PasswordHashes() - hashes; got != 5 {
		t.Errorf("%d argon2id hashes, want 5 (one per admitted guess)", got)
	}
	admin := env.client().login("admin")
	if n := auditRows(t, admin, "action="+keyledger.ActionReauthFailed); n != 5 {
		t.Errorf("%d failed step-ups in the audit log, want 5", n)
	}
	if n := auditRows(t, admin, "action="+keyledger.ActionSignInThrottle); n != 12 {
		t.Errorf("%d refused step-ups in the audit log, want 12", n)
	}
}

func mustAtoi(t testing.TB, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestThrottleOversizedCredentials (finding 3): an email over 254 bytes
// or a password over 1024 is refused with a reason before any hash,
// counted for the address and audited without the input.
func TestThrottleOversizedCredentials(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := authzActorClient(env, t, actorAnonymous)
	longPassword := strings.Repeat("p", 1025)
	longEmail := strings.Repeat("e", 250) + "@example.com"
	hashes := env.Store.PasswordHashes()
	for _, form := range []url.Values{
		{"email": {"admin@example.com"}, "password": {longPassword}},
		{"email": {longEmail}, "password": {Password}},
	} {
		resp, body := c.post("/login", form)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(secLoginError(body), "too long") {
			t.Errorf("oversized %v: %d %q, want 422 saying it is too long", form.Get("email")[:10], resp.StatusCode, secLoginError(body))
		}
		if strings.Contains(body, longPassword) {
			t.Error("the password is echoed back")
		}
	}
	if got := env.Store.PasswordHashes() - hashes; got != 0 {
		t.Errorf("%d argon2id hashes for oversized input, want none", got)
	}
	var failures int
	if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM login_failures WHERE ip = '127.0.0.1'").Scan(&failures); err != nil || failures != 2 {
		t.Errorf("%d failures counted for the address (%v), want 2", failures, err)
	}
	lead := authzLogin(env, t, "lead")
	if n := auditRows(t, lead, "action="+keyledger.ActionSignInFailed); n != 2 {
		t.Errorf("%d failed sign-ins audited, want 2", n)
	}
}

// TestThrottleOversizedFloodHashesNothing (finding 3): oversized requests
// count like wrong passwords, so a flood of them is throttled, and neither
// it nor a flood of wrong passwords past the limit starts a hash.
func TestThrottleOversizedFloodHashesNothing(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := authzActorClient(env, t, actorAnonymous)
	hashes := env.Store.PasswordHashes()
	for i := range 5 {
		if resp, _ := c.post("/login", url.Values{"email": {"member@example.com"}, "password": {strings.Repeat("x", 60000)}}); resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("oversized %d = %d", i+1, resp.StatusCode)
		}
	}
	for range 10 {
		resp, _ := c.post("/login", url.Values{"email": {"member@example.com"}, "password": {"a normal wrong password"}})
		if resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("after five oversized attempts = %d, want 429", resp.StatusCode)
		}
		retryAfter(t, resp)
	}
	if got := env.Store.PasswordHashes() - hashes; got != 0 {
		t.Errorf("%d argon2id hashes, want none", got)
	}
}

type webNotifier struct {
	mu    sync.Mutex
	notes []keyledger.Notification
}

func (w *webNotifier) Notify(_ context.Context, n keyledger.Notification) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.notes = append(w.notes, n)
	return nil
}

// TestThrottleAttackerCannotLockAdmin (finding 4): five bad passwords
// from an attacker's address shut that address out for the account, not
// the account: the admin signs in from another address once the short
// delay has passed, and at once from an address they used before. The
// admins hear of the attack exactly once.
func TestThrottleAttackerCannotLockAdmin(t *testing.T) {
	t.Parallel()
	clk := &webClock{t: time.Now().UTC().Truncate(time.Microsecond)}
	env := newEnvWithStore(t, store.Options{Now: clk.Now}, withTrustedProxies(t, "127.0.0.1/32"))
	// The admin signed in from the office yesterday.
	env.clientFrom(t, "198.51.100.10").login("admin")
	clk.Advance(24 * time.Hour)

	attacker := env.clientFrom(t, "203.0.113.66")
	for i := range 5 {
		resp, _ := attacker.post("/login", url.Values{"email": {"admin@example.com"}, "password": {fmt.Sprintf("guess number %d", i)}})
		if resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("guess %d = %d", i+1, resp.StatusCode)
		}
	}
	resp, body := attacker.post("/login", url.Values{"email": {"admin@example.com"}, "password": {Password}})
	if resp.StatusCode != http.StatusTooManyRequests || secSessionCookie(attacker) != "" {
		t.Fatalf("attacker with the right password = %d, want 429", resp.StatusCode)
	}
	if wait := retryAfter(t, resp); wait < 14*time.Minute || wait > 15*time.Minute {
		t.Errorf("attacker's Retry-After %v, want about 15 minutes", wait)
	}
	if msg := secLoginError(body); !strings.Contains(msg, "Try again in 15 minutes") {
		t.Errorf("attacker's message %q", msg)
	}

	// The admin, travelling: a short delay with a time to come back.
	travel := env.clientFrom(t, "192.0.2.44")
	resp, body = travel.post("/login", url.Values{"email": {"admin@example.com"}, "password": {Password}})
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("admin from a new address = %d, want 429 for a short delay", resp.StatusCode)
	}
	wait := retryAfter(t, resp)
	if wait > 15*time.Second || !strings.Contains(secLoginError(body), fmt.Sprintf("Try again in %d seconds", wait/time.Second)) {
		t.Errorf("admin told to wait %v: %q", wait, secLoginError(body))
	}
	clk.Advance(wait)
	if resp, _ := travel.post("/login", url.Values{"email": {"admin@example.com"}, "password": {Password}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("admin after the delay = %d, want 303", resp.StatusCode)
	}
	expectSignedIn(t, travel)

	// The attack goes on from many addresses; the office is not held up.
	for i := range 10 {
		clk.Advance(15 * time.Minute)
		bot := env.clientFrom(t, fmt.Sprintf("203.0.113.%d", 100+i))
		bot.post("/login", url.Values{"email": {"admin@example.com"}, "password": {"botnet guess"}})
	}
	office := env.clientFrom(t, "198.51.100.10")
	if resp, _ := office.post("/login", url.Values{"email": {"admin@example.com"}, "password": {Password}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("admin from the office during the attack = %d, want 303", resp.StatusCode)
	}
	n := &webNotifier{}
	for range 3 {
		if _, err := env.Store.SendAccountAlerts(context.Background(), n, web.NewLinks(env.HTTP.URL)); err != nil {
			t.Fatal(err)
		}
	}
	if len(n.notes) != 1 {
		t.Fatalf("%d notifications, want exactly 1", len(n.notes))
	}
	note := n.notes[0]
	if note.Kind != keyledger.AlertAccountAttack || note.Account != "admin@example.com" || strings.Join(note.Recipients, ",") != "admin@example.com" {
		t.Errorf("notification %+v", note)
	}
	if c := auditRows(t, office, "action="+keyledger.ActionAccountAttack); c != 1 {
		t.Errorf("%d alerts audited, want 1", c)
	}
}
