package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
	"github.com/keyledger/keyledger"
)

// The accessibility test loads every page once per role and looks at it
// four ways (desktop 1280×800 and phone 390×844, light and dark): the page
// must fit the width without scrolling sideways, and axe-core (npm, the
// version pinned in web/testdata/axe) must find no violation. Changing the
// viewport and the emulated color scheme re-lays the page out without a
// reload, which keeps the page loads to one per page and role.

// axeDir holds package.json and package-lock.json for axe-core; CI runs
// `npm ci` there (.ci/run).
const axeDir = "testdata/axe"

// axeSource reads axe.min.js or fails saying how to install it.
func axeSource(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(axeDir, "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		t.Fatalf("axe-core is not installed (%v): run `npm ci --prefix web/testdata/axe`, "+
			"or set KEYLEDGER_SKIP_BROWSER=1 to skip the browser tests on purpose", err)
	}
	return string(src)
}

// viewMode is one way of looking at a page.
type viewMode struct {
	name          string
	width, height int64
	mobile        bool
	scheme        string // prefers-color-scheme
}

var viewModes = []viewMode{
	{"desktop light", 1280, 800, false, "light"},
	{"desktop dark", 1280, 800, false, "dark"},
	{"phone light", 390, 844, true, "light"},
	{"phone dark", 390, 844, true, "dark"},
}

// setMode switches the tab's viewport and color scheme.
func (b *browser) setMode(m viewMode) {
	b.t.Helper()
	opts := []chromedp.EmulateViewportOption{chromedp.EmulatePortrait}
	if m.mobile {
		opts = append(opts, chromedp.EmulateMobile)
	}
	b.do("emulate "+m.name,
		chromedp.EmulateViewport(m.width, m.height, opts...),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
				// Reduced motion: Pico's colour transitions would otherwise
				// leave axe measuring a colour halfway to the new scheme.
				Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: m.scheme}, {Name: "prefers-reduced-motion", Value: "reduce"}},
			})
			return err
		}),
	)
}

// axeViolation is the part of axe's result a person needs to fix it.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	Nodes  []struct {
		Target  []any  `json:"target"`
		Summary string `json:"failureSummary"`
	} `json:"nodes"`
}

// axeRun runs axe's WCAG 2.0–2.2 A and AA rules and its best practices on
// the whole document. target-size (2.5.8, AA in WCAG 2.2) is off in axe
// by default: it is turned on by name.
const axeRun = `axe.run(document, {
	runOnly: {type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]},
	rules: {"target-size": {enabled: true}},
	resultTypes: ["violations"],
}).then(r => JSON.stringify(r.violations.map(v => ({
	id: v.id, impact: v.impact, help: v.help,
	nodes: v.nodes.slice(0, 5).map(n => ({target: n.target, failureSummary: n.failureSummary}))}))))`

// pageChecks are the checks axe does not make: the skip link's target and
// the error ids fields point at exist, and no field says aria-invalid="".
const pageChecks = `(() => {
	const out = [];
	const skip = document.querySelector("a.skip-link");
	if (!skip) out.push("no skip link");
	else if (!document.querySelector(skip.getAttribute("href"))) out.push("the skip link points at nothing");
	else if (document.querySelector("a[href], button, input, select, textarea, summary") !== skip) out.push("the skip link is not the first focusable element");
	for (const e of document.querySelectorAll("[aria-describedby]"))
		for (const id of e.getAttribute("aria-describedby").split(/\s+/))
			if (id && !document.getElementById(id)) out.push("#" + e.id + " aria-describedby=" + id + " which does not exist");
	for (const e of document.querySelectorAll("[aria-invalid]"))
		if (e.getAttribute("aria-invalid") !== "true") out.push("#" + e.id + ` + "` aria-invalid=\"${e.getAttribute(\"aria-invalid\")}\"`" + `);
	// 24 px targets (WCAG 2.5.8) for buttons and disclosure summaries,
	// measured directly: axe lets a small target pass when it stands apart.
	for (const e of document.querySelectorAll("button, summary, [role=button]")) {
		const r = e.getBoundingClientRect();
		if (e.checkVisibility() && r.width > 0 && (r.width < 24 || r.height < 24))
			out.push(e.tagName.toLowerCase() + " " + JSON.stringify(e.textContent.trim().slice(0, 30)) + " is " + Math.round(r.width) + "×" + Math.round(r.height) + " px, under 24 px");
	}
	return out;
})()`

// audit looks at the current page in every view mode.
func (b *browser) audit(label string) {
	b.t.Helper()
	for _, p := range evalIn[[]string](b, pageChecks) {
		b.t.Errorf("%s: %s", label, p)
	}
	for _, m := range viewModes {
		b.setMode(m)
		if w := evalIn[[]int](b, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] {
			wide := evalIn[string](b, `[...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1 && !(e.parentElement && e.parentElement.closest("[role=region]"))).slice(0, 6).map(e => e.tagName.toLowerCase() + (e.className ? "." + String(e.className).split(" ").join(".") : "") + (e.id ? "#" + e.id : "")).join(", ")`)
			b.t.Errorf("%s (%s): the page is %d px wide in a %d px viewport (too wide: %s)", label, m.name, w[0], w[1], wide)
		}
		raw, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](axeRun, chromedp.EvalAwaitPromise))
		if err != nil {
			b.fatalf("%s (%s): axe: %v", label, m.name, err)
		}
		var vs []axeViolation
		if err := json.Unmarshal([]byte(raw), &vs); err != nil {
			b.fatalf("%s: axe result: %v", label, err)
		}
		for _, v := range vs {
			var nodes []string
			for _, n := range v.Nodes {
				nodes = append(nodes, fmt.Sprintf("      %v: %s", n.Target, strings.ReplaceAll(n.Summary, "\n", " ")))
			}
			b.t.Errorf("%s (%s): axe %s (%s): %s\n%s", label, m.name, v.ID, v.Impact, v.Help, strings.Join(nodes, "\n"))
		}
	}
	b.setMode(viewModes[0])
}

// badSubmit opens a form, submits it as it is (empty or with a bad
// value typed first) and checks that focus lands on the error summary,
// whose links lead to fields marked invalid.
// A form-level error (a failed sign-in) is a message without links: want
// names the element that takes the focus (its data-testid).
func (b *browser) badSubmit(path, submit, want string, fill ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if st := b.navigate(path); st != http.StatusOK {
		b.fatalf("GET %s: status %d", path, st)
	}
	if len(fill) > 0 {
		b.do("fill "+path, fill...)
	}
	b.press(submit)
	// The focus moves when app.js runs (a deferred script), which can come
	// a moment after the load the press waited for: give it up to 2 s.
	var focus string
	for range 40 {
		focus = evalIn[string](b, `(() => { const a = document.activeElement; return a ? (a.dataset.testid || a.tagName.toLowerCase() + "#" + a.id) : "" })()`)
		if focus == want {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if focus != want {
		b.t.Errorf("after a bad submit of %s the focus is on %q, want %s", path, focus, want)
		return
	}
	bad := evalIn[[]string](b, `[...document.querySelectorAll('[data-testid="error-summary"] a')].filter(a => {
		const f = document.querySelector(a.getAttribute("href"));
		return !f || f.getAttribute("aria-invalid") !== "true";
	}).map(a => a.getAttribute("href"))`)
	if n := evalIn[int](b, `document.querySelectorAll('[data-testid="error-summary"] a').length`); want == "error-summary" && n == 0 {
		b.t.Errorf("the error summary of %s links to no field", path)
	}
	if len(bad) > 0 {
		b.t.Errorf("the error summary of %s links to %v, which are not invalid fields", path, bad)
	}
	b.audit(path + " after a bad submit")
}

// focusRing is the contrast between the focused element's outline and the
// page background, or a message when there is no solid outline of 2 px.
const focusRing = `(() => {
	const a = document.activeElement, cs = getComputedStyle(a);
	if (cs.outlineStyle === "none" || parseFloat(cs.outlineWidth) < 2) return "no outline of 2 px on " + a.tagName + ": " + cs.outlineStyle + " " + cs.outlineWidth;
	const rgb = c => c.match(/[\d.]+/g).slice(0, 3).map(Number);
	const lum = c => { const [r, g, b] = rgb(c).map(v => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4) }); return 0.2126 * r + 0.7152 * g + 0.0722 * b };
	let bg = "rgba(0, 0, 0, 0)";
	for (let e = document.body; e && /rgba\(0, 0, 0, 0\)|transparent/.test(bg); e = e.parentElement) bg = getComputedStyle(e).backgroundColor;
	if (/rgba\(0, 0, 0, 0\)/.test(bg)) bg = getComputedStyle(document.documentElement).backgroundColor;
	const [l1, l2] = [lum(cs.outlineColor), lum(bg)].sort((x, y) => y - x);
	return ((l1 + 0.05) / (l2 + 0.05)).toFixed(2);
})()`

// keyboardAndPhone checks, on a signed-in page, that the first Tab lands
// on the skip link with a focus ring of at least 3:1 in both schemes, and
// that on a phone the menu is collapsed until its summary is pressed.
func (b *browser) keyboardAndPhone(label string) {
	b.t.Helper()
	b.do("press Tab", chromedp.KeyEvent("\t"))
	if got := evalIn[string](b, `document.activeElement.className`); got != "skip-link" {
		b.t.Errorf("%s: the first Tab focuses %q, want the skip link", label, got)
	}
	for _, m := range []viewMode{viewModes[0], viewModes[1]} {
		b.setMode(m)
		ring := evalIn[string](b, focusRing)
		var ratio float64
		if _, err := fmt.Sscanf(ring, "%f", &ratio); err != nil || ratio < 3 {
			b.t.Errorf("%s (%s): focus ring: %s, want a contrast of at least 3:1", label, m.name, ring)
		}
	}
	b.setMode(viewModes[2])
	visible := `(() => { const a = document.querySelector('nav.site a[href="/rotation"]'); return !!a && a.checkVisibility() })()`
	if evalIn[bool](b, visible) {
		b.t.Errorf("%s (phone): the menu is open before it is pressed", label)
	}
	b.do("open the menu", chromedp.Click(chromedp.CSS(`nav.site details.menu > summary`), chromedp.NodeVisible))
	if !evalIn[bool](b, visible) {
		b.t.Errorf("%s (phone): the menu does not open", label)
	}
	if w := evalIn[[]int](b, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] {
		b.t.Errorf("%s (phone): with the menu open the page is %d px wide in %d px", label, w[0], w[1])
	}
	b.do("close the menu", chromedp.Click(chromedp.CSS(`nav.site details.menu > summary`), chromedp.NodeVisible))
	b.setMode(viewModes[0])
}

func TestBrowserAccessibility(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	axe := axeSource(t)
	start := time.Now()
	fakes := newProviderFakes(t)
	env := newEnv(t, fakes.option())
	ctx := context.Background()
	// The production and staging values end otherwise than the
	// development one: keys registered with the same hint would make the
	// development key's match at OpenAI ambiguous (matching runs at
	// registration too), and its page would offer no revoke there.
	devValue := authzSecret()
	prodValue, oldValue := "sk-proj-"+authzRand(20)+"Prd1", "sk-proj-"+authzRand(20)+"Stg2"
	dev := env.createKey("member", "development", "OpenAI dev", devValue)
	a11yProviders(t, env, fakes, devValue)
	// A provider connection with every inventory state on show.
	fakes.openai.Generate(2, 12)
	env.createKey("member", "development", "Matched at the provider", "sk-proj-Ab"+strings.Repeat("m", 30)+"0003")
	fakes.connectOpenAI(t, env, "Acme OpenAI")
	if _, err := env.Store.SyncAllProviderUsage(ctx, fakes.client); err != nil {
		t.Fatal(err)
	}
	prod := env.createKey("lead", "production", "OpenAI prod", prodValue)
	old := env.createKey("lead", "staging", "Stripe staging", oldValue)
	if _, err := env.Store.Reveal(ctx, keyledger.Actor{User: env.Users["member"]}, dev.ID, "local development of checkout"); err != nil {
		t.Fatal(err)
	}
	// Overdue, so the key page's overdue banner is audited too.
	if _, err := env.Pool.Exec(ctx, `UPDATE keys SET rotate_by = now() - interval '31 days' WHERE id = $1`, dev.ID); err != nil {
		t.Fatal(err)
	}
	oid, err := env.Store.StartOffboarding(ctx, actorOf(env, "lead"), "member2@example.com", false, "leaving")
	if err != nil {
		t.Fatal(err)
	}
	// Leak incidents: one open on the member's key (its page shows the
	// compromised banner), one open on the lead's, one closed (waived).
	var leakIDs []int64
	for _, v := range []string{devValue, prodValue, oldValue} {
		r, err := env.Store.ReportLeak(ctx, actorOf(env, "member2"), keyledger.LeakReportInput{Value: v, Where: "https://gist.example.com/a11y"})
		if err != nil {
			t.Fatal(err)
		}
		leakIDs = append(leakIDs, r.IncidentID)
	}
	if err := env.Store.WaiveLeak(ctx, actorOf(env, "lead"), leakIDs[2], "a test key without access"); err != nil {
		t.Fatal(err)
	}
	_ = old

	// Eight minutes: the run takes three to five on a loaded 2-core machine.
	b := newBrowser(t, env.HTTP.URL, 8*time.Minute)
	// Test only: the page's CSP would refuse the injected axe script.
	b.do("inject axe-core",
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, page.SetBypassCSP, page.SetBypassCSPParams{Enabled: true})
			return err
		}),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: axe})
			return err
		}),
	)
	visit := func(path string) {
		t.Helper()
		if st := b.navigate(path); st != http.StatusOK {
			b.fatalf("GET %s: status %d", path, st)
		}
		b.audit(path)
	}

	visit("/login")
	b.badSubmit("/login", `[data-testid="login-submit"]`, "login-error",
		chromedp.SendKeys(chromedp.ID("email"), "member@example.com", chromedp.NodeVisible),
		chromedp.SendKeys(chromedp.ID("password"), "not the password", chromedp.NodeVisible))

	keyPage := "/keys/" + dev.ID
	common := []string{"/keys", "/keys?q=no-such-key", "/keys/new", keyPage, keyPage + "/edit", keyPage + "/rotate",
		"/rotation", "/export", "/export?environment=development", "/profile", "/profile/2fa", "/step-up?next=%2Fkeys",
		"/leaks/new", fmt.Sprintf("/leaks/%d", leakIDs[0])}
	leads := []string{"/dashboard", fmt.Sprintf("/users/%d", env.Users["member"].ID), "/offboarding",
		fmt.Sprintf("/offboarding/%d", oid), "/audit", "/keys/" + prod.ID, "/inventory", "/inventory?state=owner_left",
		"/leaks", fmt.Sprintf("/leaks/%d", leakIDs[1]), fmt.Sprintf("/leaks/%d", leakIDs[2])}
	admins := []string{"/admin/users", "/admin/environments", "/admin/providers"}
	for _, role := range []string{"member", "lead", "admin"} {
		b.signIn(role+"@example.com", fmt.Sprintf("%s (%s)", strings.ToUpper(role[:1])+role[1:], role))
		pages := common
		if role != "member" {
			pages = append(append([]string(nil), pages...), leads...)
		}
		if role == "admin" {
			pages = append(pages, admins...)
		}
		for _, p := range pages {
			visit(p)
		}
		b.keyboardAndPhone(role)
		// On the key page (the last visited by a lead or admin is another
		// key's; open this one) Reveal comes first, before the details.
		if st := b.navigate(keyPage); st != http.StatusOK {
			b.fatalf("GET %s: status %d", keyPage, st)
		}
		if order := evalIn[string](b, `[...document.querySelectorAll("main h2")].map(h => h.textContent.trim()).slice(0, 2).join("|")`); order != "Reveal|Details" {
			t.Errorf("key page sections start %q, want Reveal then Details", order)
		}
		switch role {
		case "member":
			// The quick copy and the quick search, in use: the button says
			// "Copied", the search has the focus.
			b.allowClipboard()
			if st := b.navigate("/keys?q=OpenAI"); st != http.StatusOK {
				b.fatalf("GET /keys?q=OpenAI: status %d", st)
			}
			b.do("quick copy", chromedp.Click(chromedp.CSS(`[data-testid="copy-export-button"]`), chromedp.NodeVisible))
			b.waitFor("Copied", `document.getElementById("live-status").textContent === "Copied"`)
			b.pressSlash()
			if id := evalIn[string](b, `document.activeElement.id`); id != "quick-q" {
				t.Errorf("/ focused %q, want the quick search", id)
			}
			b.audit("key list after a quick copy, quick search focused")
			if st := b.navigate("/keys/00000000-0000-0000-0000-000000000000"); st != http.StatusNotFound {
				b.fatalf("GET a missing key: status %d, want 404", st)
			}
			b.audit("not found")
			b.badSubmit("/keys/new", `[data-testid="register-submit"]`, "error-summary",
				chromedp.SendKeys(chromedp.ID("project"), "checkout", chromedp.NodeVisible))
			b.badSubmit(keyPage+"/rotate", `[data-testid="rotate-submit"]`, "error-summary")
			b.badSubmit("/leaks/new", `[data-testid="leak-submit"]`, "error-summary")
			// The reveal page, with its copy buttons.
			if st := b.navigate(keyPage); st != http.StatusOK {
				b.fatalf("GET %s: status %d", keyPage, st)
			}
			b.do("type a reason", chromedp.SendKeys(chromedp.ID("reason"), "a11y test", chromedp.NodeVisible))
			b.press(`[data-testid="reveal-submit"]`)
			names := evalIn[[]string](b, `[...document.querySelectorAll("button.copy")].map(b => b.textContent.trim())`)
			if len(names) < 2 || names[0] != "Copy value" || !strings.Contains(strings.Join(names, "|"), "Copy bash / zsh line") {
				t.Errorf("copy buttons are named %q, want \"Copy value\", \"Copy bash / zsh line\"…", names)
			}
			b.audit("reveal page")
			// A reveal whose form expired keeps its reason.
			if st := b.navigate(keyPage); st != http.StatusOK {
				b.fatalf("GET %s: status %d", keyPage, st)
			}
			b.do("expire the form and type a reason",
				chromedp.Evaluate[chromedp.Void](`document.querySelector('form[action$="/reveal"] input[name=_csrf]').value = "expired"`),
				chromedp.SendKeys(chromedp.ID("reason"), "kept after expiry", chromedp.NodeVisible))
			if st := b.press(`[data-testid="reveal-submit"]`); st != http.StatusForbidden {
				b.fatalf("reveal with an expired form: status %d, want 403", st)
			}
			if kept := evalIn[string](b, `document.getElementById("retry-reason").value`); kept != "kept after expiry" {
				t.Errorf("the expired-form page keeps the reason as %q", kept)
			}
			b.audit("expired form")
		case "lead":
			// Revoking at the provider needs a reason (the confirm dialog
			// is taken off: the browser here answers no dialogs).
			b.badSubmit(keyPage, `[data-testid="provider-revoke"]`, "error-summary",
				chromedp.Evaluate[chromedp.Void](`document.querySelector('form[action$="/provider-revoke"]').removeAttribute("data-confirm")`))
			// Production needs a reason: a reveal without one is a field error.
			b.badSubmit("/keys/"+prod.ID, `[data-testid="reveal-submit"]`, "error-summary")
			b.badSubmit("/offboarding", `[data-testid="start-submit"]`, "error-summary")
			// The waiver of an open incident needs a reason.
			b.badSubmit(fmt.Sprintf("/leaks/%d", leakIDs[1]), `[data-testid="leak-waive-submit"]`, "error-summary",
				chromedp.Click(chromedp.CSS(`[data-testid="leak-waive-open"]`), chromedp.NodeVisible))
		case "admin":
			b.badSubmit("/admin/users", `[data-testid="create-user"]`, "error-summary")
			// The connection form with its errors (no admin key typed).
			b.badSubmit("/admin/providers", `[data-testid="connection-create"]`, "error-summary")
			// A set-password link (a copy button), and the page behind it.
			if st := b.navigate("/admin/users"); st != http.StatusOK {
				b.fatalf("GET /admin/users: status %d", st)
			}
			if st := b.press(`tr[data-email="member2@example.com"] [data-testid="password-link"]`); st != http.StatusOK {
				b.fatalf("make a set-password link: status %d", st)
			}
			b.audit("set-password link")
			link := evalIn[string](b, `document.querySelector('[data-testid="password-link-url"]').textContent`)
			b.badSubmit(strings.TrimPrefix(link, env.HTTP.URL), `[data-testid="set-password-submit"]`, "error-summary",
				chromedp.SendKeys(chromedp.ID("password"), "short", chromedp.NodeVisible))
		}
		if st := b.press(`[data-testid="logout"]`); st != http.StatusOK {
			b.fatalf("sign out: status %d", st)
		}
	}
	// The bad submits answer 401, 403 and 422 on purpose; Chromium logs those.
	var problems []string
	for _, p := range b.consoleProblems() {
		if !regexp.MustCompile(`the server responded with a status of (401|403|404|422)`).MatchString(p) {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		t.Errorf("the pages logged %d console errors or warnings:\n%s", len(problems), strings.Join(problems, "\n"))
	}
	t.Logf("accessibility test took %v", time.Since(start).Round(time.Millisecond))
}
