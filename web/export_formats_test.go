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

// exportEvents counts key.export audit events of one key.
func exportEvents(t *testing.T, env *testEnv, keyID string) int {
	t.Helper()
	ev, err := env.Store.ListAudit(context.Background(), keyledger.Actor{User: env.Users["admin"]},
		store.AuditFilter{KeyID: keyID, Action: keyledger.ActionKeyExport, Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	return len(ev.Events)
}

// TestExportLeavesOutWhatTheFormatCannotCarry (issue 12, item 4): one value
// the chosen format cannot carry no longer refuses the whole export. The
// rest is downloaded; the key is listed with its reason in the file, the
// page and the API, and it is not audited as exported, because it was not
// handed out.
func TestExportLeavesOutWhatTheFormatCannotCarry(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	api := newAPI(t, env)
	goodValue := api.secret()
	// .env has no quoting that godotenv, compose-go and npm dotenv agree on
	// for ' together with " and $.
	badValue := "it's-" + authzRand(12) + `-"quoted"-$HOME`
	api.secrets.add(badValue)
	good := env.createKey("member", "development", "plain key", goodValue)
	bad := env.createKey("member", "development", "quoted key", badValue)
	const reason = "cannot be written as a .env line: contains ' together with"

	// The page says before the download which formats cannot carry it.
	c := env.client().login("member")
	resp, page := c.get("/export?environment=development")
	if resp.StatusCode != http.StatusOK || !strings.Contains(page, "not in .env: contains &#39; together with") {
		t.Errorf("GET /export: status %d; the preview does not say .env leaves the quoted key out\n%s", resp.StatusCode, authzMain(page, ""))
	}
	resp, file := c.post("/export", url.Values{"environment": {"development"}, "format": {"dotenv"}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(file, goodValue) || strings.Contains(file, badValue) {
		t.Fatalf("POST /export dotenv: status %d, want the plain key only\n%s", resp.StatusCode, strings.ReplaceAll(authzMain(file, ""), goodValue, "<value>"))
	}
	if !strings.Contains(file, "# left out: quoted key (checkout): "+reason) {
		t.Errorf("the file does not say what was left out:\n%s", strings.ReplaceAll(file, goodValue, "<value>"))
	}

	r := api.do(api.token("member"), http.MethodPost, "/api/v1/export", map[string]any{"environment": "development", "format": "dotenv"})
	var out struct {
		Content   string `json:"content"`
		Variables []struct {
			KeyID string `json:"key_id"`
		} `json:"variables"`
		LeftOut []struct {
			KeyID  string `json:"key_id"`
			Name   string `json:"name"`
			Reason string `json:"reason"`
		} `json:"left_out"`
	}
	r.decode(t, &out)
	if r.Status != http.StatusOK || len(out.Variables) != 1 || out.Variables[0].KeyID != good.ID {
		t.Fatalf("API export: status %d, variables %+v\n%s", r.Status, out.Variables, r.Body)
	}
	if len(out.LeftOut) != 1 || out.LeftOut[0].KeyID != bad.ID || out.LeftOut[0].Name != "quoted key" || !strings.Contains(out.LeftOut[0].Reason, reason) {
		t.Errorf("API left_out = %+v", out.LeftOut)
	}
	if strings.Contains(string(r.Body), "quoted\\\"") || strings.Contains(out.Content, "$HOME") {
		t.Error("the API answer holds the value that was left out")
	}

	// docker's env-file carries it: KEY=value, literally.
	r = api.do(api.token("member"), http.MethodPost, "/api/v1/export", map[string]any{"environment": "development", "format": "env-file"})
	out.Variables, out.LeftOut = nil, nil
	r.decode(t, &out)
	if r.Status != http.StatusOK || len(out.Variables) != 2 || len(out.LeftOut) != 0 {
		t.Fatalf("API env-file export: status %d, variables %+v, left out %+v", r.Status, out.Variables, out.LeftOut)
	}
	if !strings.Contains(out.Content, "="+badValue+"\n") || !strings.Contains(out.Content, "OPENAI_API_KEY="+goodValue+"\n") {
		t.Errorf("env-file content does not carry the values literally")
	}

	// Audited: the plain key three times, the quoted one only where it
	// was handed out (env-file).
	if n := exportEvents(t, env, good.ID); n != 3 {
		t.Errorf("%d export events for the plain key, want 3", n)
	}
	if n := exportEvents(t, env, bad.ID); n != 1 {
		t.Errorf("%d export events for the quoted key, want 1 (env-file only)", n)
	}
}
