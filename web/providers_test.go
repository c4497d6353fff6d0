package web_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/provideradmin"
	"github.com/keyledger/keyledger/provideradmin/providertest"
	"github.com/keyledger/keyledger/web"
	"github.com/keyledger/keyledger/web/wire"
)

// providerFakes are the OpenAI and Anthropic admin API fakes, reached
// through the real provideradmin client.
type providerFakes struct {
	openai    *providertest.OpenAI
	anthropic *providertest.Anthropic
	client    *provideradmin.Client
}

func newProviderFakes(t testing.TB) *providerFakes {
	t.Helper()
	f := &providerFakes{openai: providertest.NewOpenAI(), anthropic: providertest.NewAnthropic()}
	t.Cleanup(f.openai.Close)
	t.Cleanup(f.anthropic.Close)
	f.client = provideradmin.New(provideradmin.Config{OpenAIBaseURL: f.openai.URL(), AnthropicBaseURL: f.anthropic.URL(),
		HTTPClient: f.openai.Client(), Timeout: 500 * time.Millisecond, MaxRetryWait: -1})
	return f
}

func (f *providerFakes) option() envOption {
	return func(c *web.Config) { c.ProviderAdmin = f.client }
}

// connectOpenAI adds an OpenAI connection through the store (the sync
// runs on POST /admin/providers, or here, explicitly).
func (f *providerFakes) connectOpenAI(t testing.TB, env *testEnv, name string) keyledger.ProviderConnection {
	t.Helper()
	c, err := env.Store.AddProviderConnection(context.Background(), actorOf(env, "admin"), f.client,
		keyledger.ProviderConnectionInput{Provider: "openai", Name: name, AdminKey: f.openai.AdminKey()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Store.SyncProviderConnection(context.Background(), actorOf(env, "admin"), f.client, c.ID); err != nil {
		t.Fatal(err)
	}
	return c
}

// dumpDatabase reads every column of every table as text: what pg_dump
// would write.
func dumpDatabase(t testing.TB, env *testEnv) string {
	t.Helper()
	ctx := context.Background()
	rows, err := env.Pool.Query(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_type = 'BASE TABLE'`)
	if err != nil {
		t.Fatal(err)
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, tbl := range tables {
		rows, err := env.Pool.Query(ctx, fmt.Sprintf("SELECT t::text FROM %s t", pgx.Identifier{tbl}.Sanitize()))
		if err != nil {
			t.Fatal(err)
		}
		texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range texts {
			b.WriteString(s)
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// TestProviderConnectionsEndToEnd: an admin adds a connection through the
// page (checked against the fake with one list call), the first sync
// fills the inventory, a refused key and a timeout are field errors that
// store nothing, sync now and remove work; the admin key is in no page,
// response, log line or table.
func TestProviderConnectionsEndToEnd(t *testing.T) {
	t.Parallel()
	fakes := newProviderFakes(t)
	env := newEnv(t, fakes.option())
	fakes.openai.Generate(3, 30)
	// One registered key matching a generated key (its redacted value ends
	// in the key number), one shadow key with a formula for a name.
	registered := "sk-proj-Ab" + strings.Repeat("x", 30) + "0007"
	env.createKey("member", "development", "matched key", registered)
	fakes.openai.AddKey(providertest.OpenAIKey{ID: "key_formula", Project: "proj_gen_000", Name: "=HYPERLINK(\"http://evil\")",
		RedactedValue: "sk-proj-Zz...QQQQ", OwnerType: "user", OwnerEmail: "ghost@example.com", OwnerInactive: true})
	admin := env.client().login("admin")
	var bodies []string
	keep := func(resp *http.Response, body string) (*http.Response, string) {
		bodies = append(bodies, body)
		return resp, body
	}

	resp, page := keep(admin.get("/admin/providers"))
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "No provider connections yet") {
		t.Fatalf("empty page: %d", resp.StatusCode)
	}

	// A refused admin key: field error, nothing stored but the audit event.
	wrong := "sk-admin-" + authzRand(20)
	resp, page = keep(admin.post("/admin/providers", url.Values{"provider": {"openai"}, "name": {"Acme"}, "admin_key": {wrong}}))
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "refused this admin key") || !strings.Contains(page, `data-testid="error-admin_key"`) {
		t.Errorf("refused key: status %d\n%s", resp.StatusCode, authzMain(page, ""))
	}
	if strings.Contains(page, wrong) {
		t.Error("the refused admin key is echoed into the page")
	}
	var n int
	if err := env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM provider_connections`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d connections after a refused key (%v)", n, err)
	}

	// A timeout says so.
	fakes.openai.SetDelay(2 * time.Second)
	resp, page = keep(admin.post("/admin/providers", url.Values{"provider": {"openai"}, "name": {"Acme"}, "admin_key": {fakes.openai.AdminKey()}}))
	fakes.openai.SetDelay(0)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "did not answer in time") {
		t.Errorf("timeout: status %d\n%s", resp.StatusCode, authzMain(page, ""))
	}
	if err := env.Pool.QueryRow(context.Background(), `SELECT count(*) FROM provider_connections`).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d connections after a timeout (%v)", n, err)
	}

	// The real thing.
	resp, _ = admin.post("/admin/providers", url.Values{"provider": {"openai"}, "name": {"Acme"}, "admin_key": {fakes.openai.AdminKey()}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/providers?added=1" {
		t.Fatalf("add: status %d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page = keep(admin.get("/admin/providers?added=1"))
	if !strings.Contains(page, "31 keys") || !strings.Contains(page, `data-testid="connection-row"`) {
		t.Errorf("connections page after adding:\n%s", authzMain(page, ""))
	}

	lead := env.client().login("lead")
	resp, page = keep(lead.get("/inventory"))
	if resp.StatusCode != http.StatusOK || strings.Count(page, `data-testid="inventory-row"`) != 31 {
		t.Fatalf("inventory: status %d, %d rows", resp.StatusCode, strings.Count(page, `data-testid="inventory-row"`))
	}
	if !strings.Contains(page, `data-testid="linked-key"`) || !strings.Contains(page, "matched key") {
		t.Error("the matched key is not linked")
	}
	_, page = keep(lead.get("/inventory?state=not_in_keyledger"))
	if c := strings.Count(page, `data-testid="inventory-row"`); c != 30 {
		t.Errorf("%d shadow keys, want 30", c)
	}
	if !strings.Contains(page, `href="/keys/new?name=`) {
		t.Error("no register-it link on shadow keys")
	}
	_, page = keep(lead.get("/inventory?state=owner_left"))
	// Every tenth generated key (3 of 30) and the formula key.
	if c := strings.Count(page, `data-testid="inventory-row"`); c != 4 {
		t.Errorf("%d owner-left keys, want 4", c)
	}
	resp, _ = keep(lead.get("/inventory?state=bogus"))
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("unknown state: status %d", resp.StatusCode)
	}
	// The register form comes prefilled, without any value.
	_, page = keep(lead.get("/keys/new?provider=openai&name=shadow+one&project=Project+0"))
	if !strings.Contains(page, `value="shadow one"`) || !strings.Contains(page, `value="Project 0"`) {
		t.Error("the register form is not prefilled from the inventory")
	}

	// CSV: defused formula, states listed.
	resp, body := keep(lead.get("/inventory.csv?state=owner_left"))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CSV: status %d", resp.StatusCode)
	}
	recs, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil || len(recs) != 5 {
		t.Fatalf("CSV: %d records, %v", len(recs), err)
	}
	found := false
	for _, r := range recs[1:] {
		if r[2] == "key_formula" {
			found = true
			if r[3] != "'=HYPERLINK(\"http://evil\")" {
				t.Errorf("formula cell = %q", r[3])
			}
			if !strings.Contains(r[8], "not_in_keyledger") || !strings.Contains(r[8], "owner_left") {
				t.Errorf("states cell = %q", r[8])
			}
		}
	}
	if !found {
		t.Error("the formula key is not in the owner-left CSV")
	}

	// The dashboard counts, linked to the filtered inventory with as many
	// rows.
	_, page = keep(lead.get("/dashboard"))
	links := regexp.MustCompile(`href="(/inventory\?state=[a-z_]+)"[^>]*data-testid="dash-inventory-link">(\d+)<`).FindAllStringSubmatch(page, -1)
	if len(links) != 2 || links[0][1] != "/inventory?state=not_in_keyledger" || links[1][1] != "/inventory?state=owner_left" {
		t.Errorf("dashboard inventory links = %v", links)
	}
	for _, l := range links {
		_, list := lead.get(l[1])
		if n := strconv.Itoa(strings.Count(list, `data-testid="inventory-row"`)); n != l[2] {
			t.Errorf("%s: %s rows, the dashboard says %s", l[1], n, l[2])
		}
	}

	// The API.
	api := newAPI(t, env)
	_, token := mintToken(t, env, env.Users["lead"], "inventory")
	r := api.get(token, "/api/v1/inventory?state=registered")
	if r.Status != http.StatusOK {
		t.Fatalf("API inventory: %d %s", r.Status, r.Body)
	}
	bodies = append(bodies, string(r.Body))
	var inv wire.Inventory
	r.decode(t, &inv)
	if len(inv.Items) != 1 || inv.Items[0].KeyID == nil || inv.Items[0].ProviderKeyID != "key_gen_00007" || inv.Counts.NotInKeyledger != 30 || inv.Counts.Registered != 1 {
		t.Errorf("API inventory = %+v", inv)
	}
	_, memberToken := mintToken(t, env, env.Users["member"], "inventory")
	if r := api.get(memberToken, "/api/v1/inventory"); r.Status != http.StatusForbidden {
		t.Errorf("member API inventory: %d", r.Status)
	}

	// Sync now; then the key disappears at the provider.
	var connID string
	if err := env.Pool.QueryRow(context.Background(), `SELECT id::text FROM provider_connections`).Scan(&connID); err != nil {
		t.Fatal(err)
	}
	resp, _ = admin.post("/admin/providers/"+connID+"/sync", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/admin/providers?synced=1" {
		t.Errorf("sync now: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	fakes.openai.FailNext(1, http.StatusTooManyRequests, "60")
	resp, _ = admin.post("/admin/providers/"+connID+"/sync", nil)
	if resp.Header.Get("Location") != "/admin/providers?sync_failed=1" {
		t.Errorf("failed sync: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page = keep(admin.get("/admin/providers"))
	if !strings.Contains(page, `data-testid="sync-error"`) || !strings.Contains(page, "rate_limited") {
		t.Errorf("the failed sync is not shown:\n%s", authzMain(page, ""))
	}

	// Remove: the admin key is erased.
	resp, _ = admin.post("/admin/providers/"+connID+"/remove", nil)
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("remove: %d", resp.StatusCode)
	}
	_, page = keep(admin.get("/admin/providers?removed=1"))
	if strings.Contains(page, `data-testid="connection-row"`) {
		t.Error("a removed connection is listed")
	}
	_, page = keep(lead.get("/inventory"))
	if strings.Contains(page, `data-testid="inventory-row"`) {
		t.Error("a removed connection's keys are in the inventory")
	}

	// The admin key: in no page, response, log line or table.
	adminKey := fakes.openai.AdminKey()
	for i, b := range bodies {
		if strings.Contains(b, adminKey) || strings.Contains(b, wrong) {
			t.Errorf("response %d carries an admin key", i)
		}
	}
	if logs := env.Logs.String(); strings.Contains(logs, adminKey) || strings.Contains(logs, wrong) {
		t.Error("the log carries an admin key")
	}
	if dump := dumpDatabase(t, env); strings.Contains(dump, adminKey) || strings.Contains(dump, wrong) ||
		strings.Contains(dump, adminKey[len("sk-admin-"):len("sk-admin-")+16]) {
		t.Error("the database carries an admin key")
	}
}
