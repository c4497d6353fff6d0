package web_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestSmokeRegisterRevealAudit(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := env.client().login("member")
	const value = "sk-proj-SMOKEtestVALUE0123456789abcdefXy9z"
	// Post/redirect/get: 303 to the new key's page, which says it worked.
	id, _, body := c.register(url.Values{"name": {"openai dev"}, "project": {"checkout"}, "environment": {"development"},
		"owner": {"member@example.com"}, "value": {value}})
	if strings.Contains(body, value) {
		t.Fatal("the key page after registering shows the value")
	}
	if !strings.Contains(body, "Registered.") || !strings.Contains(body, `data-testid="key-name">openai dev<`) {
		t.Fatalf("the key page after registering:\n%s", authzMain(body, ""))
	}
	keys, err := env.Store.ListKeys(t.Context(), actorOf(env, "member"), storeFilter())
	if err != nil || len(keys.Keys) != 1 || keys.Keys[0].ID != id {
		t.Fatalf("list: %v %d", err, len(keys.Keys))
	}
	resp, body := c.post("/keys/"+id+"/reveal", url.Values{"reason": {"smoke test"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reveal: status %d\n%s", resp.StatusCode, body)
	}
	if !strings.Contains(body, value) || !strings.Contains(body, "export OPENAI_API_KEY=&#39;"+value+"&#39;") {
		t.Fatalf("reveal page lacks the value or the export line:\n%s", body)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control = %q", cc)
	}
	lead := env.client().login("lead")
	_, body = lead.get("/audit?action=key.reveal")
	if !strings.Contains(body, "smoke test") || strings.Contains(body, value) {
		t.Fatalf("audit page: reveal missing or value shown:\n%s", body)
	}
	if strings.Contains(env.Logs.String(), value) {
		t.Fatal("the value appears in the server log")
	}

	// Production: another member may see the metadata but not the value.
	const prodValue = "sk-proj-SMOKEprodVALUE0123456789abcdefQ1w2"
	prod := env.createKey("member", "production", "openai prod", prodValue)
	other := env.client().login("member2")
	resp, body = other.get("/keys/" + prod.ID)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "only the key&#39;s owner, leads and admins") {
		t.Fatalf("production key page for a non-owner: %d\n%s", resp.StatusCode, body)
	}
	resp, body = other.post("/keys/"+prod.ID+"/reveal", url.Values{"reason": {"curious"}})
	if resp.StatusCode != http.StatusForbidden || strings.Contains(body, prodValue) {
		t.Fatalf("non-owner reveal of production: status %d", resp.StatusCode)
	}
}
