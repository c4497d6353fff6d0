package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
)

var passwordLinkRe = regexp.MustCompile(`data-testid="password-link-url">(https?://[^/<]+)(/set-password/([A-Za-z0-9_-]+))<`)

func uidPath(env *testEnv, who, action string) string {
	return "/admin/users/" + strconv.FormatInt(env.Users[who].ID, 10) + "/" + action
}

func userCount(t testing.TB, env *testEnv) int {
	t.Helper()
	n, err := env.Store.CountUsers(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func userByEmail(t testing.TB, env *testEnv, email string) *keyledger.User {
	t.Helper()
	u, err := env.Store.UserByEmail(context.Background(), email)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestAdminUsersPage(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	admin := env.client().login("admin")
	resp, body := admin.get("/admin/users")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /admin/users = %d", resp.StatusCode)
	}
	for _, want := range []string{`data-testid="admin-nav"`, "member2@example.com", "gone@example.com", `data-testid="user-status">deactivated<`,
		`action="` + uidPath(env, "member", "role") + `"`, `action="` + uidPath(env, "gone", "reactivate") + `"`, `data-confirm="Deactivate member@example.com?`} {
		if !strings.Contains(body, want) {
			t.Errorf("users page lacks %q", want)
		}
	}
}

func TestAdminCreateUserWithPassword(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	admin := env.client().login("admin")
	admin.get("/admin/users")
	const pw = "initial password 123"
	before := userCount(t, env)

	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		field  string
	}{
		{"duplicate email", url.Values{"email": {"Member@Example.com"}, "name": {"X"}, "role": {"member"}, "mode": {"password"}, "password": {pw}}, http.StatusConflict, "email"},
		{"short password", url.Values{"email": {"new@example.com"}, "name": {"X"}, "role": {"member"}, "mode": {"password"}, "password": {"short"}}, http.StatusUnprocessableEntity, "password"},
		{"bad email", url.Values{"email": {"not-an-email"}, "name": {"X"}, "role": {"member"}, "mode": {"password"}, "password": {pw}}, http.StatusUnprocessableEntity, "email"},
		{"bad role", url.Values{"email": {"new@example.com"}, "name": {"X"}, "role": {"owner"}, "mode": {"password"}, "password": {pw}}, http.StatusUnprocessableEntity, "role"},
		{"bad mode", url.Values{"email": {"new@example.com"}, "name": {"X"}, "role": {"member"}, "mode": {"carrier pigeon"}}, http.StatusUnprocessableEntity, "mode"},
	} {
		resp, body := admin.post("/admin/users", tc.form)
		if resp.StatusCode != tc.status || !strings.Contains(body, `data-testid="error-`+tc.field+`"`) {
			t.Errorf("%s: %d, want %d with an error on %s", tc.name, resp.StatusCode, tc.status, tc.field)
		}
		if strings.Contains(body, pw) {
			t.Errorf("%s: the password is echoed into the page", tc.name)
		}
	}
	if n := userCount(t, env); n != before {
		t.Fatalf("%d users after refused forms, want %d", n, before)
	}

	resp, _ := admin.post("/admin/users", url.Values{"email": {"new@example.com"}, "name": {"New Person"}, "role": {"lead"}, "mode": {"password"}, "password": {pw}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("create = %d", resp.StatusCode)
	}
	if u := userByEmail(t, env, "new@example.com"); u.Role != keyledger.RoleLead || u.Name != "New Person" || !u.Active() {
		t.Fatalf("created %+v", u)
	}
	c := env.client()
	c.get("/login")
	if resp, _ := c.post("/login", url.Values{"email": {"new@example.com"}, "password": {pw}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("new user sign-in = %d", resp.StatusCode)
	}
}

func TestAdminCreateUserWithLink(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	admin := env.client().login("admin")
	admin.get("/admin/users")
	resp, body := admin.post("/admin/users", url.Values{"email": {"invitee@example.com"}, "name": {"Invitee"}, "role": {"member"}, "mode": {"link"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("create with link = %d\n%s", resp.StatusCode, body)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
		t.Errorf("link page Cache-Control %q", cc)
	}
	m := passwordLinkRe.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no link on the page:\n%s", body)
	}
	if m[1] != env.HTTP.URL {
		t.Errorf("link base %q, want %q", m[1], env.HTTP.URL)
	}
	path, token := m[2], m[3]

	c := env.client()
	resp, body = c.get(path)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "invitee@example.com") {
		t.Fatalf("GET link = %d", resp.StatusCode)
	}
	const pw = "my own passphrase 99"
	resp, body = c.post(path, url.Values{"password": {pw}, "confirm": {pw + "!"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="error-confirm"`) {
		t.Fatalf("mismatched confirm = %d", resp.StatusCode)
	}
	resp, body = c.post(path, url.Values{"password": {"short"}, "confirm": {"short"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="error-password"`) {
		t.Fatalf("short password = %d", resp.StatusCode)
	}
	resp, _ = c.post(path, url.Values{"password": {pw}, "confirm": {pw}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?set=1" {
		t.Fatalf("set password = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if _, body := c.follow(resp); !strings.Contains(body, `data-testid="login-notice"`) {
		t.Error("no notice on the sign-in page")
	}
	if resp, _ := c.post("/login", url.Values{"email": {"invitee@example.com"}, "password": {pw}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign in with the new password = %d", resp.StatusCode)
	}
	expectSignedIn(t, c)

	// Spent.
	anon := env.client()
	resp, body = anon.get(path)
	if resp.StatusCode != http.StatusNotFound || !strings.Contains(body, "This link is not valid") {
		t.Fatalf("second GET = %d", resp.StatusCode)
	}
	anon.get("/login")
	if resp, _ := anon.post(path, url.Values{"password": {"another passphrase 1"}, "confirm": {"another passphrase 1"}}); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("second use = %d, want 404", resp.StatusCode)
	}

	// A link for an existing user, expired after its 24 hours.
	admin.get("/admin/users")
	resp, body = admin.post(uidPath(env, "member2", "password-link"), nil)
	m = passwordLinkRe.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil {
		t.Fatalf("password link = %d", resp.StatusCode)
	}
	if _, err := env.Pool.Exec(context.Background(), "UPDATE password_links SET expires_at = now() - interval '1 minute' WHERE used_at IS NULL"); err != nil {
		t.Fatal(err)
	}
	if resp, _ := anon.get(m[2]); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("expired link = %d, want 404", resp.StatusCode)
	}

	// Tokens never reach the log.
	logs := env.Logs.String()
	for _, tok := range []string{token, m[3]} {
		if strings.Contains(logs, tok) {
			t.Error("a set-password token is in the log")
		}
	}
	if !strings.Contains(logs, "/set-password/…") {
		t.Error("set-password requests are not logged (redacted)")
	}
}

func TestAdminRoleChange(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	admin := env.client().login("admin")
	member := env.client().login("member")

	admin.get("/admin/users")
	if resp, _ := admin.post(uidPath(env, "member", "role"), url.Values{"role": {"lead"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("set role = %d", resp.StatusCode)
	}
	if u := userByEmail(t, env, "member@example.com"); u.Role != keyledger.RoleLead {
		t.Fatalf("role %s", u.Role)
	}
	// The live session has the new role at once.
	if resp, _ := member.get("/audit"); resp.StatusCode != http.StatusOK {
		t.Fatalf("promoted member GET /audit = %d", resp.StatusCode)
	}

	resp, body := admin.post(uidPath(env, "member", "role"), url.Values{"role": {"superuser"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="row-error"`) {
		t.Fatalf("bad role = %d", resp.StatusCode)
	}
	// The last admin stays an admin.
	resp, body = admin.post(uidPath(env, "admin", "role"), url.Values{"role": {"member"}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "last active admin") {
		t.Fatalf("demote the last admin = %d", resp.StatusCode)
	}
	if u := userByEmail(t, env, "admin@example.com"); u.Role != keyledger.RoleAdmin {
		t.Fatal("the last admin was demoted")
	}
	if resp, _ := admin.post("/admin/users/999999/role", url.Values{"role": {"lead"}}); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown user = %d", resp.StatusCode)
	}
}

func TestAdminDeactivateReactivate(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	admin := env.client().login("admin")
	member := env.client().login("member")
	expectSignedIn(t, member)

	admin.get("/admin/users")
	if resp, _ := admin.post(uidPath(env, "member", "deactivate"), nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("deactivate = %d", resp.StatusCode)
	}
	// The very next request of the live session is refused.
	expectSignedOut(t, member)
	if u := userByEmail(t, env, "member@example.com"); u.Status != keyledger.UserDeactivated {
		t.Fatalf("status %s", u.Status)
	}
	again := env.client()
	again.get("/login")
	if resp, _ := again.post("/login", url.Values{"email": {"member@example.com"}, "password": {Password}}); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("deactivated sign-in = %d", resp.StatusCode)
	}

	if resp, _ := admin.post(uidPath(env, "member", "reactivate"), nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("reactivate = %d", resp.StatusCode)
	}
	env.client().login("member")
	resp, body := admin.post(uidPath(env, "member", "reactivate"), nil)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, `data-testid="row-error"`) {
		t.Fatalf("reactivate an active user = %d", resp.StatusCode)
	}

	// The last admin cannot deactivate themselves.
	if resp, _ := admin.post(uidPath(env, "admin", "deactivate"), nil); resp.StatusCode != http.StatusConflict {
		t.Fatalf("deactivate the last admin = %d", resp.StatusCode)
	}
	expectSignedIn(t, admin)
}

func TestAdminRoutesForbiddenToOthers(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	ctx := context.Background()
	devBefore, err := env.Store.Environment(ctx, "development")
	if err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"member", "lead"} {
		c := env.client().login(who)
		for _, r := range []struct {
			method, path string
			form         url.Values
		}{
			{"GET", "/admin/users", nil},
			{"GET", "/admin/environments", nil},
			{"POST", "/admin/users", url.Values{"email": {"sneaky@example.com"}, "role": {"admin"}, "mode": {"password"}, "password": {"sneaky password 1"}}},
			{"POST", uidPath(env, who, "role"), url.Values{"role": {"admin"}}},
			{"POST", uidPath(env, "member2", "deactivate"), nil},
			{"POST", uidPath(env, "gone", "reactivate"), nil},
			{"POST", uidPath(env, "member2", "password-link"), nil},
			{"POST", "/admin/users/999999/role", url.Values{"role": {"admin"}}},
			{"POST", "/admin/roles", url.Values{"require_totp": {"admin"}}},
			{"POST", "/admin/environments", url.Values{"name": {"sneaky"}, "reveal_policy": {"any_user"}, "rotation_days": {"30"}}},
			{"POST", "/admin/environments/development", url.Values{"reveal_policy": {"any_user"}, "rotation_days": {"1"}}},
		} {
			var resp *http.Response
			var body string
			if r.method == "GET" {
				resp, body = c.get(r.path)
			} else {
				c.get("/keys")
				resp, body = c.post(r.path, r.form)
			}
			if resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s %s %s = %d, want 403", who, r.method, r.path, resp.StatusCode)
			}
			if strings.Contains(body, "/set-password/") {
				t.Errorf("%s %s %s shows a set-password link", who, r.method, r.path)
			}
		}
	}
	if _, err := env.Store.UserByEmail(ctx, "sneaky@example.com"); keyledger.ErrorCode(err) != keyledger.ENOTFOUND {
		t.Error("a non-admin created a user")
	}
	for who, role := range map[string]keyledger.Role{"member": keyledger.RoleMember, "lead": keyledger.RoleLead} {
		if u := userByEmail(t, env, who+"@example.com"); u.Role != role {
			t.Errorf("%s became %s", who, u.Role)
		}
	}
	if u := userByEmail(t, env, "member2@example.com"); !u.Active() {
		t.Error("a non-admin deactivated member2")
	}
	if pol, _ := env.Store.RolePolicies(ctx, keyledger.SystemActor("test")); pol[keyledger.RoleAdmin] {
		t.Error("a non-admin changed the role policy")
	}
	if devAfter, _ := env.Store.Environment(ctx, "development"); devAfter != devBefore {
		t.Errorf("development changed: %+v", devAfter)
	}
	if _, err := env.Store.Environment(ctx, "sneaky"); keyledger.ErrorCode(err) != keyledger.ENOTFOUND {
		t.Error("a non-admin created an environment")
	}
}

func TestAdminEnvironments(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	ctx := context.Background()
	admin := env.client().login("admin")
	resp, body := admin.get("/admin/environments")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `action="/admin/environments/production"`) || !strings.Contains(body, `data-testid="admin-nav"`) {
		t.Fatalf("GET /admin/environments = %d", resp.StatusCode)
	}

	// Create.
	for _, tc := range []struct {
		form   url.Values
		status int
		field  string
	}{
		{url.Values{"name": {"development"}, "reveal_policy": {"any_user"}, "rotation_days": {"30"}}, http.StatusConflict, "name"},
		{url.Values{"name": {"QA env"}, "reveal_policy": {"any_user"}, "rotation_days": {"30"}}, http.StatusUnprocessableEntity, "name"},
		{url.Values{"name": {"qa"}, "reveal_policy": {"everyone"}, "rotation_days": {"30"}}, http.StatusUnprocessableEntity, "reveal_policy"},
		{url.Values{"name": {"qa"}, "reveal_policy": {"any_user"}, "rotation_days": {"0"}}, http.StatusUnprocessableEntity, "rotation_days"},
	} {
		resp, body := admin.post("/admin/environments", tc.form)
		if resp.StatusCode != tc.status || !strings.Contains(body, `data-testid="error-`+tc.field+`"`) {
			t.Errorf("create %v = %d, want %d with an error on %s", tc.form, resp.StatusCode, tc.status, tc.field)
		}
	}
	if _, err := env.Store.Environment(ctx, "qa"); keyledger.ErrorCode(err) != keyledger.ENOTFOUND {
		t.Fatal("a refused form created qa")
	}
	resp, _ = admin.post("/admin/environments", url.Values{"name": {"qa"}, "reveal_policy": {"any_user"}, "reason_required": {"1"}, "rotation_days": {"30"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("create qa = %d", resp.StatusCode)
	}
	qa, err := env.Store.Environment(ctx, "qa")
	if err != nil || qa.RevealPolicy != keyledger.RevealAnyUser || !qa.ReasonRequired || qa.Sensitive || qa.RotationDays != 30 {
		t.Fatalf("qa = %+v, %v", qa, err)
	}

	// Update: the policy applies to the next reveal.
	secret := authzSecret()
	k := env.createKey("member", "development", "dev-openai", secret)
	other := env.client().login("member2")
	other.get("/keys/" + k.ID)
	if resp, body := other.post("/keys/"+k.ID+"/reveal", nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, secret) {
		t.Fatalf("non-owner development reveal before = %d", resp.StatusCode)
	}
	admin.get("/admin/environments")
	resp, body = admin.post("/admin/environments/development", url.Values{"reveal_policy": {"owner_leads_admins"}, "rotation_days": {"abc"}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="error-rotation_days"`) {
		t.Fatalf("bad update = %d", resp.StatusCode)
	}
	if dev, _ := env.Store.Environment(ctx, "development"); dev.RevealPolicy != keyledger.RevealAnyUser {
		t.Fatal("a refused update changed the policy")
	}
	resp, _ = admin.post("/admin/environments/development", url.Values{"reveal_policy": {"owner_leads_admins"}, "rotation_days": {"180"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("update development = %d", resp.StatusCode)
	}
	resp, body = other.post("/keys/"+k.ID+"/reveal", nil)
	if resp.StatusCode != http.StatusForbidden || strings.Contains(body, secret) {
		t.Fatalf("non-owner development reveal after = %d", resp.StatusCode)
	}
	owner := env.client().login("member")
	owner.get("/keys/" + k.ID)
	if resp, body := owner.post("/keys/"+k.ID+"/reveal", nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, secret) {
		t.Fatalf("owner development reveal after = %d", resp.StatusCode)
	}
	if resp, _ := admin.post("/admin/environments/nowhere", url.Values{"reveal_policy": {"any_user"}, "rotation_days": {"10"}}); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("update unknown = %d", resp.StatusCode)
	}

	// Marking an environment sensitive asks for a step-up there.
	admin.get("/admin/environments")
	if resp, _ := admin.post("/admin/environments/qa", url.Values{"reveal_policy": {"any_user"}, "sensitive": {"1"}, "rotation_days": {"30"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("update qa = %d", resp.StatusCode)
	}
	qk := env.createKey("member", "qa", "qa-openai", authzSecret())
	if _, err := env.Pool.Exec(ctx, "UPDATE sessions SET step_up_at = now() - interval '11 minutes'"); err != nil {
		t.Fatal(err)
	}
	owner.get("/keys/" + qk.ID)
	if resp, _ := owner.post("/keys/"+qk.ID+"/reveal", url.Values{"reason": {"test"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("reveal in a newly sensitive environment without step-up = %d", resp.StatusCode)
	}
}
