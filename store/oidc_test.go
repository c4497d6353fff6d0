package store_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

var ssoMeta = keyledger.Actor{IP: "203.0.113.9", UserAgent: "sso-test"}

// auditRows counts audit events of action about email whose details
// contain every pair of want.
func auditRows(t *testing.T, f *fixture, action, email string, want map[string]string) int {
	t.Helper()
	q := "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_email = $2"
	args := []any{action, email}
	for k, v := range want {
		args = append(args, k, v)
		q += " AND details->>$" + strconv.Itoa(len(args)-1) + " = $" + strconv.Itoa(len(args))
	}
	var n int
	if err := f.pool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestOIDCUserExisting(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := context.Background()
	lead := f.user(t, "lead@example.com", keyledger.RoleLead)
	u, err := f.s.OIDCUser(ctx, ssoMeta, store.OIDCIdentity{Email: " Lead@Example.COM ", Name: "Someone Else"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != lead.ID || u.Role != keyledger.RoleLead || u.Name != lead.Name {
		t.Errorf("got %+v, want the existing lead unchanged", u)
	}
}

func TestOIDCUserCreatesMemberForAllowedDomain(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := context.Background()
	u, err := f.s.OIDCUser(ctx, ssoMeta, store.OIDCIdentity{Email: "New.Person@Corp.example", Name: "New Person\u0007", Issuer: "https://idp", Subject: "abc"},
		[]string{"other.example", "corp.example"})
	if err != nil {
		t.Fatal(err)
	}
	if u.Email != "new.person@corp.example" || u.Role != keyledger.RoleMember || !u.Active() || u.TOTPEnabled {
		t.Errorf("created %+v", u)
	}
	if u.Name != "" {
		t.Errorf("a name with a control character was kept: %q", u.Name)
	}
	if n := auditRows(t, f, keyledger.ActionUserCreate, u.Email, map[string]string{"via": "oidc", "role": "member", "subject": "abc"}); n != 1 {
		t.Errorf("%d user.create events with via=oidc, want 1", n)
	}
	// No password: the password sign-in refuses the account.
	if _, err := f.s.Authenticate(ctx, ssoMeta, u.Email, ""); !errors.Is(err, store.ErrBadCredentials) {
		t.Errorf("password sign-in of an SSO-made account: %v", err)
	}
	// Second sign-in: the same user, nothing created.
	again, err := f.s.OIDCUser(ctx, ssoMeta, store.OIDCIdentity{Email: u.Email}, []string{"corp.example"})
	if err != nil || again.ID != u.ID {
		t.Fatalf("second sign-in: %v %+v", err, again)
	}
	if n := auditRows(t, f, keyledger.ActionUserCreate, u.Email, nil); n != 1 {
		t.Errorf("%d user.create events after two sign-ins, want 1", n)
	}
}

func TestOIDCUserRefusals(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := context.Background()
	f.user(t, "gone@corp.example", keyledger.RoleMember)
	if _, err := f.s.DeactivateUser(ctx, keyledger.SystemActor("test"), "gone@corp.example"); err != nil {
		t.Fatal(err)
	}
	lead := f.user(t, "lead@corp.example", keyledger.RoleLead)
	f.user(t, "frozen@corp.example", keyledger.RoleMember)
	if _, err := f.s.StartOffboarding(ctx, as(lead), "frozen@corp.example", true, "test"); err != nil {
		t.Fatal(err)
	}
	allowed := []string{"corp.example"}
	for _, tc := range []struct {
		email string
		want  error
	}{
		{"gone@corp.example", store.ErrBadCredentials},
		{"frozen@corp.example", store.ErrBadCredentials},
		{"stranger@elsewhere.example", store.ErrOIDCNoAccount},
		// Subdomains and look-alikes are not the allowed domain.
		{"x@sub.corp.example", store.ErrOIDCNoAccount},
		{"x@corp.example.evil", store.ErrOIDCNoAccount},
		{"x@evilcorp.example", store.ErrOIDCNoAccount},
		{"not an email", store.ErrOIDCNoAccount},
		// One address, one @: the part after the last @ is not the domain
		// of an address with two (finding 9 of the security test).
		{"a@evil.example@corp.example", store.ErrOIDCNoAccount},
		{`"a@evil.example"@corp.example`, store.ErrOIDCNoAccount},
		{"@corp.example", store.ErrOIDCNoAccount},
		{"a.@corp.example", store.ErrOIDCNoAccount},
	} {
		u, err := f.s.OIDCUser(ctx, ssoMeta, store.OIDCIdentity{Email: tc.email}, allowed)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v %v, want %v", tc.email, u, err, tc.want)
		}
	}
	if n, _ := f.s.CountUsers(ctx); n != 3 {
		t.Errorf("%d users after refusals, want 3 (nobody created)", n)
	}
	for _, email := range []string{"gone@corp.example", "frozen@corp.example", "stranger@elsewhere.example"} {
		if n := auditRows(t, f, keyledger.ActionSignInFailed, email, map[string]string{"method": "oidc"}); n != 1 {
			t.Errorf("%s: %d failed sign-in events with method=oidc, want 1", email, n)
		}
	}
	// Empty allow-list: only existing users.
	if _, err := f.s.OIDCUser(ctx, ssoMeta, store.OIDCIdentity{Email: "new@corp.example"}, nil); !errors.Is(err, store.ErrOIDCNoAccount) {
		t.Errorf("no allowed domains: %v", err)
	}
}

// TestOIDCUserConcurrentFirstSignIn: two first sign-ins at once make one
// account, and both get it.
func TestOIDCUserConcurrentFirstSignIn(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := context.Background()
	var wg sync.WaitGroup
	ids := make([]int64, 8)
	errs := make([]error, 8)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u, err := f.s.OIDCUser(ctx, ssoMeta, store.OIDCIdentity{Email: "race@corp.example"}, []string{"corp.example"})
			errs[i] = err
			if u != nil {
				ids[i] = u.ID
			}
		}()
	}
	wg.Wait()
	for i := range ids {
		if errs[i] != nil || ids[i] != ids[0] {
			t.Errorf("sign-in %d: id %d err %v (first got %d)", i, ids[i], errs[i], ids[0])
		}
	}
	if n := auditRows(t, f, keyledger.ActionUserCreate, "race@corp.example", nil); n != 1 {
		t.Errorf("%d user.create events, want 1", n)
	}
}

func TestStartOIDCSession(t *testing.T) {
	t.Parallel()
	clk := newClock()
	f := newFixture(t, store.Options{Now: clk.Now})
	ctx := context.Background()
	u := f.user(t, "m@example.com", keyledger.RoleMember)
	timeouts := store.SessionTimeouts{Idle: time.Hour, Absolute: 12 * time.Hour}

	// auth_time from the token: the step-up clock starts then.
	authAt := clk.Now().Add(-30 * time.Minute)
	id, err := f.s.StartOIDCSession(ctx, ssoMeta, u, timeouts, authAt)
	if err != nil {
		t.Fatal(err)
	}
	st, err := f.s.Session(ctx, id, timeouts)
	if err != nil {
		t.Fatal(err)
	}
	if st.User.ID != u.ID || st.PendingTOTP || !st.StepUpAt.Equal(authAt) {
		t.Errorf("session %+v, want user %d, not pending, step-up at %s", st, u.ID, authAt)
	}
	if n := auditRows(t, f, keyledger.ActionSignIn, u.Email, map[string]string{"method": "oidc"}); n != 1 {
		t.Errorf("%d sign-in events with method=oidc, want 1", n)
	}
	// One in the future (a skewed clock): the sign-in itself counts.
	id, err = f.s.StartOIDCSession(ctx, ssoMeta, u, timeouts, clk.Now().Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if st, err = f.s.Session(ctx, id, timeouts); err != nil {
		t.Fatal(err)
	}
	if !st.StepUpAt.Equal(clk.Now()) {
		t.Errorf("auth_time in the future: step-up at %s, want now %s", st.StepUpAt, clk.Now())
	}
	// None at all: nothing says when the person last proved themselves,
	// so the session has no fresh step-up (fail closed).
	id, err = f.s.StartOIDCSession(ctx, ssoMeta, u, timeouts, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if st, err = f.s.Session(ctx, id, timeouts); err != nil {
		t.Fatal(err)
	}
	if keyledger.FreshProof(keyledger.Actor{User: u, StepUpAt: st.StepUpAt}, clk.Now()) {
		t.Errorf("no auth_time: step-up at %s counts as fresh", st.StepUpAt)
	}
	// A user with two-factor sign-in gets a pending session.
	u.TOTPEnabled = true
	id, err = f.s.StartOIDCSession(ctx, ssoMeta, u, timeouts, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := f.s.Session(ctx, id, timeouts); err != nil || !st.PendingTOTP {
		t.Errorf("two-factor user: pending=%v err=%v, want a pending session", st.PendingTOTP, err)
	}
	if n := auditRows(t, f, keyledger.ActionSignIn, u.Email, map[string]string{"method": "oidc", "second_factor": "pending"}); n != 1 {
		t.Errorf("%d pending sign-in events, want 1", n)
	}
}
