package web_test

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web"
)

// Single sign-on, end to end: the real web stack and store against an
// OpenID Connect provider that runs in the test process. The provider
// signs in whoever idp.user is without asking, and checks what a real
// provider checks: the client's credentials, one use per code, the
// redirect URI, and the PKCE verifier against the challenge.

const (
	idpClientID     = "keyledger-test"
	idpClientSecret = "idp-client-secret-9f3a"
)

type idpUser struct {
	Sub, Email, Name string
	// Verified is the email_verified claim; nil leaves it out.
	Verified any
}

type idpGrant struct {
	user                   idpUser
	redirectURI, challenge string
	nonce                  string
}

type testIDP struct {
	t   testing.TB
	srv *httptest.Server
	key *rsa.PrivateKey
	kid string

	mu    sync.Mutex
	user  idpUser // who /authorize signs in
	codes map[string]idpGrant
	// down makes discovery answer 503; discoveries counts its requests.
	down        bool
	discoveries int
	// deny makes /authorize send the browser back with this error.
	deny string
	// claims edits the ID token's claims before signing.
	claims func(map[string]any)
	// tamper alters the ID token's payload after signing.
	tamper bool
	// signWith signs ID tokens with another key (under the published
	// key's id).
	signWith *rsa.PrivateKey
	// replay is returned as the ID token instead of a fresh one.
	replay string
	// issued are the ID tokens handed out, in order.
	issued []string
	// tokenErrors counts refused token requests.
	tokenErrors int
	// accessTokens are the access tokens handed out, and whom each is for.
	accessTokens map[string]idpUser
	// userinfo edits the UserInfo answer's claims (nil: no edit);
	// userinfoStatus, when not 0, is its status instead of 200;
	// userinfoURL, when set, is advertised instead of /userinfo ("none":
	// no UserInfo endpoint).
	userinfo       func(map[string]any)
	userinfoStatus int
	userinfoURL    string
	// userinfoCalls counts UserInfo requests.
	userinfoCalls int
}

func newTestIDP(t testing.TB) *testIDP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	idp := &testIDP{t: t, key: key, kid: "test-key-1", codes: map[string]idpGrant{}, accessTokens: map[string]idpUser{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", idp.discovery)
	mux.HandleFunc("GET /jwks", idp.jwks)
	mux.HandleFunc("GET /authorize", idp.authorize)
	mux.HandleFunc("POST /token", idp.token)
	mux.HandleFunc("GET /userinfo", idp.userinfoAnswer)
	idp.srv = httptest.NewServer(mux)
	t.Cleanup(idp.srv.Close)
	return idp
}

func (idp *testIDP) set(f func(*testIDP)) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	f(idp)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (idp *testIDP) discovery(w http.ResponseWriter, _ *http.Request) {
	idp.mu.Lock()
	down := idp.down
	idp.discoveries++
	idp.mu.Unlock()
	if down {
		http.Error(w, "maintenance", http.StatusServiceUnavailable)
		return
	}
	u := idp.srv.URL
	idp.mu.Lock()
	userinfo := cmp.Or(idp.userinfoURL, u+"/userinfo")
	idp.mu.Unlock()
	doc := map[string]any{
		"issuer": u, "authorization_endpoint": u + "/authorize", "token_endpoint": u + "/token", "jwks_uri": u + "/jwks",
		"userinfo_endpoint":        userinfo,
		"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"}, "code_challenge_methods_supported": []string{"S256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
	}
	if userinfo == "none" {
		delete(doc, "userinfo_endpoint")
	}
	writeJSON(w, http.StatusOK, doc)
}

func (idp *testIDP) jwks(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &idp.key.PublicKey, KeyID: idp.kid, Algorithm: "RS256", Use: "sig"}}})
}

func (idp *testIDP) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for _, check := range []struct{ name, got, want string }{
		{"client_id", q.Get("client_id"), idpClientID},
		{"response_type", q.Get("response_type"), "code"},
		{"code_challenge_method", q.Get("code_challenge_method"), "S256"},
	} {
		if check.got != check.want {
			idp.t.Errorf("authorize: %s = %q, want %q", check.name, check.got, check.want)
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
	}
	if !strings.Contains(" "+q.Get("scope")+" ", " openid ") || !strings.Contains(q.Get("scope"), "email") {
		idp.t.Errorf("authorize: scope %q lacks openid or email", q.Get("scope"))
	}
	// A 32-byte verifier makes a 43-character challenge; state and nonce
	// must be there and unguessable.
	if len(q.Get("code_challenge")) != 43 || len(q.Get("state")) < 32 || len(q.Get("nonce")) < 32 || q.Get("redirect_uri") == "" {
		idp.t.Errorf("authorize: challenge %q state %q nonce %q redirect %q", q.Get("code_challenge"), q.Get("state"), q.Get("nonce"), q.Get("redirect_uri"))
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	back, err := url.Parse(q.Get("redirect_uri"))
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	idp.mu.Lock()
	deny, user := idp.deny, idp.user
	bq := url.Values{"state": {q.Get("state")}}
	if deny != "" {
		bq.Set("error", deny)
		bq.Set("error_description", "The user cancelled\u0000 <b>the sign-in</b>")
	} else {
		code := authzRand(16)
		idp.codes[code] = idpGrant{user: user, redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge"), nonce: q.Get("nonce")}
		bq.Set("code", code)
	}
	idp.mu.Unlock()
	back.RawQuery = bq.Encode()
	http.Redirect(w, r, back.String(), http.StatusFound)
}

func (idp *testIDP) token(w http.ResponseWriter, r *http.Request) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	fail := func(status int, code string) {
		idp.tokenErrors++
		writeJSON(w, status, map[string]string{"error": code})
	}
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "invalid_request")
		return
	}
	id, secret, ok := r.BasicAuth()
	if !ok {
		id, secret = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	} else {
		id, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(secret)
	}
	if id != idpClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(idpClientSecret)) != 1 {
		fail(http.StatusUnauthorized, "invalid_client")
		return
	}
	if r.PostForm.Get("grant_type") != "authorization_code" {
		fail(http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	code := r.PostForm.Get("code")
	g, ok := idp.codes[code]
	// One use per code, whatever the outcome.
	delete(idp.codes, code)
	if !ok || r.PostForm.Get("redirect_uri") != g.redirectURI {
		fail(http.StatusBadRequest, "invalid_grant")
		return
	}
	sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		fail(http.StatusBadRequest, "invalid_grant")
		return
	}
	now := time.Now()
	claims := map[string]any{
		"iss": idp.srv.URL, "sub": g.user.Sub, "aud": idpClientID, "exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(),
		"auth_time": now.Add(-time.Second).Unix(), "nonce": g.nonce, "email": g.user.Email, "name": g.user.Name,
	}
	if g.user.Verified != nil {
		claims["email_verified"] = g.user.Verified
	}
	if idp.claims != nil {
		idp.claims(claims)
	}
	raw := idp.sign(claims)
	if idp.tamper {
		// Same header and signature, another person in the payload.
		parts := strings.Split(raw, ".")
		claims["email"] = "admin@example.com"
		payload, _ := json.Marshal(claims)
		parts[1] = base64.RawURLEncoding.EncodeToString(payload)
		raw = strings.Join(parts, ".")
	}
	if idp.replay != "" {
		raw = idp.replay
	}
	idp.issued = append(idp.issued, raw)
	at := authzRand(16)
	idp.accessTokens[at] = g.user
	writeJSON(w, http.StatusOK, map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": 300, "id_token": raw})
}

// userinfoAnswer is the UserInfo endpoint: the claims of the person the
// bearer token was issued for.
func (idp *testIDP) userinfoAnswer(w http.ResponseWriter, r *http.Request) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.userinfoCalls++
	bearer := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	user, ok := idp.accessTokens[bearer]
	if !ok || idp.userinfoStatus != 0 {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		// Echoes the token, as a careless provider might: keyledger
		// must not log it.
		writeJSON(w, cmp.Or(idp.userinfoStatus, http.StatusUnauthorized), map[string]string{"error": "invalid_token", "error_description": "not valid: " + bearer})
		return
	}
	claims := map[string]any{"sub": user.Sub, "email": user.Email, "name": user.Name}
	if user.Verified != nil {
		claims["email_verified"] = user.Verified
	}
	if idp.userinfo != nil {
		idp.userinfo(claims)
	}
	writeJSON(w, http.StatusOK, claims)
}

func (idp *testIDP) sign(claims map[string]any) string {
	key := idp.key
	if idp.signWith != nil {
		key = idp.signWith
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: idp.kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		idp.t.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		idp.t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		idp.t.Fatal(err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		idp.t.Fatal(err)
	}
	return raw
}

// withOIDC configures single sign-on against idp.
func withOIDC(idp *testIDP, domains ...string) envOption {
	return func(c *web.Config) {
		c.OIDC = &web.OIDCConfig{Issuer: idp.srv.URL, ClientID: idpClientID, ClientSecret: idpClientSecret, AllowedDomains: domains}
	}
}

func withPasswordLoginOff() envOption { return func(c *web.Config) { c.PasswordLoginOff = true } }

// newSSOEnv is a test env with single sign-on against a fresh provider,
// discovered.
func newSSOEnv(t *testing.T, opts ...envOption) (*testEnv, *testIDP) {
	t.Helper()
	idp := newTestIDP(t)
	env := newEnv(t, append([]envOption{withOIDC(idp, "corp.example")}, opts...)...)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := env.Server.RunOIDCDiscovery(ctx); err != nil {
		t.Fatal(err)
	}
	return env, idp
}

// fetch GETs an absolute URL without following redirects.
func (c *client) fetch(rawURL string) (*http.Response, string) {
	c.t.Helper()
	resp, err := c.http.Get(rawURL)
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

// ssoStart clicks the sign-in button and lets the provider answer; it
// returns the callback URL the provider sent the browser back to.
func ssoStart(t testing.TB, c *client, next string) string {
	t.Helper()
	path := "/auth/oidc/login"
	if next != "" {
		path += "?next=" + url.QueryEscape(next)
	}
	resp, body := c.get(path)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "http://127.0.0.1:") || !strings.Contains(loc, "/authorize?") {
		t.Fatalf("GET %s = %d %q, want a redirect to the provider\n%s", path, resp.StatusCode, loc, body)
	}
	resp, body = c.fetch(loc)
	back := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(back, c.env.HTTP.URL+"/auth/oidc/callback?") {
		t.Fatalf("provider answered %d %q, want a redirect to the callback\n%s", resp.StatusCode, back, body)
	}
	return back
}

// ssoSignIn runs a whole sign-in and returns the callback's answer.
func ssoSignIn(t testing.TB, c *client, next string) (*http.Response, string) {
	t.Helper()
	return c.fetch(ssoStart(t, c, next))
}

func sessionCount(t testing.TB, env *testEnv, email string) int {
	t.Helper()
	var n int
	if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = $1", email).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func auditCount(t testing.TB, env *testEnv, action, email string, details map[string]string) int {
	t.Helper()
	q := "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_email = $2"
	args := []any{action, email}
	for k, v := range details {
		args = append(args, k, v)
		q += " AND details->>$" + strconv.Itoa(len(args)-1) + " = $" + strconv.Itoa(len(args))
	}
	var n int
	if err := env.Pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func cookieNamed(resp *http.Response, name string) *http.Cookie {
	for _, ck := range resp.Cookies() {
		if ck.Name == name {
			return ck
		}
	}
	return nil
}

// expectRefused checks a refused callback: the status, the message on the
// sign-in page, and that nobody is signed in.
func expectRefused(t *testing.T, c *client, resp *http.Response, body string, status int, message string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("callback = %d, want %d\n%s", resp.StatusCode, status, body)
	}
	if !strings.Contains(body, `data-testid="login-error"`) || !strings.Contains(body, message) {
		t.Errorf("the page does not say %q:\n%s", message, body)
	}
	if ck := cookieNamed(resp, "keyledger_session"); ck != nil && ck.MaxAge >= 0 {
		t.Errorf("a refused callback set a session cookie")
	}
	expectSignedOut(t, c)
}

func TestOIDCSignIn(t *testing.T) {
	t.Parallel()
	env, idp := newSSOEnv(t)
	idp.set(func(i *testIDP) { i.user = idpUser{Sub: "u-1", Email: "Member@Example.com", Verified: true} })
	c := env.client()

	// The sign-in page offers both ways in.
	resp, body := c.get("/login?next=/rotation")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-testid="login-form"`) ||
		!strings.Contains(body, `href="/auth/oidc/login?next=%2frotation"`) && !strings.Contains(body, `href="/auth/oidc/login?next=%2Frotation"`) {
		t.Fatalf("sign-in page lacks the form or the SSO button carrying next:\n%s", body)
	}

	// The start sets the flow cookie: signed, HttpOnly, Lax, ten minutes.
	resp, _ = c.get("/auth/oidc/login?next=" + url.QueryEscape("/rotation"))
	ck := cookieNamed(resp, "keyledger_oidc")
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.MaxAge != 600 || ck.Path != "/" || ck.Secure {
		t.Fatalf("flow cookie %+v, want HttpOnly, SameSite=Lax, Max-Age=600, Path=/", ck)
	}
	if strings.Contains(ck.Value, "rotation") {
		t.Error("the flow cookie is not encoded")
	}
	authURL, _ := url.Parse(resp.Header.Get("Location"))
	if authURL.Query().Get("redirect_uri") != env.HTTP.URL+"/auth/oidc/callback" {
		t.Errorf("redirect_uri %q", authURL.Query().Get("redirect_uri"))
	}

	resp, body = ssoSignIn(t, c, "/rotation")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/rotation" {
		t.Fatalf("callback = %d %q, want 303 to /rotation\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if ck := cookieNamed(resp, "keyledger_oidc"); ck == nil || ck.MaxAge >= 0 {
		t.Error("the callback did not clear the flow cookie")
	}
	sess := cookieNamed(resp, "keyledger_session")
	if sess == nil || !sess.HttpOnly || sess.SameSite != http.SameSiteLaxMode {
		t.Fatalf("session cookie %+v", sess)
	}
	resp, body = c.follow(resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-testid="whoami"`) || !strings.Contains(body, "Member") {
		t.Fatalf("GET /rotation after SSO = %d\n%s", resp.StatusCode, body)
	}
	expectSignedIn(t, c)
	if n := auditCount(t, env, keyledger.ActionSignIn, "member@example.com", map[string]string{"method": "oidc"}); n != 1 {
		t.Errorf("%d sign-in events with method=oidc, want 1", n)
	}
	// The signed-in person can use forms (CSRF token bound to the new
	// session) and sign out.
	c.get("/keys")
	if resp, _ := c.post("/logout", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("logout after SSO = %d", resp.StatusCode)
	}
	expectSignedOut(t, c)
	if n := sessionCount(t, env, "member@example.com"); n != 0 {
		t.Errorf("%d sessions after sign-out", n)
	}

	// A flow is good once: the same callback again is refused.
	again := env.client()
	cb := ssoStart(t, again, "")
	if resp, _ := again.fetch(cb); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first use of the callback = %d", resp.StatusCode)
	}
	again.get("/keys")
	again.post("/logout", nil)
	resp, body = again.fetch(cb)
	expectRefused(t, again, resp, body, http.StatusBadRequest, "did not start in this browser")

	// next is a local path or nothing.
	evil := env.client()
	resp, _ = ssoSignIn(t, evil, "//evil.example/x")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/keys" {
		t.Errorf("next=//evil.example: %d %q, want 303 to /keys", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Signed in already: the button just goes on.
	resp, _ = evil.get("/auth/oidc/login?next=/audit")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/audit" {
		t.Errorf("SSO start while signed in: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if logs := env.Logs.String(); strings.Contains(logs, idpClientSecret) || strings.Contains(logs, "code=") {
		t.Error("the log carries the client secret or an authorization code")
	}
}

// TestOIDCFixation: a session id the browser held before is dropped, never
// promoted.
func TestOIDCFixation(t *testing.T) {
	t.Parallel()
	env, idp := newSSOEnv(t)
	idp.set(func(i *testIDP) { i.user = idpUser{Sub: "u-2", Email: "member2@example.com", Verified: true} })
	c := env.client()
	cb := ssoStart(t, c, "")
	// Signed in (as someone else) between the start and the callback.
	c.login("member")
	before := sessionCount(t, env, "member@example.com")
	resp, _ := c.fetch(cb)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("callback = %d", resp.StatusCode)
	}
	if n := sessionCount(t, env, "member@example.com"); n != before-1 {
		t.Errorf("the old session survived a new sign-in: %d sessions, had %d", n, before)
	}
	_, body := c.get("/keys")
	if !strings.Contains(body, "Member2") {
		t.Error("not signed in as the SSO user")
	}
}

func TestOIDCWrongState(t *testing.T) {
	t.Parallel()
	env, idp := newSSOEnv(t)
	idp.set(func(i *testIDP) { i.user = idpUser{Sub: "u-1", Email: "member@example.com", Verified: true} })
	c := env.client()
	cb, _ := url.Parse(ssoStart(t, c, ""))
	for _, state := range []string{"", "x", cb.Query().Get("state") + "x", strings.ToUpper(cb.Query().Get("state"))} {
		q := cb.Query()
		q.Set("state", state)
		u := *cb
		u.RawQuery = q.Encode()
		resp, body := c.fetch(u.String())
		expectRefused(t, c, resp, body, http.StatusBadRequest, "did not start in this browser")
		// The flow cookie is gone after any callback: start again.
		cb, _ = url.Parse(ssoStart(t, c, ""))
	}
	// Another browser (no flow cookie) with a perfectly good callback URL:
	// login CSRF, refused.
	other := env.client()
	resp, body := other.fetch(cb.String())
	expectRefused(t, other, resp, body, http.StatusBadRequest, "did not start in this browser")
	if n := sessionCount(t, env, "member@example.com"); n != 0 {
		t.Errorf("%d sessions after refused callbacks", n)
	}
	idp.mu.Lock()
	defer idp.mu.Unlock()
	if len(idp.issued) != 0 {
		t.Errorf("a refused state still redeemed %d codes", len(idp.issued))
	}
}

func TestOIDCTokenRefused(t *testing.T) {
	t.Parallel()
	env, idp := newSSOEnv(t)
	base := idpUser{Sub: "u-1", Email: "member@example.com", Verified: true}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		setup func(i *testIDP)
	}{
		{"tampered signature", func(i *testIDP) { i.tamper = true }},
		{"signed by another key", func(i *testIDP) { i.signWith = other }},
		{"nonce mismatch", func(i *testIDP) { i.claims = func(c map[string]any) { c["nonce"] = authzRand(32) } }},
		{"no nonce", func(i *testIDP) { i.claims = func(c map[string]any) { delete(c, "nonce") } }},
		{"wrong audience", func(i *testIDP) { i.claims = func(c map[string]any) { c["aud"] = "someone-else" } }},
		{"two audiences, azp not us", func(i *testIDP) {
			i.claims = func(c map[string]any) { c["aud"] = []string{"someone-else", idpClientID}; c["azp"] = "someone-else" }
		}},
		{"wrong issuer", func(i *testIDP) { i.claims = func(c map[string]any) { c["iss"] = "https://evil.example" } }},
		{"expired", func(i *testIDP) {
			i.claims = func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }
		}},
	}
	for _, tc := range cases {
		idp.set(func(i *testIDP) {
			i.user, i.claims, i.tamper, i.signWith = base, nil, false, nil
			tc.setup(i)
		})
		t.Run(tc.name, func(t *testing.T) {
			c := authzClient(env, t)
			resp, body := ssoSignIn(t, c, "")
			expectRefused(t, c, resp, body, http.StatusUnauthorized, "could not be verified")
		})
	}
	// The same provider, untampered: the sign-in works (so the refusals
	// above were the tampering's doing).
	idp.set(func(i *testIDP) { i.user, i.claims, i.tamper, i.signWith = base, nil, false, nil })
	if resp, body := ssoSignIn(t, env.client(), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("untampered sign-in = %d\n%s", resp.StatusCode, body)
	}
	if _, err := env.Pool.Exec(context.Background(), "DELETE FROM sessions"); err != nil {
		t.Fatal(err)
	}
	if n := sessionCount(t, env, "member@example.com"); n != 0 {
		t.Errorf("%d sessions after refused tokens", n)
	}
	if n := sessionCount(t, env, "admin@example.com"); n != 0 {
		t.Errorf("the tampered token signed in its payload's person")
	}
	if n := auditCount(t, env, keyledger.ActionSignInFailed, "", map[string]string{"method": "oidc"}); n < len(cases) {
		t.Errorf("%d failed SSO sign-ins audited, want at least %d", n, len(cases))
	}
}

// TestOIDCNonceReplay: an ID token from an earlier flow, presented in a
// new one, carries the old nonce and is refused.
func TestOIDCNonceReplay(t *testing.T) {
	t.Parallel()
	env, idp := newSSOEnv(t)
	idp.set(func(i *testIDP) { i.user = idpUser{Sub: "u-1", Email: "member@example.com", Verified: true} })
	first := env.client()
	if resp, _ := ssoSignIn(t, first, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first sign-in = %d", resp.StatusCode)
	}
	idp.set(func(i *testIDP) { i.replay = i.issued[0] })
	c := env.client()
	resp, body := ssoSignIn(t, c, "")
	expectRefused(t, c, resp, body, http.StatusUnauthorized, "could not be verified")
	if n := auditCount(t, env, keyledger.ActionSignInFailed, "", map[string]string{"method": "oidc", "reason": "nonce_mismatch"}); n != 1 {
		t.Errorf("%d nonce_mismatch events, want 1", n)
	}
}

// TestOIDCStolenCode: a code taken from someone's callback and redeemed in
// another browser (with that browser's own flow and state) fails at the
// provider, because the PKCE verifier does not match the challenge.
func TestOIDCStolenCode(t *testing.T) {
	t.Parallel()
	env, idp := newSSOEnv(t)
	idp.set(func(i *testIDP) { i.user = idpUser{Sub: "u-9", Email: "lead@example.com", Verified: true} })
	victim := env.client()
	victimCB, _ := url.Parse(ssoStart(t, victim, ""))

	idp.set(func(i *testIDP) { i.user = idpUser{Sub: "u-1", Email: "member@example.com", Verified: true} })
	attacker := env.client()
	attackerCB, _ := url.Parse(ssoStart(t, attacker, ""))
	q := attackerCB.Query()
	q.Set("code", victimCB.Query().Get("code"))
	attackerCB.RawQuery = q.Encode()
	resp, body := attacker.fetch(attackerCB.String())
	expectRefused(t, attacker, resp, body, http.StatusUnauthorized, "could not be verified")
	idp.mu.Lock()
	refused := idp.tokenErrors
	idp.mu.Unlock()
	if refused == 0 {
		t.Error("the provider never refused the code: PKCE was not checked")
	}
	if n := sessionCount(t, env, "lead@example.com"); n != 0 {
		t.Errorf("the stolen code signed someone in as the lead")
	}
}

func TestOIDCEmailMustBeVerified(t *testing.T) {
	t.Parallel()
	env, idp := newSSOEnv(t)
	for _, u := range []idpUser{
		{Sub: "u-1", Email: "member@example.com", Verified: false},
		{Sub: "u-1", Email: "member@example.com", Verified: nil},
		{Sub: "u-1", Email: "member@example.com", Verified: "false"},
		{Sub: "u-1", Email: "", Verified: true},
	} {
		idp.set(func(i *testIDP) { i.user = u })
		c := env.client()
		resp, body := ssoSignIn(t, c, "")
		expectRefused(t, c, resp, body, http.StatusForbidden, "did not confirm an email address")
	}
	if n := sessionCount(t, env, "member@example.com"); n != 0 {
		t.Errorf("%d sessions from unverified emails", n)
	}
	// Some providers send the claim as a string.
	idp.set(func(i *testIDP) { i.user = idpUser{Sub: "u-1", Email: "member@example.com", Verified: "true"} })
	if resp, _ := ssoSignIn(t, env.client(), ""); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("email_verified \"true\" = %d, want a sign-in", resp.StatusCode)
	}
}

func TestOIDCAccounts(t *testing.T) {
	t.Parallel()
	env, idp := newSSOEnv(t)
	ctx := context.Background()
	users := func() int {
		n, err := env.Store.CountUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := users()

	// Unknown, domain not allowed: refused, nobody created.
	idp.set(func(i *testIDP) { i.user = idpUser{Sub: "x-1", Email: "stranger@elsewhere.example", Verified: true} })
	c := env.client()
	resp, body := ssoSignIn(t, c, "")
	expectRefused(t, c, resp, body, http.StatusForbidden, "does not create accounts for its domain")
	if n := users(); n != before {
		t.Errorf("%d users after a refused stranger, want %d", n, before)
	}

	// Unknown, allowed domain: a member is created and signed in.
	idp.set(func(i *testIDP) {
		i.user = idpUser{Sub: "x-2", Email: "New.Hire@corp.example", Name: "New Hire", Verified: true}
	})
	c = env.client()
	resp, body = ssoSignIn(t, c, "")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("allowed domain: callback = %d\n%s", resp.StatusCode, body)
	}
	_, body = c.get("/keys")
	if !strings.Contains(body, "New Hire") {
		t.Error("the new member is not signed in")
	}
	u, err := env.Store.UserByEmail(ctx, "new.hire@corp.example")
	if err != nil || u.Role != keyledger.RoleMember || !u.Active() {
		t.Fatalf("new user %+v %v, want an active member", u, err)
	}
	if n := auditCount(t, env, keyledger.ActionUserCreate, "new.hire@corp.example", map[string]string{"via": "oidc"}); n != 1 {
		t.Errorf("%d user.create via=oidc events, want 1", n)
	}
	// A member cannot reach admin pages through SSO either.
	if resp, _ := c.get("/admin/users"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("new member GET /admin/users = %d, want 403", resp.StatusCode)
	}

	// Deactivated: refused with the password sign-in's own message, even
	// from an allowed domain; the account stays deactivated.
	pw := env.client()
	pw.get("/login")
	_, pwBody := pw.post("/login", url.Values{"email": {"gone@example.com"}, "password": {Password}})
	m := regexpLoginError.FindStringSubmatch(pwBody)
	if m == nil {
		t.Fatalf("no error on the password sign-in page:\n%s", pwBody)
	}
	for _, email := range []string{"gone@example.com", "frozen@corp.example"} {
		if email == "frozen@corp.example" {
			if _, err := env.Store.CreateUser(ctx, keyledger.SystemActor("test"), keyledger.NewUser{Email: email, Role: keyledger.RoleMember, Password: Password}); err != nil {
				t.Fatal(err)
			}
			if _, err := env.Store.StartOffboarding(ctx, actorOf(env, "lead"), email, true, "test"); err != nil {
				t.Fatal(err)
			}
		}
		idp.set(func(i *testIDP) { i.user = idpUser{Sub: "g-" + email, Email: email, Verified: true} })
		c := env.client()
		resp, body := ssoSignIn(t, c, "")
		expectRefused(t, c, resp, body, http.StatusUnauthorized, m[1])
		if n := sessionCount(t, env, email); n != 0 {
			t.Errorf("%s: %d sessions", email, n)
		}
		if u, _ := env.Store.UserByEmail(ctx, email); u.Active() {
			t.Errorf("%s was reactivated by SSO", email)
		}
	}
}

// TestOIDCDomainNeedsOneAddress: an identity provider's email claim with
// two @ is not an address of the allowed domain, however it ends; nobody
// is created and the refusal is audited.
func TestOIDCDomainNeedsOneAddress(t *testing.T) {
	t.Parallel()
	env, idp := newSSOEnv(t)
	ctx := context.Background()
	before, err := env.Store.CountUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i, email := range []string{"a@evil.example@corp.example", `"a@evil.example"@corp.example`, "a@corp.example (comment)"} {
		idp.set(func(p *testIDP) { p.user = idpUser{Sub: fmt.Sprintf("two-at-%d", i), Email: email, Verified: true} })
		c := env.client()
		resp, body := ssoSignIn(t, c, "")
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: callback = %d, want 403\n%s", email, resp.StatusCode, body)
		}
		if n, _ := env.Store.CountUsers(ctx); n != before {
			t.Fatalf("%s: %d users, want %d (nobody created)", email, n, before)
		}
	}
}

// TestOIDCSecondFactor: SSO replaces the password, not keyledger's second
// factor.
func TestOIDCSecondFactor(t *testing.T) {
	t.Parallel()
	env, idp := newSSOEnv(t)
	secret, _ := enrollTOTP(t, env.client().login("lead"))
	idp.set(func(i *testIDP) { i.user = idpUser{Sub: "l-1", Email: "lead@example.com", Verified: true} })
	c := env.client()
	resp, _ := ssoSignIn(t, c, "/audit")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login/2fa?next=%2Faudit" {
		t.Fatalf("callback = %d %q, want the second step", resp.StatusCode, resp.Header.Get("Location"))
	}
	expectSignedOut(t, c)
	c.get("/login/2fa?next=%2Faudit")
	// The next step's code: the current one was spent on enrollment.
	resp, body := c.post("/login/2fa", url.Values{"code": {totpCode(t, secret, time.Now().Add(30*time.Second))}, "next": {"/audit"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/audit" {
		t.Fatalf("second step = %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	expectSignedIn(t, c)
}

func TestOIDCProviderError(t *testing.T) {
	t.Parallel()
	env, idp := newSSOEnv(t)
	idp.set(func(i *testIDP) { i.deny = "access_denied" })
	c := env.client()
	resp, body := ssoSignIn(t, c, "")
	expectRefused(t, c, resp, body, http.StatusForbidden, "Your identity provider did not sign you in (access_denied: The user cancelled &lt;b&gt;the sign-in&lt;/b&gt;)")
	if strings.Contains(body, "<b>the") {
		t.Error("the provider's description reached the page unescaped")
	}
	idp.set(func(i *testIDP) { i.deny = "server_error" })
	c = env.client()
	resp, body = ssoSignIn(t, c, "")
	expectRefused(t, c, resp, body, http.StatusBadRequest, "server_error")
	if n := auditCount(t, env, keyledger.ActionSignInFailed, "", map[string]string{"reason": "provider_error:access_denied"}); n != 1 {
		t.Errorf("%d provider_error events, want 1", n)
	}
	// A made-up error without a matching state shows nothing of it.
	resp, body = env.client().get("/auth/oidc/callback?error=x&error_description=Call+555-0100+for+help&state=nope")
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(body, "555-0100") {
		t.Errorf("forged provider error: %d, shows its text: %v", resp.StatusCode, strings.Contains(body, "555-0100"))
	}
}

func TestOIDCPasswordLoginOff(t *testing.T) {
	t.Parallel()
	env, idp := newSSOEnv(t, withPasswordLoginOff())
	c := env.client()
	resp, body := c.get("/login")
	if resp.StatusCode != http.StatusOK || strings.Contains(body, `name="password"`) || strings.Contains(body, `action="/login"`) {
		t.Fatalf("GET /login still offers the password form:\n%s", body)
	}
	if !strings.Contains(body, `data-testid="login-sso"`) {
		t.Fatalf("GET /login lacks the SSO button:\n%s", body)
	}
	if c.csrf != "" {
		t.Fatal("the page without a form carries a CSRF token")
	}
	// A form rendered before password sign-in was switched off (here: by
	// a replica with it still on, sharing the store and so the keys) is
	// refused with the reason, not as an expired form.
	older, err := web.New(web.Config{}, env.Store, nil)
	if err != nil {
		t.Fatal(err)
	}
	oldSrv := httptest.NewServer(older)
	defer oldSrv.Close()
	if _, body := c.fetch(oldSrv.URL + "/login"); !strings.Contains(body, `name="password"`) || c.csrf == "" {
		t.Fatal("the replica with password sign-in on shows no form")
	}
	resp, body = c.post("/login", url.Values{"email": {"member@example.com"}, "password": {Password}})
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Password sign-in is switched off") {
		t.Fatalf("POST /login = %d, want 403 saying password sign-in is off\n%s", resp.StatusCode, body)
	}
	if strings.Contains(body, `name="password"`) {
		t.Error("the refusal page shows the password form")
	}
	expectSignedOut(t, c)
	if n := auditCount(t, env, keyledger.ActionSignIn, "member@example.com", nil); n != 0 {
		t.Errorf("%d sign-ins by password", n)
	}
	// Users made as the command line makes them still sign in by SSO.
	if _, err := env.Store.CreateUser(context.Background(), keyledger.SystemActor("cli"), keyledger.NewUser{
		Email: "ops@example.com", Name: "Ops", Role: keyledger.RoleAdmin, Password: Password}); err != nil {
		t.Fatal(err)
	}
	idp.set(func(i *testIDP) { i.user = idpUser{Sub: "o-1", Email: "ops@example.com", Verified: true} })
	if resp, _ := ssoSignIn(t, c, ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("SSO with password sign-in off = %d", resp.StatusCode)
	}
	expectSignedIn(t, c)

	// Password sign-in off without SSO: the server refuses to start.
	if _, err := web.New(web.Config{PasswordLoginOff: true}, env.Store, nil); err == nil {
		t.Error("web.New accepted password sign-in off without single sign-on")
	}
}

// TestOIDCProviderDownAtStart: the server starts without the provider; the
// button says SSO is temporarily unavailable until discovery succeeds.
func TestOIDCProviderDownAtStart(t *testing.T) {
	t.Parallel()
	idp := newTestIDP(t)
	idp.set(func(i *testIDP) {
		i.down = true
		i.user = idpUser{Sub: "u-1", Email: "member@example.com", Verified: true}
	})
	env := newEnv(t, withOIDC(idp))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- env.Server.RunOIDCDiscovery(ctx) }()

	c := env.client()
	_, body := c.get("/login")
	if !strings.Contains(body, `data-testid="login-sso-unavailable"`) || strings.Contains(body, `data-testid="login-sso"`) {
		t.Fatalf("login page while the provider is down:\n%s", body)
	}
	if !strings.Contains(body, `data-testid="login-form"`) {
		t.Error("the password form vanished while SSO is down")
	}
	resp, body := c.get("/auth/oidc/login")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "temporarily unavailable") || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("SSO start while down = %d (Retry-After %q)\n%s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if env.Server.OIDCReady() {
		t.Fatal("ready while the provider is down")
	}

	// Up again once keyledger has tried at least once.
	for tried := false; !tried; {
		idp.set(func(i *testIDP) { tried = i.discoveries > 0 })
		time.Sleep(10 * time.Millisecond)
	}
	idp.set(func(i *testIDP) { i.down = false })
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("discovery did not retry")
	}
	if !strings.Contains(env.Logs.String(), "single sign-on provider not reachable yet; retrying") {
		t.Error("the failed attempt was not logged")
	}
	_, body = c.get("/login")
	if !strings.Contains(body, `data-testid="login-sso"`) {
		t.Fatalf("no SSO button after discovery:\n%s", body)
	}
	if resp, _ := ssoSignIn(t, c, ""); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-in after the provider came up = %d", resp.StatusCode)
	}

	// Discovery stops with its context.
	idp2 := newTestIDP(t)
	idp2.set(func(i *testIDP) { i.down = true })
	env2 := newEnv(t, withOIDC(idp2))
	ctx2, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	if err := env2.Server.RunOIDCDiscovery(ctx2); err == nil {
		t.Error("discovery against a provider that stays down returned nil")
	}
}

func TestOIDCNotConfigured(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := env.client()
	_, body := c.get("/login")
	if strings.Contains(body, "single sign-on") || strings.Contains(body, "/auth/oidc") {
		t.Error("the sign-in page mentions SSO though it is not configured")
	}
	for _, p := range []string{"/auth/oidc/login", "/auth/oidc/callback?code=x&state=y"} {
		if resp, _ := c.get(p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, resp.StatusCode)
		}
	}
	if env.Server.OIDCEnabled() || env.Server.RunOIDCDiscovery(context.Background()) != nil {
		t.Error("SSO looks enabled")
	}
}

// TestOIDCRoutesByActor is the authorization matrix of the two routes
// with single sign-on configured (the shared matrix runs without it; see
// authz_oidc_test.go): the start is public and sends signed-in people
// on; the callback without a flow of the browser's own refuses everyone
// alike and changes no session.
func TestOIDCRoutesByActor(t *testing.T) {
	t.Parallel()
	env, idp := newSSOEnv(t)
	idp.set(func(i *testIDP) { i.user = idpUser{Sub: "u-1", Email: "member2@example.com", Verified: true} })
	for _, actor := range authzActors {
		t.Run(actor, func(t *testing.T) {
			c := authzActorClient(env, t, actor)
			resp, _ := authzSend(c, "GET", "/auth/oidc/login?next=%2Frotation", nil, nil)
			if signedIn(actor) {
				if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/rotation" {
					t.Errorf("start: %d %q, want 303 to /rotation", resp.StatusCode, resp.Header.Get("Location"))
				}
			} else if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), idp.srv.URL+"/authorize?") {
				t.Errorf("start: %d %q, want 303 to the provider", resp.StatusCode, resp.Header.Get("Location"))
			}
			fresh := authzActorClient(env, t, actor)
			for _, q := range []string{"", "?state=x&code=y", "?error=access_denied"} {
				resp, body := authzSend(fresh, "GET", "/auth/oidc/callback"+q, nil, nil)
				if resp.StatusCode != http.StatusBadRequest {
					t.Errorf("callback%s: %d, want 400", q, resp.StatusCode)
				}
				if ck := cookieNamed(resp, "keyledger_session"); ck != nil {
					t.Errorf("callback%s touched the session cookie", q)
				}
				if strings.Contains(body, "access_denied") {
					t.Errorf("callback%s shows an unauthenticated provider error", q)
				}
			}
			if signedIn(actor) {
				expectSignedIn(t, fresh)
			}
		})
	}
}

var regexpLoginError = regexp.MustCompile(`data-testid="login-error">([^<]+)<`)

// TestOIDCUserInfo: an ID token without the email claims sends keyledger
// to UserInfo, whose answer must be about the ID token's subject and must
// vouch for the email; auth_time stays the ID token's.
func TestOIDCUserInfo(t *testing.T) {
	t.Parallel()
	env, idp := newSSOEnv(t)
	minimal := func(claims map[string]any) {
		delete(claims, "email")
		delete(claims, "email_verified")
		delete(claims, "name")
		claims["auth_time"] = time.Now().Add(-time.Hour).Unix()
	}
	reset := func(user idpUser, userinfo func(map[string]any)) {
		idp.set(func(i *testIDP) {
			i.user, i.claims, i.userinfo, i.userinfoStatus, i.userinfoURL, i.userinfoCalls = user, minimal, userinfo, 0, "", 0
		})
	}
	calls := func() int {
		idp.mu.Lock()
		defer idp.mu.Unlock()
		return idp.userinfoCalls
	}
	refusals := func(reason string) int {
		var n int
		if err := env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM audit_events WHERE action = $1 AND details->>'reason' = $2`,
			keyledger.ActionSignInFailed, reason).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// The email from UserInfo signs in an existing user; email_verified
	// may be the string "true". The step-up clock is the ID token's
	// auth_time, an hour ago, not the sign-in.
	reset(idpUser{Sub: "u-1", Email: "member@example.com", Verified: "true"}, nil)
	c := env.client()
	resp, body := ssoSignIn(t, c, "")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("minimal ID token, email in UserInfo: callback = %d\n%s", resp.StatusCode, body)
	}
	if calls() != 1 {
		t.Errorf("%d UserInfo requests, want 1", calls())
	}
	at := stepUpTimes(t, env, "member@example.com")
	if len(at) != 1 || time.Since(at[0]) < 59*time.Minute {
		t.Errorf("step-up times %v, want the ID token's auth_time an hour ago", at)
	}

	// A new member gets the name UserInfo gives.
	reset(idpUser{Sub: "n-1", Email: "ui.hire@corp.example", Name: "Ui Hire", Verified: true}, nil)
	if resp, body := ssoSignIn(t, env.client(), ""); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("new member from UserInfo: callback = %d\n%s", resp.StatusCode, body)
	}
	if u := userByEmail(t, env, "ui.hire@corp.example"); u.Name != "Ui Hire" {
		t.Errorf("new member's name %q, want Ui Hire", u.Name)
	}

	// UserInfo about another subject, or about no subject: refused and
	// audited, whoever it names.
	for _, sub := range []string{"someone-else", ""} {
		reset(idpUser{Sub: "u-1", Email: "member2@example.com", Verified: true}, func(cl map[string]any) {
			cl["sub"] = sub
			cl["email"] = "admin@example.com"
		})
		c := env.client()
		resp, body := ssoSignIn(t, c, "")
		expectRefused(t, c, resp, body, http.StatusUnauthorized, "could not be verified")
	}
	if n := refusals("userinfo_subject_mismatch"); n != 2 {
		t.Errorf("%d refusals audited as userinfo_subject_mismatch, want 2", n)
	}
	if sessionCount(t, env, "admin@example.com")+sessionCount(t, env, "member2@example.com") != 0 {
		t.Error("a UserInfo answer about another subject signed someone in")
	}

	// UserInfo that does not vouch for the email.
	for _, v := range []any{false, nil, "yes", 1} {
		reset(idpUser{Sub: "u-2", Email: "member2@example.com", Verified: v}, nil)
		c := env.client()
		resp, body := ssoSignIn(t, c, "")
		status, msg := http.StatusForbidden, "did not confirm an email address"
		if v == "yes" || v == 1 {
			// go-oidc refuses to read an email_verified that is neither
			// a boolean nor "true"/"false".
			status, msg = http.StatusUnauthorized, "could not be verified"
		}
		expectRefused(t, c, resp, body, status, msg)
	}
	if sessionCount(t, env, "member2@example.com") != 0 {
		t.Error("an unverified email from UserInfo signed in")
	}

	// UserInfo refuses the access token.
	reset(idpUser{Sub: "u-2", Email: "member2@example.com", Verified: true}, nil)
	idp.set(func(i *testIDP) { i.userinfoStatus = http.StatusUnauthorized })
	c = env.client()
	resp, body = ssoSignIn(t, c, "")
	expectRefused(t, c, resp, body, http.StatusUnauthorized, "could not be verified")
	if n := refusals("userinfo_failed"); n < 1 {
		t.Errorf("%d refusals audited as userinfo_failed, want at least 1", n)
	}

	// The UserInfo endpoint is read at discovery: a server of its own
	// for each of the next two.
	rediscovered := func(userinfoURL string) *testEnv {
		reset(idpUser{Sub: "u-2", Email: "member2@example.com", Verified: true}, nil)
		idp.set(func(i *testIDP) { i.userinfoURL = userinfoURL })
		e := newEnv(t, withOIDC(idp, "corp.example"))
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Server.RunOIDCDiscovery(ctx); err != nil {
			t.Fatal(err)
		}
		return e
	}
	// No UserInfo endpoint: the ID token named no email.
	env2 := rediscovered("none")
	c = env2.client()
	resp, body = ssoSignIn(t, c, "")
	expectRefused(t, c, resp, body, http.StatusForbidden, "did not confirm an email address")

	// UserInfo unreachable: temporarily unavailable, nobody signed in.
	dead := httptest.NewServer(http.NotFoundHandler())
	dead.Close()
	env3 := rediscovered(dead.URL + "/userinfo")
	c = env3.client()
	resp, body = ssoSignIn(t, c, "")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "temporarily unavailable") {
		t.Errorf("UserInfo unreachable: callback = %d, want 503\n%s", resp.StatusCode, body)
	}
	expectSignedOut(t, c)

	// ID tokens with the email claims: no UserInfo request.
	reset(idpUser{Sub: "u-1", Email: "member@example.com", Verified: true}, nil)
	idp.set(func(i *testIDP) { i.claims = nil })
	if resp, _ := ssoSignIn(t, env.client(), ""); resp.StatusCode != http.StatusSeeOther || calls() != 0 {
		t.Errorf("full ID token: callback = %d, %d UserInfo requests, want 303 and none", resp.StatusCode, calls())
	}

	// No access token in the logs.
	idp.mu.Lock()
	defer idp.mu.Unlock()
	for _, logs := range []string{env.Logs.String(), env2.Logs.String(), env3.Logs.String()} {
		for at := range idp.accessTokens {
			if strings.Contains(logs, at) {
				t.Fatal("keyledger logged an access token")
			}
		}
	}
}
