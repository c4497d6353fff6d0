package web_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web/wire"
)

// TestAPIReveal: the environment's policy and reason rule, the
// token-reveal switch of sensitive environments, versions, and the audit.
func TestAPIReveal(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	a := newAPI(t, env)
	ctx := context.Background()
	dev, devValue := a.key("member", "development", "dev openai")
	stg, stgValue := a.key("member", "staging", "staging openai")
	prod, prodValue := a.key("member", "production", "prod openai")
	owner, ownerTokID := a.tokenWithID("member")
	other := a.token("member2")
	lead := a.token("lead")

	reveal := func(tok, id string, body any) apiResp {
		t.Helper()
		return a.do(tok, http.MethodPost, "/api/v1/keys/"+id+"/reveal", body)
	}
	check := func(r apiResp, k *keyledger.Key, value string, version int) {
		t.Helper()
		a.want(r, http.StatusOK, "")
		var got wire.Revealed
		r.decode(t, &got)
		if got.KeyID != k.ID || got.Name != k.Name || got.Environment != k.Environment || got.Value != value || got.Version != version || got.EnvVar != "OPENAI_API_KEY" {
			t.Errorf("reveal %+v, want %s v%d", got, k.Name, version)
		}
		if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
			t.Errorf("Cache-Control %q", cc)
		}
	}

	// Development: anyone, no reason needed, no body needed.
	check(reveal(other, dev.ID, nil), dev, devValue, 1)
	check(reveal(owner, dev.ID, map[string]any{}), dev, devValue, 1)

	// Staging asks for a reason.
	r := reveal(other, stg.ID, map[string]any{"reason": "  "})
	a.want(r, http.StatusUnprocessableEntity, "invalid")
	if r.field("reason") == "" {
		t.Errorf("no message for reason: %s", r.Body)
	}
	check(reveal(other, stg.ID, map[string]any{"reason": "debugging checkout"}), stg, stgValue, 1)

	// Production: the policy refuses non-owners whatever the switch ...
	r = reveal(other, prod.ID, map[string]any{"reason": "curious"})
	a.want(r, http.StatusForbidden, "forbidden")
	if !strings.Contains(r.errMessage(), "only the key's owner, leads and admins") {
		t.Errorf("policy refusal says %q", r.errMessage())
	}
	// ... and, while token reveals are off there, everyone else too.
	for _, tok := range []string{owner, lead, a.token("admin")} {
		r = reveal(tok, prod.ID, map[string]any{"reason": "deploy"})
		a.want(r, http.StatusForbidden, "forbidden")
		if !strings.Contains(r.errMessage(), "access token") {
			t.Errorf("token refusal says %q", r.errMessage())
		}
	}
	if n := authzRevealCount(env, t, prod.ID); n != 0 {
		t.Fatalf("%d production reveals while refused", n)
	}
	// An admin allows token reveals in production.
	if _, err := env.Pool.Exec(ctx, "UPDATE environments SET allow_token_reveal = true WHERE name = 'production'"); err != nil {
		t.Fatal(err)
	}
	envs := a.get(owner, "/api/v1/environments")
	if !strings.Contains(string(envs.Body), `"name":"production","reveal_policy":"owner_leads_admins","reason_required":true,"sensitive":true,"rotation_days":90,"allow_token_reveal":true`) {
		t.Errorf("environments after the switch: %s", envs.Body)
	}
	a.want(reveal(owner, prod.ID, map[string]any{}), http.StatusUnprocessableEntity, "invalid") // still needs a reason
	check(reveal(owner, prod.ID, map[string]any{"reason": "deploy"}), prod, prodValue, 1)
	check(reveal(lead, prod.ID, map[string]any{"reason": "incident"}), prod, prodValue, 1)
	a.want(reveal(other, prod.ID, map[string]any{"reason": "curious"}), http.StatusForbidden, "forbidden")

	// Versions: a superseded one in its grace period, by number.
	v2 := a.secret()
	if _, err := env.Store.RotateKey(ctx, keyledger.Actor{User: env.Users["member"]}, dev.ID, keyledger.RotateInput{Value: v2}); err != nil {
		t.Fatal(err)
	}
	check(reveal(other, dev.ID, nil), dev, v2, 2)
	check(reveal(other, dev.ID, map[string]any{"version": 1}), dev, devValue, 1)
	check(reveal(other, dev.ID, map[string]any{"version": 2}), dev, v2, 2)
	a.want(reveal(other, dev.ID, map[string]any{"version": 3}), http.StatusNotFound, "not_found")
	r = reveal(other, dev.ID, map[string]any{"version": 0})
	a.want(r, http.StatusUnprocessableEntity, "invalid")
	if r.field("version") == "" {
		t.Errorf("version 0: no message for version: %s", r.Body)
	}
	a.want(reveal(other, dev.ID, map[string]any{"version": "1"}), http.StatusBadRequest, "invalid")
	a.want(reveal(other, dev.ID, map[string]any{"why": "x"}), http.StatusBadRequest, "invalid")

	// Unknown and archived keys.
	a.want(reveal(owner, "6f1c2b7e-8a4d-4c3b-9e2f-1a2b3c4d5e6f", nil), http.StatusNotFound, "not_found")
	a.want(reveal(owner, "nope", nil), http.StatusNotFound, "not_found")
	if err := env.Store.ArchiveKey(ctx, keyledger.Actor{User: env.Users["member"]}, stg.ID); err != nil {
		t.Fatal(err)
	}
	a.want(reveal(owner, stg.ID, map[string]any{"reason": "x"}), http.StatusConflict, "conflict")

	// Every reveal was audited with the token that did it.
	ev := a.events(prod.ID, keyledger.ActionKeyReveal)
	if len(ev) != 2 {
		t.Fatalf("%d production reveal events, want 2", len(ev))
	}
	if viaToken(t, ev[1]) != ownerTokID || ev[1].Reason != "deploy" || ev[1].ActorEmail != "member@example.com" {
		t.Errorf("owner's reveal event %+v", ev[1])
	}
	if viaToken(t, ev[0]) == 0 || viaToken(t, ev[0]) == ownerTokID || ev[0].ActorEmail != "lead@example.com" {
		t.Errorf("lead's reveal event %+v", ev[0])
	}
}

// TestAPIExport: what `keyledger env` and `keyledger run` read: the file
// in content, the variables, what policy left out; audited per key.
func TestAPIExport(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	a := newAPI(t, env)
	ctx := context.Background()
	k1, v1 := a.key("member", "development", "checkout openai")
	res, err := env.Store.CreateKey(ctx, keyledger.Actor{User: env.Users["member2"]}, keyledger.KeyInput{Name: "Search", Project: "search",
		Environment: "development", OwnerEmail: "member2@example.com", Value: "sk-ant-api03-" + authzRand(16)})
	if err != nil {
		t.Fatal(err)
	}
	k2 := res.Key
	rev, _ := env.Store.Reveal(ctx, keyledger.Actor{User: env.Users["member2"]}, k2.ID, "")
	v2 := rev.Value
	a.secrets.add(v2)
	prod, prodValue := a.key("member", "production", "prod openai")
	tok, tokID := a.tokenWithID("member")
	export := func(tok string, body any) apiResp {
		t.Helper()
		return a.do(tok, http.MethodPost, "/api/v1/export", body)
	}

	// Default format json: content is a JSON object of names to values.
	r := export(tok, map[string]any{"environment": "development"})
	a.want(r, http.StatusOK, "")
	if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	var got wire.Export
	r.decode(t, &got)
	var content map[string]string
	if err := json.Unmarshal([]byte(got.Content), &content); err != nil {
		t.Fatalf("json content %q: %v", got.Content, err)
	}
	if got.Environment != "development" || got.Format != "json" || len(content) != 2 || content["OPENAI_API_KEY"] != v1 || content["ANTHROPIC_API_KEY"] != v2 ||
		len(got.Variables) != 2 || len(got.LeftOut) != 0 {
		t.Errorf("export %+v", got)
	}
	for _, v := range got.Variables {
		if (v.KeyID == k1.ID && (v.Name != "OPENAI_API_KEY" || v.KeyName != k1.Name || v.Project != "checkout")) ||
			(v.KeyID == k2.ID && (v.Name != "ANTHROPIC_API_KEY" || v.KeyName != "Search" || v.Project != "search")) {
			t.Errorf("variable %+v", v)
		}
	}
	for _, k := range []*keyledger.Key{k1, k2} {
		ev := a.events(k.ID, keyledger.ActionKeyExport)
		if len(ev) != 1 || viaToken(t, ev[0]) != tokID {
			t.Errorf("export events of %s: %+v", k.Name, ev)
		}
	}

	// Other formats, one project.
	for format, line := range map[string]string{
		"dotenv":     "OPENAI_API_KEY='" + v1 + "'",
		"bash":       "export OPENAI_API_KEY=",
		"fish":       "set -gx OPENAI_API_KEY ",
		"powershell": "$env:OPENAI_API_KEY = ",
		"json":       `"OPENAI_API_KEY": "` + v1 + `"`,
	} {
		r := export(tok, map[string]any{"environment": "development", "project": "checkout", "format": format})
		a.want(r, http.StatusOK, "")
		var got wire.Export
		r.decode(t, &got)
		if got.Format != format || !strings.Contains(got.Content, line) || !strings.Contains(got.Content, v1) || strings.Contains(got.Content, v2) || len(got.Variables) != 1 {
			t.Errorf("format %s: %+v", format, got)
		}
	}

	// Validation.
	for _, tc := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{}, "environment"},
		{map[string]any{"environment": "nope"}, "environment"},
		{map[string]any{"environment": "development", "format": "xml"}, "format"},
		{map[string]any{"environment": "staging"}, "reason"},
	} {
		r := export(tok, tc.body)
		a.want(r, http.StatusUnprocessableEntity, "invalid")
		if r.field(tc.field) == "" {
			t.Errorf("%v: no message for %s: %s", tc.body, tc.field, r.Body)
		}
	}
	a.want(export(tok, map[string]any{"environment": "development", "reason": 5}), http.StatusBadRequest, "invalid")

	// Production with a token: refused until an admin allows it; then
	// each person gets what the policy lets them reveal.
	r = export(tok, map[string]any{"environment": "production", "reason": "deploy"})
	a.want(r, http.StatusForbidden, "forbidden")
	if _, err := env.Pool.Exec(ctx, "UPDATE environments SET allow_token_reveal = true WHERE name = 'production'"); err != nil {
		t.Fatal(err)
	}
	r = export(tok, map[string]any{"environment": "production", "reason": "deploy", "format": "dotenv"})
	a.want(r, http.StatusOK, "")
	r.decode(t, &got)
	if !strings.Contains(got.Content, "OPENAI_API_KEY='"+prodValue+"'") || len(got.Variables) != 1 || len(got.LeftOut) != 0 {
		t.Errorf("owner's production export %+v", got)
	}
	r = export(a.token("member2"), map[string]any{"environment": "production", "reason": "deploy"})
	a.want(r, http.StatusOK, "")
	var refused wire.Export
	r.decode(t, &refused)
	if refused.Content != "{}\n" || len(refused.Variables) != 0 || len(refused.LeftOut) != 1 || refused.LeftOut[0].KeyID != prod.ID ||
		refused.LeftOut[0].Name != prod.Name || !strings.Contains(refused.LeftOut[0].Reason, "only the key's owner") {
		t.Errorf("member2's production export %+v", refused)
	}
	if strings.Contains(string(r.Body), prodValue) {
		t.Error("a left-out key's value is in the export")
	}
}

// TestAPIEnvironments lists the seeded environments and their policies.
func TestAPIEnvironments(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	a := newAPI(t, env)
	r := a.get(a.token("member2", "read"), "/api/v1/environments")
	a.want(r, http.StatusOK, "")
	want := `{"environments":[` +
		`{"name":"development","reveal_policy":"any_user","reason_required":false,"sensitive":false,"rotation_days":180,"allow_token_reveal":false},` +
		`{"name":"staging","reveal_policy":"any_user","reason_required":true,"sensitive":false,"rotation_days":90,"allow_token_reveal":false},` +
		`{"name":"production","reveal_policy":"owner_leads_admins","reason_required":true,"sensitive":true,"rotation_days":90,"allow_token_reveal":false}]}`
	if got := strings.TrimSpace(string(r.Body)); got != want {
		t.Errorf("environments\n got: %s\nwant: %s", got, want)
	}
}
