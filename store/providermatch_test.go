package store_test

import (
	"context"
	"testing"

	"github.com/keyledger/keyledger"
)

// providerLink is what matching decided for one provider key.
type providerLink struct {
	KeyID string // "" for none
	State string
	Cands int
}

// links reads the match of every provider key of the fixture, by the
// provider's id.
func (f *provFixture) links(t testing.TB) map[string]providerLink {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT provider_key_id, coalesce(key_id::text, ''), match_state, match_candidates FROM provider_keys`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]providerLink{}
	for rows.Next() {
		var id string
		var l providerLink
		if err := rows.Scan(&id, &l.KeyID, &l.State, &l.Cands); err != nil {
			t.Fatal(err)
		}
		out[id] = l
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRegisteringMatchesSyncedProviderKeys: a key registered (or
// rotated) after a sync is matched against the provider keys already
// synced, in its own transaction and by the sync's own rule, so its page
// shows it at the provider at once; a sync afterwards finds nothing to
// change. Manual links stay as the admin set them.
func TestRegisteringMatchesSyncedProviderKeys(t *testing.T) {
	t.Parallel()
	f := newProvFixture(t)
	ctx := t.Context()
	lead := f.lead

	unique := secretValue(t, "sk-proj-")
	twinA := secretValue(t, "sk-proj-")
	twinB := secretValue(t, "sk-proj-")[:48] + twinA[len(twinA)-4:]
	manual := secretValue(t, "sk-proj-")
	next := secretValue(t, "sk-proj-")
	anthLike := secretValue(t, "sk-ant-api03-")
	oa := []keyledger.ProviderKey{
		{ID: "key_unique", Name: "unique", Hint: providerHint(unique, "sk-proj-"), Project: "proj_1", ProjectName: "Billing", Status: "active", OwnerActive: true},
		{ID: "key_twin", Name: "twin", Hint: providerHint(twinA, "sk-proj-"), Project: "proj_9", ProjectName: "Other", Status: "active", OwnerActive: true},
		{ID: "key_manual", Name: "manual", Hint: providerHint(manual, "sk-proj-"), Project: "proj_1", ProjectName: "Billing", Status: "active", OwnerActive: true},
		{ID: "key_next", Name: "next", Hint: providerHint(next, "sk-proj-"), Project: "proj_1", ProjectName: "Billing", Status: "active", OwnerActive: true},
	}
	f.pa.set(f.openaiKey, oa)
	f.pa.set(f.anthKey, []keyledger.ProviderKey{
		{ID: "apikey_1", Name: "claude", Hint: providerHint(anthLike, "sk-ant-api03-"), Status: "active", OwnerActive: true},
	})
	oc := f.connect(t, "openai", "OpenAI org", f.openaiKey)
	ac := f.connect(t, "anthropic", "Anthropic org", f.anthKey)
	f.sync(t, oc)
	f.sync(t, ac)
	for id, l := range f.links(t) {
		if l.State != keyledger.MatchUnmatched {
			t.Fatalf("before any registration %s = %+v", id, l)
		}
	}
	// An admin linked key_manual by hand (to nothing registered yet).
	if _, err := f.pool.Exec(ctx, `UPDATE provider_keys SET linked_by = $1 WHERE provider_key_id = 'key_manual'`, f.admin.ID); err != nil {
		t.Fatal(err)
	}

	// One candidate: linked at registration, and the key's page says so.
	kUnique := f.key(t, lead, devKey("unique", lead.Email, unique))
	if l := f.links(t)["key_unique"]; l != (providerLink{kUnique.ID, keyledger.MatchMatched, 1}) {
		t.Errorf("key_unique after registration = %+v, want linked to %s", l, kUnique.ID)
	}
	at, err := f.s.KeysAtProvider(ctx, as(lead), kUnique)
	if err != nil {
		t.Fatal(err)
	}
	if len(at) != 1 || at[0].ProviderKeyID != "key_unique" || !at[0].Linked {
		t.Errorf("key page at the provider = %+v", at)
	}

	// The first twin is the only candidate; the second makes it
	// ambiguous (neither project is the provider key's), as a sync would.
	kTwinA := f.key(t, lead, devKey("twin a", lead.Email, twinA))
	if l := f.links(t)["key_twin"]; l != (providerLink{kTwinA.ID, keyledger.MatchMatched, 1}) {
		t.Errorf("key_twin after the first twin = %+v", l)
	}
	f.key(t, lead, devKey("twin b", lead.Email, twinB))
	if l := f.links(t)["key_twin"]; l != (providerLink{"", keyledger.MatchAmbiguous, 2}) {
		t.Errorf("key_twin after the second twin = %+v, want ambiguous", l)
	}

	// A manual link is never overwritten.
	f.key(t, lead, devKey("manual", lead.Email, manual))
	if l := f.links(t)["key_manual"]; l.KeyID != "" || l.State != keyledger.MatchUnmatched {
		t.Errorf("registration overwrote a manual link: %+v", l)
	}

	// A key of another provider with a look-alike hint matches nothing
	// at OpenAI; the Anthropic connection's key is its own provider's.
	anthIn := devKey("claude", lead.Email, anthLike)
	anthIn.Provider = "anthropic"
	kAnth := f.key(t, lead, anthIn)
	if l := f.links(t)["apikey_1"]; l.KeyID != kAnth.ID {
		t.Errorf("apikey_1 = %+v, want linked to %s", l, kAnth.ID)
	}

	// Rotation: the new version's provider key is linked at once; the old
	// one is no longer the key's own, and shows as the superseded
	// version still alive at the provider.
	if _, err := f.s.RotateKey(ctx, as(lead), kUnique.ID, keyledger.RotateInput{Value: next, GraceDays: "7"}); err != nil {
		t.Fatal(err)
	}
	got := f.links(t)
	if got["key_next"] != (providerLink{kUnique.ID, keyledger.MatchMatched, 1}) {
		t.Errorf("key_next after rotation = %+v, want linked to %s", got["key_next"], kUnique.ID)
	}
	if got["key_unique"] != (providerLink{"", keyledger.MatchUnmatched, 0}) {
		t.Errorf("key_unique after rotation = %+v, want unmatched (the old version)", got["key_unique"])
	}
	at, err = f.s.KeysAtProvider(ctx, as(lead), kUnique)
	if err != nil {
		t.Fatal(err)
	}
	if len(at) != 2 || at[0].ProviderKeyID != "key_next" || !at[0].Linked || at[1].ProviderKeyID != "key_unique" || at[1].Linked || at[1].Version != 1 {
		t.Errorf("key page after rotation = %+v", at)
	}

	// Rolling back links the old one again.
	if _, err := f.s.RollbackKey(ctx, as(lead), kUnique.ID, 1, 7); err != nil {
		t.Fatal(err)
	}
	if l := f.links(t)["key_unique"]; l.KeyID != kUnique.ID {
		t.Errorf("key_unique after rollback = %+v", l)
	}

	// The same rule: a sync now changes no match.
	before := f.links(t)
	f.clock.Advance(1)
	f.sync(t, oc)
	f.sync(t, ac)
	after := f.links(t)
	for id, l := range before {
		if after[id] != l {
			t.Errorf("%s: registration decided %+v, the sync %+v", id, l, after[id])
		}
	}
}

// TestRegisteringIgnoresRemovedConnections: a removed connection's
// provider keys are out of the inventory; registering a key does not
// link them.
func TestRegisteringIgnoresRemovedConnections(t *testing.T) {
	t.Parallel()
	f := newProvFixture(t)
	ctx := t.Context()
	value := secretValue(t, "sk-proj-")
	f.pa.set(f.openaiKey, []keyledger.ProviderKey{{ID: "key_1", Hint: providerHint(value, "sk-proj-"), Status: "active", OwnerActive: true}})
	oc := f.connect(t, "openai", "OpenAI org", f.openaiKey)
	f.sync(t, oc)
	if err := f.s.RemoveProviderConnection(ctx, as(f.admin), oc.ID); err != nil {
		t.Fatal(err)
	}
	f.key(t, f.lead, devKey("late", f.lead.Email, value))
	if l := f.links(t)["key_1"]; l.KeyID != "" {
		t.Errorf("a removed connection's key was linked: %+v", l)
	}
}
