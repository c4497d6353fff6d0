package provideradmin

import (
	"context"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/provideradmin/providertest"
)

func TestOpenAIKeysFollowPaginationInEveryProject(t *testing.T) {
	f, c := newOpenAI(t)
	f.SetPageCap(2) // 5 projects and 7 keys need several pages each
	for _, p := range []string{"proj_a", "proj_b", "proj_c", "proj_d", "proj_e"} {
		f.AddProject(providertest.OpenAIProject{ID: p, Name: p})
	}
	f.AddProject(providertest.OpenAIProject{ID: "proj_archived", Name: "old", Archived: true})
	want := map[string]bool{}
	for i := range 7 {
		id := f.AddKey(providertest.OpenAIKey{Project: "proj_a", Name: "a", OwnerInactive: i == 6})
		want[id] = true
	}
	for range 3 {
		want[f.AddKey(providertest.OpenAIKey{Project: "proj_c", Name: "c"})] = true
	}
	want[f.AddKey(providertest.OpenAIKey{Project: "proj_e", Name: "e"})] = true
	f.AddKey(providertest.OpenAIKey{Project: "proj_archived", Name: "gone"})

	keys, err := c.Keys(context.Background(), openAICred(f.AdminKey()))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, k := range keys {
		if got[k.ID] {
			t.Errorf("key %s listed twice", k.ID)
		}
		got[k.ID] = true
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("keys = %v, want %v", got, want)
	}
	if n := f.Count(http.MethodGet, "/v1/organization/projects"); n != 3 {
		t.Errorf("project pages = %d, want 3 (5 projects, 2 a page)", n)
	}
	if n := f.Count(http.MethodGet, "/v1/organization/projects/proj_a/api_keys"); n != 4 {
		t.Errorf("proj_a key pages = %d, want 4 (7 keys, 2 a page)", n)
	}
	if n := f.Count(http.MethodGet, "/v1/organization/projects/proj_archived/api_keys"); n != 0 {
		t.Errorf("archived project listed %d times; its keys no longer work", n)
	}
}

func TestOpenAIKeyMapsEveryField(t *testing.T) {
	f, c := newOpenAI(t)
	created := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	used := time.Date(2026, 11, 30, 8, 30, 0, 0, time.UTC)
	f.AddProject(providertest.OpenAIProject{ID: "proj_web", Name: "Web shop"})
	f.AddKey(providertest.OpenAIKey{
		ID: "key_user", Project: "proj_web", Name: "checkout", RedactedValue: "sk-proj-Ab...wxyz",
		CreatedAt: created, LastUsedAt: used, OwnerType: "user", OwnerID: "user_1", OwnerName: "Ann",
		OwnerEmail: "ann@example.com",
	})
	f.AddKey(providertest.OpenAIKey{
		ID: "key_bot", Project: "proj_web", Name: "bot key", RedactedValue: "sk-svcacct-X...1234",
		CreatedAt: created, OwnerType: "service_account", OwnerID: "svc_acct_1", OwnerName: "ci-bot",
	})
	f.AddKey(providertest.OpenAIKey{
		ID: "key_left", Project: "proj_web", Name: "old", RedactedValue: "sk-proj-Zz...0000",
		CreatedAt: created, OwnerType: "user", OwnerEmail: "bob@example.com", OwnerInactive: true,
	})

	keys, err := c.Keys(context.Background(), openAICred(f.AdminKey()))
	if err != nil {
		t.Fatal(err)
	}
	want := []keyledger.ProviderKey{
		{ID: "key_user", Name: "checkout", Hint: "sk-proj-Ab...wxyz", Project: "proj_web", ProjectName: "Web shop",
			Status: "active", CreatedAt: created, LastUsedAt: used, CreatedBy: "ann@example.com", OwnerType: "user", OwnerActive: true},
		{ID: "key_bot", Name: "bot key", Hint: "sk-svcacct-X...1234", Project: "proj_web", ProjectName: "Web shop",
			Status: "active", CreatedAt: created, CreatedBy: "ci-bot", OwnerType: "service_account", OwnerActive: true},
		{ID: "key_left", Name: "old", Hint: "sk-proj-Zz...0000", Project: "proj_web", ProjectName: "Web shop",
			Status: "active", CreatedAt: created, CreatedBy: "bob@example.com", OwnerType: "user", OwnerActive: false},
	}
	if !reflect.DeepEqual(keys, want) {
		t.Errorf("keys =\n%+v\nwant\n%+v", keys, want)
	}
	// The owner who lost access is listed only because the client asks
	// for owner_project_access=any.
	for _, r := range f.Requests() {
		if r.Path == "/v1/organization/projects/proj_web/api_keys" && r.Query.Get("owner_project_access") != "any" {
			t.Errorf("key listing sent owner_project_access=%q, want any", r.Query.Get("owner_project_access"))
		}
	}
}

func TestOpenAICheckMakesOneCheapCall(t *testing.T) {
	f, c := newOpenAI(t)
	f.Generate(3, 10)
	if err := c.Check(context.Background(), openAICred(f.AdminKey())); err != nil {
		t.Fatal(err)
	}
	reqs := f.Requests()
	if len(reqs) != 1 || reqs[0].Path != "/v1/organization/projects" || reqs[0].Query.Get("limit") != "1" {
		t.Errorf("requests = %+v, want one GET /v1/organization/projects?limit=1", reqs)
	}
}

func TestOpenAIUsageSumsPerKeyAndDayAcrossPages(t *testing.T) {
	f, c := newOpenAI(t)
	now := time.Date(2026, 12, 4, 15, 0, 0, 0, time.UTC)
	f.SetNow(func() time.Time { return now })
	f.SetPageCap(3) // 20 days in buckets of 3: 7 pages
	since := day("2026-11-15")
	f.AddUsage(providertest.OpenAIUsage{KeyID: "key_a", Day: day("2026-11-15"), Requests: 3, InputTokens: 100, OutputTokens: 10})
	f.AddUsage(providertest.OpenAIUsage{KeyID: "key_a", Day: day("2026-11-15").Add(5 * time.Hour), Requests: 2, InputTokens: 50, OutputTokens: 5})
	f.AddUsage(providertest.OpenAIUsage{KeyID: "key_b", Day: day("2026-11-20"), Requests: 1, InputTokens: 7, OutputTokens: 1})
	f.AddUsage(providertest.OpenAIUsage{KeyID: "key_a", Day: day("2026-12-04"), Requests: 9, InputTokens: 900, OutputTokens: 90, CachedTokens: 100})
	f.AddUsage(providertest.OpenAIUsage{KeyID: "key_old", Day: day("2026-11-01"), Requests: 1}) // before since

	got, err := c.Usage(context.Background(), openAICred(f.AdminKey()), since)
	if err != nil {
		t.Fatal(err)
	}
	want := []keyledger.ProviderUsage{
		{KeyID: "key_a", Day: day("2026-11-15"), Requests: 5, InputTokens: 150, OutputTokens: 15},
		{KeyID: "key_b", Day: day("2026-11-20"), Requests: 1, InputTokens: 7, OutputTokens: 1},
		{KeyID: "key_a", Day: day("2026-12-04"), Requests: 9, InputTokens: 900, OutputTokens: 90},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("usage =\n%+v\nwant\n%+v", got, want)
	}
	var pages []string
	for _, r := range f.Requests() {
		if r.Path != "/v1/organization/usage/completions" {
			continue
		}
		pages = append(pages, r.Query.Get("page"))
		if r.Query.Get("group_by") != "api_key_id" || r.Query.Get("bucket_width") != "1d" ||
			r.Query.Get("start_time") != strconv.FormatInt(since.Unix(), 10) {
			t.Errorf("usage query = %v", r.Query)
		}
	}
	if len(pages) != 7 || pages[0] != "" || pages[1] == "" {
		t.Errorf("usage pages = %q, want 7, the first without a page cursor", pages)
	}
}

func TestOpenAIRevokeDeletesTheRightKey(t *testing.T) {
	f, c := newOpenAI(t)
	f.AddProject(providertest.OpenAIProject{ID: "proj_a", Name: "A"})
	f.AddProject(providertest.OpenAIProject{ID: "proj_b", Name: "B"})
	keep := f.AddKey(providertest.OpenAIKey{Project: "proj_a", Name: "keep"})
	drop := f.AddKey(providertest.OpenAIKey{Project: "proj_b", Name: "drop"})
	cred := openAICred(f.AdminKey())

	if err := c.Revoke(context.Background(), cred, keyledger.ProviderKeyRef{ID: drop, Project: "proj_b"}); err != nil {
		t.Fatal(err)
	}
	path := "/v1/organization/projects/proj_b/api_keys/" + drop
	if n := f.Count(http.MethodDelete, path); n != 1 {
		t.Errorf("DELETE %s seen %d times, want 1 (requests %+v)", path, n, f.Requests())
	}
	if _, ok := f.Key(drop); ok {
		t.Error("revoked key still exists at the fake provider")
	}
	if _, ok := f.Key(keep); !ok {
		t.Error("the other key was deleted too")
	}
	// Again: OpenAI answers 404, which counts as done.
	if err := c.Revoke(context.Background(), cred, keyledger.ProviderKeyRef{ID: drop, Project: "proj_b"}); err != nil {
		t.Errorf("second revoke = %v, want nil (404 is done)", err)
	}
	if n := f.Count(http.MethodDelete, path); n != 2 {
		t.Errorf("DELETE seen %d times, want 2", n)
	}
}

func TestOpenAIRevokeRefusesMalformedRefs(t *testing.T) {
	f, c := newOpenAI(t)
	cred := openAICred(f.AdminKey())
	for _, ref := range []keyledger.ProviderKeyRef{
		{ID: "key_a"},                         // no project
		{ID: "", Project: "proj_a"},           // no id
		{ID: "../../projects", Project: "p"},  // path traversal
		{ID: "key_a", Project: "proj_a/../x"}, // in the project too
		{ID: "key_a?x=1", Project: "proj_a"},  // query smuggling
	} {
		err := c.Revoke(context.Background(), cred, ref)
		requireKind(t, err, keyledger.ProviderRejected)
	}
	if reqs := f.Requests(); len(reqs) != 0 {
		t.Errorf("malformed refs reached the provider: %+v", reqs)
	}
}

func TestOpenAICreateServiceAccountReturnsTheNewKey(t *testing.T) {
	f, c := newOpenAI(t)
	f.AddProject(providertest.OpenAIProject{ID: "proj_a", Name: "A"})
	sa, err := c.CreateServiceAccount(context.Background(), openAICred(f.AdminKey()), "proj_a", "deploy-bot")
	if err != nil {
		t.Fatal(err)
	}
	k, ok := f.Key(sa.KeyID)
	if !ok {
		t.Fatalf("the fake has no key %q", sa.KeyID)
	}
	if sa.ServiceAccountID == "" || sa.Name != "deploy-bot" || k.OwnerName != "deploy-bot" ||
		sa.Value == "" || providertest.OpenAIRedact(sa.Value) != k.RedactedValue {
		t.Errorf("service account = %+v, fake key = %+v", sa, k)
	}
	if n := f.Count(http.MethodPost, "/v1/organization/projects/proj_a/service_accounts"); n != 1 {
		t.Errorf("POST service_accounts seen %d times", n)
	}
	if _, err := c.CreateServiceAccount(context.Background(), openAICred(f.AdminKey()), "proj_missing", "x"); err == nil {
		t.Error("service account in an unknown project: err = nil")
	}
	if strings.Contains(c.logs.String(), sa.Value) {
		t.Error("the new key value is in the logs")
	}
}

func TestOpenAIKeysBoundedConcurrency(t *testing.T) {
	f := providertest.NewOpenAI()
	t.Cleanup(f.Close)
	c := newTestClient(t, Config{OpenAIBaseURL: f.URL(), Concurrency: 3})
	f.Generate(12, 120)
	f.SetDelay(20 * time.Millisecond) // long enough for requests to overlap
	keys, err := c.Keys(context.Background(), openAICred(f.AdminKey()))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 120 {
		t.Errorf("keys = %d, want 120", len(keys))
	}
	if m := f.MaxInFlight(); m > 3 || m < 2 {
		t.Errorf("max requests in flight = %d, want 2..3 (bound 3, and some overlap)", m)
	}
}

func TestOpenAIKeysStopsAtTheFirstFailure(t *testing.T) {
	f, c := newOpenAI(t)
	f.Generate(10, 50)
	// The project list succeeds, then one project's key list is rate
	// limited without Retry-After, which is not retried.
	f.FailPath("/v1/organization/projects/proj_gen_004/api_keys", 1, http.StatusTooManyRequests, "")
	keys, err := c.Keys(context.Background(), openAICred(f.AdminKey()))
	if keys != nil {
		t.Errorf("keys = %d on failure, want nil (a partial inventory would read as deletions)", len(keys))
	}
	requireKind(t, err, keyledger.ProviderRateLimited)
}

func TestOpenAIProjectGoneBetweenListingsHasNoKeys(t *testing.T) {
	f, c := newOpenAI(t)
	f.Generate(3, 9)
	f.FailPath("/v1/organization/projects/proj_gen_001/api_keys", 1, http.StatusNotFound, "")
	keys, err := c.Keys(context.Background(), openAICred(f.AdminKey()))
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 6 {
		t.Errorf("keys = %d, want the 6 of the two projects that still exist", len(keys))
	}
	for _, k := range keys {
		if k.Project == "proj_gen_001" {
			t.Errorf("key %s of the vanished project listed", k.ID)
		}
	}
}
