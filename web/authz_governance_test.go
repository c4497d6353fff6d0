package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
)

// Authorization matrix cases of the lead tools (dashboard, CSV downloads,
// people, offboarding); listed in authzCases.

func isLead(actor string) bool { return actor == actorAdmin || actor == actorLead }

// leadsOnly: leads and admins get ok, members are refused.
func leadsOnly(method string, path func() string, ok func() authzWant) func(string, string, *keyledger.Key) authzWant {
	return func(a, _ string, _ *keyledger.Key) authzWant {
		if isLead(a) {
			return ok()
		}
		return needUser(a, method, path(), no403)
	}
}

var csvFile = authzWant{status: http.StatusOK, file: true}

// govObState carries what a case's prepare set up to its path, want and
// check (the actors of one route run one after the other).
type govObState struct {
	oid    int64
	revoke int64
	user   *keyledger.User
	key    *keyledger.Key
	// admin: the departing person is an admin, whom only admins may
	// offboard (an admin starts the checklist).
	admin bool
}

func (st *govObState) path(suffix string) func(*keyledger.Key) string {
	return func(*keyledger.Key) string { return fmt.Sprintf("/offboarding/%d%s", st.oid, suffix) }
}

func (st *govObState) loc(marker string) func() authzWant {
	return func() authzWant {
		return authzWant{status: http.StatusSeeOther, location: fmt.Sprintf("/offboarding/%d?%s=1", st.oid, marker)}
	}
}

// prepare creates a departing member (owning a key with withKey) and
// starts their offboarding as the lead.
func (st *govObState) prepare(freeze, withKey, deactivate bool) func(*testing.T, *testEnv, *keyledger.Key, string) []string {
	return func(t *testing.T, env *testEnv, _ *keyledger.Key, uniq string) []string {
		t.Helper()
		ctx := context.Background()
		role, starter := keyledger.RoleMember, "lead"
		if st.admin {
			role, starter = keyledger.RoleAdmin, "admin"
		}
		u, err := env.Store.CreateUser(ctx, keyledger.SystemActor("test"), keyledger.NewUser{
			Email: "ob-" + uniq + "@example.com", Name: "Leaving " + uniq, Role: role, Password: Password})
		if err != nil {
			t.Fatal(err)
		}
		st.user, st.key = u, nil
		var secrets []string
		if withKey {
			v := authzSecret()
			res, err := env.Store.CreateKey(ctx, keyledger.Actor{User: u}, keyledger.KeyInput{
				Name: "ob " + uniq, Project: "checkout", Environment: "development", OwnerEmail: u.Email, Value: v})
			if err != nil {
				t.Fatal(err)
			}
			st.key, secrets = res.Key, []string{v}
		}
		if st.oid, err = env.Store.StartOffboarding(ctx, actorOf(env, starter), u.Email, freeze, "authz matrix"); err != nil {
			t.Fatal(err)
		}
		if deactivate {
			if _, err := env.Store.DeactivateUser(ctx, keyledger.SystemActor("test"), u.Email); err != nil {
				t.Fatal(err)
			}
		}
		o, err := env.Store.Offboarding(ctx, actorOf(env, "lead"), st.oid)
		if err != nil {
			t.Fatal(err)
		}
		for _, it := range o.Items {
			if it.Kind == keyledger.ItemRevoke {
				st.revoke = it.ID
			}
		}
		return secrets
	}
}

// item reads one item of the case's checklist.
func (st *govObState) item(t *testing.T, env *testEnv, kind string) keyledger.OffboardingItem {
	t.Helper()
	o, err := env.Store.Offboarding(context.Background(), actorOf(env, "admin"), st.oid)
	if err != nil {
		t.Fatal(err)
	}
	for _, it := range o.Items {
		if it.Kind == kind {
			return it
		}
	}
	t.Fatalf("no %s item", kind)
	return keyledger.OffboardingItem{}
}

// checkDone: the item of kind is resolved iff the request succeeded.
func (st *govObState) checkDone(kind, status string) func(*testing.T, *testEnv, *keyledger.Key, url.Values, authzWant) {
	return func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
		it := st.item(t, env, kind)
		if done := it.Status == status; done != (got.status == http.StatusSeeOther) {
			t.Errorf("%s item %s after status %d", kind, it.Status, got.status)
		}
	}
}

func authzGovernanceCases() []authzCase {
	var memberID int64
	var cellKey string
	memberPage := func() string { return fmt.Sprintf("/users/%d", memberID) }
	rememberMember := func(t *testing.T, env *testEnv, _ *keyledger.Key, _ string) []string {
		memberID = env.Users["member"].ID
		return nil
	}
	start, startAdmin := &govObState{}, &govObState{}
	revokeAdmin, waiveAdmin, completeAdmin := &govObState{admin: true}, &govObState{admin: true}, &govObState{admin: true}
	// adminsOnly: only admins get ok; leads are refused like members.
	adminsOnly := func(ok func() authzWant) func(string, string, *keyledger.Key) authzWant {
		return func(a, _ string, _ *keyledger.Key) authzWant {
			if a == actorAdmin {
				return ok()
			}
			return needUser(a, "POST", "", no403)
		}
	}
	view, record, waive, reassign, revoke, deactivate, complete := &govObState{}, &govObState{}, &govObState{}, &govObState{}, &govObState{}, &govObState{}, &govObState{}
	providerRevoke := &govObState{}
	fixed := func(p string) func() string { return func() string { return p } }
	return []authzCase{
		{route: "GET /dashboard", method: "GET", path: fixedPath("/dashboard"),
			want: leadsOnly("GET", fixed("/dashboard"), func() authzWant { return ok200 }),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if got.status == http.StatusOK && !strings.Contains(got.body, "Keys per owner") {
					t.Error("the dashboard has no owner table")
				}
			}},
		{route: "GET /keys.csv", method: "GET", perEnv: true, needsKey: true, path: fixedPath("/keys.csv"),
			want: func(a, _ string, _ *keyledger.Key) authzWant { return needUser(a, "GET", "/keys.csv", csvFile) },
			check: func(t *testing.T, _ *testEnv, k *keyledger.Key, _ url.Values, got authzWant) {
				if got.status == http.StatusOK && !strings.Contains(got.body, k.Name) {
					t.Error("the key CSV lacks the key")
				}
			}},
		{route: "GET /audit.csv", method: "GET", path: fixedPath("/audit.csv"),
			want: leadsOnly("GET", fixed("/audit.csv"), func() authzWant { return csvFile }),
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if got.status == http.StatusOK && !strings.HasPrefix(got.body, "id,time,actor,action,") {
					t.Errorf("the audit CSV starts %q", got.body[:min(len(got.body), 40)])
				}
			}},
		// member's own page: theirs, leads' and admins'; anyone else
		// finds no such person.
		{route: "GET /users/:uid", method: "GET", prepare: rememberMember,
			path: func(*keyledger.Key) string { return memberPage() },
			want: func(a, _ string, _ *keyledger.Key) authzWant {
				switch {
				case isLead(a) || a == actorOwner:
					return ok200
				case a == actorNonOwner:
					return nf404
				}
				return needUser(a, "GET", memberPage(), ok200)
			}},
		// The cell's own key only (earlier cells' keys stay put).
		{route: "POST /users/:uid/reassign", method: "POST", perEnv: true, needsKey: true,
			prepare: func(_ *testing.T, _ *testEnv, k *keyledger.Key, _ string) []string { cellKey = k.ID; return nil },
			path:    func(k *keyledger.Key) string { return fmt.Sprintf("/users/%d/reassign", k.OwnerID) },
			form: func(string, string, string) url.Values {
				return url.Values{"owner": {"member2@example.com"}, "key": {cellKey}}
			},
			want: func(a, _ string, k *keyledger.Key) authzWant {
				if isLead(a) {
					return authzWant{status: http.StatusSeeOther, location: fmt.Sprintf("/users/%d?reassigned=1", k.OwnerID)}
				}
				return needUser(a, "POST", "", no403)
			},
			check: func(t *testing.T, env *testEnv, k *keyledger.Key, _ url.Values, got authzWant) {
				moved := authzGetKey(env, t, k.ID).OwnerEmail == "member2@example.com"
				if moved != (got.status == http.StatusSeeOther) {
					t.Errorf("key moved = %v after status %d", moved, got.status)
				}
			}},
		{route: "GET /offboarding", method: "GET", path: fixedPath("/offboarding"),
			want: leadsOnly("GET", fixed("/offboarding"), func() authzWant { return ok200 })},
		{route: "POST /offboarding", method: "POST", path: fixedPath("/offboarding"),
			prepare: func(t *testing.T, env *testEnv, _ *keyledger.Key, uniq string) []string {
				u, err := env.Store.CreateUser(context.Background(), keyledger.SystemActor("test"), keyledger.NewUser{
					Email: "ob-" + uniq + "@example.com", Name: "Leaving", Role: keyledger.RoleMember, Password: Password})
				if err != nil {
					t.Fatal(err)
				}
				start.user = u
				return nil
			},
			form: func(_, _, uniq string) url.Values {
				return url.Values{"user": {"ob-" + uniq + "@example.com"}, "freeze": {"1"}, "note": {"authz matrix"}}
			},
			want: leadsOnly("POST", fixed(""), func() authzWant { return authzWant{status: http.StatusSeeOther} }),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				var n int
				var status string
				if err := env.Pool.QueryRow(context.Background(), `SELECT count(o.id), min(u.status) FROM users u LEFT JOIN offboardings o ON o.user_id = u.id
					WHERE u.id = $1`, start.user.ID).Scan(&n, &status); err != nil {
					t.Fatal(err)
				}
				started := got.status == http.StatusSeeOther
				if (n == 1) != started || (status == "frozen") != started {
					t.Errorf("%d offboardings, status %s after status %d", n, status, got.status)
				}
				if started && !strings.HasPrefix(got.location, "/offboarding/") {
					t.Errorf("Location %q", got.location)
				}
			}},
		// Only admins may offboard an admin (freeze, revoke, waive,
		// complete): a lead must not be able to lock the admins out.
		{route: "POST /offboarding", name: "of an admin", method: "POST", path: fixedPath("/offboarding"),
			prepare: func(t *testing.T, env *testEnv, _ *keyledger.Key, uniq string) []string {
				u, err := env.Store.CreateUser(context.Background(), keyledger.SystemActor("test"), keyledger.NewUser{
					Email: "ob-" + uniq + "@example.com", Name: "Leaving admin", Role: keyledger.RoleAdmin, Password: Password})
				if err != nil {
					t.Fatal(err)
				}
				startAdmin.user = u
				return nil
			},
			form: func(_, _, uniq string) url.Values {
				return url.Values{"user": {"ob-" + uniq + "@example.com"}, "freeze": {"1"}, "note": {"authz matrix"}}
			},
			want: adminsOnly(func() authzWant { return authzWant{status: http.StatusSeeOther} }),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				var n int
				var status string
				if err := env.Pool.QueryRow(context.Background(), `SELECT count(o.id), min(u.status) FROM users u LEFT JOIN offboardings o ON o.user_id = u.id
					WHERE u.id = $1`, startAdmin.user.ID).Scan(&n, &status); err != nil {
					t.Fatal(err)
				}
				started := got.status == http.StatusSeeOther
				if (n == 1) != started || (status == "frozen") != started {
					t.Errorf("%d offboardings, status %s after status %d", n, status, got.status)
				}
			}},
		{route: "POST /offboarding/:oid/revoke", name: "of an admin", method: "POST", prepare: revokeAdmin.prepare(false, false, false), path: revokeAdmin.path("/revoke"),
			want:  adminsOnly(revokeAdmin.loc("revoked")),
			check: revokeAdmin.checkDone(keyledger.ItemRevoke, keyledger.ItemDone)},
		{route: "POST /offboarding/:oid/items/:item/waive", name: "of an admin", method: "POST", prepare: waiveAdmin.prepare(false, false, false),
			path: func(k *keyledger.Key) string {
				return fmt.Sprintf("/offboarding/%d/items/%d/waive", waiveAdmin.oid, waiveAdmin.revoke)
			},
			form:  func(string, string, string) url.Values { return url.Values{"reason": {"authz matrix"}} },
			want:  adminsOnly(waiveAdmin.loc("waived")),
			check: waiveAdmin.checkDone(keyledger.ItemRevoke, keyledger.ItemWaived)},
		{route: "POST /offboarding/:oid/complete", name: "of an admin", method: "POST", prepare: completeAdmin.prepare(true, false, true), path: completeAdmin.path("/complete"),
			want: adminsOnly(completeAdmin.loc("completed")),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				o, err := env.Store.Offboarding(context.Background(), actorOf(env, "admin"), completeAdmin.oid)
				if err != nil {
					t.Fatal(err)
				}
				if o.Completed() != (got.status == http.StatusSeeOther) {
					t.Errorf("completed = %v after status %d", o.Completed(), got.status)
				}
			}},
		{route: "GET /offboarding/:oid", method: "GET", prepare: view.prepare(false, true, false), path: view.path(""),
			want: func(a, e string, k *keyledger.Key) authzWant {
				return leadsOnly("GET", func() string { return view.path("")(k) }, func() authzWant { return ok200 })(a, e, k)
			},
			check: func(t *testing.T, _ *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if got.status == http.StatusOK && !strings.Contains(got.body, view.key.Name) {
					t.Error("the checklist does not list the key to reassign")
				}
			}},
		{route: "GET /offboarding/:oid/record.csv", method: "GET", prepare: record.prepare(false, true, false), path: record.path("/record.csv"),
			want: func(a, e string, k *keyledger.Key) authzWant {
				return leadsOnly("GET", func() string { return record.path("/record.csv")(k) }, func() authzWant { return csvFile })(a, e, k)
			}},
		{route: "POST /offboarding/:oid/items/:item/waive", method: "POST", prepare: waive.prepare(false, false, false),
			path: func(k *keyledger.Key) string {
				return fmt.Sprintf("/offboarding/%d/items/%d/waive", waive.oid, waive.revoke)
			},
			form:  func(string, string, string) url.Values { return url.Values{"reason": {"authz matrix"}} },
			want:  leadsOnly("POST", fixed(""), waive.loc("waived")),
			check: waive.checkDone(keyledger.ItemRevoke, keyledger.ItemWaived)},
		// Revoke at the provider, leads only; aimed at an item that is not
		// a provider key's (the matrix connects no provider), so a lead
		// gets "not found" and nothing is called.
		{route: "POST /offboarding/:oid/items/:item/provider-revoke", method: "POST", prepare: providerRevoke.prepare(false, false, false),
			path: func(k *keyledger.Key) string {
				return fmt.Sprintf("/offboarding/%d/items/%d/provider-revoke", providerRevoke.oid, providerRevoke.revoke)
			},
			form: func(string, string, string) url.Values { return url.Values{"reason": {"authz matrix"}} },
			want: leadsOnly("POST", fixed(""), func() authzWant { return nf404 })},
		{route: "POST /offboarding/:oid/reassign", method: "POST", prepare: reassign.prepare(false, true, false), path: reassign.path("/reassign"),
			form: func(string, string, string) url.Values { return url.Values{"owner": {"member2@example.com"}} },
			want: func(a, e string, k *keyledger.Key) authzWant {
				return leadsOnly("POST", fixed(""), func() authzWant {
					return authzWant{status: http.StatusSeeOther, location: fmt.Sprintf("/offboarding/%d?reassigned=1", reassign.oid)}
				})(a, e, k)
			},
			check: reassign.checkDone(keyledger.ItemReassign, keyledger.ItemDone)},
		{route: "POST /offboarding/:oid/revoke", method: "POST", prepare: revoke.prepare(false, false, false), path: revoke.path("/revoke"),
			want:  leadsOnly("POST", fixed(""), revoke.loc("revoked")),
			check: revoke.checkDone(keyledger.ItemRevoke, keyledger.ItemDone)},
		// Deactivating an account is for admins only, even here.
		{route: "POST /offboarding/:oid/deactivate", method: "POST", prepare: deactivate.prepare(false, false, false), path: deactivate.path("/deactivate"),
			want: func(a, _ string, _ *keyledger.Key) authzWant {
				if a == actorAdmin {
					return deactivate.loc("deactivated")()
				}
				return needUser(a, "POST", "", no403)
			},
			check: deactivate.checkDone(keyledger.ItemDeactivate, keyledger.ItemDone)},
		{route: "POST /offboarding/:oid/complete", method: "POST", prepare: complete.prepare(true, false, true), path: complete.path("/complete"),
			want: leadsOnly("POST", fixed(""), complete.loc("completed")),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				o, err := env.Store.Offboarding(context.Background(), actorOf(env, "admin"), complete.oid)
				if err != nil {
					t.Fatal(err)
				}
				if o.Completed() != (got.status == http.StatusSeeOther) {
					t.Errorf("completed = %v after status %d", o.Completed(), got.status)
				}
			}},
	}
}
