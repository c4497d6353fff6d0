package web_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// This file holds the authorization matrix: every route the server
// registers, for every kind of actor and every seeded environment, with the
// status it must answer and whether the body may carry a key's value. A
// route missing from authzCases fails TestAuthzEveryRouteIsCovered, so a new
// route forces a decision about who may use it.
//
// The helpers named authz* are shared with forms_test.go and
// security_test.go.

// Actors of the matrix. The key under test is always owned by "member".
const (
	actorAnonymous   = "anonymous"
	actorAdmin       = "admin"
	actorLead        = "lead"
	actorOwner       = "member-owner"
	actorNonOwner    = "member-non-owner"
	actorDeactivated = "deactivated"
)

var authzActors = []string{actorAnonymous, actorAdmin, actorLead, actorOwner, actorNonOwner, actorDeactivated}

// authzEnvs are the seeded environments, in policy order.
var authzEnvs = []string{"development", "staging", "production"}

// authzLoginName maps a signed-in actor to its user in testEnv.Users.
var authzLoginName = map[string]string{actorAdmin: "admin", actorLead: "lead", actorOwner: "member", actorNonOwner: "member2"}

// authzRand returns n random bytes as hex.
func authzRand(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// authzSecret returns a fresh, unmistakable OpenAI-style value.
func authzSecret() string { return "sk-proj-" + authzRand(20) + "XyZ9" }

// authzClient is env.client() reporting its failures on t, so that
// subtests can use clients of a shared env.
func authzClient(env *testEnv, t testing.TB) *client {
	c := env.client()
	c.t = t
	return c
}

// authzFor is c reporting its failures on t (a subtest); it shares c's
// cookies.
func authzFor(c *client, t testing.TB) *client {
	cc := *c
	cc.t = t
	return &cc
}

// authzLogin signs in as one of env's users ("admin", "member", ...).
func authzLogin(env *testEnv, t testing.TB, who string) *client {
	return authzClient(env, t).login(who)
}

// authzDeactivated signs in a fresh lead, then deactivates the account
// while the session is live, and returns the client holding the old
// session cookie and a CSRF token that is still valid.
func authzDeactivated(env *testEnv, t testing.TB) *client {
	t.Helper()
	ctx := context.Background()
	local := "leaver-" + authzRand(4)
	if _, err := env.Store.CreateUser(ctx, keyledger.SystemActor("test"), keyledger.NewUser{
		Email: local + "@example.com", Name: "Leaver", Role: keyledger.RoleLead, Password: Password}); err != nil {
		t.Fatal(err)
	}
	c := authzLogin(env, t, local)
	if resp, body := c.get("/keys"); resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-testid="whoami"`) {
		t.Fatalf("before deactivation: GET /keys = %d", resp.StatusCode)
	}
	if _, err := env.Store.DeactivateUser(ctx, keyledger.SystemActor("test"), local+"@example.com"); err != nil {
		t.Fatal(err)
	}
	if c.csrf == "" {
		t.Fatal("no CSRF token before deactivation")
	}
	return c
}

// authzActorClient returns a client acting as actor.
func authzActorClient(env *testEnv, t testing.TB, actor string) *client {
	t.Helper()
	switch actor {
	case actorAnonymous:
		c := authzClient(env, t)
		// A valid token, so that POSTs test authentication, not CSRF.
		c.get("/login")
		if c.csrf == "" {
			t.Fatal("GET /login gave no CSRF token")
		}
		return c
	case actorDeactivated:
		return authzDeactivated(env, t)
	}
	return authzLogin(env, t, authzLoginName[actor])
}

// authzKey registers a key through the store and returns it with its value.
func authzKey(env *testEnv, t testing.TB, owner, envName, name string) (*keyledger.Key, string) {
	t.Helper()
	value := authzSecret()
	u := env.Users[owner]
	res, err := env.Store.CreateKey(context.Background(), keyledger.Actor{User: u}, keyledger.KeyInput{
		Name: name, Project: "checkout", Environment: envName, OwnerEmail: u.Email, Value: value})
	if err != nil {
		t.Fatal(err)
	}
	return res.Key, value
}

// authzSend sends any method with a form body (adding the client's CSRF
// token to unsafe methods unless the form has _csrf) and returns the
// response and body.
func authzSend(c *client, method, path string, form url.Values, header http.Header) (*http.Response, string) {
	c.t.Helper()
	var body io.Reader
	if method != http.MethodGet && method != http.MethodHead {
		if form == nil {
			form = url.Values{}
		}
		if _, ok := form["_csrf"]; !ok {
			if c.csrf == "" {
				c.get("/login")
			}
			form.Set("_csrf", c.csrf)
		}
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, c.env.HTTP.URL+path, body)
	if err != nil {
		c.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if m := csrfField.FindSubmatch(b); m != nil {
		c.csrf = string(m[1])
	}
	return resp, string(b)
}

// authzRevealCount counts the reveal events recorded for a key.
func authzRevealCount(env *testEnv, t testing.TB, keyID string) int {
	t.Helper()
	page, err := env.Store.ListAudit(context.Background(), keyledger.Actor{User: env.Users["admin"]},
		store.AuditFilter{KeyID: keyID, Action: keyledger.ActionKeyReveal, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Events)
}

// authzGetKey reads a key's metadata as admin.
func authzGetKey(env *testEnv, t testing.TB, id string) *keyledger.Key {
	t.Helper()
	k, err := env.Store.GetKey(context.Background(), keyledger.Actor{User: env.Users["admin"]}, id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// authzMain is the <main> of a page with the request id masked: the part
// that must not differ between actors.
func authzMain(body, requestID string) string {
	i, j := strings.Index(body, "<main"), strings.Index(body, "</main>")
	if i < 0 || j < i {
		return body
	}
	m := body[i:j]
	if requestID != "" {
		m = strings.ReplaceAll(m, requestID, "REQUEST-ID")
	}
	return m
}

// authzWant is the expected answer of one matrix cell.
type authzWant struct {
	status   int
	location string // for redirects: the exact Location
	revealed bool   // the body must carry the key's value (and only then may)
	// download: the value comes as a file (Content-Disposition:
	// attachment) rather than on the reveal page.
	download bool
	// file: a download that carries no value (a CSV of metadata or of
	// the audit log).
	file bool
	// line: the value comes in the quick copy's JSON line, not a page.
	line bool
	// body and actor: what the server answered and to whom (set on the
	// answer got, for check).
	body, actor string
}

// authzCase is one way of calling one route. A route may have several
// cases (e.g. reveal with and without a reason).
type authzCase struct {
	route  string // exactly as listed by Server.Routes()
	name   string
	method string
	// perEnv: run once per seeded environment; needsKey: with a fresh key
	// owned by "member" in that environment.
	perEnv, needsKey bool
	path             func(k *keyledger.Key) string
	form             func(actor, envName, uniq string) url.Values
	want             func(actor, envName string, k *keyledger.Key) authzWant
	// check verifies the database afterwards (state changed iff allowed).
	check func(t *testing.T, env *testEnv, k *keyledger.Key, form url.Values, got authzWant)
	// prepare runs after the key is created and before the request, e.g.
	// to rotate it; it returns values it stored, which no answer may show.
	prepare func(t *testing.T, env *testEnv, k *keyledger.Key, uniq string) []string
	// verifier: the route's server checks keys against a fake provider
	// that accepts every key.
	verifier bool
	// providers: the route's server reaches the provider admin API fakes
	// (providers_test.go).
	providers bool
	// header is sent with the request (e.g. Accept: application/json).
	header http.Header
}

func signedIn(actor string) bool { return actor != actorAnonymous && actor != actorDeactivated }

// mayEdit: the key's owner, leads and admins.
func mayEdit(actor string) bool {
	return actor == actorAdmin || actor == actorLead || actor == actorOwner
}

// mayReveal: the seeded policies (production: owner, leads and admins;
// elsewhere any active user), for the key owned by "member".
func mayReveal(actor, envName string) bool {
	return signedIn(actor) && (envName != "production" || mayEdit(actor))
}

// needUser is what a route behind sign-in answers: anonymous visitors and
// dead sessions are sent to sign in (GET) or refused (anything else).
//
// A POST from a deactivated user is a form rendered in the session that
// died with the deactivation; its token is bound to that session, so the
// CSRF guard refuses it as expired (403) before authentication would (401).
// Both refuse; 403 is what the server must answer.
func needUser(actor, method, path string, ok authzWant) authzWant {
	if signedIn(actor) {
		return ok
	}
	if method == http.MethodGet {
		return authzWant{status: http.StatusSeeOther, location: "/login?next=" + url.QueryEscape(path)}
	}
	if actor == actorDeactivated {
		return authzWant{status: http.StatusForbidden}
	}
	return authzWant{status: http.StatusUnauthorized}
}

// staleForm is needUser for the routes outside sign-in (POST /login,
// POST /logout): a deactivated user's form is refused as expired.
func staleForm(w authzWant) func(string, string, *keyledger.Key) authzWant {
	return func(a, _ string, _ *keyledger.Key) authzWant {
		if a == actorDeactivated {
			return no403
		}
		return w
	}
}

func keyPath(suffix string) func(*keyledger.Key) string {
	return func(k *keyledger.Key) string { return "/keys/" + k.ID + suffix }
}

func fixedPath(p string) func(*keyledger.Key) string { return func(*keyledger.Key) string { return p } }

var (
	ok200 = authzWant{status: http.StatusOK}
	no403 = authzWant{status: http.StatusForbidden}
	nf404 = authzWant{status: http.StatusNotFound}
)

// authzCases is the matrix. Every route of Server.Routes() must appear.
func authzCases() []authzCase {
	public := func(w authzWant) func(string, string, *keyledger.Key) authzWant {
		return func(string, string, *keyledger.Key) authzWant { return w }
	}
	everyone := func(method, path string, w authzWant) func(string, string, *keyledger.Key) authzWant {
		return func(a, _ string, _ *keyledger.Key) authzWant { return needUser(a, method, path, w) }
	}
	editors := func(method, suffix string, w func(k *keyledger.Key) authzWant) func(string, string, *keyledger.Key) authzWant {
		return func(a, _ string, k *keyledger.Key) authzWant {
			if !mayEdit(a) {
				return needUser(a, method, "/keys/"+k.ID+suffix, no403)
			}
			return w(k)
		}
	}
	rotators := func(suffix string, w func(k *keyledger.Key) authzWant) func(string, string, *keyledger.Key) authzWant {
		return func(a, _ string, k *keyledger.Key) authzWant {
			if a != actorAdmin && a != actorLead {
				return needUser(a, http.MethodPost, "/keys/"+k.ID+suffix, no403)
			}
			return w(k)
		}
	}
	editForm := func(_, _, uniq string) url.Values {
		return url.Values{"project": {"edited-" + uniq}, "owner": {"member@example.com"}, "scope": {"All"},
			"rotation_days": {"30"}, "description": {"edited by the authz matrix"}}
	}
	reveal := func(withReason bool) func(string, string, *keyledger.Key) authzWant {
		return func(a, envName string, k *keyledger.Key) authzWant {
			var w authzWant
			switch {
			case envName == "production" && !mayEdit(a):
				w = no403
			case envName != "development" && !withReason:
				w = authzWant{status: http.StatusUnprocessableEntity}
			default:
				w = authzWant{status: http.StatusOK, revealed: true}
			}
			return needUser(a, http.MethodPost, "/keys/"+k.ID+"/reveal", w)
		}
	}
	checkReveals := func(t *testing.T, env *testEnv, k *keyledger.Key, _ url.Values, got authzWant) {
		want := 0
		if got.revealed {
			want = 1
		}
		if n := authzRevealCount(env, t, k.ID); n != want {
			t.Errorf("%d reveal events recorded, want %d", n, want)
		}
	}
	return append([]authzCase{
		{route: "GET /healthz", method: "GET", path: fixedPath("/healthz"), want: public(ok200)},
		{route: "GET /readyz", method: "GET", path: fixedPath("/readyz"), want: public(ok200)},
		{route: "GET /login", method: "GET", path: fixedPath("/login"), want: func(a, _ string, _ *keyledger.Key) authzWant {
			if signedIn(a) {
				return authzWant{status: http.StatusSeeOther, location: "/keys"}
			}
			return ok200
		}},
		{route: "POST /login", method: "POST", path: fixedPath("/login"),
			form: func(string, string, string) url.Values {
				return url.Values{"email": {"member2@example.com"}, "password": {Password}}
			},
			want: staleForm(authzWant{status: http.StatusSeeOther, location: "/keys"})},
		// Signing out of a session that is already gone just shows the
		// sign-in page, whatever the token: there is nothing to protect.
		{route: "POST /logout", method: "POST", path: fixedPath("/logout"),
			want: func(string, string, *keyledger.Key) authzWant {
				return authzWant{status: http.StatusSeeOther, location: "/login"}
			}},
		{route: "GET /", method: "GET", path: fixedPath("/"),
			want: everyone("GET", "/", authzWant{status: http.StatusSeeOther, location: "/keys"})},
		{route: "GET /keys", method: "GET", path: fixedPath("/keys"), want: everyone("GET", "/keys", ok200)},
		{route: "GET /keys/new", method: "GET", path: fixedPath("/keys/new"), want: everyone("GET", "/keys/new", ok200)},
		{route: "POST /keys", method: "POST", perEnv: true, path: fixedPath("/keys"),
			form: func(a, envName, uniq string) url.Values {
				owner := "member@example.com"
				if signedIn(a) {
					owner = authzLoginName[a] + "@example.com"
				}
				return url.Values{"name": {"matrix " + uniq}, "project": {"checkout"}, "environment": {envName},
					"owner": {owner}, "value": {authzSecret()}}
			},
			// Post/redirect/get: the Location names the new key, checked below.
			want: everyone("POST", "/keys", authzWant{status: http.StatusSeeOther}),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, form url.Values, got authzWant) {
				page, err := env.Store.ListKeys(context.Background(), keyledger.Actor{User: env.Users["admin"]}, store.KeyFilter{Q: form.Get("name")})
				if err != nil {
					t.Fatal(err)
				}
				created := got.status == http.StatusSeeOther
				if (page.Total == 1) != created {
					t.Errorf("%d keys named %q after status %d", page.Total, form.Get("name"), got.status)
				}
				if created && page.Total == 1 {
					if want := "/keys/" + page.Keys[0].ID + "?registered=1"; got.location != want {
						t.Errorf("Location %q, want %q", got.location, want)
					}
				}
			}},
		{route: "GET /keys/:id", method: "GET", perEnv: true, needsKey: true, path: keyPath(""),
			want: func(a, _ string, k *keyledger.Key) authzWant { return needUser(a, "GET", "/keys/"+k.ID, ok200) }},
		{route: "GET /keys/:id/edit", method: "GET", perEnv: true, needsKey: true, path: keyPath("/edit"),
			want: editors("GET", "/edit", func(*keyledger.Key) authzWant { return ok200 })},
		{route: "POST /keys/:id/edit", method: "POST", perEnv: true, needsKey: true, path: keyPath("/edit"), form: editForm,
			want: editors("POST", "/edit", func(k *keyledger.Key) authzWant {
				return authzWant{status: http.StatusSeeOther, location: "/keys/" + k.ID}
			}),
			check: func(t *testing.T, env *testEnv, k *keyledger.Key, form url.Values, got authzWant) {
				after := authzGetKey(env, t, k.ID)
				if changed := after.Project == form.Get("project"); changed != (got.status == http.StatusSeeOther) {
					t.Errorf("project %q after status %d", after.Project, got.status)
				}
			}},
		{route: "POST /keys/:id/archive", method: "POST", perEnv: true, needsKey: true, path: keyPath("/archive"),
			want: editors("POST", "/archive", func(k *keyledger.Key) authzWant {
				return authzWant{status: http.StatusSeeOther, location: "/keys/" + k.ID}
			}),
			check: func(t *testing.T, env *testEnv, k *keyledger.Key, _ url.Values, got authzWant) {
				if archived := authzGetKey(env, t, k.ID).Archived(); archived != (got.status == http.StatusSeeOther) {
					t.Errorf("archived = %v after status %d", archived, got.status)
				}
			}},
		// The matrix's key is linked to no provider key: whoever may
		// revoke it learns there is nothing to revoke there (409), after
		// the reason is checked (422); nothing is called.
		{route: "POST /keys/:id/provider-revoke", name: "with reason", method: "POST", perEnv: true, needsKey: true, path: keyPath("/provider-revoke"),
			form: func(string, string, string) url.Values { return url.Values{"reason": {"authz matrix"}} },
			want: editors("POST", "/provider-revoke", func(*keyledger.Key) authzWant { return authzWant{status: http.StatusConflict} })},
		{route: "POST /keys/:id/provider-revoke", name: "without reason", method: "POST", perEnv: true, needsKey: true, path: keyPath("/provider-revoke"),
			want: editors("POST", "/provider-revoke", func(*keyledger.Key) authzWant { return authzWant{status: http.StatusUnprocessableEntity} })},
		// Rotation at the provider is leads' and admins'. The matrix's key
		// is linked to no provider key: turning it on is refused with the
		// reason (409), turning it off (it is off) is done, and "Rotate
		// now" is refused (409), recorded as a failed attempt; nothing is
		// called and the version stays.
		{route: "POST /keys/:id/auto-rotate", name: "on", method: "POST", perEnv: true, needsKey: true, path: keyPath("/auto-rotate"),
			form: func(string, string, string) url.Values { return url.Values{"enabled": {"on"}} },
			want: rotators("/auto-rotate", func(*keyledger.Key) authzWant { return authzWant{status: http.StatusConflict} }),
			check: func(t *testing.T, env *testEnv, k *keyledger.Key, _ url.Values, _ authzWant) {
				authzCheckActions(t, env, k, keyledger.ActionAutoRotateOn, false)
			}},
		{route: "POST /keys/:id/auto-rotate", name: "off", method: "POST", perEnv: true, needsKey: true, path: keyPath("/auto-rotate"),
			form: func(string, string, string) url.Values { return url.Values{"enabled": {"off"}} },
			want: rotators("/auto-rotate", func(k *keyledger.Key) authzWant {
				return authzWant{status: http.StatusSeeOther, location: "/keys/" + k.ID + "?auto_rotate=off"}
			})},
		{route: "POST /keys/:id/provider-rotate", method: "POST", perEnv: true, needsKey: true, path: keyPath("/provider-rotate"),
			want: rotators("/provider-rotate", func(*keyledger.Key) authzWant { return authzWant{status: http.StatusConflict} }),
			check: func(t *testing.T, env *testEnv, k *keyledger.Key, _ url.Values, got authzWant) {
				if v := authzGetKey(env, t, k.ID).CurrentVersion; v != 1 {
					t.Errorf("current version %d after status %d", v, got.status)
				}
				authzCheckActions(t, env, k, keyledger.ActionProviderRotateFailed, got.status == http.StatusConflict)
			}},
		{route: "POST /keys/:id/reveal", name: "with reason", method: "POST", perEnv: true, needsKey: true, path: keyPath("/reveal"),
			form:  func(string, string, string) url.Values { return url.Values{"reason": {"authz matrix"}} },
			want:  reveal(true),
			check: checkReveals},
		{route: "POST /keys/:id/reveal", name: "without reason", method: "POST", perEnv: true, needsKey: true, path: keyPath("/reveal"),
			want:  reveal(false),
			check: checkReveals},
		{route: "POST /keys/:id/reveal", name: "old version in grace", method: "POST", perEnv: true, needsKey: true, path: keyPath("/reveal"),
			prepare: authzRotated,
			form: func(string, string, string) url.Values {
				return url.Values{"reason": {"authz matrix"}, "version": {"1"}}
			},
			want: reveal(true),
			check: func(t *testing.T, env *testEnv, k *keyledger.Key, form url.Values, got authzWant) {
				checkReveals(t, env, k, form, got)
				if got.revealed && !strings.Contains(got.body, "version 1") {
					t.Error("the reveal of version 1 does not say which version it shows")
				}
			}},
		// The key list's quick copy: the same POST asking for JSON, with no
		// reason; only development asks for nothing more, so staging and
		// production are refused with a reason (422) even for their owner.
		{route: "POST /keys/:id/reveal", name: "quick copy", method: "POST", perEnv: true, needsKey: true, path: keyPath("/reveal"),
			header: http.Header{"Accept": {"application/json"}},
			form:   func(string, string, string) url.Values { return url.Values{"reason": {"sent along"}} },
			want: func(a, envName string, k *keyledger.Key) authzWant {
				var w authzWant
				switch {
				case envName == "production" && !mayEdit(a):
					w = no403
				case envName != "development":
					w = authzWant{status: http.StatusUnprocessableEntity}
				default:
					w = authzWant{status: http.StatusOK, revealed: true, line: true}
				}
				return needUser(a, http.MethodPost, "/keys/"+k.ID+"/reveal", w)
			},
			check: checkReveals},
		{route: "GET /keys/:id/rotate", method: "GET", perEnv: true, needsKey: true, path: keyPath("/rotate"),
			want: editors("GET", "/rotate", func(*keyledger.Key) authzWant { return ok200 }),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if got.status == http.StatusOK && !strings.Contains(got.body, `data-testid="rotate-submit"`) {
					t.Error("the rotate page has no form")
				}
			}},
		{route: "POST /keys/:id/rotate", method: "POST", perEnv: true, needsKey: true, path: keyPath("/rotate"),
			form: func(string, string, string) url.Values {
				return url.Values{"value": {authzSecret()}, "grace_days": {"7"}, "version": {"1"}}
			},
			want: editors("POST", "/rotate", func(k *keyledger.Key) authzWant {
				return authzWant{status: http.StatusSeeOther, location: "/keys/" + k.ID + "?rotated=2"}
			}),
			check: func(t *testing.T, env *testEnv, k *keyledger.Key, _ url.Values, got authzWant) {
				want := 1
				if got.status == http.StatusSeeOther {
					want = 2
				}
				if v := authzGetKey(env, t, k.ID).CurrentVersion; v != want {
					t.Errorf("current version %d after status %d, want %d", v, got.status, want)
				}
				authzCheckActions(t, env, k, keyledger.ActionKeyRotate, got.status == http.StatusSeeOther)
			}},
		{route: "POST /keys/:id/rollback", method: "POST", perEnv: true, needsKey: true, path: keyPath("/rollback"),
			prepare: authzRotated,
			form:    func(string, string, string) url.Values { return url.Values{"version": {"1"}} },
			want: editors("POST", "/rollback", func(k *keyledger.Key) authzWant {
				return authzWant{status: http.StatusSeeOther, location: "/keys/" + k.ID + "?rolledback=1"}
			}),
			check: func(t *testing.T, env *testEnv, k *keyledger.Key, _ url.Values, got authzWant) {
				want := 2
				if got.status == http.StatusSeeOther {
					want = 1
				}
				if v := authzGetKey(env, t, k.ID).CurrentVersion; v != want {
					t.Errorf("current version %d after status %d, want %d", v, got.status, want)
				}
				authzCheckActions(t, env, k, keyledger.ActionKeyRollback, got.status == http.StatusSeeOther)
			}},
		// Without a verifier the check is unavailable (503) to those who
		// may use it, and still forbidden to those who may not.
		{route: "POST /keys/:id/verify", name: "no verifier", method: "POST", perEnv: true, needsKey: true, path: keyPath("/verify"),
			want: func(a, envName string, k *keyledger.Key) authzWant {
				w := authzWant{status: http.StatusServiceUnavailable}
				if !mayReveal(a, envName) && !mayEdit(a) {
					w = no403
				}
				return needUser(a, "POST", "/keys/"+k.ID+"/verify", w)
			},
			check: func(t *testing.T, env *testEnv, k *keyledger.Key, form url.Values, got authzWant) {
				authzCheckVerified(t, env, k, "")
				checkReveals(t, env, k, form, got)
			}},
		{route: "POST /keys/:id/verify", name: "with verifier", method: "POST", perEnv: true, needsKey: true, path: keyPath("/verify"),
			verifier: true,
			want: func(a, envName string, k *keyledger.Key) authzWant {
				w := authzWant{status: http.StatusSeeOther, location: "/keys/" + k.ID + "?verified=ok"}
				if !mayReveal(a, envName) && !mayEdit(a) {
					w = no403
				}
				return needUser(a, "POST", "/keys/"+k.ID+"/verify", w)
			},
			check: func(t *testing.T, env *testEnv, k *keyledger.Key, form url.Values, got authzWant) {
				want := ""
				if got.status == http.StatusSeeOther {
					want = keyledger.VerifyOK
				}
				authzCheckVerified(t, env, k, want)
				authzCheckActions(t, env, k, keyledger.ActionKeyVerify, want != "")
				checkReveals(t, env, k, form, got)
			}},
		{route: "POST /keys/:id/verify", name: "by hand", method: "POST", perEnv: true, needsKey: true, path: keyPath("/verify"),
			form: func(string, string, string) url.Values {
				return url.Values{"manual": {"1"}, "note": {"listed models with it"}}
			},
			want: editors("POST", "/verify", func(k *keyledger.Key) authzWant {
				return authzWant{status: http.StatusSeeOther, location: "/keys/" + k.ID + "?verified=manual"}
			}),
			check: func(t *testing.T, env *testEnv, k *keyledger.Key, _ url.Values, got authzWant) {
				want := ""
				if got.status == http.StatusSeeOther {
					want = keyledger.VerifyManual
				}
				authzCheckVerified(t, env, k, want)
				authzCheckActions(t, env, k, keyledger.ActionKeyVerify, want != "")
			}},
		{route: "GET /rotation", method: "GET", path: fixedPath("/rotation"), want: everyone("GET", "/rotation", ok200)},
		{route: "GET /export", method: "GET", perEnv: true, needsKey: true, prepare: authzOwnProject,
			path: authzExportPath,
			want: func(a, _ string, k *keyledger.Key) authzWant { return needUser(a, "GET", authzExportPath(k), ok200) },
			check: func(t *testing.T, env *testEnv, k *keyledger.Key, _ url.Values, got authzWant) {
				if got.status != http.StatusOK {
					return
				}
				included, refused := exportLists(got.body)
				a := got.actor
				wantIn := mayReveal(a, k.Environment)
				if strings.Contains(included, k.Name) != wantIn || strings.Contains(refused, k.Name) == wantIn {
					t.Errorf("as %s the key is listed as included %v / left out %v, want included %v",
						a, strings.Contains(included, k.Name), strings.Contains(refused, k.Name), wantIn)
				}
				authzCheckActions(t, env, k, keyledger.ActionKeyExport, false)
			}},
		{route: "POST /export", name: "with reason", method: "POST", perEnv: true, needsKey: true, prepare: authzOwnProject,
			path: fixedPath("/export"),
			form: func(_, envName, uniq string) url.Values {
				return url.Values{"environment": {envName}, "project": {"p-" + uniq}, "format": {"json"}, "reason": {"authz matrix"}}
			},
			want: authzExport(true),
			check: func(t *testing.T, env *testEnv, k *keyledger.Key, form url.Values, got authzWant) {
				authzCheckActions(t, env, k, keyledger.ActionKeyExport, got.revealed)
				checkReveals(t, env, k, form, authzWant{})
				if got.status == http.StatusOK && !got.revealed && !strings.Contains(got.body, "nothing to download") {
					t.Error("an export with nothing allowed does not say there is nothing to download")
				}
			}},
		{route: "POST /export", name: "without reason", method: "POST", perEnv: true, needsKey: true, prepare: authzOwnProject,
			path: fixedPath("/export"),
			form: func(_, envName, uniq string) url.Values {
				return url.Values{"environment": {envName}, "project": {"p-" + uniq}, "format": {"json"}}
			},
			want: authzExport(false),
			check: func(t *testing.T, env *testEnv, k *keyledger.Key, form url.Values, got authzWant) {
				authzCheckActions(t, env, k, keyledger.ActionKeyExport, got.revealed)
				checkReveals(t, env, k, form, authzWant{})
			}},
		{route: "GET /audit", method: "GET", path: fixedPath("/audit"), want: func(a, _ string, _ *keyledger.Key) authzWant {
			if a == actorAdmin || a == actorLead {
				return ok200
			}
			return needUser(a, "GET", "/audit", no403)
		}},
		// Echo's catch-alls for the signed-in group: unknown addresses are
		// behind sign-in too, then not found. A reveal by GET lands here.
		{route: "echo_route_not_found /*", name: "GET unknown page", method: "GET", path: fixedPath("/no-such-page"),
			want: everyone("GET", "/no-such-page", nf404)},
		{route: "echo_route_not_found /*", name: "POST unknown page", method: "POST", path: fixedPath("/no-such-page"),
			want: everyone("POST", "/no-such-page", nf404)},
		{route: "echo_route_not_found /*", name: "reveal by GET", method: "GET", perEnv: true, needsKey: true, path: keyPath("/reveal"),
			want: func(a, _ string, k *keyledger.Key) authzWant {
				return needUser(a, "GET", "/keys/"+k.ID+"/reveal", nf404)
			},
			check: checkReveals},
		{route: "echo_route_not_found /*", name: "PUT a key", method: "PUT", perEnv: true, needsKey: true, path: keyPath(""),
			want: func(a, _ string, k *keyledger.Key) authzWant { return needUser(a, "PUT", "/keys/"+k.ID, nf404) }},
		{route: "echo_route_not_found /", name: "POST /", method: "POST", path: fixedPath("/"),
			want: everyone("POST", "/", nf404)},
	}, append(append(append(append(authzGovernanceCases(), authzAccountCases()...), authzOIDCCases()...), authzProviderCases()...), authzLeakCases()...)...)
}

func TestAuthzEveryRouteIsCovered(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	covered := map[string]bool{}
	for _, c := range authzCases() {
		covered[c.route] = true
	}
	// The JSON API's routes (bearer tokens, not browser sessions) have
	// their own matrix: apiAuthzCases in api_authz_test.go.
	for _, c := range apiAuthzCases() {
		covered[c.route] = true
	}
	registered := map[string]bool{}
	for _, r := range env.Server.Routes() {
		registered[r] = true
		if !covered[r] {
			t.Errorf("route %q has no authorization cases: add it to authzCases in web/authz_test.go", r)
		}
	}
	var stale []string
	for r := range covered {
		if !registered[r] {
			stale = append(stale, r)
		}
	}
	sort.Strings(stale)
	for _, r := range stale {
		t.Errorf("authzCases covers %q, which the server no longer registers", r)
	}
}

// TestAuthzMatrix runs every case of authzCases for every actor (and every
// environment where the route acts on a key), each route on its own env.
func TestAuthzMatrix(t *testing.T) {
	t.Parallel()
	total := 0
	for _, rc := range authzCases() {
		envs := []string{""}
		if rc.perEnv {
			envs = authzEnvs
		}
		total += len(envs) * len(authzActors)
	}
	t.Logf("%d matrix cells", total)
	for _, rc := range authzCases() {
		name := rc.route
		if rc.name != "" {
			name += " " + rc.name
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var opts []envOption
			if rc.verifier {
				opts = append(opts, withVerifier(newFakeOpenAI(t, nil).verifier(t)))
			}
			if rc.providers {
				opts = append(opts, newProviderFakes(t).option())
			}
			env := newEnv(t, opts...)
			var secrets []string // every value that exists in this env
			envs := []string{""}
			if rc.perEnv {
				envs = authzEnvs
			}
			for _, envName := range envs {
				for _, actor := range authzActors {
					label := actor
					if envName != "" {
						label = envName + "/" + actor
					}
					t.Run(label, func(t *testing.T) {
						uniq := authzRand(4)
						var k *keyledger.Key
						var value string
						if rc.needsKey {
							k, value = authzKey(env, t, "member", envName, "matrix "+uniq)
							secrets = append(secrets, value)
						}
						if rc.prepare != nil {
							secrets = append(secrets, rc.prepare(t, env, k, uniq)...)
						}
						var form url.Values
						if rc.form != nil {
							form = rc.form(actor, envName, uniq)
							if v := form.Get("value"); v != "" {
								secrets = append(secrets, v)
							}
						}
						c := authzActorClient(env, t, actor)
						path := rc.path(k)
						want := rc.want(actor, envName, k)
						resp, body := authzSend(c, rc.method, path, form, rc.header)
						got := authzWant{status: resp.StatusCode, location: resp.Header.Get("Location"), body: body, actor: actor}
						if got.status != want.status {
							t.Errorf("%s %s as %s: status %d, want %d\n%s", rc.method, path, actor, got.status, want.status, authzMain(body, ""))
						}
						if want.location != "" && got.location != want.location {
							t.Errorf("%s %s as %s: Location %q, want %q", rc.method, path, actor, got.location, want.location)
						}
						if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
							t.Errorf("Cache-Control %q, want no-store", cc)
						}
						got.revealed = value != "" && strings.Contains(body, value)
						if want.revealed {
							if !got.revealed {
								t.Errorf("%s %s as %s: an allowed reveal does not carry the value", rc.method, path, actor)
							}
							switch {
							case want.download:
								if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") {
									t.Errorf("%s %s as %s: Content-Disposition %q, want an attachment", rc.method, path, actor, cd)
								}
							case want.line:
								if !strings.Contains(body, `"line":`) {
									t.Errorf("%s %s as %s: an allowed quick copy does not answer the line", rc.method, path, actor)
								}
							case !strings.Contains(body, `data-testid="secret-value"`):
								t.Errorf("%s %s as %s: an allowed reveal does not show the value", rc.method, path, actor)
							}
						} else if cd := resp.Header.Get("Content-Disposition"); cd != "" && !want.file {
							t.Errorf("%s %s as %s: status %d with Content-Disposition %q", rc.method, path, actor, got.status, cd)
						} else if want.file && !strings.HasPrefix(cd, "attachment;") {
							t.Errorf("%s %s as %s: Content-Disposition %q, want an attachment", rc.method, path, actor, cd)
						}
						for _, s := range secrets {
							if s == value && want.revealed {
								continue
							}
							if strings.Contains(body, s) {
								t.Errorf("%s %s as %s (status %d): the body contains a key's value", rc.method, path, actor, got.status)
							}
						}
						if rc.check != nil {
							rc.check(t, env, k, form, got)
						}
					})
				}
			}
			logs := env.Logs.String()
			for _, s := range secrets {
				if strings.Contains(logs, s) {
					t.Errorf("a key's value appears in the server log")
				}
			}
		})
	}
}

// TestAuthzUnknownKeyIDs: a key id that does not exist, or is not a uuid
// at all, is "not found" with the same page for everyone signed in, on
// every route that takes an id; signed-out visitors cannot tell it from an
// existing key.
func TestAuthzUnknownKeyIDs(t *testing.T) {
	t.Parallel()
	// With a verifier, so that POST verify looks the key up rather than
	// saying checks are not configured.
	env := newEnv(t, withVerifier(newFakeOpenAI(t, nil).verifier(t)))
	existing, value := authzKey(env, t, "member", "production", "real key")
	ids := []string{
		"6f1c2b7e-8a4d-4c3b-9e2f-1a2b3c4d5e6f", // well-formed, unknown
		"00000000-0000-0000-0000-000000000000",
		"not-a-uuid",
		"12345",
		existing.ID + "0",
		strings.Replace(existing.ID, "-", "", 1),
		url.PathEscape("' OR '1'='1"),
		"%00",
	}
	// Valid input for every route, so that what is probed is the lookup.
	form := url.Values{"project": {"checkout"}, "owner": {"member@example.com"}, "reason": {"probing"}, "description": {"x"},
		"value": {authzSecret()}, "grace_days": {"7"}, "version": {"1"}}
	var routes []string
	for _, r := range env.Server.Routes() {
		if strings.Contains(r, "/:id") && !strings.HasPrefix(r, "echo_") && !isAPIRoute(r) { // API: TestAPIUnknownKeyIDs
			routes = append(routes, r)
		}
	}
	sort.Strings(routes)
	if len(routes) < 5 {
		t.Fatalf("only %d routes with :id: %v", len(routes), routes)
	}
	clients := map[string]*client{}
	for _, a := range authzActors {
		clients[a] = authzActorClient(env, t, a)
	}
	reference := ""
	for _, r := range routes {
		method, pattern, _ := strings.Cut(r, " ")
		for _, id := range ids {
			path := strings.Replace(pattern, ":id", id, 1)
			realPath := strings.Replace(pattern, ":id", existing.ID, 1)
			for _, a := range authzActors {
				c := clients[a]
				resp, body := authzSend(c, method, path, cloneValues(form), nil)
				if strings.Contains(body, value) {
					t.Errorf("%s %s as %s: the body contains a key's value", method, path, a)
				}
				if !signedIn(a) {
					// Same answer as for the existing key.
					want := needUser(a, method, realPath, authzWant{})
					if resp.StatusCode != want.status {
						t.Errorf("%s %s as %s: status %d, want %d", method, path, a, resp.StatusCode, want.status)
					}
					if want.status == http.StatusSeeOther && !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") {
						t.Errorf("%s %s as %s: Location %q", method, path, a, resp.Header.Get("Location"))
					}
					continue
				}
				if resp.StatusCode != http.StatusNotFound {
					t.Errorf("%s %s as %s: status %d, want 404\n%s", method, path, a, resp.StatusCode, authzMain(body, ""))
					continue
				}
				m := authzMain(body, resp.Header.Get("X-Request-Id"))
				if reference == "" {
					reference = m
					if !strings.Contains(m, "Key not found.") {
						t.Errorf("the not-found page does not say the key was not found:\n%s", m)
					}
				} else if m != reference {
					t.Errorf("%s %s as %s: the not-found page differs:\n got: %s\nwant: %s", method, path, a, m, reference)
				}
			}
		}
	}
	if authzRevealCount(env, t, existing.ID) != 0 {
		t.Error("probing revealed the existing key")
	}
	if strings.Contains(env.Logs.String(), value) {
		t.Error("a key's value appears in the server log")
	}
}

// TestAuthzAnonymousPostWithoutToken: the CSRF check runs before
// authentication, so a visitor with no CSRF cookie or token gets 403 on
// every POST route (the matrix sends a valid token to reach the 401).
func TestAuthzAnonymousPostWithoutToken(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	k, value := authzKey(env, t, "member", "development", "no token")
	for _, r := range env.Server.Routes() {
		method, pattern, _ := strings.Cut(r, " ")
		if method != http.MethodPost || isAPIRoute(r) { // the API has no CSRF: see TestAPIIgnoresCookies
			continue
		}
		path := strings.Replace(pattern, ":id", k.ID, 1)
		if path == "/logout" {
			// Without a session there is nothing to sign out of; the
			// answer is the sign-in page (see the matrix).
			continue
		}
		c := authzClient(env, t)
		resp, body := authzSend(c, method, path, url.Values{"_csrf": {""}, "reason": {"x"},
			"email": {"member@example.com"}, "password": {Password}}, nil)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "This form has expired") {
			t.Errorf("%s without a token: status %d, want 403 with the expired-form message", r, resp.StatusCode)
		}
		if strings.Contains(body, value) {
			t.Errorf("%s: the body contains a key's value", r)
		}
	}
	if n := authzRevealCount(env, t, k.ID); n != 0 || authzGetKey(env, t, k.ID).Archived() {
		t.Error("a POST without a token acted")
	}
}

// authzRotated rotates the matrix key to a second version as its owner
// (version 1 stays in its grace period) and returns the new value.
func authzRotated(t *testing.T, env *testEnv, k *keyledger.Key, _ string) []string {
	t.Helper()
	v2 := authzSecret()
	if _, err := env.Store.RotateKey(context.Background(), keyledger.Actor{User: env.Users["member"]}, k.ID,
		keyledger.RotateInput{Value: v2, GraceDays: "7"}); err != nil {
		t.Fatal(err)
	}
	return []string{v2}
}

// authzOwnProject moves the matrix key into a project of its own, so an
// export of that project holds this key only.
func authzOwnProject(t *testing.T, env *testEnv, k *keyledger.Key, uniq string) []string {
	t.Helper()
	k.Project = "p-" + uniq
	if _, err := env.Pool.Exec(context.Background(), "UPDATE keys SET project = $2 WHERE id = $1", k.ID, k.Project); err != nil {
		t.Fatal(err)
	}
	return nil
}

func authzExportPath(k *keyledger.Key) string {
	return "/export?environment=" + url.QueryEscape(k.Environment) + "&project=" + url.QueryEscape(k.Project)
}

// authzExport: the reason check comes first (staging and production ask
// for one), then each key is in the file if the actor may reveal it; an
// export with nothing allowed is a page saying so.
func authzExport(withReason bool) func(string, string, *keyledger.Key) authzWant {
	return func(a, envName string, _ *keyledger.Key) authzWant {
		var w authzWant
		switch {
		case envName != "development" && !withReason:
			w = authzWant{status: http.StatusUnprocessableEntity}
		case mayReveal(a, envName):
			w = authzWant{status: http.StatusOK, revealed: true, download: true}
		default:
			w = ok200
		}
		return needUser(a, http.MethodPost, "/export", w)
	}
}

// exportLists returns the "In the file" and "Left out" lists of the
// export page.
func exportLists(body string) (included, refused string) {
	list := func(id string) string {
		m := regexp.MustCompile(`(?s)<ul data-testid="` + id + `">(.*?)</ul>`).FindStringSubmatch(body)
		if m == nil {
			return ""
		}
		return html.UnescapeString(m[1])
	}
	return list("export-included"), list("export-refused")
}

// authzAuditCount counts a key's audit events of one action.
func authzAuditCount(env *testEnv, t testing.TB, keyID, action string) int {
	t.Helper()
	page, err := env.Store.ListAudit(context.Background(), keyledger.Actor{User: env.Users["admin"]},
		store.AuditFilter{KeyID: keyID, Action: action, Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Events)
}

// authzCheckActions: one event of action for the key iff done.
func authzCheckActions(t *testing.T, env *testEnv, k *keyledger.Key, action string, done bool) {
	t.Helper()
	want := 0
	if done {
		want = 1
	}
	if n := authzAuditCount(env, t, k.ID, action); n != want {
		t.Errorf("%d %s events, want %d", n, action, want)
	}
}

// authzCheckVerified: the key's last check has result want ("": never
// checked).
func authzCheckVerified(t *testing.T, env *testEnv, k *keyledger.Key, want string) {
	t.Helper()
	after := authzGetKey(env, t, k.ID)
	switch {
	case want == "" && after.LastVerifiedAt != nil:
		t.Errorf("the key was checked (%q)", after.VerifyResult)
	case want != "" && (after.LastVerifiedAt == nil || after.VerifyResult != want):
		t.Errorf("verify result %q (at %v), want %q", after.VerifyResult, after.LastVerifiedAt, want)
	}
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
