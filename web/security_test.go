package web_test

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web"
)

// secRoundTrip sends req with c's cookies without following or even
// parsing a redirect (net/http's client refuses some Location values
// before CheckRedirect runs), and stores the cookies it gets back.
func secRoundTrip(t testing.TB, c *client, req *http.Request) (*http.Response, string) {
	t.Helper()
	u, _ := url.Parse(c.env.HTTP.URL)
	for _, ck := range c.http.Jar.Cookies(u) {
		req.AddCookie(ck)
	}
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	c.http.Jar.SetCookies(u, resp.Cookies())
	if m := csrfField.FindSubmatch(b); m != nil {
		c.csrf = string(m[1])
	}
	return resp, string(b)
}

func secPost(t testing.TB, c *client, path string, form url.Values, header http.Header) (*http.Response, string) {
	t.Helper()
	if _, ok := form["_csrf"]; !ok {
		form.Set("_csrf", c.csrf)
	}
	req, err := http.NewRequest(http.MethodPost, c.env.HTTP.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, vs := range header {
		req.Header[k] = vs
	}
	return secRoundTrip(t, c, req)
}

func secGet(t testing.TB, c *client, path string, header http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, c.env.HTTP.URL+path, http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	return secRoundTrip(t, c, req)
}

// secSessionCookie is the client's session cookie value, or "".
func secSessionCookie(c *client) string {
	u, _ := url.Parse(c.env.HTTP.URL)
	for _, ck := range c.http.Jar.Cookies(u) {
		if strings.HasSuffix(ck.Name, "keyledger_session") {
			return ck.Value
		}
	}
	return ""
}

// secWithSession is a fresh browser holding only the given session cookie.
func secWithSession(env *testEnv, t testing.TB, value string) *client {
	c := authzClient(env, t)
	u, _ := url.Parse(env.HTTP.URL)
	c.http.Jar.SetCookies(u, []*http.Cookie{{Name: "keyledger_session", Value: value, Path: "/"}})
	return c
}

func secWhoami(body string) string {
	m := regexp.MustCompile(`data-testid="whoami">([^<]*)<`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

func secLoginError(body string) string {
	m := regexp.MustCompile(`data-testid="login-error">([^<]*)<`).FindStringSubmatch(body)
	if m == nil {
		return ""
	}
	return m[1]
}

// secCheckHeaders asserts the headers every response carries.
func secCheckHeaders(t testing.TB, what string, resp *http.Response) {
	t.Helper()
	h := resp.Header
	csp := h.Get("Content-Security-Policy")
	if csp == "" {
		t.Errorf("%s: no Content-Security-Policy", what)
	}
	directives := map[string]string{}
	for _, d := range strings.Split(csp, ";") {
		name, val, _ := strings.Cut(strings.TrimSpace(d), " ")
		directives[name] = val
	}
	for _, bad := range []string{"'unsafe-inline'", "'unsafe-eval'", "'unsafe-hashes'", "*"} {
		for name, val := range directives {
			for _, src := range strings.Fields(val) {
				if src == bad {
					t.Errorf("%s: CSP %s allows %s", what, name, bad)
				}
			}
		}
	}
	for name, want := range map[string]string{"default-src": "'none'", "frame-ancestors": "'none'", "script-src": "'self'",
		"base-uri": "'none'", "form-action": "'self'"} {
		if directives[name] != want {
			t.Errorf("%s: CSP %s = %q, want %q (CSP %q)", what, name, directives[name], want, csp)
		}
	}
	for name, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY"} {
		if got := h.Get(name); got != want {
			t.Errorf("%s: %s = %q, want %q", what, name, got, want)
		}
	}
}

// TestSecurityHeaders: pages, redirects, error pages and static files all
// carry the security headers; pages are never cached, hashed assets are
// cached forever, and an unknown hash is a plain 404.
func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	anon := authzActorClient(env, t, actorAnonymous)
	member := authzLogin(env, t, "member")
	member2 := authzLogin(env, t, "member2")
	k, value := authzKey(env, t, "member", "production", "headers")

	type check struct {
		name string
		do   func() (*http.Response, string)
	}
	get := func(c *client, p string) func() (*http.Response, string) {
		return func() (*http.Response, string) { return authzSend(c, "GET", p, nil, nil) }
	}
	post := func(c *client, p string, f url.Values) func() (*http.Response, string) {
		return func() (*http.Response, string) { return authzSend(c, "POST", p, f, nil) }
	}
	pages := []check{
		{"sign-in page", get(anon, "/login")},
		{"redirect to sign in", get(anon, "/keys")},
		{"401", post(anon, "/keys", url.Values{})},
		{"key list", get(member, "/keys")},
		{"key page", get(member, "/keys/"+k.ID)},
		{"register form", get(member, "/keys/new")},
		{"reveal", post(member, "/keys/"+k.ID+"/reveal", url.Values{"reason": {"headers"}})},
		{"422", post(member, "/keys/"+k.ID+"/reveal", url.Values{})},
		{"403", post(member2, "/keys/"+k.ID+"/reveal", url.Values{"reason": {"x"}})},
		{"404", get(member, "/no-such-page")},
		{"csrf 403", post(member, "/keys", url.Values{"_csrf": {"wrong"}})},
		{"healthz", get(anon, "/healthz")},
		{"readyz", get(anon, "/readyz")},
	}
	var assets []string
	for _, p := range pages {
		resp, body := p.do()
		secCheckHeaders(t, p.name, resp)
		if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", p.name, cc)
		}
		if p.name != "reveal" && strings.Contains(body, value) {
			t.Errorf("%s: the page shows the value", p.name)
		}
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			// Nothing the CSP would block: no inline script, style or handler.
			for _, re := range []string{`<script(\s[^>]*)?>[^<]+</script>`, `<script>`, `\sstyle=`, `<style`, `\son[a-z]+=`, `javascript:`} {
				if regexp.MustCompile(re).MatchString(body) {
					t.Errorf("%s: inline code matching %s", p.name, re)
				}
			}
			for _, m := range regexp.MustCompile(`(?:href|src)="(/static/[^"]+)"`).FindAllStringSubmatch(body, -1) {
				assets = append(assets, m[1])
			}
		}
	}
	seen := map[string]bool{}
	for _, a := range assets {
		if seen[a] {
			continue
		}
		seen[a] = true
		resp, body := anon.get(a)
		if resp.StatusCode != http.StatusOK || body == "" {
			t.Errorf("%s: status %d", a, resp.StatusCode)
		}
		secCheckHeaders(t, a, resp)
		if cc := resp.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("%s: Cache-Control %q", a, cc)
		}
		ext := a[strings.LastIndex(a, ".")+1:]
		want := map[string]string{"css": "text/css", "js": "text/javascript", "svg": "image/svg+xml"}[ext]
		if ct := resp.Header.Get("Content-Type"); want == "" || !strings.HasPrefix(ct, want) {
			t.Errorf("%s: Content-Type %q", a, ct)
		}
	}
	if len(seen) < 3 {
		t.Errorf("only %d static assets referenced: %v", len(seen), assets)
	}
	// An unknown hash of a known file, and paths that try to escape.
	for _, p := range []string{"/static/app.000000000000.css", "/static/app.css", "/static/embed.go", "/static/../go.mod", "/static/%2e%2e/go.mod"} {
		resp, body := anon.get(p)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", p, resp.StatusCode)
		}
		secCheckHeaders(t, p, resp)
		if cc := resp.Header.Get("Cache-Control"); strings.Contains(cc, "immutable") || strings.Contains(cc, "max-age") {
			t.Errorf("%s: a 404 cached as %q", p, cc)
		}
		if strings.Contains(body, "module github.com") || strings.Contains(body, "package static") {
			t.Errorf("%s: serves a source file", p)
		}
	}
}

// TestSecurityCrossSitePostRefused: a cross-site POST is refused even when
// it carries a valid token and the session cookie.
func TestSecurityCrossSitePostRefused(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	own := env.HTTP.URL
	cases := []struct {
		name   string
		header http.Header
		ok     bool
	}{
		{"Sec-Fetch-Site cross-site", http.Header{"Sec-Fetch-Site": {"cross-site"}}, false},
		{"Sec-Fetch-Site same-site", http.Header{"Sec-Fetch-Site": {"same-site"}}, false},
		{"Sec-Fetch-Site cross-site with our Origin", http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {own}}, false},
		{"Origin evil without Sec-Fetch-Site", http.Header{"Origin": {"https://evil.example"}}, false},
		{"Origin null", http.Header{"Origin": {"null"}}, false},
		{"Origin of another port", http.Header{"Origin": {"http://127.0.0.1:1"}}, false},
		// Controls: the same requests from our own pages pass.
		{"Sec-Fetch-Site same-origin", http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {own}}, true},
		{"our Origin", http.Header{"Origin": {own}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := authzLogin(env, t, "member")
			k, value := authzKey(env, t, "member", "staging", "xsite "+authzRand(3))
			resp, body := secPost(t, c, "/keys/"+k.ID+"/reveal", url.Values{"reason": {"cross-site test"}}, tc.header)
			revealed := authzRevealCount(env, t, k.ID)
			if tc.ok {
				if resp.StatusCode != http.StatusOK || !strings.Contains(body, value) || revealed != 1 {
					t.Errorf("same-origin reveal: status %d, %d events", resp.StatusCode, revealed)
				}
				return
			}
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "came from another site") {
				t.Errorf("status %d, want 403 with the cross-site message\n%s", resp.StatusCode, authzMain(body, ""))
			}
			if strings.Contains(body, value) || revealed != 0 {
				t.Errorf("a cross-site POST revealed the value (%d events)", revealed)
			}
			// Sign-out and sign-in are forms too.
			if resp, _ := secPost(t, c, "/logout", url.Values{}, tc.header); resp.StatusCode != http.StatusForbidden {
				t.Errorf("cross-site sign-out: %d", resp.StatusCode)
			}
			if resp, body := c.get("/keys"); resp.StatusCode != http.StatusOK || secWhoami(body) == "" {
				t.Error("a cross-site sign-out signed the user out")
			}
			anon := authzActorClient(env, t, actorAnonymous)
			if resp, _ := secPost(t, anon, "/login", url.Values{"email": {"member2@example.com"}, "password": {Password}}, tc.header); resp.StatusCode != http.StatusForbidden {
				t.Errorf("cross-site sign-in (login CSRF): %d", resp.StatusCode)
			}
			if resp, _ := anon.get("/keys"); resp.StatusCode != http.StatusSeeOther {
				t.Error("a cross-site sign-in signed in")
			}
		})
	}
}

// TestSecuritySignInFailuresLookAlike: a wrong password, an unknown email
// and a deactivated account get the same answer.
func TestSecuritySignInFailuresLookAlike(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	attempts := map[string]url.Values{
		"wrong password":      {"email": {"member@example.com"}, "password": {"not the password at all"}},
		"unknown email":       {"email": {"nobody@example.com"}, "password": {Password}},
		"deactivated account": {"email": {"gone@example.com"}, "password": {Password}},
		"empty fields":        {"email": {""}, "password": {""}},
		"email in capitals":   {"email": {"MEMBER@EXAMPLE.COM"}, "password": {"wrong"}},
	}
	var refStatus int
	var refMsg, refName string
	for name, form := range attempts {
		c := authzActorClient(env, t, actorAnonymous)
		before := secSessionCookie(c)
		resp, body := c.post("/login", form)
		msg := secLoginError(body)
		if refName == "" {
			refStatus, refMsg, refName = resp.StatusCode, msg, name
		}
		if resp.StatusCode != refStatus || msg != refMsg {
			t.Errorf("%s: %d %q, but %s: %d %q", name, resp.StatusCode, msg, refName, refStatus, refMsg)
		}
		if secSessionCookie(c) != before {
			t.Errorf("%s: a failed sign-in set a session cookie", name)
		}
		if !strings.Contains(body, `data-testid="login-submit"`) {
			t.Errorf("%s: the sign-in form is not shown again", name)
		}
		if strings.Contains(body, Password) {
			t.Errorf("%s: the password is echoed", name)
		}
	}
	if refStatus != http.StatusUnauthorized || refMsg == "" {
		t.Errorf("failed sign-in: %d %q, want 401 with a message", refStatus, refMsg)
	}
	if strings.Contains(env.Logs.String(), Password) || strings.Contains(env.Logs.String(), "not the password at all") {
		t.Error("a password is in the server log")
	}
}

// TestSecuritySignInThrottle: five failures for an account are allowed;
// the sixth attempt, and any after it, even with the right password, is
// refused with 429 and a message that says what to do.
func TestSecuritySignInThrottle(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := authzActorClient(env, t, actorAnonymous)
	wrong := url.Values{"email": {"member@example.com"}, "password": {"wrong password 123"}}
	for i := 1; i <= 5; i++ {
		if resp, body := c.post("/login", cloneValues(wrong)); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: status %d %q", i, resp.StatusCode, secLoginError(body))
		}
	}
	resp, body := c.post("/login", cloneValues(wrong))
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("6th failure: status %d, want 429", resp.StatusCode)
	}
	if msg := secLoginError(body); !strings.Contains(msg, "Too many failed sign-in attempts") || !strings.Contains(msg, "15 minutes") {
		t.Errorf("6th failure: message %q", msg)
	}
	secCheckHeaders(t, "429", resp)
	// The right password does not get through the throttle either.
	resp, _ = c.post("/login", url.Values{"email": {"member@example.com"}, "password": {Password}})
	if resp.StatusCode != http.StatusTooManyRequests || secSessionCookie(c) != "" {
		t.Errorf("right password while throttled: status %d", resp.StatusCode)
	}
	// Other accounts from the same address are not locked out.
	if resp, _ := authzActorClient(env, t, actorAnonymous).post("/login", url.Values{"email": {"member2@example.com"}, "password": {Password}}); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("another account: status %d, want 303", resp.StatusCode)
	}
	lead := authzLogin(env, t, "lead")
	if _, body := lead.get("/audit?action=" + keyledger.ActionSignInThrottle); !strings.Contains(body, `data-testid="audit-row"`) {
		t.Error("the throttled attempts are not audited")
	}
}

// TestSecuritySessionFixation: sign-in always issues a new session id, and
// a session id planted before sign-in is neither kept nor promoted.
func TestSecuritySessionFixation(t *testing.T) {
	t.Parallel()
	env := newEnv(t)

	t.Run("fresh id at every sign-in", func(t *testing.T) {
		c := authzActorClient(env, t, actorAnonymous)
		if secSessionCookie(c) != "" {
			t.Error("an anonymous visit got a session cookie")
		}
		c.login("member")
		first := secSessionCookie(c)
		if first == "" {
			t.Fatal("no session cookie after sign-in")
		}
		// Signing in again in the same browser replaces the session.
		if resp, _ := c.post("/login", url.Values{"email": {"member@example.com"}, "password": {Password}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("second sign-in: %d", resp.StatusCode)
		}
		second := secSessionCookie(c)
		if second == "" || second == first {
			t.Fatal("the session cookie did not change at sign-in")
		}
		if resp, _ := secWithSession(env, t, first).get("/keys"); resp.StatusCode != http.StatusSeeOther {
			t.Errorf("the replaced session still works: %d", resp.StatusCode)
		}
		if _, body := secWithSession(env, t, second).get("/keys"); secWhoami(body) != "Member (member)" {
			t.Errorf("the new session does not work: whoami %q", secWhoami(body))
		}
	})

	t.Run("planted session", func(t *testing.T) {
		attacker := authzLogin(env, t, "member2")
		planted := secSessionCookie(attacker)
		// The browser now holds the attacker's session; the victim opens
		// a page (which gives the form token) and signs in.
		victim := secWithSession(env, t, planted)
		victim.get("/keys")
		if resp, _ := victim.post("/login", url.Values{"email": {"member@example.com"}, "password": {Password}}); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("victim sign-in: %d", resp.StatusCode)
		}
		got := secSessionCookie(victim)
		if got == "" || got == planted {
			t.Fatal("the planted session id was kept")
		}
		if _, body := victim.get("/keys"); secWhoami(body) != "Member (member)" {
			t.Errorf("victim is %q", secWhoami(body))
		}
		if _, body := secWithSession(env, t, planted).get("/keys"); strings.Contains(secWhoami(body), "Member (member)") {
			t.Error("the planted session id rides the victim's sign-in")
		}
	})

	t.Run("garbage cookie", func(t *testing.T) {
		c := secWithSession(env, t, "garbage-"+authzRand(16))
		c.login("member")
		if v := secSessionCookie(c); strings.HasPrefix(v, "garbage-") {
			t.Error("a garbage session cookie was kept")
		}
	})
}

// TestSecurityLogoutEndsSession: after sign-out, the old cookie replayed
// by another browser is signed out too.
func TestSecurityLogoutEndsSession(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := authzLogin(env, t, "member")
	old := secSessionCookie(c)
	csrf := c.csrf
	resp, _ := c.post("/logout", url.Values{})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login" {
		t.Fatalf("sign-out: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	cleared := false
	for _, ck := range resp.Cookies() {
		if ck.Name == "keyledger_session" && ck.MaxAge < 0 {
			cleared = true
		}
	}
	if !cleared {
		t.Error("sign-out does not clear the session cookie")
	}
	replay := secWithSession(env, t, old)
	resp, _ = replay.get("/keys")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Fkeys" {
		t.Errorf("replayed cookie: %d %q, want 303 to /login?next=%%2Fkeys", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Even with the CSRF cookie and token of the old browser.
	u, _ := url.Parse(env.HTTP.URL)
	replay.http.Jar.SetCookies(u, c.http.Jar.Cookies(u))
	replay.http.Jar.SetCookies(u, []*http.Cookie{{Name: "keyledger_session", Value: old, Path: "/"}})
	k, value := authzKey(env, t, "member", "development", "after logout")
	// The token was bound to the session that is gone: the form has
	// expired (403) before the missing sign-in (401) is even looked at.
	resp, body := replay.post("/keys/"+k.ID+"/reveal", url.Values{"_csrf": {csrf}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "This form has expired") || strings.Contains(body, value) {
		t.Errorf("replayed cookie and token POST: %d, want 403 form expired", resp.StatusCode)
	}
	// With a fresh token (the old browser reloads a page), it is the
	// sign-in that is missing.
	if r, _ := replay.get("/login"); r.StatusCode != http.StatusOK || replay.csrf == "" || replay.csrf == csrf {
		t.Fatalf("reload: %d, token changed %v", r.StatusCode, replay.csrf != csrf)
	}
	resp, body = replay.post("/keys/"+k.ID+"/reveal", url.Values{"reason": {"after logout"}})
	if resp.StatusCode != http.StatusUnauthorized || strings.Contains(body, value) {
		t.Errorf("replayed cookie with a fresh token: %d, want 401", resp.StatusCode)
	}
	if n := authzRevealCount(env, t, k.ID); n != 0 {
		t.Errorf("%d reveals after sign-out", n)
	}
}

// TestSecurityCSRFBoundToSession: the form token is bound to the session
// (HMAC of the CSRF cookie and the session id): it changes at sign-in, a
// token from before sign-in or from another session is refused, and a
// CSRF cookie planted in a browser (e.g. from a sibling subdomain) does not
// let its planter forge forms for the session signed in with it.
func TestSecurityCSRFBoundToSession(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	k, value := authzKey(env, t, "member", "development", "bound")
	reveal := func(c *client, token string) (*http.Response, string) {
		t.Helper()
		return c.post("/keys/"+k.ID+"/reveal", url.Values{"reason": {"csrf binding"}, "_csrf": {token}})
	}
	refused := func(what string, resp *http.Response, body string) {
		t.Helper()
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "This form has expired") || strings.Contains(body, value) {
			t.Errorf("%s: status %d, want 403 form expired", what, resp.StatusCode)
		}
	}

	c := authzActorClient(env, t, actorAnonymous)
	anonymous := c.csrf
	c.login("member")
	signedIn := c.csrf
	if signedIn == "" || signedIn == anonymous {
		t.Fatal("the token did not change at sign-in")
	}
	r, b := reveal(c, anonymous)
	refused("token from before sign-in", r, b)
	if resp, body := reveal(c, signedIn); resp.StatusCode != http.StatusOK || !strings.Contains(body, value) {
		t.Fatalf("token of the session: %d", resp.StatusCode)
	}

	// A new session in the same browser (same CSRF cookie): new token, and
	// the first session's token is worthless.
	if resp, _ := c.post("/logout", url.Values{}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", resp.StatusCode)
	}
	c.login("member2")
	if c.csrf == signedIn || c.csrf == anonymous {
		t.Fatal("a new session kept an old token")
	}
	r, b = reveal(c, signedIn)
	refused("token of the previous session", r, b)

	// Planted CSRF cookie: the attacker's browser and the victim's share
	// the cookie value, but not the session.
	attacker := authzLogin(env, t, "lead")
	u, _ := url.Parse(env.HTTP.URL)
	victim := authzClient(env, t)
	csrfCookie := func(c *client) string {
		for _, ck := range c.http.Jar.Cookies(u) {
			if strings.HasSuffix(ck.Name, "keyledger_csrf") {
				return ck.Value
			}
		}
		return ""
	}
	planted := csrfCookie(attacker)
	victim.http.Jar.SetCookies(u, []*http.Cookie{{Name: "keyledger_csrf", Value: planted, Path: "/"}})
	victim.login("member")
	if planted == "" || csrfCookie(victim) != planted {
		t.Fatal("the planted CSRF cookie was not kept: the test does not test what it says")
	}
	if victim.csrf == attacker.csrf {
		t.Fatal("two sessions with one CSRF cookie share a token")
	}
	before := authzRevealCount(env, t, k.ID)
	r, b = reveal(victim, attacker.csrf)
	refused("the planter's token in the victim's session", r, b)
	if after := authzRevealCount(env, t, k.ID); after != before {
		t.Error("a refused token revealed")
	}
}

// TestSecurityNoOpenRedirect: next= only ever leads to a local path.
func TestSecurityNoOpenRedirect(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	bad := []string{
		"//evil.example",
		"https://evil.example",
		"http:evil.example",
		"/\\evil.example",
		"\\\\evil.example",
		"//evil.example/keys",
		"javascript:alert(1)",
		"/\t/evil.example", // browsers drop tabs and newlines from URLs: //evil.example
		"/\n/evil.example",
		"/\r\n/evil.example",
		"/\t\\evil.example",
		" //evil.example",
	}
	// local reports whether a Location stays on this site once a browser
	// has removed tabs and newlines (WHATWG URL parsing).
	local := func(loc string) bool {
		l := strings.NewReplacer("\t", "", "\n", "", "\r", "").Replace(loc)
		return strings.HasPrefix(l, "/") && !strings.HasPrefix(l, "//") && !strings.HasPrefix(l, "/\\")
	}
	for _, next := range bad {
		t.Run(strings.NewReplacer("\t", "TAB", "\n", "LF", "\r", "CR", "/", "_").Replace(next), func(t *testing.T) {
			// The sign-in page carries next in a hidden field.
			c := authzClient(env, t)
			resp, body := secGet(t, c, "/login?next="+url.QueryEscape(next), nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /login: %d", resp.StatusCode)
			}
			form := url.Values{"email": {"member@example.com"}, "password": {Password}}
			if m := regexp.MustCompile(`name="next" value="([^"]*)"`).FindStringSubmatch(body); m != nil {
				form.Set("next", htmlUnescape(m[1]))
			}
			resp, _ = secPost(t, c, "/login", form, nil)
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/keys" {
				t.Errorf("sign-in via the page: %d Location %q, want /keys (local: %v)", resp.StatusCode, loc, local(loc))
			}
			// A form posted straight at /login.
			c2 := authzActorClient(env, t, actorAnonymous)
			resp, _ = secPost(t, c2, "/login", url.Values{"email": {"member@example.com"}, "password": {Password}, "next": {next}}, nil)
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/keys" {
				t.Errorf("sign-in posted with next: %d Location %q, want /keys (local: %v)", resp.StatusCode, loc, local(loc))
			}
			// Already signed in: /login?next= redirects at once.
			resp, _ = secGet(t, c, "/login?next="+url.QueryEscape(next), nil)
			if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || loc != "/keys" {
				t.Errorf("signed in, GET /login?next=: %d Location %q, want /keys (local: %v)", resp.StatusCode, loc, local(loc))
			}
		})
	}
	// Local paths are kept, query and all.
	for _, next := range []string{"/keys/new", "/audit?action=key.reveal"} {
		c := authzActorClient(env, t, actorAnonymous)
		resp, _ := secPost(t, c, "/login", url.Values{"email": {"lead@example.com"}, "password": {Password}, "next": {next}}, nil)
		if loc := resp.Header.Get("Location"); loc != next {
			t.Errorf("next=%s: Location %q", next, loc)
		}
	}
	// The redirect to sign in keeps where the visitor was going, encoded.
	resp, _ := secGet(t, authzClient(env, t), "/keys?q=a%26b", nil)
	if loc := resp.Header.Get("Location"); loc != "/login?next="+url.QueryEscape("/keys?q=a%26b") {
		t.Errorf("redirect to sign in: Location %q", loc)
	}
}

func htmlUnescape(s string) string {
	return strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">", "&#34;", `"`, "&#39;", "'", "&quot;", `"`, "&#9;", "\t", "&#10;", "\n", "&#13;", "\r").Replace(s)
}

// TestSecurityRevealNeedsPost: a GET never reveals, whatever its query.
func TestSecurityRevealNeedsPost(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := authzLogin(env, t, "member")
	k, value := authzKey(env, t, "member", "development", "get reveal")
	for _, p := range []string{"/keys/" + k.ID + "/reveal", "/keys/" + k.ID + "/reveal?reason=x&_csrf=" + url.QueryEscape(c.csrf), "/keys/" + k.ID + "?reveal=1"} {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			resp, body := authzSend(c, method, p, nil, nil)
			if strings.Contains(body, value) {
				t.Errorf("%s %s shows the value", method, p)
			}
			if strings.Contains(p, "/reveal") && resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: status %d, want 404 or 405", method, p, resp.StatusCode)
			}
		}
	}
	if n := authzRevealCount(env, t, k.ID); n != 0 {
		t.Errorf("%d reveals recorded", n)
	}
	// The reveal form posts to a URL without the value or the reason.
	_, body := c.get("/keys/" + k.ID)
	if !regexp.MustCompile(`<form method="post" action="/keys/` + k.ID + `/reveal"( novalidate)?>`).MatchString(body) {
		t.Error("the key page has no POST reveal form")
	}
	// A real reveal never puts the value in a header.
	resp, body := c.post("/keys/"+k.ID+"/reveal", url.Values{"reason": {"post"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, value) {
		t.Fatalf("POST reveal: %d", resp.StatusCode)
	}
	for name, vs := range resp.Header {
		for _, v := range vs {
			if strings.Contains(v, value) {
				t.Errorf("header %s carries the value", name)
			}
		}
	}
}

// TestSecurityCookies: the session cookie is HttpOnly and Lax, the CSRF
// cookie HttpOnly and Strict; with secure cookies both are __Host- and
// Secure, and HSTS is on.
func TestSecurityCookies(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	check := func(t *testing.T, base string, hc *http.Client, prefix string, secure bool) {
		jar, _ := cookiejar.New(nil)
		hc.Jar = jar
		hc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		resp, err := hc.Get(base + "/login")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		cookies := map[string]*http.Cookie{}
		for _, ck := range resp.Cookies() {
			cookies[ck.Name] = ck
		}
		m := csrfField.FindSubmatch(body)
		if m == nil {
			t.Fatal("no CSRF token")
		}
		resp, err = hc.PostForm(base+"/login", url.Values{"_csrf": {string(m[1])}, "email": {"member@example.com"}, "password": {Password}})
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign-in: %d", resp.StatusCode)
		}
		for _, ck := range resp.Cookies() {
			cookies[ck.Name] = ck
		}
		for name, same := range map[string]http.SameSite{prefix + "keyledger_session": http.SameSiteLaxMode, prefix + "keyledger_csrf": http.SameSiteStrictMode} {
			ck := cookies[name]
			if ck == nil {
				t.Errorf("no cookie %s (got %v)", name, cookies)
				continue
			}
			if !ck.HttpOnly || ck.SameSite != same || ck.Path != "/" || ck.Domain != "" || ck.Secure != secure {
				t.Errorf("cookie %s: HttpOnly %v SameSite %v Path %q Domain %q Secure %v; want HttpOnly, SameSite %v, Path /, no Domain, Secure %v",
					name, ck.HttpOnly, ck.SameSite, ck.Path, ck.Domain, ck.Secure, same, secure)
			}
		}
		if hsts := resp.Header.Get("Strict-Transport-Security"); (hsts != "") != secure {
			t.Errorf("Strict-Transport-Security %q with secure cookies %v", hsts, secure)
		}
	}
	t.Run("plain", func(t *testing.T) {
		check(t, env.HTTP.URL, &http.Client{}, "", false)
	})
	t.Run("secure", func(t *testing.T) {
		srv, err := web.New(web.Config{SecureCookies: true}, env.Store, nil)
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewTLSServer(srv)
		defer ts.Close()
		check(t, ts.URL, ts.Client(), "__Host-", true)
	})
}

// TestSecurityRequestID: error pages quote the request id, which is the
// X-Request-Id header, generated by the server for each request.
func TestSecurityRequestID(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	anon := authzActorClient(env, t, actorAnonymous)
	member := authzLogin(env, t, "member")
	k, _ := authzKey(env, t, "lead", "production", "rid")
	requests := map[string]func() (*http.Response, string){
		"404":     func() (*http.Response, string) { return member.get("/no-such-page") },
		"404 key": func() (*http.Response, string) { return member.get("/keys/not-a-uuid") },
		"403":     func() (*http.Response, string) { return member.get("/audit") },
		"403 reveal": func() (*http.Response, string) {
			return member.post("/keys/"+k.ID+"/reveal", url.Values{"reason": {"x"}})
		},
		"401":        func() (*http.Response, string) { return anon.post("/keys", url.Values{}) },
		"csrf":       func() (*http.Response, string) { return member.post("/keys", url.Values{"_csrf": {"x"}}) },
		"static 404": func() (*http.Response, string) { return anon.get("/static/app.000000000000.css") },
	}
	ids := map[string]bool{}
	for name, do := range requests {
		resp, body := do()
		rid := resp.Header.Get("X-Request-Id")
		if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(rid) {
			t.Errorf("%s: X-Request-Id %q", name, rid)
			continue
		}
		if ids[rid] {
			t.Errorf("%s: request id %s reused", name, rid)
		}
		ids[rid] = true
		m := regexp.MustCompile(`data-testid="request-id">([^<]*)<`).FindStringSubmatch(body)
		if len(m) < 2 || m[1] != rid {
			t.Errorf("%s: page request id %v, header %q", name, m, rid)
		}
		if !strings.Contains(authzMain(body, ""), rid) {
			t.Errorf("%s: the error message does not quote the request id", name)
		}
		// The access log line is written as the handler returns.
		logged := false
		for i := 0; i < 50 && !logged; i++ {
			if logged = strings.Contains(env.Logs.String(), "request_id="+rid); !logged {
				time.Sleep(10 * time.Millisecond)
			}
		}
		if !logged {
			t.Errorf("%s: request id %s not in the server log", name, rid)
		}
	}
}

// TestSecurityRequestIDNotFromClient: a request id sent by the client is
// not adopted (server.go: "A client-sent id is ignored: ids in logs must
// be ours"), so nobody can plant ids in the log or in error pages.
func TestSecurityRequestIDNotFromClient(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := authzLogin(env, t, "member")
	planted := "planted-" + authzRand(4)
	resp, body := authzSend(c, "GET", "/no-such-page", nil, http.Header{"X-Request-Id": {planted}})
	if got := resp.Header.Get("X-Request-Id"); got == planted || strings.Contains(body, planted) {
		t.Errorf("the client's request id %q was adopted (header %q)", planted, got)
	}
	if strings.Contains(env.Logs.String(), planted) {
		t.Error("the client's request id is in the server log")
	}
}
