package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web"
)

// TestKeyListCacheSeesEveryWrite: the key list is kept rendered per list
// epoch (web/pagecache.go). A repeat view must come from the cache, and
// every write the list shows must reach the next view, whoever made it
// and however (a page, the store, a raw statement); each viewer must get
// their own CSRF token and their own shell's button, never another's.
func TestKeyListCacheSeesEveryWrite(t *testing.T) {
	t.Parallel()
	env := newEnv(t, withMetrics(web.MetricsConfig{Token: metricsToken}))
	ctx := context.Background()
	env.createKey("member", "development", "cache-first", "sk-proj-"+authzRand(24)+"Cch1")

	lookups := func() (hit, miss float64) {
		t.Helper()
		_, body := scrape(t, env, bearer(metricsToken))
		hit, _ = metricValue(t, body, "keyledger_page_cache_lookups_total", `page="keys",result="hit"`)
		miss, _ = metricValue(t, body, "keyledger_page_cache_lookups_total", `page="keys",result="miss"`)
		return hit, miss
	}
	member := env.client().login("member") // login views /keys once
	view := func(c *client, path string) string {
		t.Helper()
		resp, body := c.get(path)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s = %d", path, resp.StatusCode)
		}
		return body
	}
	view(member, "/keys")
	h0, m0 := lookups()
	first := view(member, "/keys")
	h1, m1 := lookups()
	if h1 != h0+1 || m1 != m0 {
		t.Fatalf("a repeat view: hits %v → %v, misses %v → %v; want one more hit", h0, h1, m0, m1)
	}
	if !strings.Contains(first, "cache-first") {
		t.Fatal("the list lacks the key")
	}

	// Writes through each path reach the very next view.
	env.createKey("member2", "development", "cache-second", "sk-proj-"+authzRand(24)+"Cch2")
	if body := view(member, "/keys"); !strings.Contains(body, "cache-second") {
		t.Error("a key registered through the store is missing from the next view")
	}
	if _, err := env.Pool.Exec(ctx, "UPDATE keys SET name = 'cache-renamed' WHERE name = 'cache-second'"); err != nil {
		t.Fatal(err)
	}
	if body := view(member, "/keys"); !strings.Contains(body, "cache-renamed") || strings.Contains(body, "cache-second") {
		t.Error("a raw rename is not in the next view")
	}
	admin := env.client().login("admin")
	if resp, _ := admin.post("/admin/users/"+strconv.FormatInt(env.Users["member2"].ID, 10)+"/deactivate", url.Values{}); resp.StatusCode >= 400 {
		t.Fatalf("deactivate = %d", resp.StatusCode)
	}
	if body := view(member, "/keys"); !strings.Contains(body, "owner deactivated") {
		t.Error("the owner's deactivation is not in the next view")
	}
	// A filter is its own page.
	if body := view(member, "/keys?q=renamed"); strings.Contains(body, "cache-first") || !strings.Contains(body, "cache-renamed") {
		t.Error("the filtered view shows another filter's page")
	}

	// Another viewer of the same audience gets the kept body with their
	// own CSRF token; a viewer with another shell gets their own button.
	lead := env.client().login("lead")
	lead2 := env.client().login("lead")
	a, b := view(lead, "/keys"), view(lead2, "/keys")
	ta, tb := csrfField.FindAllStringSubmatch(a, -1), csrfField.FindAllStringSubmatch(b, -1)
	if len(ta) < 2 || len(tb) < 2 {
		t.Fatalf("want the layout's and the copy buttons' CSRF fields, got %d and %d", len(ta), len(tb))
	}
	for _, m := range ta {
		if m[1] != ta[0][1] {
			t.Errorf("one page carries two CSRF tokens: %q and %q", ta[0][1], m[1])
		}
	}
	if ta[0][1] == tb[0][1] {
		t.Error("two sessions got the same CSRF token")
	}
	for _, m := range tb {
		if m[1] != tb[0][1] {
			t.Errorf("the second viewer's page carries a token not theirs: %q", m[1])
		}
	}
	if strings.Contains(a, "csrf-") && !strings.Contains(ta[0][1], "csrf-") {
		t.Error("a page shows the CSRF placeholder")
	}
	if err := env.Store.SetShell(ctx, actorOf(env, "lead"), string(keyledger.FormatFish)); err != nil {
		t.Fatal(err)
	}
	if body := view(lead, "/keys"); !strings.Contains(body, "Copy fish export") || strings.Contains(body, "Copy bash export") {
		t.Error("after choosing fish the lead still sees another shell's buttons")
	}
	if body := view(member, "/keys"); !strings.Contains(body, "Copy bash export") {
		t.Error("the member lost their bash buttons to the lead's choice")
	}
}
