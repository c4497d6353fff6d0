package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// TestReportLeakMatchesAnyVersion: a reported value is matched against
// every live version of every key by the keyed fingerprint; an old
// version opens an incident on that version (already rotated away), the
// current one on the current version, a second report of an open version
// joins its incident, and a value that matches nothing opens nothing. The
// key is compromised while an incident is open, in GetKey and in the list
// filter status=compromised.
func TestReportLeakMatchesAnyVersion(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	k, v1 := f.govKey(t, f.m, "leaky", "production")
	v2 := secretValue(t, "sk-proj-")
	if _, err := f.s.RotateKey(ctx, as(f.m), k.ID, keyledger.RotateInput{Value: v2}); err != nil {
		t.Fatal(err)
	}
	other, _ := f.govKey(t, f.m, "quiet", "production")

	old, err := f.s.ReportLeak(ctx, as(f.n), keyledger.LeakReportInput{Value: "  " + v1 + "\n", Where: "https://gist.example.com/abc"})
	if err != nil {
		t.Fatal(err)
	}
	if !old.Matched || old.KeyID != k.ID || old.Version != 1 || old.Current || old.Joined || old.IncidentID == 0 {
		t.Fatalf("report of the old version: %+v", old)
	}
	cur, err := f.s.ReportLeak(ctx, as(f.n), keyledger.LeakReportInput{Value: v2, Where: "pasted in #general"})
	if err != nil {
		t.Fatal(err)
	}
	if !cur.Matched || cur.Version != 2 || !cur.Current || cur.IncidentID == old.IncidentID {
		t.Fatalf("report of the current version: %+v", cur)
	}
	again, err := f.s.ReportLeak(ctx, as(f.o), keyledger.LeakReportInput{Value: v2, Where: "CI log of build 812"})
	if err != nil {
		t.Fatal(err)
	}
	if !again.Joined || again.IncidentID != cur.IncidentID {
		t.Fatalf("second report of an open version: %+v, want it to join incident %d", again, cur.IncidentID)
	}
	none, err := f.s.ReportLeak(ctx, as(f.n), keyledger.LeakReportInput{Value: "sk-proj-NotOursAtAll0123456789abcdefghijKLMN", Where: "a blog post"})
	if err != nil {
		t.Fatal(err)
	}
	if none.Matched || none.IncidentID != 0 || none.KeyID != "" {
		t.Fatalf("report of an unknown value: %+v", none)
	}
	if n := f.count(t, "SELECT count(*) FROM leak_incidents"); n != 2 {
		t.Errorf("%d incidents, want 2", n)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1", keyledger.ActionLeakReport); n != 4 {
		t.Errorf("%d %s events, want one per report (4)", n, keyledger.ActionLeakReport)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_events WHERE action = $1 AND key_id IS NULL", keyledger.ActionLeakReport); n != 1 {
		t.Errorf("%d unmatched report events without a key, want 1", n)
	}

	inc, err := f.s.LeakIncident(ctx, as(f.lead), cur.IncidentID)
	if err != nil {
		t.Fatal(err)
	}
	if inc.Reports != 2 || inc.Source != keyledger.LeakSourceReport || inc.ReportedBy != f.n.Email || inc.Where != "pasted in #general" || inc.RotatedAt != nil {
		t.Errorf("incident %+v", inc)
	}
	if got := stepNames(inc); got != "reported reported" {
		t.Errorf("timeline %q, want two reports", got)
	}
	oldInc, err := f.s.LeakIncident(ctx, as(f.lead), old.IncidentID)
	if err != nil {
		t.Fatal(err)
	}
	if oldInc.RotatedAt == nil || stepNames(oldInc) != "reported rotated" {
		t.Errorf("an old version is rotated away from the start: rotated %v, timeline %q", oldInc.RotatedAt, stepNames(oldInc))
	}

	got, err := f.s.GetKey(ctx, as(f.o), k.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Compromised() {
		t.Error("the key is not marked compromised")
	}
	page, err := f.s.ListKeys(ctx, as(f.o), store.KeyFilter{Status: "compromised"})
	if err != nil {
		t.Fatal(err)
	}
	if page.Total != 1 || page.Keys[0].ID != k.ID || !page.Keys[0].Compromised() {
		t.Errorf("status=compromised lists %d keys: %+v", page.Total, page.Keys)
	}
	if q, _ := f.s.GetKey(ctx, as(f.o), other.ID); q.Compromised() {
		t.Error("an unreported key is marked compromised")
	}
}

// TestReportLeakDiscardsTheValue: after reports that match and reports
// that do not, no spelling of any reported value is anywhere in the
// database (every column of every table read as text), and the audit
// details of the checks carry no value.
func TestReportLeakDiscardsTheValue(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	k, value := f.govKey(t, f.m, "leaky", "development")
	unknown := secretValue(t, "sk-ant-")
	if r, err := f.s.ReportLeak(ctx, as(f.n), keyledger.LeakReportInput{Value: value, Where: "https://paste.example.com/1"}); err != nil || !r.Matched || r.KeyID != k.ID {
		t.Fatalf("report: %+v, %v", r, err)
	}
	if r, err := f.s.ReportLeak(ctx, as(f.n), keyledger.LeakReportInput{Value: unknown, Where: "somewhere"}); err != nil || r.Matched {
		t.Fatalf("report: %+v, %v", r, err)
	}
	// The registered value is in the database only sealed; neither value
	// may appear in clear or encoded anywhere.
	for name, v := range map[string]string{"matched": value, "unknown": unknown} {
		if found := findInDatabase(t, f.pool, leakForms(v)); len(found) > 0 {
			t.Errorf("the %s reported value is stored: %s", name, strings.Join(found, "; "))
		}
	}
}

func stepNames(inc *keyledger.LeakIncident) string {
	var out []string
	for _, s := range inc.Steps {
		out = append(out, s.Step)
	}
	return strings.Join(out, " ")
}

// TestReportLeakRateLimit: LeakReportLimit reports per person per hour;
// the next is refused with a wait and changes nothing; another person is
// not held up; an hour later the person may report again. A refused
// (invalid) report does not count and changes nothing.
func TestReportLeakRateLimit(t *testing.T) {
	t.Parallel()
	f := newGovFixture(t)
	ctx := context.Background()
	before := f.tableCounts(t)
	for _, in := range []keyledger.LeakReportInput{{Value: "", Where: "x"}, {Value: "abc", Where: ""},
		{Value: strings.Repeat("a", keyledger.MaxLeakCandidateBytes+1), Where: "x"}, {Value: "abc", Where: "evil\u202etxt"}, {Value: "abc", Where: "a\x00b"}} {
		_, err := f.s.ReportLeak(ctx, as(f.n), in)
		wantCode(t, err, keyledger.EINVALID)
	}
	unchangedButAudit(t, before, f.tableCounts(t), 0)
	for i := range keyledger.LeakReportLimit {
		if _, err := f.s.ReportLeak(ctx, as(f.n), keyledger.LeakReportInput{Value: secretValue(t, "sk-"), Where: "guess"}); err != nil {
			t.Fatalf("report %d: %v", i+1, err)
		}
		f.clock.Advance(time.Minute)
	}
	mid := f.tableCounts(t)
	_, err := f.s.ReportLeak(ctx, as(f.n), keyledger.LeakReportInput{Value: secretValue(t, "sk-"), Where: "guess"})
	wantCode(t, err, keyledger.ETOOMANY)
	if d := keyledger.RetryAfter(err); d <= 0 || d > time.Hour {
		t.Errorf("retry after %v, want within the hour", d)
	}
	unchangedButAudit(t, mid, f.tableCounts(t), 0)
	if _, err := f.s.ReportLeak(ctx, as(f.o), keyledger.LeakReportInput{Value: secretValue(t, "sk-"), Where: "guess"}); err != nil {
		t.Errorf("another person is held up: %v", err)
	}
	f.clock.Advance(keyledger.LeakReportWindow)
	if _, err := f.s.ReportLeak(ctx, as(f.n), keyledger.LeakReportInput{Value: secretValue(t, "sk-"), Where: "guess"}); err != nil {
		t.Errorf("an hour later: %v", err)
	}
}
