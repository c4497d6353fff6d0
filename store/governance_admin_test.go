package store_test

import (
	"encoding/hex"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

func TestSetRole(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()

	u, err := f.s.SetRole(ctx, as(f.admin), f.m.ID, keyledger.RoleLead)
	if err != nil || u.Role != keyledger.RoleLead || u.ID != f.m.ID {
		t.Fatalf("SetRole = %+v, %v", u, err)
	}
	if got := f.fresh(t, f.m); got.Role != keyledger.RoleLead {
		t.Errorf("stored role %q", got.Role)
	}
	n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND actor_id = $2 AND subject_id = $3 AND details->>'from' = 'member' AND details->>'to' = 'lead'",
		keyledger.ActionUserRole, f.admin.ID, f.m.ID)
	if n != 1 {
		t.Errorf("%d user.role_change events member->lead, want 1", n)
	}
	// The same role again changes nothing and logs nothing.
	if _, err := f.s.SetRole(ctx, as(f.admin), f.m.ID, keyledger.RoleLead); err != nil {
		t.Fatal(err)
	}
	if n := f.actionCount(t, keyledger.ActionUserRole, ""); n != 1 {
		t.Errorf("%d role events after a no-op, want 1", n)
	}
	// The new lead leads at once (the role is re-read per transaction).
	if _, err := f.s.Dashboard(ctx, as(f.fresh(t, f.m))); err != nil {
		t.Errorf("new lead: %v", err)
	}

	// Admins only; a valid role; a real user.
	for _, who := range []*keyledger.User{f.lead, f.n} {
		_, err := f.s.SetRole(ctx, as(who), f.o.ID, keyledger.RoleAdmin)
		wantCode(t, err, keyledger.EFORBIDDEN)
	}
	// A stale actor whose role was taken away a moment ago is refused.
	_, err = f.s.SetRole(ctx, as(f.fresh(t, f.m)), f.o.ID, keyledger.RoleLead)
	wantCode(t, err, keyledger.EFORBIDDEN)
	_, err = f.s.SetRole(ctx, as(f.admin), f.o.ID, "owner")
	wantField(t, err, keyledger.EINVALID, "role")
	_, err = f.s.SetRole(ctx, as(f.admin), 999999, keyledger.RoleLead)
	wantCode(t, err, keyledger.ENOTFOUND)
	if got := f.fresh(t, f.o); got.Role != keyledger.RoleMember {
		t.Errorf("refused role changes changed o to %q", got.Role)
	}

	// The last active admin can be neither demoted nor deactivated.
	_, err = f.s.SetRole(ctx, as(f.admin), f.admin.ID, keyledger.RoleLead)
	wantCode(t, err, keyledger.ECONFLICT)
	_, err = f.s.DeactivateUser(ctx, as(f.admin), f.admin.Email)
	wantCode(t, err, keyledger.ECONFLICT)
	// A deactivated admin does not count.
	second := f.user(t, "second-admin@example.com", keyledger.RoleAdmin)
	if _, err := f.s.DeactivateUser(ctx, as(f.admin), second.Email); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.SetRole(ctx, as(f.admin), f.admin.ID, keyledger.RoleMember)
	wantCode(t, err, keyledger.ECONFLICT)
	if got := f.fresh(t, f.admin); got.Role != keyledger.RoleAdmin || got.Status != keyledger.UserActive {
		t.Fatalf("last admin is now %s/%s", got.Role, got.Status)
	}
	// With a second active admin, either may step down, but not both.
	if _, err := f.s.ReactivateUser(ctx, as(f.admin), second.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.SetRole(ctx, as(f.admin), f.admin.ID, keyledger.RoleLead); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.SetRole(ctx, as(f.admin), f.o.ID, keyledger.RoleLead) // f.admin is a lead now
	wantCode(t, err, keyledger.EFORBIDDEN)
	_, err = f.s.SetRole(ctx, as(second), second.ID, keyledger.RoleMember)
	wantCode(t, err, keyledger.ECONFLICT)
	_, err = f.s.DeactivateUser(ctx, as(second), second.Email)
	wantCode(t, err, keyledger.ECONFLICT)
}

// TestLastAdminGuardConcurrent: two admins demoting each other at the same
// moment must leave one admin. A trigger slows the audit insert of each
// role change so both transactions overlap every time.
func TestLastAdminGuardConcurrent(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	second := f.user(t, "second-admin@example.com", keyledger.RoleAdmin)
	for _, q := range []string{
		`CREATE FUNCTION test_slow_role_audit() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.action IN ('user.role_change', 'user.deactivate') THEN PERFORM pg_sleep(0.3); END IF; RETURN NEW; END $$`,
		`CREATE TRIGGER test_slow_role_audit BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION test_slow_role_audit()`,
	} {
		if _, err := f.pool.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	start := make(chan struct{})
	wg.Add(2)
	go func() {
		defer wg.Done()
		<-start
		_, errs[0] = f.s.SetRole(ctx, as(f.admin), second.ID, keyledger.RoleMember)
	}()
	go func() {
		defer wg.Done()
		<-start
		_, errs[1] = f.s.DeactivateUser(ctx, as(second), f.admin.Email)
	}()
	close(start)
	wg.Wait()
	admins := f.count(t, "SELECT count(*) FROM users WHERE role = 'admin' AND status = 'active'")
	if admins == 0 {
		t.Errorf("no active admin left after two concurrent step-downs (errors: %v, %v): lastAdminGuard counts without a lock (write skew)", errs[0], errs[1])
	}
	if errs[0] == nil && errs[1] == nil {
		t.Error("both concurrent step-downs succeeded")
	}
	for _, err := range errs {
		if err != nil && keyledger.ErrorCode(err) != keyledger.ECONFLICT {
			t.Errorf("unexpected error %v", err)
		}
	}
}

func TestReactivateUser(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	if _, err := f.s.DeactivateUser(ctx, as(f.admin), f.n.Email); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.Authenticate(ctx, govMeta, f.n.Email, testPassword); err != store.ErrBadCredentials {
		t.Fatalf("deactivated sign-in = %v", err)
	}
	for _, who := range []*keyledger.User{f.lead, f.m} {
		_, err := f.s.ReactivateUser(ctx, as(who), f.n.ID)
		wantCode(t, err, keyledger.EFORBIDDEN)
	}
	u, err := f.s.ReactivateUser(ctx, as(f.admin), f.n.ID)
	if err != nil || u.Status != keyledger.UserActive {
		t.Fatalf("ReactivateUser = %+v, %v", u, err)
	}
	if n := f.count(t, "SELECT count(*) FROM users WHERE id = $1 AND deactivated_at IS NULL", f.n.ID); n != 1 {
		t.Error("deactivated_at kept after reactivation")
	}
	if _, err := f.s.Authenticate(ctx, govMeta, f.n.Email, testPassword); err != nil {
		t.Errorf("sign-in after reactivation: %v", err)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2 AND actor_id = $3", keyledger.ActionUserReactivate, f.n.ID, f.admin.ID); n != 1 {
		t.Errorf("%d user.reactivate events, want 1", n)
	}
	_, err = f.s.ReactivateUser(ctx, as(f.admin), f.n.ID)
	wantCode(t, err, keyledger.ECONFLICT)
	_, err = f.s.ReactivateUser(ctx, as(f.admin), 999999)
	wantCode(t, err, keyledger.ENOTFOUND)

	// A frozen user too.
	if _, err := f.s.StartOffboarding(ctx, as(f.lead), f.o.Email, true, ""); err != nil {
		t.Fatal(err)
	}
	if u, err := f.s.ReactivateUser(ctx, as(f.admin), f.o.ID); err != nil || u.Status != keyledger.UserActive {
		t.Errorf("reactivate frozen = %+v, %v", u, err)
	}
}

func TestChangePassword(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	current, other := f.login(t, f.m), f.login(t, f.m)
	nSession := f.login(t, f.n)
	const next = "a much longer new passphrase 42"

	err := f.s.ChangePassword(ctx, as(f.m), current, "not my password at all", next)
	wantField(t, err, keyledger.EINVALID, "current_password")
	err = f.s.ChangePassword(ctx, as(f.m), current, testPassword, "short")
	wantField(t, err, keyledger.EINVALID, "new_password")
	err = f.s.ChangePassword(ctx, as(f.m), current, testPassword, testPassword)
	wantField(t, err, keyledger.EINVALID, "new_password")
	if n := f.count(t, "SELECT count(*) FROM sessions WHERE user_id = $1", f.m.ID); n != 2 {
		t.Fatalf("refused changes ended sessions: %d left", n)
	}
	if err := f.s.ChangePassword(ctx, keyledger.Actor{User: f.fresh(t, f.m)}, current, testPassword, next); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.SessionUser(ctx, current, timeouts); err != nil {
		t.Errorf("the current session ended: %v", err)
	}
	if _, err := f.s.SessionUser(ctx, other, timeouts); err != store.ErrNoSession {
		t.Errorf("another session survived a password change: %v", err)
	}
	if _, err := f.s.SessionUser(ctx, nSession, timeouts); err != nil {
		t.Errorf("someone else's session ended: %v", err)
	}
	if _, err := f.s.Authenticate(ctx, govMeta, f.m.Email, testPassword); err != store.ErrBadCredentials {
		t.Errorf("old password = %v, want ErrBadCredentials", err)
	}
	if u, err := f.s.Authenticate(ctx, govMeta, f.m.Email, next); err != nil || u.ID != f.m.ID {
		t.Errorf("new password = %+v, %v", u, err)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2 AND (details->>'other_sessions_revoked')::int = 1",
		keyledger.ActionPasswordChange, f.m.ID); n != 1 {
		t.Errorf("%d user.password_change events with 1 session revoked, want 1", n)
	}
	if n := f.count(t, "SELECT count(*) FROM users WHERE id = $1 AND password_changed_at IS NOT NULL", f.m.ID); n != 1 {
		t.Error("password_changed_at not set")
	}
	if found := findInDatabase(t, f.pool, leakForms(next)); len(found) > 0 {
		t.Errorf("new password stored: %v", found)
	}
}

func TestPasswordLinks(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	newbie := f.user(t, "newbie@example.com", keyledger.RoleMember)
	old := f.login(t, newbie)

	for _, who := range []*keyledger.User{f.lead, f.m} {
		_, _, err := f.s.CreatePasswordLink(ctx, as(who), newbie.ID)
		wantCode(t, err, keyledger.EFORBIDDEN)
	}
	_, _, err := f.s.CreatePasswordLink(ctx, as(f.admin), 999999)
	wantCode(t, err, keyledger.ENOTFOUND)

	token, expires, err := f.s.CreatePasswordLink(ctx, as(f.admin), newbie.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(token) < 40 || !expires.Equal(f.clock.Now().Add(store.PasswordLinkTTL)) {
		t.Errorf("token %d chars, expires %v", len(token), expires)
	}
	u, err := f.s.PasswordLinkUser(ctx, token)
	if err != nil || u.ID != newbie.ID {
		t.Fatalf("PasswordLinkUser = %+v, %v", u, err)
	}
	for _, bad := range []string{"", "nonsense", token + "x", token[:len(token)-1]} {
		if _, err := f.s.PasswordLinkUser(ctx, bad); err != store.ErrLinkInvalid {
			t.Errorf("PasswordLinkUser(%q) = %v, want ErrLinkInvalid", bad, err)
		}
	}
	// Only a hash is stored; neither the links table nor the audit log
	// holds the token in any spelling.
	forms := leakForms(token)
	forms["hex-lower"] = hex.EncodeToString([]byte(token))
	if found := findInDatabase(t, f.pool, forms); len(found) > 0 {
		t.Errorf("token stored: %v", found)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2 AND actor_id = $3", keyledger.ActionPasswordLink, newbie.ID, f.admin.ID); n != 1 {
		t.Errorf("%d user.password_link events, want 1", n)
	}

	// A too-short password does not spend the link.
	_, err = f.s.UsePasswordLink(ctx, govMeta, token, "short")
	wantField(t, err, keyledger.EINVALID, "password")
	const pw = "my very own first password"
	u, err = f.s.UsePasswordLink(ctx, govMeta, token, pw)
	if err != nil || u.ID != newbie.ID {
		t.Fatalf("UsePasswordLink = %+v, %v", u, err)
	}
	if _, err := f.s.Authenticate(ctx, govMeta, newbie.Email, pw); err != nil {
		t.Errorf("sign-in with the link's password: %v", err)
	}
	if _, err := f.s.SessionUser(ctx, old, timeouts); err != store.ErrNoSession {
		t.Errorf("a session from before the link survived: %v", err)
	}
	if _, err := f.s.UsePasswordLink(ctx, govMeta, token, "yet another password here"); err != store.ErrLinkInvalid {
		t.Errorf("second use = %v, want ErrLinkInvalid", err)
	}
	if _, err := f.s.PasswordLinkUser(ctx, token); err != store.ErrLinkInvalid {
		t.Errorf("PasswordLinkUser after use = %v, want ErrLinkInvalid", err)
	}
	if _, err := f.s.Authenticate(ctx, govMeta, newbie.Email, pw); err != nil {
		t.Errorf("a refused second use changed the password: %v", err)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2 AND details->>'via' = 'set-password link'", keyledger.ActionPasswordChange, newbie.ID); n != 1 {
		t.Errorf("%d password changes via link audited, want 1", n)
	}

	// Expiry follows the store's clock.
	token2, _, err := f.s.CreatePasswordLink(ctx, as(f.admin), newbie.ID)
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(23 * time.Hour)
	if _, err := f.s.PasswordLinkUser(ctx, token2); err != nil {
		t.Errorf("link after 23h: %v", err)
	}
	f.clock.Advance(2 * time.Hour)
	if _, err := f.s.PasswordLinkUser(ctx, token2); err != store.ErrLinkInvalid {
		t.Errorf("link after 25h = %v, want ErrLinkInvalid", err)
	}
	if _, err := f.s.UsePasswordLink(ctx, govMeta, token2, "too late for this password"); err != store.ErrLinkInvalid {
		t.Errorf("using a link after 25h = %v, want ErrLinkInvalid", err)
	}

	// A new link replaces the old.
	a, _, err := f.s.CreatePasswordLink(ctx, as(f.admin), newbie.ID)
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := f.s.CreatePasswordLink(ctx, as(f.admin), newbie.ID)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two links share a token")
	}
	if _, err := f.s.PasswordLinkUser(ctx, a); err != store.ErrLinkInvalid {
		t.Errorf("replaced link = %v, want ErrLinkInvalid", err)
	}
	if _, err := f.s.PasswordLinkUser(ctx, b); err != nil {
		t.Errorf("newest link: %v", err)
	}

	// Deactivation: no new link, and the live one stops working.
	if _, err := f.s.DeactivateUser(ctx, as(f.admin), newbie.Email); err != nil {
		t.Fatal(err)
	}
	_, _, err = f.s.CreatePasswordLink(ctx, as(f.admin), newbie.ID)
	wantCode(t, err, keyledger.ECONFLICT)
	if _, err := f.s.PasswordLinkUser(ctx, b); err != store.ErrLinkInvalid {
		t.Errorf("link of a deactivated user = %v, want ErrLinkInvalid", err)
	}
	if _, err := f.s.UsePasswordLink(ctx, govMeta, b, "sneaking back in with this"); err != store.ErrLinkInvalid {
		t.Errorf("using the link of a deactivated user = %v, want ErrLinkInvalid", err)
	}
}

func TestListAndRevokeSessions(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	s1 := f.login(t, f.m)
	f.clock.Advance(2 * time.Minute)
	s2 := f.login(t, f.m)
	// A pending (half signed-in) session is not listed.
	_, _, mTOTP := f.enrollTOTP(t, f.m)
	pending := f.login(t, mTOTP)
	if st, err := f.s.Session(ctx, pending, timeouts); err != nil || !st.PendingTOTP {
		t.Fatalf("pending session: %+v, %v", st, err)
	}
	nSession := f.login(t, f.n)

	list, err := f.s.ListSessions(ctx, as(f.m), f.m.ID, s1)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 {
		t.Fatalf("ListSessions = %+v, want 2 (pending excluded)", list)
	}
	if !list[1].Current || list[0].Current || list[0].ID == list[1].ID {
		t.Errorf("current marking: %+v", list)
	}
	for _, si := range list {
		if len(si.ID) != 64 || si.IP != govMeta.IP || si.UserAgent != govMeta.UserAgent || !si.ExpiresAt.After(si.CreatedAt) {
			t.Errorf("session info %+v", si)
		}
		if strings.Contains(si.ID, s1) || strings.Contains(si.ID, s2) {
			t.Error("listed id is the raw session id")
		}
	}
	// Someone else's list is not found, unless admin.
	_, err = f.s.ListSessions(ctx, as(f.n), f.m.ID, nSession)
	wantCode(t, err, keyledger.ENOTFOUND)
	_, err = f.s.ListSessions(ctx, as(f.lead), f.m.ID, "")
	wantCode(t, err, keyledger.ENOTFOUND)
	if l, err := f.s.ListSessions(ctx, as(f.admin), f.m.ID, ""); err != nil || len(l) != 2 || l[0].Current || l[1].Current {
		t.Errorf("admin ListSessions = %+v, %v", l, err)
	}

	// Malformed ids are simply not found.
	for _, bad := range []string{"", "zz", "abcd", strings.Repeat("g", 64), list[0].ID + "00"} {
		wantCode(t, f.s.RevokeSession(ctx, as(f.m), bad), keyledger.ENOTFOUND)
	}
	if err := f.s.RevokeSession(ctx, keyledger.Actor{}, list[0].ID); err != store.ErrNoSession {
		t.Errorf("RevokeSession without a user = %v", err)
	}
	// Someone else's session: not found for a member or a lead, and
	// still alive.
	nList, err := f.s.ListSessions(ctx, as(f.n), f.n.ID, nSession)
	if err != nil || len(nList) != 1 {
		t.Fatal(nList, err)
	}
	for _, who := range []*keyledger.User{f.m, f.lead} {
		wantCode(t, f.s.RevokeSession(ctx, as(who), nList[0].ID), keyledger.ENOTFOUND)
	}
	if _, err := f.s.SessionUser(ctx, nSession, timeouts); err != nil {
		t.Fatalf("n's session died: %v", err)
	}
	// Own session: gone, audited.
	if err := f.s.RevokeSession(ctx, as(f.m), list[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.SessionUser(ctx, s2, timeouts); err != store.ErrNoSession {
		t.Errorf("revoked session s2 still works: %v", err)
	}
	if _, err := f.s.SessionUser(ctx, s1, timeouts); err != nil {
		t.Errorf("s1 died with s2: %v", err)
	}
	wantCode(t, f.s.RevokeSession(ctx, as(f.m), list[0].ID), keyledger.ENOTFOUND)
	// An admin may revoke anyone's.
	if err := f.s.RevokeSession(ctx, as(f.admin), nList[0].ID); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.SessionUser(ctx, nSession, timeouts); err != store.ErrNoSession {
		t.Errorf("admin-revoked session still works: %v", err)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1", keyledger.ActionSessionRevoke); n != 2 {
		t.Errorf("%d session.revoke events, want 2", n)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2 AND actor_id = $3", keyledger.ActionSessionRevoke, f.n.ID, f.admin.ID); n != 1 {
		t.Errorf("admin revocation not audited with its subject")
	}
}
