package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
)

var offboardingLocation = regexp.MustCompile(`^/offboarding/(\d+)\?started=1$`)

// obItems reads the checklist's rows: kind, key id, status, and the whole
// row's markup.
type obRow struct {
	id, kind, key, status, html string
}

var obRowRe = regexp.MustCompile(`(?s)<tr id="item-(\d+)" data-testid="item-row" data-kind="([a-z]+)" data-status="([a-z]+)" data-key="([^"]*)">(.*?)</tr>`)

func obRows(body string) []obRow {
	var out []obRow
	for _, m := range obRowRe.FindAllStringSubmatch(body, -1) {
		out = append(out, obRow{id: m[1], kind: m[2], status: m[3], key: m[4], html: m[5]})
	}
	return out
}

func obKinds(rows []obRow, status string) map[string]int {
	n := map[string]int{}
	for _, r := range rows {
		if status == "" || r.status == status {
			n[r.kind]++
		}
	}
	return n
}

func obFind(t testing.TB, rows []obRow, kind, key string) obRow {
	t.Helper()
	for _, r := range rows {
		if r.kind == kind && r.key == key {
			return r
		}
	}
	t.Fatalf("no %s item for key %q", kind, key)
	return obRow{}
}

// obStart starts an offboarding through the form and returns its path.
func obStart(t testing.TB, c *client, form url.Values) string {
	t.Helper()
	resp, body := c.post("/offboarding", form)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("start offboarding: status %d\n%s", resp.StatusCode, authzMain(body, ""))
	}
	m := offboardingLocation.FindStringSubmatch(resp.Header.Get("Location"))
	if m == nil {
		t.Fatalf("start offboarding: Location %q", resp.Header.Get("Location"))
	}
	return "/offboarding/" + m[1]
}

func TestOffboardingEndToEnd(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	ctx := context.Background()
	own1 := env.createKey("member", "development", "member dev", authzSecret())
	own2 := env.createKey("member", "staging", "member staging", authzSecret())
	seen := env.createKey("member2", "development", "shared dev", authzSecret())

	// member is signed in and reveals member2's key.
	member := env.client().login("member")
	if resp, _ := member.post("/keys/"+seen.ID+"/reveal", url.Values{"reason": {"debugging"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("reveal: %d", resp.StatusCode)
	}

	lead := env.client().login("lead")
	// The form offers member, preselected from "Start offboarding" on
	// their page, and not the lead.
	resp, body := lead.get("/offboarding?user=member%40example.com")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `<option value="member@example.com" selected>`) {
		t.Fatalf("offboarding page: %d\n%s", resp.StatusCode, authzMain(body, ""))
	}
	if strings.Contains(body, `<option value="lead@example.com"`) || strings.Contains(body, `<option value="gone@example.com"`) {
		t.Error("the form offers the lead themselves or a deactivated user")
	}
	// Nobody chosen: 422 with the error next to the select.
	resp, body = lead.post("/offboarding", url.Values{"user": {""}, "freeze": {"1"}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("no user: status %d", resp.StatusCode)
	}
	formsErrorNextToField(t, body, "user")

	path := obStart(t, lead, url.Values{"user": {"member@example.com"}, "freeze": {"1"}, "note": {"last day Friday"}})
	// A second start for the same person is a conflict.
	if resp, body := lead.post("/offboarding", url.Values{"user": {"member@example.com"}}); resp.StatusCode != http.StatusConflict || !strings.Contains(body, "already open") {
		t.Errorf("second start: status %d", resp.StatusCode)
	}

	// Frozen: member's live session dies on its next request, and member
	// cannot sign in.
	if resp, _ := member.get("/keys"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Errorf("member's session after the freeze: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	again := env.client()
	again.get("/login")
	if resp, _ := again.post("/login", url.Values{"email": {"member@example.com"}, "password": {Password}}); resp.StatusCode == http.StatusSeeOther {
		t.Error("a frozen member signed in")
	}

	resp, body = lead.get(path + "?started=1")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Offboarding started.") || !strings.Contains(body, "last day Friday") {
		t.Fatalf("checklist: %d\n%s", resp.StatusCode, authzMain(body, ""))
	}
	rows := obRows(body)
	if got := obKinds(rows, ""); got["reassign"] != 2 || got["rotate"] != 1 || got["revoke"] != 1 || got["deactivate"] != 1 || len(rows) != 5 {
		t.Fatalf("checklist items %v, want reassign×2, rotate×1, revoke, deactivate", got)
	}
	obFind(t, rows, "reassign", own1.ID)
	obFind(t, rows, "reassign", own2.ID)
	rot := obFind(t, rows, "rotate", seen.ID)
	if !strings.Contains(rot.html, `href="/keys/`+seen.ID+`/rotate"`) {
		t.Error("the rotate item does not link the rotation")
	}
	// Freezing signed them out: the revoke item is done already.
	if r := obFind(t, rows, "revoke", ""); r.status != "done" || !strings.Contains(r.html, "lead@example.com") {
		t.Errorf("revoke item after the freeze: %s", r.status)
	}
	if !strings.Contains(body, `<progress value="1" max="5"`) {
		t.Error("no progress bar at 1 of 5")
	}
	// A lead cannot deactivate: the button is disabled and says why.
	if !strings.Contains(body, `data-testid="ask-admin"`) || !regexp.MustCompile(`disabled data-testid="deactivate-submit"`).MatchString(body) {
		t.Error("the lead's deactivate button is not disabled with an explanation")
	}

	// Completing is refused while items are open.
	resp, body = lead.post(path+"/complete", nil)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "still open") {
		t.Fatalf("complete while open: status %d", resp.StatusCode)
	}

	// Reassign all: no owner is a field error; then both items resolve.
	resp, body = lead.post(path+"/reassign", url.Values{"owner": {""}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("reassign without owner: status %d", resp.StatusCode)
	}
	formsErrorNextToField(t, body, "owner")
	resp, _ = lead.post(path+"/reassign", url.Values{"owner": {"member2@example.com"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != path+"?reassigned=2" {
		t.Fatalf("reassign: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = lead.follow(resp)
	rows = obRows(body)
	for _, k := range []string{own1.ID, own2.ID} {
		if r := obFind(t, rows, "reassign", k); r.status != "done" || !strings.Contains(r.html, "now owned by member2@example.com") {
			t.Errorf("reassign item after reassigning: %s\n%s", r.status, r.html)
		}
	}

	// Waive without a reason: 422, the error next to that item's field.
	resp, body = lead.post(path+"/items/"+rot.id+"/waive", url.Values{"reason": {"  "}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("waive without reason: status %d", resp.StatusCode)
	}
	for _, r := range obRows(body) {
		has := strings.Contains(r.html, `data-testid="error-reason"`)
		if has != (r.id == rot.id) {
			t.Errorf("item %s (%s): field error shown = %v", r.id, r.kind, has)
		}
	}

	// Rotating the key (anywhere) resolves the rotate item.
	resp, _ = lead.post("/keys/"+seen.ID+"/rotate", url.Values{"value": {authzSecret()}, "grace_days": {"0"}, "version": {"1"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("rotate: %d", resp.StatusCode)
	}
	_, body = lead.get(path)
	if r := obFind(t, obRows(body), "rotate", seen.ID); r.status != "done" || !strings.Contains(r.html, "rotated to version 2") {
		t.Errorf("rotate item after rotating: %s", r.status)
	}

	// Revoke: nothing left to delete, still allowed and audited.
	resp, _ = lead.post(path+"/revoke", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != path+"?revoked=1" {
		t.Fatalf("revoke: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	// Deactivate: refused for the lead, done by an admin.
	resp, body = lead.post(path+"/deactivate", nil)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Ask an admin") {
		t.Errorf("lead deactivate: status %d", resp.StatusCode)
	}
	admin := env.client().login("admin")
	_, body = admin.get(path)
	if strings.Contains(body, `data-testid="ask-admin"`) {
		t.Error("the admin is told to ask an admin")
	}
	resp, _ = admin.post(path+"/deactivate", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != path+"?deactivated=1" {
		t.Fatalf("admin deactivate: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	u, err := env.Store.UserByEmail(ctx, "member@example.com")
	if err != nil || u.Status != keyledger.UserDeactivated {
		t.Fatalf("member after deactivation: %v %v", u, err)
	}

	// Complete: the page becomes the record.
	resp, _ = lead.post(path+"/complete", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != path+"?completed=1" {
		t.Fatalf("complete: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = lead.follow(resp)
	if !strings.Contains(body, `data-testid="offboarding-state">Completed<`) || !strings.Contains(body, `data-testid="completed"`) {
		t.Fatalf("record page:\n%s", authzMain(body, ""))
	}
	if strings.Contains(body, `action="`+path+`/`) {
		t.Error("the record still has forms to act on the checklist")
	}
	rows = obRows(body)
	if len(rows) != 5 {
		t.Fatalf("%d items on the record, want 5", len(rows))
	}
	for _, r := range rows {
		if r.status == "open" || !strings.Contains(r.html, `data-testid="item-by">`) || regexp.MustCompile(`data-testid="item-by"></td>|data-testid="item-when"></td>`).MatchString(r.html) {
			t.Errorf("record item %s (%s) lacks its by/when:\n%s", r.id, r.kind, r.html)
		}
	}
	if !strings.Contains(body, `href="`+path+`/record.csv"`) {
		t.Error("the record does not link its CSV")
	}
	resp, csvBody := lead.get(path + "/record.csv")
	recs := govCSV(t, resp, csvBody)
	if len(recs) != 6 {
		t.Fatalf("%d CSV rows, want header + 5", len(recs))
	}
	by, when, status := govColumn(t, recs, "resolved_by"), govColumn(t, recs, "resolved_at"), govColumn(t, recs, "status")
	for i := range by {
		if by[i] == "" || when[i] == "" || status[i] == "open" {
			t.Errorf("CSV item %d: by %q when %q status %q", i, by[i], when[i], status[i])
		}
	}
	if c := govColumn(t, recs, "completed_by"); c[0] != "lead@example.com" {
		t.Errorf("completed_by %q", c[0])
	}
	// A completed checklist no longer changes.
	if resp, _ := lead.post(path+"/revoke", nil); resp.StatusCode != http.StatusConflict {
		t.Errorf("revoke after completion: status %d, want 409", resp.StatusCode)
	}
	// The list shows it as completed.
	_, body = lead.get("/offboarding")
	if !strings.Contains(body, `data-testid="completed-offboardings"`) || !strings.Contains(body, `href="`+path+`"`) {
		t.Error("the list does not show the completed offboarding")
	}
	// Members may not see any of it.
	m2 := env.client().login("member2")
	for _, p := range []string{"/offboarding", path, path + "/record.csv"} {
		if resp, _ := m2.get(p); resp.StatusCode != http.StatusForbidden {
			t.Errorf("member GET %s: status %d, want 403", p, resp.StatusCode)
		}
	}
}

// TestOffboardingNotFrozen: without a freeze the person keeps working; a
// key they reveal after the start joins the checklist by itself, and an
// item can be waived with a reason.
func TestOffboardingNotFrozen(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	later := env.createKey("member", "development", "later", authzSecret())
	m2 := env.client().login("member2")
	lead := env.client().login("lead")
	path := obStart(t, lead, url.Values{"user": {"member2@example.com"}})
	_, body := lead.get(path)
	if got := obKinds(obRows(body), ""); len(got) != 2 || got["revoke"] != 1 || got["deactivate"] != 1 {
		t.Fatalf("items %v, want revoke and deactivate", got)
	}
	if r := obFind(t, obRows(body), "revoke", ""); r.status != "open" {
		t.Errorf("revoke is %s without a freeze", r.status)
	}
	// Still signed in: member2 reveals a key.
	if resp, _ := m2.post("/keys/"+later.ID+"/reveal", url.Values{"reason": {"one more thing"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("reveal by the departing person: %d", resp.StatusCode)
	}
	_, body = lead.get(path)
	r := obFind(t, obRows(body), "rotate", later.ID)
	if r.status != "open" {
		t.Fatalf("the new rotate item is %s", r.status)
	}
	// Waive it: a reason is required.
	resp, body := lead.post(path+"/items/"+r.id+"/waive", url.Values{})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="error-reason"`) {
		t.Fatalf("waive without reason: %d", resp.StatusCode)
	}
	if !strings.Contains(body, `<details class="waive" open>`) {
		t.Error("the waive form with the error is not open")
	}
	resp, _ = lead.post(path+"/items/"+r.id+"/waive", url.Values{"reason": {"revoked at the provider already"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != path+"?waived=1" {
		t.Fatalf("waive: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = lead.follow(resp)
	w := obFind(t, obRows(body), "rotate", later.ID)
	if w.status != "waived" || !strings.Contains(w.html, "waived: revoked at the provider already") || !strings.Contains(w.html, "lead@example.com") {
		t.Errorf("waived item: %s\n%s", w.status, w.html)
	}
	// Waiving twice is a conflict.
	if resp, _ := lead.post(path+"/items/"+r.id+"/waive", url.Values{"reason": {"again"}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("second waive: status %d, want 409", resp.StatusCode)
	}
	// Revoke signs member2 out.
	if resp, _ := lead.post(path+"/revoke", nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if resp, _ := m2.get("/keys"); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("member2's session after revoke: %d", resp.StatusCode)
	}
	_, body = lead.get(path)
	if r := obFind(t, obRows(body), "revoke", ""); r.status != "done" || !strings.Contains(r.html, "1 sessions and 0 tokens revoked") {
		t.Errorf("revoke item: %s\n%s", r.status, r.html)
	}
	// Unknown checklists and items.
	for _, p := range []string{"/offboarding/999999", "/offboarding/abc", "/offboarding/0/record.csv"} {
		if resp, _ := lead.get(p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", p, resp.StatusCode)
		}
	}
	if resp, _ := lead.post(path+"/items/999999/waive", url.Values{"reason": {"x"}}); resp.StatusCode != http.StatusConflict && resp.StatusCode != http.StatusNotFound {
		t.Errorf("waive unknown item: status %d", resp.StatusCode)
	}
	if resp, _ := lead.post(fmt.Sprintf("%s/items/%s/waive", "/offboarding/999999", r.id), url.Values{"reason": {"x"}}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("waive on unknown checklist: status %d", resp.StatusCode)
	}
}
