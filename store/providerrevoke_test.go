package store_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/provideradmin"
	"github.com/keyledger/keyledger/provideradmin/providertest"
)

// revokeFixture is a store with an OpenAI and an Anthropic fake, one
// connection to each, and the real admin client pointed at them.
type revokeFixture struct {
	*lcFixture
	oa       *providertest.OpenAI
	an       *providertest.Anthropic
	pa       *provideradmin.Client
	oaConn   keyledger.ProviderConnection
	anConn   keyledger.ProviderConnection
	adminKey []string
}

func newRevokeFixture(t *testing.T) *revokeFixture {
	t.Helper()
	f := &revokeFixture{lcFixture: newLCFixture(t), oa: providertest.NewOpenAI(), an: providertest.NewAnthropic()}
	t.Cleanup(f.oa.Close)
	t.Cleanup(f.an.Close)
	f.oa.AddProject(providertest.OpenAIProject{ID: "proj_core", Name: "core"})
	// No retries: a 429 must come back to the person at once.
	f.pa = provideradmin.New(provideradmin.Config{OpenAIBaseURL: f.oa.URL(), AnthropicBaseURL: f.an.URL(), Timeout: 300 * time.Millisecond, MaxRetryWait: -1})
	ctx := context.Background()
	var err error
	f.oaConn, err = f.s.AddProviderConnection(ctx, as(f.admin), f.pa, keyledger.ProviderConnectionInput{Provider: "openai", Name: "acme openai", AdminKey: providertest.OpenAIAdminKey})
	if err != nil {
		t.Fatal(err)
	}
	f.anConn, err = f.s.AddProviderConnection(ctx, as(f.admin), f.pa, keyledger.ProviderConnectionInput{Provider: "anthropic", Name: "acme anthropic", AdminKey: providertest.AnthropicAdminKey})
	if err != nil {
		t.Fatal(err)
	}
	f.adminKey = []string{providertest.OpenAIAdminKey, providertest.AnthropicAdminKey}
	return f
}

// sync runs the inventory sync of both connections.
func (f *revokeFixture) sync(t *testing.T) {
	t.Helper()
	for _, c := range []string{f.oaConn.ID, f.anConn.ID} {
		if _, err := f.s.SyncProviderConnection(context.Background(), keyledger.SystemActor("test"), f.pa, c); err != nil {
			t.Fatal(err)
		}
	}
}

// openAIKey registers an OpenAI key in env owned by the fixture's owner
// and puts the same key at the fake, in proj_core; it returns both ids.
func (f *revokeFixture) openAIKey(t *testing.T, name, env string) (*keyledger.Key, string) {
	t.Helper()
	v := "sk-proj-" + secretValue(t, "")
	k := f.key(t, f.owner, keyledger.KeyInput{Name: name, Project: "core", Environment: env, OwnerEmail: f.owner.Email, Value: v})
	id := f.oa.AddKey(providertest.OpenAIKey{Project: "proj_core", Name: name, RedactedValue: providertest.OpenAIRedact(v),
		OwnerType: "user", OwnerID: "user_1", OwnerEmail: f.owner.Email})
	return k, id
}

// actorAt is u with a step-up proof given at at.
func actorAt(u *keyledger.User, at time.Time) keyledger.Actor {
	return keyledger.Actor{User: u, StepUpAt: at}
}

func (f *revokeFixture) auditActions(t *testing.T, keyID string) []string {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), "SELECT action FROM audit_events WHERE key_id = $1 AND action LIKE 'key.provider%' ORDER BY id", keyID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	return out
}

func TestRevokeAtProviderOpenAIDeletesTheRightKey(t *testing.T) {
	t.Parallel()
	f := newRevokeFixture(t)
	ctx := context.Background()
	k, id := f.openAIKey(t, "checkout", "development")
	_, otherID := f.openAIKey(t, "search", "development")
	f.sync(t)
	at, err := f.s.KeysAtProvider(ctx, as(f.owner), k)
	if err != nil || len(at) != 1 || at[0].ProviderKeyID != id || !at[0].Linked {
		t.Fatalf("key at provider = %+v, %v; want %s linked", at, err, id)
	}
	f.oa.ResetRequests()
	res, err := f.s.RevokeAtProvider(ctx, as(f.owner), f.pa, k.ID, 0, "leaked in a CI log")
	if err != nil {
		t.Fatal(err)
	}
	if res.Already || res.Key.RevokedAt == nil || res.Key.RevokedBy != f.owner.Email {
		t.Errorf("result = %+v", res)
	}
	if n := f.oa.Count("DELETE", "/v1/organization/projects/proj_core/api_keys/"+id); n != 1 {
		t.Errorf("the fake saw %d DELETEs of %s, want 1; requests: %+v", n, id, f.oa.Requests())
	}
	if _, ok := f.oa.Key(id); ok {
		t.Error("the key still exists at the fake")
	}
	if _, ok := f.oa.Key(otherID); !ok {
		t.Error("another key was deleted")
	}
	// Idempotent: asked again, nothing is called and it is done.
	f.oa.ResetRequests()
	res, err = f.s.RevokeAtProvider(ctx, as(f.owner), f.pa, k.ID, 0, "again")
	if err != nil || !res.Already {
		t.Errorf("second revoke: %+v, %v; want already done", res, err)
	}
	if n := len(f.oa.Requests()); n != 0 {
		t.Errorf("second revoke made %d requests", n)
	}
	if got := f.auditActions(t, k.ID); strings.Join(got, ",") != keyledger.ActionProviderRevoke {
		t.Errorf("audit = %v, want one %s", got, keyledger.ActionProviderRevoke)
	}
	var reason, details string
	if err := f.pool.QueryRow(ctx, "SELECT reason, details::text FROM audit_events WHERE key_id = $1 AND action = $2", k.ID, keyledger.ActionProviderRevoke).Scan(&reason, &details); err != nil {
		t.Fatal(err)
	}
	if reason != "leaked in a CI log" || !strings.Contains(details, id) || strings.Contains(details, providertest.OpenAIAdminKey) {
		t.Errorf("audit reason %q details %s", reason, details)
	}
	// The next sync finds it gone; still recorded as revoked by keyledger.
	f.sync(t)
	at, err = f.s.KeysAtProvider(ctx, as(f.owner), k)
	if err != nil || len(at) != 1 || at[0].DeletedAt == nil || at[0].RevokedAt == nil || at[0].Revocable() {
		t.Errorf("after sync: %+v, %v", at, err)
	}
}

func TestRevokeAtProviderAlreadyDeletedThereIsDone(t *testing.T) {
	t.Parallel()
	f := newRevokeFixture(t)
	ctx := context.Background()
	k, id := f.openAIKey(t, "checkout", "development")
	f.sync(t)
	// Someone deleted it in OpenAI's dashboard before the next sync.
	if _, ok := f.oa.Key(id); !ok {
		t.Fatal("no key")
	}
	f.oa.FailNext(0, 0, "")
	// Delete it at the fake with the admin API itself.
	if err := f.pa.Revoke(ctx, keyledger.ProviderCredential{Provider: keyledger.ProviderOpenAI, AdminKey: providertest.OpenAIAdminKey},
		keyledger.ProviderKeyRef{ID: id, Project: "proj_core"}); err != nil {
		t.Fatal(err)
	}
	res, err := f.s.RevokeAtProvider(ctx, as(f.owner), f.pa, k.ID, 0, "cleanup")
	if err != nil || res.Key.RevokedAt == nil {
		t.Fatalf("revoke of a key gone at the provider: %+v, %v; want done", res, err)
	}
}

func TestRevokeAtProviderAnthropicSetsInactive(t *testing.T) {
	t.Parallel()
	f := newRevokeFixture(t)
	ctx := context.Background()
	v := "sk-ant-api03-" + secretValue(t, "")
	k := f.key(t, f.owner, keyledger.KeyInput{Name: "claude", Project: "core", Environment: "development", OwnerEmail: f.owner.Email, Value: v, Provider: "anthropic"})
	id := f.an.AddKey(providertest.AnthropicKey{Name: "claude", PartialKeyHint: providertest.AnthropicHint(v), Status: "active", CreatedByID: "user_1"})
	f.sync(t)
	f.an.ResetRequests()
	res, err := f.s.RevokeAtProvider(ctx, as(f.owner), f.pa, k.ID, 0, "rotated away")
	if err != nil {
		t.Fatal(err)
	}
	var posted []providertest.Request
	for _, r := range f.an.Requests() {
		if r.Method == "POST" && r.Path == "/v1/organizations/api_keys/"+id {
			posted = append(posted, r)
		}
	}
	if len(posted) != 1 {
		t.Fatalf("the fake saw %d POSTs to %s, want 1: %+v", len(posted), id, f.an.Requests())
	}
	var body map[string]any
	if err := json.Unmarshal([]byte(posted[0].Body), &body); err != nil || body["status"] != "inactive" {
		t.Errorf("POST body %q, want status inactive", posted[0].Body)
	}
	if got, _ := f.an.Key(id); got.Status != "inactive" {
		t.Errorf("fake key status %q", got.Status)
	}
	if res.Key.Status != keyledger.ProviderKeyInactive || res.Key.Revocable() {
		t.Errorf("result %+v", res.Key)
	}
}

func TestRevokeAtProviderFailures(t *testing.T) {
	t.Parallel()
	f := newRevokeFixture(t)
	ctx := context.Background()
	k, id := f.openAIKey(t, "checkout", "development")
	f.sync(t)
	cases := []struct {
		name    string
		arrange func()
		code    string
		words   string
	}{
		{"bad admin key", func() { f.oa.FailNext(1, 401, "") }, keyledger.EUNAVAILABLE, "refused the admin key"},
		{"rate limited", func() { f.oa.FailNext(1, 429, "30") }, keyledger.ETOOMANY, "Try again in 30s"},
		{"timeout", func() { f.oa.SetDelay(2 * time.Second) }, keyledger.EUNAVAILABLE, "did not answer in time"},
	}
	for _, c := range cases {
		c.arrange()
		_, err := f.s.RevokeAtProvider(ctx, as(f.owner), f.pa, k.ID, 0, "test "+c.name)
		f.oa.SetDelay(0)
		if keyledger.ErrorCode(err) != c.code || !strings.Contains(keyledger.ErrorMessage(err), c.words) || !strings.Contains(keyledger.ErrorMessage(err), "Nothing was revoked") {
			t.Errorf("%s: err %v (code %s), want %s saying %q", c.name, err, keyledger.ErrorCode(err), c.code, c.words)
		}
		for _, ak := range f.adminKey {
			if strings.Contains(err.Error(), ak) {
				t.Errorf("%s: the error holds the admin key", c.name)
			}
		}
		if c.code == keyledger.ETOOMANY {
			var ke *keyledger.Error
			if !errorsAs(err, &ke) || ke.RetryAfter != 30*time.Second {
				t.Errorf("rate limit: RetryAfter not carried: %+v", err)
			}
		}
	}
	at, err := f.s.KeysAtProvider(ctx, as(f.owner), k)
	if err != nil || at[0].RevokedAt != nil {
		t.Errorf("after failures the key is marked revoked: %+v, %v", at, err)
	}
	if _, ok := f.oa.Key(id); !ok {
		t.Error("the key is gone at the fake")
	}
	want := strings.Repeat(keyledger.ActionProviderRevokeFailed+",", 3)
	if got := strings.Join(f.auditActions(t, k.ID), ",") + ","; got != want {
		t.Errorf("audit = %s, want three failed attempts", got)
	}
}

func TestRevokeAtProviderRules(t *testing.T) {
	t.Parallel()
	f := newRevokeFixture(t)
	ctx := context.Background()
	dev, _ := f.openAIKey(t, "dev key", "development")
	prod, _ := f.openAIKey(t, "prod key", "production")
	unlinked := f.key(t, f.owner, keyledger.KeyInput{Name: "nowhere", Project: "core", Environment: "development", OwnerEmail: f.owner.Email, Value: "sk-proj-" + secretValue(t, "")})
	f.sync(t)
	now := f.clock.Now()
	cases := []struct {
		name   string
		actor  keyledger.Actor
		key    *keyledger.Key
		reason string
		code   string
		field  string
	}{
		{"no reason", as(f.owner), dev, "  ", keyledger.EINVALID, "reason"},
		{"another member", as(f.other), dev, "why not", keyledger.EFORBIDDEN, ""},
		{"production without a fresh proof", actorAt(f.owner, now.Add(-time.Hour)), prod, "leak", keyledger.ESTEPUP, "step_up"},
		{"not linked", as(f.owner), unlinked, "leak", keyledger.ECONFLICT, ""},
	}
	f.oa.ResetRequests()
	for _, c := range cases {
		_, err := f.s.RevokeAtProvider(ctx, c.actor, f.pa, c.key.ID, 0, c.reason)
		if keyledger.ErrorCode(err) != c.code || (c.field != "" && keyledger.FieldErrors(err)[c.field] == "") {
			t.Errorf("%s: err %v, want %s on %q", c.name, err, c.code, c.field)
		}
	}
	if n := len(f.oa.Requests()); n != 0 {
		t.Errorf("refused revokes made %d provider requests", n)
	}
	// With a fresh proof, production goes.
	if _, err := f.s.RevokeAtProvider(ctx, actorAt(f.owner, now.Add(-time.Minute)), f.pa, prod.ID, 0, "leak"); err != nil {
		t.Errorf("production with a fresh proof: %v", err)
	}
}

func TestOffboardingRevokeAtProviderItem(t *testing.T) {
	t.Parallel()
	f := newRevokeFixture(t)
	ctx := context.Background()
	// The departing person created two keys at OpenAI: one registered,
	// one never recorded (a shadow key); another person's key stays out.
	reg, regID := f.openAIKey(t, "registered", "development")
	shadowID := f.oa.AddKey(providertest.OpenAIKey{Project: "proj_core", Name: "dashboard key", RedactedValue: "sk-proj-Zz...Q9Q9",
		OwnerType: "user", OwnerID: "user_1", OwnerEmail: strings.ToUpper(f.owner.Email)})
	f.oa.AddKey(providertest.OpenAIKey{Project: "proj_core", Name: "not theirs", RedactedValue: "sk-proj-Yy...R8R8",
		OwnerType: "user", OwnerID: "user_2", OwnerEmail: f.other.Email})
	f.sync(t)
	oid, err := f.s.StartOffboarding(ctx, as(f.lead), f.owner.Email, false, "")
	if err != nil {
		t.Fatal(err)
	}
	o, err := f.s.Offboarding(ctx, as(f.lead), oid)
	if err != nil {
		t.Fatal(err)
	}
	items := map[string]keyledger.OffboardingItem{}
	for _, it := range o.Items {
		if it.Kind == keyledger.ItemProviderRevoke {
			items[it.KeyName] = it
		}
	}
	if len(items) != 2 || items["registered"].KeyID != reg.ID || items["dashboard key"].KeyID != "" || items["dashboard key"].ProviderKeyRef == 0 {
		t.Fatalf("provider items = %+v, want the registered and the shadow key", items)
	}
	if !strings.Contains(items["dashboard key"].Why, shadowID) {
		t.Errorf("why = %q, want the provider id", items["dashboard key"].Why)
	}
	// A shadow key may be production: the lead needs a fresh proof.
	_, err = f.s.RevokeOffboardingItemAtProvider(ctx, keyledger.Actor{User: f.lead}, f.pa, oid, items["dashboard key"].ID, "offboarding")
	if keyledger.ErrorCode(err) != keyledger.ESTEPUP {
		t.Fatalf("without a proof: %v, want step-up", err)
	}
	lead := actorAt(f.lead, f.clock.Now())
	if _, err := f.s.RevokeOffboardingItemAtProvider(ctx, lead, f.pa, oid, items["dashboard key"].ID, ""); keyledger.FieldErrors(err)["reason"] == "" {
		t.Errorf("without a reason: %v", err)
	}
	if _, err := f.s.RevokeOffboardingItemAtProvider(ctx, lead, f.pa, oid, items["dashboard key"].ID, "offboarding"); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.oa.Key(shadowID); ok {
		t.Error("the shadow key still exists at the fake")
	}
	// The registered one is revoked from the key's own page; the item
	// follows.
	if _, err := f.s.RevokeAtProvider(ctx, lead, f.pa, reg.ID, 0, "offboarding"); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.oa.Key(regID); ok {
		t.Error("the registered key still exists at the fake")
	}
	o, err = f.s.Offboarding(ctx, as(f.lead), oid)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range o.Items {
		if it.Kind == keyledger.ItemProviderRevoke && (it.Status != keyledger.ItemDone || it.Resolution != "revoked at the provider") {
			t.Errorf("item %s: %s %q, want done", it.KeyName, it.Status, it.Resolution)
		}
	}
}
