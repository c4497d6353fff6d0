package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/provideradmin"
	"github.com/keyledger/keyledger/provideradmin/providertest"
	"github.com/keyledger/keyledger/store"
)

// rotFixture is a store connected to the OpenAI fake through the real
// client, with one registered key whose value is a service account's key
// in project proj_1, synced and linked.
type rotFixture struct {
	*provFixture
	fake   *providertest.OpenAI
	pa     keyledger.ProviderAdmin
	conn   keyledger.ProviderConnection
	key    *keyledger.Key
	oldID  string // the service account key's id at the fake
	oldVal string
}

const rotProject = "proj_1"

func newRotFixture(t *testing.T) *rotFixture {
	t.Helper()
	f := &rotFixture{provFixture: newProvFixture(t), fake: providertest.NewOpenAI()}
	t.Cleanup(f.fake.Close)
	f.pa = provideradmin.New(provideradmin.Config{OpenAIBaseURL: f.fake.URL(), HTTPClient: f.fake.Client()})
	f.fake.AddProject(providertest.OpenAIProject{ID: rotProject, Name: "Billing"})
	f.oldVal = secretValue(t, "sk-svcacct-")
	f.oldID = f.fake.AddKey(providertest.OpenAIKey{Project: rotProject, Name: "deploy", RedactedValue: providertest.OpenAIRedact(f.oldVal),
		OwnerType: "service_account", OwnerID: "svc_acct_old", OwnerName: "deploy-bot"})
	f.key = f.provFixture.key(t, f.lead, devKey("deploy", f.member.Email, f.oldVal))
	var err error
	f.conn, err = f.s.AddProviderConnection(t.Context(), as(f.admin), f.pa,
		keyledger.ProviderConnectionInput{Provider: "openai", Name: "acme", AdminKey: f.fake.AdminKey()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.SyncProviderConnection(t.Context(), as(f.admin), f.pa, f.conn.ID); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *rotFixture) atProvider(t testing.TB) []keyledger.KeyAtProvider {
	t.Helper()
	k, err := f.s.GetKey(context.Background(), as(f.lead), f.key.ID)
	if err != nil {
		t.Fatal(err)
	}
	at, err := f.s.KeysAtProvider(context.Background(), as(f.lead), k)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

func (f *rotFixture) current(t testing.TB) int {
	t.Helper()
	return f.count(t, `SELECT current_version FROM keys WHERE id = $1`, f.key.ID)
}

func (f *rotFixture) rotation(t testing.TB) keyledger.ProviderRotation {
	t.Helper()
	r, err := f.s.ProviderRotation(context.Background(), as(f.member), f.key)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestAutomatedRotationAtOpenAI: a lead turns automated rotation on for a
// service account's key; when the key is due, the job creates a new
// service account key at OpenAI, stores its value as the new version
// (key.rotate, the default grace period), links it, and after the grace
// period deletes the old key there, once. Failures leave the key as it
// was, in plain words on its page and in the audit log.
func TestAutomatedRotationAtOpenAI(t *testing.T) {
	t.Parallel()
	f := newRotFixture(t)
	ctx := t.Context()
	at := f.atProvider(t)
	if len(at) != 1 || !at[0].Linked || at[0].OwnerType != keyledger.OwnerServiceAccount || at[0].ProviderKeyID != f.oldID {
		t.Fatalf("before: the key at OpenAI = %+v (the sync should link the service account key)", at)
	}

	// Members may not turn it on; leads may, once.
	wantCode(t, f.s.SetAutoRotate(ctx, as(f.member), f.key.ID, true), keyledger.EFORBIDDEN)
	if err := f.s.SetAutoRotate(ctx, as(f.lead), f.key.ID, true); err != nil {
		t.Fatal(err)
	}
	if err := f.s.SetAutoRotate(ctx, as(f.lead), f.key.ID, true); err != nil {
		t.Fatal(err)
	}
	if n := f.actionCount(t, keyledger.ActionAutoRotateOn, f.key.ID); n != 1 {
		t.Errorf("%d auto_rotate_on events, want 1", n)
	}
	if r := f.rotation(t); !r.Enabled || r.ChangedBy != f.lead.Email {
		t.Errorf("rotation = %+v", r)
	}

	// Not due yet: nothing to rotate.
	ids, err := f.s.KeysToRotateAtProvider(ctx, 10)
	if err != nil || len(ids) != 0 {
		t.Fatalf("due before rotate-by: %v, %v", ids, err)
	}
	f.clock.Advance(181 * 24 * time.Hour) // development rotates every 180 days
	ids, err = f.s.KeysToRotateAtProvider(ctx, 10)
	if err != nil || len(ids) != 1 || ids[0] != f.key.ID {
		t.Fatalf("due after rotate-by: %v, %v", ids, err)
	}

	// 429: nothing rotated, recorded, audited, retried only an hour later.
	createPath := "/v1/organization/projects/" + rotProject + "/service_accounts"
	f.fake.FailPath(createPath, 1, 429, "30")
	_, err = f.s.AutoRotateKey(ctx, f.pa, f.key.ID)
	wantCode(t, err, keyledger.ETOOMANY)
	if f.current(t) != 1 {
		t.Errorf("a refused rotation changed the version to %d", f.current(t))
	}
	if r := f.rotation(t); !strings.Contains(r.LastError, "OpenAI is limiting requests") || !strings.Contains(r.LastError, "Nothing was rotated") {
		t.Errorf("after 429 the page says %q", r.LastError)
	}
	if ids, _ := f.s.KeysToRotateAtProvider(ctx, 10); len(ids) != 0 {
		t.Errorf("retried at once after a failure: %v", ids)
	}
	// 401: the admin key was revoked at OpenAI.
	f.fake.SetAdminKey("sk-admin-replaced-" + strings.Repeat("x", 20))
	_, err = f.s.AutoRotateKey(ctx, f.pa, f.key.ID)
	wantCode(t, err, keyledger.EUNAVAILABLE)
	if r := f.rotation(t); !strings.Contains(r.LastError, "refused the admin key") {
		t.Errorf("after 401 the page says %q", r.LastError)
	}
	f.fake.SetAdminKey(providertest.OpenAIAdminKey)
	// A timeout.
	_, err = f.s.AutoRotateKey(ctx, timeoutAdmin{f.pa}, f.key.ID)
	wantCode(t, err, keyledger.EUNAVAILABLE)
	if r := f.rotation(t); !strings.Contains(r.LastError, "did not answer in time") {
		t.Errorf("after a timeout the page says %q", r.LastError)
	}
	if n := f.actionCount(t, keyledger.ActionProviderRotateFailed, f.key.ID); n != 3 {
		t.Errorf("%d provider_rotate_failed events, want 3", n)
	}
	if f.current(t) != 1 || f.fake.Count("POST", createPath) != 2 {
		t.Errorf("after failures: version %d, %d creations asked", f.current(t), f.fake.Count("POST", createPath))
	}

	// An hour later it works.
	f.clock.Advance(ProviderRotateRetryForTest + time.Minute)
	ids, _ = f.s.KeysToRotateAtProvider(ctx, 10)
	if len(ids) != 1 {
		t.Fatalf("not retried after an hour: %v", ids)
	}
	k, err := f.s.AutoRotateKey(ctx, f.pa, f.key.ID)
	if err != nil {
		t.Fatal(err)
	}
	if k.CurrentVersion != 2 || !k.RotateBy.After(f.clock.Now()) {
		t.Errorf("after rotation: version %d, rotate by %s", k.CurrentVersion, k.RotateBy)
	}
	if f.fake.Count("POST", createPath) != 3 {
		t.Errorf("%d service accounts asked for", f.fake.Count("POST", createPath))
	}
	var newID string
	for _, r := range f.fake.Requests() {
		if r.Method == "POST" && r.Path == createPath && !strings.Contains(r.Body, "keyledger deploy v2") {
			t.Errorf("service account body %s does not name the key", r.Body)
		}
	}
	revealed := f.revealValue(t, f.lead, f.key.ID)
	if !strings.HasPrefix(revealed.Value, "sk-svcacct-") || revealed.Version != 2 {
		t.Fatalf("new version: %d %q…", revealed.Version, revealed.Value[:11])
	}
	at = f.atProvider(t)
	if len(at) != 2 || !at[0].Linked || at[0].Version != 2 || at[1].ProviderKeyID != f.oldID || at[1].Linked || at[1].Version != 1 {
		t.Fatalf("after rotation, at OpenAI: %+v", at)
	}
	newID = at[0].ProviderKeyID
	if got, ok := f.fake.Key(newID); !ok || got.RedactedValue != providertest.OpenAIRedact(revealed.Value) {
		t.Errorf("the stored value is not the one OpenAI made for %s", newID)
	}
	rotates := f.events(t, keyledger.ActionKeyRotate, f.key.ID)
	if len(rotates) != 1 || rotates[0].Details["automated"] != true || rotates[0].Details["provider_key_id"] != newID ||
		rotates[0].Details["grace_days"] != float64(keyledger.DefaultGraceDays) {
		t.Errorf("rotate events = %+v", rotates)
	}
	if r := f.rotation(t); r.LastError != "" || r.LastRotatedAt == nil {
		t.Errorf("after success the page says %+v", r)
	}
	// The value is nowhere but in its envelope.
	for _, q := range []string{`SELECT count(*) FROM audit_events WHERE details::text LIKE '%' || $1 || '%' OR reason LIKE '%' || $1 || '%'`,
		`SELECT count(*) FROM provider_keys WHERE hint LIKE '%' || $1 || '%' OR name LIKE '%' || $1 || '%'`,
		`SELECT count(*) FROM key_provider_rotations WHERE last_error LIKE '%' || $1 || '%'`} {
		if n := f.count(t, q, revealed.Value[11:]); n != 0 {
			t.Errorf("%s: the value is stored in %d rows", q, n)
		}
	}
	// A sync finds the new key at OpenAI and keeps it linked.
	if _, err := f.s.SyncProviderConnection(ctx, as(f.admin), f.pa, f.conn.ID); err != nil {
		t.Fatal(err)
	}
	if at = f.atProvider(t); len(at) != 2 || at[0].ProviderKeyID != newID || !at[0].Linked {
		t.Fatalf("after a sync, at OpenAI: %+v", at)
	}

	// During the grace period the old key stays at OpenAI.
	oldPath := "/v1/organization/projects/" + rotProject + "/api_keys/" + f.oldID
	if n, err := f.s.RevokeRotatedAway(ctx, f.pa); err != nil || n != 0 || f.fake.Count("DELETE", oldPath) != 0 {
		t.Fatalf("revoked during the grace period: %d, %v", n, err)
	}
	// After it, the old key is deleted there once, audited.
	f.clock.Advance(time.Duration(keyledger.DefaultGraceDays)*24*time.Hour + time.Minute)
	f.fake.FailPath(oldPath, 1, 429, "5")
	if n, err := f.s.RevokeRotatedAway(ctx, f.pa); err != nil || n != 0 {
		t.Fatalf("revoke refused by a 429: %d, %v", n, err)
	}
	if r := f.rotation(t); !strings.Contains(r.LastError, "was not revoked after the grace period") {
		t.Errorf("after a refused revoke the page says %q", r.LastError)
	}
	if n, err := f.s.RevokeRotatedAway(ctx, f.pa); err != nil || n != 1 {
		t.Fatalf("revoke after the grace period: %d, %v", n, err)
	}
	if n, err := f.s.RevokeRotatedAway(ctx, f.pa); err != nil || n != 0 {
		t.Fatalf("revoked twice: %d, %v", n, err)
	}
	if f.fake.Count("DELETE", oldPath) != 2 { // the refused one and the one that worked
		t.Errorf("%d DELETEs of the old key", f.fake.Count("DELETE", oldPath))
	}
	if _, still := f.fake.Key(f.oldID); still {
		t.Error("the old key still exists at OpenAI")
	}
	if _, still := f.fake.Key(newID); !still {
		t.Error("the new key was deleted at OpenAI")
	}
	revokes := f.events(t, keyledger.ActionProviderRevoke, f.key.ID)
	if len(revokes) != 1 || revokes[0].Details["provider_key_id"] != f.oldID {
		t.Errorf("revoke events = %+v", revokes)
	}
	if n := f.actionCount(t, keyledger.ActionProviderRevokeFailed, f.key.ID); n != 1 {
		t.Errorf("%d failed revoke events", n)
	}
	if r := f.rotation(t); r.LastError != "" {
		t.Errorf("after the revoke the page still says %q", r.LastError)
	}

	// Turned off, nothing is due any more.
	if err := f.s.SetAutoRotate(ctx, as(f.admin), f.key.ID, false); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(200 * 24 * time.Hour)
	if ids, _ := f.s.KeysToRotateAtProvider(ctx, 10); len(ids) != 0 {
		t.Errorf("due while off: %v", ids)
	}
	_, err = f.s.AutoRotateKey(ctx, f.pa, f.key.ID)
	wantCode(t, err, keyledger.ECONFLICT)
}

// TestRotateNowAtOpenAI: "Rotate now at OpenAI" is for leads and admins,
// for service accounts' keys only; a rollback within the grace period
// keeps the old key alive at OpenAI.
func TestRotateNowAtOpenAI(t *testing.T) {
	t.Parallel()
	f := newRotFixture(t)
	ctx := t.Context()
	_, err := f.s.RotateAtProvider(ctx, as(f.member), f.pa, f.key.ID)
	wantCode(t, err, keyledger.EFORBIDDEN)

	// A person's key cannot be replaced through the API.
	personal := secretValue(t, "sk-proj-")
	f.fake.AddKey(providertest.OpenAIKey{Project: rotProject, RedactedValue: providertest.OpenAIRedact(personal), OwnerType: "user", OwnerEmail: "member@example.com"})
	pk := f.provFixture.key(t, f.lead, devKey("personal", f.member.Email, personal))
	if _, err := f.s.SyncProviderConnection(ctx, as(f.admin), f.pa, f.conn.ID); err != nil {
		t.Fatal(err)
	}
	e := wantCodeError(t, f.s.SetAutoRotate(ctx, as(f.lead), pk.ID, true), keyledger.ECONFLICT)
	if !strings.Contains(e.Message, "belongs to a person") {
		t.Errorf("refusal says %q", e.Message)
	}
	_, err = f.s.RotateAtProvider(ctx, as(f.lead), f.pa, pk.ID)
	wantCode(t, err, keyledger.ECONFLICT)

	k, err := f.s.RotateAtProvider(ctx, as(f.admin), f.pa, f.key.ID)
	if err != nil {
		t.Fatal(err)
	}
	if k.CurrentVersion != 2 {
		t.Fatalf("version %d", k.CurrentVersion)
	}
	rotates := f.events(t, keyledger.ActionKeyRotate, f.key.ID)
	if len(rotates) != 1 || rotates[0].Details["automated"] != false {
		t.Errorf("rotate events = %+v", rotates)
	}
	// Rolled back: the old key is current again and is never revoked.
	if _, err := f.s.RollbackKey(ctx, as(f.lead), f.key.ID, 1, 7); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(30 * 24 * time.Hour)
	if n, err := f.s.RevokeRotatedAway(ctx, f.pa); err != nil || n != 0 {
		t.Fatalf("revoked a rolled-back key's provider key: %d, %v", n, err)
	}
	if f.fake.Count("DELETE", "/v1/organization/projects/"+rotProject+"/api_keys/"+f.oldID) != 0 {
		t.Error("the old key was deleted at OpenAI after a rollback")
	}
}

// timeoutAdmin is a ProviderAdmin whose service-account call times out.
type timeoutAdmin struct{ keyledger.ProviderAdmin }

func (timeoutAdmin) CreateServiceAccount(context.Context, keyledger.ProviderCredential, string, string) (keyledger.ServiceAccountKey, error) {
	return keyledger.ServiceAccountKey{}, &keyledger.ProviderAdminError{Kind: keyledger.ProviderTimeout, Message: "the provider did not answer before the deadline"}
}

// ProviderRotateRetryForTest is store.ProviderRotateRetry.
const ProviderRotateRetryForTest = store.ProviderRotateRetry

// TestJobsRotateAtProvider: the River jobs rotate a due key once, and
// after the grace period delete its old key at OpenAI.
func TestJobsRotateAtProvider(t *testing.T) {
	t.Parallel()
	f := newRotFixture(t)
	if err := f.s.SetAutoRotate(t.Context(), as(f.lead), f.key.ID, true); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(181 * 24 * time.Hour)
	c, err := f.s.NewJobs(store.JobsConfig{ProviderAdmin: f.pa, ProviderSyncInterval: time.Hour, ScanInterval: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.Stop(ctx)
	})
	waitFor(t, 15*time.Second, "the key rotated at OpenAI", func() bool { return f.current(t) == 2 })
	time.Sleep(2500 * time.Millisecond) // scans go on every second
	createPath := "/v1/organization/projects/" + rotProject + "/service_accounts"
	if n := f.fake.Count("POST", createPath); n != 1 {
		t.Errorf("%d service accounts created, want 1", n)
	}
	if _, ok := f.fake.Key(f.oldID); !ok {
		t.Fatal("the old key was deleted during the grace period")
	}
	f.clock.Advance(8 * 24 * time.Hour)
	// The fake deletes before the store records it: wait for the record.
	waitFor(t, 15*time.Second, "the old key deleted at OpenAI and recorded", func() bool {
		_, ok := f.fake.Key(f.oldID)
		return !ok && f.actionCount(t, keyledger.ActionProviderRevoke, f.key.ID) == 1
	})
	// Two scans a second apart may overlap on a busy machine; a repeat
	// DELETE finds the key gone (404, counted as revoked) and records
	// nothing more.
	if n := f.fake.Count("DELETE", "/v1/organization/projects/"+rotProject+"/api_keys/"+f.oldID); n < 1 {
		t.Errorf("%d DELETEs of the old key", n)
	}
}

// racingAdmin rotates the key by hand while OpenAI creates the new key,
// as a person pressing "Rotate" at the same moment would.
type racingAdmin struct {
	keyledger.ProviderAdmin
	race func()
}

func (a racingAdmin) CreateServiceAccount(ctx context.Context, c keyledger.ProviderCredential, project, name string) (keyledger.ServiceAccountKey, error) {
	a.race()
	return a.ProviderAdmin.(keyledger.ServiceAccountAdmin).CreateServiceAccount(ctx, c, project, name)
}

// TestRotateAtProviderLosesARace: a rotation by hand a moment before
// wins; the key OpenAI made for the loser is deleted there again, and
// the failure is recorded in plain words.
func TestRotateAtProviderLosesARace(t *testing.T) {
	t.Parallel()
	f := newRotFixture(t)
	ctx := t.Context()
	racing := racingAdmin{ProviderAdmin: f.pa, race: func() {
		if _, err := f.s.RotateKey(ctx, as(f.member), f.key.ID, keyledger.RotateInput{Value: secretValue(t, "sk-svcacct-"), GraceDays: "7"}); err != nil {
			t.Error(err)
		}
	}}
	_, err := f.s.RotateAtProvider(ctx, as(f.lead), racing, f.key.ID)
	wantCode(t, err, keyledger.ECONFLICT)
	if f.current(t) != 2 {
		t.Errorf("version %d, want the hand rotation's 2", f.current(t))
	}
	var created string
	for _, r := range f.fake.Requests() {
		if r.Method == "DELETE" {
			created = r.Path[strings.LastIndex(r.Path, "/")+1:]
		}
	}
	if created == "" || created == f.oldID {
		t.Fatalf("the new key was not deleted at OpenAI (deleted %q)", created)
	}
	if _, ok := f.fake.Key(created); ok {
		t.Error("the loser's key still exists at OpenAI")
	}
	if r := f.rotation(t); !strings.Contains(r.LastError, "it was deleted there again") {
		t.Errorf("the page says %q", r.LastError)
	}
	if n := f.actionCount(t, keyledger.ActionProviderRotateFailed, f.key.ID); n != 1 {
		t.Errorf("%d failed rotation events", n)
	}
}
