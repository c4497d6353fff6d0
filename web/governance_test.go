package web_test

import (
	"context"
	"encoding/csv"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// Lead tools: the ownership dashboard, CSV downloads and "what has this
// person seen".

// govCount counts the occurrences of data-testid="id" in a page.
func govCount(body, testid string) int {
	return strings.Count(body, `data-testid="`+testid+`"`)
}

// govExec runs SQL that sets up a state only time would produce.
func govExec(t testing.TB, env *testEnv, sql string, args ...any) {
	t.Helper()
	if _, err := env.Pool.Exec(context.Background(), sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// govUser creates a member with a fresh email and returns it.
func govUser(t testing.TB, env *testEnv, local string) *keyledger.User {
	t.Helper()
	u, err := env.Store.CreateUser(context.Background(), keyledger.SystemActor("test"), keyledger.NewUser{
		Email: local + "@example.com", Name: strings.ToUpper(local[:1]) + local[1:], Role: keyledger.RoleMember, Password: Password})
	if err != nil {
		t.Fatal(err)
	}
	env.Users[local] = u
	return u
}

// govCSV parses a CSV download, checking the download headers.
func govCSV(t testing.TB, resp *http.Response, body string) [][]string {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CSV: status %d\n%s", resp.StatusCode, authzMain(body, ""))
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Errorf("Content-Type %q", ct)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || !strings.Contains(cd, ".csv") {
		t.Errorf("Content-Disposition %q", cd)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
	rows, err := csv.NewReader(strings.NewReader(body)).ReadAll()
	if err != nil {
		t.Fatalf("parse CSV: %v\n%s", err, body)
	}
	if len(rows) == 0 {
		t.Fatal("empty CSV")
	}
	return rows
}

// govColumn returns the values of one column (by header name).
func govColumn(t testing.TB, rows [][]string, name string) []string {
	t.Helper()
	col := -1
	for i, h := range rows[0] {
		if h == name {
			col = i
		}
	}
	if col < 0 {
		t.Fatalf("no column %q in %v", name, rows[0])
	}
	var out []string
	for _, r := range rows[1:] {
		out = append(out, r[col])
	}
	return out
}

var dashLink = regexp.MustCompile(`<a href="([^"]+)"[^>]*data-testid="dash-link"[^>]*>(\d+)</a>`)

func TestGovernanceDashboard(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	dora := govUser(t, env, "dora")
	a := env.createKey("member", "development", "alpha", authzSecret())
	b := env.createKey("member", "staging", "bravo", authzSecret())
	c := env.createKey("member2", "development", "charlie", authzSecret())
	d := env.createKey("lead", "production", "delta", authzSecret())
	env.createKey("dora", "staging", "echo", authzSecret())
	env.createKey("dora", "staging", "foxtrot", authzSecret())
	archived := env.createKey("member", "development", "golf", authzSecret())
	if err := env.Store.ArchiveKey(context.Background(), actorOf(env, "member"), archived.ID); err != nil {
		t.Fatal(err)
	}

	// Orphaned: dora leaves. Failing: bravo's last check. Overdue: charlie.
	// Due soon: alpha. Stale: delta, registered 200 days ago, never seen.
	if _, err := env.Store.DeactivateUser(context.Background(), actorOf(env, "admin"), dora.Email); err != nil {
		t.Fatal(err)
	}
	govExec(t, env, "UPDATE keys SET last_verified_at = now() - interval '1 day', verify_result = 'invalid' WHERE id = $1", b.ID)
	govExec(t, env, "UPDATE keys SET rotate_by = now() - interval '2 days' WHERE id = $1", c.ID)
	govExec(t, env, "UPDATE keys SET rotate_by = now() + interval '3 days' WHERE id = $1", a.ID)
	govExec(t, env, "UPDATE keys SET created_at = now() - interval '200 days' WHERE id = $1", d.ID)

	lead := env.client().login("lead")
	resp, body := lead.get("/dashboard")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("dashboard: status %d\n%s", resp.StatusCode, authzMain(body, ""))
	}
	want := map[string]int{"orphaned": 2, "never_verified": 5, "failing": 1, "overdue": 1, "due_soon": 1, "stale": 1}
	for status, n := range want {
		re := regexp.MustCompile(`(?s)data-testid="dash-list-` + status + `".*?data-testid="dash-link">(\d+)</a>`)
		m := re.FindStringSubmatch(body)
		if m == nil {
			t.Errorf("no %s card on the dashboard", status)
			continue
		}
		if got, _ := strconv.Atoi(m[1]); got != n {
			t.Errorf("%s: dashboard says %d, want %d", status, got, n)
		}
		if !strings.Contains(body, `href="/keys.csv?status=`+status+`"`) {
			t.Errorf("%s: no CSV link", status)
		}
	}
	// The owner table: member has alpha (development) and bravo (staging).
	if !strings.Contains(body, fmt.Sprintf(`href="/users/%d"`, env.Users["member"].ID)) {
		t.Error("the owner table does not link member's page")
	}
	if !strings.Contains(body, fmt.Sprintf(`href="/users/%d"`, dora.ID)) || !strings.Contains(body, "not active: reassign") {
		t.Error("dora is not listed as an owner who left")
	}
	if !strings.Contains(body, `href="/keys?environment=development&amp;owner=member%40example.com"`) {
		t.Error("no link for member's development keys")
	}

	// Every number leads to a key list with exactly that many rows.
	links := dashLink.FindAllStringSubmatch(body, -1)
	if len(links) < 6+5*3 {
		t.Fatalf("only %d numbers link to the key list", len(links))
	}
	for _, m := range links {
		href := html.UnescapeString(m[1])
		n, _ := strconv.Atoi(m[2])
		resp, list := lead.get(href)
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s: status %d", href, resp.StatusCode)
			continue
		}
		if rows := govCount(list, "key-cell"); rows != n {
			t.Errorf("%s: %d rows, the dashboard says %d", href, rows, n)
		}
		// And the CSV of the same list has as many rows.
		csvResp, csvBody := lead.get(strings.Replace(href, "/keys", "/keys.csv", 1))
		if rows := govCSV(t, csvResp, csvBody); len(rows)-1 != n {
			t.Errorf("%s as CSV: %d rows, want %d", href, len(rows)-1, n)
		}
	}

	// Admins too; members are refused.
	if resp, _ := env.client().login("admin").get("/dashboard"); resp.StatusCode != http.StatusOK {
		t.Errorf("admin: status %d", resp.StatusCode)
	}
	if resp, _ := env.client().login("member").get("/dashboard"); resp.StatusCode != http.StatusForbidden {
		t.Errorf("member: status %d, want 403", resp.StatusCode)
	}
}

func TestGovernanceCSV(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	ctx := context.Background()
	var values []string
	key := func(owner, envName, name string) *keyledger.Key {
		v := authzSecret()
		values = append(values, v)
		return env.createKey(owner, envName, name, v)
	}
	formula := key("member", "development", "=cmd()")
	plus := key("member", "staging", "+SUM(A1)")
	// More keys than one page of the store's listing (200).
	for i := range 205 {
		key("member2", "development", fmt.Sprintf("bulk %03d", i))
	}
	// Reveals: a reason that starts like a formula, and enough events
	// for several pages of the audit CSV (500 each).
	for i := range 320 {
		reason := fmt.Sprintf("batch %d", i)
		if i == 0 {
			reason = "@SUM(1+1)"
		}
		if _, err := env.Store.Reveal(ctx, actorOf(env, "lead"), formula.ID, reason); err != nil {
			t.Fatal(err)
		}
	}

	member := env.client().login("member")
	resp, body := member.get("/keys.csv")
	rows := govCSV(t, resp, body)
	wantHeader := []string{"name", "project", "environment", "owner", "provider", "masked_hint", "current_version",
		"rotate_by", "last_verified_at", "verify_result", "created_at", "archived_at"}
	if strings.Join(rows[0], ",") != strings.Join(wantHeader, ",") {
		t.Errorf("header %v, want %v", rows[0], wantHeader)
	}
	if len(rows)-1 != 207 {
		t.Errorf("%d keys in the CSV, want 207 (every page)", len(rows)-1)
	}
	names := strings.Join(govColumn(t, rows, "name"), "\n")
	if !strings.Contains(names, "'=cmd()") || !strings.Contains(names, "'+SUM(A1)") {
		t.Errorf("formula-like names are not defused: %q", names[:200])
	}
	for _, v := range values {
		if strings.Contains(body, v) {
			t.Fatal("the key CSV contains a value")
		}
	}
	if hints := govColumn(t, rows, "masked_hint"); hints[0] == "" {
		t.Error("no masked hint")
	}
	// Same filters as /keys.
	resp, body = member.get("/keys.csv?environment=staging")
	if rows := govCSV(t, resp, body); len(rows) != 2 || rows[1][0] != "'+SUM(A1)" || rows[1][2] != "staging" {
		t.Errorf("staging CSV: %v", rows)
	}
	_ = plus

	// The audit log: members may not download it.
	if resp, body := member.get("/audit.csv"); resp.StatusCode != http.StatusForbidden || resp.Header.Get("Content-Disposition") != "" {
		t.Errorf("member /audit.csv: status %d\n%s", resp.StatusCode, body)
	}
	lead := env.client().login("lead")
	var total int
	if err := env.Pool.QueryRow(ctx, "SELECT count(*) FROM audit_events").Scan(&total); err != nil {
		t.Fatal(err)
	}
	resp, body = lead.get("/audit.csv")
	rows = govCSV(t, resp, body)
	// The lead's own sign-in happened before the download: every event
	// up to then is there, once.
	if len(rows)-1 < total || len(rows)-1 > total+2 {
		t.Errorf("%d events in the CSV, %d in the database", len(rows)-1, total)
	}
	ids := govColumn(t, rows, "id")
	seen := map[string]bool{}
	for i, id := range ids {
		if seen[id] {
			t.Fatalf("event %s twice", id)
		}
		seen[id] = true
		if i > 0 {
			prev, _ := strconv.Atoi(ids[i-1])
			if cur, _ := strconv.Atoi(id); cur >= prev {
				t.Fatalf("events out of order: %s after %s", id, ids[i-1])
			}
		}
	}
	for _, v := range values {
		if strings.Contains(body, v) {
			t.Fatal("the audit CSV contains a value")
		}
	}
	// Filters as on /audit.
	resp, body = lead.get("/audit.csv?action=key.reveal&key=" + formula.ID)
	rows = govCSV(t, resp, body)
	if len(rows)-1 != 320 {
		t.Errorf("%d reveal events, want 320", len(rows)-1)
	}
	reasons := strings.Join(govColumn(t, rows, "reason"), "\n")
	if !strings.Contains(reasons, "'@SUM(1+1)") || strings.Contains(reasons, "\n@SUM") {
		t.Error("a formula-like reason is not defused")
	}
	if names := govColumn(t, rows, "key_name"); names[0] != "'=cmd()" {
		t.Errorf("key_name %q, want '=cmd()", names[0])
	}
	if acts := govColumn(t, rows, "action"); acts[0] != keyledger.ActionKeyReveal {
		t.Errorf("action %q", acts[0])
	}
	// The audit page links its CSV with the same filters.
	_, page := lead.get("/audit?action=key.reveal")
	if !strings.Contains(page, `href="/audit.csv?action=key.reveal"`) {
		t.Error("the audit page does not link the CSV of its filter")
	}
	if resp, _ := lead.get("/audit.csv?since=yesterday"); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("bad date: status %d, want 422", resp.StatusCode)
	}
}

func TestGovernanceUserSeen(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	ctx := context.Background()
	dev := env.createKey("member", "development", "openai dev", authzSecret())
	staging := env.createKey("member", "staging", "openai staging", authzSecret())

	// member2 reveals the development key and exports staging.
	m2 := env.client().login("member2")
	if resp, _ := m2.post("/keys/"+dev.ID+"/reveal", url.Values{"reason": {"local dev"}}); resp.StatusCode != http.StatusOK {
		t.Fatalf("reveal: %d", resp.StatusCode)
	}
	if _, err := env.Store.ExportKeys(ctx, actorOf(env, "member2"), "staging", "checkout", "staging deploy", keyledger.FormatDotenv); err != nil {
		t.Fatal(err)
	}
	m2ID := env.Users["member2"].ID
	page := fmt.Sprintf("/users/%d", m2ID)

	lead := env.client().login("lead")
	resp, body := lead.get(page)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("lead: status %d\n%s", resp.StatusCode, authzMain(body, ""))
	}
	if n := govCount(body, "seen-row"); n != 2 {
		t.Fatalf("%d seen rows, want 2\n%s", n, authzMain(body, ""))
	}
	if n := govCount(body, "still-current"); n != 2 {
		t.Errorf("%d still-current badges, want 2", n)
	}
	for _, s := range []string{"local dev", "staging deploy", ">export<", ">reveal<", "still current — rotate if they leave",
		`href="/keys/` + dev.ID + `"`, `href="/offboarding?user=member2%40example.com"`} {
		if !strings.Contains(body, s) {
			t.Errorf("the page lacks %q", s)
		}
	}
	// The person sees their own page; nobody else but leads and admins.
	if resp, _ := m2.get(page); resp.StatusCode != http.StatusOK {
		t.Errorf("own page: status %d", resp.StatusCode)
	}
	member := env.client().login("member")
	resp, notFound := member.get(page)
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("member on member2's page: status %d, want 404", resp.StatusCode)
	}
	// The same page as for nobody at all: probing learns nothing.
	resp2, missing := member.get("/users/999999")
	if a, b := authzMain(notFound, resp.Header.Get("X-Request-Id")), authzMain(missing, resp2.Header.Get("X-Request-Id")); a != b || strings.Contains(a, "member2@example.com") {
		t.Errorf("the 404 for member2 differs from the 404 for nobody:\n%s\n%s", a, b)
	}
	for _, p := range []string{"/users/abc", "/users/0", "/users/999999"} {
		if resp, _ := lead.get(p); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: status %d, want 404", p, resp.StatusCode)
		}
	}

	// After a rotation the development reveal is no longer current.
	resp, _ = lead.post("/keys/"+dev.ID+"/rotate", url.Values{"value": {authzSecret()}, "grace_days": {"0"}, "version": {"1"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("rotate: %d", resp.StatusCode)
	}
	_, body = lead.get(page)
	if n := govCount(body, "still-current"); n != 1 {
		t.Errorf("after rotating: %d still-current badges, want 1", n)
	}
	row := regexp.MustCompile(`(?s)<tr data-testid="seen-row">.*?</tr>`).FindAllString(body, -1)
	for _, r := range row {
		if strings.Contains(r, dev.ID) && strings.Contains(r, "still-current") {
			t.Error("the rotated key is still marked current")
		}
		if strings.Contains(r, staging.ID) && !strings.Contains(r, "still-current") {
			t.Error("the exported staging key lost its badge")
		}
	}
}

func TestGovernanceReassign(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	ctx := context.Background()
	k1 := env.createKey("member", "development", "one", authzSecret())
	k2 := env.createKey("member", "staging", "two", authzSecret())
	k3 := env.createKey("member", "production", "three", authzSecret())
	mID := env.Users["member"].ID
	page := fmt.Sprintf("/users/%d", mID)
	owner := func(id string) string { return authzGetKey(env, t, id).OwnerEmail }

	lead := env.client().login("lead")
	_, body := lead.get(page)
	if n := govCount(body, "owned-row"); n != 3 {
		t.Fatalf("%d owned keys listed, want 3", n)
	}
	if !strings.Contains(body, `name="key" value="`+k1.ID+`"`) || !strings.Contains(body, `data-testid="reassign-all"`) {
		t.Fatal("no reassign form with a checkbox per key")
	}

	// No owner chosen: 422 with the error next to the select; nothing moves.
	resp, body := lead.post(page+"/reassign", url.Values{"key": {k1.ID}})
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("no owner: status %d", resp.StatusCode)
	}
	if msg, ok := formsFieldError(body, "owner"); !ok || msg == "" {
		t.Errorf("no owner error:\n%s", authzMain(body, ""))
	}
	formsErrorNextToField(t, body, "owner")
	if !strings.Contains(body, `value="`+k1.ID+`" id="key-`+k1.ID+`" checked`) {
		t.Error("the ticked key is not ticked any more")
	}
	// Only-ticked with nothing ticked is refused too.
	if resp, _ := lead.post(page+"/reassign", url.Values{"owner": {"member2@example.com"}, "only_checked": {"1"}}); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("only ticked, none ticked: status %d", resp.StatusCode)
	}
	// A deactivated owner is refused.
	if resp, _ := lead.post(page+"/reassign", url.Values{"owner": {"gone@example.com"}}); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("deactivated owner: status %d", resp.StatusCode)
	}
	if owner(k1.ID) != "member@example.com" || owner(k2.ID) != "member@example.com" {
		t.Fatal("a refused reassign moved keys")
	}

	// A member may not reassign.
	m2 := env.client().login("member2")
	if resp, _ := m2.post(page+"/reassign", url.Values{"owner": {"member2@example.com"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("member reassign: status %d, want 403", resp.StatusCode)
	}

	// A subset.
	resp, _ = lead.post(page+"/reassign", url.Values{"owner": {"member2@example.com"}, "key": {k1.ID, k3.ID}, "only_checked": {"1"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != page+"?reassigned=2" {
		t.Fatalf("subset: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if owner(k1.ID) != "member2@example.com" || owner(k3.ID) != "member2@example.com" || owner(k2.ID) != "member@example.com" {
		t.Error("the subset did not move exactly the ticked keys")
	}
	_, body = lead.follow(resp)
	if !strings.Contains(body, "Reassigned 2 keys.") || govCount(body, "owned-row") != 1 {
		t.Errorf("after the subset:\n%s", authzMain(body, ""))
	}
	// All the rest.
	resp, _ = lead.post(page+"/reassign", url.Values{"owner": {"lead@example.com"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != page+"?reassigned=1" {
		t.Fatalf("all: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if owner(k2.ID) != "lead@example.com" {
		t.Error("reassign all left a key")
	}
	// Audited per key, with from and to.
	ev, err := env.Store.ListAudit(ctx, actorOf(env, "admin"), store.AuditFilter{Action: keyledger.ActionKeyReassign, Limit: 50})
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Events) != 3 {
		t.Fatalf("%d reassign events, want 3", len(ev.Events))
	}
	for _, e := range ev.Events {
		if e.ActorEmail != "lead@example.com" || !strings.Contains(e.Details, `"from": "member@example.com"`) && !strings.Contains(e.Details, `"from":"member@example.com"`) {
			t.Errorf("event %+v", e)
		}
	}
	// A key that no longer belongs to member: conflict, nothing moves.
	resp, body = lead.post(page+"/reassign", url.Values{"owner": {"member2@example.com"}, "key": {k2.ID}})
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "no longer owned") {
		t.Errorf("stale subset: status %d", resp.StatusCode)
	}
}
