package store_test

import (
	"testing"

	"github.com/keyledger/keyledger"
)

// TestReadsTakeTheActor: the reads that serve a person (user lists and
// pickers, a user's record, the two-factor policies, the project menu)
// take the actor and apply the root package's rule themselves, so what a
// person may see no longer depends on which check a handler ran first.
// A user someone may not see is "not found", as if it did not exist. Jobs
// and the CLI pass a system actor.
func TestReadsTakeTheActor(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	f.govKey(t, f.m, "alpha", "development")
	gone := *f.n
	gone.Status = keyledger.UserDeactivated
	system := keyledger.SystemActor("test")

	type read struct {
		name string
		call func(keyledger.Actor) error
	}
	reads := []read{
		{"ListUsers", func(a keyledger.Actor) error { _, err := f.s.ListUsers(ctx, a); return err }},
		{"ActiveUsers", func(a keyledger.Actor) error { _, err := f.s.ActiveUsers(ctx, a); return err }},
		{"UserByID(other)", func(a keyledger.Actor) error { _, err := f.s.UserByID(ctx, a, f.o.ID); return err }},
		{"RolePolicies", func(a keyledger.Actor) error { _, err := f.s.RolePolicies(ctx, a); return err }},
		{"Projects", func(a keyledger.Actor) error { _, err := f.s.Projects(ctx, a); return err }},
	}
	want := map[string]map[string]string{ // actor → read → error code ("" = allowed)
		"admin":  {},
		"lead":   {"RolePolicies": keyledger.EFORBIDDEN},
		"member": {"ListUsers": keyledger.EFORBIDDEN, "UserByID(other)": keyledger.ENOTFOUND, "RolePolicies": keyledger.EFORBIDDEN},
		"gone":   {"ListUsers": keyledger.EFORBIDDEN, "ActiveUsers": keyledger.EFORBIDDEN, "UserByID(other)": keyledger.ENOTFOUND, "RolePolicies": keyledger.EFORBIDDEN, "Projects": keyledger.EFORBIDDEN},
		"system": {},
		"nobody": {"ListUsers": keyledger.EFORBIDDEN, "ActiveUsers": keyledger.EFORBIDDEN, "UserByID(other)": keyledger.ENOTFOUND, "RolePolicies": keyledger.EFORBIDDEN, "Projects": keyledger.EFORBIDDEN},
		"token":  {"ListUsers": keyledger.EFORBIDDEN, "UserByID(other)": keyledger.ENOTFOUND, "RolePolicies": keyledger.EFORBIDDEN},
	}
	token := as(f.m)
	token.Token = &keyledger.Token{ID: 1}
	actors := map[string]keyledger.Actor{"admin": as(f.admin), "lead": as(f.lead), "member": as(f.m), "gone": as(&gone),
		"system": system, "nobody": {}, "token": token}
	for name, a := range actors {
		for _, r := range reads {
			err := r.call(a)
			code := want[name][r.name]
			if code == "" {
				if err != nil {
					t.Errorf("%s %s: %v, want allowed", name, r.name, err)
				}
				continue
			}
			if got := keyledger.ErrorCode(err); got != code {
				t.Errorf("%s %s: %v (%s), want %s", name, r.name, err, got, code)
			}
		}
	}
	// A person may read their own record.
	if u, err := f.s.UserByID(ctx, as(f.m), f.m.ID); err != nil || u.ID != f.m.ID {
		t.Errorf("UserByID(self) = %v, %v", u, err)
	}
}
