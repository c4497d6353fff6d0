package store_test

import (
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// TestListEpochMovesWithEveryListWrite: the list epoch a session read carries
// must move with every committed write the key list shows (or a cached
// page would hide it), once per transaction, and must not move with the
// hot paths the list does not show (reveals, session reads), or caching
// would be useless under load.
func TestListEpochMovesWithEveryListWrite(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := t.Context()
	admin := f.user(t, "admin@example.com", keyledger.RoleAdmin)
	bob := f.user(t, "bob@example.com", keyledger.RoleMember)
	sid, err := f.s.StartSession(ctx, keyledger.Actor{IP: "203.0.113.7"}, admin, timeouts)
	if err != nil {
		t.Fatal(err)
	}
	all := int64(0)
	epoch := func() int64 {
		t.Helper()
		st, err := f.s.Session(ctx, sid, timeouts)
		if err != nil {
			t.Fatal(err)
		}
		if st.Epochs.All < st.Epochs.List || st.Epochs.All < all {
			t.Errorf("epochs %+v after All was %d: All must hold List and never go back", st.Epochs, all)
		}
		all = st.Epochs.All
		return st.Epochs.List
	}
	last := epoch()
	if last <= 0 {
		t.Fatalf("epoch %d, want a positive number", last)
	}
	moved := func(what string, want bool) {
		t.Helper()
		now := epoch()
		if got := now != last; got != want {
			t.Errorf("%s: epoch %d → %d, moved = %v, want %v", what, last, now, got, want)
		}
		if now < last {
			t.Errorf("%s: epoch went back from %d to %d", what, last, now)
		}
		last = now
	}
	moved("reading the session again", false)

	k := f.key(t, admin, devKey("openai-dev", bob.Email, secretValue(t, "sk-proj-")))
	moved("registering a key", true)
	allBefore := all
	if _, err := f.s.Reveal(ctx, as(admin), k.ID, "debugging"); err != nil {
		t.Fatal(err)
	}
	moved("a reveal (audited, not on the list)", false)
	if all == allBefore {
		t.Error("a reveal did not move the activity epoch: the dashboard would keep calling the key stale")
	}

	in := devKey("openai-dev", bob.Email, "")
	in.Description = "the checkout service"
	if _, err := f.s.UpdateKey(ctx, as(admin), k.ID, in); err != nil {
		t.Fatal(err)
	}
	moved("editing a key", true)

	if _, err := f.s.UpdateEnvironment(ctx, as(admin), "development", keyledger.EnvironmentInput{Name: "development",
		RevealPolicy: string(keyledger.RevealOwnerLeadsAdmins), RotationDays: "30"}); err != nil {
		t.Fatal(err)
	}
	moved("changing an environment's policy", true)

	if _, err := f.s.DeactivateUser(ctx, as(admin), bob.Email); err != nil {
		t.Fatal(err)
	}
	moved("deactivating the owner", true)

	if err := f.s.ArchiveKey(ctx, as(admin), k.ID); err != nil {
		t.Fatal(err)
	}
	moved("archiving the key", true)

	// One move per transaction, however many rows and tables it wrote,
	// whoever wrote it (a trigger, not the store's code, moves it).
	f.key(t, admin, devKey("anthropic-dev", admin.Email, secretValue(t, "sk-ant-api03-")))
	moved("registering another key", true)
	before := last
	if _, err := f.pool.Exec(ctx, "UPDATE keys SET description = description || '.'; UPDATE users SET name = name || '.'"); err != nil {
		t.Fatal(err)
	}
	moved("one raw transaction over two tables", true)
	if last != before+1 {
		t.Errorf("one transaction moved the epoch from %d to %d, want +1", before, last)
	}
}
