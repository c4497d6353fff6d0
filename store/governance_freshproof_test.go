package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

// The store enforces the fresh-proof rules itself, whatever the handler
// does.

func TestFreshProofForTOTPAndTokens(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	stale := steppedUpAt(f.m, f.clock.Now().Add(-keyledger.StepUpWindow-time.Second))

	enr, err := f.s.BeginTOTP(ctx, stale, "keyledger-test")
	if err != nil {
		t.Fatal(err)
	}
	code := totpCode(t, enr.Secret, f.clock.Now())
	_, err = f.s.ConfirmTOTP(ctx, stale, "", code, "")
	wantField(t, err, keyledger.EINVALID, "current_password")
	_, err = f.s.ConfirmTOTP(ctx, stale, "", code, "not the password")
	wantField(t, err, keyledger.EINVALID, "current_password")
	if f.fresh(t, f.m).TOTPEnabled {
		t.Fatal("a stale actor enrolled without the password")
	}
	if n := f.actionCount(t, keyledger.ActionReauthFailed, ""); n != 1 {
		t.Errorf("%d failed password checks audited, want 1", n)
	}
	if _, err := f.s.ConfirmTOTP(ctx, stale, "", code, testPassword); err != nil {
		t.Fatal(err)
	}

	_, _, err = f.s.CreateToken(ctx, stale, "", keyledger.TokenInput{Name: "stale", Scopes: []string{keyledger.ScopeRead}})
	wantField(t, err, keyledger.EINVALID, "current_password")
	if _, _, err := f.s.CreateToken(ctx, stale, "", keyledger.TokenInput{Name: "stale", Scopes: []string{keyledger.ScopeRead}, CurrentPassword: testPassword}); err != nil {
		t.Fatal(err)
	}
	// The command line (no person) needs no proof.
	if _, _, err := f.s.CreateToken(ctx, keyledger.SystemActor("cli"), f.m.Email, keyledger.TokenInput{Name: "cli", Scopes: []string{keyledger.ScopeRead}}); err != nil {
		t.Fatal(err)
	}

	m := f.fresh(t, f.m)
	err = f.s.DisableTOTP(ctx, steppedUpAt(m, f.clock.Now().Add(-keyledger.StepUpWindow-time.Second)), "")
	wantField(t, err, keyledger.EINVALID, "password")
	if err := f.s.DisableTOTP(ctx, steppedUpAt(m, f.clock.Now()), ""); err != nil {
		t.Fatalf("disable within the window: %v", err)
	}
}

func TestStepUpRefusesFactorEnrolledInSession(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	sid := f.login(t, f.m)
	enr, err := f.s.BeginTOTP(ctx, as(f.m), "keyledger-test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.ConfirmTOTP(ctx, as(f.m), sid, totpCode(t, enr.Secret, f.clock.Now()), ""); err != nil {
		t.Fatal(err)
	}
	m := f.fresh(t, f.m)
	meta := steppedUpAt(m, time.Time{})
	_, err = f.s.StepUp(ctx, meta, sid, totpCode(t, enr.Secret, f.clock.Now().Add(30*time.Second)))
	wantCode(t, err, keyledger.ESTEPUP)
	if _, err := f.s.StepUp(ctx, meta, sid, testPassword); err != nil {
		t.Fatalf("password step-up in the enrolling session: %v", err)
	}
	// Another session may use the factor.
	other := f.login(t, m)
	if _, err := f.s.StepUp(ctx, meta, other, totpCode(t, enr.Secret, f.clock.Now().Add(30*time.Second))); err != nil {
		t.Fatalf("code step-up in another session: %v", err)
	}
}

func TestResetTOTP(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	_, _, m := f.enrollTOTP(t, f.m)
	_, _, admin := f.enrollTOTP(t, f.admin)
	f.login(t, m)

	for _, who := range []*keyledger.User{f.lead, f.n} {
		_, err := f.s.ResetTOTP(ctx, as(who), m.ID)
		wantCode(t, err, keyledger.EFORBIDDEN)
	}
	_, err := f.s.ResetTOTP(ctx, as(admin), admin.ID)
	wantCode(t, err, keyledger.EFORBIDDEN)
	_, err = f.s.ResetTOTP(ctx, as(admin), 999999999)
	wantCode(t, err, keyledger.ENOTFOUND)
	if !f.fresh(t, m).TOTPEnabled || !f.fresh(t, admin).TOTPEnabled {
		t.Fatal("a refused reset turned two-factor sign-in off")
	}

	u, err := f.s.ResetTOTP(ctx, as(admin), m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if u.TOTPEnabled || f.fresh(t, m).TOTPEnabled {
		t.Fatal("still on after the reset")
	}
	if n := f.count(t, "SELECT count(*) FROM sessions WHERE user_id = $1", m.ID); n != 0 {
		t.Errorf("%d sessions left after the reset", n)
	}
	if n := f.count(t, "SELECT count(*) FROM recovery_codes WHERE user_id = $1", m.ID); n != 0 {
		t.Errorf("%d recovery codes left after the reset", n)
	}
	if n := f.actionCount(t, keyledger.ActionTOTPReset, ""); n != 1 {
		t.Errorf("%d %s events, want 1", n, keyledger.ActionTOTPReset)
	}
	_, err = f.s.ResetTOTP(ctx, as(admin), m.ID)
	wantCode(t, err, keyledger.ECONFLICT)
}

func TestTokenRefusedUnderTOTPPolicy(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	secret, _, err := f.s.CreateToken(ctx, as(f.m), "", keyledger.TokenInput{Name: "ci", Scopes: []string{keyledger.ScopeRead}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.TokenActor(ctx, secret, "192.0.2.1", "ci"); err != nil {
		t.Fatal(err)
	}
	if err := f.s.SetRolePolicy(ctx, as(f.admin), keyledger.RoleMember, true); err != nil {
		t.Fatal(err)
	}
	// Straight after: the cache of this replica was cleared.
	_, err = f.s.TokenActor(ctx, secret, "192.0.2.1", "ci")
	wantCode(t, err, keyledger.EFORBIDDEN)
	f.enrollTOTP(t, f.m)
	if _, err := f.s.TokenActor(ctx, secret, "192.0.2.1", "ci"); err != nil {
		t.Fatalf("token after enrolling: %v", err)
	}
}
