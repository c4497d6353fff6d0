package web_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/keyledger/keyledger/provideradmin/providertest"
)

// leakFlow drives the incident flow in Chromium, one named step at a
// time: the leaked version is revoked either in keyledger
// (revokeInKeyledger) or at a fake provider (revokeAtProvider).
type leakFlow struct {
	b        *browser
	t        *testing.T
	leaked   string // the reported value: no page may ever show it
	incident string // /leaks/N
	keyPage  string
	fakes    *providerFakes // revokeAtProvider's fake OpenAI
}

// noValue fails when the current page holds the leaked value.
func (f *leakFlow) noValue(where string) {
	if html := evalIn[string](f.b, `document.documentElement.outerHTML`); strings.Contains(html, f.leaked) {
		f.b.fatalf("%s: the page contains the leaked value", where)
	}
	if strings.Contains(f.b.path(), f.leaked) {
		f.b.fatalf("%s: the address contains the leaked value", where)
	}
}

// report pastes the value on the report form and lands on the incident.
func (f *leakFlow) report(where string) {
	b := f.b
	if st := b.press(`nav.site a[href="/leaks/new"]`); st != http.StatusOK {
		b.fatalf("open Report a leak: status %d", st)
	}
	b.do("paste the value and where",
		chromedp.SendKeys(chromedp.ID("value"), f.leaked, chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.ID("where"), where, chromedp.NodeVisible))
	if st := b.press(`[data-testid="leak-submit"]`); st != http.StatusOK {
		b.fatalf("report: status %d", st)
	}
	m := regexp.MustCompile(`^(/leaks/\d+)\?reported=1$`).FindStringSubmatch(b.path())
	if m == nil {
		b.fatalf("after reporting the browser is at %s", b.path())
	}
	f.incident = m[1]
	if flash := b.text(".flash.ok"); !strings.HasPrefix(flash, "This value is one of our keys.") {
		b.fatalf("flash after reporting: %q", flash)
	}
	f.noValue("the incident page after the report")
}

// openIncidentFromKey goes to the key page and follows its compromised
// banner to the incident.
func (f *leakFlow) openIncidentFromKey() {
	b := f.b
	if st := b.navigate(f.keyPage); st != http.StatusOK {
		b.fatalf("GET %s: status %d", f.keyPage, st)
	}
	if st := b.press(`[data-testid="compromised-incident"]`); st != http.StatusOK {
		b.fatalf("follow the compromised banner: status %d", st)
	}
	if b.path() != f.incident {
		b.fatalf("the banner leads to %s, want %s", b.path(), f.incident)
	}
}

// rotateNow presses Rotate now on the incident and rotates to newValue.
func (f *leakFlow) rotateNow(newValue string) {
	b := f.b
	if st := b.press(`[data-testid="leak-rotate"]`); st != http.StatusOK {
		b.fatalf("Rotate now: status %d", st)
	}
	b.do("paste the new value", chromedp.SendKeys(chromedp.ID("value"), newValue, chromedp.NodeVisible))
	if st := b.press(`[data-testid="rotate-submit"]`); st != http.StatusOK {
		b.fatalf("rotate: status %d", st)
	}
	if flash := b.text(".flash.ok"); !strings.HasPrefix(flash, "Rotated: version 2") {
		b.fatalf("flash after rotating: %q", flash)
	}
	// Still compromised: the old version is not revoked yet.
	if banner := b.text(`[data-testid="compromised-banner"]`); !strings.Contains(banner, "compromised") {
		b.fatalf("after rotating the key page banner is %q", banner)
	}
	f.openIncidentFromKey()
	if status := b.text(`[data-testid="leak-status"]`); status != "open: rotated, not revoked" {
		b.fatalf("incident status after rotating %q", status)
	}
}

// revokeInKeyledger records the revocation of the leaked version.
func (f *leakFlow) revokeInKeyledger() {
	b := f.b
	if st := b.press(`[data-testid="leak-revoke"]`); st != http.StatusOK {
		b.fatalf("revoke: status %d", st)
	}
	if b.path() != f.incident+"?revoked=1" {
		b.fatalf("after revoking the browser is at %s", b.path())
	}
}

// revokeAtProvider presses "Revoke at provider" on the incident: the
// fake OpenAI sees exactly one request, the DELETE of providerKeyID in
// project, and the browser lands on the key page saying so.
func (f *leakFlow) revokeAtProvider(project, providerKeyID string) {
	b := f.b
	f.fakes.openai.ResetRequests()
	if st := b.press(`[data-testid="leak-provider-revoke"]`); st != http.StatusOK {
		b.fatalf("Revoke at provider: status %d", st)
	}
	if b.path() != f.keyPage+"?provider_revoked=1" {
		b.fatalf("after revoking at the provider the browser is at %s", b.path())
	}
	if flash := b.text(".flash.ok"); !strings.HasPrefix(flash, "Revoked at the provider.") {
		b.fatalf("flash after revoking at the provider: %q", flash)
	}
	if n, all := f.fakes.openai.Count("DELETE", "/v1/organization/projects/"+project+"/api_keys/"+providerKeyID), f.fakes.openai.Requests(); n != 1 || len(all) != 1 {
		b.fatalf("the fake saw %d DELETEs of %s, want exactly one request; requests: %+v", n, providerKeyID, all)
	}
	if _, ok := f.fakes.openai.Key(providerKeyID); ok {
		b.fatalf("the key %s still exists at the fake", providerKeyID)
	}
	if st := b.navigate(f.incident); st != http.StatusOK {
		b.fatalf("GET %s: status %d", f.incident, st)
	}
}

// closed checks the incident's final state and timeline.
func (f *leakFlow) closed(steps string) {
	b := f.b
	if status := b.text(`[data-testid="leak-status"]`); status != "closed" {
		b.fatalf("incident status %q, want closed", status)
	}
	if got := evalIn[string](b, `[...document.querySelectorAll('[data-testid="leak-timeline"] li')].map(li => li.dataset.testid.replace("step-", "")).join(" ")`); got != steps {
		b.fatalf("timeline %q, want %q", got, steps)
	}
	if n := evalIn[int](b, `document.querySelectorAll('[data-testid="leak-actions"]').length`); n != 0 {
		b.fatalf("a closed incident still offers actions")
	}
	f.noValue("the closed incident")
	if st := b.navigate(f.keyPage); st != http.StatusOK {
		b.fatalf("GET %s: status %d", f.keyPage, st)
	}
	if n := evalIn[int](b, `document.querySelectorAll('[data-testid="compromised-banner"]').length`); n != 0 {
		b.fatalf("the key is still shown compromised after the incident closed")
	}
}

// TestBrowserLeakIncident: a member reports a production key's value
// found in a gist → the incident page → the owner presses Rotate now and
// rotates → revokes the old version → the incident is closed, with every
// step on its timeline; no page or address ever holds the value.
func TestBrowserLeakIncident(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	start := time.Now()
	env := newEnv(t)
	leaked := authzSecret()
	k := env.createKey("member", "production", "Checkout OpenAI", leaked)
	b := newBrowser(t, env.HTTP.URL, 3*time.Minute)
	f := &leakFlow{b: b, t: t, leaked: leaked, keyPage: "/keys/" + k.ID}

	b.signIn("member2@example.com", "Member2 (member)")
	f.report("https://gist.example.com/oops")
	if href := evalIn[string](b, `document.querySelector('[data-testid="leak-where"] a').getAttribute("href")`); href != "https://gist.example.com/oops" {
		b.fatalf("where links to %q", href)
	}
	if st := b.press(`[data-testid="logout"]`); st != http.StatusOK {
		b.fatalf("sign out: status %d", st)
	}

	b.signIn("member@example.com", "Member (member)")
	f.openIncidentFromKey()
	f.rotateNow(authzSecret())
	// Not at a connected provider: nothing to revoke there.
	if n := evalIn[int](b, `document.querySelectorAll('[data-testid="leak-provider-revoke"]').length`); n != 0 {
		b.fatalf("an incident on a key at no connected provider offers Revoke at provider")
	}
	f.revokeInKeyledger()
	f.closed("reported rotated revoked closed")

	if problems := b.consoleProblems(); len(problems) > 0 {
		t.Errorf("the pages logged %d console errors or warnings:\n%s", len(problems), strings.Join(problems, "\n"))
	}
	if strings.Contains(env.Logs.String(), leaked) {
		t.Error("the leaked value is in the server log")
	}
	t.Logf("browser leak incident took %v", time.Since(start).Round(time.Millisecond))
}

// TestBrowserLeakIncidentRevokedAtProvider: the same flow for a
// development key that OpenAI (a fake) also lists: after Rotate now the
// owner presses "Revoke at provider" on the incident, the fake sees the
// DELETE of that key's id and nothing else, and the incident is closed
// with the revocation on its timeline.
func TestBrowserLeakIncidentRevokedAtProvider(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	fakes := newProviderFakes(t)
	env := newEnv(t, fakes.option())
	leaked := authzSecret()
	k := env.createKey("member", "development", "Search OpenAI", leaked)
	fakes.openai.AddProject(providertest.OpenAIProject{ID: "proj_search", Name: "search"})
	atOpenAI := fakes.openai.AddKey(providertest.OpenAIKey{Project: "proj_search", Name: "search bot", RedactedValue: providertest.OpenAIRedact(leaked),
		OwnerType: "user", OwnerEmail: "member@example.com"})
	// Another key at OpenAI, which must be left alone.
	other := fakes.openai.AddKey(providertest.OpenAIKey{Project: "proj_search", Name: "other", RedactedValue: providertest.OpenAIRedact(authzSecret()),
		OwnerType: "user", OwnerEmail: "member@example.com"})
	fakes.connectOpenAI(t, env, "acme openai")
	b := newBrowser(t, env.HTTP.URL, 3*time.Minute)
	f := &leakFlow{b: b, t: t, leaked: leaked, keyPage: "/keys/" + k.ID, fakes: fakes}

	b.signIn("member2@example.com", "Member2 (member)")
	f.report("a CI log")
	// The reporter may not act on it: no revoke button.
	if n := evalIn[int](b, `document.querySelectorAll('[data-testid="leak-provider-revoke"]').length`); n != 0 {
		b.fatalf("the reporter is offered Revoke at provider")
	}
	if st := b.press(`[data-testid="logout"]`); st != http.StatusOK {
		b.fatalf("sign out: status %d", st)
	}

	b.signIn("member@example.com", "Member (member)")
	f.openIncidentFromKey()
	// A new value whose masked hint differs from the leaked one's
	// (authzSecret's all end alike): a provider key whose hint fits two
	// versions counts for the newest, so it would not count for version 1.
	f.rotateNow("sk-proj-" + authzRand(20) + "Rt2b")
	f.revokeAtProvider("proj_search", atOpenAI)
	f.closed("reported rotated revoked closed")
	if _, ok := fakes.openai.Key(other); !ok {
		t.Error("another key at OpenAI was deleted")
	}

	if problems := b.consoleProblems(); len(problems) > 0 {
		t.Errorf("the pages logged %d console errors or warnings:\n%s", len(problems), strings.Join(problems, "\n"))
	}
	if strings.Contains(env.Logs.String(), leaked) {
		t.Error("the leaked value is in the server log")
	}
}
