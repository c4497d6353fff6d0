package web_test

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
)

// sweepFields are the form fields and query parameters the handlers read;
// each request of the sweep carries all of them, so whichever one a route
// reads holds the bad byte.
var sweepFields = []string{"q", "name", "project", "environment", "env", "provider", "owner", "email", "user", "role",
	"reason", "note", "description", "scope", "rotation_days", "grace_days", "version", "action", "actor", "key", "status",
	"from", "to", "before", "after", "cursor", "next", "sort", "format", "password", "new_password", "current_password",
	"code", "reveal_policy", "reason_required", "sensitive", "allow_token_reveal", "freeze", "scopes", "expires", "limit", "page"}

// sweepPath fills a route's parameters with addresses of things that exist.
func sweepPath(route string, k *keyledger.Key, memberID int64) string {
	r := strings.NewReplacer(":id", k.ID, ":uid", fmt.Sprint(memberID), ":oid", "1", ":item", "1", ":sid", "1", ":tid", "1",
		":token", "abc", ":name", "development", "*", "x")
	return r.Replace(route)
}

// TestBadBytesNeverServerError walks every route of the router and sends a
// NUL byte and invalid UTF-8 in a query parameter and in a form field (a
// JSON field for the API): no answer may be a 5xx, and a bad query is a
// 400 at every route, decided in one place before any handler runs.
func TestBadBytesNeverServerError(t *testing.T) {
	t.Parallel()
	// With a verifier, so that verify routes answer as they do in use.
	env := newEnv(t, withVerifier(newFakeOpenAI(t, nil).verifier(t)))
	api := newAPI(t, env)
	token := api.token("admin")
	k := env.createKey("member", "development", "sweep key", authzSecret())
	browser := env.client().login("admin")
	anon := env.client()
	anon.get("/login")

	send := func(c *client, method, path string, body []byte, ctype string, bearer bool) int {
		t.Helper()
		req, err := http.NewRequest(method, env.HTTP.URL+path, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if bearer {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	keys := func() int {
		var n int
		if err := env.Pool.QueryRow(context.Background(), "SELECT (SELECT count(*) FROM keys) + (SELECT count(*) FROM users) + (SELECT count(*) FROM environments)").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := keys()
	routes := env.Server.Routes()
	if len(routes) < 40 {
		t.Fatalf("only %d routes", len(routes))
	}
	for _, bad := range []struct{ name, raw string }{{"NUL", "a\x00b"}, {"invalid UTF-8", "a\xffb"}} {
		for _, route := range routes {
			method, pattern, _ := strings.Cut(route, " ")
			path := sweepPath(pattern, k, env.Users["member"].ID)
			isAPI := strings.HasPrefix(path, "/api/")
			for _, c := range []*client{anon, browser} {
				who := "anonymous"
				if c == browser {
					who = "admin"
				}
				// The query: always 400, whoever asks. One parameter at a
				// time as admin (a handler may stop at the first bad
				// filter it reads), all at once for the anonymous visitor.
				queries := []url.Values{{}}
				for _, f := range sweepFields {
					queries[0].Set(f, bad.raw)
					if c == browser {
						queries = append(queries, url.Values{f: {bad.raw}})
					}
				}
				for _, q := range queries {
					if st := send(c, method, path+"?"+q.Encode(), nil, "", isAPI); st != http.StatusBadRequest {
						t.Errorf("%s %s?%s as %s: status %d, want 400", method, path, strings.Join(slices.Sorted(maps.Keys(q)), ","), who, st)
					}
				}
				form := url.Values{"_csrf": {c.csrf}}
				if method != http.MethodPost {
					continue
				}
				// A form field (a JSON field for the API): never a 5xx.
				var body []byte
				ctype := "application/x-www-form-urlencoded"
				if isAPI {
					obj := map[string]string{}
					for _, f := range []string{"name", "project", "environment", "owner", "reason", "scope", "description", "provider"} {
						obj[f] = bad.raw
					}
					body = mustJSON(t, obj)
					ctype = "application/json"
				} else {
					for _, f := range sweepFields {
						form.Set(f, bad.raw)
					}
					body = []byte(form.Encode())
				}
				if st := send(c, method, path, body, ctype, isAPI); st >= 500 {
					t.Errorf("%s %s with a %s field as %s: status %d", method, path, bad.name, who, st)
				}
			}
		}
	}
	// A bad byte as a path parameter: whatever the route answers (a 404
	// mostly), never a 5xx.
	for _, route := range routes {
		method, pattern, _ := strings.Cut(route, " ")
		if !strings.Contains(pattern, ":") && !strings.Contains(pattern, "*") {
			continue
		}
		for _, bad := range []string{"%00", "%FF", "a%00b"} {
			r := strings.NewReplacer(":id", bad, ":uid", bad, ":oid", bad, ":item", bad, ":sid", bad, ":tid", bad, ":token", bad, ":name", bad, "*", bad)
			path := r.Replace(pattern)
			var body []byte
			ctype := ""
			if method == http.MethodPost && !strings.HasPrefix(path, "/api/") {
				body, ctype = []byte(url.Values{"_csrf": {browser.csrf}}.Encode()), "application/x-www-form-urlencoded"
			}
			if st := send(browser, method, path, body, ctype, strings.HasPrefix(path, "/api/")); st >= 500 {
				t.Errorf("%s %s as admin: status %d", method, path, st)
			}
		}
	}
	if after := keys(); after != before {
		t.Errorf("%d keys, users and environments after the sweep, want %d", after, before)
	}
}

// TestBadBytesInKeyValue: the value is a secret, so the byte filter leaves
// it to the value's own rule (keyledger.CheckValue), which answers with a
// field error on the form; nothing is stored and the value is not echoed.
func TestBadBytesInKeyValue(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := env.client().login("member")
	c.get("/keys/new")
	count := func() int {
		var n int
		if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM key_versions").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	for _, v := range []string{"sk-proj-abc\x00def0123456789", "sk-proj-abc\xffdef0123456789"} {
		resp, body := c.post("/keys", url.Values{"name": {"bad bytes"}, "project": {"checkout"}, "environment": {"development"},
			"owner": {"member@example.com"}, "value": {v}})
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "The value must") {
			t.Errorf("value %q: status %d, want 422 with a field error on the value", v, resp.StatusCode)
		}
		if strings.Contains(body, "abc\x00def") || strings.Contains(body, "0123456789") {
			t.Error("the refused value is echoed in the page")
		}
	}
	if after := count(); after != before {
		t.Errorf("%d key versions, want %d", after, before)
	}
}

// TestBadBytesInJSON: the API's JSON fields follow the forms' rule: a NUL
// byte in a field is a 400 naming it, and a body that is not UTF-8 is
// refused whole (decoding would otherwise replace the bytes, and store a
// value other than the one sent). A NUL in a value is the value's own
// rule: a field error. Nothing is stored.
func TestBadBytesInJSON(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	api := newAPI(t, env)
	tok := api.token("member")
	count := func() int {
		var n int
		if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM keys").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	base := func() map[string]any {
		return map[string]any{"name": "json bytes", "project": "checkout", "environment": "development", "owner": "member@example.com", "value": authzSecret()}
	}
	for _, f := range []string{"name", "project", "environment", "owner", "description", "scope"} {
		b := base()
		b[f] = "a\x00b"
		r := api.do(tok, http.MethodPost, "/api/v1/keys", b)
		if r.Status != http.StatusBadRequest || !strings.Contains(r.errMessage(), `"`+f+`"`) {
			t.Errorf("NUL in %s: status %d %q, want 400 naming the field", f, r.Status, r.errMessage())
		}
	}
	b := base()
	b["value"] = "sk-proj-abc\x00def0123456789"
	if r := api.do(tok, http.MethodPost, "/api/v1/keys", b); r.Status != http.StatusUnprocessableEntity || r.field("value") == "" {
		t.Errorf("NUL in the value: status %d, want 422 with a field error on the value", r.Status)
	}
	raw := []byte(`{"name": "json bytes", "project": "checkout", "environment": "development", "owner": "member@example.com", "value": "sk-proj-abc` + "\xff" + `def0123456789"}`)
	if r := api.do(tok, http.MethodPost, "/api/v1/keys", raw); r.Status != http.StatusBadRequest {
		t.Errorf("invalid UTF-8 body: status %d, want 400", r.Status)
	}
	if after := count(); after != before {
		t.Errorf("%d keys, want %d", after, before)
	}
}
