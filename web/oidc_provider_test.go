package web_test

import (
	"bufio"
	"context"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web"
)

// Single sign-on against a real OpenID Connect provider: npm
// oidc-provider (web/testdata/oidc-provider/server.mjs) under node, signed
// into through its development login and consent forms, and keyledger's
// callback through the real HTTP stack. The in-process provider of
// oidc_test.go checks what keyledger does with each kind of answer; this
// one checks that keyledger understands a provider it did not write,
// which answers as the specification lets it: by default its ID tokens
// carry no email, and the email comes from UserInfo.
//
// It needs node and `npm ci --prefix web/testdata/oidc-provider`;
// KEYLEDGER_SKIP_NODE=1 skips it (nothing else does).

var oidcProviderDir = filepath.Join("testdata", "oidc-provider")

// nodeIDP is one running oidc-provider.
type nodeIDP struct {
	issuer string
	stderr *syncBuffer

	mu           sync.Mutex
	accessTokens []string
	// userinfo are the UserInfo answers, "STATUS SUB".
	userinfo []string
}

// issuedAccessTokens are the access tokens the provider handed out.
func (p *nodeIDP) issuedAccessTokens() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.accessTokens...)
}

func requireNodeProvider(t *testing.T) {
	t.Helper()
	if os.Getenv("KEYLEDGER_SKIP_NODE") == "1" {
		t.Skip("KEYLEDGER_SKIP_NODE=1: not testing single sign-on against oidc-provider")
	}
	const install = "install it with: npm ci --prefix web/testdata/oidc-provider (or set KEYLEDGER_SKIP_NODE=1 to skip)"
	if _, err := exec.LookPath("node"); err != nil {
		t.Fatalf("node is not on PATH (%v); the single sign-on tests run a real provider under node; %s", err, install)
	}
	if _, err := os.Stat(filepath.Join(oidcProviderDir, "node_modules", "oidc-provider", "package.json")); err != nil {
		t.Fatalf("oidc-provider is not installed in %s; %s", oidcProviderDir, install)
	}
}

// newNodeSSOEnv starts a test env whose single sign-on is oidc-provider
// (domain corp.example allowed), discovered. idTokenClaims makes the
// provider put the email claims into the ID token too.
func newNodeSSOEnv(t *testing.T, idTokenClaims bool) (*testEnv, *nodeIDP) {
	t.Helper()
	requireNodeProvider(t)
	// The test opens the provider's socket and hands it down, so the
	// issuer is known before the provider starts and no other process can
	// take the port in between.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sock, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sock.Close() }() // teardown
	idp := &nodeIDP{issuer: "http://" + ln.Addr().String(), stderr: &syncBuffer{}}
	env := newEnv(t, func(c *web.Config) {
		c.OIDC = &web.OIDCConfig{Issuer: idp.issuer, ClientID: idpClientID, ClientSecret: idpClientSecret, AllowedDomains: []string{"corp.example"}}
	})

	args := []string{"server.mjs", "--listen-fd", "3", "--redirect-uri", env.HTTP.URL + "/auth/oidc/callback",
		"--client-id", idpClientID, "--client-secret", idpClientSecret}
	if idTokenClaims {
		args = append(args, "--id-token-claims")
	}
	cmd := exec.Command("node", args...)
	cmd.Dir = oidcProviderDir
	cmd.ExtraFiles = []*os.File{sock}
	cmd.Stderr = idp.stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = stdin.Close() // teardown: the process is killed next
		_ = cmd.Process.Kill()
		<-exited
	})
	ready := make(chan string, 1)
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "ready "):
				ready <- strings.TrimPrefix(line, "ready ")
			case strings.HasPrefix(line, "access_token "):
				idp.mu.Lock()
				idp.accessTokens = append(idp.accessTokens, strings.TrimPrefix(line, "access_token "))
				idp.mu.Unlock()
			case strings.HasPrefix(line, "userinfo "):
				idp.mu.Lock()
				idp.userinfo = append(idp.userinfo, strings.TrimPrefix(line, "userinfo "))
				idp.mu.Unlock()
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
	}()
	select {
	case got := <-ready:
		if got != idp.issuer {
			t.Fatalf("oidc-provider says its issuer is %q, want %q", got, idp.issuer)
		}
	case <-exited:
		t.Fatalf("oidc-provider exited before it was ready:\n%s", idp.stderr.String())
	case <-time.After(time.Minute):
		// A guard against a hang, not a timing assertion.
		t.Fatalf("oidc-provider not ready after a minute:\n%s", idp.stderr.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := env.Server.RunOIDCDiscovery(ctx); err != nil {
		t.Fatalf("discovery at oidc-provider: %v\n%s", err, idp.stderr.String())
	}
	return env, idp
}

var (
	htmlForm  = regexp.MustCompile(`(?s)<form[^>]*\baction="([^"]*)"[^>]*>(.*?)</form>`)
	htmlInput = regexp.MustCompile(`<input\b[^>]*>`)
	htmlAttr  = regexp.MustCompile(`\b(name|value)="([^"]*)"`)
)

// postAbs posts a form to an absolute URL without following redirects.
func (c *client) postAbs(rawURL string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	resp, err := c.http.PostForm(rawURL, form)
	if err != nil {
		c.t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp, string(b)
}

// nodeSSOStart clicks keyledger's sign-in button and goes through the
// provider as a browser would: its redirects, its login form (as login;
// any password does) and its consent form. It returns the callback URL the
// provider sends the browser back to. When the browser still has a
// session at the provider, there is no form to fill in.
func nodeSSOStart(t *testing.T, c *client, idp *nodeIDP, login string) string {
	t.Helper()
	resp, body := c.get("/auth/oidc/login")
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, idp.issuer+"/") {
		t.Fatalf("GET /auth/oidc/login = %d %q, want a redirect to %s\n%s", resp.StatusCode, loc, idp.issuer, body)
	}
	callback := c.env.HTTP.URL + "/auth/oidc/callback?"
	for range 20 {
		if strings.HasPrefix(loc, callback) {
			return loc
		}
		if !strings.HasPrefix(loc, idp.issuer+"/") {
			t.Fatalf("the provider sent the browser to %q", loc)
		}
		resp, body = c.fetch(loc)
		if resp.StatusCode == http.StatusOK {
			m := htmlForm.FindStringSubmatch(body)
			if m == nil {
				t.Fatalf("GET %s: a page without a form:\n%s", loc, body)
			}
			form := url.Values{}
			for _, in := range htmlInput.FindAllString(m[2], -1) {
				var name, value string
				for _, a := range htmlAttr.FindAllStringSubmatch(in, -1) {
					if a[1] == "name" {
						name = html.UnescapeString(a[2])
					} else {
						value = html.UnescapeString(a[2])
					}
				}
				switch name {
				case "":
				case "login":
					form.Set(name, login)
				case "password":
					form.Set(name, "any password will do")
				default:
					form.Set(name, value)
				}
			}
			action, err := url.Parse(loc)
			if err == nil {
				action, err = action.Parse(html.UnescapeString(m[1]))
			}
			if err != nil {
				t.Fatal(err)
			}
			resp, body = c.postAbs(action.String(), form)
		}
		if resp.StatusCode < 300 || resp.StatusCode > 399 {
			t.Fatalf("the provider answered %d at %s:\n%s\n%s", resp.StatusCode, loc, body, idp.stderr.String())
		}
		next, err := resp.Request.URL.Parse(resp.Header.Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		loc = next.String()
	}
	t.Fatalf("no way back to keyledger from the provider (last at %s)", loc)
	return ""
}

// stepUpTimes are when the sessions of email were last proved, oldest
// session first.
func stepUpTimes(t *testing.T, env *testEnv, email string) []time.Time {
	t.Helper()
	rows, err := env.Pool.Query(context.Background(), `SELECT s.step_up_at FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE u.email = $1 ORDER BY s.created_at`, email)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []time.Time
	for rows.Next() {
		var at time.Time
		if err := rows.Scan(&at); err != nil {
			t.Fatal(err)
		}
		out = append(out, at)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOIDCRealProvider signs in at oidc-provider with minimal ID tokens
// (its default: email only from UserInfo) and with full ones.
func TestOIDCRealProvider(t *testing.T) {
	t.Parallel()
	for _, mode := range []struct {
		name          string
		idTokenClaims bool
	}{{"minimal ID token", false}, {"claims in the ID token", true}} {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			env, idp := newNodeSSOEnv(t, mode.idTokenClaims)
			ctx := context.Background()

			// An existing user signs in with their role and name unchanged.
			c := env.client()
			resp, body := c.fetch(nodeSSOStart(t, c, idp, "member"))
			if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/keys" {
				t.Fatalf("existing user: callback = %d %q, want 303 to /keys\n%s\n%s", resp.StatusCode, resp.Header.Get("Location"), body, env.Logs.String())
			}
			_, body = c.get("/keys")
			if !strings.Contains(body, `data-testid="whoami"`) || !strings.Contains(body, "Member") || strings.Contains(body, "Member From SSO") {
				t.Fatalf("not signed in as the existing member:\n%s", body)
			}
			if u := userByEmail(t, env, "member@example.com"); u.Role != keyledger.RoleMember {
				t.Errorf("role %s after SSO, want member", u.Role)
			}
			if n := auditCount(t, env, keyledger.ActionSignIn, "member@example.com", map[string]string{"method": "oidc"}); n != 1 {
				t.Errorf("%d sign-in events with method=oidc, want 1", n)
			}

			// Signed out of keyledger but not of the provider: the provider
			// signs the browser in again without asking, and auth_time
			// still says when the person last proved who they are, so the
			// new session's step-up clock starts there, not now.
			c.get("/keys")
			if resp, _ := c.post("/logout", nil); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("logout = %d", resp.StatusCode)
			}
			resp, body = c.fetch(nodeSSOStart(t, c, idp, "member"))
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("silent sign-in: callback = %d\n%s", resp.StatusCode, body)
			}
			// The first session is gone (signed out); the new one was
			// proved at the provider's first login.
			at := stepUpTimes(t, env, "member@example.com")
			if len(at) != 1 {
				t.Fatalf("%d sessions, want 1", len(at))
			}
			var created time.Time
			if err := env.Pool.QueryRow(ctx, `SELECT s.created_at FROM sessions s JOIN users u ON u.id = s.user_id WHERE u.email = 'member@example.com'`).Scan(&created); err != nil {
				t.Fatal(err)
			}
			if !at[0].Before(created) || at[0].Truncate(time.Second) != at[0] {
				t.Errorf("silent sign-in: step-up time %v (created %v), want the provider's auth_time (whole seconds, before the session)", at[0], created)
			}

			// An existing lead too (the provider spells the email in
			// another case): still a lead, keyledger's name kept.
			c = env.client()
			if resp, body := c.fetch(nodeSSOStart(t, c, idp, "lead")); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("existing lead: callback = %d\n%s", resp.StatusCode, body)
			}
			if u := userByEmail(t, env, "lead@example.com"); u.Role != keyledger.RoleLead || u.Name != "Lead" {
				t.Errorf("lead after SSO: role %s, name %q; want lead, Lead", u.Role, u.Name)
			}
			if _, body := c.get("/keys"); !strings.Contains(body, `data-testid="whoami"`) || !strings.Contains(body, "Lead") {
				t.Errorf("not signed in as the lead:\n%s", body)
			}

			// A new person of an allowed domain becomes a member, named as
			// the provider says.
			c = env.client()
			resp, body = c.fetch(nodeSSOStart(t, c, idp, "new.hire"))
			if resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("new user: callback = %d\n%s", resp.StatusCode, body)
			}
			u, err := env.Store.UserByEmail(ctx, "new.hire@corp.example")
			if err != nil || u.Role != keyledger.RoleMember || !u.Active() || u.Name != "New Hire" {
				t.Fatalf("new user %+v %v, want an active member named New Hire", u, err)
			}
			if n := auditCount(t, env, keyledger.ActionUserCreate, "new.hire@corp.example", map[string]string{"via": "oidc", "subject": "new.hire"}); n != 1 {
				t.Errorf("%d user.create via=oidc events, want 1", n)
			}
			expectSignedIn(t, c)

			// An email the provider has not verified lets nobody in.
			before, err := env.Store.CountUsers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			c = env.client()
			resp, body = c.fetch(nodeSSOStart(t, c, idp, "unverified"))
			expectRefused(t, c, resp, body, http.StatusForbidden, "did not confirm an email address")
			if n, _ := env.Store.CountUsers(ctx); n != before {
				t.Errorf("%d users after an unverified email, want %d", n, before)
			}
			if n := auditCount(t, env, keyledger.ActionSignInFailed, "unverified@corp.example", map[string]string{"method": "oidc", "reason": "email_not_verified"}); n != 1 {
				t.Errorf("%d refusals audited for the unverified email, want 1", n)
			}

			// A replayed state: the callback of a finished flow, in the
			// same browser (its flow cookie is gone) and in the middle of
			// the next flow (another state).
			c = env.client()
			cb := nodeSSOStart(t, c, idp, "member")
			if resp, body := c.fetch(cb); resp.StatusCode != http.StatusSeeOther {
				t.Fatalf("callback = %d\n%s", resp.StatusCode, body)
			}
			c.get("/keys")
			c.post("/logout", nil)
			sessions := sessionCount(t, env, "member@example.com")
			resp, body = c.fetch(cb)
			expectRefused(t, c, resp, body, http.StatusBadRequest, "did not start in this browser")
			c.get("/auth/oidc/login")
			resp, body = c.fetch(cb)
			expectRefused(t, c, resp, body, http.StatusBadRequest, "did not start in this browser")
			if n := sessionCount(t, env, "member@example.com"); n != sessions {
				t.Errorf("%d sessions after replayed callbacks, want %d", n, sessions)
			}

			if !mode.idTokenClaims {
				// UserInfo must be about the ID token's subject. (With the
				// claims in the ID token, keyledger does not ask UserInfo.)
				c = env.client()
				resp, body = c.fetch(nodeSSOStart(t, c, idp, "impostor"))
				expectRefused(t, c, resp, body, http.StatusUnauthorized, "could not be verified")
				if n := sessionCount(t, env, "admin@example.com"); n != 0 {
					t.Errorf("%d admin sessions after a UserInfo answer about someone else", n)
				}
				var n int
				if err := env.Pool.QueryRow(ctx, `SELECT count(*) FROM audit_events WHERE action = $1 AND details->>'reason' = 'userinfo_subject_mismatch'`, keyledger.ActionSignInFailed).Scan(&n); err != nil || n != 1 {
					t.Errorf("%d refusals audited as userinfo_subject_mismatch (%v), want 1", n, err)
				}
			}

			// keyledger asked UserInfo exactly when the ID token had no
			// email: once for each of the seven sign-ins that reached the
			// token endpoint (the replays did not), else never.
			idp.mu.Lock()
			userinfo := idp.userinfo
			idp.mu.Unlock()
			if mode.idTokenClaims && len(userinfo) != 0 || !mode.idTokenClaims && len(userinfo) != 7 {
				t.Errorf("UserInfo answers %q", userinfo)
			}
			for _, a := range userinfo {
				if !strings.HasPrefix(a, "200 ") {
					t.Errorf("UserInfo answered %q", a)
				}
			}

			tokens := idp.issuedAccessTokens()
			if len(tokens) == 0 {
				t.Error("the provider reported no access tokens")
			}
			logs := env.Logs.String()
			for _, tok := range tokens {
				if tok != "" && strings.Contains(logs, tok) {
					t.Errorf("keyledger logged an access token")
				}
			}
			if strings.Contains(logs, idpClientSecret) {
				t.Error("keyledger logged the client secret")
			}
		})
	}
}
