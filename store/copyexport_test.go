package store_test

import (
	"testing"

	"github.com/keyledger/keyledger"
)

// TestRevealForCopy: the quick copy reveals what the full form would
// reveal without asking anything, audited as any reveal; a key whose
// environment asks for a reason or a step-up is refused before anything
// is opened or recorded, even for someone who may reveal it.
func TestRevealForCopy(t *testing.T) {
	t.Parallel()
	f := newRevealFixture(t)
	ctx := t.Context()

	rev, err := f.s.RevealForCopy(ctx, as(f.other), f.keys["development"].ID)
	if err != nil {
		t.Fatal(err)
	}
	if rev.Value != f.values["development"] || rev.Version != 1 {
		t.Errorf("revealed version %d, value matches: %v", rev.Version, rev.Value == f.values["development"])
	}
	if n := f.reveals(t, f.keys["development"].ID); n != 1 {
		t.Errorf("%d reveal events after a quick copy, want 1", n)
	}
	for _, envName := range []string{"staging", "production"} {
		for _, u := range []*keyledger.User{f.owner, f.admin} {
			before := f.tableCounts(t)
			_, err := f.s.RevealForCopy(ctx, as(u), f.keys[envName].ID)
			wantCode(t, err, keyledger.EINVALID)
			if after := f.tableCounts(t); after["audit_events"] != before["audit_events"] {
				t.Errorf("%s by %s: a refused quick copy wrote an audit event", envName, u.Email)
			}
		}
	}
	// Who may reveal at all is decided first: a member is refused
	// production by policy, not by the form.
	_, err = f.s.RevealForCopy(ctx, as(f.other), f.keys["production"].ID)
	wantCode(t, err, keyledger.EFORBIDDEN)
	// A deactivated account is refused, however stale its actor.
	_, err = f.s.RevealForCopy(ctx, as(f.gone), f.keys["development"].ID)
	wantCode(t, err, keyledger.EFORBIDDEN)
}

// TestSetShell: the quick copy's shell is remembered per person, read back
// with the session's user, and only a known shell is stored.
func TestSetShell(t *testing.T) {
	t.Parallel()
	f := newRevealFixture(t)
	ctx := t.Context()
	if got := f.other.Shell; got != keyledger.DefaultShell {
		t.Errorf("a new user's shell is %q, want %q", got, keyledger.DefaultShell)
	}
	if err := f.s.SetShell(ctx, as(f.other), "fish"); err != nil {
		t.Fatal(err)
	}
	u, err := f.s.UserByEmail(ctx, f.other.Email)
	if err != nil {
		t.Fatal(err)
	}
	if u.Shell != keyledger.FormatFish {
		t.Errorf("shell %q after choosing fish", u.Shell)
	}
	for _, bad := range []string{"", "zsh", "env-file", "fish; DROP TABLE users"} {
		wantField(t, f.s.SetShell(ctx, as(f.other), bad), keyledger.EINVALID, "shell")
	}
	// Someone else's choice is untouched.
	if u, err := f.s.UserByEmail(ctx, f.owner.Email); err != nil || u.Shell != keyledger.DefaultShell {
		t.Errorf("another user's shell is %q (%v)", u.Shell, err)
	}
	wantCode(t, f.s.SetShell(ctx, as(f.gone), "fish"), keyledger.EFORBIDDEN)
	wantCode(t, f.s.SetShell(ctx, keyledger.Actor{}, "fish"), keyledger.EUNAUTHORIZED)
}
