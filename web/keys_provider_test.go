package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/provideradmin/providertest"
)

// TestKeyPageAtProviderAndRevoke: a key registered in keyledger and found
// at OpenAI shows its provider id, last use, status and a 30-day usage
// chart on its page; its owner revokes it at OpenAI from there (the fake
// sees the DELETE of that id); a refused attempt (429 with Retry-After)
// is shown in plain words and nothing is marked revoked.
func TestKeyPageAtProviderAndRevoke(t *testing.T) {
	t.Parallel()
	fakes := newProviderFakes(t)
	env := newEnv(t, fakes.option())
	ctx := context.Background()
	fakes.openai.AddProject(providertest.OpenAIProject{ID: "proj_checkout", Name: "checkout"})
	value := "sk-proj-" + authzRand(20) + "Kq7W"
	k := env.createKey("member", "development", "checkout bot", value)
	now := env.Store.Now()
	lastUsed := now.Add(-3 * 60 * 60 * 1e9)
	id := fakes.openai.AddKey(providertest.OpenAIKey{Project: "proj_checkout", Name: "checkout bot", RedactedValue: providertest.OpenAIRedact(value),
		LastUsedAt: lastUsed, OwnerType: "user", OwnerEmail: "member@example.com"})
	today := keyledger.UTCDay(now)
	fakes.openai.AddUsage(providertest.OpenAIUsage{KeyID: id, Project: "proj_checkout", Day: today, Requests: 420, InputTokens: 9000, OutputTokens: 1000})
	fakes.openai.AddUsage(providertest.OpenAIUsage{KeyID: id, Project: "proj_checkout", Day: today.AddDate(0, 0, -3), Requests: 210, InputTokens: 100, OutputTokens: 50})
	conn := fakes.connectOpenAI(t, env, "acme")
	if n, err := env.Store.SyncProviderUsage(ctx, fakes.client, conn.ID); err != nil || n != 2 {
		t.Fatalf("usage sync: %d, %v", n, err)
	}

	owner := env.client().login("member")
	resp, page := owner.get("/keys/" + k.ID)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("key page: %d", resp.StatusCode)
	}
	for _, want := range []string{`data-testid="at-provider"`, `<code data-testid="provider-key-id">` + id + `</code>`, `data-testid="usage-charts"`,
		`data-day="` + today.Format("2006-01-02") + `" data-value="420"`, "630 requests", `data-testid="provider-revoke"`, ">active<"} {
		if !strings.Contains(page, want) {
			t.Errorf("key page lacks %q", want)
		}
	}
	// Another member sees what the provider says, not the revoke form.
	_, other := env.client().login("member2").get("/keys/" + k.ID)
	if !strings.Contains(other, id) || strings.Contains(other, `data-testid="provider-revoke"`) {
		t.Error("a non-owner member: want the provider details without the revoke form")
	}

	// No reason: a field error, nothing called.
	fakes.openai.ResetRequests()
	resp, page = owner.post("/keys/"+k.ID+"/provider-revoke", url.Values{"reason": {"  "}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `data-testid="error-provider-reason"`) || !strings.Contains(page, `data-testid="error-summary"`) {
		t.Errorf("no reason: %d", resp.StatusCode)
	}
	// The provider limits us: plain words, Retry-After, nothing revoked.
	fakes.openai.FailNext(1, http.StatusTooManyRequests, "30")
	resp, page = owner.post("/keys/"+k.ID+"/provider-revoke", url.Values{"reason": {"leaked"}})
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "30" ||
		!strings.Contains(page, "OpenAI is limiting requests from keyledger") || !strings.Contains(page, "Nothing was revoked") {
		t.Errorf("429: status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if _, ok := fakes.openai.Key(id); !ok {
		t.Fatal("the key is gone at the fake after a refused revoke")
	}
	// Now it goes through.
	fakes.openai.ResetRequests()
	resp, _ = owner.post("/keys/"+k.ID+"/provider-revoke", url.Values{"reason": {"leaked in a CI log"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/keys/"+k.ID+"?provider_revoked=1" {
		t.Fatalf("revoke: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := fakes.openai.Count("DELETE", "/v1/organization/projects/proj_checkout/api_keys/"+id); n != 1 {
		t.Errorf("the fake saw %d DELETEs of %s", n, id)
	}
	_, page = owner.get("/keys/" + k.ID + "?provider_revoked=1")
	if !strings.Contains(page, "Revoked at the provider.") || !strings.Contains(page, `data-testid="provider-revoked"`) || strings.Contains(page, `data-testid="provider-revoke"`) {
		t.Error("after the revoke the page should say so and offer no second revoke")
	}
	// Again (a double submit): done, no second call.
	fakes.openai.ResetRequests()
	resp, _ = owner.post("/keys/"+k.ID+"/provider-revoke", url.Values{"reason": {"again"}})
	if resp.Header.Get("Location") != "/keys/"+k.ID+"?provider_revoked=already" || len(fakes.openai.Requests()) != 0 {
		t.Errorf("second revoke: %s, %d provider requests", resp.Header.Get("Location"), len(fakes.openai.Requests()))
	}
	for _, l := range []string{page, env.Logs.String()} {
		if strings.Contains(l, fakes.openai.AdminKey()) {
			t.Error("the admin key is on a page or in the log")
		}
	}
}

// TestOffboardingRevokeAtProvider: the departing person created a key in
// OpenAI's dashboard that keyledger never recorded; their checklist lists
// it, and a lead revokes it from there (reason, password: a key unknown
// to keyledger may be production), which resolves the item.
func TestOffboardingRevokeAtProvider(t *testing.T) {
	t.Parallel()
	fakes := newProviderFakes(t)
	env := newEnv(t, fakes.option())
	fakes.openai.AddProject(providertest.OpenAIProject{ID: "proj_checkout", Name: "checkout"})
	id := fakes.openai.AddKey(providertest.OpenAIKey{Project: "proj_checkout", Name: "made in the dashboard", RedactedValue: "sk-proj-Qq...Zt4k",
		OwnerType: "user", OwnerEmail: "member2@example.com"})
	fakes.connectOpenAI(t, env, "acme")
	oid, err := env.Store.StartOffboarding(context.Background(), actorOf(env, "lead"), "member2@example.com", false, "")
	if err != nil {
		t.Fatal(err)
	}
	o, err := env.Store.Offboarding(context.Background(), actorOf(env, "lead"), oid)
	if err != nil {
		t.Fatal(err)
	}
	var item keyledger.OffboardingItem
	for _, it := range o.Items {
		if it.Kind == keyledger.ItemProviderRevoke {
			item = it
		}
	}
	if item.ID == 0 {
		t.Fatalf("no provider item in %+v", o.Items)
	}
	lead := env.client().login("lead")
	path := "/offboarding/" + strconv.FormatInt(oid, 10)
	_, page := lead.get(path)
	if !strings.Contains(page, `data-testid="group-provider_revoke"`) || !strings.Contains(page, id) || !strings.Contains(page, `data-testid="item-provider-revoke-form"`) {
		t.Fatal("the checklist does not offer the provider item")
	}
	itemPath := path + "/items/" + strconv.FormatInt(item.ID, 10) + "/provider-revoke"
	resp, page := lead.post(itemPath, url.Values{"reason": {""}, "step_up": {Password}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, `data-testid="error-provider-reason"`) {
		t.Errorf("no reason: %d", resp.StatusCode)
	}
	fakes.openai.ResetRequests()
	resp, _ = lead.post(itemPath, url.Values{"reason": {"offboarding member2"}, "step_up": {Password}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if n := fakes.openai.Count("DELETE", "/v1/organization/projects/proj_checkout/api_keys/"+id); n != 1 {
		t.Errorf("the fake saw %d DELETEs of %s", n, id)
	}
	_, page = lead.get(path)
	if !strings.Contains(page, "revoked at the provider") {
		t.Error("the item does not show as revoked")
	}
}
