package store_test

import (
	"testing"

	"github.com/keyledger/keyledger"
)

// TestOffboardingActionsCheckTheChecklistInTheirTransaction: reassigning
// the departing person's keys and deactivating their account from a
// checklist take the checklist's id, and the store refuses them when the
// checklist is complete (or unknown) in the same transaction as the
// change, so no handler has to look first and race the completion.
func TestOffboardingActionsCheckTheChecklistInTheirTransaction(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	k, _ := f.govKey(t, f.m, "alpha", "development")

	id, err := f.s.StartOffboarding(ctx, as(f.lead), f.m.Email, false, "")
	if err != nil {
		t.Fatal(err)
	}
	// Unknown checklist: not found, nothing moves.
	_, err = f.s.ReassignOffboardedKeys(ctx, as(f.lead), id+1000, f.n.Email)
	wantCode(t, err, keyledger.ENOTFOUND)
	_, err = f.s.DeactivateOffboarded(ctx, as(f.admin), id+1000)
	wantCode(t, err, keyledger.ENOTFOUND)
	// Members may not; leads may not deactivate.
	_, err = f.s.ReassignOffboardedKeys(ctx, as(f.n), id, f.n.Email)
	wantCode(t, err, keyledger.EFORBIDDEN)
	_, err = f.s.DeactivateOffboarded(ctx, as(f.lead), id)
	wantCode(t, err, keyledger.EFORBIDDEN)

	n, err := f.s.ReassignOffboardedKeys(ctx, as(f.lead), id, f.n.Email)
	if err != nil || n != 1 {
		t.Fatalf("ReassignOffboardedKeys = %d, %v; want 1 key moved", n, err)
	}
	wantResolved(t, mustItem(t, f.checklist(t, id), keyledger.ItemReassign, k.ID), keyledger.ItemDone, "now owned by n@example.com", f.lead.Email)
	u, err := f.s.DeactivateOffboarded(ctx, as(f.admin), id)
	if err != nil || u.Status != keyledger.UserDeactivated || u.ID != f.m.ID {
		t.Fatalf("DeactivateOffboarded = %+v, %v; want m deactivated", u, err)
	}
	wantResolved(t, mustItem(t, f.checklist(t, id), keyledger.ItemDeactivate, ""), keyledger.ItemDone, "account deactivated", f.admin.Email)
	if err := f.s.CompleteOffboarding(ctx, as(f.lead), id); err != nil {
		t.Fatal(err)
	}

	// Complete: the record no longer changes, whoever asks.
	if _, err := f.s.ReactivateUser(ctx, as(f.admin), f.m.ID); err != nil {
		t.Fatal(err)
	}
	k2, _ := f.govKey(t, f.m, "bravo", "development")
	before := f.tableCounts(t)
	_, err = f.s.ReassignOffboardedKeys(ctx, as(f.lead), id, f.n.Email)
	wantCode(t, err, keyledger.ECONFLICT)
	_, err = f.s.DeactivateOffboarded(ctx, as(f.admin), id)
	wantCode(t, err, keyledger.ECONFLICT)
	unchangedButAudit(t, before, f.tableCounts(t), 0)
	if got := f.fresh(t, f.m); got.Status != keyledger.UserActive {
		t.Errorf("status %q after a refused deactivation, want active", got.Status)
	}
	if n := f.count(t, "SELECT count(*) FROM keys WHERE id = $1 AND owner_id = $2", k2.ID, f.m.ID); n != 1 {
		t.Errorf("a refused reassign moved the key")
	}
}
