package store_test

import (
	"encoding/hex"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

var timeouts = store.SessionTimeouts{Idle: 30 * time.Minute, Absolute: 2 * time.Hour}

func TestSessionLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := t.Context()
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	meta := keyledger.Actor{IP: "203.0.113.7", UserAgent: "Firefox"}

	id, err := f.s.StartSession(ctx, meta, alice, timeouts)
	if err != nil {
		t.Fatal(err)
	}
	if len(id) < 40 {
		t.Fatalf("session id %q is too short to be unguessable", id)
	}
	u, err := f.s.SessionUser(ctx, id, timeouts)
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != alice.ID || u.Email != alice.Email {
		t.Errorf("SessionUser = %+v", u)
	}
	// A second sign-in gets a fresh id; both work until ended.
	id2, err := f.s.StartSession(ctx, meta, alice, timeouts)
	if err != nil {
		t.Fatal(err)
	}
	if id2 == id {
		t.Fatal("two sessions share an id")
	}
	for _, bad := range []string{"", "nonsense", id + "x", id[:len(id)-1]} {
		if _, err := f.s.SessionUser(ctx, bad, timeouts); err != store.ErrNoSession {
			t.Errorf("SessionUser(%q) = %v, want ErrNoSession", bad, err)
		}
	}

	// Only a hash is stored: neither the id nor any encoding of it.
	if found := findInDatabase(t, f.pool, map[string]string{"id": id, "id2": id2, "id-hex": hex.EncodeToString([]byte(id))}); len(found) > 0 {
		t.Errorf("session id stored: %v", found)
	}
	if n := f.count(t, "SELECT count(*) FROM sessions WHERE user_id = $1 AND octet_length(id_hash) = 32 AND ip = $2 AND user_agent = $3", alice.ID, meta.IP, meta.UserAgent); n != 2 {
		t.Errorf("%d session rows, want 2", n)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND actor_id = $2", keyledger.ActionSignIn, alice.ID); n != 2 {
		t.Errorf("%d sign-in events, want 2", n)
	}

	meta.User = alice
	if err := f.s.EndSession(ctx, meta, id); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.SessionUser(ctx, id, timeouts); err != store.ErrNoSession {
		t.Errorf("after EndSession: %v, want ErrNoSession", err)
	}
	if _, err := f.s.SessionUser(ctx, id2, timeouts); err != nil {
		t.Errorf("the other session died with the first: %v", err)
	}
	// Ending it again is harmless and not audited twice.
	if err := f.s.EndSession(ctx, meta, id); err != nil {
		t.Fatal(err)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1", keyledger.ActionSignOut); n != 1 {
		t.Errorf("%d sign-out events, want 1", n)
	}
}

func TestSessionIdleTimeout(t *testing.T) {
	t.Parallel()
	clk := newClock()
	f := newFixture(t, store.Options{Now: clk.Now})
	ctx := t.Context()
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	id, err := f.s.StartSession(ctx, keyledger.Actor{}, alice, timeouts)
	if err != nil {
		t.Fatal(err)
	}
	// Activity keeps it alive past the idle timeout in total...
	for range 3 {
		clk.Advance(timeouts.Idle - time.Minute)
		if _, err := f.s.SessionUser(ctx, id, timeouts); err != nil {
			t.Fatalf("active session after %v idle: %v", timeouts.Idle-time.Minute, err)
		}
	}
	// ...but not a pause of the idle timeout.
	clk.Advance(timeouts.Idle)
	if _, err := f.s.SessionUser(ctx, id, timeouts); err != store.ErrNoSession {
		t.Fatalf("after %v idle: %v, want ErrNoSession", timeouts.Idle, err)
	}
	if n := f.count(t, "SELECT count(*) FROM sessions"); n != 0 {
		t.Errorf("expired session not deleted on sight: %d rows", n)
	}
	// Coming back does not revive it.
	clk.Advance(-timeouts.Idle)
	if _, err := f.s.SessionUser(ctx, id, timeouts); err != store.ErrNoSession {
		t.Fatalf("revived: %v", err)
	}
}

func TestSessionAbsoluteTimeout(t *testing.T) {
	t.Parallel()
	clk := newClock()
	f := newFixture(t, store.Options{Now: clk.Now})
	ctx := t.Context()
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	id, err := f.s.StartSession(ctx, keyledger.Actor{}, alice, timeouts)
	if err != nil {
		t.Fatal(err)
	}
	step := timeouts.Idle / 2
	elapsed := time.Duration(0)
	for elapsed+step < timeouts.Absolute {
		clk.Advance(step)
		elapsed += step
		if _, err := f.s.SessionUser(ctx, id, timeouts); err != nil {
			t.Fatalf("at %v: %v", elapsed, err)
		}
	}
	clk.Advance(timeouts.Absolute - elapsed)
	if _, err := f.s.SessionUser(ctx, id, timeouts); err != store.ErrNoSession {
		t.Fatalf("at the absolute timeout, although active: %v, want ErrNoSession", err)
	}
}

func TestPurgeExpired(t *testing.T) {
	t.Parallel()
	clk := newClock()
	f := newFixture(t, store.Options{Now: clk.Now})
	ctx := t.Context()
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	old, err := f.s.StartSession(ctx, keyledger.Actor{}, alice, timeouts)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(timeouts.Idle + time.Minute)
	fresh, err := f.s.StartSession(ctx, keyledger.Actor{}, alice, timeouts)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.s.PurgeExpired(ctx, timeouts.Idle); err != nil {
		t.Fatal(err)
	}
	if n := f.count(t, "SELECT count(*) FROM sessions"); n != 1 {
		t.Errorf("%d sessions after purge, want 1", n)
	}
	if _, err := f.s.SessionUser(ctx, fresh, timeouts); err != nil {
		t.Error(err)
	}
	if _, err := f.s.SessionUser(ctx, old, timeouts); err != store.ErrNoSession {
		t.Error(err)
	}
}

func TestDeactivateUserEndsSessions(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := t.Context()
	admin := f.user(t, "admin@example.com", keyledger.RoleAdmin)
	alice := f.user(t, "alice@example.com", keyledger.RoleMember)
	bob := f.user(t, "bob@example.com", keyledger.RoleMember)
	var ids []string
	for range 3 {
		id, err := f.s.StartSession(ctx, keyledger.Actor{}, alice, timeouts)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	bobID, err := f.s.StartSession(ctx, keyledger.Actor{}, bob, timeouts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.DeactivateUser(ctx, as(admin), alice.Email); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if _, err := f.s.SessionUser(ctx, id, timeouts); err != store.ErrNoSession {
			t.Errorf("session of a deactivated user: %v, want ErrNoSession", err)
		}
	}
	if n := f.count(t, "SELECT count(*) FROM sessions WHERE user_id = $1", alice.ID); n != 0 {
		t.Errorf("%d sessions left for the deactivated user", n)
	}
	if _, err := f.s.SessionUser(ctx, bobID, timeouts); err != nil {
		t.Errorf("bob's session died too: %v", err)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2 AND (details->>'sessions_revoked')::int = 3",
		keyledger.ActionUserDeactivate, alice.ID); n != 1 {
		t.Errorf("%d deactivation events recording 3 revoked sessions, want 1", n)
	}
	// A deactivated user cannot start a session by signing in either.
	if _, err := f.s.Authenticate(ctx, keyledger.Actor{}, alice.Email, testPassword); err != store.ErrBadCredentials {
		t.Errorf("sign-in after deactivation: %v", err)
	}
}
