package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

// rotationFixture is one database opened by stores with different master
// keys, all on one test clock (TOTP codes depend on it).
type rotationFixture struct {
	t              *testing.T
	pool           *pgxpool.Pool
	clock          *clock
	oldKEK, newKEK crypto.KEK
}

func newRotationFixture(t *testing.T) *rotationFixture {
	t.Helper()
	pool, err := pgxpool.New(t.Context(), storetest.NewDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return &rotationFixture{t: t, pool: pool, clock: newClock(),
		oldKEK: storetest.NewKeyring(t).Primary(), newKEK: storetest.NewKeyring(t).Primary()}
}

// open opens the database with primary (and others) loaded.
func (r *rotationFixture) open(primary crypto.KEK, others ...crypto.KEK) (*store.Store, error) {
	ring, err := crypto.NewKeyring(primary, others...)
	if err != nil {
		r.t.Fatal(err)
	}
	return store.New(context.Background(), r.pool, ring, store.Options{PasswordParams: storetest.FastPasswords(), Now: r.clock.Now})
}

func (r *rotationFixture) mustOpen(primary crypto.KEK, others ...crypto.KEK) *store.Store {
	r.t.Helper()
	s, err := r.open(primary, others...)
	if err != nil {
		r.t.Fatalf("open the store: %v", err)
	}
	return s
}

// enroll turns two-factor sign-in on for a new user and returns the user
// and the secret.
func (r *rotationFixture) enroll(s *store.Store, email string) (*keyledger.User, string) {
	r.t.Helper()
	f := &fixture{s: s, pool: r.pool}
	u := f.user(r.t, email, keyledger.RoleMember)
	enr, err := s.BeginTOTP(context.Background(), as(u), "keyledger-test")
	if err != nil {
		r.t.Fatalf("BeginTOTP: %v", err)
	}
	if _, err := s.ConfirmTOTP(context.Background(), as(u), "", totpCode(r.t, enr.Secret, r.clock.Now()), ""); err != nil {
		r.t.Fatalf("ConfirmTOTP: %v", err)
	}
	r.clock.Advance(30 * time.Second)
	u, err = s.UserByID(context.Background(), keyledger.SystemActor("test"), u.ID)
	if err != nil {
		r.t.Fatal(err)
	}
	return u, enr.Secret
}

// signIn runs a whole two-factor sign-in on s: password step (a pending
// session), then the code.
func (r *rotationFixture) signIn(s *store.Store, u *keyledger.User, secret string) error {
	r.t.Helper()
	ctx := context.Background()
	id, err := s.StartSession(ctx, govMeta, u, timeouts)
	if err != nil {
		r.t.Fatalf("start session: %v", err)
	}
	_, err = s.CompleteTOTP(ctx, govMeta, id, totpCode(r.t, secret, r.clock.Now()), timeouts)
	r.clock.Advance(30 * time.Second)
	return err
}

// TestRotateMasterKeyThenTOTPSignIn is the finding: after a rotation and
// dropping the old key, a two-factor sign-in must still work, and a TOTP
// secret still under a key that is not loaded must stop the start.
func TestRotateMasterKeyThenTOTPSignIn(t *testing.T) {
	t.Parallel()
	r := newRotationFixture(t)
	s1 := r.mustOpen(r.oldKEK)
	u, secret := r.enroll(s1, "twofa@example.com")
	if err := r.signIn(s1, u, secret); err != nil {
		t.Fatalf("sign-in before the rotation: %v", err)
	}

	s2 := r.mustOpen(r.newKEK, r.oldKEK)
	if _, err := s2.RotateMasterKey(context.Background(), 2, nil); err != nil {
		t.Fatal(err)
	}
	s3, err := r.open(r.newKEK)
	if err != nil {
		t.Fatalf("only the new key after the rotation: %v", err)
	}
	if err := r.signIn(s3, u, secret); err != nil {
		t.Errorf("two-factor sign-in with only the new key after the rotation: %v", err)
	}

	// A secret sealed under the old key after the rotation (a replica
	// that still had the old key as primary): the start must refuse, and
	// say where and how many.
	r.enroll(s1, "late@example.com")
	_, err = r.open(r.newKEK)
	want := "users.totp: 1 values sealed under master key id " + r.oldKEK.ID() + ", which is not loaded"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("start with a TOTP secret under a key that is not loaded: %v\nwant it to say %q", err, want)
	}
}
