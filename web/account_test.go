package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/pquerna/otp/totp"
)

var (
	totpSecretRe = regexp.MustCompile(`data-testid="totp-secret">([A-Z2-7]+)<`)
	recoveryRe   = regexp.MustCompile(`<code>([A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4})</code>`)
	sessionIDRe  = regexp.MustCompile(`/profile/sessions/([0-9a-f]{64})/revoke`)
)

// totpCode is the code an authenticator app shows for secret at t.
func totpCode(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// enrollTOTP turns two-factor sign-in on through the pages, as a person
// would: read the key off the page, type the current code.
func enrollTOTP(t testing.TB, c *client) (secret string, recovery []string) {
	t.Helper()
	resp, body := c.get("/profile/2fa")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /profile/2fa = %d", resp.StatusCode)
	}
	m := totpSecretRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no secret on the enrollment page:\n%s", body)
	}
	if !strings.Contains(body, `src="data:image/png;base64,`) {
		t.Error("no QR code image on the enrollment page")
	}
	resp, body = c.post("/profile/2fa", url.Values{"code": {totpCode(t, m[1], time.Now())}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-testid="recovery-codes"`) {
		t.Fatalf("confirm enrollment = %d\n%s", resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("recovery codes page Cache-Control %q", cc)
	}
	for _, rc := range recoveryRe.FindAllStringSubmatch(body, -1) {
		recovery = append(recovery, rc[1])
	}
	if len(recovery) != 10 {
		t.Fatalf("got %d recovery codes, want 10", len(recovery))
	}
	return m[1], recovery
}

// passwordStep submits the password form and expects to be sent to the
// second step; the client then holds a pending session.
func passwordStep(t testing.TB, c *client, who, next string) {
	t.Helper()
	c.get("/login")
	form := url.Values{"email": {who + "@example.com"}, "password": {Password}}
	if next != "" {
		form.Set("next", next)
	}
	resp, body := c.post("/login", form)
	want := "/login/2fa"
	if next != "" {
		want += "?next=" + url.QueryEscape(next)
	}
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != want {
		t.Fatalf("password step: %d %q, want 303 to %q\n%s", resp.StatusCode, resp.Header.Get("Location"), want, body)
	}
	if resp, body := c.get(want); resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="code"`) {
		t.Fatalf("GET %s = %d", want, resp.StatusCode)
	}
}

func expectSignedOut(t testing.TB, c *client) {
	t.Helper()
	resp, _ := c.get("/keys")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("GET /keys = %d %q, want a redirect to sign in", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func expectSignedIn(t testing.TB, c *client) {
	t.Helper()
	resp, body := c.get("/keys")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-testid="whoami"`) {
		t.Fatalf("GET /keys = %d %q, want the key list", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestTOTPEnrollmentAndSignIn(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := env.client().login("member")

	// Before enrollment the profile says it is off.
	if _, body := c.get("/profile"); !strings.Contains(body, `data-testid="totp-setup"`) {
		t.Error("profile does not offer to set up two-factor sign-in")
	}
	// A wrong code does not turn it on.
	_, body := c.get("/profile/2fa")
	secret := totpSecretRe.FindStringSubmatch(body)[1]
	resp, body := c.post("/profile/2fa", url.Values{"code": {totpCode(t, secret, time.Now().Add(time.Hour))}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="error-code"`) {
		t.Fatalf("wrong enrollment code = %d", resp.StatusCode)
	}
	if u, _ := env.Store.UserByID(context.Background(), keyledger.SystemActor("test"), env.Users["member"].ID); u.TOTPEnabled {
		t.Fatal("a wrong code turned two-factor sign-in on")
	}
	// The secret shown before still holds after a wrong code.
	resp, body = c.post("/profile/2fa", url.Values{"code": {totpCode(t, secret, time.Now())}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-testid="recovery-codes"`) {
		t.Fatalf("confirm after a wrong code = %d", resp.StatusCode)
	}
	var recovery []string
	for _, rc := range recoveryRe.FindAllStringSubmatch(body, -1) {
		recovery = append(recovery, rc[1])
	}
	if len(recovery) != 10 {
		t.Fatalf("%d recovery codes", len(recovery))
	}
	// Shown once: the page now shows the status, not the codes.
	if _, body := c.get("/profile/2fa"); strings.Contains(body, recovery[0]) || !strings.Contains(body, `data-testid="totp-disable"`) {
		t.Error("two-factor page after enrollment shows codes again or no disable form")
	}
	c.post("/logout", nil)

	// Sign-in now asks for the code; the pending session reaches nothing.
	c2 := env.client()
	passwordStep(t, c2, "member", "/profile")
	if resp, _ := c2.get("/keys"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login/2fa" {
		t.Fatalf("pending session GET /keys = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	c2.get("/login/2fa?next=%2Fprofile")
	resp, body = c2.post("/login/2fa", url.Values{"code": {totpCode(t, secret, time.Now().Add(time.Hour))}, "next": {"/profile"}})
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `data-testid="error-code"`) {
		t.Fatalf("wrong code = %d", resp.StatusCode)
	}
	// The next step's code (the current one was spent on enrollment).
	code := totpCode(t, secret, time.Now().Add(30*time.Second))
	resp, _ = c2.post("/login/2fa", url.Values{"code": {code}, "next": {"/profile"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/profile" {
		t.Fatalf("right code = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	expectSignedIn(t, c2)

	// A code is good once.
	c3 := env.client()
	passwordStep(t, c3, "member", "")
	if resp, _ := c3.post("/login/2fa", url.Values{"code": {code}}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("reused code = %d, want 401", resp.StatusCode)
	}
	expectSignedOut(t, c3)

	// A recovery code works, once.
	resp, _ = c3.post("/login/2fa", url.Values{"code": {strings.ToLower(recovery[3])}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/keys" {
		t.Fatalf("recovery code = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	expectSignedIn(t, c3)
	c4 := env.client()
	passwordStep(t, c4, "member", "")
	if resp, _ := c4.post("/login/2fa", url.Values{"code": {recovery[3]}}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("reused recovery code = %d, want 401", resp.StatusCode)
	}
	expectSignedOut(t, c4)

	// Turning it off needs the password.
	resp, body = c2.post("/profile/2fa/disable", url.Values{"password": {"not the password"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="error-password"`) {
		t.Fatalf("disable with a wrong password = %d", resp.StatusCode)
	}
	resp, _ = c2.post("/profile/2fa/disable", url.Values{"password": {Password}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("disable = %d", resp.StatusCode)
	}
	if u, _ := env.Store.UserByID(context.Background(), keyledger.SystemActor("test"), env.Users["member"].ID); u.TOTPEnabled {
		t.Fatal("two-factor sign-in still on")
	}
	env.client().login("member")
}

func TestTOTPThrottle(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	enrollTOTP(t, env.client().login("lead"))
	c := env.client()
	passwordStep(t, c, "lead", "")
	for i := range 5 {
		if resp, _ := c.post("/login/2fa", url.Values{"code": {"12345678"}}); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong code %d = %d, want 401", i+1, resp.StatusCode)
		}
	}
	resp, body := c.post("/login/2fa", url.Values{"code": {"12345678"}})
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(body, "Too many") {
		t.Fatalf("after five failures = %d, want 429", resp.StatusCode)
	}
}

func TestTOTPPageWithoutPendingSession(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := env.client()
	if resp, _ := c.get("/login/2fa"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("anonymous GET /login/2fa = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	c.login("member")
	if resp, _ := c.get("/login/2fa?next=%2Fprofile"); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/profile" {
		t.Fatalf("signed-in GET /login/2fa = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// A user without two-factor sign-in goes straight in.
	c2 := env.client()
	c2.get("/login")
	resp, _ := c2.post("/login", url.Values{"email": {"lead@example.com"}, "password": {Password}, "next": {"//evil.example"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/keys" {
		t.Fatalf("login = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestRolePolicyForcesEnrollment(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	member := env.client().login("member")
	admin := env.client().login("admin")
	admin.get("/admin/users")
	resp, _ := admin.post("/admin/roles", url.Values{"require_totp": {"member"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /admin/roles = %d", resp.StatusCode)
	}
	if pol, _ := env.Store.RolePolicies(context.Background(), keyledger.SystemActor("test")); !pol[keyledger.RoleMember] || pol[keyledger.RoleAdmin] || pol[keyledger.RoleLead] {
		t.Fatalf("policies %v", pol)
	}
	if _, body := admin.get("/admin/users"); !strings.Contains(body, `name="require_totp" value="member" checked`) {
		t.Error("the policy form does not show member as required")
	}

	// The live session of a member is sent to set it up, and can do
	// nothing else.
	resp, _ = member.get("/keys")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/profile/2fa" {
		t.Fatalf("member GET /keys = %d %q, want /profile/2fa", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body := member.get("/profile/2fa")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-testid="totp-required"`) {
		t.Fatalf("enrollment page = %d, no notice", resp.StatusCode)
	}
	if resp, _ := member.post("/keys", url.Values{"name": {"x"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST /keys before enrolling = %d, want 403", resp.StatusCode)
	}
	// Leads are not affected.
	expectSignedIn(t, env.client().login("lead"))

	enrollTOTP(t, member)
	expectSignedIn(t, member)

	// Unchecking every box lifts the requirement.
	admin.get("/admin/users")
	if resp, _ := admin.post("/admin/roles", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("clear policies = %d", resp.StatusCode)
	}
	if pol, _ := env.Store.RolePolicies(context.Background(), keyledger.SystemActor("test")); pol[keyledger.RoleMember] {
		t.Fatal("member policy still on")
	}
	expectSignedIn(t, env.client().login("member2"))
}

func TestStepUpForSensitiveReveal(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	secret := authzSecret()
	k := env.createKey("member", "production", "prod-openai", secret)
	devSecret := authzSecret()
	dev := env.createKey("member", "development", "dev-openai", devSecret)
	c := env.client().login("member")
	ctx := context.Background()
	reveal := func(form url.Values) (*http.Response, string) {
		t.Helper()
		c.get("/keys/" + k.ID)
		form.Set("reason", "deploy")
		return c.post("/keys/"+k.ID+"/reveal", form)
	}

	// A fresh sign-in counts as having just entered the password.
	if _, body := c.get("/keys/" + k.ID); strings.Contains(body, `name="step_up"`) {
		t.Error("fresh session is asked to step up")
	}
	if resp, body := reveal(url.Values{}); resp.StatusCode != http.StatusOK || !strings.Contains(body, secret) {
		t.Fatalf("fresh reveal = %d", resp.StatusCode)
	}

	age := func() {
		if _, err := env.Pool.Exec(ctx, "UPDATE sessions SET step_up_at = now() - interval '11 minutes'"); err != nil {
			t.Fatal(err)
		}
	}
	age()
	if _, body := c.get("/keys/" + k.ID); !strings.Contains(body, `name="step_up"`) {
		t.Error("the key page does not ask to step up")
	}
	resp, body := reveal(url.Values{})
	if resp.StatusCode != http.StatusForbidden || strings.Contains(body, secret) || !strings.Contains(body, `data-testid="step-up-message"`) || !strings.Contains(body, `name="step_up"`) {
		t.Fatalf("stale reveal = %d (value shown: %v)", resp.StatusCode, strings.Contains(body, secret))
	}
	resp, body = reveal(url.Values{"step_up": {"wrong password!"}})
	if resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, secret) || !strings.Contains(body, `data-testid="error-step_up"`) {
		t.Fatalf("reveal with a wrong step-up = %d", resp.StatusCode)
	}
	resp, body = reveal(url.Values{"step_up": {Password}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, secret) {
		t.Fatalf("reveal with the password = %d", resp.StatusCode)
	}
	// The step-up holds for the next ten minutes.
	if resp, body := reveal(url.Values{}); resp.StatusCode != http.StatusOK || !strings.Contains(body, secret) {
		t.Fatalf("reveal after step-up = %d", resp.StatusCode)
	}

	// Non-sensitive environments never ask.
	age()
	c.get("/keys/" + dev.ID)
	if resp, body := c.post("/keys/"+dev.ID+"/reveal", url.Values{}); resp.StatusCode != http.StatusOK || !strings.Contains(body, devSecret) {
		t.Fatalf("development reveal with a stale step-up = %d", resp.StatusCode)
	}

	// Export asks the same.
	export := func(form url.Values) (*http.Response, string) {
		t.Helper()
		c.get("/export?environment=production")
		form.Set("environment", "production")
		form.Set("format", "dotenv")
		form.Set("reason", "deploy")
		return c.post("/export", form)
	}
	if _, body := c.get("/export?environment=production"); !strings.Contains(body, `name="step_up"`) {
		t.Error("the export form does not ask to step up")
	}
	if resp, body := export(url.Values{}); resp.StatusCode != http.StatusForbidden || strings.Contains(body, secret) {
		t.Fatalf("stale export = %d", resp.StatusCode)
	}
	if resp, body := export(url.Values{"step_up": {"nope nope nope"}}); resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, secret) || !strings.Contains(body, `data-testid="error-step_up"`) {
		t.Fatalf("export with a wrong step-up = %d", resp.StatusCode)
	}
	if resp, body := export(url.Values{"step_up": {Password}}); resp.StatusCode != http.StatusOK || !strings.Contains(body, secret) {
		t.Fatalf("export with the password = %d", resp.StatusCode)
	}

	// The standalone form.
	age()
	c.get("/profile")
	if resp, _ := c.post("/step-up", url.Values{"secret": {"wrong"}, "next": {"/keys/" + k.ID}}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong standalone step-up = %d", resp.StatusCode)
	}
	if resp, _ := reveal(url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("reveal after a failed step-up = %d", resp.StatusCode)
	}
	c.get("/profile")
	resp, _ = c.post("/step-up", url.Values{"secret": {Password}, "next": {"/keys/" + k.ID}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/keys/"+k.ID {
		t.Fatalf("standalone step-up = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := reveal(url.Values{}); resp.StatusCode != http.StatusOK || !strings.Contains(body, secret) {
		t.Fatalf("reveal after the standalone step-up = %d", resp.StatusCode)
	}
}

func TestStepUpWithTOTPCode(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	secret := authzSecret()
	k := env.createKey("member", "production", "prod-openai", secret)
	totpSecret, recovery := enrollTOTP(t, env.client().login("member"))
	// A later session, signed in with the password and the second factor
	// (a recovery code, so that the next code is still unused): the
	// session that enrolled the device may not step up with it (see
	// TestStepUpRefusesFactorEnrolledInThisSession).
	c := env.client()
	passwordStep(t, c, "member", "")
	if resp, _ := c.post("/login/2fa", url.Values{"code": {recovery[0]}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("second factor at sign-in = %d", resp.StatusCode)
	}
	if _, err := env.Pool.Exec(context.Background(), "UPDATE sessions SET step_up_at = now() - interval '11 minutes'"); err != nil {
		t.Fatal(err)
	}
	c.get("/keys/" + k.ID)
	resp, body := c.post("/keys/"+k.ID+"/reveal", url.Values{"reason": {"deploy"}, "step_up": {totpCode(t, totpSecret, time.Now().Add(30*time.Second))}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, secret) {
		t.Fatalf("reveal with a two-factor code = %d", resp.StatusCode)
	}
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := env.client().login("member")
	other := env.client().login("member")
	const newPassword = "a brand new passphrase 42"

	c.get("/profile")
	resp, body := c.post("/profile/password", url.Values{"current_password": {"wrong wrong wrong"}, "new_password": {newPassword}, "confirm": {newPassword}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="error-current_password"`) {
		t.Fatalf("wrong current password = %d", resp.StatusCode)
	}
	resp, body = c.post("/profile/password", url.Values{"current_password": {Password}, "new_password": {newPassword}, "confirm": {newPassword + "x"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="error-confirm"`) {
		t.Fatalf("mismatched confirmation = %d", resp.StatusCode)
	}
	resp, body = c.post("/profile/password", url.Values{"current_password": {Password}, "new_password": {"short"}, "confirm": {"short"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="error-new_password"`) {
		t.Fatalf("short password = %d", resp.StatusCode)
	}
	expectSignedIn(t, other)

	resp, _ = c.post("/profile/password", url.Values{"current_password": {Password}, "new_password": {newPassword}, "confirm": {newPassword}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("change password = %d", resp.StatusCode)
	}
	if _, body := c.follow(resp); !strings.Contains(body, "Password changed") {
		t.Error("no confirmation after the change")
	}
	expectSignedIn(t, c)
	expectSignedOut(t, other)

	old := env.client()
	old.get("/login")
	if resp, _ := old.post("/login", url.Values{"email": {"member@example.com"}, "password": {Password}}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("old password = %d", resp.StatusCode)
	}
	fresh := env.client()
	fresh.get("/login")
	if resp, _ := fresh.post("/login", url.Values{"email": {"member@example.com"}, "password": {newPassword}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("new password = %d", resp.StatusCode)
	}
	expectSignedIn(t, fresh)
}

// profileSessions returns the session ids listed on the profile page and
// which of them is the asking session.
func profileSessions(t testing.TB, c *client) (ids []string, current string) {
	t.Helper()
	resp, body := c.get("/profile")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /profile = %d", resp.StatusCode)
	}
	for _, row := range strings.Split(body, `data-testid="session-row"`)[1:] {
		m := sessionIDRe.FindStringSubmatch(row)
		if m == nil {
			t.Fatal("session row without a revoke form")
		}
		ids = append(ids, m[1])
		if strings.Contains(row, `data-testid="this-session"`) {
			current = m[1]
		}
	}
	return ids, current
}

func TestProfileSessions(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := env.client().login("member")
	other := env.client().login("member")
	admin := env.client().login("admin")

	_, body := c.get("/profile")
	for _, want := range []string{"member@example.com", `data-testid="profile-role">member<`, `href="/users/` + strconv.FormatInt(env.Users["member"].ID, 10) + `"`, `data-testid="totp-status"`} {
		if !strings.Contains(body, want) {
			t.Errorf("profile lacks %q", want)
		}
	}
	ids, current := profileSessions(t, c)
	if len(ids) != 2 || current == "" {
		t.Fatalf("sessions %v, current %q", ids, current)
	}
	var otherID string
	for _, id := range ids {
		if id != current {
			otherID = id
		}
	}

	// Someone else's session is not ours to revoke, whatever its id.
	_, adminCurrent := profileSessions(t, admin)
	c.get("/profile")
	if resp, _ := c.post("/profile/sessions/"+adminCurrent+"/revoke", nil); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("revoking another user's session = %d, want 404", resp.StatusCode)
	}
	expectSignedIn(t, admin)

	resp, _ := c.post("/profile/sessions/"+otherID+"/revoke", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/profile?revoked=1" {
		t.Fatalf("revoke = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	expectSignedOut(t, other)
	expectSignedIn(t, c)
	if ids, _ := profileSessions(t, c); len(ids) != 1 {
		t.Fatalf("%d sessions after revoking one", len(ids))
	}

	// Revoking the current session signs out.
	resp, _ = c.post("/profile/sessions/"+current+"/revoke", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("revoke own session = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	expectSignedOut(t, c)
}

// TestBrowserAccountPages opens the account and admin pages in Chromium:
// they render under the CSP (the QR code is a data: image) without console
// errors.
func TestBrowserAccountPages(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	b := newBrowser(t, env.HTTP.URL, 60*time.Second)
	b.signIn("admin@example.com", "Admin (admin)")
	for _, p := range []string{"/profile", "/profile/2fa", "/admin/users", "/admin/environments"} {
		if st := b.navigate(p); st != http.StatusOK {
			b.fatalf("GET %s: status %d", p, st)
		}
	}
	b.navigate("/profile/2fa")
	if w := evalIn[int](b, `document.querySelector('[data-testid="totp-qr"]').naturalWidth`); w == 0 {
		b.fatalf("the QR code did not load")
	}
	if probs := b.consoleProblems(); len(probs) > 0 {
		t.Errorf("console problems: %q", probs)
	}
}
