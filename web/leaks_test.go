package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
)

// TestLeakReportForm: a member reports a key's value on the form and is
// sent to the incident; the value is in no page, no Location and no log
// line; the key shows as compromised in the list (badge, filter) and on
// its page; a value that matches nothing says so; a refused form comes
// back without the value and says why.
func TestLeakReportForm(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	secret := authzSecret()
	k := env.createKey("member", "production", "prod-openai", secret)
	c := env.client().login("member2")
	var pages []string
	_, body := c.get("/leaks/new")
	pages = append(pages, body)
	if !strings.Contains(body, `name="value"`) || !strings.Contains(body, `name="where"`) {
		t.Fatal("the report form lacks its fields")
	}
	// Refused: no where. The value does not come back.
	resp, body := c.post("/leaks/new", url.Values{"value": {secret}, "where": {""}})
	pages = append(pages, body)
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="error-where"`) ||
		!strings.Contains(body, `data-testid="leak-value-again"`) {
		t.Errorf("form without where: %d, want 422 with the field error and the note about the value", resp.StatusCode)
	}
	resp, body = c.post("/leaks/new", url.Values{"value": {secret}, "where": {"https://gist.example.com/abc"}})
	pages = append(pages, body)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/leaks/") || !strings.HasSuffix(loc, "?reported=1") {
		t.Fatalf("report: %d to %q, want a redirect to the incident", resp.StatusCode, loc)
	}
	_, body = c.get(loc)
	pages = append(pages, body)
	for _, want := range []string{`data-testid="leak-title"`, "prod-openai", `href="https://gist.example.com/abc"`, `data-testid="step-reported"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the incident page lacks %s", want)
		}
	}
	if strings.Contains(body, `data-testid="leak-exposures"`) || strings.Contains(body, `data-testid="leak-revoke"`) {
		t.Error("the reporter (a member) sees the exposures or the actions")
	}
	// The key is compromised everywhere it is shown.
	_, body = c.get("/keys?status=compromised")
	pages = append(pages, body)
	if strings.Count(body, `data-testid="key-row"`) != 1 || !strings.Contains(body, `data-testid="compromised-badge"`) {
		t.Error("status=compromised does not list the key with its badge")
	}
	owner := env.client().login("member")
	_, body = owner.get("/keys/" + k.ID)
	pages = append(pages, body)
	if !strings.Contains(body, `data-testid="compromised-banner"`) || !strings.Contains(body, `href="`+strings.SplitN(loc, "?", 2)[0]+`"`) {
		t.Error("the key page shows no compromised banner linking to the incident")
	}
	// Matches nothing.
	resp, body = c.post("/leaks/new", url.Values{"value": {"sk-proj-nothingOfOurs0123456789"}, "where": {"a blog"}})
	pages = append(pages, body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-testid="leak-no-match"`) || strings.Contains(body, "nothingOfOurs") {
		t.Errorf("unmatched report: %d, want 200 saying no key matched, without the value", resp.StatusCode)
	}
	for i, p := range pages {
		if strings.Contains(p, secret) {
			t.Errorf("page %d shows the reported value", i)
		}
	}
	if strings.Contains(env.Logs.String(), secret) || strings.Contains(env.Logs.String(), "nothingOfOurs") {
		t.Error("a reported value is in the server log")
	}
}

// TestLeakIncidentActions: the owner revokes after rotating (refused
// before), and the incident closes; a waiver needs a reason; the leaks
// page lists open and closed incidents with the time to close, and the
// dashboard shows the median time to revoke and the compromised count.
func TestLeakIncidentActions(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	ctx := context.Background()
	secret, other := authzSecret(), authzSecret()
	k := env.createKey("member", "development", "dev-openai", secret)
	k2 := env.createKey("member", "development", "dev-stripe", other)
	r1, err := env.Store.ReportLeak(ctx, actorOf(env, "member2"), keyledger.LeakReportInput{Value: secret, Where: "chat"})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := env.Store.ReportLeak(ctx, actorOf(env, "member2"), keyledger.LeakReportInput{Value: other, Where: "chat"})
	if err != nil {
		t.Fatal(err)
	}
	owner := env.client().login("member")
	p1 := fmt.Sprintf("/leaks/%d", r1.IncidentID)
	_, body := owner.get(p1)
	if !strings.Contains(body, `data-testid="leak-rotate"`) || strings.Contains(body, `data-testid="leak-revoke"`) {
		t.Error("before rotation the owner should see Rotate now and no revoke button")
	}
	resp, body := owner.post(p1+"/revoke", nil)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "rotate the key first") {
		t.Errorf("revoke before rotation: %d", resp.StatusCode)
	}
	owner.get("/keys/" + k.ID + "/rotate")
	if resp, _ := owner.post("/keys/"+k.ID+"/rotate", url.Values{"value": {authzSecret()}, "version": {"1"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("rotate: %d", resp.StatusCode)
	}
	owner.get(p1)
	resp, _ = owner.post(p1+"/revoke", nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != p1+"?revoked=1" {
		t.Fatalf("revoke: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, body = owner.get(p1)
	if !strings.Contains(body, `data-testid="leak-closed"`) || !strings.Contains(body, `data-testid="step-closed"`) {
		t.Error("the incident is not shown closed after rotation and revocation")
	}
	// Waive the other: the reason is required.
	p2 := fmt.Sprintf("/leaks/%d", r2.IncidentID)
	owner.get(p2)
	resp, body = owner.post(p2+"/waive", url.Values{"reason": {" "}})
	if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="error-reason"`) {
		t.Errorf("waive without reason: %d", resp.StatusCode)
	}
	resp, _ = owner.post(p2+"/waive", url.Values{"reason": {"test key without access"}})
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("waive: %d", resp.StatusCode)
	}
	lead := env.client().login("lead")
	_, body = lead.get("/leaks")
	if strings.Count(body, `data-testid="leak-row"`) != 2 || strings.Count(body, `data-testid="time-to-close"`) != 2 || !strings.Contains(body, "no-open-leaks") {
		t.Errorf("leaks page: want two closed incidents with their time to close")
	}
	_, body = lead.get("/dashboard")
	if !strings.Contains(body, "median time from report to revoked") || !strings.Contains(body, `data-testid="dash-list-compromised"`) {
		t.Error("the dashboard lacks the leak figures")
	}
	if got := authzGetKey(env, t, k2.ID); got.Compromised() {
		t.Error("a waived incident leaves the key compromised")
	}
}

// TestLeakReportAPI: POST /api/v1/leaks answers per the OpenAPI schema,
// without the value; the rate limit answers 429 with Retry-After and a
// plain message.
func TestLeakReportAPI(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	api := newAPI(t, env)
	k, v := api.key("member", "staging", "staging-openai")
	tok := api.token("member2")
	r := api.do(tok, http.MethodPost, "/api/v1/leaks", map[string]any{"value": v, "where": "https://ci.example.com/build/812"})
	if r.Status != http.StatusOK || r.JSON["matched"] != true || r.str("key_id") != k.ID || !strings.HasPrefix(r.str("incident_url"), "/leaks/") {
		t.Fatalf("report: %d %s", r.Status, r.Body)
	}
	r = api.do(tok, http.MethodPost, "/api/v1/leaks", map[string]any{"value": v, "where": "again"})
	if r.JSON["joined"] != true {
		t.Errorf("second report: %s, want joined", r.Body)
	}
	r = api.do(tok, http.MethodPost, "/api/v1/leaks", map[string]any{"value": api.secret(), "where": "x"})
	if r.Status != http.StatusOK || r.JSON["matched"] != false || r.JSON["incident_id"] != nil {
		t.Errorf("unmatched: %d %s", r.Status, r.Body)
	}
	r = api.do(tok, http.MethodPost, "/api/v1/leaks", map[string]any{"value": v})
	if r.Status != http.StatusUnprocessableEntity || r.field("where") == "" {
		t.Errorf("no where: %d %s", r.Status, r.Body)
	}
	for i := 3; i < keyledger.LeakReportLimit; i++ {
		api.do(tok, http.MethodPost, "/api/v1/leaks", map[string]any{"value": api.secret(), "where": "x"})
	}
	r = api.do(tok, http.MethodPost, "/api/v1/leaks", map[string]any{"value": api.secret(), "where": "x"})
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") == "" || !strings.Contains(r.errMessage(), "Try again in") {
		t.Errorf("over the limit: %d %q %s", r.Status, r.Header.Get("Retry-After"), r.Body)
	}
	readOnly := api.token("member2", keyledger.ScopeRead)
	if r := api.do(readOnly, http.MethodPost, "/api/v1/leaks", map[string]any{"value": v, "where": "x"}); r.Status != http.StatusForbidden {
		t.Errorf("read-only token: %d", r.Status)
	}
}
