package web_test

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/provideradmin/providertest"
	"github.com/keyledger/keyledger/web/wire"
)

// TestAPIProviderConnections: an admin's token adds a connection (checked
// against the OpenAI fake, synced once), lists, syncs and removes it; a
// key the provider refuses (401) is a 422 that says why and stores
// nothing; a sync the provider refuses is a 503 with its words; leads and
// read-only tokens are refused; the admin key is in no answer and no log
// line, even when the provider repeats it in its error.
func TestAPIProviderConnections(t *testing.T) {
	t.Parallel()
	fakes := newProviderFakes(t)
	env := newEnv(t, fakes.option())
	a := newAPI(t, env)
	fakes.openai.Generate(2, 12)
	fakes.openai.EchoKeyInErrors(true)
	admin, lead, adminRead := a.token("admin"), a.token("lead"), a.token("admin", keyledger.ScopeRead)
	var answers []apiResp
	keep := func(r apiResp) apiResp { answers = append(answers, r); return r }
	count := func(q string, args ...any) int {
		var n int
		if err := env.Pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// A key the provider refuses: 422 on admin_key, with the provider's
	// 401, and nothing stored.
	wrong := "sk-admin-" + authzRand(24)
	r := keep(a.do(admin, "POST", "/api/v1/providers", map[string]any{"provider": "openai", "name": "Acme", "admin_key": wrong}))
	a.want(r, http.StatusUnprocessableEntity, "invalid")
	if f := r.field("admin_key"); !strings.Contains(f, "refused this admin key (HTTP 401)") {
		t.Errorf("admin_key field: %q", f)
	}
	if strings.Contains(string(r.Body), wrong) || strings.Contains(env.Logs.String(), wrong) {
		t.Error("the refused admin key is in the answer or the log")
	}
	if n := count(`SELECT count(*) FROM provider_connections`); n != 0 {
		t.Errorf("%d connections after a refused key", n)
	}
	if n := count(`SELECT count(*) FROM audit_events WHERE action = $1`, keyledger.ActionProviderCheckFail); n != 1 {
		t.Errorf("%d check_failed events", n)
	}

	// Only an admin's token with write.
	good := map[string]any{"provider": "openai", "name": "Acme", "admin_key": fakes.openai.AdminKey()}
	a.want(keep(a.do(lead, "POST", "/api/v1/providers", good)), http.StatusForbidden, "forbidden")
	a.want(keep(a.do(adminRead, "POST", "/api/v1/providers", good)), http.StatusForbidden, "forbidden")
	a.want(keep(a.get(lead, "/api/v1/providers")), http.StatusForbidden, "forbidden")
	if n := count(`SELECT count(*) FROM provider_connections`); n != 0 {
		t.Errorf("%d connections after refusals", n)
	}

	r = keep(a.do(admin, "POST", "/api/v1/providers", good))
	a.want(r, http.StatusCreated, "")
	var conn wire.ProviderConnection
	r.decode(t, &conn)
	if conn.Name != "Acme" || conn.Provider != "openai" || conn.LastSyncStatus == nil || *conn.LastSyncStatus != keyledger.SyncOK || conn.LastSyncKeys != 12 {
		t.Errorf("created: %+v", conn)
	}
	// The same name again is a conflict on name.
	r = keep(a.do(admin, "POST", "/api/v1/providers", good))
	a.want(r, http.StatusConflict, "conflict")
	if r.field("name") == "" {
		t.Errorf("duplicate name: %s", r.Body)
	}

	r = keep(a.get(adminRead, "/api/v1/providers"))
	a.want(r, http.StatusOK, "")
	var list wire.ProviderConnectionList
	r.decode(t, &list)
	if len(list.Connections) != 1 || list.Connections[0].ID != conn.ID {
		t.Errorf("list: %+v", list)
	}

	r = keep(a.do(admin, "POST", "/api/v1/providers/"+conn.ID+"/sync", nil))
	a.want(r, http.StatusOK, "")
	var sync wire.ProviderSync
	r.decode(t, &sync)
	if sync.Seen != 12 || sync.Unmatched != 12 || sync.Connection.ID != conn.ID {
		t.Errorf("sync: %+v", sync)
	}
	a.want(keep(a.do(lead, "POST", "/api/v1/providers/"+conn.ID+"/sync", nil)), http.StatusForbidden, "forbidden")

	// The provider refuses the (now revoked) admin key: 503 in its words,
	// recorded on the connection, the keys as they were.
	fakes.openai.FailNext(1, http.StatusUnauthorized, "")
	r = keep(a.do(admin, "POST", "/api/v1/providers/"+conn.ID+"/sync", nil))
	a.want(r, http.StatusServiceUnavailable, "unavailable")
	if !strings.Contains(r.errMessage(), "unauthorized") || !strings.Contains(r.errMessage(), "401") {
		t.Errorf("failed sync message: %q", r.errMessage())
	}
	r = keep(a.get(admin, "/api/v1/providers"))
	r.decode(t, &list)
	if st := list.Connections[0].LastSyncStatus; st == nil || *st != keyledger.SyncFailed || list.Connections[0].LastSyncError == "" {
		t.Errorf("after a failed sync: %+v", list.Connections[0])
	}
	// 429 with Retry-After when the provider rate-limits.
	fakes.openai.FailNext(1, http.StatusTooManyRequests, "120")
	r = keep(a.do(admin, "POST", "/api/v1/providers/"+conn.ID+"/sync", nil))
	a.want(r, http.StatusTooManyRequests, "too_many_requests")
	if r.Header.Get("Retry-After") != "120" {
		t.Errorf("Retry-After %q", r.Header.Get("Retry-After"))
	}

	a.want(keep(a.do(lead, "POST", "/api/v1/providers/"+conn.ID+"/remove", nil)), http.StatusForbidden, "forbidden")
	r = keep(a.do(admin, "POST", "/api/v1/providers/"+conn.ID+"/remove", nil))
	a.want(r, http.StatusNoContent, "")
	a.want(keep(a.do(admin, "POST", "/api/v1/providers/"+conn.ID+"/remove", nil)), http.StatusNotFound, "not_found")
	a.want(keep(a.do(admin, "POST", "/api/v1/providers/"+conn.ID+"/sync", nil)), http.StatusNotFound, "not_found")
	if n := count(`SELECT count(*) FROM provider_connections WHERE removed_at IS NOT NULL AND admin_key_ciphertext IS NULL`); n != 1 {
		t.Errorf("%d removed connections with the key erased", n)
	}

	// Every action names the token it came with.
	if n := count(`SELECT count(*) FROM audit_events WHERE action = ANY($1) AND details ? 'via_token'`,
		[]string{keyledger.ActionProviderConnect, keyledger.ActionProviderSync, keyledger.ActionProviderDisconnect}); n != 4 {
		// connect, the first sync, the sync asked for, disconnect
		t.Errorf("%d provider events name their token, want 4", n)
	}
	for _, r := range answers {
		if strings.Contains(string(r.Body), fakes.openai.AdminKey()) || strings.Contains(string(r.Body), wrong) {
			t.Errorf("an admin key is in an answer: %s", r.Body)
		}
	}
	if strings.Contains(env.Logs.String(), fakes.openai.AdminKey()) {
		t.Error("the admin key is in the log")
	}
}

// TestAPIProviderRevoke: the owner's token revokes a development key at
// OpenAI (the fake deletes it), a repeat is "already"; the reason is
// required; a production key is refused with a 403 that says a token
// cannot give the fresh password it needs, and nothing is called.
func TestAPIProviderRevoke(t *testing.T) {
	t.Parallel()
	fakes := newProviderFakes(t)
	env := newEnv(t, fakes.option())
	a := newAPI(t, env)
	fakes.openai.AddProject(providertest.OpenAIProject{ID: "proj_checkout", Name: "checkout"})
	// Distinct last fours, so each provider key matches one key.
	devValue, prodValue := "sk-proj-"+authzRand(20)+"Dv01", "sk-proj-"+authzRand(20)+"Pr02"
	a.secrets.add(devValue, prodValue)
	dev := env.createKey("member", "development", "dev bot", devValue)
	prod := env.createKey("member", "production", "prod bot", prodValue)
	devID := fakes.openai.AddKey(providertest.OpenAIKey{Project: "proj_checkout", Name: "dev bot", RedactedValue: providertest.OpenAIRedact(devValue)})
	prodID := fakes.openai.AddKey(providertest.OpenAIKey{Project: "proj_checkout", Name: "prod bot", RedactedValue: providertest.OpenAIRedact(prodValue)})
	fakes.connectOpenAI(t, env, "acme")
	owner, other, readOnly := a.token("member"), a.token("member2"), a.token("member", keyledger.ScopeRead)

	a.want(a.do(readOnly, "POST", "/api/v1/keys/"+dev.ID+"/provider-revoke", map[string]any{"reason": "leaked"}), http.StatusForbidden, "forbidden")
	a.want(a.do(other, "POST", "/api/v1/keys/"+dev.ID+"/provider-revoke", map[string]any{"reason": "leaked"}), http.StatusForbidden, "forbidden")
	r := a.do(owner, "POST", "/api/v1/keys/"+dev.ID+"/provider-revoke", map[string]any{"reason": " "})
	a.want(r, http.StatusUnprocessableEntity, "invalid")
	if r.field("reason") == "" {
		t.Errorf("no reason: %s", r.Body)
	}
	a.want(a.do(owner, "POST", "/api/v1/keys/"+dev.ID+"/provider-revoke", map[string]any{"reason": "x", "provider_key": 0}), http.StatusUnprocessableEntity, "invalid")
	if _, ok := fakes.openai.Key(devID); !ok {
		t.Fatal("a refused request deleted the key at OpenAI")
	}

	r = a.do(owner, "POST", "/api/v1/keys/"+dev.ID+"/provider-revoke", map[string]any{"reason": "leaked in a CI log"})
	a.want(r, http.StatusOK, "")
	var got wire.ProviderRevoked
	r.decode(t, &got)
	if got.Already || got.ProviderKeyID != devID || got.KeyID != dev.ID || got.RevokedAt == nil || got.Connection != "acme" {
		t.Errorf("revoked: %+v", got)
	}
	if _, ok := fakes.openai.Key(devID); ok {
		t.Error("OpenAI still has the key")
	}
	if ev := a.events(dev.ID, keyledger.ActionProviderRevoke); len(ev) != 1 || viaToken(t, ev[0]) == 0 {
		t.Errorf("revoke events: %+v", ev)
	}
	r = a.do(owner, "POST", "/api/v1/keys/"+dev.ID+"/provider-revoke", map[string]any{"reason": "again"})
	a.want(r, http.StatusOK, "")
	r.decode(t, &got)
	if !got.Already {
		t.Errorf("repeat: %+v", got)
	}

	// Production: a token cannot step up.
	r = a.do(owner, "POST", "/api/v1/keys/"+prod.ID+"/provider-revoke", map[string]any{"reason": "leaked"})
	a.want(r, http.StatusForbidden, "forbidden")
	if !strings.Contains(r.errMessage(), "access token cannot give") {
		t.Errorf("production refusal: %q", r.errMessage())
	}
	if _, ok := fakes.openai.Key(prodID); !ok {
		t.Error("the production key was deleted at OpenAI")
	}
	if ev := a.events(prod.ID, keyledger.ActionProviderRevoke); len(ev) != 0 {
		t.Errorf("production revoke events: %d", len(ev))
	}
	if strings.Contains(env.Logs.String(), fakes.openai.AdminKey()) {
		t.Error("the admin key is in the log")
	}
}

// TestAPIInventoryLinkAndPages: an admin's token links an ambiguous
// provider key to one of its candidates; a sync keeps the link; unlink
// hands it back to matching; leads may not. The inventory pages with
// limit and cursor, every key once, counts on every page.
func TestAPIInventoryLinkAndPages(t *testing.T) {
	t.Parallel()
	fakes := newProviderFakes(t)
	env := newEnv(t, fakes.option())
	a := newAPI(t, env)
	fakes.openai.Generate(3, 250)
	// Two registered keys whose hint fits generated key 7: ambiguous.
	env.createKey("member", "development", "twin a", "sk-proj-Ab"+strings.Repeat("x", 30)+"0007")
	twinB := env.createKey("member", "staging", "twin b", "sk-proj-Ab"+strings.Repeat("y", 30)+"0007")
	a.secrets.add("sk-proj-Ab"+strings.Repeat("x", 30)+"0007", "sk-proj-Ab"+strings.Repeat("y", 30)+"0007")
	conn := fakes.connectOpenAI(t, env, "acme")
	admin, lead := a.token("admin"), a.token("lead")

	// Pages.
	seen := map[int64]bool{}
	var ambiguous *wire.InventoryItem
	path, pages := "/api/v1/inventory?limit=100", 0
	for {
		r := a.get(lead, path)
		a.want(r, http.StatusOK, "")
		var inv wire.Inventory
		r.decode(t, &inv)
		pages++
		if inv.Counts.NotInKeyledger != 249 || inv.Counts.Ambiguous != 1 {
			t.Errorf("page %d counts: %+v", pages, inv.Counts)
		}
		for i, it := range inv.Items {
			if seen[it.ID] {
				t.Errorf("provider key %d on two pages", it.ID)
			}
			seen[it.ID] = true
			if it.Match == keyledger.MatchAmbiguous {
				ambiguous = &inv.Items[i]
			}
		}
		if inv.NextCursor == nil {
			break
		}
		if len(inv.Items) != 100 {
			t.Errorf("page %d has %d items and a next page", pages, len(inv.Items))
		}
		path = "/api/v1/inventory?limit=100&cursor=" + *inv.NextCursor
	}
	if pages != 3 || len(seen) != 250 {
		t.Errorf("%d pages, %d keys", pages, len(seen))
	}
	r := a.get(lead, "/api/v1/inventory?cursor=bogus")
	a.want(r, http.StatusUnprocessableEntity, "invalid")
	a.want(a.get(lead, "/api/v1/inventory?limit=501"), http.StatusUnprocessableEntity, "invalid")
	// The default page is 100.
	var inv wire.Inventory
	a.get(lead, "/api/v1/inventory").decode(t, &inv)
	if len(inv.Items) != 100 || inv.NextCursor == nil {
		t.Errorf("default page: %d items", len(inv.Items))
	}

	if ambiguous == nil || len(ambiguous.Candidates) != 2 {
		t.Fatalf("ambiguous item: %+v", ambiguous)
	}
	linkPath := "/api/v1/inventory/" + strconv.FormatInt(ambiguous.ID, 10)
	a.want(a.do(lead, "POST", linkPath+"/link", map[string]any{"key_id": twinB.ID}), http.StatusForbidden, "forbidden")
	r = a.do(admin, "POST", linkPath+"/link", map[string]any{"key_id": "nope"})
	a.want(r, http.StatusUnprocessableEntity, "invalid")
	if r.field("key_id") == "" {
		t.Errorf("bad key_id: %s", r.Body)
	}
	a.want(a.do(admin, "POST", "/api/v1/inventory/999999/link", map[string]any{"key_id": twinB.ID}), http.StatusNotFound, "not_found")
	a.want(a.do(admin, "POST", "/api/v1/inventory/x/link", map[string]any{"key_id": twinB.ID}), http.StatusNotFound, "not_found")

	r = a.do(admin, "POST", linkPath+"/link", map[string]any{"key_id": twinB.ID})
	a.want(r, http.StatusOK, "")
	var it wire.InventoryItem
	r.decode(t, &it)
	if it.KeyID == nil || *it.KeyID != twinB.ID || !it.LinkedManually || it.Match != keyledger.MatchMatched {
		t.Errorf("linked: %+v", it)
	}
	if ev := a.events(twinB.ID, keyledger.ActionProviderLink); len(ev) != 1 || viaToken(t, ev[0]) == 0 {
		t.Errorf("link events: %+v", ev)
	}
	r = a.do(admin, "POST", "/api/v1/providers/"+conn.ID+"/sync", nil)
	a.want(r, http.StatusOK, "")
	var sync wire.ProviderSync
	r.decode(t, &sync)
	if sync.Ambiguous != 0 || sync.Matched != 1 {
		t.Errorf("sync after linking: %+v", sync)
	}
	a.get(lead, "/api/v1/inventory?state=registered").decode(t, &inv)
	if len(inv.Items) != 1 || inv.Items[0].KeyID == nil || *inv.Items[0].KeyID != twinB.ID || !inv.Items[0].LinkedManually {
		t.Errorf("after a sync: %+v", inv.Items)
	}

	a.want(a.do(lead, "POST", linkPath+"/unlink", nil), http.StatusForbidden, "forbidden")
	r = a.do(admin, "POST", linkPath+"/unlink", nil)
	a.want(r, http.StatusOK, "")
	r.decode(t, &it)
	if it.KeyID != nil || it.LinkedManually || it.Match != keyledger.MatchAmbiguous {
		t.Errorf("unlinked: %+v", it)
	}
	a.want(a.do(admin, "POST", linkPath+"/unlink", nil), http.StatusConflict, "conflict")
}
