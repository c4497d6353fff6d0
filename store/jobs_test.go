package store_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/riverqueue/river"
)

// jobsFixture has three keys the fake verifier can check, one it cannot,
// and one overdue key (unsupported provider, so it is not checked) for the
// reminder job.
type jobsFixture struct {
	*lcFixture
	verifiable []*keyledger.Key
	values     map[string]string // by key id
	overdue    *keyledger.Key
	v          *fakeVerifier
	n          *fakeNotifier
}

func newJobsFixture(t *testing.T) *jobsFixture {
	t.Helper()
	f := &jobsFixture{lcFixture: newLCFixture(t), values: map[string]string{}, v: newFakeVerifier(), n: &fakeNotifier{}}
	for _, name := range []string{"Job one", "Job two", "Job three"} {
		k, value := f.newKey(t, name, "development")
		f.verifiable = append(f.verifiable, k)
		f.values[k.ID] = value
	}
	f.key(t, f.owner, keyledger.KeyInput{Name: "Unsupported", Provider: "acme", Project: "ops", Environment: "development",
		OwnerEmail: f.owner.Email, Value: secretValue(t, "acme_")})
	f.overdue = f.key(t, f.owner, keyledger.KeyInput{Name: "Overdue vendor", Provider: "acme", Project: "ops", Environment: "development",
		OwnerEmail: f.owner.Email, Value: secretValue(t, "acme_"), RotationDays: "1"})
	// The store's clock moves two days on and stays there: the overdue
	// key is overdue, and checks made now stay fresh for the interval.
	f.clock.Advance(48 * time.Hour)
	return f
}

// start starts a job client on the fixture's store and stops it when the
// test ends (before the pool closes).
func (f *jobsFixture) start(t *testing.T) *river.Client[pgx.Tx] {
	t.Helper()
	c, err := f.s.NewJobs(store.JobsConfig{
		Verifier:       f.v,
		Notifier:       f.n,
		Links:          testLinks("https://keyledger.example.com"),
		VerifyInterval: time.Hour,
		ScanInterval:   time.Second,
	})
	if err != nil {
		t.Fatalf("NewJobs: %v", err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatalf("start jobs: %v", err)
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := c.Stop(ctx); err != nil {
			t.Errorf("stop jobs: %v", err)
		}
		select {
		case <-c.Stopped():
		default:
			t.Error("client not stopped after Stop returned")
		}
	}
	t.Cleanup(stop)
	return c
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", within, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// completedScans counts finished verify-scan jobs.
func (f *jobsFixture) completedScans(t *testing.T) int {
	t.Helper()
	return f.count(t, "SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed'", store.VerifyScanArgs{}.Kind())
}

// checkOnce asserts each verifiable key was checked exactly once, with its
// own value, and that the other keys were not.
func (f *jobsFixture) checkOnce(t *testing.T) {
	t.Helper()
	for _, k := range f.verifiable {
		if n := f.actionCount(t, keyledger.ActionKeyVerify, k.ID); n != 1 {
			t.Errorf("%q: %d key.verify events, want 1", k.Name, n)
		}
		got, err := f.s.GetKey(context.Background(), as(f.owner), k.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.VerifyResult != keyledger.VerifyOK || got.LastVerifiedAt == nil {
			t.Errorf("%q: result %q at %v", k.Name, got.VerifyResult, got.LastVerifiedAt)
		}
	}
	if n := f.actionCount(t, keyledger.ActionKeyVerify, ""); n != len(f.verifiable) {
		t.Errorf("%d key.verify events in all, want %d", n, len(f.verifiable))
	}
	calls := f.v.calls()
	slices.Sort(calls)
	var want []string
	for _, k := range f.verifiable {
		want = append(want, f.values[k.ID])
	}
	slices.Sort(want)
	if !slices.Equal(calls, want) {
		t.Errorf("verifier called %d times; want once per verifiable key with its value", len(calls))
	}
	for _, ev := range f.events(t, keyledger.ActionKeyVerify, f.verifiable[0].ID) {
		if ev.Actor != "scheduler" {
			t.Errorf("scheduled check audited as %q", ev.Actor)
		}
	}
}

// settle waits until two more scans have completed after the checks, so
// a duplicate check would have had its chance.
func (f *jobsFixture) settle(t *testing.T) {
	t.Helper()
	waitFor(t, 10*time.Second, "all keys checked", func() bool {
		return f.actionCount(t, keyledger.ActionKeyVerify, "") >= len(f.verifiable)
	})
	scans := f.completedScans(t)
	waitFor(t, 10*time.Second, "two more scans", func() bool { return f.completedScans(t) >= scans+2 })
	waitFor(t, 5*time.Second, "no key check pending", func() bool {
		return f.count(t, "SELECT count(*) FROM river_job WHERE kind = $1 AND state NOT IN ('completed', 'discarded', 'cancelled')",
			store.VerifyKeyArgs{}.Kind()) == 0
	})
}

func TestJobsVerifyEachKeyOnce(t *testing.T) {
	t.Parallel()
	f := newJobsFixture(t)
	f.start(t)
	f.settle(t)
	f.checkOnce(t)

	// The reminder and destroy jobs ran too: one reminder for the
	// overdue key.
	waitFor(t, 10*time.Second, "reminder sent", func() bool {
		return f.actionCount(t, keyledger.ActionKeyRemind, f.overdue.ID) >= 1
	})
	if n := f.actionCount(t, keyledger.ActionKeyRemind, ""); n != 1 {
		t.Errorf("%d reminders, want 1", n)
	}

	counts, fails, err := f.s.JobStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, c := range counts {
		if c.State == "completed" {
			kinds[c.Kind] += c.Count
		}
		if c.Last == nil {
			t.Errorf("job count %+v has no time", c)
		}
	}
	for _, kind := range []string{store.VerifyScanArgs{}.Kind(), store.VerifyKeyArgs{}.Kind(), store.DestroyVersionsArgs{}.Kind(), store.RemindArgs{}.Kind()} {
		if kinds[kind] == 0 {
			t.Errorf("JobStatus lists no completed %s jobs: %+v", kind, counts)
		}
	}
	if kinds[store.VerifyKeyArgs{}.Kind()] != len(f.verifiable) {
		t.Errorf("%d completed key checks, want %d", kinds[store.VerifyKeyArgs{}.Kind()], len(f.verifiable))
	}
	if len(fails) != 0 {
		t.Errorf("job failures: %+v", fails)
	}
}

// TestJobsTwoReplicas: two job clients on one database (two replicas of
// the server) still check each key once and remind once.
func TestJobsTwoReplicas(t *testing.T) {
	t.Parallel()
	f := newJobsFixture(t)
	a := f.start(t)
	b := f.start(t)
	if a.ID() == b.ID() {
		t.Fatalf("both clients have id %q", a.ID())
	}
	f.settle(t)
	f.checkOnce(t)
	waitFor(t, 10*time.Second, "reminder sent", func() bool {
		return f.actionCount(t, keyledger.ActionKeyRemind, f.overdue.ID) >= 1
	})
	// Let the reminder job run again on whichever replica leads.
	remind := store.RemindArgs{}.Kind()
	runs := f.count(t, "SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed'", remind)
	waitFor(t, 10*time.Second, "another reminder run", func() bool {
		return f.count(t, "SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed'", remind) > runs
	})
	if got := f.n.take(); len(got) != 1 {
		t.Errorf("%d notifications with two replicas, want 1", len(got))
	}
	if _, fails, err := f.s.JobStatus(t.Context()); err != nil || len(fails) != 0 {
		t.Errorf("job failures: %+v, %v", fails, err)
	}
}

// TestJobsDestroyExpiredVersions: the periodic destroy job shreds a
// version whose grace ended.
func TestJobsDestroyExpiredVersions(t *testing.T) {
	t.Parallel()
	f := newJobsFixture(t)
	k := f.verifiable[0]
	if _, err := f.s.RotateKey(t.Context(), as(f.owner), k.ID, keyledger.RotateInput{Value: secretValue(t, "sk-proj-"), GraceDays: "0"}); err != nil {
		t.Fatal(err)
	}
	f.start(t)
	waitFor(t, 10*time.Second, "version destroyed", func() bool {
		return f.actionCount(t, keyledger.ActionVersionDestroy, k.ID) == 1
	})
	if n := f.count(t, "SELECT count(*) FROM key_versions WHERE key_id = $1 AND version = 1 AND ciphertext IS NULL AND destroyed_at IS NOT NULL", k.ID); n != 1 {
		t.Error("version 1 not shredded")
	}
}

// TestJobsSendValueAlerts: the job client tells the owner and the leads,
// within its scan interval, that a production key's value was offered by
// someone who may not reveal it.
func TestJobsSendValueAlerts(t *testing.T) {
	t.Parallel()
	f := newJobsFixture(t)
	prod, value := f.newKey(t, "Prod vendor", "production")
	_, err := f.s.CreateKey(t.Context(), as(f.other), keyledger.KeyInput{Name: "Mine now", Project: "ops", Environment: "development",
		OwnerEmail: f.other.Email, Value: value})
	if keyledger.ErrorCode(err) != keyledger.ECONFLICT {
		t.Fatalf("duplicate registration: %v", err)
	}
	f.start(t)
	var alert keyledger.Notification
	waitFor(t, 10*time.Second, "value alert sent", func() bool {
		for _, n := range f.n.take() {
			if n.Kind == keyledger.AlertDuplicateValue {
				alert = n
				return true
			}
		}
		return false
	})
	if alert.KeyID != prod.ID || alert.AttemptedBy != f.other.Email || alert.URL != "https://keyledger.example.com/keys/"+prod.ID ||
		!slices.Contains(alert.Recipients, f.owner.Email) || !slices.Contains(alert.Recipients, f.lead.Email) {
		t.Errorf("alert %+v", alert)
	}
	if n := f.count(t, "SELECT count(*) FROM value_alerts WHERE sent_at IS NULL"); n != 0 {
		t.Errorf("%d alerts still pending", n)
	}
}
