package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/web"
)

// TestKeyListCacheSeesEveryWrite: the key list is kept rendered per list
// epoch (store/epochcache.go). A repeat view must come from the cache, and
// every write the list shows must reach the next view, whoever made it
// and however (a page, the store, a raw statement); each viewer must get
// their own CSRF token and their own shell's button, never another's.
func TestKeyListCacheSeesEveryWrite(t *testing.T) {
	t.Parallel()
	// A stopped clock: a kept page lives one minute, and a minute
	// turning between two views must not decide the test.
	now := time.Now()
	env := newEnvWithStore(t, store.Options{Now: func() time.Time { return now }}, withMetrics(web.MetricsConfig{Token: metricsToken}))
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

// TestDashboardAndRotationSeeEveryWrite: the dashboard and the rotation
// overview are kept per change epoch in the store. Each write they show,
// through any path, must reach the next view; a reveal (the activity
// epoch) must make an old key no longer "stale".
func TestDashboardAndRotationSeeEveryWrite(t *testing.T) {
	t.Parallel()
	now := time.Now() // stopped, as above
	env := newEnvWithStore(t, store.Options{Now: func() time.Time { return now }})
	ctx := context.Background()
	lead := env.client().login("lead")
	staleCount := func() string {
		t.Helper()
		resp, body := lead.get("/dashboard")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /dashboard = %d", resp.StatusCode)
		}
		_, card, ok := strings.Cut(body, `data-testid="dash-list-stale"`)
		if !ok {
			t.Fatal("no stale card on the dashboard")
		}
		m := dashNumber.FindStringSubmatch(card)
		if m == nil {
			t.Fatal("no stale count on the dashboard")
		}
		return m[1]
	}
	if got := staleCount(); got != "0" {
		t.Fatalf("stale = %s on an empty keyledger", got)
	}
	k := env.createKey("member", "development", "old-key", "sk-proj-"+authzRand(24)+"Old1")
	staleCount() // kept at this epoch
	if _, err := env.Pool.Exec(ctx, "UPDATE keys SET created_at = now() - interval '400 days' WHERE id = $1", k.ID); err != nil {
		t.Fatal(err)
	}
	if got := staleCount(); got != "1" {
		t.Fatalf("stale = %s after the key became 400 days old, want 1", got)
	}
	if _, err := env.Store.Reveal(ctx, actorOf(env, "member"), k.ID, "still needed"); err != nil {
		t.Fatal(err)
	}
	if got := staleCount(); got != "0" {
		t.Errorf("stale = %s after a reveal, want 0: the dashboard kept a view older than the request", got)
	}

	// The overdue group's section, up to the next group.
	overdue := func() string {
		t.Helper()
		resp, body := lead.get("/rotation")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /rotation = %d", resp.StatusCode)
		}
		i := strings.Index(body, `data-testid="rotation-overdue"`)
		if i < 0 {
			t.Fatal("no overdue group on the rotation page")
		}
		rest := body[i:]
		if j := strings.Index(rest, `data-testid="rotation-due_soon"`); j >= 0 {
			rest = rest[:j]
		}
		return rest
	}
	if strings.Contains(overdue(), "old-key") {
		t.Fatal("a fresh key is overdue")
	}
	if _, err := env.Pool.Exec(ctx, "UPDATE keys SET rotate_by = now() - interval '3 days' WHERE id = $1", k.ID); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(overdue(), "old-key") {
		t.Error("the rotation page does not list the key that just became overdue")
	}
}

var dashNumber = regexp.MustCompile(`data-testid="dash-link">(\d+)<`)
