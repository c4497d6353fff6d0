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

// TestValueStoredExactly (issue 12, item 5): a key's value is stored as
// given, never trimmed. The form warns when the value has surrounding
// whitespace and stores nothing until the person ticks keep_whitespace;
// the JSON API takes the value as given. The value is not echoed into the
// page, as before.
func TestValueStoredExactly(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	a := newAPI(t, env)
	ctx := context.Background()
	member := keyledger.Actor{User: env.Users["member"]}
	stored := func(id string) string {
		t.Helper()
		rev, err := env.Store.Reveal(ctx, member, id, "")
		if err != nil {
			t.Fatal(err)
		}
		return rev.Value
	}
	c := env.client().login("member")
	form := func(name, value string, keep bool) url.Values {
		f := url.Values{"name": {name}, "project": {"checkout"}, "environment": {"development"}, "owner": {"member@example.com"}, "value": {value}}
		if keep {
			f.Set("keep_whitespace", "1")
		}
		return f
	}

	// The form: surrounding whitespace is a field error, nothing stored.
	padded := "  " + a.secret() + " \n"
	resp, page := c.post("/keys", form("padded key", padded, false))
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "starts or ends with whitespace") || !strings.Contains(page, `name="keep_whitespace"`) {
		t.Fatalf("POST /keys with a padded value: status %d, want 422 with the whitespace warning\n%s", resp.StatusCode, authzMain(page, ""))
	}
	formsNoValue(t, env, page, padded)
	if keys, err := env.Store.ListKeys(ctx, member, store.KeyFilter{Q: "padded key"}); err != nil || len(keys.Keys) != 0 {
		t.Fatalf("a refused registration stored %d keys (%v)", len(keys.Keys), err)
	}
	// Confirmed: stored exactly as pasted.
	resp, _ = c.post("/keys", form("padded key", padded, true))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("POST /keys with keep_whitespace: status %d, want 303", resp.StatusCode)
	}
	keys, err := env.Store.ListKeys(ctx, member, store.KeyFilter{Q: "padded key"})
	if err != nil || len(keys.Keys) != 1 {
		t.Fatalf("registered %d keys (%v)", len(keys.Keys), err)
	}
	k := keys.Keys[0]
	if got := stored(k.ID); got != padded {
		t.Errorf("stored %q, want %q as pasted", got, padded)
	}

	// Rotate through the form: the same warning, then exact.
	rotated := "\t" + a.secret()
	resp, page = lcRotate(c, k.ID, rotated, "7", "1")
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(page, "starts or ends with whitespace") {
		t.Fatalf("rotate with a padded value: status %d\n%s", resp.StatusCode, authzMain(page, ""))
	}
	formsNoValue(t, env, page, rotated)
	resp, _ = c.post("/keys/"+k.ID+"/rotate", url.Values{"value": {rotated}, "grace_days": {"7"}, "version": {"1"}, "keep_whitespace": {"1"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("rotate with keep_whitespace: status %d", resp.StatusCode)
	}
	if got := stored(k.ID); got != rotated {
		t.Errorf("rotated to %q, want %q", got, rotated)
	}

	// The JSON API takes the value as given.
	tok := a.token("member")
	apiValue := " " + a.secret() + "  "
	r := a.do(tok, http.MethodPost, "/api/v1/keys", map[string]any{"name": "api padded", "project": "checkout", "environment": "development", "owner": "member@example.com", "value": apiValue})
	var created struct {
		Key struct {
			ID string `json:"id"`
		} `json:"key"`
	}
	r.decode(t, &created)
	if r.Status != http.StatusCreated {
		t.Fatalf("POST /api/v1/keys: status %d\n%s", r.Status, r.Body)
	}
	if got := stored(created.Key.ID); got != apiValue {
		t.Errorf("API stored %q, want %q", got, apiValue)
	}
	apiRotated := a.secret() + "\n"
	if r := a.do(tok, http.MethodPost, "/api/v1/keys/"+created.Key.ID+"/rotate", map[string]any{"value": apiRotated}); r.Status != http.StatusOK {
		t.Fatalf("API rotate: status %d\n%s", r.Status, r.Body)
	}
	if got := stored(created.Key.ID); got != apiRotated {
		t.Errorf("API rotated to %q, want %q", got, apiRotated)
	}
}
