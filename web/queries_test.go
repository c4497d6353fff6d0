package web_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/provideradmin/providertest"
	"github.com/keyledger/keyledger/store"
)

// TestQueryBudget holds each page a person uses every day, and the API's
// hot routes, to a fixed number of SQL statements, and checks that the
// number does not grow with the data: an N+1 loop (a query per key, per
// owner, per environment) fails it. Budgets count every statement the
// store sends, session lookup included; they are what the code does today,
// so a change that adds a query has to say so here.
func TestQueryBudget(t *testing.T) {
	fakes := newProviderFakes(t)
	env := newEnv(t, fakes.option())
	api := newAPI(t, env)
	lead := env.client().login("lead")
	admin := env.client().login("admin")
	token := api.token("lead", "read", "reveal")
	var conn keyledger.ProviderConnection
	fakes.openai.AddProject(providertest.OpenAIProject{ID: "proj_budget", Name: "Budget"})
	seed := func(round int) *keyledger.Key {
		// Provider keys too, some of them ambiguous (their candidates are
		// read for the page), synced into the inventory.
		for i := range 40 {
			fakes.openai.AddKey(providertest.OpenAIKey{ID: fmt.Sprintf("key_%d_%d", round, i), Project: "proj_budget", Name: fmt.Sprintf("pk %d-%d", round, i),
				RedactedValue: fmt.Sprintf("sk-proj-Ab...%02d%02d", round, i%5), OwnerInactive: i%4 == 0})
		}
		for i := range 5 {
			for range 2 {
				env.createKey("member", "development", fmt.Sprintf("twin %d-%d %s", round, i, authzRand(3)), fmt.Sprintf("sk-proj-%s%02d%02d", authzRand(16), round, i))
			}
		}
		if round == 1 {
			conn = fakes.connectOpenAI(t, env, "Budget")
		} else if _, err := env.Store.SyncProviderConnection(context.Background(), actorOf(env, "admin"), fakes.client, conn.ID); err != nil {
			t.Fatal(err)
		}
		var first *keyledger.Key
		for i := range 15 {
			for _, owner := range []string{"lead", "member", "member2"} {
				for _, e := range []string{"development", "staging", "production"} {
					k := env.createKey(owner, e, fmt.Sprintf("Key %d-%d %s", round, i, owner), fmt.Sprintf("sk-test-%d-%d-%s-%s-0123456789abcdef", round, i, owner, e))
					if first == nil {
						first = k
					}
				}
			}
		}
		// Some keys overdue, some failing verification: the dashboard and
		// rotation page show them row by row.
		if _, err := env.Pool.Exec(context.Background(), `UPDATE keys SET rotate_by = now() - interval '3 days'
			WHERE name LIKE $1 AND name LIKE '%member%'`, fmt.Sprintf("Key %d-%%", round)); err != nil {
			t.Fatal(err)
		}
		if _, err := env.Pool.Exec(context.Background(), `UPDATE keys SET verify_result = 'invalid', last_verified_at = now()
			WHERE name LIKE $1 AND name LIKE '%member2%'`, fmt.Sprintf("Key %d-1%%", round)); err != nil {
			t.Fatal(err)
		}
		return first
	}
	// A key linked to a service account's key at OpenAI, with usage: the
	// API's key answer reads it at the provider and its rotation there.
	linkedValue := "sk-svcacct-" + authzRand(24) + "Lk01"
	linked := env.createKey("lead", "development", "linked at OpenAI", linkedValue)
	linkedID := fakes.openai.AddKey(providertest.OpenAIKey{Project: "proj_budget", Name: "linked", RedactedValue: providertest.OpenAIRedact(linkedValue),
		OwnerType: "service_account", OwnerID: "svc_budget", OwnerName: "budget-bot"})
	for d := range keyledger.UsageDays {
		fakes.openai.AddUsage(providertest.OpenAIUsage{KeyID: linkedID, Project: "proj_budget", Day: keyledger.UTCDay(env.Store.Now()).AddDate(0, 0, -d),
			Requests: int64(d + 1), InputTokens: 100, OutputTokens: 10})
	}
	key := seed(1)
	if _, err := env.Store.SyncProviderUsage(context.Background(), fakes.client, conn.ID); err != nil {
		t.Fatal(err)
	}

	type route struct {
		name   string
		budget int64
		do     func() int
	}
	page := func(path string) func() int {
		return func() int {
			resp, _ := lead.get(path)
			return resp.StatusCode
		}
	}
	routes := []route{
		{"key list", 6, page("/keys")},
		{"key list, filtered, page 2", 6, page("/keys?environment=development&page=2")},
		{"key list, by owner", 6, page("/keys?owner=member%40example.com&sort=owner")},
		// 7: one more than before for the key at its providers (their
		// keys and 30 days of usage in one statement).
		{"key detail", 7, page("/keys/" + key.ID)},
		// 5: the session, the environments, the owner × environment
		// counts, the leak figures (compromised keys, median time to
		// revoke), and the inventory counts.
		{"dashboard", 5, page("/dashboard")},
		// 5: the counts, the keys, the ambiguous keys' candidates, the
		// connections for the filter, and the session.
		{"inventory", 5, page("/inventory")},
		{"inventory CSV", 4, page("/inventory.csv")},
		{"provider connections", 2, func() int {
			resp, _ := admin.get("/admin/providers")
			return resp.StatusCode
		}},
		{"API inventory", 3, func() int { return api.do(token, http.MethodGet, "/api/v1/inventory", nil).Status }},
		{"rotation", 7, page("/rotation")},
		// 4: the events, the environments, the key menu (by name) and the session.
		{"audit log", 4, page("/audit")},
		{"browser reveal", 3, func() int {
			resp, _ := lead.post("/keys/"+key.ID+"/reveal", nil)
			return resp.StatusCode
		}},
		// The key list's quick copy: the same three as the reveal form.
		{"browser quick copy", 3, func() int {
			resp, _ := authzSend(lead, http.MethodPost, "/keys/"+key.ID+"/reveal", nil, http.Header{"Accept": {"application/json"}})
			return resp.StatusCode
		}},
		{"API key list", 2, func() int { return api.do(token, http.MethodGet, "/api/v1/keys?environment=development", nil).Status }},
		// 4: the token, the key, its versions, and the key at its
		// providers (here none: one statement whatever it finds).
		{"API key detail", 4, func() int { return api.do(token, http.MethodGet, "/api/v1/keys/"+key.ID, nil).Status }},
		// 5: one more for the rotation at OpenAI of a key linked there
		// (30 days of usage come with the provider key's row).
		{"API key detail, at OpenAI", 5, func() int {
			r := api.do(token, http.MethodGet, "/api/v1/keys/"+linked.ID, nil)
			if !bytes.Contains(r.Body, []byte(`"provider_key_id":"`+linkedID+`"`)) {
				t.Errorf("API key detail, at OpenAI: no linked key in %s", r.Body)
			}
			return r.Status
		}},
		{"API reveal", 2, func() int {
			return api.do(token, http.MethodPost, "/api/v1/keys/"+key.ID+"/reveal", map[string]any{}).Status
		}},
	}
	measure := func() map[string]int64 {
		got := map[string]int64{}
		for _, r := range routes {
			r.do() // warm: first-use bookkeeping (token last use, session touch) is not the steady state
			before := env.Queries.Count()
			if code := r.do(); code != http.StatusOK {
				t.Fatalf("%s: status %d", r.name, code)
			}
			got[r.name] = env.Queries.Count() - before
		}
		return got
	}
	small := measure()
	seed(2)
	seed(3)
	large := measure()
	for _, r := range routes {
		t.Logf("%-28s %d statements with 135 keys, %d with 405 (budget %d)", r.name, small[r.name], large[r.name], r.budget)
		if large[r.name] != small[r.name] {
			t.Errorf("%s: %d statements with 135 keys, %d with 405: the count grows with the data (N+1)", r.name, small[r.name], large[r.name])
		}
		if large[r.name] > r.budget {
			t.Errorf("%s: %d statements, budget %d", r.name, large[r.name], r.budget)
		}
	}
}

// TestRotationPageCapsGroups: each group lists the soonest
// store.RotationPerGroup keys and links to the rest in the key list.
func TestRotationPageCapsGroups(t *testing.T) {
	env := newEnv(t)
	for i := range store.RotationPerGroup + 5 {
		env.createKey("member", "development", fmt.Sprintf("Overdue %02d", i), fmt.Sprintf("sk-test-overdue-%02d-0123456789abcdef", i))
	}
	if _, err := env.Pool.Exec(context.Background(), `UPDATE keys SET rotate_by = now() - make_interval(days => 1 + substr(name, 9)::int)`); err != nil {
		t.Fatal(err)
	}
	resp, body := env.client().login("lead").get("/rotation")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/rotation: %d", resp.StatusCode)
	}
	start := strings.Index(body, `data-testid="rotation-overdue"`)
	end := strings.Index(body, `data-testid="rotation-due_soon"`)
	if start < 0 || end < start {
		t.Fatal("no overdue section")
	}
	overdue := body[start:end]
	if n := strings.Count(overdue, `data-testid="rotation-row"`); n != store.RotationPerGroup {
		t.Errorf("%d overdue rows listed, want %d", n, store.RotationPerGroup)
	}
	// Soonest due first: the most overdue (Overdue 54) leads, the five least
	// overdue are left to the link.
	if !strings.Contains(overdue, "Overdue 54") || strings.Contains(overdue, ">Overdue 00<") {
		t.Error("the overdue group does not list the most overdue keys")
	}
	link := fmt.Sprintf(`href="/keys?status=overdue&amp;sort=rotate_by">All %d keys`, store.RotationPerGroup+5)
	if !strings.Contains(overdue, link) {
		t.Errorf("no link %q to the rest", link)
	}
}
