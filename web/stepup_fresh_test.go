package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web"
)

// Regression tests for the security finding "a stolen session can defeat
// step-up" and "tokens outlive credential changes". Each reproduces the
// attack through the HTTP stack and real Postgres.

// ageStepUp makes every session of u look as if its last password or code
// was entered 11 minutes ago (past keyledger.StepUpWindow).
func ageStepUp(t *testing.T, env *testEnv, u *keyledger.User) {
	t.Helper()
	if _, err := env.Pool.Exec(context.Background(), "UPDATE sessions SET step_up_at = now() - interval '11 minutes' WHERE user_id = $1", u.ID); err != nil {
		t.Fatal(err)
	}
}

func totpOn(t *testing.T, env *testEnv, u *keyledger.User) bool {
	t.Helper()
	fresh, err := env.Store.UserByID(context.Background(), keyledger.SystemActor("test"), u.ID)
	if err != nil {
		t.Fatal(err)
	}
	return fresh.TOTPEnabled
}

// The attack of the finding, step by step: a lead without two-factor
// sign-in, a session whose step-up is stale (stolen), enrolls a TOTP of the
// attacker's and uses its code as the step-up to reveal production.
func TestStaleSessionCannotEnrollTOTPToRevealProduction(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	value := authzSecret()
	k := env.createKey("member", "production", "prod-stolen", value)
	lead := env.Users["lead"]
	c := env.client().login("lead")
	ageStepUp(t, env, lead)

	resp, body := c.get("/profile/2fa")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /profile/2fa = %d", resp.StatusCode)
	}
	if !strings.Contains(body, `name="current_password"`) {
		t.Error("the enrollment form of a stale session does not ask for the current password")
	}
	m := totpSecretRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no secret on the enrollment page")
	}
	secret := m[1]
	now := time.Now()
	resp, body = c.post("/profile/2fa", url.Values{"code": {totpCode(t, secret, now)}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="error-current_password"`) {
		t.Fatalf("stale enrollment without a password = %d, want 422 with a current_password error", resp.StatusCode)
	}
	if strings.Contains(body, `data-testid="recovery-codes"`) || totpOn(t, env, lead) {
		t.Fatal("a stale session turned two-factor sign-in on without a password")
	}
	// A wrong password: a field error, the code not taken.
	resp, body = c.post("/profile/2fa", url.Values{"code": {totpCode(t, secret, now)}, "current_password": {"not the password"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="error-current_password"`) || totpOn(t, env, lead) {
		t.Fatalf("stale enrollment with a wrong password = %d (on: %v)", resp.StatusCode, totpOn(t, env, lead))
	}
	if strings.Contains(body, "not the password") {
		t.Error("the page echoes the password typed")
	}

	// The attacker's code as the step-up of a production reveal.
	c.get("/keys/" + k.ID)
	resp, body = c.post("/keys/"+k.ID+"/reveal", url.Values{"reason": {"deploy"}, "step_up": {totpCode(t, secret, now.Add(30*time.Second))}})
	if resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, value) {
		t.Fatalf("reveal with the code of a factor never enrolled = %d (value shown: %v)", resp.StatusCode, strings.Contains(body, value))
	}
}

// A factor enrolled in this session (even with the password) does not
// confirm it is you for this session: a thief who had a fresh session for
// a moment must not keep production open with a device of their own.
func TestStepUpRefusesFactorEnrolledInThisSession(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	value := authzSecret()
	k := env.createKey("member", "production", "prod-enrolled", value)
	lead := env.Users["lead"]
	c := env.client().login("lead")
	ageStepUp(t, env, lead)

	_, body := c.get("/profile/2fa")
	secret := totpSecretRe.FindStringSubmatch(body)[1]
	now := time.Now()
	resp, body := c.post("/profile/2fa", url.Values{"code": {totpCode(t, secret, now)}, "current_password": {Password}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-testid="recovery-codes"`) {
		t.Fatalf("enrollment with the password = %d", resp.StatusCode)
	}
	recovery := recoveryRe.FindStringSubmatch(body)[1]
	ageStepUp(t, env, lead)

	c.get("/keys/" + k.ID)
	resp, body = c.post("/keys/"+k.ID+"/reveal", url.Values{"reason": {"deploy"}, "step_up": {totpCode(t, secret, now.Add(30*time.Second))}})
	if resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, value) {
		t.Fatalf("reveal stepped up with the factor enrolled in this session = %d (value shown: %v)", resp.StatusCode, strings.Contains(body, value))
	}
	if resp, _ := c.post("/step-up", url.Values{"secret": {totpCode(t, secret, now.Add(30*time.Second))}, "next": {"/profile"}}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("POST /step-up with the factor enrolled in this session = %d, want 401", resp.StatusCode)
	}
	// The password still works.
	c.get("/keys/" + k.ID)
	resp, body = c.post("/keys/"+k.ID+"/reveal", url.Values{"reason": {"deploy"}, "step_up": {Password}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, value) {
		t.Fatalf("reveal stepped up with the password = %d", resp.StatusCode)
	}

	// Another session, signed in with password and code, may step up with
	// the code: the rule is about the session that enrolled. (A recovery
	// code at sign-in, so that the code of the next step is still unused:
	// the refusals above did not spend it.)
	other := env.client()
	passwordStep(t, other, "lead", "")
	if resp, _ := other.post("/login/2fa", url.Values{"code": {recovery}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("second factor at sign-in = %d", resp.StatusCode)
	}
	ageStepUp(t, env, lead)
	other.get("/profile")
	if resp, body := other.post("/step-up", url.Values{"secret": {totpCode(t, secret, now.Add(30*time.Second))}, "next": {"/profile"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("step-up with the code in a session that did not enroll = %d\n%s", resp.StatusCode, body)
	}
}

// Creating an access token and turning two-factor sign-in off need a
// fresh proof too.
func TestStaleSessionNeedsPasswordForTokenAndTOTPDisable(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	member := env.Users["member"]
	c := env.client().login("member")
	secret, _ := enrollTOTP(t, c)
	_ = secret
	ageStepUp(t, env, member)

	c.get("/profile")
	form := url.Values{"name": {"stolen laptop"}, "scopes": {"read", "reveal"}, "expires": {"30d"}}
	resp, body := c.post("/profile/tokens", form)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="error-current_password"`) || newTokenSecret(body) != "" {
		t.Fatalf("stale token creation = %d, want 422 with a current_password error", resp.StatusCode)
	}
	if !strings.Contains(body, `value="stolen laptop"`) {
		t.Error("the refused form lost the name typed")
	}
	if n := tokenCountNamed(t, env, "stolen laptop"); n != 0 {
		t.Fatalf("%d tokens created by a stale session", n)
	}
	form.Set("current_password", "not the password")
	resp, body = c.post("/profile/tokens", form)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="error-current_password"`) || strings.Contains(body, "not the password") {
		t.Fatalf("token creation with a wrong password = %d", resp.StatusCode)
	}
	form.Set("current_password", Password)
	resp, body = c.post("/profile/tokens", form)
	if resp.StatusCode != http.StatusOK || newTokenSecret(body) == "" {
		t.Fatalf("token creation with the password = %d", resp.StatusCode)
	}

	ageStepUp(t, env, member)
	c.get("/profile/2fa")
	resp, body = c.post("/profile/2fa/disable", url.Values{})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="error-password"`) || !totpOn(t, env, member) {
		t.Fatalf("stale disable without a password = %d (still on: %v)", resp.StatusCode, totpOn(t, env, member))
	}
	// Within the window (a step-up with the password), no password again.
	if resp, _ := c.post("/step-up", url.Values{"secret": {Password}, "next": {"/profile/2fa"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("step-up = %d", resp.StatusCode)
	}
	c.get("/profile/2fa")
	if resp, _ := c.post("/profile/2fa/disable", url.Values{}); resp.StatusCode != http.StatusSeeOther || totpOn(t, env, member) {
		t.Fatalf("disable within the step-up window = %d", resp.StatusCode)
	}
}

// A set-password link (account recovery) ends the user's tokens as well
// as their sessions.
func TestPasswordLinkEndsTokens(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	a := newAPI(t, env)
	tok := a.token("member", keyledger.ScopeRead)
	if r := a.do(tok, "GET", "/api/v1/whoami", nil); r.Status != http.StatusOK {
		t.Fatalf("token before recovery = %d", r.Status)
	}
	link, _, err := env.Store.CreatePasswordLink(context.Background(), actorOf(env, "admin"), env.Users["member"].ID)
	if err != nil {
		t.Fatal(err)
	}
	c := env.client()
	c.get("/set-password/" + link)
	newPassword := "a brand new recovery passphrase"
	if resp, body := c.post("/set-password/"+link, url.Values{"password": {newPassword}, "confirm": {newPassword}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("set password = %d\n%s", resp.StatusCode, body)
	}
	if r := a.do(tok, "GET", "/api/v1/whoami", nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("token after recovery = %d, want 401", r.Status)
	}
	var n int
	if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM api_tokens WHERE user_id = $1", env.Users["member"].ID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("%d tokens left after recovery", n)
	}
}

// A role that requires two-factor sign-in stops the tokens of its users
// who have not enrolled, with a reason, until they do.
func TestRolePolicyStopsTokensOfUnenrolled(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	a := newAPI(t, env)
	k, value := a.key("member", "development", "dev-policy")
	tok := a.token("member", keyledger.ScopeRead, keyledger.ScopeReveal)
	if r := a.do(tok, "GET", "/api/v1/whoami", nil); r.Status != http.StatusOK {
		t.Fatalf("token before the policy = %d", r.Status)
	}
	admin := keyledger.Actor{User: env.Users["admin"]}
	if err := env.Store.SetRolePolicy(context.Background(), admin, keyledger.RoleMember, true); err != nil {
		t.Fatal(err)
	}
	r := a.do(tok, "GET", "/api/v1/whoami", nil)
	if r.Status != http.StatusForbidden || !strings.Contains(r.errMessage(), "two-factor") {
		t.Fatalf("token of an unenrolled member under the policy = %d %q, want 403 naming two-factor sign-in", r.Status, r.errMessage())
	}
	r = a.do(tok, "POST", "/api/v1/keys/"+k.ID+"/reveal", map[string]any{"reason": "policy"})
	if r.Status != http.StatusForbidden || strings.Contains(string(r.Body), value) {
		t.Fatalf("reveal with the token under the policy = %d", r.Status)
	}
	// Admins are not members: their tokens keep working.
	if r := a.do(a.token("admin", keyledger.ScopeRead), "GET", "/api/v1/whoami", nil); r.Status != http.StatusOK {
		t.Fatalf("admin token = %d", r.Status)
	}
	// Once enrolled, the token works again.
	c := env.client().login("member")
	enrollTOTP(t, c)
	if r := a.do(tok, "GET", "/api/v1/whoami", nil); r.Status != http.StatusOK {
		t.Fatalf("token after enrolling = %d", r.Status)
	}
}

// notes records what the server tells people.
type notes struct {
	mu   sync.Mutex
	sent []keyledger.Notification
}

func (n *notes) Notify(_ context.Context, note keyledger.Notification) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.sent = append(n.sent, note)
	return nil
}

func (n *notes) all() []keyledger.Notification {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]keyledger.Notification(nil), n.sent...)
}

// An admin can reset a user's two-factor sign-in (the victim locked out
// by a thief's device); it is audited and the user is told.
func TestAdminResetsTOTP(t *testing.T) {
	t.Parallel()
	told := &notes{}
	env := newEnv(t, func(c *web.Config) { c.Notifier = told })
	member := env.Users["member"]
	mc := env.client().login("member")
	enrollTOTP(t, mc)

	// Leads and members cannot.
	for _, who := range []string{"lead", "member2"} {
		c := env.client().login(who)
		c.get("/profile")
		if resp, _ := c.post("/admin/users/"+strconv.FormatInt(member.ID, 10)+"/2fa-reset", url.Values{}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s resetting two-factor = %d, want 403", who, resp.StatusCode)
		}
	}
	if !totpOn(t, env, member) {
		t.Fatal("a non-admin reset two-factor sign-in")
	}

	ac := env.client().login("admin")
	_, body := ac.get("/admin/users")
	if !strings.Contains(body, `action="/admin/users/`+strconv.FormatInt(member.ID, 10)+`/2fa-reset"`) {
		t.Fatal("the users page has no reset form for a user with two-factor sign-in")
	}
	resp, _ := ac.post("/admin/users/"+strconv.FormatInt(member.ID, 10)+"/2fa-reset", url.Values{})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("admin reset = %d", resp.StatusCode)
	}
	if totpOn(t, env, member) {
		t.Fatal("two-factor sign-in still on after the reset")
	}
	var n int
	if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2",
		keyledger.ActionTOTPReset, member.ID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d audit events for the reset, want 1", n)
	}
	sent := told.all()
	if len(sent) != 1 || sent[0].Kind != keyledger.NoticeTOTPReset || len(sent[0].Recipients) != 1 || sent[0].Recipients[0] != member.Email {
		t.Fatalf("notifications = %+v, want one to %s", sent, member.Email)
	}
	// The member's sessions end: whoever held them no longer has a second
	// factor to lean on.
	expectSignedOut(t, mc)

	// An admin cannot reset their own without proof: that is the disable
	// form, with a password.
	admin := env.Users["admin"]
	if _, err := env.Pool.Exec(context.Background(), "UPDATE users SET totp_enabled_at = now() WHERE id = $1", admin.ID); err != nil {
		t.Fatal(err)
	}
	ac.get("/admin/users")
	if resp, _ := ac.post("/admin/users/"+strconv.FormatInt(admin.ID, 10)+"/2fa-reset", url.Values{}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("admin resetting their own = %d, want 403", resp.StatusCode)
	}
	if !totpOn(t, env, admin) {
		t.Fatal("an admin reset their own two-factor sign-in")
	}
}

// An account made by single sign-on has no password: it confirms it is
// the person by signing in again through the identity provider, whose
// auth_time starts the step-up window (as for reveals).
func TestSSOOnlyAccountConfirmsBySigningInAgain(t *testing.T) {
	t.Parallel()
	env, idp := newSSOEnv(t)
	idp.set(func(i *testIDP) {
		i.user = idpUser{Sub: "sso-1", Email: "only.sso@corp.example", Name: "Only SSO", Verified: true}
	})
	c := env.client()
	if resp, body := ssoSignIn(t, c, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("SSO sign-in = %d\n%s", resp.StatusCode, body)
	}
	u, err := env.Store.UserByEmail(context.Background(), "only.sso@corp.example")
	if err != nil {
		t.Fatal(err)
	}
	ageStepUp(t, env, u)
	_, body := c.get("/profile/2fa")
	if !strings.Contains(body, `data-testid="proof-sso"`) || strings.Contains(body, `name="current_password"`) {
		t.Error("the enrollment page of a stale SSO-only session does not say to sign in again")
	}
	secret := totpSecretRe.FindStringSubmatch(body)[1]
	resp, body := c.post("/profile/2fa", url.Values{"code": {totpCode(t, secret, time.Now())}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="error-current_password"`) || totpOn(t, env, u) {
		t.Fatalf("stale SSO-only enrollment = %d (on: %v)", resp.StatusCode, totpOn(t, env, u))
	}

	// Signed in again through the provider: confirmed for 10 minutes.
	again := env.client()
	if resp, body := ssoSignIn(t, again, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("SSO sign-in again = %d\n%s", resp.StatusCode, body)
	}
	_, body = again.get("/profile/2fa")
	if strings.Contains(body, `data-testid="proof-sso"`) {
		t.Error("a fresh SSO session is still asked to confirm")
	}
	secret = totpSecretRe.FindStringSubmatch(body)[1]
	if resp, body := again.post("/profile/2fa", url.Values{"code": {totpCode(t, secret, time.Now())}}); resp.StatusCode != http.StatusOK || !totpOn(t, env, u) {
		t.Fatalf("fresh SSO enrollment = %d\n%s", resp.StatusCode, body)
	}
}

// A stolen admin session must not hand out another person's sign-in: a
// two-factor reset, a set-password link or a new account each need the
// admin's own fresh proof. A stale session is sent to confirm it is you,
// and nothing changes until it has.
func TestStaleAdminSessionCannotHandOutCredentials(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	member := env.Users["member"]
	mc := env.client().login("member")
	enrollTOTP(t, mc)
	admin := env.Users["admin"]
	ac := env.client().login("admin")
	ac.get("/admin/users")
	ageStepUp(t, env, admin)

	uid := strconv.FormatInt(member.ID, 10)
	links := func() int {
		var n int
		if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM password_links").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := links()
	for _, action := range []string{"/admin/users/" + uid + "/2fa-reset", "/admin/users/" + uid + "/password-link"} {
		resp, _ := ac.post(action, url.Values{})
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/step-up?next=") {
			t.Errorf("stale %s = %d to %q, want 303 to /step-up", action, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	resp, _ := ac.post("/admin/users", url.Values{"email": {"new-admin@example.com"}, "name": {"New"}, "role": {"admin"}, "mode": {"password"}, "password": {"a-long-password-123"}})
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/step-up?next=") {
		t.Errorf("stale user creation = %d to %q, want 303 to /step-up", resp.StatusCode, resp.Header.Get("Location"))
	}
	if !totpOn(t, env, member) || links() != before {
		t.Fatal("a stale admin session reset two-factor sign-in or made a set-password link")
	}
	if _, err := env.Store.UserByEmail(context.Background(), "new-admin@example.com"); err == nil {
		t.Fatal("a stale admin session created an account")
	}

	// The page they are sent to asks for the proof and comes back.
	resp, body := ac.get("/step-up?next=%2Fadmin%2Fusers")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `name="secret"`) || !strings.Contains(body, `value="/admin/users"`) {
		t.Fatalf("GET /step-up = %d; want a form for the secret that returns to /admin/users", resp.StatusCode)
	}
	// Confirmed: the same actions go through.
	if resp, _ := ac.post("/step-up", url.Values{"secret": {Password}, "next": {"/admin/users"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("step-up = %d", resp.StatusCode)
	}
	if resp, _ := ac.post("/admin/users/"+uid+"/2fa-reset", url.Values{}); resp.StatusCode != http.StatusSeeOther || totpOn(t, env, member) {
		t.Errorf("confirmed reset = %d (still on: %v)", resp.StatusCode, totpOn(t, env, member))
	}
	if resp, _ := ac.post("/admin/users/"+uid+"/password-link", url.Values{}); resp.StatusCode != http.StatusOK || links() != before+1 {
		t.Errorf("confirmed set-password link = %d (%d links)", resp.StatusCode, links())
	}
}
