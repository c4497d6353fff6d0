package store_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

func TestSendReminders(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	lead2 := f.user(t, "lead2@example.com", keyledger.RoleLead)
	leaver := f.user(t, "leaver@example.com", keyledger.RoleMember)
	v := newFakeVerifier()
	n := &fakeNotifier{}
	const base = "https://keyledger.example.com"

	mk := func(name string, owner *keyledger.User, days int) (*keyledger.Key, string) {
		t.Helper()
		value := secretValue(t, "sk-proj-")
		k := f.key(t, owner, keyledger.KeyInput{Name: name, Project: "shop", Environment: "production", OwnerEmail: owner.Email,
			Value: value, RotationDays: fmt.Sprint(days)})
		return k, value
	}
	overdue, overdueValue := mk("Overdue", f.owner, 10)
	dueSoon, _ := mk("Due soon", f.owner, 20)
	notDue, _ := mk("Not due", f.owner, 100)
	failing, failingValue := mk("Failing", f.owner, 100)
	orphan, _ := mk("Owner left", leaver, 10)
	archived, _ := mk("Archived overdue", f.owner, 10)
	if err := f.s.ArchiveKey(ctx, as(f.owner), archived.ID); err != nil {
		t.Fatal(err)
	}
	v.set(failingValue, keyledger.VerifyResult{Result: keyledger.VerifyQuota, Message: "insufficient_quota"})
	if _, err := f.s.VerifyKey(ctx, as(f.owner), failing.ID, v); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s.DeactivateUser(ctx, as(f.admin), leaver.Email); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(11 * 24 * time.Hour)

	want := map[string]struct {
		kind       string
		recipients []string
	}{
		overdue.ID: {keyledger.RemindOverdue, []string{f.owner.Email, f.lead.Email, lead2.Email}},
		dueSoon.ID: {keyledger.RemindDueSoon, []string{f.owner.Email, f.lead.Email, lead2.Email}},
		failing.ID: {keyledger.RemindFailing, []string{f.owner.Email, f.lead.Email, lead2.Email}},
		orphan.ID:  {keyledger.RemindOverdue, []string{f.lead.Email, lead2.Email}},
	}
	check := func(t *testing.T, sent int, got []keyledger.Notification) {
		t.Helper()
		if sent != len(want) || len(got) != len(want) {
			t.Errorf("sent %d, notifier got %d, want %d", sent, len(got), len(want))
		}
		seen := map[string]bool{}
		for _, note := range got {
			w, ok := want[note.KeyID]
			if !ok {
				t.Errorf("unexpected reminder for %q (%s)", note.KeyName, note.Kind)
				continue
			}
			if seen[note.KeyID] {
				t.Errorf("two reminders for %q", note.KeyName)
			}
			seen[note.KeyID] = true
			if note.Kind != w.kind {
				t.Errorf("%q: kind %s, want %s", note.KeyName, note.Kind, w.kind)
			}
			rcpt := slices.Clone(note.Recipients)
			slices.Sort(rcpt)
			wr := slices.Clone(w.recipients)
			slices.Sort(wr)
			if !slices.Equal(rcpt, wr) {
				t.Errorf("%q: recipients %v, want %v", note.KeyName, note.Recipients, w.recipients)
			}
			if note.URL != base+"/keys/"+note.KeyID || note.Environment != "production" || note.Project != "shop" {
				t.Errorf("%q: URL %q env %q project %q", note.KeyName, note.URL, note.Environment, note.Project)
			}
			noSecretIn(t, overdueValue, fmt.Sprintf("%+v", note))
			noSecretIn(t, failingValue, fmt.Sprintf("%+v", note))
		}
	}

	sent, err := f.s.SendReminders(ctx, n, testLinks(base))
	if err != nil {
		t.Fatalf("SendReminders: %v", err)
	}
	check(t, sent, n.take())
	for id, w := range want {
		evs := f.events(t, keyledger.ActionKeyRemind, id)
		if len(evs) != 1 || evs[0].Actor != "scheduler" || evs[0].Details["kind"] != w.kind {
			t.Errorf("key.reminder_sent events for %s: %+v", id, evs)
		}
		var last string
		if err := f.pool.QueryRow(ctx, "SELECT coalesce(last_reminder, '') FROM keys WHERE id = $1", id).Scan(&last); err != nil || last != w.kind {
			t.Errorf("last_reminder %q, want %q (%v)", last, w.kind, err)
		}
	}
	for _, k := range []*keyledger.Key{notDue, archived} {
		if c := f.actionCount(t, keyledger.ActionKeyRemind, k.ID); c != 0 {
			t.Errorf("%q reminded %d times", k.Name, c)
		}
	}

	// Later the same day: nothing.
	f.clock.Advance(23*time.Hour + 59*time.Minute)
	if sent, err := f.s.SendReminders(ctx, n, testLinks(base)); err != nil || sent != 0 {
		t.Errorf("second run the same day: sent %d, %v", sent, err)
	}
	if got := n.take(); len(got) != 0 {
		t.Errorf("second run the same day notified %d times", len(got))
	}

	// A day after the first run: again.
	f.clock.Advance(time.Minute)
	sent, err = f.s.SendReminders(ctx, n, testLinks(base))
	if err != nil {
		t.Fatal(err)
	}
	check(t, sent, n.take())

	// The notifier fails: the claims are released and the error returned.
	f.clock.Advance(24 * time.Hour)
	events := f.actionCount(t, keyledger.ActionKeyRemind, "")
	boom := errors.New("webhook answered 502")
	n.setErr(boom)
	sent, err = f.s.SendReminders(ctx, n, testLinks(base))
	if err == nil || !errors.Is(err, boom) {
		t.Errorf("SendReminders with a failing notifier: %v, want the notifier's error", err)
	}
	if sent != 0 {
		t.Errorf("sent %d with a failing notifier", sent)
	}
	if c := f.actionCount(t, keyledger.ActionKeyRemind, ""); c != events {
		t.Errorf("failed deliveries audited as sent (%d -> %d)", events, c)
	}
	if err != nil && strings.Contains(err.Error(), overdueValue) {
		t.Error("error holds a value")
	}
	// The next run retries.
	n.setErr(nil)
	f.clock.Advance(time.Minute)
	sent, err = f.s.SendReminders(ctx, n, testLinks(base))
	if err != nil {
		t.Fatal(err)
	}
	check(t, sent, n.take())

	// Rotating ends "overdue": the orphan's key is rotated with its
	// 10-day interval (so it is due soon at once), the other one archived.
	f.clock.Advance(25 * time.Hour)
	if _, err := f.s.RotateKey(ctx, as(f.lead), orphan.ID, keyledger.RotateInput{Value: secretValue(t, "sk-proj-")}); err != nil {
		t.Fatal(err)
	}
	if err := f.s.ArchiveKey(ctx, as(f.owner), overdue.ID); err != nil {
		t.Fatal(err)
	}
	delete(want, overdue.ID)
	want[orphan.ID] = struct {
		kind       string
		recipients []string
	}{keyledger.RemindDueSoon, []string{f.lead.Email, lead2.Email}}
	sent, err = f.s.SendReminders(ctx, n, testLinks(base))
	if err != nil {
		t.Fatal(err)
	}
	check(t, sent, n.take())
	verifyChained(t, f.s)
}

// TestSendRemindersConcurrent: two replicas run the reminder job at the
// same moment; each key is notified once.
func TestSendRemindersConcurrent(t *testing.T) {
	t.Parallel()
	f := newLCFixture(t)
	ctx := t.Context()
	for i := range 8 {
		f.key(t, f.owner, keyledger.KeyInput{Name: fmt.Sprint("Overdue ", i), Project: "shop", Environment: "development",
			OwnerEmail: f.owner.Email, Value: secretValue(t, "sk-proj-"), RotationDays: "1"})
	}
	f.clock.Advance(48 * time.Hour)
	n := &fakeNotifier{}
	errs := make(chan error, 2)
	start := make(chan struct{})
	for range 2 {
		go func() {
			<-start
			_, err := f.s.SendReminders(ctx, n, testLinks(""))
			errs <- err
		}()
	}
	close(start)
	for range 2 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	got := n.take()
	per := map[string]int{}
	for _, note := range got {
		per[note.KeyID]++
	}
	if len(got) != 8 || len(per) != 8 {
		t.Errorf("%d notifications for %d keys, want 8 for 8", len(got), len(per))
	}
	if c := f.actionCount(t, keyledger.ActionKeyRemind, ""); c != 8 {
		t.Errorf("%d key.reminder_sent events, want 8", c)
	}
}
