package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// TestDuplicateValueOracle: a member who registers (form or API) or
// rotates to a production key's value gets a 409 that does not name that
// key; the attempts are audited on it.
func TestDuplicateValueOracle(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	api := newAPI(t, env)
	secret := authzSecret()
	api.secrets.add(secret)
	prod := env.createKey("admin", "production", "admin-prod-openai", secret)
	mine := env.createKey("member", "development", "member-dev", authzSecret())
	hides := func(what string, status int, body string) {
		t.Helper()
		if status != http.StatusConflict {
			t.Errorf("%s: status %d, want 409", what, status)
		}
		if strings.Contains(body, "admin-prod-openai") || strings.Contains(body, prod.ID) {
			t.Errorf("%s: the answer names the key holding the value", what)
		}
		if !strings.Contains(body, "already stored in keyledger") {
			t.Errorf("%s: the answer does not say the value is stored", what)
		}
	}
	c := env.client().login("member")
	c.get("/keys/new")
	resp, body := c.post("/keys", url.Values{"name": {"copy"}, "project": {"checkout"}, "environment": {"development"},
		"owner": {"member@example.com"}, "value": {secret}})
	hides("POST /keys", resp.StatusCode, authzMain(body, ""))
	c.get("/keys/" + mine.ID + "/rotate")
	resp, body = c.post("/keys/"+mine.ID+"/rotate", url.Values{"value": {secret}, "version": {"1"}})
	hides("POST /keys/:id/rotate", resp.StatusCode, authzMain(body, ""))

	tok := api.token("member")
	r := api.do(tok, http.MethodPost, "/api/v1/keys", map[string]any{"name": "copy", "project": "checkout", "environment": "development",
		"owner": "member@example.com", "value": secret})
	hides("POST /api/v1/keys", r.Status, string(r.Body))
	r = api.do(tok, http.MethodPost, "/api/v1/keys/"+mine.ID+"/rotate", map[string]any{"value": secret})
	hides("POST /api/v1/keys/:id/rotate", r.Status, string(r.Body))

	page, err := env.Store.ListAudit(context.Background(), keyledger.Actor{User: env.Users["admin"]},
		store.AuditFilter{KeyID: prod.ID, Action: keyledger.ActionKeyDuplicateValue, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Events) != 4 {
		t.Errorf("%d duplicate-value events on the production key, want 4", len(page.Events))
	}
}
