package web_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"
)

// allowClipboard lets the app's origin write and read the clipboard, as a
// person's browser does for the page in front of them, so the test can
// read back what a click copied.
func (b *browser) allowClipboard() {
	b.t.Helper()
	for _, name := range []string{"clipboard-read", "clipboard-write"} {
		if _, err := chromedp.CallBrowser(b.ctx, cdpbrowser.SetPermission, cdpbrowser.SetPermissionParams{
			Permission: &cdpbrowser.PermissionDescriptor{Name: name, AllowWithoutSanitization: true},
			Setting:    cdpbrowser.PermissionSettingGranted, Origin: b.url}); err != nil {
			b.fatalf("grant %s: %v", name, err)
		}
	}
	// Headless tabs are not focused; the clipboard API wants focus.
	b.do("emulate focus", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetFocusEmulationEnabled, emulation.SetFocusEmulationEnabledParams{Enabled: true})
		return err
	}))
}

// clipboard is the text on the clipboard.
func (b *browser) clipboard() string {
	b.t.Helper()
	s, err := chromedp.Run(b.ctx, chromedp.Evaluate[string](`navigator.clipboard.readText()`, chromedp.EvalAwaitPromise))
	if err != nil {
		b.fatalf("read the clipboard: %v", err)
	}
	return s
}

// waitFor polls a JavaScript condition until it holds or fails the test.
func (b *browser) waitFor(what, cond string) {
	b.t.Helper()
	for range 100 {
		if evalIn[bool](b, cond) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.fatalf("waited 5 s for %s (%s)", what, cond)
}

// pressSlash presses "/" as a keyboard does: one keyDown that carries its
// text, so a handler that cancels the keydown also cancels the typing
// (chromedp's KeyEvent sends the text as a separate char event, which
// nothing can cancel).
func (b *browser) pressSlash() {
	b.t.Helper()
	b.do("press /", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		down := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyDown, Key: "/", Code: "Slash", Text: "/", UnmodifiedText: "/", WindowsVirtualKeyCode: 191, NativeVirtualKeyCode: 191}
		if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, down); err != nil {
			return err
		}
		up := input.DispatchKeyEventParams{Type: input.DispatchKeyEventTypeKeyUp, Key: "/", Code: "Slash", WindowsVirtualKeyCode: 191, NativeVirtualKeyCode: 191}
		_, err := cdp.Call(ctx, t, input.DispatchKeyEvent, up)
		return err
	}))
}

// copyButton is the quick copy of the key named name in environment env.
func copyButton(name, env string) string {
	return fmt.Sprintf(`[...document.querySelectorAll('[data-testid="copy-export-button"]')].find(b => b.textContent.endsWith(" line for %s (%s)"))`, name, env)
}

// TestBrowserCopyExport is the daily job: sign in, copy the development
// OpenAI key's export line, in at most two clicks after signing in, at
// desktop and phone width, and read the line back from the clipboard. It
// also follows the shell chosen on a reveal result, keeps "/" for typing
// in fields, and offers nothing for keys that need a reason.
func TestBrowserCopyExport(t *testing.T) {
	t.Parallel()
	chromiumPath(t)
	env := newEnv(t)
	devValue, prodValue, stagingValue := authzSecret(), authzSecret(), authzSecret()
	dev := env.createKey("member", "development", "OpenAI", devValue)
	env.createKey("member", "production", "OpenAI", prodValue)
	env.createKey("member", "staging", "OpenAI", stagingValue)
	// Enough other keys that OpenAI is not the only row.
	for i := range 12 {
		env.createKey("member", "development", fmt.Sprintf("Service %02d", i), authzSecret())
	}
	wantBash := "export OPENAI_API_KEY='" + devValue + "'"

	for _, m := range []viewMode{viewModes[0], viewModes[2]} {
		t.Run(strings.Fields(m.name)[0], func(t *testing.T) {
			b := newBrowser(t, env.HTTP.URL, 90*time.Second)
			b.allowClipboard()
			who := map[string]string{"desktop": "member2", "phone": "lead"}[strings.Fields(m.name)[0]]
			// Signed in at desktop width, where the menu shows who it is.
			b.signIn(who+"@example.com", strings.ToUpper(who[:1])+who[1:]+" ("+map[string]string{"member2": "member", "lead": "lead"}[who]+")")
			b.setMode(m)
			before := authzRevealCount(env, t, dev.ID)
			clicks := 0
			click := func(step, sel string) {
				t.Helper()
				clicks++
				b.do(step, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
			}

			// Only the development key offers a quick copy; the list holds
			// no value; the button is named for what it copies and is a
			// target of 24 px or more.
			if n := evalIn[int](b, `document.querySelectorAll('[data-testid="copy-export-button"]:not([hidden])').length`); n != 13 {
				t.Errorf("%d visible quick copies, want 13 (the development keys)", n)
			}
			html := evalIn[string](b, `document.documentElement.outerHTML`)
			for _, v := range []string{devValue, prodValue, stagingValue} {
				if strings.Contains(html, v) {
					t.Fatal("the key list contains a value")
				}
			}
			if name := evalIn[string](b, copyButton("OpenAI", "development")+`.textContent`); name != "Copy bash export line for OpenAI (development)" {
				t.Errorf("the quick copy is named %q", name)
			}
			if size := evalIn[[]float64](b, `(() => { const r = `+copyButton("OpenAI", "development")+`.getBoundingClientRect(); return [r.width, r.height] })()`); size[0] < 24 || size[1] < 24 {
				t.Errorf("the quick copy is %v px, under 24 px", size)
			}

			if m.mobile {
				// Phone: tap the quick search (1), type, go, tap the copy (2).
				click("tap the quick search", "#quick-q")
				b.do("type a search", chromedp.SendKeys(chromedp.ID("quick-q"), "openai", chromedp.NodeVisible))
				if _, err := chromedp.RunResponse(b.ctx, chromedp.KeyEvent("\r")); err != nil {
					b.fatalf("search: %v", err)
				}
				b.loaded()
				if p := b.path(); p != "/keys?q=openai" {
					b.fatalf("the quick search opened %s", p)
				}
				if w := evalIn[[]int](b, `[document.documentElement.scrollWidth, document.documentElement.clientWidth]`); w[0] > w[1] {
					t.Errorf("the key list is %d px wide in a %d px phone", w[0], w[1])
				}
			} else {
				// Desktop: "/" reaches the quick search from the page, but
				// not while typing in a field.
				b.do("type a in the filter", chromedp.SendKeys(chromedp.CSS(`form.filters input[name=q]`), "a", chromedp.NodeVisible))
				b.pressSlash()
				b.do("type b", chromedp.SendKeys(chromedp.CSS(`form.filters input[name=q]`), "b", chromedp.NodeVisible))
				if got := evalIn[string](b, `document.activeElement.name + "=" + document.activeElement.value + " " + document.activeElement.id`); got != "q=a/b " {
					t.Errorf("typing a/b in the filter: focus on %q, want the filter holding a/b", got)
				}
				b.do("leave the field", chromedp.Evaluate[chromedp.Void](`document.activeElement.blur()`))
				b.pressSlash()
				if id := evalIn[string](b, `document.activeElement.id`); id != "quick-q" {
					t.Errorf("/ focused %q, want the quick search", id)
				}
				if v := evalIn[string](b, `document.getElementById("quick-q").value`); v != "" {
					t.Errorf("/ was typed into the quick search: %q", v)
				} // Clear the filter: the live list swaps its results back in,
				// and their copy buttons must work as the first ones did.
				b.do("clear the filter", chromedp.Evaluate[chromedp.Void](`(() => { document.querySelector("[data-filter-results]").dataset.old = "1"; const q = document.querySelector("form.filters input[name=q]"); q.value = ""; q.dispatchEvent(new Event("input", {bubbles: true})) })()`))
				b.waitFor("the list swapped back", `!document.querySelector("[data-filter-results][data-old]") && location.search === "" && document.querySelectorAll('[data-testid="copy-export-button"]:not([hidden])').length === 13`)
			}
			b.do("mark the copy button", chromedp.Evaluate[chromedp.Void](copyButton("OpenAI", "development")+`.id = "the-copy"`))
			click("copy the development key", "#the-copy")
			b.waitFor("Copied", `document.getElementById("live-status").textContent === "Copied"`)
			if got := b.clipboard(); got != wantBash {
				t.Errorf("the clipboard holds %q, want %q", got, wantBash)
			}
			if clicks > 2 {
				t.Errorf("copying took %d clicks after signing in, want at most 2", clicks)
			}
			// The visible word flipped to "Copied" (and back after 1.5 s,
			// which a loaded machine may already have passed).
			if !evalIn[bool](b, `document.querySelector("#the-copy .copy-label").hasAttribute("data-label")`) {
				t.Error("the button never said Copied")
			}
			if n := authzRevealCount(env, t, dev.ID); n != before+1 {
				t.Errorf("%d reveal events after one quick copy, want %d", n, before+1)
			}
			if p := b.path(); !strings.HasPrefix(p, "/keys") || strings.Contains(p, "reveal") {
				t.Errorf("the quick copy navigated to %s", p)
			}
			if html := evalIn[string](b, `document.documentElement.outerHTML`); strings.Contains(html, devValue) {
				t.Error("after the quick copy the page holds the value")
			}
		})
	}

	// The shell follows the line copied last on a reveal result.
	t.Run("shell", func(t *testing.T) {
		b := newBrowser(t, env.HTTP.URL, 90*time.Second)
		b.allowClipboard()
		b.signIn("member@example.com", "Member (member)")
		if st := b.navigate("/keys/" + dev.ID); st != http.StatusOK {
			b.fatalf("key page: %d", st)
		}
		b.press(`[data-testid="reveal-submit"]`)
		b.do("copy the fish line", chromedp.Click(chromedp.CSS(`tr[data-shell="fish"] button.copy`), chromedp.NodeVisible))
		b.waitFor("the fish line copied", `document.getElementById("live-status").textContent === "Copied"`)
		b.waitFor("fish chosen", `document.querySelector('form[data-shell-choice] select').value === "fish"`)
		// The preference is saved in the background; give it its moment.
		for range 50 {
			if u, err := env.Store.UserByEmail(t.Context(), "member@example.com"); err == nil && u.Shell == "fish" {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		b.navigate("/keys?q=openai")
		if name := evalIn[string](b, copyButton("OpenAI", "development")+`.textContent`); name != "Copy fish export line for OpenAI (development)" {
			t.Fatalf("after copying the fish line the quick copy is %q", name)
		}
		b.do("mark the copy button", chromedp.Evaluate[chromedp.Void](copyButton("OpenAI", "development")+`.id = "the-copy"`))
		b.do("copy", chromedp.Click(chromedp.CSS("#the-copy"), chromedp.NodeVisible))
		b.waitFor("Copied", `document.getElementById("live-status").textContent === "Copied"`)
		if got, want := b.clipboard(), "set -gx OPENAI_API_KEY '"+devValue+"'"; got != want {
			t.Errorf("the clipboard holds %q, want %q", got, want)
		}
	})

	// Without JavaScript the quick copy is a link to the full reveal form.
	t.Run("no script", func(t *testing.T) {
		b := newBrowser(t, env.HTTP.URL, 60*time.Second)
		b.do("turn off JavaScript", chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := cdp.Call(ctx, t, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true})
			return err
		}))
		c := env.client().login("member2")
		_, page := c.get("/keys?q=openai")
		if !strings.Contains(page, `href="/keys/`+dev.ID+`#reason"`) {
			t.Fatal("the list has no fallback link to the reveal form")
		}
		b.signIn("member2@example.com", "Member2 (member)")
		b.navigate("/keys?q=openai")
		if n := evalIn[int](b, `[...document.querySelectorAll('[data-testid="copy-export-button"]')].filter(b => b.checkVisibility()).length`); n != 0 {
			t.Errorf("%d quick copy buttons show without JavaScript", n)
		}
		if st := b.press(`[data-testid="copy-export-fallback"]`); st != http.StatusOK {
			b.fatalf("follow the fallback: %d", st)
		}
		if p := b.path(); p != "/keys/"+dev.ID+"#reason" {
			t.Errorf("the fallback leads to %s", p)
		}
		if st := b.press(`[data-testid="reveal-submit"]`); st != http.StatusOK {
			b.fatalf("reveal: %d", st)
		}
		if got := b.text(`[data-testid="paste-bash"]`); got != wantBash {
			t.Errorf("the reveal page's bash line %q", got)
		}
	})
}
