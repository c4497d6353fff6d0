package store_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// lcFixture is a store on a controllable clock with the usual cast: an
// admin, a lead, a member who owns keys, another member, and a lead who
// has been deactivated (loaded fresh, so its Status says so).
type lcFixture struct {
	*fixture
	clock                           *clock
	admin, lead, owner, other, gone *keyledger.User
}

func newLCFixture(t *testing.T) *lcFixture {
	t.Helper()
	c := newClock()
	f := &lcFixture{fixture: newFixture(t, store.Options{Now: c.Now}), clock: c}
	f.admin = f.user(t, "admin@example.com", keyledger.RoleAdmin)
	f.lead = f.user(t, "lead@example.com", keyledger.RoleLead)
	f.owner = f.user(t, "owner@example.com", keyledger.RoleMember)
	f.other = f.user(t, "other@example.com", keyledger.RoleMember)
	f.user(t, "gone@example.com", keyledger.RoleLead)
	ctx := context.Background()
	if _, err := f.s.DeactivateUser(ctx, as(f.admin), "gone@example.com"); err != nil {
		t.Fatal(err)
	}
	gone, err := f.s.UserByEmail(ctx, "gone@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if gone.Active() {
		t.Fatal("deactivated user still active")
	}
	f.gone = gone
	return f
}

// newKey registers a key owned by f.owner in env with a fresh value and
// returns it with its value.
func (f *lcFixture) newKey(t testing.TB, name, env string) (*keyledger.Key, string) {
	t.Helper()
	v := secretValue(t, "sk-proj-")
	k := f.key(t, f.owner, keyledger.KeyInput{Name: name, Project: "chatbot", Environment: env, OwnerEmail: f.owner.Email, Value: v})
	return k, v
}

// auditRow is one audit event as the tests look at it.
type auditRow struct {
	Actor   string
	Version int
	Reason  string
	Env     string
	Raw     string // details as stored
	Details map[string]any
}

// events returns the audit events of action about keyID, oldest first.
func (f *fixture) events(t testing.TB, action, keyID string) []auditRow {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT actor_email, coalesce(key_version, 0), reason, environment, details::text
		FROM audit_events WHERE action = $1 AND key_id = $2 ORDER BY id`, action, keyID)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var r auditRow
		if err := rows.Scan(&r.Actor, &r.Version, &r.Reason, &r.Env, &r.Raw); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(r.Raw), &r.Details); err != nil {
			t.Fatalf("details %q: %v", r.Raw, err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// actionCount counts the events of action (about keyID when not "").
func (f *fixture) actionCount(t testing.TB, action, keyID string) int {
	t.Helper()
	if keyID == "" {
		return f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1", action)
	}
	return f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND key_id = $2", action, keyID)
}

// noSecretIn fails if any spelling of value appears in texts.
func noSecretIn(t testing.TB, value string, texts ...string) {
	t.Helper()
	for name, form := range leakForms(value) {
		for _, s := range texts {
			if strings.Contains(s, form) {
				t.Errorf("the %s of a secret appears in %q", name, s)
			}
		}
	}
}

// reveal returns the current value or fails.
func (f *fixture) revealValue(t testing.TB, u *keyledger.User, id string) store.Revealed {
	t.Helper()
	r, err := f.s.Reveal(context.Background(), as(u), id, "checking the rotation")
	if err != nil {
		t.Fatalf("reveal %s: %v", id, err)
	}
	return r
}

// versions returns the key's versions by number.
func (f *fixture) versions(t testing.TB, u *keyledger.User, id string) map[int]*keyledger.KeyVersion {
	t.Helper()
	vs, err := f.s.KeyVersions(context.Background(), as(u), id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int]*keyledger.KeyVersion{}
	for i := range vs {
		out[vs[i].Version] = &vs[i]
	}
	return out
}

// fakeVerifier records the secrets it was given and answers from results
// (by secret), or with def.
type fakeVerifier struct {
	mu          sync.Mutex
	unsupported map[keyledger.Provider]bool
	results     map[string]keyledger.VerifyResult
	def         keyledger.VerifyResult
	seen        []string
	// during, when set, runs inside Verify (to race other work against a
	// check in flight).
	during func()
}

func newFakeVerifier() *fakeVerifier {
	return &fakeVerifier{
		unsupported: map[keyledger.Provider]bool{keyledger.ProviderAWS: true, keyledger.ProviderOther: true, "acme": true},
		results:     map[string]keyledger.VerifyResult{},
		def:         keyledger.VerifyResult{Result: keyledger.VerifyOK, Message: "200 OK"},
	}
}

func (v *fakeVerifier) Supports(p keyledger.Provider) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return !v.unsupported[p]
}

func (v *fakeVerifier) Verify(ctx context.Context, p keyledger.Provider, secret string) keyledger.VerifyResult {
	v.mu.Lock()
	v.seen = append(v.seen, secret)
	res, ok := v.results[secret]
	if !ok {
		res = v.def
	}
	during := v.during
	v.mu.Unlock()
	if during != nil {
		during()
	}
	return res
}

func (v *fakeVerifier) set(secret string, res keyledger.VerifyResult) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.results[secret] = res
}

func (v *fakeVerifier) calls() []string {
	v.mu.Lock()
	defer v.mu.Unlock()
	return append([]string(nil), v.seen...)
}

// fakeNotifier records notifications, or fails with err.
type fakeNotifier struct {
	mu  sync.Mutex
	got []keyledger.Notification
	err error
}

func (n *fakeNotifier) Notify(ctx context.Context, note keyledger.Notification) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.err != nil {
		return n.err
	}
	n.got = append(n.got, note)
	return nil
}

func (n *fakeNotifier) setErr(err error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.err = err
}

// take returns the notifications so far and forgets them.
func (n *fakeNotifier) take() []keyledger.Notification {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := n.got
	n.got = nil
	return out
}
