package provideradmin

import (
	"context"
	"encoding/json"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/provideradmin/providertest"
)

func TestAnthropicKeysFollowPaginationAndKeepEveryStatus(t *testing.T) {
	f, c := newAnthropic(t)
	f.SetPageCap(3)
	want := map[string]string{}
	for _, st := range []string{"active", "inactive", "archived", "expired", "active", "active", "inactive"} {
		id := f.AddKey(providertest.AnthropicKey{Name: "k", Status: st, CreatedByID: "user_x"})
		want[id] = st
	}
	keys, err := c.Keys(context.Background(), anthropicCred(f.AdminKey()))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, k := range keys {
		got[k.ID] = k.Status
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keys = %v, want %v", got, want)
	}
	if n := f.Count(http.MethodGet, "/v1/organizations/api_keys"); n != 3 {
		t.Errorf("key pages = %d, want 3 (7 keys, 3 a page)", n)
	}
	for _, r := range f.Requests() {
		if r.Path == "/v1/organizations/api_keys" && r.Query.Get("status") != "" {
			t.Errorf("key listing filtered by status %q; every status is wanted", r.Query.Get("status"))
		}
	}
}

func TestAnthropicKeyMapsEveryField(t *testing.T) {
	f, c := newAnthropic(t)
	created := time.Date(2024, 10, 30, 23, 58, 27, 427722000, time.UTC)
	f.AddWorkspace(providertest.AnthropicWorkspace{ID: "wrkspc_prod", Name: "Production"})
	f.AddWorkspace(providertest.AnthropicWorkspace{ID: "wrkspc_old", Name: "Old", Archived: true})
	f.AddUser(providertest.AnthropicUser{ID: "user_ann", Email: "ann@example.com", Name: "Ann"})
	f.AddKey(providertest.AnthropicKey{ID: "apikey_prod", Name: "Developer Key", PartialKeyHint: "sk-ant-api03-R2D...igAA",
		WorkspaceID: "wrkspc_prod", CreatedAt: created, CreatedByID: "user_ann"})
	f.AddKey(providertest.AnthropicKey{ID: "apikey_default", Name: "default ws", PartialKeyHint: "sk-ant-api03-Xyz...0001",
		CreatedAt: created, CreatedByID: "user_gone", Status: "inactive"})
	f.AddKey(providertest.AnthropicKey{ID: "apikey_old", Name: "old ws", PartialKeyHint: "sk-ant-api03-Old...0002",
		WorkspaceID: "wrkspc_old", CreatedAt: created, CreatedByID: "user_ann", Status: "archived"})

	keys, err := c.Keys(context.Background(), anthropicCred(f.AdminKey()))
	if err != nil {
		t.Fatal(err)
	}
	want := []keyledger.ProviderKey{
		{ID: "apikey_prod", Name: "Developer Key", Hint: "sk-ant-api03-R2D...igAA", Project: "wrkspc_prod", ProjectName: "Production",
			Status: "active", CreatedAt: created, CreatedBy: "ann@example.com", OwnerType: "user", OwnerActive: true},
		// The creator is no longer a member: owner left, and only the id
		// is known.
		{ID: "apikey_default", Name: "default ws", Hint: "sk-ant-api03-Xyz...0001", Project: "", ProjectName: DefaultWorkspaceName,
			Status: "inactive", CreatedAt: created, CreatedBy: "user_gone", OwnerType: "user", OwnerActive: false},
		{ID: "apikey_old", Name: "old ws", Hint: "sk-ant-api03-Old...0002", Project: "wrkspc_old", ProjectName: "Old",
			Status: "archived", CreatedAt: created, CreatedBy: "ann@example.com", OwnerType: "user", OwnerActive: true},
	}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("keys =\n%+v\nwant\n%+v", keys, want)
	}
	for _, r := range f.Requests() {
		if r.Query.Get("limit") != "1000" {
			t.Errorf("%s asked for limit=%q, want the documented maximum 1000", r.Path, r.Query.Get("limit"))
		}
	}
}

func TestAnthropicCheckMakesOneCheapCall(t *testing.T) {
	f, c := newAnthropic(t)
	f.Generate(2, 5)
	if err := c.Check(context.Background(), anthropicCred(f.AdminKey())); err != nil {
		t.Fatal(err)
	}
	reqs := f.Requests()
	if len(reqs) != 1 || reqs[0].Path != "/v1/organizations/api_keys" || reqs[0].Query.Get("limit") != "1" {
		t.Errorf("requests = %+v, want one GET /v1/organizations/api_keys?limit=1", reqs)
	}
}

func TestAnthropicUsageSumsInputAndCacheTokensAcrossPages(t *testing.T) {
	f, c := newAnthropic(t)
	now := time.Date(2026, 12, 4, 15, 0, 0, 0, time.UTC)
	f.SetNow(func() time.Time { return now })
	f.SetPageCap(4) // 14 days: 4 pages
	since := day("2026-11-21")
	f.AddUsage(providertest.AnthropicUsage{KeyID: "apikey_a", Day: day("2026-11-21"), UncachedInputTokens: 1500,
		CacheReadInputTokens: 200, CacheCreation5m: 500, CacheCreation1h: 1000, OutputTokens: 500, WebSearchRequests: 10})
	f.AddUsage(providertest.AnthropicUsage{KeyID: "apikey_a", Day: day("2026-11-21"), UncachedInputTokens: 1, OutputTokens: 2})
	f.AddUsage(providertest.AnthropicUsage{KeyID: "apikey_b", Day: day("2026-11-28"), UncachedInputTokens: 10, OutputTokens: 20})
	f.AddUsage(providertest.AnthropicUsage{KeyID: "apikey_b", Day: day("2026-12-04"), UncachedInputTokens: 3, CacheReadInputTokens: 4, OutputTokens: 5})

	got, err := c.Usage(context.Background(), anthropicCred(f.AdminKey()), since)
	if err != nil {
		t.Fatal(err)
	}
	want := []keyledger.ProviderUsage{
		{KeyID: "apikey_a", Day: day("2026-11-21"), InputTokens: 1500 + 200 + 500 + 1000 + 1, OutputTokens: 502},
		{KeyID: "apikey_b", Day: day("2026-11-28"), InputTokens: 10, OutputTokens: 20},
		{KeyID: "apikey_b", Day: day("2026-12-04"), InputTokens: 7, OutputTokens: 5},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("usage =\n%+v\nwant\n%+v", got, want)
	}
	pages := 0
	for _, r := range f.Requests() {
		if r.Path != "/v1/organizations/usage_report/messages" {
			continue
		}
		pages++
		if r.Query.Get("group_by[]") != "api_key_id" || r.Query.Get("bucket_width") != "1d" ||
			r.Query.Get("starting_at") != "2026-11-21T00:00:00Z" {
			t.Errorf("usage query = %v", r.Query)
		}
		if (pages == 1) != (r.Query.Get("page") == "") {
			t.Errorf("page %d cursor = %q", pages, r.Query.Get("page"))
		}
	}
	if pages != 4 {
		t.Errorf("usage pages = %d, want 4", pages)
	}
}

func TestAnthropicRevokeDeactivatesTheRightKey(t *testing.T) {
	f, c := newAnthropic(t)
	keep := f.AddKey(providertest.AnthropicKey{Name: "keep"})
	drop := f.AddKey(providertest.AnthropicKey{Name: "drop"})
	cred := anthropicCred(f.AdminKey())
	if err := c.Revoke(context.Background(), cred, keyledger.ProviderKeyRef{ID: drop}); err != nil {
		t.Fatal(err)
	}
	path := "/v1/organizations/api_keys/" + drop
	var posts []providertest.Request
	for _, r := range f.Requests() {
		if r.Method == http.MethodPost {
			posts = append(posts, r)
		}
	}
	if len(posts) != 1 || posts[0].Path != path {
		t.Fatalf("POSTs = %+v, want one to %s", posts, path)
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(posts[0].Body), &body); err != nil || !reflect.DeepEqual(body, map[string]any{"status": "inactive"}) {
		t.Errorf("body = %s, want {\"status\":\"inactive\"}", posts[0].Body)
	}
	if k, _ := f.Key(drop); k.Status != "inactive" {
		t.Errorf("revoked key status = %q, want inactive", k.Status)
	}
	if k, _ := f.Key(keep); k.Status != "active" {
		t.Errorf("other key status = %q, want active", k.Status)
	}
	// Again (already inactive), and a key the provider does not know.
	if err := c.Revoke(context.Background(), cred, keyledger.ProviderKeyRef{ID: drop}); err != nil {
		t.Errorf("second revoke = %v", err)
	}
	if err := c.Revoke(context.Background(), cred, keyledger.ProviderKeyRef{ID: "apikey_unknown"}); err != nil {
		t.Errorf("revoke of an unknown key = %v, want nil (404 is done)", err)
	}
	if n := f.Count(http.MethodPost, "/v1/organizations/api_keys/apikey_unknown"); n != 1 {
		t.Errorf("POST for the unknown key seen %d times, want 1", n)
	}
}

func TestAnthropicSendsVersionHeader(t *testing.T) {
	// The fake answers 400 without anthropic-version, as Anthropic does;
	// every call above passing proves the header. Check a bare request
	// fails, so the fake really checks.
	f, _ := newAnthropic(t)
	req, _ := http.NewRequest(http.MethodGet, f.URL()+"/v1/organizations/api_keys", http.NoBody)
	req.Header.Set("x-api-key", f.AdminKey())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("without anthropic-version: %d, want 400", resp.StatusCode)
	}
}

func TestAnthropicRevokeOfAnArchivedKeyIsDone(t *testing.T) {
	f, c := newAnthropic(t)
	archived := f.AddKey(providertest.AnthropicKey{Name: "a", Status: "archived"})
	if err := c.Revoke(context.Background(), anthropicCred(f.AdminKey()), keyledger.ProviderKeyRef{ID: archived}); err != nil {
		t.Errorf("revoke of an archived key = %v, want nil (it cannot be used)", err)
	}
	if k, _ := f.Key(archived); k.Status != "archived" {
		t.Errorf("status = %q, want archived (unchanged)", k.Status)
	}
	// A rejection for a key that is still active is reported.
	active := f.AddKey(providertest.AnthropicKey{Name: "b"})
	f.FailPath("/v1/organizations/api_keys/"+active, 1, http.StatusBadRequest, "")
	err := c.Revoke(context.Background(), anthropicCred(f.AdminKey()), keyledger.ProviderKeyRef{ID: active})
	requireKind(t, err, keyledger.ProviderRejected)
}
