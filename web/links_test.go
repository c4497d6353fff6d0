package web_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web"
)

// TestLinksAreRoutes: the addresses that reminders and alerts carry are
// built by the web package, which owns the routes, and each one opens the
// page it names for someone allowed to see it.
func TestLinksAreRoutes(t *testing.T) {
	env := newEnv(t)
	k := env.createKey("member", "development", "LINKED_KEY", "sk-linked-value-0123456789")
	var links keyledger.Links = web.NewLinks(env.HTTP.URL)
	c := env.client().login("lead")
	for _, u := range []string{links.Key(k.ID), links.FailedSignIns()} {
		path, ok := strings.CutPrefix(u, env.HTTP.URL)
		if !ok {
			t.Fatalf("link %q is not under the base URL %q", u, env.HTTP.URL)
		}
		resp, body := c.get(path)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", path, resp.StatusCode)
		}
		if path == links.Key(k.ID)[len(env.HTTP.URL):] && !strings.Contains(body, "LINKED_KEY") {
			t.Errorf("GET %s does not show the key", path)
		}
	}
}
