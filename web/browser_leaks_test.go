package web_test

import (
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// leakFlow drives the incident flow in Chromium, one named step at a
// time, so that a step can be added between two others: revoking at a
// fake provider (POST /keys/{id}/provider-revoke, the provider-actions
// branch) goes in as one more method beside revokeInKeyledger.
type leakFlow struct {
	b        *browser
	t        *testing.T
	leaked   string // the reported value: no page may ever show it
	incident string // /leaks/N
	keyPage  string
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
	// HOOK(provider-revoke): with the provider-actions branch merged, a
	// key linked to a fake provider's key adds f.revokeAtProvider() here
	// (press [data-testid="leak-provider-revoke"], check the fake saw the
	// revocation) in place of, or before, revokeInKeyledger.
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
