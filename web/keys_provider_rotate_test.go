package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyledger/keyledger/provideradmin/providertest"
)

// TestKeyPageRotationAtOpenAI: a key whose value is an OpenAI service
// account's key shows "Rotation at OpenAI" on its page. A lead turns
// automated rotation on and presses "Rotate now at OpenAI"; a refusal
// (429) comes back in plain words with Retry-After and the key as it
// was; then the fake sees the POST of a new service account and the key
// is at version 2, whose value is the one OpenAI made. Members see the
// state without the buttons. No value or admin key is on a page or in
// the log.
func TestKeyPageRotationAtOpenAI(t *testing.T) {
	t.Parallel()
	fakes := newProviderFakes(t)
	env := newEnv(t, fakes.option())
	fakes.openai.AddProject(providertest.OpenAIProject{ID: "proj_deploy", Name: "deploy"})
	value := "sk-svcacct-" + authzRand(30) + "Zq9W"
	k := env.createKey("member", "development", "deploy bot", value)
	oldID := fakes.openai.AddKey(providertest.OpenAIKey{Project: "proj_deploy", Name: "deploy", RedactedValue: providertest.OpenAIRedact(value),
		OwnerType: "service_account", OwnerID: "svc_acct_old", OwnerName: "deploy-bot"})
	fakes.connectOpenAI(t, env, "acme")

	owner := env.client().login("member")
	_, page := owner.get("/keys/" + k.ID)
	if !strings.Contains(page, `data-testid="provider-rotation"`) || !strings.Contains(page, "Automated rotation at OpenAI is off") {
		t.Fatal("the owner's key page lacks the rotation part")
	}
	if strings.Contains(page, `data-testid="provider-rotate"`) || strings.Contains(page, `data-testid="auto-rotate-on"`) {
		t.Error("a member sees the rotation buttons")
	}
	resp, _ := owner.post("/keys/"+k.ID+"/auto-rotate", url.Values{"enabled": {"on"}})
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("a member turned it on: %d", resp.StatusCode)
	}

	lead := env.client().login("lead")
	_, page = lead.get("/keys/" + k.ID)
	if !strings.Contains(page, `data-testid="auto-rotate-on"`) || !strings.Contains(page, `data-testid="provider-rotate"`) {
		t.Fatal("the lead's key page lacks the rotation buttons")
	}
	resp, _ = lead.post("/keys/"+k.ID+"/auto-rotate", url.Values{"enabled": {"on"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/keys/"+k.ID+"?auto_rotate=on" {
		t.Fatalf("turn on: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, page = lead.get("/keys/" + k.ID + "?auto_rotate=on")
	if !strings.Contains(page, "Automated rotation is on") || !strings.Contains(page, "lead@example.com") || !strings.Contains(page, `data-testid="auto-rotate-off"`) {
		t.Error("the page does not say rotation is on, and by whom")
	}

	createPath := "/v1/organization/projects/proj_deploy/service_accounts"
	fakes.openai.FailPath(createPath, 1, http.StatusTooManyRequests, "30")
	resp, page = lead.post("/keys/"+k.ID+"/provider-rotate", nil)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "30" ||
		!strings.Contains(page, "OpenAI is limiting requests from keyledger") || !strings.Contains(page, "Nothing was rotated") {
		t.Errorf("429: status %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// The failure stays on the page for everyone who looks.
	_, page = owner.get("/keys/" + k.ID)
	if !strings.Contains(page, `data-testid="provider-rotation-error"`) || !strings.Contains(page, "Nothing was rotated") {
		t.Error("the owner's page does not show the last failure")
	}

	resp, _ = lead.post("/keys/"+k.ID+"/provider-rotate", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/keys/"+k.ID+"?provider_rotated=2" {
		t.Fatalf("rotate now: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if n := fakes.openai.Count("POST", createPath); n != 2 {
		t.Errorf("the fake saw %d service account creations", n)
	}
	after := authzGetKey(env, t, k.ID)
	if after.CurrentVersion != 2 || !strings.HasPrefix(after.MaskedHint, "sk-svcacct-…") {
		t.Errorf("after rotation: version %d, hint %s", after.CurrentVersion, after.MaskedHint)
	}
	_, page = lead.get("/keys/" + k.ID + "?provider_rotated=2")
	if !strings.Contains(page, "Rotated at the provider") || strings.Contains(page, `data-testid="provider-rotation-error"`) {
		t.Error("after the rotation the page should say so, without the old failure")
	}
	if !strings.Contains(page, oldID) {
		t.Error("the old key at OpenAI is not shown as the older version")
	}
	for _, l := range []string{page, env.Logs.String()} {
		if strings.Contains(l, value) || strings.Contains(l, fakes.openai.AdminKey()) {
			t.Error("a value or the admin key is on a page or in the log")
		}
	}
}
