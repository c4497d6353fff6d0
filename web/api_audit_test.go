package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web/wire"
)

// TestAPIAudit: leads and admins read the log through the API with the
// page's filters, in pages joined by a cursor; API actions carry
// details.via_token.
func TestAPIAudit(t *testing.T) {
	t.Parallel()
	env := newEnv(t, withAPIRate(1000))
	a := newAPI(t, env)
	k, _ := a.key("member", "staging", "audited")
	member, memberTokID := a.tokenWithID("member")
	for i := range 3 {
		a.want(a.do(member, http.MethodPost, "/api/v1/keys/"+k.ID+"/reveal", map[string]any{"reason": "reason " + string(rune('a'+i))}), http.StatusOK, "")
	}
	lead := a.token("lead", "read")

	// Members: refused, however they ask.
	a.want(a.get(member, "/api/v1/audit"), http.StatusForbidden, "forbidden")
	a.want(a.get(member, "/api/v1/audit?key="+k.ID), http.StatusForbidden, "forbidden")

	list := func(query string) wire.AuditList {
		t.Helper()
		r := a.get(lead, "/api/v1/audit?"+query)
		a.want(r, http.StatusOK, "")
		var got wire.AuditList
		r.decode(t, &got)
		return got
	}
	got := list("key=" + k.ID + "&action=key.reveal")
	if len(got.Events) != 3 || got.NextCursor != nil {
		t.Fatalf("%d reveal events (cursor %v), want 3", len(got.Events), got.NextCursor)
	}
	e := got.Events[0]
	if e.Actor != "member@example.com" || e.Action != "key.reveal" || e.KeyID == nil || *e.KeyID != k.ID || e.KeyName == nil || *e.KeyName != "audited" ||
		e.KeyVersion == nil || *e.KeyVersion != 1 || e.Environment == nil || *e.Environment != "staging" || e.Reason != "reason c" || e.Subject != nil {
		t.Errorf("newest reveal event %+v", e)
	}
	var details struct {
		ViaToken int64 `json:"via_token"`
	}
	if err := json.Unmarshal(e.Details, &details); err != nil || details.ViaToken != memberTokID {
		t.Errorf("details %s (%v), want via_token %d", e.Details, err, memberTokID)
	}
	if got.Events[0].ID <= got.Events[1].ID || got.Events[1].ID <= got.Events[2].ID {
		t.Error("events not newest first")
	}

	// The token's first use is audited too, with the user as subject.
	got = list("action=token.first_use&actor=member@example.com")
	if len(got.Events) != 1 || got.Events[0].Subject == nil || *got.Events[0].Subject != "member@example.com" || got.Events[0].KeyID != nil {
		t.Errorf("first-use events %+v", got.Events)
	}

	// Pages of 2 over everything: each event once, newest first.
	all := list("limit=500")
	if len(all.Events) < 10 || all.NextCursor != nil {
		t.Fatalf("%d events in all", len(all.Events))
	}
	var paged []int64
	cursor := ""
	for pages := 0; ; pages++ {
		q := url.Values{"limit": {"2"}}
		if cursor != "" {
			q.Set("cursor", cursor)
		}
		p := list(q.Encode())
		if len(p.Events) > 2 || pages > 1000 {
			t.Fatalf("page %d has %d events", pages, len(p.Events))
		}
		for _, e := range p.Events {
			paged = append(paged, e.ID)
		}
		if p.NextCursor == nil {
			break
		}
		cursor = *p.NextCursor
	}
	if len(paged) != len(all.Events) {
		t.Errorf("%d events across pages, want %d", len(paged), len(all.Events))
	} else {
		for i := range paged {
			if paged[i] != all.Events[i].ID {
				t.Errorf("page order differs at %d: %d, want %d", i, paged[i], all.Events[i].ID)
				break
			}
		}
	}

	// Time and environment filters.
	yesterday, today := time.Now().UTC().AddDate(0, 0, -1).Format("2006-01-02"), time.Now().UTC().Format("2006-01-02")
	if n := len(list("since=" + yesterday + "&until=" + today + "&key=" + k.ID).Events); n != 4 {
		t.Errorf("today's events of the key: %d, want 4 (create and 3 reveals)", n)
	}
	if n := len(list("until=2000-01-01").Events); n != 0 {
		t.Errorf("%d events before 2000", n)
	}
	if n := len(list("since=" + url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))).Events); n != 0 {
		t.Errorf("%d events in the future", n)
	}
	if n := len(list("environment=staging&action=key.create").Events); n != 1 {
		t.Errorf("staging creations: %d, want 1", n)
	}
	if n := len(list("key=not-a-uuid").Events); n != 0 {
		t.Errorf("%d events of a key id that is not one", n)
	}

	for query, field := range map[string]string{
		"since=yesterday":                    "since",
		"until=2026-13-01":                   "until",
		"action=key.steal":                   "action",
		"limit=0":                            "limit",
		"limit=501":                          "limit",
		"cursor=!!!":                         "cursor",
		"cursor=eyJrIjoia2V5cyIsImkiOiJ4In0": "cursor", // a keys cursor
		"cursor=eyJrIjoiYXVkaXQifQ":          "cursor", // no position
	} {
		r := a.get(lead, "/api/v1/audit?"+query)
		a.want(r, http.StatusUnprocessableEntity, "invalid")
		if r.field(field) == "" {
			t.Errorf("?%s: no message for %s: %s", query, field, r.Body)
		}
	}
	// The audit answer carries no value and no token.
	if body := string(a.get(lead, "/api/v1/audit?limit=500").Body); strings.Contains(body, "klt_") {
		t.Error("the audit log carries a token")
	}
}

// TestAPIAuditRevealsAndExports: action=reveals-and-exports is the audit
// page's filter of the same name: every event that handed a value out
// (reveals and exports, by browser or token) and nothing else, and the
// page and the API answer the same events.
func TestAPIAuditRevealsAndExports(t *testing.T) {
	t.Parallel()
	env := newEnv(t, withAPIRate(1000))
	a := newAPI(t, env)
	k, _ := a.key("member", "development", "handed out")
	member := a.token("member")
	a.want(a.do(member, http.MethodPost, "/api/v1/keys/"+k.ID+"/reveal", map[string]any{"reason": "debugging"}), http.StatusOK, "")
	a.want(a.do(member, http.MethodPost, "/api/v1/export", map[string]any{"environment": "development", "format": "json"}), http.StatusOK, "")
	// Not handed out: a verify attempt, a creation, sign-ins.
	web := env.client().login("member")
	if resp, _ := web.post("/keys/"+k.ID+"/reveal", url.Values{"reason": {"from the page"}}); resp.StatusCode >= 400 {
		t.Fatalf("page reveal: %d", resp.StatusCode)
	}

	lead := a.token("lead", "read")
	r := a.get(lead, "/api/v1/audit?limit=500&action=reveals-and-exports")
	a.want(r, http.StatusOK, "")
	var got wire.AuditList
	r.decode(t, &got)
	count := map[string]int{}
	var ids []int64
	for _, e := range got.Events {
		count[e.Action]++
		ids = append(ids, e.ID)
	}
	if count["key.reveal"] != 2 || count["key.export"] != 1 || len(got.Events) != 3 {
		t.Errorf("reveals-and-exports answered %v, want 2 key.reveal and 1 key.export only", count)
	}
	// The page's filter answers the same events.
	_, page := env.client().login("lead").get("/audit?action=reveals-and-exports")
	var pageIDs []int64
	for _, m := range regexp.MustCompile(`data-testid="audit-row">\s*<td>(\d+)</td>`).FindAllStringSubmatch(page, -1) {
		id, _ := strconv.ParseInt(m[1], 10, 64)
		pageIDs = append(pageIDs, id)
	}
	if !slices.Equal(pageIDs, ids) {
		t.Errorf("the page lists events %v, the API %v", pageIDs, ids)
	}
	// Combined with another filter, and a group that does not exist.
	r = a.get(lead, "/api/v1/audit?action=reveals-and-exports&key="+k.ID+"&environment=staging")
	a.want(r, http.StatusOK, "")
	r.decode(t, &got)
	if len(got.Events) != 0 {
		t.Errorf("staging reveals of a development key: %d events", len(got.Events))
	}
	r = a.get(lead, "/api/v1/audit?action=reveals-and-rotations")
	a.want(r, http.StatusUnprocessableEntity, "invalid")
	if r.field("action") == "" {
		t.Errorf("no message for action: %s", r.Body)
	}
}

// TestOpenAPIAuditActionFilter: the document lists exactly the action
// filter values the server takes (every audit action and the
// reveals-and-exports group), so a client built from it can offer them.
func TestOpenAPIAuditActionFilter(t *testing.T) {
	t.Parallel()
	a := newAPI(t, newEnv(t))
	p := a.doc.Paths.Value("/audit").Get.Parameters.GetByInAndName("query", "action")
	if p == nil || p.Schema == nil || p.Schema.Value == nil {
		t.Fatal("GET /audit documents no action parameter")
	}
	var documented []string
	for _, v := range p.Schema.Value.Enum {
		s, _ := v.(string)
		documented = append(documented, s)
		if !keyledger.AuditActionFilterKnown(s) {
			t.Errorf("the document offers %q, which the server refuses", s)
		}
	}
	want := append(keyledger.AuditActions(), keyledger.AuditGroupRevealsExports)
	slices.Sort(documented)
	slices.Sort(want)
	if !slices.Equal(documented, want) {
		t.Errorf("documented action filters %v, want %v", documented, want)
	}
	if keyledger.AuditActionFilterKnown("reveals-and-rotations") || keyledger.AuditActionFilterKnown("") {
		t.Error("an unknown filter value is known")
	}
}
