package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// TestLeakIncidentCloseRules: an incident closes only when the leaked
// version is rotated away AND revoked (in the transaction of the second
// of the two), or when waived with a reason by the owner, a lead or an
// admin. Revoking the current version is refused (rotate first); rolling
// back to a leaked version is refused while its incident is open. Each
// step is on the timeline and in the audit log.
func TestLeakIncidentCloseRules(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	k, value := f.govKey(t, f.m, "leaky", "development")
	r, err := f.s.ReportLeak(ctx, as(f.n), keyledger.LeakReportInput{Value: value, Where: "public repo"})
	if err != nil || !r.Matched {
		t.Fatalf("report: %+v, %v", r, err)
	}
	// Someone who is neither owner nor lead may not act on it.
	wantCode(t, f.s.RevokeLeakedVersion(ctx, as(f.n), r.IncidentID), keyledger.EFORBIDDEN)
	wantCode(t, f.s.WaiveLeak(ctx, as(f.n), r.IncidentID, "not a real leak"), keyledger.EFORBIDDEN)
	// Still current: revoking it would leave the key with no value.
	wantCode(t, f.s.RevokeLeakedVersion(ctx, as(f.m), r.IncidentID), keyledger.ECONFLICT)

	f.clock.Advance(time.Hour)
	f.rotate(t, f.m, k.ID)
	inc := f.incident(t, r.IncidentID)
	if !inc.Open() || inc.RotatedAt == nil {
		t.Fatalf("after rotation: open %v, rotated %v", inc.Open(), inc.RotatedAt)
	}
	// The leaked version may not come back while the incident is open.
	_, err = f.s.RollbackKey(ctx, as(f.m), k.ID, 1, 7)
	wantCode(t, err, keyledger.ECONFLICT)

	f.clock.Advance(time.Hour)
	if err := f.s.RevokeLeakedVersion(ctx, as(f.m), r.IncidentID); err != nil {
		t.Fatal(err)
	}
	inc = f.incident(t, r.IncidentID)
	if inc.Open() || inc.CloseReason != keyledger.LeakClosedResolved || inc.TimeToClose() != 2*time.Hour {
		t.Fatalf("after rotation and revocation: closed %v (%s), time to close %v", inc.ClosedAt, inc.CloseReason, inc.TimeToClose())
	}
	if got := stepNames(inc); got != "reported rotated revoked closed" {
		t.Errorf("timeline %q", got)
	}
	// Revoking destroys keyledger's copy of the leaked value.
	if n := f.count(t, "SELECT count(*) FROM key_versions WHERE key_id = $1 AND version = 1 AND destroyed_at IS NOT NULL AND ciphertext IS NULL", k.ID); n != 1 {
		t.Error("the revoked version still has its ciphertext")
	}
	if got, _ := f.s.GetKey(ctx, as(f.m), k.ID); got.Compromised() {
		t.Error("the key is still compromised after its incident closed")
	}
	wantCode(t, f.s.WaiveLeak(ctx, as(f.m), r.IncidentID, "late"), keyledger.ECONFLICT)
	for _, a := range []string{keyledger.ActionLeakOpen, keyledger.ActionLeakRevoke, keyledger.ActionLeakClose} {
		if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND key_id = $2", a, k.ID); n != 1 {
			t.Errorf("%d %s events, want 1", n, a)
		}
	}

	// Waived: a reason is required; the owner may waive.
	k2, v2 := f.govKey(t, f.m, "test-only", "development")
	r2, err := f.s.ReportLeak(ctx, as(f.n), keyledger.LeakReportInput{Value: v2, Where: "a slide"})
	if err != nil {
		t.Fatal(err)
	}
	wantField(t, f.s.WaiveLeak(ctx, as(f.m), r2.IncidentID, " \u200b "), keyledger.EINVALID, "reason")
	if err := f.s.WaiveLeak(ctx, as(f.m), r2.IncidentID, "the slide was never shared"); err != nil {
		t.Fatal(err)
	}
	inc2 := f.incident(t, r2.IncidentID)
	if inc2.Open() || inc2.CloseReason != keyledger.LeakClosedWaived || inc2.WaiveReason != "the slide was never shared" || inc2.ClosedBy != f.m.Email {
		t.Errorf("waived incident %+v", inc2)
	}
	if got := stepNames(inc2); got != "reported waived closed" {
		t.Errorf("timeline %q", got)
	}
	// A new report of a version whose incident closed opens a new one.
	r3, err := f.s.ReportLeak(ctx, as(f.n), keyledger.LeakReportInput{Value: v2, Where: "the slide again"})
	if err != nil || r3.Joined || r3.IncidentID == r2.IncidentID {
		t.Errorf("report after a waiver: %+v, %v", r3, err)
	}
	_ = k2

	// Archiving a key rotates its leaked versions away; the revocation
	// then closes the incident.
	k4, v4 := f.govKey(t, f.m, "to-archive", "development")
	r4, err := f.s.ReportLeak(ctx, as(f.n), keyledger.LeakReportInput{Value: v4, Where: "a screenshot"})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.s.ArchiveKey(ctx, as(f.m), k4.ID); err != nil {
		t.Fatal(err)
	}
	if inc := f.incident(t, r4.IncidentID); !inc.Open() || inc.RotatedAt == nil {
		t.Errorf("after archiving: open %v, rotated %v", inc.Open(), inc.RotatedAt)
	}
	if err := f.s.RevokeLeakedVersion(ctx, as(f.m), r4.IncidentID); err != nil {
		t.Fatal(err)
	}
	if inc := f.incident(t, r4.IncidentID); inc.Open() || stepNames(inc) != "reported rotated revoked closed" {
		t.Errorf("archived and revoked: open %v, timeline %q", inc.Open(), stepNames(inc))
	}
}

func (f *govFixture) incident(t testing.TB, id int64) *keyledger.LeakIncident {
	t.Helper()
	inc, err := f.s.LeakIncident(context.Background(), as(f.lead), id)
	if err != nil {
		t.Fatalf("incident %d: %v", id, err)
	}
	return inc
}

// TestDuplicateRegistrationOpensLeakIncident: someone who may not reveal
// a key registers (or rotates to) its value: an incident opens on that
// key version (source duplicate, the registrant as reporter), joined by a
// second try, and the registrant may not open the incident's page (not found, as for none). Someone
// who may reveal the key opens nothing.
func TestDuplicateRegistrationOpensLeakIncident(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	prod, secret := f.govKey(t, f.admin, "admin-prod", "production")
	_, err := f.s.CreateKey(ctx, as(f.n), keyledger.KeyInput{Name: "copy", Project: "x", Environment: "development", OwnerEmail: f.n.Email, Value: secret})
	e := wantCodeError(t, err, keyledger.ECONFLICT)
	if strings.Contains(e.Error()+keyledger.FieldErrors(err)["value"], "admin-prod") {
		t.Errorf("the answer names the key: %v", err)
	}
	var id int64
	var source, version string
	if err := f.pool.QueryRow(ctx, "SELECT id, source, version::text FROM leak_incidents WHERE key_id = $1 AND reported_by = $2 AND closed_at IS NULL",
		prod.ID, f.n.ID).Scan(&id, &source, &version); err != nil {
		t.Fatalf("no incident opened by the duplicate registration: %v", err)
	}
	if source != keyledger.LeakSourceDuplicate || version != "1" {
		t.Errorf("incident source %s version %s", source, version)
	}
	// The registrant is not told which key: the incident is "not found".
	_, err = f.s.LeakIncident(ctx, as(f.n), id)
	wantCode(t, err, keyledger.ENOTFOUND)
	// A rotation to it by the same person joins the open incident.
	mine, _ := f.govKey(t, f.n, "mine", "development")
	_, err = f.s.RotateKey(ctx, as(f.n), mine.ID, keyledger.RotateInput{Value: secret})
	wantCode(t, err, keyledger.ECONFLICT)
	inc := f.incident(t, id)
	if inc.Reports != 2 || inc.Source != keyledger.LeakSourceDuplicate || inc.ReportedBy != f.n.Email {
		t.Errorf("incident after a second try: %+v", inc)
	}
	// The lead may reveal it: a duplicate from them is no leak signal.
	_, err = f.s.CreateKey(ctx, as(f.lead), keyledger.KeyInput{Name: "copy", Project: "x", Environment: "staging", OwnerEmail: f.lead.Email, Value: secret})
	wantCode(t, err, keyledger.ECONFLICT)
	if n := f.count(t, "SELECT count(*) FROM leak_incidents"); n != 1 {
		t.Errorf("%d incidents, want 1", n)
	}
	if n := f.count(t, "SELECT count(*) FROM leak_incident_steps WHERE incident_id = $1", id); n != 2 {
		t.Errorf("%d timeline steps, want 2 reports", n)
	}
}

// TestLeakNotificationSentOnce: opening an incident tells the owner and
// the leads once (a joined report does not tell them again); the send is
// on the timeline and audited; a failed send is retried.
func TestLeakNotificationSentOnce(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	k, value := f.govKey(t, f.m, "leaky", "production")
	r, err := f.s.ReportLeak(ctx, as(f.n), keyledger.LeakReportInput{Value: value, Where: "https://gist.example.com/x"})
	if err != nil {
		t.Fatal(err)
	}
	// Its alert is queued in the report's own transaction, for the
	// workers to send at once.
	if c := f.count(t, "SELECT count(*) FROM river_job WHERE kind = $1", store.LeakAlertsArgs{}.Kind()); c != 1 {
		t.Errorf("%d leak alert jobs queued, want 1", c)
	}
	down := &fakeNotifier{}
	down.setErr(errors.New("smtp down"))
	if sent, err := f.s.SendLeakAlerts(ctx, down, testLinks("https://keys.example.com")); err == nil || sent != 0 {
		t.Fatalf("failed send: sent %d, err %v", sent, err)
	}
	if _, err := f.s.ReportLeak(ctx, as(f.o), keyledger.LeakReportInput{Value: value, Where: "again"}); err != nil {
		t.Fatal(err)
	}
	n := &fakeNotifier{}
	sent, err := f.s.SendLeakAlerts(ctx, n, testLinks("https://keys.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	got := n.take()
	if sent != 1 || len(got) != 1 {
		t.Fatalf("sent %d (%d notifications), want 1", sent, len(got))
	}
	a := got[0]
	if a.Kind != keyledger.AlertLeak || a.KeyID != k.ID || a.LeakVersion != 1 || a.AttemptedBy != f.n.Email || a.LeakWhere != "https://gist.example.com/x" ||
		a.URL != testLinks("https://keys.example.com").Leak(r.IncidentID) {
		t.Errorf("alert %+v", a)
	}
	if strings.Join(a.Recipients, ",") != "m@example.com,lead@example.com" {
		t.Errorf("recipients %v, want the owner and the leads", a.Recipients)
	}
	if again, _ := f.s.SendLeakAlerts(ctx, n, testLinks("")); again != 0 || len(n.take()) != 0 {
		t.Errorf("%d alerts sent twice", again)
	}
	if got := stepNames(f.incident(t, r.IncidentID)); got != "reported reported notified" {
		t.Errorf("timeline %q", got)
	}
	if c := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1", keyledger.ActionLeakNotify); c != 1 {
		t.Errorf("%d notify events, want 1", c)
	}
}

// TestLeakIncidentExposures: the incident lists who revealed or exported
// the leaked version (not other versions), deactivated people marked, and
// only to leads and admins; the owner sees the incident without them.
func TestLeakIncidentExposures(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	k, value := f.govKey(t, f.m, "leaky", "development")
	f.reveal(t, f.n, k.ID)
	f.reveal(t, f.o, k.ID)
	if _, err := f.s.DeactivateUser(ctx, as(f.admin), f.o.Email); err != nil {
		t.Fatal(err)
	}
	f.rotate(t, f.m, k.ID)
	f.reveal(t, f.lead, k.ID) // version 2: not an exposure of version 1
	r, err := f.s.ReportLeak(ctx, as(f.admin), keyledger.LeakReportInput{Value: value, Where: "x"})
	if err != nil {
		t.Fatal(err)
	}
	inc := f.incident(t, r.IncidentID)
	var got []string
	for _, e := range inc.Exposures {
		got = append(got, e.Email+":"+map[bool]string{true: "active", false: "deactivated"}[e.Active])
	}
	if strings.Join(got, " ") != "o@example.com:deactivated n@example.com:active" {
		t.Errorf("exposures %v", got)
	}
	own, err := f.s.LeakIncident(ctx, as(f.m), r.IncidentID)
	if err != nil {
		t.Fatal(err)
	}
	if len(own.Exposures) != 0 {
		t.Errorf("the owner (a member) sees %d exposures from the audit log", len(own.Exposures))
	}
}
