package web_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
)

// copyAnswer is the quick copy's JSON answer.
type copyAnswer struct {
	Line     string `json:"line"`
	Shell    string `json:"shell"`
	Label    string `json:"label"`
	Variable string `json:"variable"`
	Error    struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// copyLine sends the key list's quick copy: the reveal form's POST, asking
// for the JSON answer as app.js does.
func copyLine(c *client, keyID string, form url.Values) (*http.Response, copyAnswer) {
	c.t.Helper()
	resp, body := authzSend(c, http.MethodPost, "/keys/"+keyID+"/reveal", form, http.Header{"Accept": {"application/json"}})
	var a copyAnswer
	if err := json.Unmarshal([]byte(body), &a); err != nil {
		c.t.Fatalf("quick copy answered %d with %q, not JSON: %v", resp.StatusCode, body, err)
	}
	return resp, a
}

// TestCopyExportLine: the quick copy reveals through the reveal POST, is
// audited as a reveal, answers the line for the person's shell, and is
// refused with a reason for any key whose environment asks for more than
// a click. The list shows the button only where it can work, never the
// value.
func TestCopyExportLine(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	devValue, stagingValue, prodValue := authzSecret(), authzSecret(), authzSecret()
	dev := env.createKey("member", "development", "OpenAI", devValue)
	staging := env.createKey("member", "staging", "OpenAI", stagingValue)
	prod := env.createKey("member", "production", "OpenAI", prodValue)
	member := env.client().login("member2")

	list := func(c *client) string {
		t.Helper()
		resp, body := c.get("/keys")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /keys: %d", resp.StatusCode)
		}
		for _, v := range []string{devValue, stagingValue, prodValue} {
			if strings.Contains(body, v) {
				t.Fatal("the key list contains a key's value")
			}
		}
		return body
	}
	body := list(member)
	if n := strings.Count(body, `data-testid="copy-export"`); n != 1 {
		t.Errorf("the list offers %d quick copies, want 1 (development only)", n)
	}
	if !strings.Contains(body, `action="/keys/`+dev.ID+`/reveal"`) {
		t.Error("the quick copy does not post to the development key's reveal")
	}
	if !strings.Contains(body, "Copy bash export") || !strings.Contains(body, " line for OpenAI (development)") {
		t.Error("the quick copy is not named for what it copies (\"Copy bash export line for OpenAI (development)\")")
	}

	resp, a := copyLine(member, dev.ID, nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("quick copy: %d %+v", resp.StatusCode, a.Error)
	}
	if want := "export OPENAI_API_KEY='" + devValue + "'"; a.Line != want {
		t.Errorf("line %q, want %q", a.Line, want)
	}
	if a.Shell != "bash" || a.Label != "bash / zsh" || a.Variable != "OPENAI_API_KEY" {
		t.Errorf("answer %+v", a)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if n := authzRevealCount(env, t, dev.ID); n != 1 {
		t.Errorf("%d reveal events after a quick copy, want 1", n)
	}
	ev, err := env.Store.ListAudit(t.Context(), keyledger.Actor{User: env.Users["admin"]}, storeAuditFilter(dev.ID, keyledger.ActionKeyReveal))
	if err != nil {
		t.Fatal(err)
	}
	if len(ev.Events) != 1 || ev.Events[0].ActorEmail != "member2@example.com" || ev.Events[0].KeyVersion != 1 {
		t.Errorf("audit events %+v", ev.Events)
	}

	// Refused, with the reason, nothing recorded: staging asks for a reason,
	// production for a reason and a password (the owner may reveal it, but
	// through the form), and a member who is not the owner may not at all.
	owner := env.client().login("member")
	for _, c := range []struct {
		who    *client
		key    *keyledger.Key
		status int
		says   string
	}{
		{member, staging, http.StatusUnprocessableEntity, "staging asks for a reason"},
		{member, prod, http.StatusForbidden, "only the key's owner"},
		{owner, prod, http.StatusUnprocessableEntity, "production asks for a reason and for your password"},
		{owner, staging, http.StatusUnprocessableEntity, "reveal this key from its page"},
	} {
		// A reason sent along does not turn the quick copy into the form.
		resp, a := copyLine(c.who, c.key.ID, url.Values{"reason": {"quick"}})
		if resp.StatusCode != c.status || !strings.Contains(a.Error.Message, c.says) {
			t.Errorf("quick copy of %s: %d %q, want %d saying %q", c.key.Environment, resp.StatusCode, a.Error.Message, c.status, c.says)
		}
		if n := authzRevealCount(env, t, c.key.ID); n != 0 {
			t.Errorf("a refused quick copy of %s recorded %d reveals", c.key.Environment, n)
		}
		if a.Line != "" {
			t.Error("a refused quick copy answered a line")
		}
	}

	// A forged or expired form: refused, in JSON, before anything happens.
	resp, a = copyLine(member, dev.ID, url.Values{"_csrf": {"forged"}})
	if resp.StatusCode != http.StatusForbidden || a.Error.Message == "" || a.Line != "" {
		t.Errorf("quick copy with a bad CSRF token: %d %+v", resp.StatusCode, a)
	}
	resp, a = copyLine(env.client(), dev.ID, nil)
	if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden || a.Line != "" {
		t.Errorf("quick copy signed out: %d %+v", resp.StatusCode, a)
	}
	if n := authzRevealCount(env, t, dev.ID); n != 1 {
		t.Errorf("%d reveal events after refused quick copies, want still 1", n)
	}

	// The owner's list: production is theirs to reveal, but not in a click.
	if body := list(owner); strings.Count(body, `data-testid="copy-export"`) != 1 {
		t.Error("the owner's list offers a quick copy beyond development")
	}
	for _, v := range []string{devValue, stagingValue, prodValue} {
		if strings.Contains(env.Logs.String(), v) {
			t.Error("a key's value appears in the server log")
		}
	}
}

// TestShellPreference: the shell is remembered per person, from the
// reveal result (app.js posts it when a line is copied) or the profile
// page, by a CSRF-protected POST; the quick copy and its button follow it.
func TestShellPreference(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	value := authzSecret()
	dev := env.createKey("member", "development", "OpenAI", value)
	c := env.client().login("member2")

	// The profile form, without JavaScript: post/redirect/get.
	resp, body := c.post("/profile/shell", url.Values{"shell": {"fish"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/profile?shell=saved" {
		t.Fatalf("POST /profile/shell: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	_, page := c.follow(resp)
	if !strings.Contains(page, `<option value="fish" selected>`) || !strings.Contains(page, "fish") {
		t.Error("the profile page does not show fish as the chosen shell")
	}
	if _, a := copyLine(c, dev.ID, nil); a.Line != "set -gx OPENAI_API_KEY '"+value+"'" || a.Shell != "fish" {
		t.Errorf("after choosing fish the quick copy answers %+v", a)
	}
	if _, list := c.get("/keys"); !strings.Contains(list, "Copy fish export") {
		t.Error("the list's button does not name fish")
	}

	// From the reveal result, as app.js sends it: 204, nothing to render.
	resp, _ = authzSend(c, http.MethodPost, "/profile/shell", url.Values{"shell": {"powershell"}}, http.Header{"Accept": {"application/json"}})
	if resp.StatusCode != http.StatusNoContent {
		t.Errorf("POST /profile/shell from the reveal result: %d, want 204", resp.StatusCode)
	}
	if _, a := copyLine(c, dev.ID, nil); a.Line != "$env:OPENAI_API_KEY = '"+value+"'" {
		t.Errorf("after choosing PowerShell the quick copy answers %q", a.Line)
	}

	// The reveal result offers the choice, with the current one selected.
	_, reveal := c.post("/keys/"+dev.ID+"/reveal", nil)
	if !strings.Contains(reveal, `action="/profile/shell"`) || !strings.Contains(reveal, `<option value="powershell" selected>`) {
		t.Error("the reveal result does not offer the shell choice with the current one selected")
	}

	// Refused: an unknown shell (422, with the field), a forged form (403).
	for _, bad := range []url.Values{{"shell": {"zsh"}}, {"shell": {""}}, {"shell": {"fish"}, "_csrf": {"forged"}}} {
		want := http.StatusUnprocessableEntity
		if bad.Get("_csrf") != "" {
			want = http.StatusForbidden
		}
		resp, _ := c.post("/profile/shell", bad)
		if resp.StatusCode != want {
			t.Errorf("POST /profile/shell %v: %d, want %d", bad, resp.StatusCode, want)
		}
	}
	u, err := env.Store.UserByEmail(t.Context(), "member2@example.com")
	if err != nil || u.Shell != keyledger.FormatPowerShell {
		t.Errorf("shell %q after refused changes (%v), want powershell", u.Shell, err)
	}
	// Another person's choice is their own.
	if _, a := copyLine(env.client().login("member"), dev.ID, nil); a.Shell != "bash" {
		t.Errorf("another person's quick copy uses %q", a.Shell)
	}
}

// TestCopyExportLineUnrepresentable: a value the chosen shell cannot carry
// exactly is not copied wrong: 422 with the reason (never the value); the
// reveal happened and is recorded, as the message says.
func TestCopyExportLineUnrepresentable(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	value := "sk-proj-" + authzRand(20) + "%PATH%"
	dev := env.createKey("member", "development", "OpenAI", value)
	c := env.client().login("member2")
	if resp, _ := c.post("/profile/shell", url.Values{"shell": {"cmd"}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("choose cmd: %d", resp.StatusCode)
	}
	resp, a := copyLine(c, dev.ID, nil)
	if resp.StatusCode != http.StatusUnprocessableEntity || a.Line != "" || !strings.Contains(a.Error.Message, "cannot be written as a cmd.exe line: contains %") {
		t.Errorf("quick copy of a value with %% for cmd.exe: %d %+v", resp.StatusCode, a)
	}
	if strings.Contains(a.Error.Message, value) {
		t.Error("the refusal contains the value")
	}
	if n := authzRevealCount(env, t, dev.ID); n != 1 {
		t.Errorf("%d reveal events, want 1 (the value was opened)", n)
	}
}
