package store_test

import (
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

func TestTOTPEnrollAndSignIn(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()

	enr, err := f.s.BeginTOTP(ctx, as(f.m), "keyledger-test")
	if err != nil {
		t.Fatal(err)
	}
	if len(enr.Secret) < 32 || !strings.HasPrefix(enr.URL, "otpauth://totp/") || !strings.Contains(enr.URL, "keyledger-test") {
		t.Errorf("enrollment %+v", enr)
	}
	// Starting again replaces the unconfirmed secret.
	enr2, err := f.s.BeginTOTP(ctx, as(f.m), "keyledger-test")
	if err != nil {
		t.Fatal(err)
	}
	if enr2.Secret == enr.Secret {
		t.Fatal("a second enrollment reused the secret")
	}
	secret := enr2.Secret
	now := f.clock.Now()
	if old := totpCode(t, enr.Secret, now); old != totpCode(t, secret, now) { // (codes coincide one time in a million)
		_, err = f.s.ConfirmTOTP(ctx, as(f.m), "", old, "")
		wantField(t, err, keyledger.EINVALID, "code")
	}
	_, err = f.s.ConfirmTOTP(ctx, as(f.m), "", wrongTOTP(t, secret, now), "")
	wantField(t, err, keyledger.EINVALID, "code")
	if f.fresh(t, f.m).TOTPEnabled {
		t.Fatal("a wrong code enabled two-factor sign-in")
	}
	codes, err := f.s.ConfirmTOTP(ctx, as(f.m), "", totpCode(t, secret, now), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(codes) != 10 {
		t.Fatalf("%d recovery codes, want 10", len(codes))
	}
	distinct := map[string]bool{}
	for _, c := range codes {
		distinct[c] = true
	}
	if len(distinct) != 10 {
		t.Errorf("recovery codes repeat: %v", codes)
	}
	m := f.fresh(t, f.m)
	if !m.TOTPEnabled {
		t.Fatal("TOTP not enabled after confirmation")
	}
	if n := f.actionCount(t, keyledger.ActionTOTPEnable, ""); n != 1 {
		t.Errorf("%d user.totp_enable events, want 1", n)
	}
	_, err = f.s.BeginTOTP(ctx, as(m), "keyledger-test")
	wantCode(t, err, keyledger.ECONFLICT)
	_, err = f.s.ConfirmTOTP(ctx, as(m), "", totpCode(t, secret, now.Add(30*time.Second)), "")
	wantCode(t, err, keyledger.ECONFLICT)
	// Neither the secret nor a recovery code is stored in the clear.
	needles := leakForms(secret)
	for i, c := range codes {
		needles["recovery"+string(rune('a'+i))] = c
		needles["recovery-bare"+string(rune('a'+i))] = strings.ReplaceAll(c, "-", "")
	}
	if found := findInDatabase(t, f.pool, needles); len(found) > 0 {
		t.Errorf("two-factor secrets stored in the clear: %v", found)
	}
	if n := f.count(t, "SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL", m.ID); n != 10 {
		t.Errorf("%d recovery code rows, want 10", n)
	}

	// Sign-in: the password gives a pending session only.
	f.clock.Advance(30 * time.Second)
	u, err := f.s.Authenticate(ctx, govMeta, m.Email, testPassword)
	if err != nil || !u.TOTPEnabled {
		t.Fatalf("Authenticate = %+v, %v", u, err)
	}
	sid := f.login(t, u)
	if _, err := f.s.SessionUser(ctx, sid, timeouts); err != store.ErrNoSession {
		t.Errorf("SessionUser of a pending session = %v, want ErrNoSession", err)
	}
	st, err := f.s.Session(ctx, sid, timeouts)
	if err != nil || !st.PendingTOTP || st.User.ID != m.ID {
		t.Errorf("Session = %+v, %v; want pending", st, err)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2 AND details->>'second_factor' = 'pending'", keyledger.ActionSignIn, m.ID); n != 1 {
		t.Errorf("%d pending sign-in events, want 1", n)
	}

	// A wrong code: refused, counted, audited.
	if _, err := f.s.CompleteTOTP(ctx, govMeta, sid, wrongTOTP(t, secret, f.clock.Now()), timeouts); err != store.ErrBadCode {
		t.Errorf("CompleteTOTP wrong code = %v, want ErrBadCode", err)
	}
	if n := f.count(t, "SELECT count(*) FROM login_failures WHERE email = $1", m.Email); n != 1 {
		t.Errorf("%d login_failures rows, want 1", n)
	}
	if n := f.actionCount(t, keyledger.ActionTOTPFailed, ""); n != 1 {
		t.Errorf("%d auth.totp_failed events, want 1", n)
	}
	if _, err := f.s.SessionUser(ctx, sid, timeouts); err != store.ErrNoSession {
		t.Error("a wrong code completed the sign-in")
	}

	// The right code completes it.
	code := totpCode(t, secret, f.clock.Now())
	got, err := f.s.CompleteTOTP(ctx, govMeta, sid, code, timeouts)
	if err != nil || got.ID != m.ID {
		t.Fatalf("CompleteTOTP = %+v, %v", got, err)
	}
	if u, err := f.s.SessionUser(ctx, sid, timeouts); err != nil || u.ID != m.ID {
		t.Errorf("SessionUser after the code = %+v, %v", u, err)
	}
	st, _ = f.s.Session(ctx, sid, timeouts)
	if st.PendingTOTP || !st.StepUpAt.Equal(f.clock.Now()) {
		t.Errorf("session after the code: %+v", st)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2 AND details->>'second_factor' = 'totp'", keyledger.ActionSignIn, m.ID); n != 1 {
		t.Errorf("%d sign-in events with totp, want 1", n)
	}
	// Completing a full session again is harmless.
	if _, err := f.s.CompleteTOTP(ctx, govMeta, sid, "whatever", timeouts); err != nil {
		t.Errorf("CompleteTOTP on a full session = %v", err)
	}

	// The same code on a new pending session: replay, refused.
	sid2 := f.login(t, u)
	if _, err := f.s.CompleteTOTP(ctx, govMeta, sid2, code, timeouts); err != store.ErrBadCode {
		t.Errorf("replayed code = %v, want ErrBadCode", err)
	}
	if n := f.count(t, "SELECT count(*) FROM users WHERE id = $1 AND totp_last_step = $2", m.ID, f.clock.Now().Unix()/30); n != 1 {
		t.Error("totp_last_step is not the step of the accepted code")
	}
	// A recovery code works once (typed in any case, dashes optional).
	if _, err := f.s.CompleteTOTP(ctx, govMeta, sid2, strings.ToLower(strings.ReplaceAll(codes[0], "-", "")), timeouts); err != nil {
		t.Fatalf("recovery code: %v", err)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2 AND details->>'second_factor' = 'recovery_code'", keyledger.ActionSignIn, m.ID); n != 1 {
		t.Errorf("%d sign-in events with a recovery code, want 1", n)
	}
	sid3 := f.login(t, u)
	if _, err := f.s.CompleteTOTP(ctx, govMeta, sid3, codes[0], timeouts); err != store.ErrBadCode {
		t.Errorf("a used recovery code = %v, want ErrBadCode", err)
	}
	if n := f.count(t, "SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NOT NULL", m.ID); n != 1 {
		t.Errorf("%d used recovery codes, want 1", n)
	}
	// Another user's recovery code is not ours: codes are bound to the user.
	_, oCodes, oUser := f.enrollTOTP(t, f.o)
	if _, err := f.s.CompleteTOTP(ctx, govMeta, sid3, oCodes[0], timeouts); err != store.ErrBadCode {
		t.Errorf("another user's recovery code = %v, want ErrBadCode", err)
	}
	oSid := f.login(t, oUser)
	if _, err := f.s.CompleteTOTP(ctx, govMeta, oSid, oCodes[0], timeouts); err != nil {
		t.Errorf("o's own recovery code: %v", err)
	}

	// A pending session lasts five minutes at most.
	sid4 := f.login(t, u)
	f.clock.Advance(5 * time.Minute)
	if _, err := f.s.CompleteTOTP(ctx, govMeta, sid4, totpCode(t, secret, f.clock.Now()), timeouts); err != store.ErrNoSession {
		t.Errorf("CompleteTOTP on a 5-minute-old pending session = %v, want ErrNoSession", err)
	}

	// Turning it off needs the password. (Past the throttle window of
	// the failures above: wrong passwords here count too.)
	f.clock.Advance(16 * time.Minute)
	err = f.s.DisableTOTP(ctx, as(m), "not the password at all")
	wantCode(t, err, keyledger.EINVALID)
	if !f.fresh(t, m).TOTPEnabled {
		t.Fatal("a wrong password disabled two-factor sign-in")
	}
	// The account has had more than PerAccount failures today: the next
	// attempt waits out the progressive delay (at most MaxDelay).
	wantCode(t, f.s.DisableTOTP(ctx, as(m), testPassword), keyledger.ETOOMANY)
	f.clock.Advance(store.DefaultThrottle().MaxDelay)
	if err := f.s.DisableTOTP(ctx, as(m), testPassword); err != nil {
		t.Fatal(err)
	}
	m = f.fresh(t, m)
	if m.TOTPEnabled {
		t.Fatal("still enabled")
	}
	if n := f.count(t, "SELECT count(*) FROM recovery_codes WHERE user_id = $1", m.ID); n != 0 {
		t.Errorf("%d recovery codes left after disabling", n)
	}
	if n := f.count(t, "SELECT count(*) FROM users WHERE id = $1 AND totp_ciphertext IS NULL AND totp_wrapped_dek IS NULL", m.ID); n != 1 {
		t.Error("sealed secret left after disabling")
	}
	if n := f.actionCount(t, keyledger.ActionTOTPDisable, ""); n != 1 {
		t.Errorf("%d user.totp_disable events, want 1", n)
	}
	sid5 := f.login(t, m)
	if _, err := f.s.SessionUser(ctx, sid5, timeouts); err != nil {
		t.Errorf("sign-in after disabling is still pending: %v", err)
	}
}

func TestTOTPThrottle(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	secret, _, m := f.enrollTOTP(t, f.m)
	sid := f.login(t, m)
	for i := 0; i < 5; i++ {
		if _, err := f.s.CompleteTOTP(ctx, govMeta, sid, wrongTOTP(t, secret, f.clock.Now()), timeouts); err != store.ErrBadCode {
			t.Fatalf("failure %d = %v, want ErrBadCode", i+1, err)
		}
	}
	// The sixth try is throttled, even with the right code.
	if _, err := f.s.CompleteTOTP(ctx, govMeta, sid, totpCode(t, secret, f.clock.Now()), timeouts); keyledger.ErrorCode(err) != keyledger.ETOOMANY {
		t.Errorf("sixth try = %v, want ErrThrottled", err)
	}
	if _, err := f.s.SessionUser(ctx, sid, timeouts); err != store.ErrNoSession {
		t.Error("a throttled attempt completed the sign-in")
	}
	// Code failures count towards the password throttle too.
	if _, err := f.s.Authenticate(ctx, govMeta, m.Email, testPassword); keyledger.ErrorCode(err) != keyledger.ETOOMANY {
		t.Errorf("Authenticate after 5 code failures = %v, want ErrThrottled", err)
	}
	// After the window, a new sign-in works.
	f.clock.Advance(16 * time.Minute)
	sid2 := f.login(t, m)
	if _, err := f.s.CompleteTOTP(ctx, govMeta, sid2, totpCode(t, secret, f.clock.Now()), timeouts); err != nil {
		t.Errorf("after the window: %v", err)
	}
}

func TestRolePolicies(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	pol, err := f.s.RolePolicies(ctx, keyledger.SystemActor("test"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pol) != 3 || pol[keyledger.RoleAdmin] || pol[keyledger.RoleLead] || pol[keyledger.RoleMember] {
		t.Errorf("initial policies %v, want three, none requiring TOTP", pol)
	}
	mSid, leadSid := f.login(t, f.m), f.login(t, f.lead)
	if st, _ := f.s.Session(ctx, mSid, timeouts); st.MustEnrollTOTP {
		t.Error("MustEnrollTOTP before any policy")
	}

	for _, who := range []*keyledger.User{f.lead, f.m} {
		wantCode(t, f.s.SetRolePolicy(ctx, as(who), keyledger.RoleMember, true), keyledger.EFORBIDDEN)
	}
	wantCode(t, f.s.SetRolePolicy(ctx, as(f.admin), "owner", true), keyledger.ENOTFOUND)
	if err := f.s.SetRolePolicy(ctx, as(f.admin), keyledger.RoleMember, true); err != nil {
		t.Fatal(err)
	}
	if pol, _ := f.s.RolePolicies(ctx, keyledger.SystemActor("test")); !pol[keyledger.RoleMember] || pol[keyledger.RoleLead] {
		t.Errorf("policies %v, want member only", pol)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND actor_id = $2 AND details->>'role' = 'member' AND details->>'require_totp' = 'true'",
		keyledger.ActionRolePolicy, f.admin.ID); n != 1 {
		t.Errorf("%d role.policy_change events, want 1", n)
	}
	if st, err := f.s.Session(ctx, mSid, timeouts); err != nil || !st.MustEnrollTOTP {
		t.Errorf("member without TOTP: %+v, %v; want MustEnrollTOTP", st, err)
	}
	if st, _ := f.s.Session(ctx, leadSid, timeouts); st.MustEnrollTOTP {
		t.Error("MustEnrollTOTP for a lead when only members require it")
	}
	f.enrollTOTP(t, f.m)
	if st, err := f.s.Session(ctx, mSid, timeouts); err != nil || st.MustEnrollTOTP {
		t.Errorf("member after enrolling: %+v, %v; want no MustEnrollTOTP", st, err)
	}
	// A role change applies the other role's policy.
	if _, err := f.s.SetRole(ctx, as(f.admin), f.lead.ID, keyledger.RoleMember); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.s.Session(ctx, leadSid, timeouts); !st.MustEnrollTOTP {
		t.Error("demoted lead without TOTP: MustEnrollTOTP false")
	}
	if err := f.s.SetRolePolicy(ctx, as(f.admin), keyledger.RoleMember, false); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.s.Session(ctx, leadSid, timeouts); st.MustEnrollTOTP {
		t.Error("MustEnrollTOTP after the policy was lifted")
	}
}

// TestStepUp: in a sensitive environment a reveal or export needs a
// password or code from the last ten minutes.
func TestStepUp(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	prod, _ := f.govKey(t, f.m, "prod", "production")
	dev, _ := f.govKey(t, f.m, "dev", "development")
	sid := f.login(t, f.m)
	st, err := f.s.Session(ctx, sid, timeouts)
	if err != nil || !st.StepUpAt.Equal(f.clock.Now()) {
		t.Fatalf("new session step-up at %v, want sign-in time %v (%v)", st.StepUpAt, f.clock.Now(), err)
	}
	// Fresh from sign-in: fine.
	if _, err := f.s.Reveal(ctx, steppedUpAt(f.m, st.StepUpAt), prod.ID, "incident"); err != nil {
		t.Fatalf("reveal right after sign-in: %v", err)
	}
	revealsBefore := f.actionCount(t, keyledger.ActionKeyReveal, prod.ID)

	f.clock.Advance(11 * time.Minute)
	stale := steppedUpAt(f.m, st.StepUpAt)
	_, err = f.s.Reveal(ctx, stale, prod.ID, "incident")
	wantField(t, err, keyledger.ESTEPUP, "step_up")
	_, err = f.s.Reveal(ctx, keyledger.Actor{User: f.m}, prod.ID, "incident") // never stepped up
	wantCode(t, err, keyledger.ESTEPUP)
	if n := f.actionCount(t, keyledger.ActionKeyReveal, prod.ID); n != revealsBefore {
		t.Errorf("a refused reveal was audited as a reveal (%d -> %d)", revealsBefore, n)
	}
	_, err = f.s.ExportKeys(ctx, stale, "production", "", "incident", keyledger.FormatBash)
	wantCode(t, err, keyledger.ESTEPUP)
	if n := f.actionCount(t, keyledger.ActionKeyExport, ""); n != 0 {
		t.Errorf("%d export events after a refused export", n)
	}
	// Development is not sensitive.
	if _, err := f.s.Reveal(ctx, stale, dev.ID, ""); err != nil {
		t.Errorf("development reveal with an old step-up: %v", err)
	}
	if _, err := f.s.ExportKeys(ctx, stale, "development", "", "", keyledger.FormatBash); err != nil {
		t.Errorf("development export with an old step-up: %v", err)
	}

	// A wrong password: refused, audited, nothing moves.
	_, err = f.s.StepUp(ctx, steppedUpAt(f.m, st.StepUpAt), sid, "not my password at all")
	wantField(t, err, keyledger.ESTEPUP, "step_up")
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE subject_id = $1 AND ((action = $2 AND details->>'result' = 'failed') OR action = $3)",
		f.m.ID, keyledger.ActionStepUp, keyledger.ActionReauthFailed); n != 1 {
		t.Errorf("%d audited step-up failures, want 1", n)
	}
	if n := f.count(t, "SELECT count(*) FROM sessions WHERE id_hash = sha256($1::bytea) AND step_up_at = $2", []byte(sid), st.StepUpAt); n != 1 {
		t.Error("a failed step-up moved step_up_at")
	}
	// Someone else's session cannot be stepped up, even with the right
	// password of the person asking.
	if _, err := f.s.StepUp(ctx, as(f.n), sid, testPassword); err != store.ErrNoSession {
		t.Errorf("stepping up another's session = %v, want ErrNoSession", err)
	}
	// The right password.
	at, err := f.s.StepUp(ctx, stale, sid, testPassword)
	if err != nil {
		t.Fatal(err)
	}
	if !at.Equal(f.clock.Now()) {
		t.Errorf("StepUp = %v, want now %v", at, f.clock.Now())
	}
	if n := f.count(t, "SELECT count(*) FROM sessions WHERE id_hash = sha256($1::bytea) AND step_up_at = $2", []byte(sid), at); n != 1 {
		t.Error("sessions.step_up_at not updated")
	}
	if st, _ := f.s.Session(ctx, sid, timeouts); !st.StepUpAt.Equal(at) {
		t.Errorf("Session().StepUpAt = %v, want %v", st.StepUpAt, at)
	}
	fresh := steppedUpAt(f.m, at)
	if _, err := f.s.Reveal(ctx, fresh, prod.ID, "incident"); err != nil {
		t.Errorf("reveal after step-up: %v", err)
	}
	if res, err := f.s.ExportKeys(ctx, fresh, "production", "", "incident", keyledger.FormatBash); err != nil || len(res.Entries) != 1 {
		t.Errorf("export after step-up: %+v, %v", res.Entries, err)
	}
	// Ten minutes is the window.
	f.clock.Advance(10 * time.Minute)
	if _, err := f.s.Reveal(ctx, fresh, prod.ID, "incident"); err != nil {
		t.Errorf("reveal exactly 10 minutes after step-up: %v", err)
	}
	f.clock.Advance(time.Second)
	_, err = f.s.Reveal(ctx, fresh, prod.ID, "incident")
	wantCode(t, err, keyledger.ESTEPUP)

	// Making development sensitive applies on the next call.
	if _, err := f.s.UpdateEnvironment(ctx, as(f.admin), "development",
		keyledger.EnvironmentInput{RevealPolicy: "any_user", Sensitive: true, RotationDays: "180"}); err != nil {
		t.Fatal(err)
	}
	_, err = f.s.Reveal(ctx, fresh, dev.ID, "")
	wantCode(t, err, keyledger.ESTEPUP)
	_, err = f.s.ExportKeys(ctx, fresh, "development", "", "", keyledger.FormatBash)
	wantCode(t, err, keyledger.ESTEPUP)
	if _, err := f.s.Reveal(ctx, steppedUpAt(f.m, f.clock.Now()), dev.ID, ""); err != nil {
		t.Errorf("stepped-up reveal in the now-sensitive development: %v", err)
	}
}

// TestStepUpWithTOTP: a two-factor user may step up with a code (each code
// once) or with the password.
func TestStepUpWithTOTP(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	prod, _ := f.govKey(t, f.m, "prod", "production")
	secret, _, m := f.enrollTOTP(t, f.m)
	sid := f.login(t, m)
	if _, err := f.s.CompleteTOTP(ctx, govMeta, sid, totpCode(t, secret, f.clock.Now()), timeouts); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(11 * time.Minute)
	st, _ := f.s.Session(ctx, sid, timeouts)
	_, err := f.s.Reveal(ctx, steppedUpAt(m, st.StepUpAt), prod.ID, "incident")
	wantCode(t, err, keyledger.ESTEPUP)

	code := totpCode(t, secret, f.clock.Now())
	at, err := f.s.StepUp(ctx, steppedUpAt(m, st.StepUpAt), sid, code)
	if err != nil {
		t.Fatalf("step-up with a code: %v", err)
	}
	if _, err := f.s.Reveal(ctx, steppedUpAt(m, at), prod.ID, "incident"); err != nil {
		t.Errorf("reveal after a code step-up: %v", err)
	}
	// The same code again is a replay.
	_, err = f.s.StepUp(ctx, steppedUpAt(m, at), sid, code)
	wantCode(t, err, keyledger.ESTEPUP)
	// The password works for a two-factor user too.
	f.clock.Advance(time.Minute)
	at2, err := f.s.StepUp(ctx, steppedUpAt(m, at), sid, testPassword)
	if err != nil || !at2.Equal(f.clock.Now()) {
		t.Errorf("password step-up for a TOTP user = %v, %v", at2, err)
	}
	// A pending session cannot be stepped up into a full one.
	pending := f.login(t, m)
	if _, err := f.s.StepUp(ctx, steppedUpAt(m, at2), pending, testPassword); err == nil {
		if _, err := f.s.SessionUser(ctx, pending, timeouts); err == nil {
			t.Error("a step-up completed a pending sign-in")
		}
	}
}

// TestStepUpThrottled: step-up is a password (or code) check reachable by
// whoever holds a session cookie. Unthrottled, a stolen session could guess
// the password or a 6-digit code at leisure to unlock production reveals;
// failures must count like sign-in failures.
func TestStepUpThrottled(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := t.Context()
	sid := f.login(t, f.m)
	actor := steppedUpAt(f.m, f.clock.Now())
	for i := 0; i < 5; i++ {
		_, err := f.s.StepUp(ctx, actor, sid, "guess number "+string(rune('a'+i))+" of many")
		wantCode(t, err, keyledger.ESTEPUP)
	}
	if _, err := f.s.StepUp(ctx, actor, sid, testPassword); err == nil {
		t.Error("step-up succeeded after 5 failures in a row; step-up failures are not throttled")
	}
}
