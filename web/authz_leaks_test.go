package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/keyledger/keyledger"
)

// Authorization matrix cases of the leak response (report, incidents);
// listed in authzCases.

// leakState carries the incident a case's prepare opened to its path,
// want and check (the actors of one route run one after the other).
type leakState struct {
	id  int64
	key *keyledger.Key
}

func (st *leakState) path(suffix string) func(*keyledger.Key) string {
	return func(*keyledger.Key) string { return fmt.Sprintf("/leaks/%d%s", st.id, suffix) }
}

// prepare registers a key owned by member in the matrix key's
// environment, has a fresh person report its value (each report by
// someone new, so the matrix stays under the per-person limit), and, with
// rotated, rotates the key so that the leaked version may be revoked.
func (st *leakState) prepare(rotated bool) func(*testing.T, *testEnv, *keyledger.Key, string) []string {
	return func(t *testing.T, env *testEnv, k *keyledger.Key, uniq string) []string {
		t.Helper()
		ctx := context.Background()
		key, value := authzKey(env, t, "member", k.Environment, "leak "+uniq)
		reporter, err := env.Store.CreateUser(ctx, keyledger.SystemActor("test"), keyledger.NewUser{
			Email: "reporter-" + uniq + "@example.com", Name: "Reporter " + uniq, Role: keyledger.RoleMember, Password: Password})
		if err != nil {
			t.Fatal(err)
		}
		r, err := env.Store.ReportLeak(ctx, keyledger.Actor{User: reporter}, keyledger.LeakReportInput{Value: value, Where: "matrix " + uniq})
		if err != nil || !r.Matched {
			t.Fatalf("report: %+v, %v", r, err)
		}
		st.id, st.key = r.IncidentID, key
		secrets := []string{value}
		if rotated {
			next := authzSecret()
			if _, err := env.Store.RotateKey(ctx, keyledger.Actor{User: env.Users["member"]}, key.ID, keyledger.RotateInput{Value: next}); err != nil {
				t.Fatal(err)
			}
			secrets = append(secrets, next)
		}
		return secrets
	}
}

func (st *leakState) incident(t *testing.T, env *testEnv) *keyledger.LeakIncident {
	t.Helper()
	inc, err := env.Store.LeakIncident(context.Background(), keyledger.Actor{User: env.Users["admin"]}, st.id)
	if err != nil {
		t.Fatal(err)
	}
	return inc
}

func authzLeakCases() []authzCase {
	page, revoke, waive := &leakState{}, &leakState{}, &leakState{}
	// onIncident: the key's owner, leads and admins get ok; another member
	// gets w (404 for the page: they are not told the incident exists;
	// 403 for an action).
	onIncident := func(method string, st *leakState, suffix string, w authzWant, ok func() authzWant) func(string, string, *keyledger.Key) authzWant {
		return func(a, _ string, _ *keyledger.Key) authzWant {
			if mayEdit(a) {
				return ok()
			}
			return needUser(a, method, fmt.Sprintf("/leaks/%d%s", st.id, suffix), w)
		}
	}
	return []authzCase{
		{route: "GET /leaks/new", method: "GET", path: fixedPath("/leaks/new"),
			want: func(a, _ string, _ *keyledger.Key) authzWant { return needUser(a, "GET", "/leaks/new", ok200) }},
		// Any active user may report; this value is no stored one, so the
		// answer is the form saying so (TestLeakReportForm covers matches).
		{route: "POST /leaks/new", method: "POST", path: fixedPath("/leaks/new"),
			form: func(_, _, uniq string) url.Values {
				return url.Values{"value": {"sk-proj-unknown" + uniq + authzRand(8)}, "where": {"authz matrix"}}
			},
			want: func(a, _ string, _ *keyledger.Key) authzWant { return needUser(a, "POST", "/leaks/new", ok200) }},
		{route: "GET /leaks", method: "GET", path: fixedPath("/leaks"), want: leadsOnly("GET", func() string { return "/leaks" }, func() authzWant { return ok200 })},
		{route: "GET /leaks/:lid", method: "GET", perEnv: true, needsKey: true, prepare: page.prepare(false), path: page.path(""),
			want: onIncident("GET", page, "", nf404, func() authzWant { return ok200 })},
		{route: "POST /leaks/:lid/revoke", method: "POST", perEnv: true, needsKey: true, prepare: revoke.prepare(true), path: revoke.path("/revoke"),
			want: onIncident("POST", revoke, "/revoke", no403, func() authzWant {
				return authzWant{status: http.StatusSeeOther, location: fmt.Sprintf("/leaks/%d?revoked=1", revoke.id)}
			}),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				inc := revoke.incident(t, env)
				if done := inc.RevokedAt != nil && !inc.Open(); done != (got.status == http.StatusSeeOther) {
					t.Errorf("revoked and closed = %v after status %d", done, got.status)
				}
			}},
		{route: "POST /leaks/:lid/waive", method: "POST", perEnv: true, needsKey: true, prepare: waive.prepare(false), path: waive.path("/waive"),
			form: func(string, string, string) url.Values {
				return url.Values{"reason": {"authz matrix: not a real leak"}}
			},
			want: onIncident("POST", waive, "/waive", no403, func() authzWant {
				return authzWant{status: http.StatusSeeOther, location: fmt.Sprintf("/leaks/%d?waived=1", waive.id)}
			}),
			check: func(t *testing.T, env *testEnv, _ *keyledger.Key, _ url.Values, got authzWant) {
				if closed := !waive.incident(t, env).Open(); closed != (got.status == http.StatusSeeOther) {
					t.Errorf("closed = %v after status %d", closed, got.status)
				}
			}},
	}
}
