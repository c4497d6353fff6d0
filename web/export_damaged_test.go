package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/web/wire"
)

const damagedReason = "could not be decrypted: the stored value is damaged"

// corrupt flips one bit of a key's current ciphertext, in Postgres
// directly, as a damaged disk or a bad restore would.
func corrupt(t *testing.T, env *testEnv, keyID string) {
	t.Helper()
	tag, err := env.Pool.Exec(context.Background(), `UPDATE key_versions SET ciphertext = set_byte(ciphertext, 0, get_byte(ciphertext, 0) # 1)
		WHERE key_id = $1 AND superseded_at IS NULL`, keyID)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("corrupt %s: %v (%d rows)", keyID, err, tag.RowsAffected())
	}
}

// TestExportWithADamagedEnvelope: one key whose stored value no longer
// decrypts is left out of the export with its reason, the rest is
// exported, in the page, the download and the API; the key is audited and
// logged at ERROR (its id, never a value).
func TestExportWithADamagedEnvelope(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	api := newAPI(t, env)
	goodValue, badValue := authzSecret(), authzSecret()
	api.secrets.add(goodValue, badValue)
	good := env.createKey("member", "development", "good key", goodValue)
	bad := env.createKey("member", "development", "damaged key", badValue)
	corrupt(t, env, bad.ID)

	// The page: the preview says what will be left out, and why.
	c := env.client().login("member")
	resp, page := c.get("/export?environment=development")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "damaged key") || !strings.Contains(page, damagedReason) {
		t.Errorf("GET /export: status %d; the page does not list the damaged key with its reason\n%s", resp.StatusCode, authzMain(page, ""))
	}
	// The download: the rest, and a comment naming what was left out.
	resp, file := c.post("/export", url.Values{"environment": {"development"}, "format": {"dotenv"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(file, goodValue) || strings.Contains(file, badValue) {
		t.Fatalf("POST /export: status %d, want the good key only\n%s", resp.StatusCode, authzMain(file, ""))
	}
	if !strings.Contains(file, "# left out: damaged key (checkout): "+damagedReason) {
		t.Errorf("the file does not say what was left out:\n%s", strings.ReplaceAll(file, goodValue, "<value>"))
	}
	// The API, which `keyledger env` and `keyledger run` read.
	r := api.do(api.token("member"), http.MethodPost, "/api/v1/export", map[string]any{"environment": "development", "format": "json"})
	var out wire.Export
	r.decode(t, &out)
	if r.Status != http.StatusOK || len(out.Variables) != 1 || out.Variables[0].KeyID != good.ID || !strings.Contains(out.Content, goodValue) {
		t.Fatalf("API export: status %d, variables %+v", r.Status, out.Variables)
	}
	if len(out.LeftOut) != 1 || out.LeftOut[0].KeyID != bad.ID || out.LeftOut[0].Name != "damaged key" || !strings.Contains(out.LeftOut[0].Reason, damagedReason) {
		t.Errorf("API left_out = %+v", out.LeftOut)
	}

	// Audited (twice: the download and the API) and logged at ERROR.
	ev, err := env.Store.ListAudit(context.Background(), keyledger.Actor{User: env.Users["admin"]},
		store.AuditFilter{KeyID: bad.ID, Action: keyledger.ActionKeyValueDamaged, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Events) != 2 {
		t.Errorf("%d %s events, want 2", len(ev.Events), keyledger.ActionKeyValueDamaged)
	}
	logs := env.Logs.String()
	if !strings.Contains(logs, "level=ERROR") || !strings.Contains(logs, "key_id="+bad.ID) {
		t.Error("the damaged key is not logged at ERROR with its id")
	}
}
