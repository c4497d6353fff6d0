package store_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

func TestCreateKeyValidation(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := t.Context()
	admin := f.user(t, "admin@example.com", keyledger.RoleAdmin)
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	gone := f.user(t, "gone@example.com", keyledger.RoleMember)
	if _, err := f.s.DeactivateUser(ctx, as(admin), gone.Email); err != nil {
		t.Fatal(err)
	}
	good := keyledger.KeyInput{Name: "OpenAI dev", Project: "chatbot", Environment: "development",
		OwnerEmail: alice.Email, Value: secretValue(t, "sk-proj-")}
	tests := []struct {
		name  string
		edit  func(*keyledger.KeyInput)
		field string
	}{
		{"empty name", func(in *keyledger.KeyInput) { in.Name = "" }, "name"},
		{"blank name", func(in *keyledger.KeyInput) { in.Name = " \t " }, "name"},
		{"name of 201 runes", func(in *keyledger.KeyInput) { in.Name = strings.Repeat("ß", 201) }, "name"},
		{"NUL in name", func(in *keyledger.KeyInput) { in.Name = "open\x00ai" }, "name"},
		{"escape in name", func(in *keyledger.KeyInput) { in.Name = "open\x1b[2Jai" }, "name"},
		{"newline in name", func(in *keyledger.KeyInput) { in.Name = "open\nai" }, "name"},
		{"DEL in name", func(in *keyledger.KeyInput) { in.Name = "open\x7fai" }, "name"},
		{"line separator in name", func(in *keyledger.KeyInput) { in.Name = "open\u2028ai" }, "name"},
		{"invalid UTF-8 in name", func(in *keyledger.KeyInput) { in.Name = "open\xc3ai" }, "name"},
		{"empty project", func(in *keyledger.KeyInput) { in.Project = "" }, "project"},
		{"project of 101 runes", func(in *keyledger.KeyInput) { in.Project = strings.Repeat("p", 101) }, "project"},
		{"empty value", func(in *keyledger.KeyInput) { in.Value = "" }, "value"},
		{"blank value", func(in *keyledger.KeyInput) { in.Value = "\n  \n" }, "value"},
		{"invalid UTF-8 in value", func(in *keyledger.KeyInput) { in.Value = "sk-proj-abc\xff\xfedef0123456789" }, "value"},
		{"NUL in value", func(in *keyledger.KeyInput) { in.Value = "sk-proj-abc\x00def0123456789" }, "value"},
		{"control char in value", func(in *keyledger.KeyInput) { in.Value = "sk-proj-abc\x07def0123456789" }, "value"},
		{"value over 8 KiB", func(in *keyledger.KeyInput) { in.Value = strings.Repeat("v", 8<<10+1) }, "value"},
		{"empty environment", func(in *keyledger.KeyInput) { in.Environment = "" }, "environment"},
		{"unknown environment", func(in *keyledger.KeyInput) { in.Environment = "qa" }, "environment"},
		{"environment injection", func(in *keyledger.KeyInput) { in.Environment = "development' OR '1'='1" }, "environment"},
		{"empty owner", func(in *keyledger.KeyInput) { in.OwnerEmail = "" }, "owner"},
		{"malformed owner", func(in *keyledger.KeyInput) { in.OwnerEmail = "alice" }, "owner"},
		{"unknown owner", func(in *keyledger.KeyInput) { in.OwnerEmail = "nobody@example.com" }, "owner"},
		{"deactivated owner", func(in *keyledger.KeyInput) { in.OwnerEmail = gone.Email }, "owner"},
		{"rotation days zero", func(in *keyledger.KeyInput) { in.RotationDays = "0" }, "rotation_days"},
		{"rotation days text", func(in *keyledger.KeyInput) { in.RotationDays = "ninety" }, "rotation_days"},
		{"rotation days too many", func(in *keyledger.KeyInput) { in.RotationDays = "3651" }, "rotation_days"},
		{"scope with newline", func(in *keyledger.KeyInput) { in.Scope = "All\nRestricted" }, "scope"},
		{"provider with control char", func(in *keyledger.KeyInput) { in.Provider = "open\x01ai" }, "provider"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := f.tableCounts(t)
			in := good
			tc.edit(&in)
			res, err := f.s.CreateKey(ctx, as(alice), in)
			wantField(t, err, keyledger.EINVALID, tc.field)
			if res.Key != nil {
				t.Errorf("got key %+v with an error", res.Key)
			}
			if msg := err.Error(); strings.Contains(msg, good.Value) {
				t.Errorf("error message holds the value: %s", msg)
			}
			if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("refused key changed the tables: %v -> %v", before, after)
			}
		})
	}
	// A deactivated actor registers nothing.
	gone.Status = keyledger.UserDeactivated
	before := f.tableCounts(t)
	_, err := f.s.CreateKey(ctx, as(gone), good)
	wantCode(t, err, keyledger.EFORBIDDEN)
	if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("refused key changed the tables: %v -> %v", before, after)
	}
	// The good input still works: the failures above left nothing behind.
	f.key(t, alice, good)
	// The limits themselves are allowed.
	big := strings.Repeat("v", 8<<10-4) + "\nEND" // exactly 8 KiB, multi-line
	k := f.key(t, alice, keyledger.KeyInput{Name: strings.Repeat("ß", 200), Project: strings.Repeat("p", 100), Environment: "development",
		OwnerEmail: alice.Email, Value: big, RotationDays: "3650"})
	got, err := f.s.Reveal(ctx, as(alice), k.ID, "")
	if err != nil || got.Value != big {
		t.Errorf("8 KiB value: %v", err)
	}
}

func TestCreateKeyStoresTextVerbatim(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := t.Context()
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	tests := []struct{ name, project, description string }{
		{`<script>alert("x")</script>`, "web", ""},
		{`<img src=x onerror=alert(1)>`, `"><svg onload=alert(1)>`, "<b>bold</b>\nsecond line"},
		{`'; DROP TABLE keys; --`, `'; DROP TABLE keys; --`, `'); DELETE FROM audit_events; --`},
		{`Robert'); DROP TABLE users;--`, `x' OR '1'='1`, `\x00 is not a NUL here; $1 neither`},
		{`%_\ like metas`, `50% off`, ""},
		{`=cmd|' /C calc'!A0`, "csv", "+SUM(1)"},
		{"Ünïcødé 鍵 🔑", "プロジェクト", "emoji 🔑"},
	}
	for _, tc := range tests {
		res, err := f.s.CreateKey(ctx, as(alice), keyledger.KeyInput{Name: tc.name, Project: tc.project, Environment: "development",
			OwnerEmail: alice.Email, Value: secretValue(t, "sk-ant-"), Description: tc.description})
		if err != nil {
			t.Fatalf("%q: %v", tc.name, err)
		}
		k, err := f.s.GetKey(ctx, as(alice), res.Key.ID)
		if err != nil {
			t.Fatal(err)
		}
		if k.Name != tc.name || k.Project != tc.project || k.Description != tc.description {
			t.Errorf("stored %q / %q / %q, want %q / %q / %q", k.Name, k.Project, k.Description, tc.name, tc.project, tc.description)
		}
		var dbName string
		if err := f.pool.QueryRow(ctx, "SELECT name FROM keys WHERE id = $1", k.ID).Scan(&dbName); err != nil || dbName != tc.name {
			t.Errorf("column holds %q (%v), want %q", dbName, err, tc.name)
		}
	}
	// Every table is still there, with its rows.
	for _, tbl := range []string{"keys", "users", "audit_events", "key_versions"} {
		if f.count(t, "SELECT count(*) FROM "+tbl) == 0 {
			t.Errorf("table %s is empty", tbl)
		}
	}
	if n := f.count(t, "SELECT count(*) FROM keys"); n != len(tests) {
		t.Errorf("%d keys, want %d", n, len(tests))
	}
	// And the stored names are found by search, literally.
	page, err := f.s.ListKeys(ctx, as(alice), store.KeyFilter{Q: "DROP TABLE"})
	if err != nil || page.Total != 2 {
		t.Errorf("search for DROP TABLE: %d keys, %v", page.Total, err)
	}
}

func TestCreateKeyDetectsAndMasks(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := t.Context()
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	tests := []struct {
		value, provider string
		provider0       keyledger.Provider
		hint            string
	}{
		{"sk-proj-AbCdEfGhIjKlMnOpQrStKl9q", "", keyledger.ProviderOpenAI, "sk-proj-…Kl9q"},
		{"sk-ant-api03-0123456789abcdefWXYZ", "", keyledger.ProviderAnthropic, "sk-ant-…WXYZ"},
		{"sk_test_0123456789abcdefghijAAAA", "", keyledger.ProviderStripe, "sk_test_…AAAA"},
		{"ghp_0123456789abcdefghijklmnopqrBBBB", "", keyledger.ProviderGitHub, "ghp_…BBBB"},
		{"AKIAIOSFODNN7EXAMPLE", "", keyledger.ProviderAWS, "AKIA…MPLE"},
		{"zzzz-unknown-format-0123456789-CCCC", "", keyledger.ProviderOther, "zzz…CCCC"},
		{"sk-proj-ExplicitProvider0123456DDDD", " Azure-OpenAI ", "azure-openai", "sk-proj-…DDDD"},
		{"  sk-proj-TrimmedWhitespace0123EEEE\n", "", keyledger.ProviderOpenAI, "sk-proj-…EEEE"},
	}
	for i, tc := range tests {
		// Confirmed whitespace is kept (issue 12, item 5); detection and
		// the hint look past it.
		res, err := f.s.CreateKey(ctx, as(alice), keyledger.KeyInput{Name: fmt.Sprintf("key %d", i), Project: "p", Environment: "development",
			OwnerEmail: alice.Email, Value: tc.value, Provider: tc.provider, KeepWhitespace: true})
		if err != nil {
			t.Fatalf("%s: %v", tc.value, err)
		}
		k := res.Key
		if k.Provider != tc.provider0 || k.MaskedHint != tc.hint {
			t.Errorf("%s: provider %q hint %q, want %q %q", tc.value, k.Provider, k.MaskedHint, tc.provider0, tc.hint)
		}
		if len(res.Warnings) != 0 {
			t.Errorf("%s: warnings %v", tc.value, res.Warnings)
		}
		var vHint string
		if err := f.pool.QueryRow(ctx, "SELECT masked_hint FROM key_versions WHERE key_id = $1 AND version = 1", k.ID).Scan(&vHint); err != nil || vHint != tc.hint {
			t.Errorf("%s: version hint %q (%v)", tc.value, vHint, err)
		}
		got, err := f.s.Reveal(ctx, as(alice), k.ID, "")
		if err != nil || got.Value != tc.value {
			t.Errorf("%s: revealed %q, %v", tc.value, got.Value, err)
		}
	}
}

func TestCreateKeyDefaultsAndAudit(t *testing.T) {
	t.Parallel()
	clk := newClock()
	f := newFixture(t, store.Options{Now: clk.Now})
	ctx := t.Context()
	lead := f.user(t, "lead@example.com", keyledger.RoleLead)
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	value := secretValue(t, "sk-proj-")
	res, err := f.s.CreateKey(ctx, as(lead), keyledger.KeyInput{Name: "  Chatbot prod  ", Project: "chatbot", Environment: "Production",
		OwnerEmail: "ALICE@example.com", Value: value, Scope: "Restricted: models.read", Description: "line one\nline two"})
	if err != nil {
		t.Fatal(err)
	}
	k := res.Key
	if k.Name != "Chatbot prod" || k.Environment != "production" || k.OwnerID != alice.ID || k.OwnerEmail != alice.Email ||
		k.CurrentVersion != 1 || k.RotationDays != 0 || k.EffectiveDays != 90 || k.CreatedByEmail != lead.Email {
		t.Errorf("created %+v", k)
	}
	if !k.RotateBy.Equal(clk.Now().AddDate(0, 0, 90)) {
		t.Errorf("rotate by %v, want %v", k.RotateBy, clk.Now().AddDate(0, 0, 90))
	}
	res2, err := f.s.CreateKey(ctx, as(alice), keyledger.KeyInput{Name: "custom", Project: "chatbot", Environment: "staging",
		OwnerEmail: alice.Email, Value: secretValue(t, "sk-proj-"), RotationDays: "30"})
	if err != nil {
		t.Fatal(err)
	}
	if res2.Key.RotationDays != 30 || res2.Key.EffectiveDays != 30 || !res2.Key.RotateBy.Equal(clk.Now().AddDate(0, 0, 30)) {
		t.Errorf("custom rotation: %+v", res2.Key)
	}
	var details string
	if err := f.pool.QueryRow(ctx, "SELECT details::text FROM audit_events WHERE action = $1 AND key_id = $2 AND actor_id = $3 AND key_version = 1 AND environment = 'production'",
		keyledger.ActionKeyCreate, k.ID, lead.ID).Scan(&details); err != nil {
		t.Fatalf("key.create event: %v", err)
	}
	if !strings.Contains(details, `"owner": "alice@example.com"`) || strings.Contains(details, value) {
		t.Errorf("key.create details %s", details)
	}
	versions, err := f.s.KeyVersions(ctx, as(alice), k.ID)
	if err != nil || len(versions) != 1 || versions[0].Version != 1 || versions[0].CreatedBy != lead.Email || versions[0].DestroyedAt != nil {
		t.Errorf("KeyVersions = %+v, %v", versions, err)
	}
	projects, err := f.s.Projects(ctx, keyledger.SystemActor("test"))
	if err != nil || !slices.Equal(projects, []string{"chatbot"}) {
		t.Errorf("Projects = %v, %v", projects, err)
	}
}

func TestCreateKeyConflicts(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := t.Context()
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	bob := f.user(t, "bob@example.com", keyledger.RoleMember)
	value := secretValue(t, "sk-proj-")
	first := f.key(t, alice, keyledger.KeyInput{Name: "Chatbot dev", Project: "chatbot", Environment: "development", OwnerEmail: alice.Email, Value: value})

	t.Run("same value under another key", func(t *testing.T) {
		for _, v := range []string{value, "  " + value + "\n"} {
			before := f.tableCounts(t)
			_, err := f.s.CreateKey(ctx, as(bob), keyledger.KeyInput{Name: "Other", Project: "search", Environment: "production", OwnerEmail: bob.Email, Value: v, KeepWhitespace: true})
			wantField(t, err, keyledger.ECONFLICT, "value")
			msg := keyledger.FieldErrors(err)["value"]
			if !strings.Contains(msg, `"Chatbot dev"`) || !strings.Contains(msg, "chatbot") || !strings.Contains(msg, "development") {
				t.Errorf("conflict does not name the existing key: %q", msg)
			}
			if strings.Contains(err.Error(), value) {
				t.Error("conflict message holds the value")
			}
			unchangedButAudit(t, before, f.tableCounts(t), 1)
		}
	})
	t.Run("same project, environment and name", func(t *testing.T) {
		for _, name := range []string{"Chatbot dev", "chatbot DEV", " Chatbot dev "} {
			before := f.tableCounts(t)
			_, err := f.s.CreateKey(ctx, as(bob), keyledger.KeyInput{Name: name, Project: "chatbot", Environment: "development", OwnerEmail: bob.Email, Value: secretValue(t, "sk-proj-")})
			wantField(t, err, keyledger.ECONFLICT, "name")
			if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("refused key changed the tables: %v -> %v", before, after)
			}
		}
	})
	t.Run("same name elsewhere is fine", func(t *testing.T) {
		f.key(t, bob, keyledger.KeyInput{Name: "Chatbot dev", Project: "chatbot", Environment: "staging", OwnerEmail: bob.Email, Value: secretValue(t, "sk-proj-")})
		f.key(t, bob, keyledger.KeyInput{Name: "Chatbot dev", Project: "search", Environment: "development", OwnerEmail: bob.Email, Value: secretValue(t, "sk-proj-")})
	})
	t.Run("archived key frees name and value", func(t *testing.T) {
		if err := f.s.ArchiveKey(ctx, as(alice), first.ID); err != nil {
			t.Fatal(err)
		}
		f.key(t, alice, keyledger.KeyInput{Name: "Chatbot dev", Project: "chatbot", Environment: "development", OwnerEmail: alice.Email, Value: value})
	})
}

func TestCreateKeyLiveValueWarning(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := t.Context()
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	admin := f.user(t, "admin@example.com", keyledger.RoleAdmin)
	// The warning follows the environment's sensitive flag, not its name:
	// a sensitive "prod-eu" is where live keys belong; a "production-mirror"
	// that nobody marked sensitive reveals without a step-up, so a live key
	// there is warned about like one in development.
	for _, e := range []keyledger.EnvironmentInput{
		{Name: "prod-eu", RevealPolicy: string(keyledger.RevealOwnerLeadsAdmins), ReasonRequired: true, Sensitive: true, RotationDays: "90"},
		{Name: "production-mirror", RevealPolicy: string(keyledger.RevealAnyUser), RotationDays: "90"},
	} {
		if _, err := f.s.CreateEnvironment(ctx, as(admin), e); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct {
		env, prefix string
		warn        bool
	}{
		{"development", "sk_live_", true},
		{"staging", "rk_live_", true},
		{"production", "sk_live_", false},
		{"development", "sk_test_", false},
		{"prod-eu", "sk_live_", false},
		{"prod-eu", "rk_live_", false},
		{"production-mirror", "sk_live_", true},
		{"production-mirror", "sk_test_", false},
	}
	for _, tc := range tests {
		value := secretValue(t, tc.prefix)
		res, err := f.s.CreateKey(ctx, as(alice), keyledger.KeyInput{Name: tc.prefix + tc.env, Project: "shop", Environment: tc.env, OwnerEmail: alice.Email, Value: value})
		if err != nil {
			t.Fatal(err)
		}
		if res.Key.Provider != keyledger.ProviderStripe {
			t.Errorf("provider %q", res.Key.Provider)
		}
		if got := len(res.Warnings) > 0; got != tc.warn {
			t.Errorf("%s in %s: warnings %q, want warning %v", tc.prefix, tc.env, res.Warnings, tc.warn)
		}
		for _, w := range res.Warnings {
			if !strings.Contains(w, tc.env) || strings.Contains(w, value) {
				t.Errorf("warning %q: should name %s and not hold the value", w, tc.env)
			}
		}
		flagged := f.count(t, "SELECT count(*) FROM audit_events WHERE key_id = $1 AND details ? 'live_value_outside_production'", res.Key.ID) == 1
		if flagged != tc.warn {
			t.Errorf("%s in %s: audit flag %v, want %v", tc.prefix, tc.env, flagged, tc.warn)
		}
	}
}

// listFixture registers keys across environments, owners, providers and
// projects, at the clock's time.
func listFixture(t *testing.T, clk *clock) (*fixture, *keyledger.User, *keyledger.User) {
	f := newFixture(t, store.Options{Now: clk.Now})
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	bob := f.user(t, "bob@example.com", keyledger.RoleLead)
	for _, k := range []struct{ name, project, env, owner, prefix, days, desc string }{
		{"billing 50% off", "shop", "development", alice.Email, "sk_test_", "1", ""},
		{"billing 500 off", "shop", "development", bob.Email, "sk_test_", "10", ""},
		{"under_score", "search", "staging", alice.Email, "sk-proj-", "100", ""},
		{"underXscore", "search", "production", bob.Email, "sk-ant-", "", "backslash \\ here"},
		{"Deploy token", "infra", "production", alice.Email, "ghp_", "", "used by CI"},
	} {
		f.key(t, alice, keyledger.KeyInput{Name: k.name, Project: k.project, Environment: k.env, OwnerEmail: k.owner,
			Value: secretValue(t, k.prefix), RotationDays: k.days, Description: k.desc})
	}
	return f, alice, bob
}

func names(keys []keyledger.Key) []string {
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = k.Name
	}
	return out
}

func TestListKeysFilters(t *testing.T) {
	t.Parallel()
	clk := newClock()
	f, alice, _ := listFixture(t, clk)
	ctx := t.Context()
	// Two days on: the 1-day key is overdue, the 10-day one due within 14
	// days, the others fine.
	clk.Advance(48 * time.Hour)
	tests := []struct {
		name   string
		filter store.KeyFilter
		want   []string
	}{
		{"all", store.KeyFilter{}, []string{"billing 50% off", "billing 500 off", "Deploy token", "under_score", "underXscore"}},
		{"environment", store.KeyFilter{Environment: "Production"}, []string{"Deploy token", "underXscore"}},
		{"unknown environment", store.KeyFilter{Environment: "qa"}, nil},
		{"owner", store.KeyFilter{OwnerEmail: "BOB@example.com"}, []string{"billing 500 off", "underXscore"}},
		{"provider", store.KeyFilter{Provider: "Stripe"}, []string{"billing 50% off", "billing 500 off"}},
		{"provider github", store.KeyFilter{Provider: "github"}, []string{"Deploy token"}},
		{"project", store.KeyFilter{Project: "search"}, []string{"under_score", "underXscore"}},
		{"project is exact", store.KeyFilter{Project: "sea"}, nil},
		{"q in name, any case", store.KeyFilter{Q: "BILLING"}, []string{"billing 50% off", "billing 500 off"}},
		{"q percent is literal", store.KeyFilter{Q: "50%"}, []string{"billing 50% off"}},
		{"q lone percent", store.KeyFilter{Q: "%"}, []string{"billing 50% off"}},
		{"q underscore is literal", store.KeyFilter{Q: "under_"}, []string{"under_score"}},
		{"q lone underscore", store.KeyFilter{Q: "_"}, []string{"under_score"}},
		{"q backslash is literal", store.KeyFilter{Q: `\`}, []string{"underXscore"}},
		{"q in project", store.KeyFilter{Q: "infra"}, []string{"Deploy token"}},
		{"q in description", store.KeyFilter{Q: "by ci"}, []string{"Deploy token"}},
		{"q injection", store.KeyFilter{Q: "' OR '1'='1"}, nil},
		{"combined", store.KeyFilter{Environment: "development", OwnerEmail: alice.Email, Q: "billing"}, []string{"billing 50% off"}},
		{"overdue", store.KeyFilter{Status: "overdue"}, []string{"billing 50% off"}},
		{"due soon", store.KeyFilter{Status: "due_soon"}, []string{"billing 500 off"}},
		{"ok", store.KeyFilter{Status: "ok"}, []string{"Deploy token", "under_score", "underXscore"}},
		{"archived", store.KeyFilter{Status: "archived"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			page, err := f.s.ListKeys(ctx, as(alice), tc.filter)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(page.Keys); !slices.Equal(got, tc.want) && (len(got) != 0 || len(tc.want) != 0) {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if page.Total != len(tc.want) {
				t.Errorf("Total %d, want %d", page.Total, len(tc.want))
			}
		})
	}
	// Months later everything is overdue.
	clk.Advance(365 * 24 * time.Hour)
	page, err := f.s.ListKeys(ctx, as(alice), store.KeyFilter{Status: "overdue"})
	if err != nil || page.Total != 5 {
		t.Errorf("a year on: %d overdue, %v", page.Total, err)
	}
}

func TestListKeysSortAndPages(t *testing.T) {
	t.Parallel()
	clk := newClock()
	f, alice, _ := listFixture(t, clk)
	ctx := t.Context()
	for _, sort := range append(store.KeySorts(), "", "bogus", "name; DROP TABLE keys") {
		for _, desc := range []bool{false, true} {
			page, err := f.s.ListKeys(ctx, as(alice), store.KeyFilter{Sort: sort, Desc: desc})
			if err != nil {
				t.Errorf("sort %q desc %v: %v", sort, desc, err)
				continue
			}
			if page.Total != 5 || len(page.Keys) != 5 {
				t.Errorf("sort %q desc %v: %d of %d keys", sort, desc, len(page.Keys), page.Total)
			}
		}
	}
	asc, err := f.s.ListKeys(ctx, as(alice), store.KeyFilter{Sort: "name"})
	if err != nil {
		t.Fatal(err)
	}
	desc, err := f.s.ListKeys(ctx, as(alice), store.KeyFilter{Sort: "name", Desc: true})
	if err != nil {
		t.Fatal(err)
	}
	want := names(asc.Keys)
	slices.Reverse(want)
	if got := names(desc.Keys); !slices.Equal(got, want) {
		t.Errorf("name desc %q, want %q", got, want)
	}
	byEnv, err := f.s.ListKeys(ctx, as(alice), store.KeyFilter{Sort: "environment"})
	if err != nil {
		t.Fatal(err)
	}
	var envs []string
	for _, k := range byEnv.Keys {
		envs = append(envs, k.Environment)
	}
	if !slices.Equal(envs, []string{"development", "development", "staging", "production", "production"}) {
		t.Errorf("by environment: %q", envs)
	}
	byRotate, err := f.s.ListKeys(ctx, as(alice), store.KeyFilter{Sort: "rotate_by"})
	if err != nil {
		t.Fatal(err)
	}
	// 1 day, 10 days, 90 (production default) twice, 100.
	if got := names(byRotate.Keys); !slices.Equal(got[:2], []string{"billing 50% off", "billing 500 off"}) || got[4] != "under_score" {
		t.Errorf("by rotate_by: %q", got)
	}

	all := names(asc.Keys)
	tests := []struct {
		page, perPage int
		want          []string
		pages         int
	}{
		{1, 2, all[0:2], 3},
		{2, 2, all[2:4], 3},
		{3, 2, all[4:5], 3},
		{4, 2, nil, 3},
		{0, 2, all[0:2], 3},  // page < 1 means the first
		{-5, 2, all[0:2], 3}, // likewise
		{1, 5, all, 1},
		{1, 0, all, 1},    // default page size
		{1, 1000, all, 1}, // capped to the default
	}
	for _, tc := range tests {
		page, err := f.s.ListKeys(ctx, as(alice), store.KeyFilter{Sort: "name", Page: tc.page, PerPage: tc.perPage})
		if err != nil {
			t.Fatal(err)
		}
		if got := names(page.Keys); !slices.Equal(got, tc.want) && len(got)+len(tc.want) > 0 {
			t.Errorf("page %d per %d: %q, want %q", tc.page, tc.perPage, got, tc.want)
		}
		if page.Total != 5 || page.Pages() != tc.pages {
			t.Errorf("page %d per %d: Total %d Pages %d, want 5 and %d", tc.page, tc.perPage, page.Total, page.Pages(), tc.pages)
		}
	}
	// Deactivated users list nothing.
	gone := *alice
	gone.Status = keyledger.UserDeactivated
	_, err = f.s.ListKeys(ctx, as(&gone), store.KeyFilter{})
	wantCode(t, err, keyledger.EFORBIDDEN)
}

func TestUpdateKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := t.Context()
	admin := f.user(t, "admin@example.com", keyledger.RoleAdmin)
	lead := f.user(t, "lead@example.com", keyledger.RoleLead)
	owner := f.user(t, "owner@example.com", keyledger.RoleMember)
	other := f.user(t, "other@example.com", keyledger.RoleMember)
	k := f.key(t, owner, keyledger.KeyInput{Name: "k", Project: "p0", Environment: "production", OwnerEmail: owner.Email, Value: secretValue(t, "sk-proj-")})
	edit := func(project string) keyledger.KeyInput {
		return keyledger.KeyInput{Project: project, OwnerEmail: owner.Email, Scope: "All"}
	}
	tests := []struct {
		name  string
		actor *keyledger.User
		ok    bool
	}{
		{"owner", owner, true},
		{"lead", lead, true},
		{"admin", admin, true},
		{"other member", other, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			project := fmt.Sprintf("p%d", i+1)
			before := f.tableCounts(t)
			got, err := f.s.UpdateKey(ctx, as(tc.actor), k.ID, edit(project))
			if !tc.ok {
				wantCode(t, err, keyledger.EFORBIDDEN)
				if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
					t.Errorf("refused edit changed the tables: %v -> %v", before, after)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Project != project || got.Scope != "All" {
				t.Errorf("after edit: %+v", got)
			}
			var details string
			if err := f.pool.QueryRow(ctx, "SELECT details::text FROM audit_events WHERE action = $1 AND key_id = $2 AND actor_id = $3",
				keyledger.ActionKeyUpdate, k.ID, tc.actor.ID).Scan(&details); err != nil {
				t.Fatalf("key.update event: %v", err)
			}
			//nolint:gocritic // sprintfQuotedString: this is the JSON text as stored, not Go quoting
			if !strings.Contains(details, fmt.Sprintf(`"project": {"to": "%s", "from": "p%d"}`, project, i)) {
				t.Errorf("details %s do not record the project change", details)
			}
		})
	}
	// Reassigning, rescheduling and describing are recorded field by field.
	got, err := f.s.UpdateKey(ctx, as(lead), k.ID, keyledger.KeyInput{Project: "p3", OwnerEmail: other.Email, Scope: "All", RotationDays: "30", Description: "new"})
	if err != nil {
		t.Fatal(err)
	}
	if got.OwnerID != other.ID || got.RotationDays != 30 || !got.RotateBy.Equal(got.LastRotatedAt.AddDate(0, 0, 30)) {
		t.Errorf("after reassignment: %+v", got)
	}
	var details string
	if err := f.pool.QueryRow(ctx, "SELECT details::text FROM audit_events WHERE action = $1 ORDER BY id DESC LIMIT 1", keyledger.ActionKeyUpdate).Scan(&details); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"owner": {"to": "other@example.com", "from": "owner@example.com"}`, `"rotation_days": {"to": 30, "from": 0}`, `"description": "changed"`} {
		if !strings.Contains(details, want) {
			t.Errorf("details %s lack %s", details, want)
		}
	}
	if strings.Contains(details, "project") {
		t.Errorf("unchanged project recorded: %s", details)
	}
	// The old owner is now just another member.
	_, err = f.s.UpdateKey(ctx, as(owner), k.ID, edit("p9"))
	wantCode(t, err, keyledger.EFORBIDDEN)

	_, err = f.s.UpdateKey(ctx, as(lead), k.ID, keyledger.KeyInput{Project: "p", OwnerEmail: "nobody@example.com"})
	wantField(t, err, keyledger.EINVALID, "owner")
	_, err = f.s.UpdateKey(ctx, as(lead), k.ID, keyledger.KeyInput{Project: "", OwnerEmail: owner.Email})
	wantField(t, err, keyledger.EINVALID, "project")
	_, err = f.s.UpdateKey(ctx, as(lead), "00000000-0000-0000-0000-000000000000", edit("p"))
	wantCode(t, err, keyledger.ENOTFOUND)
	_, err = f.s.UpdateKey(ctx, as(lead), "not-a-uuid", edit("p"))
	wantCode(t, err, keyledger.ENOTFOUND)
	if err := f.s.ArchiveKey(ctx, as(lead), k.ID); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.UpdateKey(ctx, as(lead), k.ID, edit("p"))
	wantCode(t, err, keyledger.ECONFLICT)
}

func TestArchiveKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := t.Context()
	owner := f.user(t, "owner@example.com", keyledger.RoleMember)
	other := f.user(t, "other@example.com", keyledger.RoleMember)
	value := secretValue(t, "sk-proj-")
	k := f.key(t, owner, devKey("to archive", owner.Email, value))
	keep := f.key(t, owner, devKey("to keep", owner.Email, secretValue(t, "sk-proj-")))

	before := f.tableCounts(t)
	wantCode(t, f.s.ArchiveKey(ctx, as(other), k.ID), keyledger.EFORBIDDEN)
	if after := f.tableCounts(t); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("refused archive changed the tables: %v -> %v", before, after)
	}
	wantCode(t, f.s.ArchiveKey(ctx, as(owner), "garbage"), keyledger.ENOTFOUND)
	wantCode(t, f.s.ArchiveKey(ctx, as(owner), "00000000-0000-4000-8000-000000000000"), keyledger.ENOTFOUND)

	if err := f.s.ArchiveKey(ctx, as(owner), k.ID); err != nil {
		t.Fatal(err)
	}
	if n := f.count(t, "SELECT count(*) FROM key_versions WHERE key_id = $1 AND wrapped_dek IS NULL AND ciphertext IS NULL AND destroyed_at IS NOT NULL AND superseded_at IS NOT NULL", k.ID); n != 1 {
		t.Errorf("%d destroyed versions, want 1", n)
	}
	if n := f.count(t, "SELECT count(*) FROM key_versions WHERE key_id = $1 AND wrapped_dek IS NOT NULL AND ciphertext IS NOT NULL", keep.ID); n != 1 {
		t.Error("the other key's version was destroyed too")
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND key_id = $2 AND (details->>'versions_destroyed')::int = 1", keyledger.ActionKeyArchive, k.ID); n != 1 {
		t.Errorf("%d archive events, want 1", n)
	}
	live, err := f.s.ListKeys(ctx, as(owner), store.KeyFilter{})
	if err != nil || !slices.Equal(names(live.Keys), []string{"to keep"}) {
		t.Errorf("live list %q, %v", names(live.Keys), err)
	}
	archived, err := f.s.ListKeys(ctx, as(owner), store.KeyFilter{Status: "archived"})
	if err != nil || !slices.Equal(names(archived.Keys), []string{"to archive"}) || archived.Keys[0].ArchivedAt == nil {
		t.Errorf("archived list %q, %v", names(archived.Keys), err)
	}
	got, err := f.s.GetKey(ctx, as(owner), k.ID)
	if err != nil || !got.Archived() {
		t.Errorf("GetKey after archive: %+v, %v", got, err)
	}
	versions, err := f.s.KeyVersions(ctx, as(owner), k.ID)
	if err != nil || len(versions) != 1 || versions[0].DestroyedAt == nil {
		t.Errorf("versions after archive: %+v, %v", versions, err)
	}
	projects, err := f.s.Projects(ctx, keyledger.SystemActor("test"))
	if err != nil || !slices.Equal(projects, []string{"billing"}) {
		t.Errorf("projects %v, %v", projects, err)
	}
	r, err := f.s.Reveal(ctx, as(owner), k.ID, "")
	wantCode(t, err, keyledger.ECONFLICT)
	if r.Value != "" {
		t.Error("archived key revealed a value")
	}
	wantCode(t, f.s.ArchiveKey(ctx, as(owner), k.ID), keyledger.ECONFLICT)
	// Nothing of the value survives anywhere.
	if found := findInDatabase(t, f.pool, leakForms(value)); len(found) > 0 {
		t.Errorf("archived value still at rest: %v", found)
	}
}
