package web_test

import (
	"context"
	"net/http"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web/wire"
)

// The JSON API's authorization matrix. The browser matrix of
// authz_test.go models a browser: cookie sessions, forms with CSRF tokens,
// redirects to the sign-in page, HTML pages with the value in a
// data-testid element, no-store on everything. None of that applies to
// /api/v1, which honours only bearer tokens, speaks JSON and has token
// scopes as a second dimension beside roles. So the API routes are covered
// here instead: TestAuthzEveryRouteIsCovered counts the routes of
// apiAuthzCases as covered (and TestAuthzUnknownKeyIDs and
// TestAuthzAnonymousPostWithoutToken, which probe with browser clients,
// skip them), and TestAPIAuthzMatrix walks every /api/v1 route for every
// kind of caller and, where the route acts on a key, every environment,
// validating each answer against the OpenAPI document.

// API callers. The key under test is always owned by "member".
const (
	apiNoToken     = "no-token"
	apiOwner       = "member-owner"
	apiNonOwner    = "member-non-owner"
	apiLead        = "lead"
	apiAdmin       = "admin"
	apiDeactivated = "deactivated-user-token"
	apiReadOnly    = "read-only-token" // the owner's, with the read scope only
)

var apiActors = []string{apiNoToken, apiOwner, apiNonOwner, apiLead, apiAdmin, apiDeactivated, apiReadOnly}

// apiAuthzEnvs: the seeded environments, and ci-production: production's
// policy (owner, leads, admins; reason; sensitive) with token reveals
// allowed by an admin.
var apiAuthzEnvs = []string{"development", "staging", "production", "ci-production"}

// isAPIRoute reports whether a route of Server.Routes() belongs to the
// JSON API (covered by apiAuthzCases, not by the browser matrix).
func isAPIRoute(route string) bool {
	_, path, _ := strings.Cut(route, " ")
	return path == "/api/*" || path == "/api/v1" || strings.HasPrefix(path, "/api/v1/")
}

func apiLive(actor string) bool { return actor != apiNoToken && actor != apiDeactivated }

// apiMayEdit: the key's owner, leads and admins (with a write token).
func apiMayEdit(actor string) bool { return actor == apiOwner || actor == apiLead || actor == apiAdmin }

// apiPolicyReveal: the environment's policy for the key owned by member.
func apiPolicyReveal(actor, envName string) bool {
	restricted := envName == "production" || envName == "ci-production"
	return apiLive(actor) && (!restricted || apiMayEdit(actor) || actor == apiReadOnly)
}

// authed is what a route behind the bearer token answers: 401 without a
// valid token, else ok.
func authed(actor string, ok int) int {
	if !apiLive(actor) {
		return http.StatusUnauthorized
	}
	return ok
}

// scoped is authed for a route whose scope the read-only token lacks.
func scoped(actor string, ok int) int {
	if actor == apiReadOnly {
		return authed(actor, http.StatusForbidden)
	}
	return authed(actor, ok)
}

// apiAuthzCase is one way of calling one API route.
type apiAuthzCase struct {
	route  string // exactly as listed by Server.Routes()
	name   string
	method string
	// perEnv: once per environment of apiAuthzEnvs; needsKey: with a
	// fresh key owned by member in that environment.
	perEnv, needsKey bool
	path             func(k *keyledger.Key) string
	body             func(a *apiT, actor, envName, uniq string) any
	want             func(actor, envName string) int
	// check verifies the database afterwards (state changed iff allowed).
	check func(t *testing.T, a *apiT, k *keyledger.Key, value, actor, envName string, r apiResp)
	// verifier: the server checks keys against a fake provider that
	// accepts every key.
	verifier bool
	// providers: the server reaches the provider admin API fakes; setup
	// runs before each cell (after its key is made) to add what the
	// route acts on.
	providers bool
	setup     func(t *testing.T, a *apiT, k *keyledger.Key, uniq string)
}

func apiKeyPath(suffix string) func(*keyledger.Key) string {
	return func(k *keyledger.Key) string { return "/api/v1/keys/" + k.ID + suffix }
}

func apiFixed(p string) func(*keyledger.Key) string { return func(*keyledger.Key) string { return p } }

func apiAlways(status int) func(string, string) int {
	return func(string, string) int { return status }
}

// apiCheckCount: n events of action for the key iff done, else none.
func apiCheckCount(t *testing.T, a *apiT, k *keyledger.Key, action string, done bool) {
	t.Helper()
	want := 0
	if done {
		want = 1
	}
	if n := len(a.withT(t).events(k.ID, action)); n != want {
		t.Errorf("%d %s events, want %d", n, action, want)
	}
}

// apiAuthzCases is the API matrix. Every /api route of Server.Routes()
// must appear.
func apiAuthzCases() []apiAuthzCase {
	reveal := func(withReason bool) apiAuthzCase {
		c := apiAuthzCase{route: "POST /api/v1/keys/:id/reveal", method: "POST", perEnv: true, needsKey: true, path: apiKeyPath("/reveal"),
			want: func(actor, envName string) int {
				switch {
				case !apiLive(actor):
					return http.StatusUnauthorized
				case actor == apiReadOnly || !apiPolicyReveal(actor, envName) || envName == "production":
					// No reveal scope; the policy; a sensitive
					// environment that does not allow token reveals.
					return http.StatusForbidden
				case !withReason && envName != "development":
					return http.StatusUnprocessableEntity
				}
				return http.StatusOK
			},
			check: func(t *testing.T, a *apiT, k *keyledger.Key, value, _, _ string, r apiResp) {
				apiCheckCount(t, a, k, keyledger.ActionKeyReveal, r.Status == http.StatusOK)
				if r.Status == http.StatusOK && r.str("value") != value {
					t.Errorf("revealed %q, want the key's value", r.str("value"))
				}
			}}
		if withReason {
			c.name = "with reason"
			c.body = func(*apiT, string, string, string) any { return map[string]any{"reason": "authz matrix"} }
		} else {
			c.name = "without reason"
		}
		return c
	}
	return append(append([]apiAuthzCase{
		{route: "GET /api/v1/openapi.json", method: "GET", path: apiFixed("/api/v1/openapi.json"), want: apiAlways(http.StatusOK)},
		{route: "GET /api/v1/whoami", method: "GET", path: apiFixed("/api/v1/whoami"),
			want: func(a, _ string) int { return authed(a, http.StatusOK) }},
		{route: "GET /api/v1/keys", method: "GET", perEnv: true, needsKey: true,
			path: func(k *keyledger.Key) string {
				return "/api/v1/keys?environment=" + k.Environment + "&q=" + strings.ReplaceAll(k.Name, " ", "+")
			},
			want: func(a, _ string) int { return authed(a, http.StatusOK) },
			check: func(t *testing.T, _ *apiT, k *keyledger.Key, _, _, _ string, r apiResp) {
				if r.Status == http.StatusOK && !strings.Contains(string(r.Body), k.ID) {
					t.Error("the listing does not show the key")
				}
			}},
		{route: "POST /api/v1/keys", method: "POST", perEnv: true, path: apiFixed("/api/v1/keys"),
			body: func(a *apiT, actor, envName, uniq string) any {
				return map[string]any{"name": "matrix " + uniq, "project": "checkout", "environment": envName,
					"owner": "member@example.com", "value": a.secret()}
			},
			want: func(a, _ string) int { return scoped(a, http.StatusCreated) },
			check: func(t *testing.T, a *apiT, _ *keyledger.Key, _, _, _ string, r apiResp) {
				var n int
				name := ""
				if r.Status == http.StatusCreated {
					var got wire.KeyCreated
					r.decode(t, &got)
					name = got.Key.Name
				}
				if err := a.env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM keys WHERE name = $1", name).Scan(&n); err != nil {
					t.Fatal(err)
				}
				if (n == 1) != (r.Status == http.StatusCreated) {
					t.Errorf("%d keys named %q after status %d", n, name, r.Status)
				}
			}},
		{route: "GET /api/v1/keys/:id", method: "GET", perEnv: true, needsKey: true, path: apiKeyPath(""),
			want: func(a, _ string) int { return authed(a, http.StatusOK) }},
		reveal(true),
		reveal(false),
		{route: "POST /api/v1/keys/:id/rotate", method: "POST", perEnv: true, needsKey: true, path: apiKeyPath("/rotate"),
			body: func(a *apiT, _, _, _ string) any { return map[string]any{"value": a.secret(), "expected_version": 1} },
			want: func(a, _ string) int {
				if apiLive(a) && a != apiReadOnly && !apiMayEdit(a) {
					return http.StatusForbidden
				}
				return scoped(a, http.StatusOK)
			},
			check: func(t *testing.T, a *apiT, k *keyledger.Key, _, _, _ string, r apiResp) {
				want := 1
				if r.Status == http.StatusOK {
					want = 2
				}
				if v := authzGetKey(a.env, t, k.ID).CurrentVersion; v != want {
					t.Errorf("current version %d after status %d", v, r.Status)
				}
			}},
		{route: "POST /api/v1/keys/:id/verify", method: "POST", perEnv: true, needsKey: true, path: apiKeyPath("/verify"), verifier: true,
			want: func(a, envName string) int {
				// Anyone who may reveal or edit the key.
				if apiLive(a) && a != apiReadOnly && !apiPolicyReveal(a, envName) {
					return http.StatusForbidden
				}
				return scoped(a, http.StatusOK)
			},
			check: func(t *testing.T, a *apiT, k *keyledger.Key, _, _, _ string, r apiResp) {
				want := ""
				if r.Status == http.StatusOK {
					want = keyledger.VerifyOK
				}
				authzCheckVerified(t, a.env, k, want)
			}},
		// Any live token with read answers, for any environment; the
		// candidate here is no stored value (TestAPILeakCheck checks hits).
		{route: "POST /api/v1/leaks/check", method: "POST", perEnv: true, needsKey: true, path: apiFixed("/api/v1/leaks/check"),
			body: func(_ *apiT, _, _, uniq string) any { return map[string]any{"candidates": []string{"sk-proj-" + uniq}} },
			want: func(a, _ string) int { return authed(a, http.StatusOK) },
			check: func(t *testing.T, _ *apiT, _ *keyledger.Key, _, _, _ string, r apiResp) {
				if r.Status == http.StatusOK && !strings.Contains(string(r.Body), `"hits":[]`) {
					t.Errorf("hits for a value nobody stored: %s", r.Body)
				}
			}},
		// Any live token with write may report; the value here is no
		// stored one (TestLeakReportAPI checks matches and the limit).
		{route: "POST /api/v1/leaks", method: "POST", perEnv: true, path: apiFixed("/api/v1/leaks"),
			body: func(_ *apiT, _, _, uniq string) any {
				return map[string]any{"value": "sk-proj-unknown" + uniq, "where": "authz matrix " + uniq}
			},
			want: func(a, _ string) int { return scoped(a, http.StatusOK) },
			check: func(t *testing.T, _ *apiT, _ *keyledger.Key, _, _, _ string, r apiResp) {
				if r.Status == http.StatusOK && r.JSON["matched"] != false {
					t.Errorf("a value nobody stored matched: %s", r.Body)
				}
			}},
		{route: "GET /api/v1/environments", method: "GET", path: apiFixed("/api/v1/environments"),
			want: func(a, _ string) int { return authed(a, http.StatusOK) }},
		{route: "GET /api/v1/audit", method: "GET", path: apiFixed("/api/v1/audit"),
			want: func(a, _ string) int {
				if a == apiLead || a == apiAdmin {
					return http.StatusOK
				}
				return authed(a, http.StatusForbidden)
			}},
		// The provider inventory: leads and admins, like the audit log.
		{route: "GET /api/v1/inventory", method: "GET", path: apiFixed("/api/v1/inventory"),
			want: func(a, _ string) int {
				if a == apiLead || a == apiAdmin {
					return http.StatusOK
				}
				return authed(a, http.StatusForbidden)
			}},
		{route: "POST /api/v1/export", method: "POST", perEnv: true, needsKey: true, path: apiFixed("/api/v1/export"),
			body: func(_ *apiT, _, envName, uniq string) any {
				return map[string]any{"environment": envName, "project": "p-" + uniq, "reason": "authz matrix", "format": "dotenv"}
			},
			want: func(a, envName string) int {
				if envName == "production" && apiLive(a) {
					return http.StatusForbidden // tokens may not export there
				}
				return scoped(a, http.StatusOK)
			},
			check: func(t *testing.T, a *apiT, k *keyledger.Key, value, actor, envName string, r apiResp) {
				exported := r.Status == http.StatusOK && apiPolicyReveal(actor, envName)
				apiCheckCount(t, a, k, keyledger.ActionKeyExport, exported)
				if r.Status != http.StatusOK {
					return
				}
				var got wire.Export
				r.decode(t, &got)
				if strings.Contains(got.Content, value) != exported || (len(got.Variables) == 1) != exported || (len(got.LeftOut) == 1) == exported {
					t.Errorf("export as %s in %s: %+v", actor, envName, got)
				}
			}},
	}, apiProviderCases()...), apiCatchAllCases()...)
}

// apiCatchAllCases: an unknown address under /api/ is a JSON 404, after
// authentication where it is under /api/v1.
func apiCatchAllCases() []apiAuthzCase {
	return []apiAuthzCase{
		// Catch-alls: an unknown address under /api/ is a JSON 404, after
		// authentication where it is under /api/v1.
		{route: "echo_route_not_found /api/*", name: "GET", method: "GET", path: apiFixed("/api/nope"), want: apiAlways(http.StatusNotFound)},
		{route: "echo_route_not_found /api/*", name: "POST another version", method: "POST", needsKey: true, path: func(k *keyledger.Key) string { return "/api/v2/keys/" + k.ID + "/reveal" },
			body: func(*apiT, string, string, string) any { return map[string]any{"reason": "x"} }, want: apiAlways(http.StatusNotFound),
			check: func(t *testing.T, a *apiT, k *keyledger.Key, _, _, _ string, _ apiResp) {
				apiCheckCount(t, a, k, keyledger.ActionKeyReveal, false)
			}},
		{route: "echo_route_not_found /api/v1", method: "GET", path: apiFixed("/api/v1"),
			want: func(a, _ string) int { return authed(a, http.StatusNotFound) }},
		{route: "echo_route_not_found /api/v1/*", name: "GET unknown", method: "GET", path: apiFixed("/api/v1/nope"),
			want: func(a, _ string) int { return authed(a, http.StatusNotFound) }},
		{route: "echo_route_not_found /api/v1/*", name: "reveal by GET", method: "GET", perEnv: true, needsKey: true, path: apiKeyPath("/reveal"),
			want: func(a, _ string) int { return authed(a, http.StatusNotFound) },
			check: func(t *testing.T, a *apiT, k *keyledger.Key, _, _, _ string, _ apiResp) {
				apiCheckCount(t, a, k, keyledger.ActionKeyReveal, false)
			}},
		// A method the address does not have: the catch-all, so
		// authenticated, then 404, and nothing happens.
		{route: "echo_route_not_found /api/v1/*", name: "PUT a key", method: "PUT", perEnv: true, needsKey: true, path: apiKeyPath(""),
			body: func(*apiT, string, string, string) any { return map[string]any{"project": "moved"} },
			want: func(a, _ string) int { return authed(a, http.StatusNotFound) },
			check: func(t *testing.T, a *apiT, k *keyledger.Key, _, _, _ string, _ apiResp) {
				if p := authzGetKey(a.env, t, k.ID).Project; p != k.Project {
					t.Errorf("project %q after PUT", p)
				}
			}},
	}
}

// apiTokens mints one token per caller of apiActors in env ("" for none).
func apiTokens(t *testing.T, a *apiT) map[string]string {
	t.Helper()
	ctx := context.Background()
	toks := map[string]string{apiNoToken: ""}
	for actor, who := range map[string]string{apiOwner: "member", apiNonOwner: "member2", apiLead: "lead", apiAdmin: "admin"} {
		toks[actor] = a.token(who)
	}
	toks[apiReadOnly] = a.token("member", keyledger.ScopeRead)
	// A lead with a full token, deactivated after minting it.
	local := "leaver-" + authzRand(4)
	u, err := a.env.Store.CreateUser(ctx, keyledger.SystemActor("test"), keyledger.NewUser{Email: local + "@example.com", Name: "Leaver", Role: keyledger.RoleLead, Password: Password})
	if err != nil {
		t.Fatal(err)
	}
	secret, _, err := a.env.Store.CreateToken(ctx, keyledger.Actor{StepUpAt: time.Now(), User: u}, "", keyledger.TokenInput{Name: "before leaving",
		Scopes: []string{keyledger.ScopeRead, keyledger.ScopeReveal, keyledger.ScopeWrite}})
	if err != nil {
		t.Fatal(err)
	}
	if r := a.get(secret, "/api/v1/whoami"); r.Status != http.StatusOK {
		t.Fatalf("before deactivation: whoami %d", r.Status)
	}
	if _, err := a.env.Store.DeactivateUser(ctx, keyledger.SystemActor("test"), u.Email); err != nil {
		t.Fatal(err)
	}
	toks[apiDeactivated] = secret
	return toks
}

// apiMatrixEnv is a fresh env with the ci-production environment and a
// rate limit no matrix reaches.
func apiMatrixEnv(t *testing.T, verifier bool, providers ...bool) *apiT {
	t.Helper()
	opts := []envOption{withAPIRate(100000)}
	if verifier {
		opts = append(opts, withVerifier(newFakeOpenAI(t, nil).verifier(t)))
	}
	if len(providers) > 0 && providers[0] {
		opts = append(opts, newProviderFakes(t).option())
	}
	env := newEnv(t, opts...)
	if _, err := env.Store.CreateEnvironment(context.Background(), keyledger.Actor{User: env.Users["admin"]}, keyledger.EnvironmentInput{
		Name: "ci-production", RevealPolicy: string(keyledger.RevealOwnerLeadsAdmins), ReasonRequired: true, Sensitive: true,
		RotationDays: "90", AllowTokenReveal: true}); err != nil {
		t.Fatal(err)
	}
	return newAPI(t, env)
}

// TestAPIAuthzMatrix runs every case of apiAuthzCases for every caller (and
// every environment where the route acts on a key), each route on its own
// env, validating every answer against the OpenAPI document.
func TestAPIAuthzMatrix(t *testing.T) {
	t.Parallel()
	total := 0
	for _, rc := range apiAuthzCases() {
		n := len(apiActors)
		if rc.perEnv {
			n *= len(apiAuthzEnvs)
		}
		total += n
	}
	t.Logf("%d API matrix cells", total)
	for _, rc := range apiAuthzCases() {
		name := rc.method + " " + strings.TrimPrefix(rc.route, rc.method+" ")
		if rc.name != "" {
			name += " " + rc.name
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			a := apiMatrixEnv(t, rc.verifier, rc.providers)
			toks := apiTokens(t, a)
			envs := []string{""}
			if rc.perEnv {
				envs = apiAuthzEnvs
			}
			for _, envName := range envs {
				for _, actor := range apiActors {
					label := actor
					if envName != "" {
						label = envName + "/" + actor
					}
					t.Run(label, func(t *testing.T) {
						a := a.withT(t)
						uniq := authzRand(4)
						var k *keyledger.Key
						var value string
						if rc.needsKey {
							keyEnv := envName
							if keyEnv == "" {
								keyEnv = "development"
							}
							k, value = a.key("member", keyEnv, "matrix "+uniq)
							if _, err := a.env.Pool.Exec(context.Background(), "UPDATE keys SET project = $2 WHERE id = $1", k.ID, "p-"+uniq); err != nil {
								t.Fatal(err)
							}
							k.Project = "p-" + uniq
						}
						if rc.setup != nil {
							rc.setup(t, a, k, uniq)
						}
						var body any
						if rc.body != nil {
							body = rc.body(a, actor, envName, uniq)
						}
						want := rc.want(actor, envName)
						r := a.do(toks[actor], rc.method, rc.path(k), body)
						if r.Status != want {
							t.Errorf("%s %s as %s: status %d, want %d\n%s", rc.method, rc.path(k), actor, r.Status, want, r.Body)
						}
						if want == http.StatusUnauthorized && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
							t.Errorf("401 without WWW-Authenticate")
						}
						// A value only in an allowed reveal or export, and
						// only this key's.
						for _, s := range a.secrets.all() {
							if strings.Contains(string(r.Body), s) && (s != value || r.Status != http.StatusOK) {
								t.Errorf("%s %s as %s (status %d): the answer carries a key's value", rc.method, rc.path(k), actor, r.Status)
							}
						}
						if rc.check != nil {
							rc.check(t, a, k, value, actor, envName, r)
						}
					})
				}
			}
		})
	}
}

// TestAPIAuthzRoutesCovered: every /api route the server registers has
// matrix cases, and every case is a registered route.
func TestAPIAuthzRoutesCovered(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	covered := map[string]bool{}
	for _, c := range apiAuthzCases() {
		covered[c.route] = true
		if !isAPIRoute(c.route) {
			t.Errorf("API case for %q, which is not an API route", c.route)
		}
	}
	registered := env.Server.Routes()
	var api []string
	for _, r := range registered {
		if isAPIRoute(r) {
			api = append(api, r)
			if !covered[r] {
				t.Errorf("API route %q has no cases in apiAuthzCases (web/api_authz_test.go)", r)
			}
		} else if strings.Contains(r, "/api") {
			t.Errorf("route %q looks like the API but isAPIRoute says no", r)
		}
	}
	for r := range covered {
		if !slices.Contains(registered, r) {
			t.Errorf("apiAuthzCases covers %q, which the server does not register", r)
		}
	}
	sort.Strings(api)
	t.Logf("API routes: %q", api)
}

// TestAPIUnknownKeyIDs: an id that is not a key is the same 404 for every
// caller with a token, on every API route that takes an id; callers
// without a valid token cannot tell it from an existing key (401).
func TestAPIUnknownKeyIDs(t *testing.T) {
	t.Parallel()
	a := apiMatrixEnv(t, true)
	existing, _ := a.key("member", "production", "real key")
	toks := apiTokens(t, a)
	ids := []string{
		"6f1c2b7e-8a4d-4c3b-9e2f-1a2b3c4d5e6f",
		"00000000-0000-0000-0000-000000000000",
		"not-a-uuid",
		"12345",
		existing.ID + "0",
		strings.Replace(existing.ID, "-", "", 1),
		"%27%20OR%20%271%27%3D%271",
	}
	var routes []string
	for _, r := range a.env.Server.Routes() {
		if isAPIRoute(r) && strings.Contains(r, "/:id") && !strings.HasPrefix(r, "echo_") {
			routes = append(routes, r)
		}
	}
	sort.Strings(routes)
	if len(routes) != 7 {
		t.Fatalf("API routes with :id: %v", routes)
	}
	rotate := map[string]any{"value": a.secret()}
	for _, r := range routes {
		method, pattern, _ := strings.Cut(r, " ")
		for _, id := range ids {
			path := strings.Replace(pattern, ":id", id, 1)
			for _, actor := range apiActors {
				var b any
				switch {
				case strings.HasSuffix(pattern, "/rotate"):
					b = rotate
				case strings.HasSuffix(pattern, "/reveal"), strings.HasSuffix(pattern, "/provider-revoke"):
					b = map[string]any{"reason": "probing"}
				case strings.HasSuffix(pattern, "/auto-rotate"):
					b = map[string]any{"enabled": true}
				}
				resp := a.do(toks[actor], method, path, b)
				want := authed(actor, http.StatusNotFound)
				if actor == apiReadOnly && method == http.MethodPost {
					want = http.StatusForbidden // the missing scope is checked first
				}
				if resp.Status != want {
					t.Errorf("%s %s as %s: %d, want %d: %s", method, path, actor, resp.Status, want, resp.Body)
					continue
				}
				if want == http.StatusNotFound && resp.errMessage() != "Key not found." {
					t.Errorf("%s %s as %s: message %q", method, path, actor, resp.errMessage())
				}
			}
		}
	}
	if authzRevealCount(a.env, t, existing.ID) != 0 {
		t.Error("probing revealed the existing key")
	}
}
