package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// provFixture is a store with an admin, a lead, a member and a stub
// provider admin API.
type provFixture struct {
	*fixture
	clock               *clock
	admin, lead, member *keyledger.User
	pa                  *stubAdmin
	openaiKey, anthKey  string
}

func newProvFixture(t *testing.T) *provFixture {
	t.Helper()
	c := newClock()
	f := &provFixture{fixture: newFixture(t, store.Options{Now: c.Now}), clock: c, pa: newStubAdmin()}
	f.admin = f.user(t, "admin@example.com", keyledger.RoleAdmin)
	f.lead = f.user(t, "lead@example.com", keyledger.RoleLead)
	f.member = f.user(t, "member@example.com", keyledger.RoleMember)
	f.openaiKey = secretValue(t, "sk-admin-")
	f.anthKey = secretValue(t, "sk-ant-admin01-")
	return f
}

func (f *provFixture) connect(t testing.TB, provider, name, adminKey string) keyledger.ProviderConnection {
	t.Helper()
	c, err := f.s.AddProviderConnection(context.Background(), as(f.admin), f.pa,
		keyledger.ProviderConnectionInput{Provider: provider, Name: name, AdminKey: adminKey})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *provFixture) sync(t testing.TB, c keyledger.ProviderConnection) keyledger.SyncResult {
	t.Helper()
	res, err := f.s.SyncProviderConnection(context.Background(), as(f.admin), f.pa, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// providerHint is how the provider redacts value: its prefix, three
// characters, "..." and the last four.
func providerHint(value, prefix string) string {
	return value[:len(prefix)+3] + "..." + value[len(value)-4:]
}

func TestAddProviderConnectionChecksTheKeyAndSealsIt(t *testing.T) {
	t.Parallel()
	f := newProvFixture(t)
	ctx := t.Context()
	refused := secretValue(t, "sk-admin-")
	f.pa.fail[refused] = &keyledger.ProviderAdminError{Kind: keyledger.ProviderUnauthorized, Status: 401, Message: "Incorrect API key provided"}
	timeout := secretValue(t, "sk-admin-")
	f.pa.fail[timeout] = &keyledger.ProviderAdminError{Kind: keyledger.ProviderTimeout}

	before := f.tableCounts(t)
	_, err := f.s.AddProviderConnection(ctx, as(f.admin), f.pa, keyledger.ProviderConnectionInput{Provider: "openai", Name: "Acme", AdminKey: refused})
	wantField(t, err, keyledger.EINVALID, "admin_key")
	if msg := keyledger.FieldErrors(err)["admin_key"]; !strings.Contains(msg, "refused") || !strings.Contains(msg, "401") || strings.Contains(msg, refused) {
		t.Errorf("401 message = %q, want it to say the key was refused, without the key", msg)
	}
	_, err = f.s.AddProviderConnection(ctx, as(f.admin), f.pa, keyledger.ProviderConnectionInput{Provider: "openai", Name: "Acme", AdminKey: timeout})
	if msg := keyledger.FieldErrors(err)["admin_key"]; !strings.Contains(msg, "did not answer in time") {
		t.Errorf("timeout message = %q", msg)
	}
	// Refused keys leave only their audit events behind.
	unchangedButAudit(t, before, f.tableCounts(t), 2)
	if n := f.count(t, `SELECT count(*) FROM audit_events WHERE action = $1`, keyledger.ActionProviderCheckFail); n != 2 {
		t.Errorf("%d check_failed events, want 2", n)
	}

	// Bad input never reaches the provider.
	calls := f.pa.calls
	for _, in := range []keyledger.ProviderConnectionInput{
		{Provider: "stripe", Name: "x", AdminKey: f.openaiKey},
		{Provider: "openai", Name: " ", AdminKey: f.openaiKey},
		{Provider: "openai", Name: "x", AdminKey: "sk-proj-notanadminkey"},
		{Provider: "anthropic", Name: "x", AdminKey: f.openaiKey},
		{Provider: "openai", Name: "x", AdminKey: ""},
	} {
		_, err := f.s.AddProviderConnection(ctx, as(f.admin), f.pa, in)
		wantCode(t, err, keyledger.EINVALID)
	}
	if f.pa.calls != calls {
		t.Errorf("invalid input reached the provider")
	}
	for _, u := range []*keyledger.User{f.lead, f.member} {
		_, err := f.s.AddProviderConnection(ctx, as(u), f.pa, keyledger.ProviderConnectionInput{Provider: "openai", Name: "Acme", AdminKey: f.openaiKey})
		wantCode(t, err, keyledger.EFORBIDDEN)
	}

	c := f.connect(t, "openai", "Acme", f.openaiKey)
	if c.Provider != keyledger.ProviderOpenAI || c.Name != "Acme" || c.CreatedBy != "admin@example.com" || c.LastSyncStatus != "" {
		t.Errorf("connection = %+v", c)
	}
	_, err = f.s.AddProviderConnection(ctx, as(f.admin), f.pa, keyledger.ProviderConnectionInput{Provider: "anthropic", Name: "acme", AdminKey: f.anthKey})
	wantField(t, err, keyledger.ECONFLICT, "name")

	// Sealed: no spelling of the admin key anywhere in the database.
	for _, k := range []string{f.openaiKey, refused, timeout} {
		if found := findInDatabase(t, f.pool, leakForms(k)); len(found) > 0 {
			t.Errorf("admin key in the database: %v", found)
		}
	}
	// The sync opens it again, bound to its row.
	f.sync(t, c)
	if got := f.pa.seen[len(f.pa.seen)-1]; got != f.openaiKey {
		t.Errorf("sync called the provider with another admin key")
	}

	list, err := f.s.ProviderConnections(ctx, as(f.admin))
	if err != nil || len(list) != 1 {
		t.Fatalf("connections = %v, %v", list, err)
	}
	_, err = f.s.ProviderConnections(ctx, as(f.lead))
	wantCode(t, err, keyledger.EFORBIDDEN)

	wantCode(t, f.s.RemoveProviderConnection(ctx, as(f.lead), c.ID), keyledger.EFORBIDDEN)
	if err := f.s.RemoveProviderConnection(ctx, as(f.admin), c.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, f.s.RemoveProviderConnection(ctx, as(f.admin), c.ID), keyledger.ENOTFOUND)
	if n := f.count(t, `SELECT count(*) FROM provider_connections WHERE admin_key_ciphertext IS NOT NULL`); n != 0 {
		t.Errorf("a removed connection keeps its sealed admin key")
	}
	_, err = f.s.SyncProviderConnection(ctx, as(f.admin), f.pa, c.ID)
	wantCode(t, err, keyledger.ENOTFOUND)
	// The name is free again.
	f.connect(t, "openai", "Acme", f.openaiKey)

	var details []string
	rows, err := f.pool.Query(ctx, `SELECT details::text FROM audit_events WHERE action LIKE 'provider.%' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var d string
		if err := rows.Scan(&d); err != nil {
			t.Fatal(err)
		}
		details = append(details, d)
	}
	if len(details) != 6 { // 2 refused, connect, sync, disconnect, connect
		t.Errorf("%d provider audit events, want 6: %v", len(details), details)
	}
	for _, d := range details {
		for _, k := range []string{f.openaiKey, refused, timeout} {
			if strings.Contains(d, k) {
				t.Errorf("audit details hold an admin key: %s", d)
			}
		}
	}
}

// TestProviderSyncMatchesByHint covers matching: a unique hint, an
// ambiguous one, one the project settles, a shadow key, an owner gone at
// the provider, and a key deleted at the provider.
func TestProviderSyncMatchesByHint(t *testing.T) {
	t.Parallel()
	f := newProvFixture(t)
	ctx := t.Context()
	lead := f.lead
	// Registered keys. twinA and twinB share prefix and last four.
	unique := secretValue(t, "sk-proj-")
	twinA := secretValue(t, "sk-proj-")
	twinB := secretValue(t, "sk-proj-")[:48] + twinA[len(twinA)-4:]
	gone := secretValue(t, "sk-proj-")
	anth := secretValue(t, "sk-ant-api03-")
	kUnique := f.key(t, lead, devKey("unique", lead.Email, unique))
	inA := devKey("twin a", lead.Email, twinA)
	inA.Project = "search"
	kTwinA := f.key(t, lead, inA)
	kTwinB := f.key(t, lead, devKey("twin b", lead.Email, twinB))
	kGone := f.key(t, lead, devKey("gone", lead.Email, gone))
	anthIn := devKey("claude", lead.Email, anth)
	anthIn.Provider = "anthropic"
	kAnth := f.key(t, lead, anthIn)

	created := f.clock.Now().Add(-90 * 24 * time.Hour)
	recent := f.clock.Now().Add(-time.Hour)
	shadow := secretValue(t, "sk-proj-")
	oa := []keyledger.ProviderKey{
		{ID: "key_unique", Name: "unique", Hint: providerHint(unique, "sk-proj-"), Project: "proj_1", ProjectName: "Billing", Status: "active", CreatedAt: created, LastUsedAt: recent, CreatedBy: "lead@example.com", OwnerType: "user", OwnerActive: true},
		// Fits both twins; its project names neither.
		{ID: "key_twin_x", Name: "twin", Hint: providerHint(twinA, "sk-proj-"), Project: "proj_9", ProjectName: "Other", Status: "active", CreatedAt: created, LastUsedAt: recent, OwnerActive: true},
		// Fits both twins; its project settles it.
		{ID: "key_twin_search", Name: "twin", Hint: providerHint(twinA, "sk-proj-"), Project: "proj_2", ProjectName: "Search", Status: "active", CreatedAt: created, LastUsedAt: recent, OwnerActive: true},
		{ID: "key_shadow", Name: "made in the dashboard", Hint: providerHint(shadow, "sk-proj-"), Project: "proj_1", ProjectName: "Billing", Status: "active", CreatedAt: created, CreatedBy: "someone@example.com", OwnerType: "user", OwnerActive: false},
		{ID: "key_gone", Name: "gone", Hint: providerHint(gone, "sk-proj-"), Project: "proj_1", ProjectName: "Billing", Status: "active", CreatedAt: created, LastUsedAt: recent, OwnerActive: true},
	}
	f.pa.set(f.openaiKey, oa)
	f.pa.set(f.anthKey, []keyledger.ProviderKey{
		{ID: "apikey_1", Name: "claude", Hint: providerHint(anth, "sk-ant-api03-"), Project: "", Status: "active", CreatedAt: created, LastUsedAt: recent, OwnerActive: true},
		// Same hint shape as the OpenAI unique key, but another provider: no match.
		{ID: "apikey_2", Name: "look-alike", Hint: "sk-ant-api03-xyz..." + unique[len(unique)-4:], Status: "inactive", CreatedAt: recent, OwnerActive: true},
	})
	oc := f.connect(t, "openai", "OpenAI org", f.openaiKey)
	ac := f.connect(t, "anthropic", "Anthropic org", f.anthKey)

	res := f.sync(t, oc)
	want := keyledger.SyncResult{Seen: 5, New: 5, Matched: 3, Ambiguous: 1, Unmatched: 1}
	if res != want {
		t.Errorf("first sync = %+v, want %+v", res, want)
	}
	if res := f.sync(t, ac); res != (keyledger.SyncResult{Seen: 2, New: 2, Matched: 1, Unmatched: 1}) {
		t.Errorf("anthropic sync = %+v", res)
	}

	inv, err := f.s.Inventory(ctx, as(f.lead), keyledger.InventoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]keyledger.InventoryItem{}
	for _, it := range inv.Items {
		byID[it.ProviderKeyID] = it
	}
	if len(byID) != 7 {
		t.Fatalf("inventory has %d keys, want 7: %+v", len(byID), inv.Items)
	}
	check := func(id, keyID string, states ...keyledger.InventoryState) {
		t.Helper()
		it := byID[id]
		if it.KeyID != keyID {
			t.Errorf("%s linked to %q, want %q", id, it.KeyID, keyID)
		}
		if fmt.Sprint(it.States) != fmt.Sprint(states) {
			t.Errorf("%s states = %v, want %v", id, it.States, states)
		}
	}
	check("key_unique", kUnique.ID, keyledger.InventoryRegistered)
	check("key_twin_x", "", keyledger.InventoryAmbiguous)
	check("key_twin_search", kTwinA.ID, keyledger.InventoryRegistered)
	check("key_shadow", "", keyledger.InventoryShadow, keyledger.InventoryOwnerLeft, keyledger.InventoryUnused)
	check("key_gone", kGone.ID, keyledger.InventoryRegistered)
	check("apikey_1", kAnth.ID, keyledger.InventoryRegistered)
	check("apikey_2", "", keyledger.InventoryShadow)
	amb := byID["key_twin_x"]
	if amb.MatchCandidates != 2 || len(amb.Candidates) != 2 {
		t.Errorf("ambiguous key: %d candidates, listed %v", amb.MatchCandidates, amb.Candidates)
	}
	for _, c := range amb.Candidates {
		if c.KeyID != kTwinA.ID && c.KeyID != kTwinB.ID {
			t.Errorf("candidate %+v is not a twin", c)
		}
	}
	sh := byID["key_shadow"]
	if sh.CreatedBy != "someone@example.com" || sh.CreatedAt == nil || !sh.CreatedAt.Equal(created) || sh.LastUsedAt != nil || sh.ProjectName != "Billing" {
		t.Errorf("shadow key = %+v", sh)
	}
	if inv.Counts[keyledger.InventoryRegistered] != 4 || inv.Counts[keyledger.InventoryShadow] != 2 || inv.Counts[keyledger.InventoryAmbiguous] != 1 ||
		inv.Counts[keyledger.InventoryOwnerLeft] != 1 || inv.Counts[keyledger.InventoryUnused] != 1 || inv.Counts[keyledger.InventoryDeleted] != 0 {
		t.Errorf("counts = %v", inv.Counts)
	}

	// The key disappears at the provider; its registered key is a
	// candidate to archive.
	f.clock.Advance(time.Hour)
	f.pa.set(f.openaiKey, oa[:4])
	res = f.sync(t, oc)
	if res != (keyledger.SyncResult{Seen: 4, Deleted: 1, Matched: 2, Ambiguous: 1, Unmatched: 1}) {
		t.Errorf("second sync = %+v", res)
	}
	inv, err = f.s.Inventory(ctx, as(f.admin), keyledger.InventoryFilter{State: keyledger.InventoryDeleted})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Items) != 1 || inv.Items[0].ProviderKeyID != "key_gone" || inv.Items[0].KeyID != kGone.ID || inv.Items[0].DeletedAt == nil {
		t.Errorf("deleted at provider = %+v", inv.Items)
	}
	// Archiving it in keyledger settles it.
	if err := f.s.ArchiveKey(ctx, as(lead), kGone.ID); err != nil {
		t.Fatal(err)
	}
	inv, _ = f.s.Inventory(ctx, as(f.admin), keyledger.InventoryFilter{State: keyledger.InventoryDeleted})
	if len(inv.Items) != 0 {
		t.Errorf("an archived key is still a candidate to archive: %+v", inv.Items)
	}

	// Filters by connection and state agree with the states of the items.
	inv, _ = f.s.Inventory(ctx, as(f.admin), keyledger.InventoryFilter{ConnectionID: ac.ID})
	if len(inv.Items) != 2 {
		t.Errorf("anthropic connection filter: %d items", len(inv.Items))
	}
	for _, st := range keyledger.InventoryStates() {
		inv, err := f.s.Inventory(ctx, as(f.admin), keyledger.InventoryFilter{State: st})
		if err != nil {
			t.Fatal(err)
		}
		if len(inv.Items) != inv.Counts[st] {
			t.Errorf("state %s: %d items, count says %d", st, len(inv.Items), inv.Counts[st])
		}
		for _, it := range inv.Items {
			if !it.Has(st) {
				t.Errorf("state %s filter returned %s in %v", st, it.ProviderKeyID, it.States)
			}
		}
	}

	// A failed sync records the provider's message and touches no key.
	f.clock.Advance(time.Hour)
	f.pa.fail[f.openaiKey] = &keyledger.ProviderAdminError{Kind: keyledger.ProviderRateLimited, Status: 429, RetryAfter: 30 * time.Second, Message: "Rate limit reached"}
	beforeKeys := f.count(t, `SELECT count(*) FROM provider_keys WHERE deleted_at IS NULL`)
	_, err = f.s.SyncProviderConnection(ctx, keyledger.SystemActor("scheduler"), f.pa, oc.ID)
	if keyledger.ProviderAdminErrorKindOf(err) != keyledger.ProviderRateLimited {
		t.Errorf("failed sync err = %v", err)
	}
	if n := f.count(t, `SELECT count(*) FROM provider_keys WHERE deleted_at IS NULL`); n != beforeKeys {
		t.Errorf("a failed sync changed the keys: %d live, were %d", n, beforeKeys)
	}
	c, err := f.s.ProviderConnection(ctx, as(f.admin), oc.ID)
	if err != nil {
		t.Fatal(err)
	}
	if c.LastSyncStatus != keyledger.SyncFailed || !strings.Contains(c.LastSyncError, "Rate limit reached") || c.LastSyncAt == nil || !c.LastSyncAt.Equal(f.clock.Now()) {
		t.Errorf("after a failed sync: %+v", c)
	}
	if n := f.count(t, `SELECT count(*) FROM audit_events WHERE action = $1 AND details->>'error' LIKE '%Rate limit%'`, keyledger.ActionProviderSyncFail); n != 1 {
		t.Errorf("%d sync_failed events", n)
	}
	if n := f.count(t, `SELECT count(*) FROM audit_events WHERE action = $1 AND (details->>'seen')::int = 4 AND (details->>'deleted')::int = 1`, keyledger.ActionProviderSync); n != 1 {
		t.Errorf("sync events with counts: %d", n)
	}

	// Members see no inventory.
	_, err = f.s.Inventory(ctx, as(f.member), keyledger.InventoryFilter{})
	wantCode(t, err, keyledger.EFORBIDDEN)
}

// TestJobsSyncProviderConnections: the job client syncs every live
// connection once per interval, records a failing one, and leaves a
// removed one alone.
func TestJobsSyncProviderConnections(t *testing.T) {
	t.Parallel()
	f := newProvFixture(t)
	f.pa.set(f.openaiKey, []keyledger.ProviderKey{{ID: "key_1", Name: "one", Hint: "sk-proj-abc...wxyz", Project: "proj_1", Status: "active", OwnerActive: true}})
	ok := f.connect(t, "openai", "Works", f.openaiKey)
	failing := f.connect(t, "anthropic", "Fails", f.anthKey)
	f.pa.fail[f.anthKey] = &keyledger.ProviderAdminError{Kind: keyledger.ProviderUnauthorized, Status: 401, Message: "invalid x-api-key"}
	removedKey := secretValue(t, "sk-admin-")
	removed := f.connect(t, "openai", "Removed", removedKey)
	if err := f.s.RemoveProviderConnection(t.Context(), as(f.admin), removed.ID); err != nil {
		t.Fatal(err)
	}
	f.pa.seen = nil // the checks on adding
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
	waitFor(t, 15*time.Second, "both connections synced", func() bool {
		a, err1 := f.s.ProviderConnection(t.Context(), as(f.admin), ok.ID)
		b, err2 := f.s.ProviderConnection(t.Context(), as(f.admin), failing.ID)
		return err1 == nil && err2 == nil && a.LastSyncStatus == keyledger.SyncOK && b.LastSyncStatus == keyledger.SyncFailed
	})
	// Scans keep running every second; within the interval nothing is
	// synced again.
	time.Sleep(2500 * time.Millisecond)
	if n := f.count(t, `SELECT count(*) FROM audit_events WHERE action = $1`, keyledger.ActionProviderSync); n != 1 {
		t.Errorf("%d syncs within one interval, want 1", n)
	}
	if n := f.count(t, `SELECT count(*) FROM audit_events WHERE action = $1`, keyledger.ActionProviderSyncFail); n != 1 {
		t.Errorf("%d failed syncs within one interval, want 1", n)
	}
	f.pa.mu.Lock()
	defer f.pa.mu.Unlock()
	for _, k := range f.pa.seen {
		if k == removedKey {
			t.Error("a removed connection was synced")
		}
	}
	if n := f.count(t, `SELECT count(*) FROM provider_keys`); n != 1 {
		t.Errorf("%d provider keys, want 1", n)
	}
}
