package store_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/pquerna/otp/totp"
)

// govFixture is a store on a controllable clock with the governance cast:
// an admin, a lead, and three members: m (who will leave), n (who takes
// over) and o (who owns other keys).
type govFixture struct {
	*fixture
	clock                *clock
	admin, lead, m, n, o *keyledger.User
}

func newGovFixture(t *testing.T) *govFixture {
	t.Helper()
	c := newClock()
	f := &govFixture{fixture: newFixture(t, store.Options{Now: c.Now}), clock: c}
	f.admin = f.user(t, "admin@example.com", keyledger.RoleAdmin)
	f.lead = f.user(t, "lead@example.com", keyledger.RoleLead)
	f.m = f.user(t, "m@example.com", keyledger.RoleMember)
	f.n = f.user(t, "n@example.com", keyledger.RoleMember)
	f.o = f.user(t, "o@example.com", keyledger.RoleMember)
	return f
}

// govMeta is the request metadata of the tests' sign-ins.
var govMeta = keyledger.Actor{IP: "198.51.100.4", UserAgent: "governance-test/1.0"}

// govKey registers a key owned by owner in env with a fresh value.
func (f *govFixture) govKey(t testing.TB, owner *keyledger.User, name, env string) (*keyledger.Key, string) {
	t.Helper()
	v := secretValue(t, "sk-proj-")
	k := f.key(t, owner, keyledger.KeyInput{Name: name, Project: "gov", Environment: env, OwnerEmail: owner.Email, Value: v})
	return k, v
}

// reveal reveals a key's current value as u (stepped up) or fails.
func (f *govFixture) reveal(t testing.TB, u *keyledger.User, id string) store.Revealed {
	t.Helper()
	r, err := f.s.Reveal(context.Background(), as(u), id, "offboarding test")
	if err != nil {
		t.Fatalf("reveal %s as %s: %v", id, u.Email, err)
	}
	return r
}

// rotate gives a key a new value as u or fails.
func (f *govFixture) rotate(t testing.TB, u *keyledger.User, id string) *keyledger.Key {
	t.Helper()
	k, err := f.s.RotateKey(context.Background(), as(u), id, keyledger.RotateInput{Value: secretValue(t, "sk-proj-")})
	if err != nil {
		t.Fatalf("rotate %s as %s: %v", id, u.Email, err)
	}
	return k
}

// login starts a session for u (as returned by the store, so a TOTP user
// gets a pending one).
func (f *govFixture) login(t testing.TB, u *keyledger.User) string {
	t.Helper()
	id, err := f.s.StartSession(context.Background(), govMeta, u, timeouts)
	if err != nil {
		t.Fatalf("start session for %s: %v", u.Email, err)
	}
	return id
}

// fresh reloads a user, so Status, Role and TOTPEnabled are current.
func (f *govFixture) fresh(t testing.TB, u *keyledger.User) *keyledger.User {
	t.Helper()
	got, err := f.s.UserByID(context.Background(), keyledger.SystemActor("test"), u.ID)
	if err != nil {
		t.Fatalf("reload %s: %v", u.Email, err)
	}
	return got
}

// steppedUpAt is an actor for u whose session last proved itself at at.
func steppedUpAt(u *keyledger.User, at time.Time) keyledger.Actor {
	return keyledger.Actor{User: u, IP: govMeta.IP, UserAgent: govMeta.UserAgent, StepUpAt: at}
}

// checklist loads an offboarding as the lead or fails.
func (f *govFixture) checklist(t testing.TB, id int64) *keyledger.Offboarding {
	t.Helper()
	o, err := f.s.Offboarding(context.Background(), as(f.lead), id)
	if err != nil {
		t.Fatalf("offboarding %d: %v", id, err)
	}
	return o
}

// findItem returns the item of kind about keyID ("" for account items).
func findItem(o *keyledger.Offboarding, kind, keyID string) (keyledger.OffboardingItem, bool) {
	for _, it := range o.Items {
		if it.Kind == kind && it.KeyID == keyID {
			return it, true
		}
	}
	return keyledger.OffboardingItem{}, false
}

// mustItem is findItem that fails the test when the item is missing.
func mustItem(t testing.TB, o *keyledger.Offboarding, kind, keyID string) keyledger.OffboardingItem {
	t.Helper()
	it, ok := findItem(o, kind, keyID)
	if !ok {
		t.Fatalf("no %s item for key %q; items: %s", kind, keyID, describeItems(o))
	}
	return it
}

func describeItems(o *keyledger.Offboarding) string {
	s := ""
	for _, it := range o.Items {
		s += fmt.Sprintf("\n  #%d %s %s(%s) %s %q by %q", it.ID, it.Kind, it.KeyName, it.KeyID, it.Status, it.Resolution, it.ResolvedBy)
	}
	return s
}

// wantResolved fails unless it is done (or waived) with resolution, by by.
func wantResolved(t testing.TB, it keyledger.OffboardingItem, status, resolution, by string) {
	t.Helper()
	if it.Status != status || it.Resolution != resolution || it.ResolvedBy != by || it.ResolvedAt == nil {
		t.Errorf("%s item %s: status %q resolution %q by %q at %v; want %q %q by %q with a time",
			it.Kind, it.KeyName, it.Status, it.Resolution, it.ResolvedBy, it.ResolvedAt, status, resolution, by)
	}
}

// totpCode is the code of secret at the store clock's time at.
func totpCode(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// wrongTOTP is a six-digit code that matches none of the steps the store
// accepts at at (one step of skew each way).
func wrongTOTP(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	good := map[string]bool{}
	for _, d := range []time.Duration{-30 * time.Second, 0, 30 * time.Second} {
		good[totpCode(t, secret, at.Add(d))] = true
	}
	for i := 0; ; i++ {
		c := fmt.Sprintf("%06d", (i*137911)%1000000)
		if !good[c] {
			return c
		}
	}
}

// enrollTOTP turns two-factor sign-in on for u and returns the secret,
// the recovery codes and the reloaded user. The clock moves on one step so
// the confirming code is not the next one expected.
func (f *govFixture) enrollTOTP(t testing.TB, u *keyledger.User) (string, []string, *keyledger.User) {
	t.Helper()
	ctx := context.Background()
	enr, err := f.s.BeginTOTP(ctx, as(u), "keyledger-test")
	if err != nil {
		t.Fatalf("BeginTOTP: %v", err)
	}
	codes, err := f.s.ConfirmTOTP(ctx, as(u), "", totpCode(t, enr.Secret, f.clock.Now()), "")
	if err != nil {
		t.Fatalf("ConfirmTOTP: %v", err)
	}
	f.clock.Advance(30 * time.Second)
	return enr.Secret, codes, f.fresh(t, u)
}
