package store_test

import (
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// TestOffboardingFrozenEndToEnd walks DESIGN.md section 7 through: the
// checklist is built from the records, each real action ticks its item off
// (with who and when), it completes only when nothing is open, and the
// completed record no longer changes.
func TestOffboardingFrozenEndToEnd(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()

	a, _ := f.govKey(t, f.m, "alpha", "development")
	b, _ := f.govKey(t, f.m, "bravo", "production")
	c, _ := f.govKey(t, f.o, "charlie", "development")
	d, _ := f.govKey(t, f.o, "delta", "staging")
	x, _ := f.govKey(t, f.o, "xray", "development")
	untouched, _ := f.govKey(t, f.o, "untouched", "development")
	// m saw charlie and xray (reveal) and delta (export); n saw nothing.
	f.reveal(t, f.m, c.ID)
	f.reveal(t, f.m, x.ID)
	exp, err := f.s.ExportKeys(ctx, as(f.m), "staging", "gov", "deploying the worker", keyledger.FormatDotenv)
	if err != nil {
		t.Fatal(err)
	}
	if len(exp.Entries) != 1 || exp.Entries[0].KeyID != d.ID {
		t.Fatalf("export = %+v, want delta only", exp.Entries)
	}
	sid1, sid2 := f.login(t, f.m), f.login(t, f.m)
	nSession := f.login(t, f.n)

	// A member cannot start one; nobody can offboard themselves.
	_, err = f.s.StartOffboarding(ctx, as(f.n), f.m.Email, true, "")
	wantCode(t, err, keyledger.EFORBIDDEN)
	_, err = f.s.StartOffboarding(ctx, as(f.lead), f.lead.Email, true, "")
	wantField(t, err, keyledger.EINVALID, "user")
	_, err = f.s.StartOffboarding(ctx, as(f.lead), "nobody@example.com", true, "")
	wantField(t, err, keyledger.EINVALID, "user")
	if n := f.count(t, "SELECT count(*) FROM offboardings"); n != 0 {
		t.Fatalf("%d offboardings after refused starts", n)
	}

	id, err := f.s.StartOffboarding(ctx, as(f.lead), " M@Example.com ", true, "leaves on Friday")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.s.StartOffboarding(ctx, as(f.admin), f.m.Email, false, "")
	wantCode(t, err, keyledger.ECONFLICT)

	// Frozen: status, sessions, sign-in, reveals and exports.
	if got := f.fresh(t, f.m); got.Status != keyledger.UserFrozen {
		t.Errorf("status %q after a frozen start, want frozen", got.Status)
	}
	if n := f.count(t, "SELECT count(*) FROM sessions WHERE user_id = $1", f.m.ID); n != 0 {
		t.Errorf("%d sessions of the frozen user remain", n)
	}
	for _, sid := range []string{sid1, sid2} {
		if _, err := f.s.SessionUser(ctx, sid, timeouts); err != store.ErrNoSession {
			t.Errorf("SessionUser of a frozen user's session = %v, want ErrNoSession", err)
		}
	}
	if _, err := f.s.SessionUser(ctx, nSession, timeouts); err != nil {
		t.Errorf("n's session died with m's freeze: %v", err)
	}
	if _, err := f.s.Authenticate(ctx, govMeta, f.m.Email, testPassword); err != store.ErrBadCredentials {
		t.Errorf("Authenticate of a frozen user = %v, want ErrBadCredentials", err)
	}
	// The actor as a session loaded before the freeze would have it.
	_, err = f.s.Reveal(ctx, as(f.m), a.ID, "")
	wantCode(t, err, keyledger.EFORBIDDEN)
	_, err = f.s.ExportKeys(ctx, as(f.m), "development", "", "", keyledger.FormatBash)
	wantCode(t, err, keyledger.EFORBIDDEN)
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE actor_id = $1 AND action IN ('key.reveal', 'key.export') AND key_id = ANY($2::uuid[])",
		f.m.ID, []string{a.ID, untouched.ID}); n != 0 {
		t.Errorf("%d reveal/export events by the frozen user", n)
	}
	if n := f.actionCount(t, keyledger.ActionUserFreeze, ""); n != 1 {
		t.Errorf("%d user.freeze events, want 1", n)
	}
	if n := f.actionCount(t, keyledger.ActionOffboardStart, ""); n != 1 {
		t.Errorf("%d offboarding.start events, want 1", n)
	}

	// The checklist, built from the records.
	o := f.checklist(t, id)
	if o.User.ID != f.m.ID || !o.Frozen || o.Note != "leaves on Friday" || o.StartedBy != f.lead.Email || o.Completed() {
		t.Errorf("offboarding = %+v", o)
	}
	if len(o.Items) != 7 {
		t.Fatalf("%d items, want 7 (reassign alpha, bravo; rotate charlie, delta, xray; revoke; deactivate):%s", len(o.Items), describeItems(o))
	}
	for _, want := range []struct{ kind, key, env string }{
		{keyledger.ItemReassign, a.ID, "development"}, {keyledger.ItemReassign, b.ID, "production"},
		{keyledger.ItemRotate, c.ID, "development"}, {keyledger.ItemRotate, d.ID, "staging"}, {keyledger.ItemRotate, x.ID, "development"},
	} {
		it := mustItem(t, o, want.kind, want.key)
		if it.Status != keyledger.ItemOpen || it.Environment != want.env || it.KeyName == "" || it.Why == "" {
			t.Errorf("item %+v, want open in %s", it, want.env)
		}
	}
	if it := mustItem(t, o, keyledger.ItemRotate, c.ID); !strings.Contains(it.Why, "version 1") || !strings.Contains(it.Why, "reveal") {
		t.Errorf("why of rotate charlie = %q, want the version and the reveal", it.Why)
	}
	if it := mustItem(t, o, keyledger.ItemRotate, d.ID); !strings.Contains(it.Why, "version 1") || !strings.Contains(it.Why, "export") {
		t.Errorf("why of rotate delta = %q, want the version and the export", it.Why)
	}
	if _, ok := findItem(o, keyledger.ItemRotate, untouched.ID); ok {
		t.Error("a key m never saw is on the checklist")
	}
	if _, ok := findItem(o, keyledger.ItemReassign, c.ID); ok {
		t.Error("a key m does not own has a reassign item")
	}
	// Freezing deleted the sessions: the revoke item is ticked off by the
	// start itself, in the lead's name.
	wantResolved(t, mustItem(t, o, keyledger.ItemRevoke, ""), keyledger.ItemDone, "sessions and tokens revoked", f.lead.Email)
	if it := mustItem(t, o, keyledger.ItemDeactivate, ""); it.Status != keyledger.ItemOpen {
		t.Errorf("deactivate item %+v, want open", it)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2", keyledger.ActionOffboardAdd, f.m.ID); n != 5 {
		t.Errorf("%d offboarding.item_added events, want one per key item (5)", n)
	}

	list, err := f.s.ListOffboardings(ctx, as(f.lead))
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].ID != id || list[0].UserEmail != f.m.Email || list[0].Open != 6 || list[0].Total != 7 || !list[0].Frozen || list[0].CompletedAt != nil {
		t.Errorf("ListOffboardings = %+v", list)
	}
	_, err = f.s.ListOffboardings(ctx, as(f.n))
	wantCode(t, err, keyledger.EFORBIDDEN)
	_, err = f.s.Offboarding(ctx, as(f.n), id)
	wantCode(t, err, keyledger.EFORBIDDEN)
	_, err = f.s.Offboarding(ctx, as(f.lead), id+1000)
	wantCode(t, err, keyledger.ENOTFOUND)

	wantCode(t, f.s.CompleteOffboarding(ctx, as(f.lead), id), keyledger.ECONFLICT)

	// Reassign everything m owns to n: both items resolve, in the lead's
	// name, with the new owner, and the audit log says so per key.
	moved, err := f.s.ReassignKeys(ctx, as(f.lead), f.m.ID, f.n.Email, nil)
	if err != nil || moved != 2 {
		t.Fatalf("ReassignKeys = %d, %v; want 2", moved, err)
	}
	o = f.checklist(t, id)
	for _, k := range []*keyledger.Key{a, b} {
		wantResolved(t, mustItem(t, o, keyledger.ItemReassign, k.ID), keyledger.ItemDone, "now owned by "+f.n.Email, f.lead.Email)
		got, err := f.s.GetKey(ctx, as(f.lead), k.ID)
		if err != nil || got.OwnerID != f.n.ID {
			t.Errorf("owner of %s after reassign: %+v %v", k.Name, got, err)
		}
		ev := f.events(t, keyledger.ActionKeyReassign, k.ID)
		if len(ev) != 1 || ev[0].Actor != f.lead.Email || ev[0].Details["from"] != f.m.Email || ev[0].Details["to"] != f.n.Email {
			t.Errorf("key.reassign events of %s = %+v", k.Name, ev)
		}
		ev = f.events(t, keyledger.ActionOffboardResolve, k.ID)
		if len(ev) != 1 || ev[0].Details["kind"] != keyledger.ItemReassign || ev[0].Actor != f.lead.Email {
			t.Errorf("offboarding.item_resolved events of %s = %+v", k.Name, ev)
		}
	}

	// Rotating charlie resolves its item, in the rotating owner's name;
	// archiving delta resolves delta's.
	f.rotate(t, f.o, c.ID)
	if err := f.s.ArchiveKey(ctx, as(f.o), d.ID); err != nil {
		t.Fatal(err)
	}
	o = f.checklist(t, id)
	wantResolved(t, mustItem(t, o, keyledger.ItemRotate, c.ID), keyledger.ItemDone, "rotated to version 2", f.o.Email)
	wantResolved(t, mustItem(t, o, keyledger.ItemRotate, d.ID), keyledger.ItemDone, "key archived (its versions destroyed)", f.o.Email)
	for _, k := range []*keyledger.Key{c, d} {
		if n := f.actionCount(t, keyledger.ActionOffboardResolve, k.ID); n != 1 {
			t.Errorf("%d item_resolved events for %s, want 1", n, k.Name)
		}
	}
	wantCode(t, f.s.CompleteOffboarding(ctx, as(f.lead), id), keyledger.ECONFLICT)

	// Waive xray: a reason is required.
	xi := mustItem(t, o, keyledger.ItemRotate, x.ID)
	wantField(t, f.s.WaiveItem(ctx, as(f.lead), id, xi.ID, "   "), keyledger.EINVALID, "reason")
	wantCode(t, f.s.WaiveItem(ctx, as(f.n), id, xi.ID, "because"), keyledger.EFORBIDDEN)
	wantCode(t, f.s.WaiveItem(ctx, as(f.lead), id+1000, xi.ID, "because"), keyledger.ENOTFOUND)
	if err := f.s.WaiveItem(ctx, as(f.lead), id, xi.ID, "revoked at the provider already"); err != nil {
		t.Fatal(err)
	}
	wantCode(t, f.s.WaiveItem(ctx, as(f.lead), id, xi.ID, "again"), keyledger.ECONFLICT)
	o = f.checklist(t, id)
	if it := mustItem(t, o, keyledger.ItemRotate, x.ID); it.Status != keyledger.ItemWaived || !strings.Contains(it.Resolution, "revoked at the provider already") ||
		it.ResolvedBy != f.lead.Email || it.ResolvedAt == nil {
		t.Errorf("waived item = %+v", it)
	}
	if ev := f.events(t, keyledger.ActionOffboardWaive, x.ID); len(ev) != 1 || ev[0].Reason != "revoked at the provider already" {
		t.Errorf("offboarding.item_waived events = %+v", ev)
	}

	// Revoke access: nothing left to delete, still allowed and audited.
	if err := f.s.RevokeAccess(ctx, as(f.lead), id); err != nil {
		t.Fatal(err)
	}
	wantCode(t, f.s.RevokeAccess(ctx, as(f.n), id), keyledger.EFORBIDDEN)
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2", keyledger.ActionSessionRevoke, f.m.ID); n != 1 {
		t.Errorf("%d session.revoke events for m, want 1", n)
	}

	// The admin deactivates m: the last item resolves.
	if _, err := f.s.DeactivateUser(ctx, as(f.admin), f.m.Email); err != nil {
		t.Fatal(err)
	}
	o = f.checklist(t, id)
	wantResolved(t, mustItem(t, o, keyledger.ItemDeactivate, ""), keyledger.ItemDone, "account deactivated", f.admin.Email)
	if o.Open() != 0 || o.ProgressPercent() != 100 {
		t.Fatalf("%d items open (%d%%):%s", o.Open(), o.ProgressPercent(), describeItems(o))
	}

	if err := f.s.CompleteOffboarding(ctx, as(f.lead), id); err != nil {
		t.Fatal(err)
	}
	// Complete: the record is immutable, and keeps who did what when.
	wantCode(t, f.s.CompleteOffboarding(ctx, as(f.lead), id), keyledger.ECONFLICT)
	wantCode(t, f.s.WaiveItem(ctx, as(f.lead), id, xi.ID, "late"), keyledger.ECONFLICT)
	wantCode(t, f.s.RevokeAccess(ctx, as(f.lead), id), keyledger.ECONFLICT)
	f.rotate(t, f.o, x.ID) // no longer ticks anything off
	o = f.checklist(t, id)
	if !o.Completed() || o.CompletedBy != f.lead.Email || o.CompletedAt.Before(o.StartedAt) {
		t.Errorf("completed offboarding = %+v", o)
	}
	if len(o.Items) != 7 {
		t.Errorf("%d items after completion, want 7", len(o.Items))
	}
	for _, it := range o.Items {
		if it.Status == keyledger.ItemOpen || it.Resolution == "" || it.ResolvedBy == "" || it.ResolvedAt == nil {
			t.Errorf("item after completion without its resolution: %+v", it)
		}
	}
	if it := mustItem(t, o, keyledger.ItemRotate, x.ID); it.Status != keyledger.ItemWaived {
		t.Errorf("a completed record changed: xray item %+v", it)
	}
	if n := f.actionCount(t, keyledger.ActionOffboardComplete, ""); n != 1 {
		t.Errorf("%d offboarding.complete events, want 1", n)
	}
	list, err = f.s.ListOffboardings(ctx, as(f.admin))
	if err != nil || len(list) != 1 || list[0].Open != 0 || list[0].CompletedAt == nil {
		t.Errorf("ListOffboardings after completion = %+v, %v", list, err)
	}
	verifyChained(t, f.s)
}

// TestOffboardingNotFrozen: without a freeze the person keeps working, and
// whatever they see meanwhile lands on the checklist in the same
// transaction; an item whose condition holds again reopens.
func TestOffboardingNotFrozen(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()

	c, _ := f.govKey(t, f.o, "charlie", "development")
	f.reveal(t, f.m, c.ID)
	sid := f.login(t, f.m)

	_, err := f.s.StartOffboarding(ctx, as(f.lead), f.m.Email, false, strings.Repeat("x", 501))
	wantField(t, err, keyledger.EINVALID, "note")
	id, err := f.s.StartOffboarding(ctx, as(f.lead), f.m.Email, false, "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.s.StartOffboarding(ctx, as(f.lead), f.m.Email, false, "")
	wantCode(t, err, keyledger.ECONFLICT)
	if got := f.fresh(t, f.m); got.Status != keyledger.UserActive {
		t.Errorf("status %q without a freeze, want active", got.Status)
	}
	if _, err := f.s.SessionUser(ctx, sid, timeouts); err != nil {
		t.Errorf("session ended without a freeze: %v", err)
	}
	o := f.checklist(t, id)
	if o.Frozen || len(o.Items) != 3 {
		t.Fatalf("frozen %v, %d items, want 3 (rotate charlie, revoke, deactivate):%s", o.Frozen, len(o.Items), describeItems(o))
	}
	for _, kind := range []string{keyledger.ItemRevoke, keyledger.ItemDeactivate} {
		if it := mustItem(t, o, kind, ""); it.Status != keyledger.ItemOpen {
			t.Errorf("%s item %+v, want open while m is active with a session", kind, it)
		}
	}

	// m reveals a new key: its rotate item appears at once.
	e, _ := f.govKey(t, f.o, "echo", "development")
	f.reveal(t, f.m, e.ID)
	o = f.checklist(t, id)
	if it := mustItem(t, o, keyledger.ItemRotate, e.ID); it.Status != keyledger.ItemOpen || !strings.Contains(it.Why, "version 1") {
		t.Errorf("rotate echo = %+v", it)
	}
	added := f.events(t, keyledger.ActionOffboardAdd, e.ID)
	if len(added) != 1 || added[0].Details["kind"] != keyledger.ItemRotate || added[0].Actor != f.m.Email {
		t.Errorf("offboarding.item_added events for echo = %+v", added)
	}
	// Others' reveals do not concern m's checklist.
	f.reveal(t, f.n, c.ID)
	if n := len(f.checklist(t, id).Items); n != 4 {
		t.Errorf("%d items after n's reveal, want 4", n)
	}

	// Rotation resolves charlie; m revealing the new version reopens it.
	f.rotate(t, f.o, c.ID)
	wantResolved(t, mustItem(t, f.checklist(t, id), keyledger.ItemRotate, c.ID), keyledger.ItemDone, "rotated to version 2", f.o.Email)
	f.reveal(t, f.m, c.ID)
	o = f.checklist(t, id)
	it := mustItem(t, o, keyledger.ItemRotate, c.ID)
	if it.Status != keyledger.ItemOpen || it.Resolution != "" || it.ResolvedBy != "" || it.ResolvedAt != nil || !strings.Contains(it.Why, "version 2") {
		t.Errorf("rotate charlie after m saw version 2 = %+v, want reopened", it)
	}
	if n := f.actionCount(t, keyledger.ActionOffboardAdd, c.ID); n != 2 {
		t.Errorf("%d item_added events for charlie, want 2 (start, reopen)", n)
	}
	// Revealing the same version again changes nothing.
	f.reveal(t, f.m, c.ID)
	if n := f.actionCount(t, keyledger.ActionOffboardAdd, c.ID); n != 2 {
		t.Errorf("%d item_added events for charlie after a repeat reveal, want 2", n)
	}

	// A key handed to m appears as a reassign item; handed back, it
	// resolves; handed to m again, it reopens.
	g, _ := f.govKey(t, f.n, "golf", "development")
	if _, err := f.s.ReassignKeys(ctx, as(f.lead), f.n.ID, f.m.Email, []string{g.ID}); err != nil {
		t.Fatal(err)
	}
	if it := mustItem(t, f.checklist(t, id), keyledger.ItemReassign, g.ID); it.Status != keyledger.ItemOpen {
		t.Errorf("reassign golf = %+v, want open", it)
	}
	if _, err := f.s.ReassignKeys(ctx, as(f.lead), f.m.ID, f.n.Email, []string{g.ID}); err != nil {
		t.Fatal(err)
	}
	wantResolved(t, mustItem(t, f.checklist(t, id), keyledger.ItemReassign, g.ID), keyledger.ItemDone, "now owned by "+f.n.Email, f.lead.Email)
	if _, err := f.s.ReassignKeys(ctx, as(f.admin), f.n.ID, f.m.Email, []string{g.ID}); err != nil {
		t.Fatal(err)
	}
	if it := mustItem(t, f.checklist(t, id), keyledger.ItemReassign, g.ID); it.Status != keyledger.ItemOpen {
		t.Errorf("reassign golf handed back to m = %+v, want reopened", it)
	}

	// Revoke access ends the live session and resolves the item.
	if err := f.s.RevokeAccess(ctx, as(f.lead), id); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.SessionUser(ctx, sid, timeouts); err != store.ErrNoSession {
		t.Errorf("SessionUser after RevokeAccess = %v, want ErrNoSession", err)
	}
	wantResolved(t, mustItem(t, f.checklist(t, id), keyledger.ItemRevoke, ""), keyledger.ItemDone, "1 sessions and 0 tokens revoked", f.lead.Email)
	wantCode(t, f.s.CompleteOffboarding(ctx, as(f.lead), id), keyledger.ECONFLICT)
	verifyChained(t, f.s)
}

// TestOffboardingKeyRegisteredDuringOffboarding: a key registered with the
// departing person as owner is theirs to hand over; the checklist must not
// lag behind the records ("callers run it in the same transaction as the
// action, so the checklist can never lag behind what was done").
func TestOffboardingKeyRegisteredDuringOffboarding(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	id, err := f.s.StartOffboarding(ctx, as(f.lead), f.m.Email, false, "")
	if err != nil {
		t.Fatal(err)
	}
	g, _ := f.govKey(t, f.m, "golf", "development")
	if _, ok := findItem(f.checklist(t, id), keyledger.ItemReassign, g.ID); !ok {
		t.Errorf("a key registered for m during the offboarding is not on the checklist (CreateKey does not sync offboardings):%s",
			describeItems(f.checklist(t, id)))
	}
	// Completion re-syncs, so at least the checklist cannot close over it.
	if err := f.s.RevokeAccess(ctx, as(f.lead), id); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.DeactivateUser(ctx, as(f.admin), f.m.Email); err != nil {
		t.Fatal(err)
	}
	wantCode(t, f.s.CompleteOffboarding(ctx, as(f.lead), id), keyledger.ECONFLICT)
	if it := mustItem(t, f.checklist(t, id), keyledger.ItemReassign, g.ID); it.Status != keyledger.ItemOpen {
		t.Errorf("reassign golf = %+v, want open", it)
	}
}

// TestOffboardingReactivatedAccount: once the account is active again, the
// deactivate item is no longer true and the checklist must not complete.
func TestOffboardingReactivatedAccount(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	id, err := f.s.StartOffboarding(ctx, as(f.lead), f.m.Email, true, "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.DeactivateUser(ctx, as(f.admin), f.m.Email); err != nil {
		t.Fatal(err)
	}
	if o := f.checklist(t, id); o.Open() != 0 {
		t.Fatalf("%d items open after freeze and deactivation:%s", o.Open(), describeItems(o))
	}
	if _, err := f.s.ReactivateUser(ctx, as(f.admin), f.m.ID); err != nil {
		t.Fatal(err)
	}
	sid := f.login(t, f.fresh(t, f.m))
	if _, err := f.s.SessionUser(ctx, sid, timeouts); err != nil {
		t.Fatal(err)
	}
	err = f.s.CompleteOffboarding(ctx, as(f.lead), id)
	if keyledger.ErrorCode(err) != keyledger.ECONFLICT {
		t.Errorf("CompleteOffboarding with the account active again and signed in = %v, want ECONFLICT (deactivate and revoke items should reopen)%s",
			err, describeItems(f.checklist(t, id)))
	}
}

// TestOffboardingDeactivatedUser: a person already gone can still be
// offboarded (the keys they saw must be rotated); there is nothing to
// freeze, and the account items are done from the start.
func TestOffboardingDeactivatedUser(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	c, _ := f.govKey(t, f.o, "charlie", "development")
	f.reveal(t, f.m, c.ID)
	if _, err := f.s.DeactivateUser(ctx, as(f.admin), f.m.Email); err != nil {
		t.Fatal(err)
	}
	id, err := f.s.StartOffboarding(ctx, as(f.lead), f.m.Email, true, "")
	if err != nil {
		t.Fatal(err)
	}
	o := f.checklist(t, id)
	if o.Frozen || o.User.Status != keyledger.UserDeactivated {
		t.Errorf("offboarding of a deactivated user: frozen %v, status %q", o.Frozen, o.User.Status)
	}
	if n := f.actionCount(t, keyledger.ActionUserFreeze, ""); n != 0 {
		t.Errorf("%d user.freeze events for a deactivated user", n)
	}
	wantResolved(t, mustItem(t, o, keyledger.ItemDeactivate, ""), keyledger.ItemDone, "account deactivated", f.lead.Email)
	wantResolved(t, mustItem(t, o, keyledger.ItemRevoke, ""), keyledger.ItemDone, "sessions and tokens revoked", f.lead.Email)
	if it := mustItem(t, o, keyledger.ItemRotate, c.ID); it.Status != keyledger.ItemOpen {
		t.Errorf("rotate charlie = %+v", it)
	}
	f.rotate(t, f.o, c.ID)
	if err := f.s.CompleteOffboarding(ctx, as(f.admin), id); err != nil {
		t.Fatal(err)
	}
}

// TestOffboardingFreezeKeepsAnAdmin: freezing cuts access like a
// deactivation, so it must not leave the instance without an active admin
// (the guard SetRole and DeactivateUser apply). Only admins may offboard
// an admin at all, so a lead is refused before that guard.
func TestOffboardingFreezeKeepsAnAdmin(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	_, err := f.s.StartOffboarding(ctx, as(f.lead), f.admin.Email, true, "")
	if got := f.fresh(t, f.admin); got.Status != keyledger.UserActive || keyledger.ErrorCode(err) != keyledger.EFORBIDDEN {
		t.Errorf("a lead froze the last active admin (err %v, status %q); want EFORBIDDEN and the admin left active", err, got.Status)
	}
	// With a second admin, a lead still may not freeze one; an admin may.
	f2 := newGovFixture(t)
	second := f2.user(t, "second-admin@example.com", keyledger.RoleAdmin)
	if _, err := f2.s.StartOffboarding(ctx, as(f2.lead), second.Email, true, ""); keyledger.ErrorCode(err) != keyledger.EFORBIDDEN {
		t.Errorf("a lead freezing one of two admins: %v, want EFORBIDDEN", err)
	}
	if got := f2.fresh(t, second); got.Status != keyledger.UserActive {
		t.Errorf("after a refused freeze the admin is %q", got.Status)
	}
	if _, err := f2.s.StartOffboarding(ctx, as(f2.admin), second.Email, true, ""); err != nil {
		t.Errorf("an admin freezing one of two admins: %v", err)
	}
}

// TestOffboardingSubjectCannotWorkOwnChecklist: a departing lead who was
// not frozen must not waive the items of their own checklist (e.g. "rotate
// what I saw") or close it: the same rule as "you cannot offboard
// yourself".
func TestOffboardingSubjectCannotWorkOwnChecklist(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	leaving := f.user(t, "leaving-lead@example.com", keyledger.RoleLead)
	c, _ := f.govKey(t, f.o, "charlie", "production")
	f.reveal(t, leaving, c.ID)
	id, err := f.s.StartOffboarding(ctx, as(f.lead), leaving.Email, false, "")
	if err != nil {
		t.Fatal(err)
	}
	it := mustItem(t, f.checklist(t, id), keyledger.ItemRotate, c.ID)
	if err := f.s.WaiveItem(ctx, as(leaving), id, it.ID, "I promise I forgot it"); err == nil {
		t.Error("the departing lead waived an item of their own offboarding")
	}
	if got := mustItem(t, f.checklist(t, id), keyledger.ItemRotate, c.ID); got.Status != keyledger.ItemOpen {
		t.Errorf("own item after self-waive: %+v", got)
	}
	for _, item := range f.checklist(t, id).Items {
		if item.Status == keyledger.ItemOpen {
			_ = f.s.WaiveItem(ctx, as(f.lead), id, item.ID, "test: everything else waived by the lead")
		}
	}
	if err := f.s.CompleteOffboarding(ctx, as(leaving), id); err == nil {
		t.Error("the departing lead completed their own offboarding")
	}
}
