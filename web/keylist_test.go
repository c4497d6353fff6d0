package web_test

import (
	"context"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// klKey registers a key in a project.
func klKey(env *testEnv, t testing.TB, owner, project, envName, name, days string) *keyledger.Key {
	t.Helper()
	u := env.Users[owner]
	res, err := env.Store.CreateKey(context.Background(), keyledger.Actor{User: u}, keyledger.KeyInput{
		Name: name, Project: project, Environment: envName, OwnerEmail: u.Email, Value: authzSecret(), RotationDays: days})
	if err != nil {
		t.Fatal(err)
	}
	return res.Key
}

var klRow = regexp.MustCompile(`(?s)<tr data-testid="key-row">(.*?)</tr>`)

// klRows are the list's rows as "name/project: env env…", the
// environments being the cells that hold a key, in column order.
func klRows(list string) []string {
	cell := regexp.MustCompile(`(?s)<td class="key-cell( missing)?" data-environment="([^"]+)">`)
	head := regexp.MustCompile(`(?s)<th scope="row"><span class="key-name">(.*?)</span>.*?</th>\s*<td>(.*?)</td>`)
	var out []string
	for _, m := range klRow.FindAllStringSubmatch(list, -1) {
		h := head.FindStringSubmatch(m[1])
		if h == nil {
			out = append(out, "?")
			continue
		}
		line := h[1] + "/" + h[2] + ":"
		for _, c := range cell.FindAllStringSubmatch(m[1], -1) {
			if c[1] == "" {
				line += " " + c[2]
			}
		}
		out = append(out, line)
	}
	return out
}

// klRowOf is the markup of the row of name in project.
func klRowOf(t testing.TB, list, name, project string) string {
	t.Helper()
	for _, m := range klRow.FindAllStringSubmatch(list, -1) {
		if strings.Contains(m[1], `<span class="key-name">`+name+`</span>`) && strings.Contains(m[1], "<td>"+project+"</td>") {
			return m[1]
		}
	}
	t.Fatalf("no row for %s in %s", name, project)
	return ""
}

// klCell is the markup of the env cell of a row.
func klCell(t testing.TB, row, envName string) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<td class="key-cell[^"]*" data-environment="` + envName + `">(.*?)</td>`).FindStringSubmatch(row)
	if m == nil {
		t.Fatalf("no %s cell in the row", envName)
	}
	return m[1]
}

func TestKeyListGroupsByNameAndProject(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	for _, e := range []string{"development", "staging", "production"} {
		klKey(env, t, "member", "checkout", e, "OpenAI", "")
	}
	klKey(env, t, "member", "search", "development", "OpenAI", "")
	klKey(env, t, "lead", "checkout", "production", "Stripe", "")
	c := env.client().login("member")
	_, list := c.get("/keys")
	want := []string{"OpenAI/checkout: development staging production", "OpenAI/search: development", "Stripe/checkout: production"}
	if got := klRows(list); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("rows %q, want %q", got, want)
	}
	// The columns are the configured environments, in order.
	heads := regexp.MustCompile(`<th scope="col" class="env-col">([^<]+)</th>`).FindAllStringSubmatch(list, -1)
	if len(heads) != 3 || heads[0][1] != "development" || heads[1][1] != "staging" || heads[2][1] != "production" {
		t.Errorf("environment columns %q", heads)
	}
	// A missing environment is an empty cell that says so to a screen reader.
	if cell := klCell(t, klRowOf(t, list, "Stripe", "checkout"), "staging"); !strings.Contains(cell, `<span class="visually-hidden">No staging key</span>`) {
		t.Errorf("Stripe's staging cell: %s", cell)
	}
	// Each key links to its page, named for its row and environment.
	row := klRowOf(t, list, "OpenAI", "checkout")
	if n := strings.Count(row, `data-testid="key-cell"`); n != 3 {
		t.Errorf("OpenAI/checkout has %d key cells, want 3", n)
	}
	if !strings.Contains(klCell(t, row, "production"), `<span class="visually-hidden">, OpenAI, production</span>`) {
		t.Error("the production key's link is not named for its row and environment")
	}
	// The development cell carries its quick copy; production, which asks
	// for a reason, does not.
	if !strings.Contains(klCell(t, row, "development"), `data-testid="copy-export"`) || strings.Contains(klCell(t, row, "production"), `data-testid="copy-export"`) {
		t.Error("the quick copy is not in the development cell only")
	}
	// Filtering on an environment keeps its column only.
	_, prod := c.get("/keys?environment=production")
	if got := klRows(prod); strings.Join(got, "|") != "OpenAI/checkout: production|Stripe/checkout: production" {
		t.Errorf("production rows %q", got)
	}
	if strings.Contains(prod, `data-environment="development"`) {
		t.Error("the production list still has a development column")
	}
}

func TestKeyListBadgesOnlyForProblems(t *testing.T) {
	t.Parallel()
	var offset atomic.Int64
	env := newEnvWithStore(t, store.Options{Now: func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }})
	klKey(env, t, "member", "checkout", "development", "Overdue", "1")
	klKey(env, t, "member", "checkout", "development", "Soon", "20")
	fine := klKey(env, t, "member", "checkout", "development", "Fine", "200")
	failing := klKey(env, t, "member", "checkout", "development", "Failing", "200")
	if _, err := env.Pool.Exec(context.Background(), `UPDATE keys SET verify_result = $1, last_verified_at = now() WHERE id = $2`, keyledger.VerifyInvalid, failing.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Pool.Exec(context.Background(), `UPDATE keys SET verify_result = $1, last_verified_at = now() WHERE id = $2`, keyledger.VerifyOK, fine.ID); err != nil {
		t.Fatal(err)
	}
	offset.Store(int64(10 * 24 * time.Hour))
	c := env.client().login("member")
	_, list := c.get("/keys")
	cell := func(name string) string { return klCell(t, klRowOf(t, list, name, "checkout"), "development") }
	badges := regexp.MustCompile(`<span class="badge ([a-z]+)">([^<]*)</span>`)
	for name, want := range map[string]string{
		"Overdue": "bad:Overdue by 9 days",
		"Soon":    "warn:Due in 10 days",
		"Failing": "bad:Failing: invalid",
		"Fine":    "",
	} {
		var got []string
		for _, m := range badges.FindAllStringSubmatch(cell(name), -1) {
			got = append(got, m[1]+":"+m[2])
		}
		if strings.Join(got, ",") != want {
			t.Errorf("%s: badges %q, want %q", name, got, want)
		}
	}
	// The rest is plain text.
	if got := cell("Fine"); !strings.Contains(got, "rotate by ") || !strings.Contains(got, "verified "+time.Now().UTC().Format("2006-01-02")) {
		t.Errorf("Fine's cell does not say its dates in plain text: %s", got)
	}
	if got := cell("Overdue"); !strings.Contains(got, "never verified") {
		t.Errorf("Overdue's cell does not say it was never verified: %s", got)
	}
}

func TestKeyListCountAndClearChip(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	for _, e := range []string{"development", "staging", "production"} {
		klKey(env, t, "member", "checkout", e, "OpenAI", "")
	}
	klKey(env, t, "member", "search", "development", "Anthropic", "")
	klKey(env, t, "lead", "infra", "production", "GitHub deploy", "")
	c := env.client().login("member")
	count := regexp.MustCompile(`<span data-testid="key-count">([^<]*)</span>`)
	for _, tc := range []struct {
		path, count string
		chip        bool
	}{
		{"/keys", "5 keys", false},
		{"/keys?sort=project&dir=desc", "5 keys", false},
		{"/keys?environment=development", "2 of 5 keys", true},
		{"/keys?project=checkout", "3 of 5 keys", true},
		{"/keys?q=github", "1 of 5 keys", true},
		{"/keys?owner=lead%40example.com", "1 of 5 keys", true},
		{"/keys?status=overdue", "0 of 5 keys", true},
		{"/keys?provider=stripe", "0 of 5 keys", true},
	} {
		_, list := c.get(tc.path)
		m := count.FindStringSubmatch(list)
		if len(m) < 2 || m[1] != tc.count {
			t.Errorf("%s: count %q, want %q", tc.path, m, tc.count)
		}
		if got := strings.Contains(list, `<a href="/keys" class="chip" data-testid="clear-filters">`); got != tc.chip {
			t.Errorf("%s: clear chip shown %v, want %v", tc.path, got, tc.chip)
		}
	}
}

func TestKeyListEmptyStates(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	// No keys at all: the first-run state, with the admin's link to the team.
	admin := env.client().login("admin")
	_, list := admin.get("/keys")
	if !strings.Contains(list, `data-testid="first-run"`) || !strings.Contains(list, `<a href="/keys/new" data-testid="first-key">`) ||
		!strings.Contains(list, `<a href="/admin/users" data-testid="add-team">`) {
		t.Error("an admin's first run does not offer to register a key and add the team")
	}
	if strings.Contains(list, `data-testid="key-table"`) || strings.Contains(list, `data-live-filters`) {
		t.Error("the first run shows an empty table or filters")
	}
	member := env.client().login("member")
	_, list = member.get("/keys")
	if !strings.Contains(list, `data-testid="first-run"`) || strings.Contains(list, `href="/admin/users"`) {
		t.Error("a member's first run links to the admin page, or is missing")
	}
	// Filters on an empty keyledger say nothing matches, not "no keys yet".
	_, list = member.get("/keys?q=nothing")
	if strings.Contains(list, `data-testid="first-run"`) || !strings.Contains(list, `data-testid="no-keys"`) {
		t.Error("filtering an empty keyledger shows the first-run state")
	}
	klKey(env, t, "member", "checkout", "development", "OpenAI", "")
	_, list = member.get("/keys")
	if strings.Contains(list, `data-testid="first-run"`) || strings.Contains(list, `data-testid="no-keys"`) || !strings.Contains(list, `data-testid="key-table"`) {
		t.Error("with a key the list shows an empty state")
	}
	_, list = member.get("/keys?q=nothing")
	if !strings.Contains(list, `data-testid="no-keys"`) || !strings.Contains(list, "No keys match these filters.") || strings.Contains(list, `data-testid="key-table"`) {
		t.Error("filters that match nothing do not say so")
	}
}
