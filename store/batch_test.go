package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// waitQueued waits until n audit rows are queued behind held flushes.
func waitQueued(t *testing.T, s *store.Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.AuditQueued() < n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d audit rows queued", s.AuditQueued(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

type revealOutcome struct {
	who   string
	value string
	err   error
}

// TestRevealAuditBatch: concurrent reveals share one audit INSERT, none
// gets its value before that INSERT committed, and each has its own row.
func TestRevealAuditBatch(t *testing.T) {
	t.Parallel()
	f := newRevealFixture(t)
	ctx := t.Context()
	key := f.keys["development"]
	before := f.reveals(t, key.ID)
	batches0, rows0 := f.s.AuditBatchStats()

	release := f.s.HoldAuditFlushes()
	const n = 20
	out := make(chan revealOutcome, n)
	for i := range n {
		go func() {
			r, err := f.s.Reveal(ctx, as(f.other), key.ID, fmt.Sprintf("batch %d", i))
			out <- revealOutcome{value: r.Value, err: err}
		}()
	}
	waitQueued(t, f.s, n)
	select {
	case o := <-out:
		t.Fatalf("a reveal returned before its audit row was written: %+v", o)
	case <-time.After(50 * time.Millisecond):
	}
	if got := f.reveals(t, key.ID); got != before {
		t.Fatalf("%d audit rows before the flush, want %d", got, before)
	}
	release()
	for range n {
		o := <-out
		if o.err != nil || o.value != f.values["development"] {
			t.Fatalf("reveal in a batch: value ok=%v err=%v", o.value == f.values["development"], o.err)
		}
	}
	if got := f.reveals(t, key.ID); got != before+n {
		t.Fatalf("%d reveal events, want %d", got, before+n)
	}
	for i := range n {
		if c := f.count(t, "SELECT count(*) FROM audit_events WHERE key_id = $1 AND reason = $2", key.ID, fmt.Sprintf("batch %d", i)); c != 1 {
			t.Errorf("reason %q recorded %d times, want once", fmt.Sprintf("batch %d", i), c)
		}
	}
	batches, rows := f.s.AuditBatchStats()
	if rows-rows0 != n || batches-batches0 != 1 {
		t.Fatalf("wrote %d rows in %d batches, want %d rows in one batch", rows-rows0, batches-batches0, n)
	}
}

// TestRevealAuditBatchDeactivated: someone deactivated while their row
// waits in a batch gets no value and no row; the others in the same batch
// are unaffected.
func TestRevealAuditBatchDeactivated(t *testing.T) {
	t.Parallel()
	f := newRevealFixture(t)
	ctx := t.Context()
	key := f.keys["development"]
	leaving := f.user(t, "leaving@example.com", keyledger.RoleMember)
	before := f.reveals(t, key.ID)

	release := f.s.HoldAuditFlushes()
	out := make(chan revealOutcome, 4)
	for _, u := range []*keyledger.User{f.other, leaving, f.owner, f.lead} {
		go func() {
			r, err := f.s.Reveal(ctx, as(u), key.ID, "")
			out <- revealOutcome{who: u.Email, value: r.Value, err: err}
		}()
	}
	waitQueued(t, f.s, 4)
	if _, err := f.s.DeactivateUser(ctx, as(f.admin), leaving.Email); err != nil {
		t.Fatal(err)
	}
	release()
	for range 4 {
		o := <-out
		if o.who == leaving.Email {
			if keyledger.ErrorCode(o.err) != keyledger.EFORBIDDEN || o.value != "" {
				t.Errorf("deactivated mid-batch: err %v, value given %v", o.err, o.value != "")
			}
			continue
		}
		if o.err != nil || o.value != f.values["development"] {
			t.Errorf("%s in the same batch: err %v", o.who, o.err)
		}
	}
	if got := f.reveals(t, key.ID); got != before+3 {
		t.Fatalf("%d new reveal events, want 3", got-before)
	}
	if c := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND actor_id = $2", keyledger.ActionKeyReveal, leaving.ID); c != 0 {
		t.Fatalf("deactivated user has %d reveal events", c)
	}
}

// TestRevealAuditBatchCanceled: a request that goes away while its row is
// queued gets no value and leaves no row.
func TestRevealAuditBatchCanceled(t *testing.T) {
	t.Parallel()
	f := newRevealFixture(t)
	key := f.keys["development"]
	before := f.reveals(t, key.ID)

	release := f.s.HoldAuditFlushes()
	ctx, cancel := context.WithCancel(t.Context())
	out := make(chan revealOutcome, 1)
	go func() {
		r, err := f.s.Reveal(ctx, as(f.other), key.ID, "")
		out <- revealOutcome{value: r.Value, err: err}
	}()
	waitQueued(t, f.s, 1)
	cancel()
	o := <-out
	release()
	if o.err == nil || o.value != "" {
		t.Fatalf("canceled reveal: err %v, value given %v", o.err, o.value != "")
	}
	if f.s.AuditQueued() != 0 {
		t.Fatalf("the canceled row is still queued")
	}
	if got := f.reveals(t, key.ID); got != before {
		t.Fatalf("%d new reveal events for a canceled reveal", got-before)
	}
}

// TestRevealAuditBatchFails: when the batch INSERT fails, every reveal in
// it fails and no value leaves.
func TestRevealAuditBatchFails(t *testing.T) {
	t.Parallel()
	f := newRevealFixture(t)
	ctx := t.Context()
	key := f.keys["development"]
	before := f.reveals(t, key.ID)
	f.asSuperuser(t, `CREATE FUNCTION refuse_reveal() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN IF NEW.action = 'key.reveal' THEN RAISE EXCEPTION 'audit disk full'; END IF; RETURN NEW; END $$`)
	f.asSuperuser(t, `CREATE TRIGGER refuse_reveal BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION refuse_reveal()`)

	release := f.s.HoldAuditFlushes()
	const n = 5
	out := make(chan revealOutcome, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			r, err := f.s.Reveal(ctx, as(f.other), key.ID, "")
			out <- revealOutcome{value: r.Value, err: err}
		})
	}
	waitQueued(t, f.s, n)
	release()
	wg.Wait()
	for range n {
		o := <-out
		if o.value != "" || keyledger.ErrorCode(o.err) != keyledger.EINTERNAL {
			t.Fatalf("reveal with a failing audit insert: err %v, value given %v", o.err, o.value != "")
		}
		if errors.Is(o.err, context.Canceled) {
			t.Fatalf("unexpected cancel: %v", o.err)
		}
	}
	if got := f.reveals(t, key.ID); got != before {
		t.Fatalf("%d reveal events written by a failing batch", got-before)
	}
}

// TestRevealReadBatch: reveals read together in one statement each get
// their own answer: their key's value, "not found" for an unknown key,
// "forbidden" for someone who may not reveal that environment, "no
// account" for a deactivated actor.
func TestRevealReadBatch(t *testing.T) {
	t.Parallel()
	f := newRevealFixture(t)
	ctx := t.Context()
	type ask struct {
		who   *keyledger.User
		key   string
		value string // want this value, or else code
		code  string
	}
	asks := []ask{
		{who: f.other, key: f.keys["development"].ID, value: f.values["development"]},
		{who: f.lead, key: f.keys["production"].ID, value: f.values["production"]},
		{who: f.owner, key: f.keys["staging"].ID, value: f.values["staging"]},
		{who: f.other, key: f.keys["production"].ID, code: keyledger.EFORBIDDEN},
		{who: f.other, key: "00000000-0000-4000-8000-000000000000", code: keyledger.ENOTFOUND},
		{who: f.gone, key: f.keys["development"].ID, code: keyledger.EFORBIDDEN},
	}
	batches0, calls0 := f.s.RevealReadStats()
	release := f.s.HoldRevealReads()
	out := make([]chan revealOutcome, len(asks))
	for i, a := range asks {
		out[i] = make(chan revealOutcome, 1)
		go func() {
			r, err := f.s.Reveal(ctx, as(a.who), a.key, "batched read")
			out[i] <- revealOutcome{value: r.Value, err: err}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); f.s.RevealReadsQueued() < len(asks); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d reads queued", f.s.RevealReadsQueued())
		}
	}
	release()
	for i, a := range asks {
		o := <-out[i]
		if a.value != "" {
			if o.err != nil || o.value != a.value {
				t.Errorf("ask %d (%s): err %v, right value %v", i, a.who.Email, o.err, o.value == a.value)
			}
			continue
		}
		if keyledger.ErrorCode(o.err) != a.code || o.value != "" {
			t.Errorf("ask %d (%s): err %v, want code %s and no value", i, a.who.Email, o.err, a.code)
		}
	}
	batches, calls := f.s.RevealReadStats()
	if calls-calls0 != int64(len(asks)) || batches-batches0 != 1 {
		t.Errorf("%d reads in %d batches, want %d in one", calls-calls0, batches-batches0, len(asks))
	}
}

// TestSessionReadBatch: session lookups of concurrent requests, read in
// one statement, each get their own user, and an unknown or ended session
// is still "no session".
func TestSessionReadBatch(t *testing.T) {
	t.Parallel()
	f := newRevealFixture(t)
	ctx := t.Context()
	meta := keyledger.Actor{IP: "192.0.2.1", UserAgent: "batch-test"}
	ids := map[string]*keyledger.User{}
	for _, u := range []*keyledger.User{f.admin, f.lead, f.owner, f.other} {
		id, err := f.s.StartSession(ctx, meta, u, timeouts)
		if err != nil {
			t.Fatal(err)
		}
		ids[id] = u
	}
	ended, err := f.s.StartSession(ctx, meta, f.other, timeouts)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.s.EndSession(ctx, keyledger.Actor{User: f.other}, ended); err != nil {
		t.Fatal(err)
	}
	asks := []string{ended, "no-such-session"}
	for id := range ids {
		asks = append(asks, id)
	}
	batches0, calls0 := f.s.SessionReadStats()
	release := f.s.HoldSessionReads()
	type outcome struct {
		st  store.SessionState
		err error
	}
	out := make([]chan outcome, len(asks))
	for i, id := range asks {
		out[i] = make(chan outcome, 1)
		go func() {
			st, err := f.s.Session(ctx, id, timeouts)
			out[i] <- outcome{st, err}
		}()
	}
	for deadline := time.Now().Add(10 * time.Second); f.s.SessionReadsQueued() < len(asks); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("only %d session reads queued", f.s.SessionReadsQueued())
		}
	}
	release()
	for i, id := range asks {
		o := <-out[i]
		want, live := ids[id]
		switch {
		case !live && o.err != store.ErrNoSession:
			t.Errorf("session %d (ended or unknown): %v, want ErrNoSession", i, o.err)
		case live && (o.err != nil || o.st.User == nil || o.st.User.ID != want.ID):
			t.Errorf("session %d of %s: user %+v, err %v", i, want.Email, o.st.User, o.err)
		}
	}
	batches, calls := f.s.SessionReadStats()
	if calls-calls0 != int64(len(asks)) || batches-batches0 != 1 {
		t.Errorf("%d session reads in %d batches, want %d in one", calls-calls0, batches-batches0, len(asks))
	}
}

// TestPasswordHashesBounded: a password check waits for a free argon2id
// slot (each hash holds 64 MiB while it runs), and runs once one frees.
func TestPasswordHashesBounded(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	u := f.user(t, "hash@example.com", keyledger.RoleMember)
	if m := f.s.PasswordMemory(); m <= 0 {
		t.Fatalf("PasswordMemory = %d", m)
	}
	release := f.s.HoldPasswordHashes()
	done := make(chan error, 1)
	go func() {
		_, err := f.s.Authenticate(t.Context(), keyledger.Actor{IP: "192.0.2.7"}, u.Email, testPassword)
		done <- err
	}()
	select {
	case err := <-done:
		release()
		t.Fatalf("sign-in finished while every hash slot was taken: %v", err)
	case <-time.After(200 * time.Millisecond):
	}
	release()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("sign-in after the slots freed: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sign-in still waiting after the slots freed")
	}
}
