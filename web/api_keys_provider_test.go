package web_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/provideradmin/providertest"
	"github.com/keyledger/keyledger/web/wire"
)

// TestAPIKeyAtProvider: GET /api/v1/keys/{id} carries what the key page
// shows under "At OpenAI": the linked provider key (its id there, the
// connection, project, status, last use, creator) and its usage per UTC
// day, for anyone who may read the key; a key no provider lists has no
// at_provider at all. No admin key in any answer.
func TestAPIKeyAtProvider(t *testing.T) {
	t.Parallel()
	fakes := newProviderFakes(t)
	env := newEnv(t, fakes.option())
	a := newAPI(t, env)
	ctx := context.Background()
	fakes.openai.AddProject(providertest.OpenAIProject{ID: "proj_checkout", Name: "checkout"})
	value := "sk-proj-" + authzRand(20) + "Kq7W"
	a.secrets.add(value, fakes.openai.AdminKey())
	k := env.createKey("member", "development", "checkout bot", value)
	plain := env.createKey("member", "development", "stripe thing", "sk-test-"+authzRand(24))
	now := env.Store.Now()
	lastUsed := now.Add(-3 * time.Hour).Truncate(time.Second)
	id := fakes.openai.AddKey(providertest.OpenAIKey{Project: "proj_checkout", Name: "checkout bot", RedactedValue: providertest.OpenAIRedact(value),
		LastUsedAt: lastUsed, OwnerType: "user", OwnerEmail: "member@example.com"})
	today := keyledger.UTCDay(now)
	fakes.openai.AddUsage(providertest.OpenAIUsage{KeyID: id, Project: "proj_checkout", Day: today, Requests: 420, InputTokens: 9000, OutputTokens: 1000})
	fakes.openai.AddUsage(providertest.OpenAIUsage{KeyID: id, Project: "proj_checkout", Day: today.AddDate(0, 0, -3), Requests: 210, InputTokens: 100, OutputTokens: 50})
	conn := fakes.connectOpenAI(t, env, "acme")
	if n, err := env.Store.SyncProviderUsage(ctx, fakes.client, conn.ID); err != nil || n != 2 {
		t.Fatalf("usage sync: %d, %v", n, err)
	}

	// Another member with a read-only token: they may see the key, so
	// they see what the provider says about it, as on the page.
	r := a.get(a.token("member2", keyledger.ScopeRead), "/api/v1/keys/"+k.ID)
	a.want(r, http.StatusOK, "")
	var got wire.KeyDetail
	r.decode(t, &got)
	at := got.AtProvider
	if at == nil || at.Provider != "openai" || len(at.Keys) != 1 {
		t.Fatalf("at_provider: %+v\n%s", at, r.Body)
	}
	pk := at.Keys[0]
	if pk.ProviderKeyID != id || pk.Connection != "acme" || pk.ConnectionID != conn.ID || pk.ProjectID != "proj_checkout" || pk.ProjectName != "checkout" ||
		pk.Status != keyledger.ProviderKeyActive || pk.ID == 0 || pk.DeletedAt != nil || pk.RevokedAt != nil || pk.RevokedBy != nil {
		t.Errorf("linked key: %+v", pk)
	}
	if pk.CreatedBy != "member@example.com" {
		t.Errorf("created_by %q", pk.CreatedBy)
	}
	if pk.LastUsedAt == nil || !pk.LastUsedAt.Equal(lastUsed) {
		t.Errorf("last_used_at %v, want %v", pk.LastUsedAt, lastUsed)
	}
	wantUsage := []wire.UsageDay{
		{Day: today.AddDate(0, 0, -3).Format(time.DateOnly), Requests: 210, InputTokens: 100, OutputTokens: 50},
		{Day: today.Format(time.DateOnly), Requests: 420, InputTokens: 9000, OutputTokens: 1000},
	}
	if len(pk.Usage) != len(wantUsage) || pk.Usage[0] != wantUsage[0] || pk.Usage[1] != wantUsage[1] {
		t.Errorf("usage %+v, want %+v", pk.Usage, wantUsage)
	}
	// An OpenAI key: its rotation there, off, and why keyledger cannot
	// rotate this one (a person's key).
	if at.Rotation == nil || at.Rotation.Enabled || at.Rotation.KeyID != k.ID || !strings.Contains(at.Rotation.Refusal, "belongs to a person") {
		t.Errorf("rotation: %+v", at.Rotation)
	}

	// A key no provider lists: no at_provider, not even null.
	r = a.get(a.token("member", keyledger.ScopeRead), "/api/v1/keys/"+plain.ID)
	a.want(r, http.StatusOK, "")
	if bytes.Contains(r.Body, []byte(`"at_provider"`)) {
		t.Errorf("a key at no provider: %s", r.Body)
	}

	// Revoked at the provider: still listed, with who and when.
	owner := a.token("member")
	a.want(a.do(owner, "POST", "/api/v1/keys/"+k.ID+"/provider-revoke", map[string]any{"reason": "leaked"}), http.StatusOK, "")
	r = a.get(owner, "/api/v1/keys/"+k.ID)
	r.decode(t, &got)
	if got.AtProvider == nil || len(got.AtProvider.Keys) != 1 || got.AtProvider.Keys[0].RevokedAt == nil ||
		got.AtProvider.Keys[0].RevokedBy == nil || *got.AtProvider.Keys[0].RevokedBy != "member@example.com" {
		t.Errorf("after the revoke: %s", r.Body)
	}
	if strings.Contains(env.Logs.String(), fakes.openai.AdminKey()) {
		t.Error("the admin key is in the log")
	}
}

// TestAPIRotationAtOpenAI: a lead's token with the write scope turns
// automated rotation on and rotates now at OpenAI, through the same store
// calls as the page: a member or a read-only token is refused (403), a
// key keyledger cannot rotate there is a 409 with the reason, a 429 at
// OpenAI comes back as 429 with Retry-After and a refused admin key as a
// 503, in plain words, with the key as it was. Audited with the token.
func TestAPIRotationAtOpenAI(t *testing.T) {
	t.Parallel()
	fakes := newProviderFakes(t)
	env := newEnv(t, fakes.option())
	a := newAPI(t, env)
	fakes.openai.AddProject(providertest.OpenAIProject{ID: "proj_deploy", Name: "deploy"})
	value := "sk-svcacct-" + authzRand(30) + "Zq9W"
	personal := "sk-proj-" + authzRand(24) + "Pe7X"
	a.secrets.add(value, personal, fakes.openai.AdminKey())
	k := env.createKey("member", "development", "deploy bot", value)
	person := env.createKey("member", "development", "someone's key", personal)
	fakes.openai.AddKey(providertest.OpenAIKey{Project: "proj_deploy", Name: "deploy", RedactedValue: providertest.OpenAIRedact(value),
		OwnerType: "service_account", OwnerID: "svc_acct_old", OwnerName: "deploy-bot"})
	fakes.openai.AddKey(providertest.OpenAIKey{Project: "proj_deploy", Name: "mine", RedactedValue: providertest.OpenAIRedact(personal),
		OwnerType: "user", OwnerEmail: "member@example.com"})
	fakes.connectOpenAI(t, env, "acme")
	createPath := "/v1/organization/projects/proj_deploy/service_accounts"
	on := map[string]any{"enabled": true}

	// Who: leads and admins with the write scope, as on the page.
	member, leadRead, lead := a.token("member"), a.token("lead", keyledger.ScopeRead), a.token("lead")
	a.want(a.do(member, "POST", "/api/v1/keys/"+k.ID+"/auto-rotate", on), http.StatusForbidden, "forbidden")
	a.want(a.do(leadRead, "POST", "/api/v1/keys/"+k.ID+"/auto-rotate", on), http.StatusForbidden, "forbidden")
	a.want(a.do(member, "POST", "/api/v1/keys/"+k.ID+"/provider-rotate", map[string]any{}), http.StatusForbidden, "forbidden")
	a.want(a.do(leadRead, "POST", "/api/v1/keys/"+k.ID+"/provider-rotate", map[string]any{}), http.StatusForbidden, "forbidden")
	if n := fakes.openai.Count("POST", createPath); n != 0 {
		t.Fatalf("a refused request created %d service accounts", n)
	}

	// Say on or off.
	r := a.do(lead, "POST", "/api/v1/keys/"+k.ID+"/auto-rotate", map[string]any{})
	a.want(r, http.StatusUnprocessableEntity, "invalid")
	if r.field("enabled") == "" {
		t.Errorf("no enabled: %s", r.Body)
	}
	// A person's key at OpenAI: 409 with the reason, nothing recorded.
	r = a.do(lead, "POST", "/api/v1/keys/"+person.ID+"/auto-rotate", on)
	a.want(r, http.StatusConflict, "conflict")
	if !strings.Contains(r.errMessage(), "belongs to a person") {
		t.Errorf("person's key: %q", r.errMessage())
	}
	r = a.do(lead, "POST", "/api/v1/keys/"+person.ID+"/provider-rotate", map[string]any{})
	a.want(r, http.StatusConflict, "conflict")
	if !strings.Contains(r.errMessage(), "belongs to a person") {
		t.Errorf("person's key, rotate now: %q", r.errMessage())
	}
	r = a.do(lead, "POST", "/api/v1/keys/"+person.ID+"/auto-rotate", map[string]any{"enabled": false})
	a.want(r, http.StatusOK, "")
	var rot wire.RotationStatus
	r.decode(t, &rot)
	if rot.Enabled || !strings.Contains(rot.Refusal, "belongs to a person") {
		t.Errorf("off for a person's key, with the reason: %+v", rot)
	}
	if ev := a.events(person.ID, keyledger.ActionAutoRotateOn); len(ev) != 0 {
		t.Errorf("a refused auto-rotate was recorded: %+v", ev)
	}

	r = a.do(lead, "POST", "/api/v1/keys/"+k.ID+"/auto-rotate", on)
	a.want(r, http.StatusOK, "")
	r.decode(t, &rot)
	if !rot.Enabled || rot.KeyID != k.ID || rot.ChangedBy == nil || *rot.ChangedBy != "lead@example.com" || rot.ChangedAt == nil || rot.Refusal != "" {
		t.Errorf("turned on: %+v", rot)
	}
	if ev := a.events(k.ID, keyledger.ActionAutoRotateOn); len(ev) != 1 || viaToken(t, ev[0]) == 0 {
		t.Errorf("auto-rotate events: %+v", ev)
	}
	// The key's answer says so too.
	var detail wire.KeyDetail
	a.get(member, "/api/v1/keys/"+k.ID).decode(t, &detail)
	if detail.AtProvider == nil || detail.AtProvider.Rotation == nil || !detail.AtProvider.Rotation.Enabled {
		t.Errorf("the key's answer after turning it on: %+v", detail.AtProvider)
	}

	// OpenAI limits us: 429 with its wait, the key as it was.
	fakes.openai.FailPath(createPath, 1, http.StatusTooManyRequests, "30")
	r = a.do(lead, "POST", "/api/v1/keys/"+k.ID+"/provider-rotate", map[string]any{})
	a.want(r, http.StatusTooManyRequests, "too_many_requests")
	if r.Header.Get("Retry-After") != "30" || !strings.Contains(r.errMessage(), "Nothing was rotated") {
		t.Errorf("429: Retry-After %q, %q", r.Header.Get("Retry-After"), r.errMessage())
	}
	// OpenAI refuses the admin key: 503 in plain words.
	fakes.openai.FailPath(createPath, 1, http.StatusUnauthorized, "")
	r = a.do(lead, "POST", "/api/v1/keys/"+k.ID+"/provider-rotate", map[string]any{})
	a.want(r, http.StatusServiceUnavailable, "unavailable")
	if !strings.Contains(r.errMessage(), "refused the admin key") || !strings.Contains(r.errMessage(), "Nothing was rotated") {
		t.Errorf("503: %q", r.errMessage())
	}
	if after := authzGetKey(env, t, k.ID); after.CurrentVersion != 1 {
		t.Fatalf("a failed rotation left version %d", after.CurrentVersion)
	}

	r = a.do(lead, "POST", "/api/v1/keys/"+k.ID+"/provider-rotate", map[string]any{})
	a.want(r, http.StatusOK, "")
	var key wire.Key
	r.decode(t, &key)
	if key.ID != k.ID || key.CurrentVersion != 2 || !strings.HasPrefix(key.MaskedHint, "sk-svcacct-…") {
		t.Errorf("rotated: %+v", key)
	}
	if n := fakes.openai.Count("POST", createPath); n != 3 {
		t.Errorf("the fake saw %d service account creations", n)
	}
	if ev := a.events(k.ID, keyledger.ActionKeyRotate); len(ev) != 1 || viaToken(t, ev[0]) == 0 || !strings.Contains(ev[0].Details, `"at_provider": "openai"`) {
		t.Errorf("rotate events: %+v", ev)
	}

	r = a.do(lead, "POST", "/api/v1/keys/"+k.ID+"/auto-rotate", map[string]any{"enabled": false})
	a.want(r, http.StatusOK, "")
	r.decode(t, &rot)
	if rot.Enabled {
		t.Errorf("turned off: %+v", rot)
	}
	if ev := a.events(k.ID, keyledger.ActionAutoRotateOff); len(ev) != 1 || viaToken(t, ev[0]) == 0 {
		t.Errorf("auto-rotate off events: %+v", ev)
	}
	if strings.Contains(env.Logs.String(), fakes.openai.AdminKey()) || strings.Contains(env.Logs.String(), value) {
		t.Error("the admin key or a value is in the log")
	}
}
