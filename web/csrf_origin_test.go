package web_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyledger/keyledger/web"
)

// Reached on a LAN over plain http while keyledger is set up for https
// (secure cookies): the browser never keeps the form's cookie, and the
// sign-in used to end on "This form has expired". The answer now says
// which address keyledger expects, which one the form came from, and
// which variable to set.
func TestCSRFFailureNamesOriginAndVariable(t *testing.T) {
	t.Parallel()
	env := newEnv(t, func(c *web.Config) {
		c.BaseURL = "https://keys.example.com"
		c.SecureCookies = true
	})
	// As a browser at http://keyledger.lan:8080 sends it: no cookie came
	// back (it was Secure), an Origin of its own.
	form := url.Values{"email": {"admin@example.com"}, "password": {Password}, "_csrf": {"x"}}
	req, err := http.NewRequest(http.MethodPost, env.HTTP.URL+"/login", strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Host = "keyledger.lan:8080"
	req.Header.Set("Origin", "http://keyledger.lan:8080")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	body := string(b)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d, want 403", resp.StatusCode)
	}
	for _, want := range []string{"http://keyledger.lan:8080", "https://keys.example.com", "KEYLEDGER_BASE_URL"} {
		if !strings.Contains(body, want) {
			t.Errorf("the answer does not name %q:\n%s", want, authzMain(body, ""))
		}
	}
}

// keyledger listening on every interface with a loopback base URL works
// only from the machine itself: serve logs this warning at startup.
func TestBaseURLWarning(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		listen, base string
		warn         bool
	}{
		{"0.0.0.0:8080", "http://localhost:8080", true},
		{"0.0.0.0:8080", "http://127.0.0.1:8080", true},
		{"192.168.1.5:8080", "http://localhost:8080", true},
		{"127.0.0.1:8080", "http://localhost:8080", false},
		{"127.0.0.1:8080", "http://127.0.0.1:8080", false},
		{"0.0.0.0:8080", "https://keys.example.com", false},
		{"0.0.0.0:8080", "", false},
		{"127.0.0.1:8080", "", false},
	} {
		got := web.BaseURLWarning(c.listen, c.base)
		if (got != "") != c.warn {
			t.Errorf("BaseURLWarning(%q, %q) = %q, want a warning: %v", c.listen, c.base, got, c.warn)
		}
		if got != "" && (!strings.Contains(got, "KEYLEDGER_BASE_URL") || !strings.Contains(got, c.listen)) {
			t.Errorf("BaseURLWarning(%q, %q) = %q: name the listen address and the variable", c.listen, c.base, got)
		}
	}
}
