package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
)

// TestAPIAuthentication: every way of not having a valid token is the
// same 401, with WWW-Authenticate, in the API's error shape.
func TestAPIAuthentication(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	a := newAPI(t, env)
	ctx := context.Background()

	good := a.token("member")
	expired, expiredID := a.tokenWithID("member")
	if _, err := env.Pool.Exec(ctx, "UPDATE api_tokens SET expires_at = now() - interval '1 minute' WHERE id = $1", expiredID); err != nil {
		t.Fatal(err)
	}
	revoked, revokedID := a.tokenWithID("member")
	if err := env.Store.RevokeToken(ctx, keyledger.Actor{User: env.Users["member"]}, revokedID); err != nil {
		t.Fatal(err)
	}
	// A user who had a token and was deactivated afterwards.
	leaver, err := env.Store.CreateUser(ctx, keyledger.SystemActor("test"), keyledger.NewUser{Email: "leaver@example.com", Name: "Leaver", Role: keyledger.RoleLead, Password: Password})
	if err != nil {
		t.Fatal(err)
	}
	env.Users["leaver"] = leaver
	leaverToken := a.token("leaver")
	if r := a.get(leaverToken, "/api/v1/whoami"); r.Status != http.StatusOK {
		t.Fatalf("before deactivation: %d", r.Status)
	}
	if _, err := env.Store.DeactivateUser(ctx, keyledger.SystemActor("test"), "leaver@example.com"); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name, header string
	}{
		{"no header", ""},
		{"basic auth", "Basic " + "bWVtYmVyQGV4YW1wbGUuY29tOnBhc3N3b3Jk"},
		{"bearer without token", "Bearer "},
		{"not a keyledger token", "Bearer abc123"},
		{"unknown token", "Bearer klt_" + strings.Repeat("A", 43)},
		{"token with junk after it", "Bearer " + good + "x"},
		{"overlong token", "Bearer klt_" + strings.Repeat("A", 300)},
		{"expired token", "Bearer " + expired},
		{"revoked token", "Bearer " + revoked},
		{"token of a deactivated user", "Bearer " + leaverToken},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := a.withT(t)
			h := http.Header{}
			if tc.header != "" {
				h.Set("Authorization", tc.header)
			}
			for _, path := range []string{"/api/v1/whoami", "/api/v1/keys", "/api/v1/environments"} {
				r := a.send(http.MethodGet, path, h, nil)
				a.want(r, http.StatusUnauthorized, "unauthorized")
				if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer ") {
					t.Errorf("WWW-Authenticate %q", r.Header.Get("WWW-Authenticate"))
				}
			}
			h.Set("Content-Type", "application/json")
			r := a.send(http.MethodPost, "/api/v1/keys", h, []byte(`{"name":"x","project":"p","environment":"development","owner":"member@example.com","value":"`+a.secret()+`"}`))
			a.want(r, http.StatusUnauthorized, "unauthorized")
		})
	}
	// The scheme name is case-insensitive (RFC 9110).
	h := http.Header{"Authorization": {"bearer " + good}}
	a.want(a.send(http.MethodGet, "/api/v1/whoami", h, nil), http.StatusOK, "")

	if n := apiCountKeys(t, env, "x"); n != 0 {
		t.Errorf("%d keys registered without a valid token", n)
	}
}

// apiCountKeys counts live keys whose name contains q.
func apiCountKeys(t testing.TB, env *testEnv, q string) int {
	t.Helper()
	var n int
	if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM keys WHERE name = $1", q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestAPIIgnoresCookies: a signed-in browser session gets nothing from
// the API, neither reads nor (with a valid CSRF token) writes.
func TestAPIIgnoresCookies(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	a := newAPI(t, env)
	k, _ := a.key("member", "development", "cookie test")
	c := authzLogin(env, t, "member")
	for _, path := range []string{"/api/v1/whoami", "/api/v1/keys", "/api/v1/keys/" + k.ID} {
		resp, body := c.get(path)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, `"unauthorized"`) {
			t.Errorf("GET %s with a session cookie: %d %s", path, resp.StatusCode, body)
		}
	}
	resp, body := c.post("/api/v1/keys/"+k.ID+"/reveal", url.Values{"reason": {"cookie"}})
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST reveal with a session cookie and CSRF token: %d %s", resp.StatusCode, body)
	}
	if n := authzRevealCount(env, t, k.ID); n != 0 {
		t.Errorf("%d reveals by cookie", n)
	}
	// The session still works on the pages.
	if resp, _ := c.get("/keys/" + k.ID); resp.StatusCode != http.StatusOK {
		t.Errorf("the key page after the API refusals: %d", resp.StatusCode)
	}
}

// TestAPIWhoami: any valid token learns who it acts for, whatever its
// scopes.
func TestAPIWhoami(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	a := newAPI(t, env)
	for _, scopes := range [][]string{{"read"}, {"reveal"}, {"write"}, {"read", "reveal", "write"}} {
		tok, id := a.tokenWithID("lead", scopes...)
		r := a.get(tok, "/api/v1/whoami")
		a.want(r, http.StatusOK, "")
		var got struct {
			Email, Name, Role string
			Token             struct {
				ID     int64
				Name   string
				Scopes []string
			}
		}
		r.decode(t, &got)
		if got.Email != "lead@example.com" || got.Role != "lead" || got.Token.ID != id || strings.Join(got.Token.Scopes, ",") != strings.Join(scopes, ",") {
			t.Errorf("whoami %+v for token %d with %v", got, id, scopes)
		}
		if strings.Contains(string(r.Body), tok) {
			t.Error("whoami echoes the token")
		}
	}
}

// TestAPIScopes: GETs need read; register, rotate and verify need write;
// reveal and export need reveal.
func TestAPIScopes(t *testing.T) {
	t.Parallel()
	env := newEnv(t, withVerifier(newFakeOpenAI(t, nil).verifier(t)))
	a := newAPI(t, env)
	k, _ := a.key("member", "development", "scoped")
	type call struct {
		method, path string
		body         any
		scope        string
		okStatus     int
	}
	calls := []call{
		{"GET", "/api/v1/keys", nil, "read", 200},
		{"GET", "/api/v1/keys/" + k.ID, nil, "read", 200},
		{"GET", "/api/v1/environments", nil, "read", 200},
		{"POST", "/api/v1/keys/" + k.ID + "/reveal", map[string]any{}, "reveal", 200},
		{"POST", "/api/v1/export", map[string]any{"environment": "development"}, "reveal", 200},
		{"POST", "/api/v1/keys/" + k.ID + "/verify", nil, "write", 200},
		{"POST", "/api/v1/keys/" + k.ID + "/rotate", "ROTATE", "write", 200},
		{"POST", "/api/v1/keys", "CREATE", "write", 201},
	}
	for _, scope := range []string{"read", "reveal", "write"} {
		tok := a.token("member", scope)
		for _, c := range calls {
			body := c.body
			switch body {
			case "ROTATE":
				body = map[string]any{"value": a.secret()}
			case "CREATE":
				body = map[string]any{"name": "scoped " + authzRand(3), "project": "p", "environment": "development", "owner": "member@example.com", "value": a.secret()}
			}
			r := a.do(tok, c.method, c.path, body)
			if scope == c.scope {
				a.want(r, c.okStatus, "")
				continue
			}
			a.want(r, http.StatusForbidden, "forbidden")
			if !strings.Contains(r.errMessage(), strconv.Quote(c.scope)) {
				t.Errorf("%s %s with a %s token: message %q does not name the missing scope %q", c.method, c.path, scope, r.errMessage(), c.scope)
			}
		}
	}
	// The audit log also needs read (and a lead).
	a.want(a.get(a.token("lead", "reveal", "write"), "/api/v1/audit"), http.StatusForbidden, "forbidden")
	a.want(a.get(a.token("lead", "read"), "/api/v1/audit"), http.StatusOK, "")
}

// TestAPIRateLimit: past the token's burst, 429 with Retry-After; other
// tokens are not affected.
func TestAPIRateLimit(t *testing.T) {
	t.Parallel()
	env := newEnv(t, withAPIRate(0.2)) // one request per 5 s, burst 1
	a := newAPI(t, env)
	tok := a.token("member")
	a.want(a.get(tok, "/api/v1/whoami"), http.StatusOK, "")
	r := a.get(tok, "/api/v1/keys")
	a.want(r, http.StatusTooManyRequests, "too_many_requests")
	secs, err := strconv.Atoi(r.Header.Get("Retry-After"))
	if err != nil || secs < 1 || secs > 5 {
		t.Errorf("Retry-After %q, want 1..5 seconds", r.Header.Get("Retry-After"))
	}
	// POSTs count too, and nothing happens.
	r = a.do(tok, http.MethodPost, "/api/v1/keys", map[string]any{"name": "limited", "project": "p", "environment": "development", "owner": "member@example.com", "value": a.secret()})
	a.want(r, http.StatusTooManyRequests, "too_many_requests")
	if apiCountKeys(t, env, "limited") != 0 {
		t.Error("a rate-limited POST registered a key")
	}
	a.want(a.get(a.token("member2"), "/api/v1/whoami"), http.StatusOK, "")
}

// TestAPIRequestErrors: malformed bodies are 400, wrong content types 415,
// oversized bodies 413, unknown addresses a JSON 404, all in the error
// shape, and none of them acts.
func TestAPIRequestErrors(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	a := newAPI(t, env)
	tok := a.token("member")
	valid := func() map[string]any {
		return map[string]any{"name": "bad request", "project": "p", "environment": "development", "owner": "member@example.com", "value": a.secret()}
	}
	auth := func(ct string) http.Header {
		h := http.Header{"Authorization": {"Bearer " + tok}}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		return h
	}
	for _, tc := range []struct {
		name   string
		ct     string
		body   string
		status int
		msg    string
	}{
		{"syntax error", "application/json", `{"name": "x",}`, 400, "not valid JSON"},
		{"truncated", "application/json", `{"name": "x"`, 400, "ends in the middle"},
		{"unknown field", "application/json", `{"name": "x", "colour": "red"}`, 400, `Unknown field "colour"`},
		{"wrong type", "application/json", `{"name": "x", "rotation_days": "30"}`, 400, `"rotation_days" must be a whole number`},
		{"string for name", "application/json", `{"name": 5}`, 400, `"name" must be a string`},
		{"array", "application/json", `[{"name": "x"}]`, 400, "must be a JSON object"},
		{"two objects", "application/json", `{"name": "x"} {"name": "y"}`, 400, "one JSON object"},
		{"form encoded", "application/x-www-form-urlencoded", `name=x&project=p`, 415, "Content-Type: application/json"},
		{"text", "text/plain", `{"name": "x"}`, 415, "application/json"},
		{"no content type", "", `{"name": "x"}`, 415, "application/json"},
	} {
		r := a.send(http.MethodPost, "/api/v1/keys", auth(tc.ct), []byte(tc.body))
		a.want(r, tc.status, "invalid")
		if !strings.Contains(r.errMessage(), tc.msg) {
			t.Errorf("%s: message %q, want it to contain %q", tc.name, r.errMessage(), tc.msg)
		}
	}
	// The charset parameter is fine.
	r := a.send(http.MethodPost, "/api/v1/keys", auth("application/json; charset=utf-8"), mustJSON(t, valid()))
	a.want(r, http.StatusCreated, "")

	// Over the body limit (64K by default): 413, whatever is inside.
	big := valid()
	big["description"] = strings.Repeat("x", 70<<10)
	r = a.do(tok, http.MethodPost, "/api/v1/keys", big)
	a.want(r, http.StatusRequestEntityTooLarge, "")

	// Unknown addresses.
	for _, p := range []string{"/api/v1/nope", "/api/v1/keys/" + "6f1c2b7e-8a4d-4c3b-9e2f-1a2b3c4d5e6f" + "/history", "/api/v1"} {
		a.want(a.get(tok, p), http.StatusNotFound, "not_found")
		a.want(a.get("", p), http.StatusUnauthorized, "unauthorized")
	}
	for _, p := range []string{"/api/nope", "/api/v2/keys", "/api/v1x"} {
		r := a.get("", p)
		a.want(r, http.StatusNotFound, "not_found")
		if r.Header.Get("Location") != "" {
			t.Errorf("GET %s redirects to %q", p, r.Header.Get("Location"))
		}
	}
	// A method the address does not have.
	a.want(a.do(tok, http.MethodDelete, "/api/v1/keys", nil), http.StatusNotFound, "not_found")
	a.want(a.do("", http.MethodDelete, "/api/v1/keys", nil), http.StatusUnauthorized, "unauthorized")
	if apiCountKeys(t, env, "x") != 0 {
		t.Error("a refused request registered a key")
	}
}
