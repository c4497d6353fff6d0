package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

// linkFixture: two registered twins (same prefix and last four) and one
// other key; the provider lists a key that fits both twins (ambiguous) and
// one that fits the other key only (matched).
type linkFixture struct {
	*provFixture
	conn                  keyledger.ProviderConnection
	twinA, twinB, other   *keyledger.Key
	ambiguousID, uniqueID int64
}

func newLinkFixture(t *testing.T) *linkFixture {
	t.Helper()
	f := &linkFixture{provFixture: newProvFixture(t)}
	twinA := secretValue(t, "sk-proj-")
	twinB := secretValue(t, "sk-proj-")[:48] + twinA[len(twinA)-4:]
	other := secretValue(t, "sk-proj-")
	f.twinA = f.key(t, f.lead, devKey("twin a", f.lead.Email, twinA))
	f.twinB = f.key(t, f.lead, devKey("twin b", f.lead.Email, twinB))
	f.other = f.key(t, f.lead, devKey("other", f.lead.Email, other))
	f.pa.set(f.openaiKey, []keyledger.ProviderKey{
		{ID: "key_twin", Name: "twin", Hint: providerHint(twinA, "sk-proj-"), Project: "proj_9", ProjectName: "Nowhere", Status: "active", OwnerActive: true},
		{ID: "key_other", Name: "other", Hint: providerHint(other, "sk-proj-"), Project: "proj_9", ProjectName: "Nowhere", Status: "active", OwnerActive: true},
	})
	f.conn = f.connect(t, "openai", "acme", f.openaiKey)
	f.sync(t, f.conn)
	f.ambiguousID = f.rowID(t, "key_twin")
	f.uniqueID = f.rowID(t, "key_other")
	return f
}

func (f *linkFixture) rowID(t testing.TB, providerKeyID string) int64 {
	t.Helper()
	var id int64
	if err := f.pool.QueryRow(context.Background(), `SELECT id FROM provider_keys WHERE provider_key_id = $1`, providerKeyID).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// item reads one provider key from the inventory as an admin.
func (f *linkFixture) item(t testing.TB, id int64) keyledger.InventoryItem {
	t.Helper()
	inv, err := f.s.Inventory(context.Background(), as(f.admin), keyledger.InventoryFilter{ProviderKey: id})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Items) != 1 {
		t.Fatalf("provider key %d: %d items", id, len(inv.Items))
	}
	return inv.Items[0]
}

// TestLinkProviderKeyByHand: an admin links an ambiguous provider key to
// one of its candidates (and corrects an automatic match); the next sync
// keeps both links; unlinking hands the key back to matching. Nobody else
// may, bad input is refused with the database untouched, and each change
// is audited.
func TestLinkProviderKeyByHand(t *testing.T) {
	t.Parallel()
	f := newLinkFixture(t)
	ctx := t.Context()
	if it := f.item(t, f.ambiguousID); it.MatchState != keyledger.MatchAmbiguous || it.KeyID != "" {
		t.Fatalf("before: %+v", it)
	}

	// Refusals change nothing.
	anthIn := devKey("claude", f.lead.Email, secretValue(t, "sk-ant-api03-"))
	anthIn.Provider = "anthropic"
	anth := f.key(t, f.lead, anthIn)
	archived := f.key(t, f.lead, devKey("archived", f.lead.Email, secretValue(t, "sk-proj-")))
	if err := f.s.ArchiveKey(ctx, as(f.lead), archived.ID); err != nil {
		t.Fatal(err)
	}
	before := f.count(t, `SELECT count(*) FROM audit_events`)
	wantCode(t, f.s.LinkProviderKey(ctx, as(f.lead), f.ambiguousID, f.twinB.ID), keyledger.EFORBIDDEN)
	wantCode(t, f.s.LinkProviderKey(ctx, as(f.member), f.ambiguousID, f.twinB.ID), keyledger.EFORBIDDEN)
	readOnly := as(f.admin)
	readOnly.Token = &keyledger.Token{ID: 1, Scopes: []string{keyledger.ScopeRead}}
	wantCode(t, f.s.LinkProviderKey(ctx, readOnly, f.ambiguousID, f.twinB.ID), keyledger.EFORBIDDEN)
	wantCode(t, f.s.LinkProviderKey(ctx, as(f.admin), 999999, f.twinB.ID), keyledger.ENOTFOUND)
	wantCode(t, f.s.LinkProviderKey(ctx, as(f.admin), f.ambiguousID, "not-a-key"), keyledger.EINVALID)
	wantCode(t, f.s.LinkProviderKey(ctx, as(f.admin), f.ambiguousID, "6f1c2b7e-8a4d-4c3b-9e2f-1a2b3c4d5e6f"), keyledger.EINVALID)
	err := f.s.LinkProviderKey(ctx, as(f.admin), f.ambiguousID, anth.ID)
	if fe := keyledger.FieldErrors(err)["key_id"]; fe == "" {
		t.Errorf("linking to another provider's key: %v (fields %v)", err, keyledger.FieldErrors(err))
	}
	wantCode(t, f.s.LinkProviderKey(ctx, as(f.admin), f.ambiguousID, archived.ID), keyledger.EINVALID)
	if n := f.count(t, `SELECT count(*) FROM audit_events`); n != before {
		t.Errorf("refusals wrote %d audit events", n-before)
	}
	if n := f.count(t, `SELECT count(*) FROM provider_keys WHERE linked_by IS NOT NULL`); n != 0 {
		t.Errorf("refusals linked %d keys", n)
	}

	// The ambiguous key, linked to twin b; the automatic match of the
	// other key corrected to twin a.
	if err := f.s.LinkProviderKey(ctx, as(f.admin), f.ambiguousID, f.twinB.ID); err != nil {
		t.Fatal(err)
	}
	if err := f.s.LinkProviderKey(ctx, as(f.admin), f.uniqueID, f.twinA.ID); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		for _, c := range []struct {
			id  int64
			key string
		}{{f.ambiguousID, f.twinB.ID}, {f.uniqueID, f.twinA.ID}} {
			it := f.item(t, c.id)
			if it.KeyID != c.key || it.MatchState != keyledger.MatchMatched || !it.LinkedManually || fmt.Sprint(it.States) != "[registered]" {
				t.Errorf("%s: %s = key %q, %s, manual %v, states %v", when, it.ProviderKeyID, it.KeyID, it.MatchState, it.LinkedManually, it.States)
			}
		}
	}
	check("after linking")
	if n := f.count(t, `SELECT count(*) FROM audit_events WHERE action = $1 AND key_id = $2 AND details->>'provider_key_id' = 'key_twin'`,
		keyledger.ActionProviderLink, f.twinB.ID); n != 1 {
		t.Errorf("%d link events for the ambiguous key", n)
	}
	if n := f.count(t, `SELECT count(*) FROM provider_keys WHERE linked_by = $1 AND linked_at IS NOT NULL`, f.admin.ID); n != 2 {
		t.Errorf("%d keys record who linked them", n)
	}

	// The next sync keeps both links, though the hints say otherwise.
	f.clock.Advance(time.Hour)
	res := f.sync(t, f.conn)
	if res.Matched != 2 || res.Ambiguous != 0 {
		t.Errorf("sync after linking = %+v", res)
	}
	check("after a sync")

	// Unlinking hands the key back to matching, at once.
	wantCode(t, f.s.UnlinkProviderKey(ctx, as(f.lead), f.ambiguousID), keyledger.EFORBIDDEN)
	if err := f.s.UnlinkProviderKey(ctx, as(f.admin), f.ambiguousID); err != nil {
		t.Fatal(err)
	}
	if it := f.item(t, f.ambiguousID); it.MatchState != keyledger.MatchAmbiguous || it.KeyID != "" || it.LinkedManually || len(it.Candidates) != 2 {
		t.Errorf("after unlinking: %+v", it)
	}
	if n := f.count(t, `SELECT count(*) FROM audit_events WHERE action = $1 AND details->>'provider_key_id' = 'key_twin'`, keyledger.ActionProviderUnlink); n != 1 {
		t.Errorf("%d unlink events", n)
	}
	// Unlinking a key nobody linked is a conflict that changes nothing.
	wantCode(t, f.s.UnlinkProviderKey(ctx, as(f.admin), f.ambiguousID), keyledger.ECONFLICT)
	if it := f.item(t, f.uniqueID); it.KeyID != f.twinA.ID || !it.LinkedManually {
		t.Errorf("the other link moved: %+v", it)
	}
}

// TestInventoryPages: the inventory pages by keyset in its own order; the
// pages together are the whole list, each key once, whatever the page
// size, and a filter pages too.
func TestInventoryPages(t *testing.T) {
	t.Parallel()
	f := newProvFixture(t)
	ctx := t.Context()
	var keys []keyledger.ProviderKey
	for i := range 23 {
		// Names repeat, projects interleave: the order needs every column
		// of the keyset.
		keys = append(keys, keyledger.ProviderKey{ID: fmt.Sprintf("key_%02d", i), Name: fmt.Sprintf("Key %d", i%4),
			Hint: "sk-proj-abc...zz" + fmt.Sprintf("%02d", i), Project: fmt.Sprintf("proj_%d", i%3), ProjectName: []string{"b", "A", "a"}[i%3], Status: "active", OwnerActive: true})
	}
	f.pa.set(f.openaiKey, keys)
	f.sync(t, f.connect(t, "openai", "acme", f.openaiKey))
	all, err := f.s.Inventory(ctx, as(f.lead), keyledger.InventoryFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all.Items) != 23 || all.More {
		t.Fatalf("unpaged: %d items, more %v", len(all.Items), all.More)
	}
	for _, size := range []int{1, 5, 22, 23, 50} {
		var got []string
		filter := keyledger.InventoryFilter{Limit: size}
		pages := 0
		for {
			inv, err := f.s.Inventory(ctx, as(f.lead), filter)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(inv.Items) > size {
				t.Fatalf("size %d: a page of %d", size, len(inv.Items))
			}
			if inv.Counts[keyledger.InventoryShadow] != 23 {
				t.Errorf("size %d: counts %v on page %d", size, inv.Counts, pages)
			}
			for _, it := range inv.Items {
				got = append(got, it.ProviderKeyID)
			}
			if !inv.More {
				break
			}
			last := inv.Items[len(inv.Items)-1]
			filter.After = keyledger.InventoryCursorOf(last)
			if pages > 30 {
				t.Fatal("does not end")
			}
		}
		var want []string
		for _, it := range all.Items {
			want = append(want, it.ProviderKeyID)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("size %d: pages give\n%v\nwant\n%v", size, got, want)
		}
		if wantPages := (23 + size - 1) / size; pages != wantPages {
			t.Errorf("size %d: %d pages, want %d", size, pages, wantPages)
		}
	}
	// A filter pages too.
	inv, err := f.s.Inventory(ctx, as(f.lead), keyledger.InventoryFilter{State: keyledger.InventoryShadow, Limit: 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(inv.Items) != 20 || !inv.More {
		t.Errorf("filtered first page: %d items, more %v", len(inv.Items), inv.More)
	}
	_, err = f.s.Inventory(ctx, as(f.lead), keyledger.InventoryFilter{Limit: -1})
	wantCode(t, err, keyledger.EINVALID)
}
