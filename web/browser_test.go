package web_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/keyledger/keyledger"
)

// Browser tests drive a real headless Chromium through the pages, as a
// person would: they type into fields, pick from selects, press buttons and
// read what the page shows. They need Debian's chromium on PATH. A missing
// browser fails the test (CI installs it, and a silently skipped browser test
// hides regressions); KEYLEDGER_SKIP_BROWSER=1 skips them on purpose, and so
// does -short. KEYLEDGER_BROWSER_SHOTS=/some/dir saves a full-page PNG of every
// page the tests land on, to look at them.

// browser is one headless Chromium tab with a deadline for the whole test.
type browser struct {
	t   *testing.T
	ctx context.Context
	url string // the app's base URL

	mu      sync.Mutex
	console []string // errors and warnings the pages logged (CSP violations land here)

	shots int // pages saved to KEYLEDGER_BROWSER_SHOTS so far
}

// chromiumPath finds the browser or fails the test saying how to install it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("browser test skipped with -short")
	}
	if os.Getenv("KEYLEDGER_SKIP_BROWSER") == "1" {
		t.Skip("browser test skipped: KEYLEDGER_SKIP_BROWSER=1")
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is not installed: run `apt-get install -y chromium` (Debian package, /usr/bin/chromium), " +
		"or set KEYLEDGER_SKIP_BROWSER=1 to skip the browser tests on purpose")
	return ""
}

// newBrowser starts headless Chromium with a fresh profile. The browser and
// everything it does ends after timeout or when the test ends.
func newBrowser(t *testing.T, baseURL string, timeout time.Duration) *browser {
	t.Helper()
	execPath := chromiumPath(t)
	dir, err := os.MkdirTemp("", "keyledger-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Chromium's child processes can still write into the profile for
		// a moment after the browser stops: retry.
		for range 50 {
			if err := os.RemoveAll(dir); err == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(dir),
		chromedp.WindowSize(1280, 800),
	)
	// The deadline bounds the browser's life: a hung page fails the test
	// instead of hanging it.
	deadline, cancelDeadline := context.WithTimeout(context.Background(), timeout)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(deadline, opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelDeadline()
	})
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium (%s): %v", execPath, err)
	}
	t.Logf("Chromium started in %v", time.Since(start).Round(time.Millisecond))
	b := &browser{t: t, ctx: ctx, url: baseURL}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleException || m.Type == chromedp.ConsoleWarning {
				b.mu.Lock()
				b.console = append(b.console, fmt.Sprintf("%s %s: %s", m.Type, m.URL, m.Text))
				b.mu.Unlock()
			}
		}
	}()
	return b
}

// do runs actions and fails the test on error, naming the step.
func (b *browser) do(step string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.fatalf("%s: %v", step, err)
	}
}

// text is what a person reads in the element (its rendered innerText).
func (b *browser) text(sel string) string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Text(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.fatalf("read %s: %v", sel, err)
	}
	return s
}

// evalIn evaluates JavaScript in the page and decodes the result.
func evalIn[T any](b *browser, expr string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// navigate opens a path and returns the document's HTTP status.
func (b *browser) navigate(path string) int64 {
	b.t.Helper()
	resp, err := chromedp.Run(b.ctx, chromedp.NavigateResponse(b.url+path))
	if err != nil {
		b.fatalf("open %s: %v", path, err)
	}
	b.loaded()
	return resp.Status
}

// press clicks something that loads a new page (a submit button or a link)
// and waits for it; it returns the new document's HTTP status.
func (b *browser) press(sel string) int64 {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		b.fatalf("click %s: %v", sel, err)
	}
	b.loaded()
	return resp.Status
}

// templLeak finds a templ component call that was rendered as text: an
// "@name(" inside a line of text is not a call, and people see it verbatim.
var templLeak = regexp.MustCompile(`@[A-Za-z_]\w*\(`)

// loaded checks every page the browser lands on, and saves it as a PNG
// when KEYLEDGER_BROWSER_SHOTS names a folder (to look at the pages).
func (b *browser) loaded() {
	b.t.Helper()
	body := evalIn[string](b, `document.body ? document.body.innerText : ""`)
	if m := templLeak.FindAllString(body, -1); m != nil {
		b.t.Errorf("%s shows template source as text: %q (put each @component call on a line of its own in the .templ file)", b.path(), m)
	}
	dir := os.Getenv("KEYLEDGER_BROWSER_SHOTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.fatalf("screenshot: %v", err)
	}
	b.shots++
	name := strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(b.path()), "-"), "-")
	file := filepath.Join(dir, fmt.Sprintf("%s-%02d-%s.png", b.t.Name(), b.shots, name))
	if err := os.WriteFile(file, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// path is the current page's path.
func (b *browser) path() string {
	b.t.Helper()
	loc, err := chromedp.Run(b.ctx, chromedp.Location())
	if err != nil {
		b.fatalf("location: %v", err)
	}
	return strings.TrimPrefix(loc, b.url)
}

// fatalf fails the test with the page it was on, shortened, to show why.
func (b *browser) fatalf(format string, args ...any) {
	b.t.Helper()
	msg := fmt.Sprintf(format, args...)
	if b.ctx.Err() == nil {
		ctx, cancel := context.WithTimeout(b.ctx, 2*time.Second)
		defer cancel()
		if loc, err := chromedp.Run(ctx, chromedp.Location()); err == nil {
			msg += "\npage: " + loc
		}
		if body, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`)); err == nil {
			if len(body) > 1500 {
				body = body[:1500] + "…"
			}
			msg += "\n--- page text ---\n" + body
		}
	}
	b.t.Fatal(msg)
}

// consoleProblems returns the errors and warnings pages logged so far.
func (b *browser) consoleProblems() []string {
	// Console messages arrive asynchronously; give the last ones a moment.
	time.Sleep(100 * time.Millisecond)
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.console...)
}

// signIn fills the sign-in form as a person would and checks who is signed in.
func (b *browser) signIn(email, wantWho string) {
	b.t.Helper()
	if st := b.navigate("/login"); st != http.StatusOK {
		b.fatalf("GET /login: status %d", st)
	}
	b.do("fill the sign-in form",
		chromedp.SendKeys(chromedp.ID("email"), email, chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.ID("password"), Password, chromedp.NodeVisible),
	)
	if st := b.press(`[data-testid="login-submit"]`); st != http.StatusOK {
		b.fatalf("sign in as %s: status %d", email, st)
	}
	if p := b.path(); p != "/keys" {
		b.fatalf("after sign-in the browser is at %s, want /keys", p)
	}
	if who := b.text(`[data-testid="whoami"]`); who != wantWho {
		b.fatalf("whoami shows %q, want %q", who, wantWho)
	}
	if h1 := b.text("main h1"); h1 != "Keys" {
		b.fatalf("keys page heading %q", h1)
	}
}

// keyForm is what a person types into "Register a key".
type keyForm struct {
	name, project, environment, owner, value string
}

// registerKey opens "Register a key" from the navigation, fills the form and
// submits it; it checks the key page that follows.
func (b *browser) registerKey(f keyForm) {
	b.t.Helper()
	if st := b.press(`nav.site a[href="/keys/new"]`); st != http.StatusOK {
		b.fatalf("open Register a key: status %d", st)
	}
	if h1 := b.text("main h1"); h1 != "Register a key" {
		b.fatalf("register page heading %q", h1)
	}
	b.do("fill the register form",
		chromedp.SendKeys(chromedp.ID("name"), f.name, chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.ID("project"), f.project, chromedp.NodeVisible),
		chromedp.SetValue(chromedp.ID("environment"), f.environment, chromedp.NodeVisible),
		chromedp.SetValue(chromedp.ID("owner"), f.owner, chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.ID("value"), f.value, chromedp.NodeVisible),
	)
	// The selects must hold what was picked (a SetValue on a value that has
	// no option leaves the select empty).
	for id, want := range map[string]string{"environment": f.environment, "owner": f.owner} {
		got, err := chromedp.Run(b.ctx, chromedp.Value(chromedp.ID(id)))
		if err != nil || got != want {
			b.fatalf("select #%s = %q (%v), want %q", id, got, err, want)
		}
	}
	// Post/redirect/get: the browser follows the 303 to the new key's page.
	if st := b.press(`[data-testid="register-submit"]`); st != http.StatusOK {
		b.fatalf("register %s: status %d", f.name, st)
	}
	if p := b.path(); !registeredLocation.MatchString(p) {
		b.fatalf("after registering the browser is at %s, want /keys/{id}?registered=1", p)
	}
	if got := b.text(`[data-testid="key-name"]`); got != f.name {
		b.fatalf("key page shows name %q, want %q", got, f.name)
	}
	if flash := b.text(".flash.ok"); !strings.HasPrefix(flash, "Registered.") {
		b.fatalf("flash after register: %q", flash)
	}
	// The masked hint, and nowhere the value.
	if hint, want := b.text(`[data-testid="key-hint"]`), keyledger.MaskedHint(f.value); hint != want {
		b.fatalf("key page hint %q, want %q", hint, want)
	}
	if html := evalIn[string](b, `document.documentElement.outerHTML`); strings.Contains(html, f.value) {
		b.fatalf("the key page after registering contains the value")
	}
}

func TestBrowserKeyFlow(t *testing.T) {
	t.Parallel()
	chromiumPath(t) // skip or fail before paying for the database
	start := time.Now()
	env := newEnv(t)
	b := newBrowser(t, env.HTTP.URL, 60*time.Second)

	// Sign in.
	b.signIn("lead@example.com", "Lead (lead)")
	// Pico's stylesheet loaded despite the CSP: the container is
	// width-limited (unstyled, its max-width is "none").
	if mw := evalIn[string](b, `getComputedStyle(document.querySelector("main.container")).maxWidth`); mw == "none" || mw == "" {
		t.Fatalf("main.container max-width = %q: Pico CSS did not load", mw)
	}

	// Register a development key owned by someone else.
	const value = "sk-proj-BrowserTestVALUEq7Zr2mK9xW4pL8nV3bT6yH1cJ5dF0gA"
	b.registerKey(keyForm{name: "OpenAI dev", project: "checkout", environment: "development", owner: "member@example.com", value: value})
	if owner := b.text("dl.meta dd"); !strings.Contains(owner, "Member <member@example.com>") {
		t.Fatalf("owner on the key page: %q", owner)
	}

	// Reveal it with a reason.
	const reason = "browser test: local dev of checkout"
	b.do("type a reason", chromedp.SendKeys(chromedp.ID("reason"), reason, chromedp.NodeVisible))
	if st := b.press(`[data-testid="reveal-submit"]`); st != http.StatusOK {
		b.fatalf("reveal: status %d", st)
	}
	if got := b.text(`[data-testid="secret-value"]`); got != value {
		b.fatalf("secret-value shows %q, want the registered value %q", got, value)
	}
	if got, want := b.text(`[data-testid="paste-bash"]`), "export OPENAI_API_KEY='"+value+"'"; got != want {
		b.fatalf("paste-bash shows %q, want %q", got, want)
	}
	// app.js ran under the CSP: with a clipboard it un-hides the copy buttons.
	if hidden := evalIn[bool](b, `!!navigator.clipboard && document.querySelector("button.copy").hidden`); hidden {
		t.Error("the Copy buttons stay hidden although the clipboard API exists: app.js did not run")
	}

	// Back to the key page: the reveal is listed with the reason.
	if st := b.press(`main > p > a[href^="/keys/"]`); st != http.StatusOK {
		b.fatalf("back to the key page: status %d", st)
	}
	if h2 := b.text(`[data-testid="reveals"]`); !strings.Contains(h2, reason) || !strings.Contains(h2, "lead@example.com") {
		b.fatalf("'Who has seen this key' lacks the reveal: %q", h2)
	}
	if section := evalIn[string](b, `[...document.querySelectorAll("main h2")].map(h => h.textContent).join("|")`); !strings.Contains(section, "Who has seen this key") {
		b.fatalf("key page sections: %q", section)
	}
	if rows := evalIn[int](b, `document.querySelectorAll('[data-testid="reveal-row"]').length`); rows != 1 {
		b.fatalf("%d reveal rows, want 1", rows)
	}
	if html := evalIn[string](b, `document.documentElement.outerHTML`); strings.Contains(html, value) {
		b.fatalf("the key page after the reveal contains the value")
	}

	// Rotate it: paste a new value; version 1 stays for its grace period.
	keyPage := b.path()
	if st := b.press(`[data-testid="rotate"]`); st != http.StatusOK {
		b.fatalf("open Rotate…: status %d", st)
	}
	if h1 := b.text("main h1"); h1 != "Rotate OpenAI dev" {
		b.fatalf("rotate page heading %q", h1)
	}
	if g, err := chromedp.Run(b.ctx, chromedp.Value(chromedp.ID("grace_days"))); err != nil || g != "7" {
		b.fatalf("grace period field %q (%v), want 7", g, err)
	}
	const rotated = "sk-proj-BrowserTestROTATEDw3Xk9Lm2Qp7Rt5Yv8Zn1Bc4Df6Gh0Jq"
	b.do("paste the new value", chromedp.SendKeys(chromedp.ID("value"), rotated, chromedp.NodeVisible))
	graceFrom := time.Now().AddDate(0, 0, 7).UTC().Format("2006-01-02")
	if st := b.press(`[data-testid="rotate-submit"]`); st != http.StatusOK {
		b.fatalf("rotate: status %d", st)
	}
	graceTo := time.Now().AddDate(0, 0, 7).UTC().Format("2006-01-02")
	if p := b.path(); p != keyPage+"?rotated=2" {
		b.fatalf("after rotating the browser is at %s, want %s?rotated=2", p, keyPage)
	}
	if flash := b.text(".flash.ok"); !strings.HasPrefix(flash, "Rotated: version 2 is now current.") {
		b.fatalf("flash after rotating: %q", flash)
	}
	versions := evalIn[string](b, `[...document.querySelectorAll('[data-testid="version-row"]')].map(r => r.cells[0].innerText.trim() + "=" + r.querySelector('[data-testid="version-state"]').innerText.trim()).join("|")`)
	if versions != "2=current|1=superseded, destroyed on "+graceFrom && versions != "2=current|1=superseded, destroyed on "+graceTo {
		b.fatalf("versions table %q, want version 2 current and version 1 superseded until %s", versions, graceTo)
	}
	if hint := b.text(`[data-testid="key-hint"]`); hint != keyledger.MaskedHint(rotated) {
		b.fatalf("key hint after rotating %q, want %q", hint, keyledger.MaskedHint(rotated))
	}
	if html := evalIn[string](b, `document.documentElement.outerHTML`); strings.Contains(html, value) || strings.Contains(html, rotated) {
		b.fatalf("the key page after rotating contains a value")
	}
	b.do("type a reason", chromedp.SendKeys(chromedp.ID("reason"), "browser test: after rotation", chromedp.NodeVisible))
	if st := b.press(`[data-testid="reveal-submit"]`); st != http.StatusOK {
		b.fatalf("reveal after rotating: status %d", st)
	}
	if got := b.text(`[data-testid="secret-value"]`); got != rotated {
		b.fatalf("after rotating the reveal shows %q, want the new value", got)
	}
	if st := b.press(`main > p > a[href^="/keys/"]`); st != http.StatusOK {
		b.fatalf("back to the key page: status %d", st)
	}

	// A production key owned by member: member2 may see it but not reveal it.
	const prodValue = "sk-proj-BrowserTestPRODr8Ys3nL0vX5qM2kW7jD4hG9cB1tF6zE"
	b.registerKey(keyForm{name: "OpenAI prod", project: "checkout", environment: "production", owner: "member@example.com", value: prodValue})

	// Sign out with the button.
	if st := b.press(`[data-testid="logout"]`); st != http.StatusOK {
		b.fatalf("sign out: status %d", st)
	}
	if p := b.path(); p != "/login" {
		b.fatalf("after sign-out the browser is at %s, want /login", p)
	}
	if st := b.navigate("/keys"); st != http.StatusOK || !strings.HasPrefix(b.path(), "/login") {
		b.fatalf("after sign-out /keys gave %d at %s, want the sign-in page", st, b.path())
	}

	// member2 finds the production key in the list and opens it.
	b.signIn("member2@example.com", "Member2 (member)")
	if rows := evalIn[int](b, `document.querySelectorAll('[data-testid="key-cell"]').length`); rows != 2 {
		b.fatalf("member2 sees %d keys, want 2", rows)
	}
	// The row of OpenAI prod, then its production cell's link.
	link, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](
		`[...document.querySelectorAll('[data-testid="key-row"]')].find(r => r.querySelector('.key-name').textContent.trim() === "OpenAI prod").querySelector('[data-environment="production"] a.key-link').getAttribute("href")`))
	if err != nil {
		b.fatalf("find OpenAI prod in the key list: %v", err)
	}
	if st := b.press(`[data-testid="key-row"] a[href="` + link + `"]`); st != http.StatusOK {
		b.fatalf("open OpenAI prod: status %d", st)
	}
	if got := b.text(`[data-testid="key-name"]`); got != "OpenAI prod" {
		b.fatalf("member2 is on %q", got)
	}
	if refused := b.text(`[data-testid="reveal-refused"]`); !strings.Contains(refused, "only the key's owner, leads and admins") {
		b.fatalf("member2 sees %q, want the production policy refusal", refused)
	}
	if n := evalIn[int](b, `document.querySelectorAll('[data-testid="reveal-submit"], #reason').length`); n != 0 {
		b.fatalf("member2 has a reveal form on a production key")
	}
	if n := evalIn[int](b, `document.querySelectorAll('[data-testid="archive"]').length`); n != 0 {
		b.fatalf("member2 can archive another member's key")
	}

	if problems := b.consoleProblems(); len(problems) > 0 {
		t.Errorf("the pages logged %d console errors or warnings:\n%s", len(problems), strings.Join(problems, "\n"))
	}
	if logs := env.Logs.String(); strings.Contains(logs, value) || strings.Contains(logs, prodValue) || strings.Contains(logs, rotated) {
		t.Error("a value appears in the server log")
	}
	t.Logf("browser key flow took %v", time.Since(start).Round(time.Millisecond))
}

// screenshotKey is one seeded key for the screenshot.
type screenshotKey struct {
	name, project, env, owner, value, scope string
	rotateIn                                time.Duration // rotate_by from now; 0: the environment's default
	verified                                string        // "", "ok" or a failure word
}

// TestBrowserScreenshot renders the main pages with realistic data at
// desktop (1280 px) and phone (390 px) width into the folder named by
// KEYLEDGER_SCREENSHOTS (docs/screenshots, `make screenshot`), and the
// key list at desktop width into KEYLEDGER_SCREENSHOT when that is set (the
// README shows docs/screenshots/keys-desktop.png; make screenshot no longer
// sets it).
func TestBrowserScreenshot(t *testing.T) {
	dir, single := os.Getenv("KEYLEDGER_SCREENSHOTS"), os.Getenv("KEYLEDGER_SCREENSHOT")
	if dir == "" && single == "" {
		t.Skip("set KEYLEDGER_SCREENSHOTS=/some/dir (and KEYLEDGER_SCREENSHOT=/path/to/screenshot.png) to render the pages")
	}
	chromiumPath(t)
	env := newEnv(t)
	ctx := context.Background()
	day := 24 * time.Hour
	// Made-up values in each provider's shape; none is a real key.
	keys := []screenshotKey{
		{"checkout-api OpenAI", "checkout", "production", "lead", "sk-proj-Qm3vT8xK2pL9nR4wZ7yB1cF6hJ0dG5sA", "Restricted: models.read, chat", 52 * day, "ok"},
		{"checkout-api OpenAI", "checkout", "staging", "member", "sk-proj-Wd8nB3kR6tY1vM9qX4zL7pC2hF5jG0sE", "All", 0, "ok"},
		{"checkout-api OpenAI", "checkout", "development", "member", "sk-proj-Hn5cV0bX7mZ2kQ9wT4rY8pL1jD6fG3sA", "All", 0, ""},
		{"search-ranker Anthropic", "search", "production", "admin", "sk-ant-api03-Pz4Lk9Qw2Xv7Nb1Rt6Ym3Jc8Hd5Gf0Sa", "Workspace: search", 9 * day, "ok"},
		{"search-ranker Anthropic", "search", "development", "member2", "sk-ant-api03-Kr7Tm2Vn9Bx4Qz1Wp6Ly3Hc8Jd5Fg0Se", "Workspace: search-dev", 0, ""},
		{"billing Stripe", "billing", "production", "lead", "rk_live_51NcXy7Qm2Kp9Lr4Tw8Vz1Bn6Hd3Jf0Sg5", "Restricted: charges, refunds", 120 * day, "ok"},
		{"billing Stripe (test mode)", "billing", "staging", "member", "sk_test_51NcXy7Qm2Kp9Lr4Tw8Vz1Bn6Hd3Jf0Sg", "All", -3 * day, "invalid"},
		{"billing Stripe (test mode)", "billing", "development", "member2", "sk_test_51MbWx6Pl1Jo8Kq3Sv7Uy0Am5Gc2Ie9Rf", "All", 0, "ok"},
		{"release-bot GitHub", "ci", "production", "admin", "ghp_R4tY8uI2oP6aS0dF3gH7jK1lZ5xC9vB2nM4q", "repo, workflow", -12 * day, "ok"},
		{"docs-sync GitHub", "docs", "development", "member", "ghp_L2kJ6hG0fD4sA8pO3iU7yT1rE5wQ9zX6cV3b", "public_repo", 0, ""},
		{"backups S3 AWS", "billing", "production", "lead", "AKIAQ7XM2KP9LR4TW8VZ", "s3:PutObject on backups-prod", 4 * day, "ok"},
		{"search-index AWS", "search", "staging", "member2", "AKIAR3NB8JD5FG0SH6YT", "es:ESHttp* on search-staging", 0, ""},
	}
	pool := env.Store.Pool()
	var ids []string
	for _, k := range keys {
		owner := env.Users[k.owner]
		res, err := env.Store.CreateKey(ctx, keyledger.Actor{User: owner}, keyledger.KeyInput{
			Name: k.name, Project: k.project, Environment: k.env, OwnerEmail: owner.Email, Value: k.value, Scope: k.scope})
		if err != nil {
			t.Fatalf("seed %s/%s: %v", k.name, k.env, err)
		}
		ids = append(ids, res.Key.ID)
		// Rotation and verification states that only time would produce.
		if k.rotateIn != 0 {
			if _, err := pool.Exec(ctx, `UPDATE keys SET rotate_by = now() + $2::interval WHERE id = $1`,
				res.Key.ID, fmt.Sprintf("%d seconds", int(k.rotateIn.Seconds()))); err != nil {
				t.Fatal(err)
			}
		}
		if k.verified != "" {
			if _, err := pool.Exec(ctx, `UPDATE keys SET last_verified_at = now() - interval '2 days', verify_result = $2 WHERE id = $1`,
				res.Key.ID, k.verified); err != nil {
				t.Fatal(err)
			}
		}
	}

	// member2 saw two keys and is leaving: the offboarding checklist.
	for _, i := range []int{4, 7} {
		if _, err := env.Store.Reveal(ctx, keyledger.Actor{User: env.Users["member2"]}, ids[i], "local development"); err != nil {
			t.Fatal(err)
		}
	}
	oid, err := env.Store.StartOffboarding(ctx, actorOf(env, "lead"), "member2@example.com", false, "last day Friday")
	if err != nil {
		t.Fatal(err)
	}

	b := newBrowser(t, env.HTTP.URL, 120*time.Second)
	b.do("set the viewport", chromedp.EmulateViewport(1280, 800))
	b.signIn("lead@example.com", "Lead (lead)")
	if rows := evalIn[int](b, `document.querySelectorAll('[data-testid="key-cell"]').length`); rows != len(keys) {
		b.fatalf("the key list shows %d keys, want %d", rows, len(keys))
	}
	shoot := func(name string) {
		t.Helper()
		for _, w := range []struct {
			suffix string
			view   chromedp.Action[chromedp.Void]
		}{
			{"desktop", chromedp.EmulateViewport(1280, 800)},
			// Twice the pixels, as a phone shows them.
			{"phone", chromedp.EmulateViewport(390, 844, chromedp.EmulatePortrait, chromedp.EmulateMobile, chromedp.EmulateScale(2))},
		} {
			b.do("set the viewport", w.view)
			// Web fonts and images are local; wait until they are in.
			b.do("wait for fonts", chromedp.Evaluate[chromedp.Void](`document.fonts.ready.then(() => true)`, chromedp.EvalAwaitPromise))
			png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
			if err != nil {
				b.fatalf("screenshot: %v", err)
			}
			if dir != "" {
				out := filepath.Join(dir, name+"-"+w.suffix+".png")
				if err := os.WriteFile(out, png, 0o644); err != nil {
					t.Fatal(err)
				}
				t.Logf("wrote %s (%d bytes)", out, len(png))
			}
			if single != "" && name == "keys" && w.suffix == "desktop" {
				if err := os.WriteFile(single, png, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		b.do("set the viewport", chromedp.EmulateViewport(1280, 800))
	}
	if dir != "" {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	shoot("keys")
	if dir != "" {
		for _, pg := range []struct{ name, path string }{
			{"key", "/keys/" + ids[0]},
			{"rotation", "/rotation"},
			{"dashboard", "/dashboard"},
			{"offboarding", fmt.Sprintf("/offboarding/%d", oid)},
			{"audit", "/audit"},
		} {
			if st := b.navigate(pg.path); st != http.StatusOK {
				b.fatalf("GET %s: status %d", pg.path, st)
			}
			shoot(pg.name)
		}
		// The reveal page, with a made-up value.
		if st := b.navigate("/keys/" + ids[1]); st != http.StatusOK {
			b.fatalf("open the staging key: status %d", st)
		}
		b.do("type a reason", chromedp.SendKeys(chromedp.ID("reason"), "roll out to staging", chromedp.NodeVisible))
		if st := b.press(`[data-testid="reveal-submit"]`); st != http.StatusOK {
			b.fatalf("reveal: status %d", st)
		}
		shoot("reveal")
	}
	if problems := b.consoleProblems(); len(problems) > 0 {
		t.Errorf("the pages logged console errors or warnings:\n%s", strings.Join(problems, "\n"))
	}
}

// TestBrowserOffboarding runs an offboarding from start to the completed
// record through the pages: start it with a freeze from the person's page,
// reassign their key, rotate a key they saw from the key page, waive
// another with a reason, revoke, deactivate as an admin and complete.
func TestBrowserOffboarding(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	start := time.Now()
	env := newEnv(t)
	ctx := context.Background()
	owned := env.createKey("member", "development", "member's OpenAI", authzSecret())
	rotated := env.createKey("member2", "development", "shared OpenAI", authzSecret())
	waived := env.createKey("member2", "development", "old Stripe test", authzSecret())
	for _, k := range []*keyledger.Key{rotated, waived} {
		if _, err := env.Store.Reveal(ctx, keyledger.Actor{User: env.Users["member"]}, k.ID, "local dev"); err != nil {
			t.Fatal(err)
		}
	}
	items := func(b *browser) string {
		return evalIn[string](b, `[...document.querySelectorAll('[data-testid="item-row"]')].map(r => r.dataset.kind + "=" + r.dataset.status).sort().join(" ")`)
	}
	row := func(keyID string) string { return `tr[data-testid="item-row"][data-key="` + keyID + `"]` }

	b := newBrowser(t, env.HTTP.URL, 90*time.Second)
	b.signIn("lead@example.com", "Lead (lead)")

	// Ownership → member's page → Start offboarding.
	if st := b.press(`nav.site a[href="/dashboard"]`); st != http.StatusOK {
		b.fatalf("open Ownership: status %d", st)
	}
	if st := b.press(fmt.Sprintf(`[data-testid="owner-link"][href="/users/%d"]`, env.Users["member"].ID)); st != http.StatusOK {
		b.fatalf("open member's page: status %d", st)
	}
	if got := b.text(`[data-testid="person-name"]`); got != "Member" {
		b.fatalf("person page for %q", got)
	}
	if n := evalIn[int](b, `document.querySelectorAll('[data-testid="still-current"]').length`); n != 2 {
		b.fatalf("%d still-current badges on member's page, want 2", n)
	}
	if st := b.press(`[data-testid="start-offboarding"]`); st != http.StatusOK {
		b.fatalf("open Start offboarding: status %d", st)
	}
	if v, err := chromedp.Run(b.ctx, chromedp.Value(chromedp.ID("user"))); err != nil || v != "member@example.com" {
		b.fatalf("the person select holds %q (%v), want member@example.com", v, err)
	}
	b.do("cut access and add a note",
		chromedp.Click(chromedp.ID("freeze"), chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.ID("note"), "last day Friday", chromedp.NodeVisible),
	)
	if st := b.press(`[data-testid="start-submit"]`); st != http.StatusOK {
		b.fatalf("start: status %d", st)
	}
	checklist := strings.TrimSuffix(b.path(), "?started=1")
	if !regexp.MustCompile(`^/offboarding/\d+$`).MatchString(checklist) {
		b.fatalf("after starting the browser is at %s", b.path())
	}
	if flash := b.text(".flash.ok"); !strings.HasPrefix(flash, "Offboarding started.") {
		b.fatalf("flash after starting: %q", flash)
	}
	if got := items(b); got != "deactivate=open reassign=open revoke=done rotate=open rotate=open" {
		b.fatalf("checklist after the start: %s", got)
	}
	if st := b.text(`[data-testid="person-status"]`); st != "frozen" {
		b.fatalf("the person's status shows %q, want frozen", st)
	}

	// Reassign all their keys to member2.
	b.do("choose the new owner", chromedp.SetValue(chromedp.ID("owner"), "member2@example.com", chromedp.NodeVisible))
	if st := b.press(`[data-testid="reassign-submit"]`); st != http.StatusOK {
		b.fatalf("reassign: status %d", st)
	}
	if flash := b.text(".flash.ok"); !strings.HasPrefix(flash, "Reassigned 1 key.") {
		b.fatalf("flash after reassigning: %q", flash)
	}
	if res := b.text(row(owned.ID) + ` [data-testid="item-resolution"]`); res != "now owned by member2@example.com" {
		b.fatalf("reassign item resolution %q", res)
	}

	// Rotate the key they saw, from the checklist's link to its rotate page.
	if st := b.press(row(rotated.ID) + ` [data-testid="rotate-link"]`); st != http.StatusOK {
		b.fatalf("open the rotate page: status %d", st)
	}
	if h1 := b.text("main h1"); h1 != "Rotate shared OpenAI" {
		b.fatalf("rotate page heading %q", h1)
	}
	b.do("paste the new value", chromedp.SendKeys(chromedp.ID("value"), authzSecret(), chromedp.NodeVisible))
	if st := b.press(`[data-testid="rotate-submit"]`); st != http.StatusOK {
		b.fatalf("rotate: status %d", st)
	}
	if flash := b.text(".flash.ok"); !strings.HasPrefix(flash, "Rotated: version 2") {
		b.fatalf("flash after rotating: %q", flash)
	}
	if st := b.press(`nav.site a[href="/offboarding"]`); st != http.StatusOK {
		b.fatalf("open Offboarding: status %d", st)
	}
	if st := b.press(`[data-testid="open-offboardings"] a[href="` + checklist + `"]`); st != http.StatusOK {
		b.fatalf("open the checklist from the list: status %d", st)
	}
	if res := b.text(row(rotated.ID) + ` [data-testid="item-resolution"]`); res != "rotated to version 2" {
		b.fatalf("rotate item resolution %q", res)
	}

	// Waive the other one with a reason.
	b.do("open the waive form", chromedp.Click(chromedp.CSS(row(waived.ID)+` [data-testid="waive-open"]`), chromedp.NodeVisible))
	b.do("give a reason", chromedp.SendKeys(chromedp.CSS(row(waived.ID)+` input[name="reason"]`), "test-mode key, deleted at Stripe", chromedp.NodeVisible))
	if st := b.press(row(waived.ID) + ` [data-testid="waive-submit"]`); st != http.StatusOK {
		b.fatalf("waive: status %d", st)
	}
	if res := b.text(row(waived.ID) + ` [data-testid="item-resolution"]`); res != "waived: test-mode key, deleted at Stripe" {
		b.fatalf("waived item resolution %q", res)
	}

	// Revoke (the freeze signed them out already; again is harmless).
	if st := b.press(`[data-testid="revoke-submit"]`); st != http.StatusOK {
		b.fatalf("revoke: status %d", st)
	}
	if flash := b.text(".flash.ok"); flash != "Sessions and tokens revoked." {
		b.fatalf("flash after revoking: %q", flash)
	}
	// A lead cannot deactivate: the button is disabled and says why.
	if disabled := evalIn[bool](b, `document.querySelector('[data-testid="deactivate-submit"]').disabled`); !disabled {
		b.fatalf("the lead's deactivate button is enabled")
	}
	if ask := b.text(`[data-testid="ask-admin"]`); !strings.Contains(ask, "ask an admin") {
		b.fatalf("ask-admin text %q", ask)
	}

	// An admin deactivates the account.
	if st := b.press(`[data-testid="logout"]`); st != http.StatusOK {
		b.fatalf("sign out: status %d", st)
	}
	b.signIn("admin@example.com", "Admin (admin)")
	if st := b.navigate(checklist); st != http.StatusOK {
		b.fatalf("open the checklist as admin: status %d", st)
	}
	if st := b.press(`[data-testid="deactivate-submit"]`); st != http.StatusOK {
		b.fatalf("deactivate: status %d", st)
	}
	if flash := b.text(".flash.ok"); flash != "Account deactivated." {
		b.fatalf("flash after deactivating: %q", flash)
	}
	if got := items(b); got != "deactivate=done reassign=done revoke=done rotate=done rotate=waived" {
		b.fatalf("checklist before completing: %s", got)
	}
	if p := b.text(`[data-testid="progress-text"]`); !strings.HasPrefix(p, "5 of 5 items resolved (100%)") {
		b.fatalf("progress %q", p)
	}

	// Complete: the page becomes the record.
	if st := b.press(`[data-testid="complete"]`); st != http.StatusOK {
		b.fatalf("complete: status %d", st)
	}
	if state := b.text(`[data-testid="offboarding-state"]`); state != "Completed" {
		b.fatalf("record state %q, want Completed", state)
	}
	if h1 := b.text("main h1"); h1 != "Offboarding record: Member" {
		b.fatalf("record heading %q", h1)
	}
	if done := b.text(`[data-testid="completed"]`); !strings.HasSuffix(done, "by admin@example.com") {
		b.fatalf("completed line %q", done)
	}
	if n := evalIn[int](b, `document.querySelectorAll('main form').length`); n != 0 {
		b.fatalf("the record has %d forms", n)
	}
	whoWhen := evalIn[string](b, `[...document.querySelectorAll('[data-testid="item-row"]')].filter(r => !r.querySelector('[data-testid="item-by"]').innerText.trim() || !r.querySelector('[data-testid="item-when"]').innerText.trim()).map(r => r.dataset.kind).join(",")`)
	if whoWhen != "" {
		b.fatalf("record items without by/when: %s", whoWhen)
	}
	// The print style hides the navigation.
	printHides := evalIn[bool](b, `[...document.styleSheets].some(s => { try { return [...s.cssRules].some(r => r.media && r.media.mediaText === "print" && r.cssText.includes("nav.site")) } catch (e) { return false } })`)
	if !printHides {
		b.fatalf("no print style hides the navigation")
	}

	if problems := b.consoleProblems(); len(problems) > 0 {
		t.Errorf("the pages logged %d console errors or warnings:\n%s", len(problems), strings.Join(problems, "\n"))
	}
	t.Logf("browser offboarding took %v", time.Since(start).Round(time.Millisecond))
}
