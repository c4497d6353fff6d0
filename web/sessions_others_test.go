package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// uaTransport sends every request with a browser's user agent.
type uaTransport struct{ ua string }

func (u uaTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", u.ua)
	return http.DefaultTransport.RoundTrip(r)
}

const (
	firefoxLinux  = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"
	safariIPhone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
	edgeWindows   = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0"
	chromeAndroid = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36"
)

// The profile lists sessions as "Firefox on Linux", not user-agent
// strings; the raw string stays in the title for whoever needs it.
func TestProfileSessionsShowBrowserAndOS(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	for ua, want := range map[string]string{firefoxLinux: "Firefox on Linux", safariIPhone: "Safari on iOS", edgeWindows: "Edge on Windows", chromeAndroid: "Chrome on Android"} {
		c := env.client()
		c.http.Transport = uaTransport{ua}
		c.login("member")
		_, body := c.get("/profile")
		if !strings.Contains(body, ">"+want+"<") && !strings.Contains(body, ">"+want+" <") {
			t.Errorf("profile for %q: no %q\n%s", ua, want, authzMain(body, "sessions"))
		}
	}
}

// "Sign out other sessions" ends every other session of the person, keeps
// this one and other people's, and is audited.
func TestSignOutOtherSessions(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	here := env.client().login("member")
	there1 := env.client().login("member")
	there2 := env.client().login("member")
	someoneElse := env.client().login("member2")

	_, body := here.get("/profile")
	if !strings.Contains(body, `action="/profile/sessions/revoke-others"`) {
		t.Fatalf("no sign-out-others form on the profile:\n%s", authzMain(body, "sessions"))
	}
	// Without the CSRF token: refused, nobody signed out.
	if resp, _ := here.post("/profile/sessions/revoke-others", url.Values{"_csrf": {"forged"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("forged CSRF: status %d, want 403", resp.StatusCode)
	}
	if resp, _ := there1.get("/keys"); resp.StatusCode != http.StatusOK {
		t.Fatalf("another session died on a forged request: %d", resp.StatusCode)
	}

	resp, _ := here.post("/profile/sessions/revoke-others", nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("sign out others: status %d, want 303", resp.StatusCode)
	}
	_, body = here.follow(resp)
	if !strings.Contains(body, "Your other sessions were signed out") {
		t.Errorf("no confirmation after signing out the others:\n%s", authzMain(body, ""))
	}
	if n := strings.Count(body, `data-testid="session-row"`); n != 1 {
		t.Errorf("profile lists %d sessions after signing out the others, want 1", n)
	}
	for name, c := range map[string]*client{"other session 1": there1, "other session 2": there2} {
		if resp, _ := c.get("/keys"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
			t.Errorf("%s still works: %d %q", name, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	if resp, _ := someoneElse.get("/keys"); resp.StatusCode != http.StatusOK {
		t.Errorf("another person's session ended: %d", resp.StatusCode)
	}
	if resp, _ := here.get("/keys"); resp.StatusCode != http.StatusOK {
		t.Errorf("this session ended: %d", resp.StatusCode)
	}
	page, err := env.Store.ListAudit(t.Context(), actorOf(env, "admin"), store.AuditFilter{Action: keyledger.ActionSessionRevokeOthers})
	if err != nil || len(page.Events) != 1 || page.Events[0].SubjectEmail != "member@example.com" || !strings.Contains(page.Events[0].Details, `"sessions_revoked": 2`) {
		t.Errorf("audit of sign-out-others: %v %+v", err, page.Events)
	}
}
