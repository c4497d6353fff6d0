package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// Sign-in throttling (docs/security.md, "Sign-in throttling"): per
// (account, address) pair, a progressive per-account delay, per address;
// oversized input refused before any hash; step-ups throttled first.

// throttleFixture is a store on a controllable clock with the default
// limits, an admin and a member.
type throttleFixture struct {
	*fixture
	clock         *clock
	admin, member *keyledger.User
}

func newThrottleFixture(t *testing.T) *throttleFixture {
	t.Helper()
	c := newClock()
	f := &throttleFixture{fixture: newFixture(t, store.Options{Now: c.Now}), clock: c}
	f.admin = f.user(t, "admin@example.com", keyledger.RoleAdmin)
	f.member = f.user(t, "member@example.com", keyledger.RoleMember)
	return f
}

func from(ip string) keyledger.Actor { return keyledger.Actor{IP: ip, UserAgent: "throttle-test/1.0"} }

// wantThrottled fails unless err is a 429 that says when to come back.
func wantThrottled(t testing.TB, err error) time.Duration {
	t.Helper()
	e := wantCodeError(t, err, keyledger.ETOOMANY)
	if e.RetryAfter <= 0 || !strings.Contains(e.Message, "Try again in") {
		t.Fatalf("throttled without a time to come back: %+v", e)
	}
	return e.RetryAfter
}

func TestThrottleOversizedRefusedBeforeHash(t *testing.T) {
	t.Parallel()
	f := newThrottleFixture(t)
	ctx := t.Context()
	attacker := from("203.0.113.9")
	cases := map[string]struct{ email, password string }{
		"password": {f.member.Email, strings.Repeat("p", 1025)},
		"email":    {strings.Repeat("e", 300) + "@example.com", "some password"},
		"huge":     {f.member.Email, strings.Repeat("x", 1<<20)},
	}
	for name, tc := range cases {
		hashes := f.s.PasswordHashes()
		failures := f.count(t, "SELECT count(*) FROM login_failures WHERE ip = $1", attacker.IP)
		_, err := f.s.Authenticate(ctx, attacker, tc.email, tc.password)
		e := wantCodeError(t, err, keyledger.EINVALID)
		if !strings.Contains(e.Message, "too long") {
			t.Errorf("%s: message %q does not say what is wrong", name, e.Message)
		}
		if got := f.s.PasswordHashes(); got != hashes {
			t.Errorf("%s: %d argon2id hashes for oversized input, want none", name, got-hashes)
		}
		if n := f.count(t, "SELECT count(*) FROM login_failures WHERE ip = $1", attacker.IP); n != failures+1 {
			t.Errorf("%s: %d failures counted for the address, want %d", name, n, failures+1)
		}
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND details->>'reason' = 'oversized' AND ip = $2",
		keyledger.ActionSignInFailed, attacker.IP); n != len(cases) {
		t.Errorf("%d oversized attempts audited, want %d", n, len(cases))
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE length(subject_email) > 254 OR length(details::text) > 1000"); n != 0 {
		t.Errorf("%d audit rows keep the oversized input", n)
	}
	if n := f.count(t, "SELECT count(*) FROM login_failures WHERE length(email) > 254"); n != 0 {
		t.Errorf("%d failure rows keep the oversized email", n)
	}
}

// TestThrottleOversizedFloodStopsAtThrottle: oversized input counts, so
// an address sending it is throttled like any guesser, and hashes nothing.
func TestThrottleOversizedFloodStopsAtThrottle(t *testing.T) {
	t.Parallel()
	f := newThrottleFixture(t)
	ctx := t.Context()
	attacker := from("203.0.113.10")
	hashes := f.s.PasswordHashes()
	big := strings.Repeat("p", 4096)
	for i := range 5 {
		if _, err := f.s.Authenticate(ctx, attacker, f.member.Email, big); keyledger.ErrorCode(err) != keyledger.EINVALID {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	wantThrottled(t, func() error { _, err := f.s.Authenticate(ctx, attacker, f.member.Email, big); return err }())
	if got := f.s.PasswordHashes(); got != hashes {
		t.Errorf("%d hashes, want none", got-hashes)
	}
}

// TestThrottlePairThenProgressiveDelay: five bad passwords from one
// address shut that address out for that account, not the account: the
// owner from another address waits out a short delay, from their usual
// address not at all.
func TestThrottlePairThenProgressiveDelay(t *testing.T) {
	t.Parallel()
	f := newThrottleFixture(t)
	ctx := t.Context()
	home, attacker, travel := from("198.51.100.20"), from("203.0.113.66"), from("192.0.2.44")
	// The admin signed in from home before (a completed sign-in).
	if _, err := f.s.Authenticate(ctx, home, f.admin.Email, testPassword); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour)
	for i := range 5 {
		if _, err := f.s.Authenticate(ctx, attacker, f.admin.Email, fmt.Sprintf("guess %d", i)); err != store.ErrBadCredentials {
			t.Fatalf("guess %d: %v", i+1, err)
		}
	}
	hashes := f.s.PasswordHashes()
	// The attacker's address is refused, even with the right password.
	retry := wantThrottled(t, func() error { _, err := f.s.Authenticate(ctx, attacker, f.admin.Email, testPassword); return err }())
	if retry < 14*time.Minute || retry > 15*time.Minute {
		t.Errorf("attacker told to retry in %v, want about the 15-minute window", retry)
	}
	// From home the admin gets in at once.
	if u, err := f.s.Authenticate(ctx, home, f.admin.Email, testPassword); err != nil || u.ID != f.admin.ID {
		t.Fatalf("from home: %v", err)
	}
	// From a new address: a short wait, not a lock.
	retry = wantThrottled(t, func() error { _, err := f.s.Authenticate(ctx, travel, f.admin.Email, testPassword); return err }())
	if retry > 15*time.Second {
		t.Errorf("owner told to wait %v after 5 failures, want at most 15 s", retry)
	}
	if got := f.s.PasswordHashes(); got != hashes+1 {
		t.Errorf("%d hashes, want 1 (the sign-in from home)", got-hashes)
	}
	f.clock.Advance(retry)
	if u, err := f.s.Authenticate(ctx, travel, f.admin.Email, testPassword); err != nil || u.ID != f.admin.ID {
		t.Fatalf("after the delay: %v", err)
	}
	// The attacker's address stays refused until its window ends.
	wantThrottled(t, func() error { _, err := f.s.Authenticate(ctx, attacker, f.admin.Email, testPassword); return err }())
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_email = $2", keyledger.ActionSignInThrottle, f.admin.Email); n != 3 {
		t.Errorf("%d throttled attempts audited, want 3", n)
	}
}

// TestThrottleDelayGrowsAndIsCapped: failures spread over many addresses
// (a botnet) make each further attempt wait twice as long, up to the cap;
// refused attempts do not push the delay further, so hammering during it
// cannot hold the account shut.
func TestThrottleDelayGrowsAndIsCapped(t *testing.T) {
	t.Parallel()
	f := newThrottleFixture(t)
	ctx := t.Context()
	lim := store.DefaultThrottle()
	bot := 0
	guess := func() error {
		bot++
		_, err := f.s.Authenticate(ctx, from(fmt.Sprintf("203.0.%d.%d", bot/250, bot%250+1)), f.member.Email, "botnet guess")
		return err
	}
	for range lim.PerAccount {
		if err := guess(); err != store.ErrBadCredentials {
			t.Fatal(err)
		}
	}
	want := lim.BaseDelay
	for i := range 12 {
		retry := wantThrottled(t, guess())
		if retry != want {
			t.Fatalf("step %d: retry after %v, want %v", i, retry, want)
		}
		// Hammering during the delay changes nothing.
		half := (retry / 2).Truncate(time.Second)
		f.clock.Advance(half)
		if again := wantThrottled(t, guess()); again != retry-half {
			t.Fatalf("step %d: hammering moved the delay to %v, want %v", i, again, retry-half)
		}
		f.clock.Advance(retry - half)
		if err := guess(); err != store.ErrBadCredentials {
			t.Fatalf("step %d: after the delay: %v", i, err)
		}
		want = min(2*want, lim.MaxDelay)
	}
	if want != lim.MaxDelay {
		t.Fatalf("delay %v never reached the cap %v", want, lim.MaxDelay)
	}
}

// TestThrottleConcurrentGuessesCounted: guesses sent in parallel are each
// counted before they hash, so a burst gets no more tries than a loop.
func TestThrottleConcurrentGuessesCounted(t *testing.T) {
	t.Parallel()
	f := newThrottleFixture(t)
	ctx := t.Context()
	attacker := from("203.0.113.77")
	hashes := f.s.PasswordHashes()
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Go(func() { _, _ = f.s.Authenticate(ctx, attacker, f.member.Email, fmt.Sprintf("parallel guess %d", i)) })
	}
	wg.Wait()
	if got := f.s.PasswordHashes() - hashes; got != int64(store.DefaultThrottle().PerPair) {
		t.Errorf("%d hashes for 24 parallel guesses, want %d", got, store.DefaultThrottle().PerPair)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action IN ($1, $2)", keyledger.ActionSignInFailed, keyledger.ActionSignInThrottle); n != 24 {
		t.Errorf("%d of 24 attempts audited", n)
	}
}

// TestStepUpThrottledFirst: step-up guesses (two-factor codes or
// passwords) are counted and audited, refused once throttled, and the
// right code is refused too while throttled.
func TestStepUpThrottledFirst(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	secret, _, m := f.enrollTOTP(t, f.m)
	sid := f.login(t, m)
	thief := keyledger.Actor{User: m, IP: "203.0.113.99", UserAgent: "thief/1.0"}
	hashes := f.s.PasswordHashes()
	for i := range 5 {
		if _, err := f.s.StepUp(ctx, thief, sid, wrongTOTP(t, secret, f.clock.Now())); keyledger.ErrorCode(err) != keyledger.ESTEPUP {
			t.Fatalf("wrong code %d: %v", i+1, err)
		}
	}
	if _, err := f.s.StepUp(ctx, thief, sid, totpCode(t, secret, f.clock.Now())); keyledger.ErrorCode(err) != keyledger.ETOOMANY {
		t.Fatalf("right code while throttled: %v, want ETOOMANY", err)
	}
	for i := range 20 {
		wantThrottled(t, func() error { _, err := f.s.StepUp(ctx, thief, sid, fmt.Sprintf("%06d", i)); return err }())
	}
	if _, err := f.s.StepUp(ctx, thief, sid, testPassword); keyledger.ErrorCode(err) != keyledger.ETOOMANY {
		t.Fatalf("right password while throttled: %v, want ETOOMANY", err)
	}
	if got := f.s.PasswordHashes() - hashes; got != 5 {
		t.Errorf("%d hashes, want 5 (one per admitted guess)", got)
	}
	if n := f.count(t, "SELECT count(*) FROM login_failures WHERE email = $1", m.Email); n != 5 {
		t.Errorf("%d failures counted, want 5", n)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2 AND details->>'purpose' = 'step_up'", keyledger.ActionReauthFailed, m.ID); n != 5 {
		t.Errorf("%d failed step-ups audited, want 5", n)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_email = $2 AND details->>'purpose' = 'step_up'", keyledger.ActionSignInThrottle, m.Email); n != 22 {
		t.Errorf("%d refused step-ups audited, want 22", n)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND subject_id = $2 AND details->>'result' = 'ok'", keyledger.ActionStepUp, m.ID); n != 0 {
		t.Errorf("%d step-ups succeeded while throttled", n)
	}
	// The owner from their own address is not held out by the thief.
	owner := keyledger.Actor{User: m, IP: govMeta.IP, UserAgent: govMeta.UserAgent}
	f.clock.Advance(30 * time.Second)
	if _, err := f.s.StepUp(ctx, owner, sid, totpCode(t, secret, f.clock.Now())); err != nil {
		t.Fatalf("owner's step-up: %v", err)
	}
}

// TestStepUpOversizedNoHash: an oversized step-up password is a failure
// that hashes nothing.
func TestStepUpOversizedNoHash(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	sid := f.login(t, f.m)
	hashes := f.s.PasswordHashes()
	if _, err := f.s.StepUp(t.Context(), steppedUpAt(f.m, time.Time{}), sid, strings.Repeat("p", 5000)); keyledger.ErrorCode(err) != keyledger.ESTEPUP {
		t.Fatalf("oversized step-up: %v", err)
	}
	if got := f.s.PasswordHashes() - hashes; got != 0 {
		t.Errorf("%d hashes for an oversized step-up password", got)
	}
	if n := f.count(t, "SELECT count(*) FROM login_failures WHERE email = $1", f.m.Email); n != 1 {
		t.Errorf("%d failures counted, want 1", n)
	}
}

type recordingNotifier struct {
	mu    sync.Mutex
	notes []keyledger.Notification
}

func (r *recordingNotifier) Notify(_ context.Context, n keyledger.Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.notes = append(r.notes, n)
	return nil
}

func (r *recordingNotifier) sent() []keyledger.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]keyledger.Notification(nil), r.notes...)
}

// TestThrottleAlertsAdminsOnce: an account under attack is reported to
// the admins once per window however long the attack goes on, audited;
// unknown accounts raise nothing (no email flood by spraying made-up
// addresses).
func TestThrottleAlertsAdminsOnce(t *testing.T) {
	t.Parallel()
	f := newThrottleFixture(t)
	ctx := t.Context()
	admin2 := f.user(t, "admin2@example.com", keyledger.RoleAdmin)
	lim := store.DefaultThrottle()
	n := &recordingNotifier{}
	bot := 0
	attack := func(email string, tries int) {
		for range tries {
			bot++
			_, _ = f.s.Authenticate(ctx, from(fmt.Sprintf("203.0.113.%d", bot%200+1)), email, "guess")
			f.clock.Advance(lim.MaxDelay)
		}
	}
	attack(f.member.Email, lim.AlertAfter-1)
	attack("nobody@example.com", 3*lim.AlertAfter)
	if sent, err := f.s.SendAccountAlerts(ctx, n, testLinks("https://keys.example.com")); err != nil || sent != 0 {
		t.Fatalf("before the threshold: %d sent, %v", sent, err)
	}
	attack(f.member.Email, 3*lim.AlertAfter)
	for range 3 {
		if _, err := f.s.SendAccountAlerts(ctx, n, testLinks("https://keys.example.com")); err != nil {
			t.Fatal(err)
		}
	}
	notes := n.sent()
	if len(notes) != 1 {
		t.Fatalf("%d notifications, want exactly 1: %+v", len(notes), notes)
	}
	got := notes[0]
	if got.Kind != keyledger.AlertAccountAttack || got.Account != f.member.Email || got.Failures != lim.AlertAfter || got.Addresses < 2 {
		t.Errorf("notification %+v", got)
	}
	if strings.Join(got.Recipients, ",") != admin2.Email+","+f.admin.Email {
		t.Errorf("recipients %v, want the admins", got.Recipients)
	}
	if c := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1", keyledger.ActionAccountAttack); c != 1 {
		t.Errorf("%d alerts audited, want 1", c)
	}
	// A day later the attack goes on: one more alert.
	f.clock.Advance(lim.AccountWindow)
	attack(f.member.Email, lim.AlertAfter)
	if _, err := f.s.SendAccountAlerts(ctx, n, testLinks("https://keys.example.com")); err != nil {
		t.Fatal(err)
	}
	if len(n.sent()) != 2 {
		t.Errorf("%d notifications after a second day of attack, want 2", len(n.sent()))
	}
}

// TestJobsSendAccountAlert: the background job delivers a raised alert
// through the configured notifier, once.
func TestJobsSendAccountAlert(t *testing.T) {
	t.Parallel()
	f := newJobsFixture(t)
	ctx := t.Context()
	lim := store.DefaultThrottle()
	for i := range lim.AlertAfter {
		_, _ = f.s.Authenticate(ctx, from(fmt.Sprintf("203.0.113.%d", i+1)), f.other.Email, "botnet guess")
		f.clock.Advance(lim.MaxDelay)
	}
	f.start(t)
	var alerts []keyledger.Notification
	waitFor(t, 10*time.Second, "account alert sent", func() bool {
		for _, n := range f.n.take() {
			if n.Kind == keyledger.AlertAccountAttack {
				alerts = append(alerts, n)
			}
		}
		return len(alerts) > 0
	})
	kind := store.AccountAlertArgs{}.Kind()
	runs := f.count(t, "SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed'", kind)
	waitFor(t, 10*time.Second, "another alert run", func() bool {
		return f.count(t, "SELECT count(*) FROM river_job WHERE kind = $1 AND state = 'completed'", kind) > runs
	})
	for _, n := range f.n.take() {
		if n.Kind == keyledger.AlertAccountAttack {
			alerts = append(alerts, n)
		}
	}
	if len(alerts) != 1 || alerts[0].Account != f.other.Email || !strings.HasPrefix(alerts[0].URL, "https://keyledger.example.com/audit?") {
		t.Errorf("alerts %+v, want one about %s", alerts, f.other.Email)
	}
}
