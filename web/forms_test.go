package web_test

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/keyledger/keyledger/store"
)

// Bad input changes nothing: every refused form answers 422 or 409,
// re-renders the form with the message next to the field, never echoes a
// value back, and leaves keys, key_versions and audit_events as they were.

// formsCounts are the row counts a refused form must not change.
type formsCounts struct{ keys, versions, audit int }

func formsCount(env *testEnv, t testing.TB) formsCounts {
	t.Helper()
	var c formsCounts
	err := env.Store.Pool().QueryRow(context.Background(), `SELECT
		(SELECT count(*) FROM keys), (SELECT count(*) FROM key_versions), (SELECT count(*) FROM audit_events)`).
		Scan(&c.keys, &c.versions, &c.audit)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// formsFieldError returns the text of the element data-testid="error-<field>".
func formsFieldError(body, field string) (string, bool) {
	re := regexp.MustCompile(`data-testid="error-` + regexp.QuoteMeta(field) + `"[^>]*>([^<]*)<`)
	m := re.FindStringSubmatch(body)
	if m == nil {
		return "", false
	}
	return html.UnescapeString(m[1]), true
}

// formsErrorNextToField checks that the field's error follows the field
// itself, before the next label or button, and that the field is marked
// invalid and described by the error.
func formsErrorNextToField(t testing.TB, body, field string) {
	t.Helper()
	i := strings.Index(body, ` id="`+field+`"`)
	if i < 0 {
		t.Errorf("the form has no field %q", field)
		return
	}
	rest := body[i:]
	end := len(rest)
	for _, stop := range []string{"<label", "<button"} {
		if j := strings.Index(rest, stop); j >= 0 && j < end {
			end = j
		}
	}
	if !strings.Contains(rest[:end], `data-testid="error-`+field+`"`) {
		t.Errorf("the error of %q is not next to its field", field)
	}
	tagEnd := strings.Index(rest, ">")
	if tag := rest[:tagEnd]; !strings.Contains(tag, `aria-invalid="true"`) || !strings.Contains(tag, `aria-describedby="err-`+field+`"`) {
		t.Errorf("field %q is not marked invalid: %s", field, tag)
	}
}

var formsValueTextarea = regexp.MustCompile(`(?s)<textarea id="value"[^>]*>(.*?)</textarea>`)

// formsBaseRegistration is a valid registration; cases override fields.
func formsBaseRegistration() url.Values {
	return url.Values{
		"name": {"forms " + authzRand(4)}, "provider": {""}, "project": {"checkout"}, "environment": {"development"},
		"owner": {"member@example.com"}, "value": {authzSecret()}, "scope": {"All"}, "rotation_days": {""},
		"description": {"registered by the forms test"},
	}
}

type formsCase struct {
	name   string
	set    map[string]string
	status int
	field  string // the field whose error must show; "" for a form-level message
	msg    string // part of the message
	// prepare runs before the counts are taken, e.g. to create the key a
	// duplicate collides with; it may change the form.
	prepare func(t *testing.T, env *testEnv, form url.Values)
	// archived: the edited key is archived first.
	archived bool
	// audits: audit events the refusal itself writes (a duplicate value
	// is recorded on the key that holds it); nothing else may change.
	audits int
}

// badBytes is the start of rejectBadBytes' answer: a NUL byte or invalid
// UTF-8 in a field other than a key's value is refused with 400 before
// any handler (web/input.go), not with the form's field error.
const badBytes = "contains a NUL byte or is not valid UTF-8 text"

// formsBadBytes checks a 400 from rejectBadBytes naming field.
func formsBadBytes(t testing.TB, resp *http.Response, body, field string) {
	t.Helper()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(html.UnescapeString(body), `"`+field+`" `+badBytes) {
		t.Errorf("status %d, want 400 naming %q\n%s", resp.StatusCode, field, authzMain(body, ""))
	}
}

func TestFormsRegisterBadInput(t *testing.T) {
	t.Parallel()
	long := strings.Repeat
	dupValue := func(suffix string) func(*testing.T, *testEnv, url.Values) {
		return func(t *testing.T, env *testEnv, form url.Values) {
			_, v := authzKey(env, t, "member2", "staging", "first "+authzRand(3))
			form.Set("value", v+suffix)
			if suffix != "" {
				// Confirmed: stored exactly, and still the same key.
				form.Set("keep_whitespace", "1")
			}
		}
	}
	dupName := func(change func(string) string) func(*testing.T, *testEnv, url.Values) {
		return func(t *testing.T, env *testEnv, form url.Values) {
			name := "OpenAI checkout " + authzRand(3)
			authzKey(env, t, "member2", "development", name)
			form.Set("name", change(name))
		}
	}
	same := func(s string) string { return s }
	swapCase := func(s string) string {
		return strings.Map(func(r rune) rune {
			if unicode.IsUpper(r) {
				return unicode.ToLower(r)
			}
			return unicode.ToUpper(r)
		}, s)
	}
	cases := []formsCase{
		{name: "empty name", set: map[string]string{"name": ""}, status: 422, field: "name", msg: "Name is required"},
		{name: "blank name", set: map[string]string{"name": "   \t "}, status: 422, field: "name", msg: "Name is required"},
		{name: "empty project", set: map[string]string{"project": ""}, status: 422, field: "project", msg: "Project is required"},
		{name: "empty environment", set: map[string]string{"environment": ""}, status: 422, field: "environment", msg: "Choose an environment"},
		{name: "empty owner", set: map[string]string{"owner": ""}, status: 422, field: "owner", msg: "Choose an owner"},
		{name: "empty value", set: map[string]string{"value": ""}, status: 422, field: "value", msg: "Paste the key's value"},
		{name: "blank value", set: map[string]string{"value": " \n\t "}, status: 422, field: "value", msg: "Paste the key's value"},
		{name: "name of 201 runes", set: map[string]string{"name": long("é", 201)}, status: 422, field: "name", msg: "too long (201 characters, at most 200)"},
		{name: "value of 8193 bytes", set: map[string]string{"value": "sk-proj-" + long("a", 8193-8)}, status: 422, field: "value", msg: "too long (8193 bytes"},
		{name: "project of 101 runes", set: map[string]string{"project": long("p", 101)}, status: 422, field: "project", msg: "too long"},
		{name: "provider of 51 runes", set: map[string]string{"provider": long("x", 51)}, status: 422, field: "provider", msg: "too long"},
		{name: "scope of 501 runes", set: map[string]string{"scope": long("s", 501)}, status: 422, field: "scope", msg: "too long"},
		{name: "description of 2001 runes", set: map[string]string{"description": long("d", 2001)}, status: 422, field: "description", msg: "too long"},
		{name: "invalid UTF-8 name", set: map[string]string{"name": "\xff\xfe"}, status: 400, field: "name", msg: badBytes},
		{name: "invalid UTF-8 value", set: map[string]string{"value": "sk-proj-\xff\xfeabcdef"}, status: 422, field: "value", msg: "valid UTF-8"},
		{name: "invalid UTF-8 project", set: map[string]string{"project": "check\xffout"}, status: 400, field: "project", msg: badBytes},
		{name: "invalid UTF-8 description", set: map[string]string{"description": "\xff\xfe"}, status: 400, field: "description", msg: badBytes},
		{name: "NUL in name", set: map[string]string{"name": "open\x00ai"}, status: 400, field: "name", msg: badBytes},
		{name: "NUL in value", set: map[string]string{"value": "sk-proj-abc\x00def0123456789"}, status: 422, field: "value", msg: "NUL"},
		{name: "NUL in description", set: map[string]string{"description": "a\x00b"}, status: 400, field: "description", msg: badBytes},
		{name: "escape sequence in name", set: map[string]string{"name": "\x1b[31mred"}, status: 422, field: "name", msg: "control characters"},
		{name: "newline in name", set: map[string]string{"name": "two\nlines"}, status: 422, field: "name", msg: "control characters"},
		{name: "tab in name", set: map[string]string{"name": "tab\there"}, status: 422, field: "name", msg: "control characters"},
		{name: "line separator in name", set: map[string]string{"name": "a\u2028b"}, status: 422, field: "name", msg: "control characters"},
		{name: "DEL in name", set: map[string]string{"name": "a\x7fb"}, status: 422, field: "name", msg: "control characters"},
		{name: "control char in scope", set: map[string]string{"scope": "All\x07"}, status: 422, field: "scope", msg: "control characters"},
		{name: "control char in provider", set: map[string]string{"provider": "open\x08ai"}, status: 422, field: "provider", msg: "control characters"},
		{name: "unknown environment", set: map[string]string{"environment": "qa"}, status: 422, field: "environment", msg: `no environment named "qa"`},
		{name: "SQL as environment", set: map[string]string{"environment": "development' OR '1'='1"}, status: 422, field: "environment", msg: "no environment named"},
		{name: "unknown owner", set: map[string]string{"owner": "nobody@example.com"}, status: 422, field: "owner", msg: "There is no user nobody@example.com"},
		{name: "owner not an email", set: map[string]string{"owner": "member"}, status: 422, field: "owner", msg: "email address"},
		{name: "deactivated owner", set: map[string]string{"owner": "gone@example.com"}, status: 422, field: "owner", msg: "deactivated"},
		{name: "rotation_days abc", set: map[string]string{"rotation_days": "abc"}, status: 422, field: "rotation_days", msg: "whole number of days from 1 to 3650"},
		{name: "rotation_days 0", set: map[string]string{"rotation_days": "0"}, status: 422, field: "rotation_days", msg: "whole number"},
		{name: "rotation_days 99999", set: map[string]string{"rotation_days": "99999"}, status: 422, field: "rotation_days", msg: "whole number"},
		{name: "rotation_days -5", set: map[string]string{"rotation_days": "-5"}, status: 422, field: "rotation_days", msg: "whole number"},
		{name: "rotation_days 1.5", set: map[string]string{"rotation_days": "1.5"}, status: 422, field: "rotation_days", msg: "whole number"},
		{name: "several errors at once", set: map[string]string{"name": "", "environment": "qa", "rotation_days": "abc"}, status: 422, field: "name", msg: "Name is required"},
		{name: "duplicate value", status: 409, field: "value", msg: "already stored as", prepare: dupValue(""), audits: 1},
		{name: "duplicate value with a trailing newline", status: 409, field: "value", msg: "already stored as", prepare: dupValue("\r\n"), audits: 1},
		{name: "value with a trailing newline, unconfirmed", status: 422, field: "value", msg: "starts or ends with whitespace", set: map[string]string{"value": "sk-proj-" + authzRand(20) + "\r\n"}},
		{name: "duplicate name in project and environment", status: 409, field: "name", msg: "already exists", prepare: dupName(same)},
		{name: "duplicate name differing in case", status: 409, field: "name", msg: "already exists", prepare: dupName(swapCase)},
	}
	// One env, cases in sequence: the row counts are per case.
	env := newEnv(t)
	member := authzLogin(env, t, "member")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := authzFor(member, t)
			form := formsBaseRegistration()
			for k, v := range tc.set {
				form.Set(k, v)
			}
			if tc.prepare != nil {
				tc.prepare(t, env, form)
			}
			before := formsCount(env, t)
			resp, body := c.post("/keys", form)
			if tc.status == http.StatusBadRequest {
				formsBadBytes(t, resp, body, tc.field)
				if after := formsCount(env, t); after != before {
					t.Errorf("rows changed: before %+v, after %+v", before, after)
				}
				return
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d\n%s", resp.StatusCode, tc.status, authzMain(body, ""))
			}
			msg, ok := formsFieldError(body, tc.field)
			if !ok {
				t.Fatalf(`no data-testid="error-%s" in the page\n%s`, tc.field, authzMain(body, ""))
			}
			if !strings.Contains(msg, tc.msg) {
				t.Errorf("error-%s = %q, want it to contain %q", tc.field, msg, tc.msg)
			}
			formsErrorNextToField(t, body, tc.field)
			if !strings.Contains(body, `data-testid="register-submit"`) || !strings.Contains(body, `data-testid="form-error"`) {
				t.Error("the register form is not re-rendered with its message")
			}
			m := formsValueTextarea.FindStringSubmatch(body)
			if m == nil {
				t.Fatal("the re-rendered form has no value textarea")
			}
			if m[1] != "" {
				t.Errorf("the value textarea is not empty: %q", m[1])
			}
			formsNoValue(t, env, body, form.Get("value"))
			// What was typed elsewhere is kept, so only the bad field needs fixing.
			if p := form.Get("project"); tc.field != "project" && !strings.Contains(body, `name="project" value="`+html.EscapeString(p)+`"`) {
				t.Errorf("the project %q was not kept in the form", p)
			}
			before.audit += tc.audits
			if after := formsCount(env, t); after != before {
				t.Errorf("rows changed: before %+v, after %+v", before, after)
			}
		})
	}
}

// formsNoValue fails when a submitted value shows in a page or the log.
func formsNoValue(t testing.TB, env *testEnv, body, value string) {
	t.Helper()
	v := strings.TrimSpace(value)
	if len(v) < 8 {
		return
	}
	if strings.Contains(body, v) || strings.Contains(body, html.EscapeString(v)) {
		t.Error("the page shows the submitted value")
	}
	if strings.Contains(env.Logs.String(), v) {
		t.Error("the server log contains the submitted value")
	}
}

// TestFormsRegisterLimits: the limits are inclusive.
func TestFormsRegisterLimits(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := authzLogin(env, t, "member")
	form := formsBaseRegistration()
	name := strings.Repeat("é", 200)
	value := "sk-proj-" + strings.Repeat("A", 8192-8)
	form.Set("name", name)
	form.Set("value", value)
	form.Set("rotation_days", "3650")
	id, _, body := c.register(form)
	formsNoValue(t, env, body, value)
	page, err := env.Store.ListKeys(t.Context(), actorOf(env, "member"), store.KeyFilter{})
	if err != nil || len(page.Keys) != 1 {
		t.Fatalf("%v, %d keys", err, len(page.Keys))
	}
	k := page.Keys[0]
	if k.ID != id {
		t.Errorf("redirected to key %s, registered %s", id, k.ID)
	}
	if k.Name != name || k.RotationDays != 3650 {
		t.Errorf("stored name %d runes, rotation %d", len([]rune(k.Name)), k.RotationDays)
	}
	rev, err := env.Store.Reveal(t.Context(), actorOf(env, "member"), k.ID, "")
	if err != nil || rev.Value != value {
		t.Errorf("the stored value does not read back exactly (err %v, %d bytes)", err, len(rev.Value))
	}
}

// TestFormsMarkupIsEscaped: markup in names and descriptions is accepted
// as text and shown escaped everywhere it appears.
func TestFormsMarkupIsEscaped(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := authzLogin(env, t, "member")
	form := formsBaseRegistration()
	form.Set("name", "<script>alert(1)</script>")
	form.Set("project", `<b onmouseover="alert(2)">proj</b>`)
	form.Set("scope", `"><svg onload=alert(3)>`)
	form.Set("description", "<script>alert(4)</script>\n<img src=x onerror=alert(5)>")
	// The key page the registration redirects to shows it all.
	_, _, body := c.register(form)
	page, err := env.Store.ListKeys(t.Context(), actorOf(env, "member"), store.KeyFilter{})
	if err != nil || len(page.Keys) != 1 {
		t.Fatalf("%v, %d keys", err, len(page.Keys))
	}
	k := page.Keys[0]
	if k.Name != form.Get("name") || k.Project != form.Get("project") || k.Scope != form.Get("scope") || k.Description != form.Get("description") {
		t.Errorf("not stored verbatim: %+v", k)
	}
	// A reveal with a markup reason, so "who has seen this key" shows it.
	if r, b := c.post("/keys/"+k.ID+"/reveal", url.Values{"reason": {"<script>alert(6)</script>"}}); r.StatusCode != http.StatusOK {
		t.Fatalf("reveal: %d\n%s", r.StatusCode, authzMain(b, ""))
	}
	// And a failed registration echoes the markup name back into the form.
	bad := formsBaseRegistration()
	bad.Set("name", "<script>alert(1)</script>")
	bad.Set("rotation_days", "abc")
	r422, b422 := c.post("/keys", bad)
	if r422.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("bad registration: %d", r422.StatusCode)
	}
	pages := map[string]string{"key page after registering": body, "refused register form": b422}
	for _, p := range []string{"/keys", "/keys?q=" + url.QueryEscape("<script>"), "/keys/" + k.ID, "/keys/" + k.ID + "/edit"} {
		r, b := c.get(p)
		if r.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d", p, r.StatusCode)
		}
		pages[p] = b
	}
	lead := authzLogin(env, t, "lead")
	_, pages["/audit"] = lead.get("/audit")
	for name, b := range pages {
		if !strings.Contains(b, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("%s: the name is not shown escaped", name)
		}
		for _, raw := range []string{"<script>alert", "<img src=x", "<svg onload", "<b onmouseover", `"><svg`} {
			if strings.Contains(b, raw) {
				t.Errorf("%s: raw markup %q in the page", name, raw)
			}
		}
	}
	if !strings.Contains(pages["/keys/"+k.ID], "&lt;script&gt;alert(6)&lt;/script&gt;") {
		t.Error("the reveal reason is not listed escaped")
	}

	// An edit with markup is accepted too and shown escaped.
	r, b := c.post("/keys/"+k.ID+"/edit", url.Values{"project": {"checkout"}, "owner": {"member@example.com"},
		"description": {"<script>alert(7)</script>"}})
	if r.StatusCode != http.StatusSeeOther {
		t.Fatalf("edit: %d\n%s", r.StatusCode, authzMain(b, ""))
	}
	_, b = c.get("/keys/" + k.ID)
	if !strings.Contains(b, "&lt;script&gt;alert(7)&lt;/script&gt;") || strings.Contains(b, "<script>alert") {
		t.Error("the edited description is not shown escaped")
	}
}

// TestFormsSQLMetacharactersStoredVerbatim: quotes and SQL comments are
// data, stored and searched as typed.
func TestFormsSQLMetacharactersStoredVerbatim(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := authzLogin(env, t, "member")
	form := formsBaseRegistration()
	form.Set("name", "'; DROP TABLE keys; --")
	form.Set("project", `x' OR '1'='1`)
	form.Set("scope", `\'; SELECT pg_sleep(10); --`)
	form.Set("description", `"; DELETE FROM audit_events; -- $1 %s`)
	before := formsCount(env, t)
	_, _, body := c.register(form)
	if !strings.Contains(body, html.EscapeString("'; DROP TABLE keys; --")) {
		t.Error("the name is not shown as typed")
	}
	after := formsCount(env, t)
	if after.keys != before.keys+1 || after.versions != before.versions+1 || after.audit != before.audit+1 {
		t.Errorf("rows: before %+v, after %+v", before, after)
	}
	page, err := env.Store.ListKeys(t.Context(), actorOf(env, "member"), store.KeyFilter{Q: "'; DROP"})
	if err != nil || len(page.Keys) != 1 {
		t.Fatalf("search by the quoted name: %v, %d keys", err, len(page.Keys))
	}
	k := page.Keys[0]
	for field, got := range map[string]string{"name": k.Name, "project": k.Project, "scope": k.Scope, "description": k.Description} {
		if got != form.Get(field) {
			t.Errorf("%s stored as %q, want %q", field, got, form.Get(field))
		}
	}
	// The web search takes the same text, and LIKE wildcards are literal.
	authzKey(env, t, "member", "development", "rate 50% off")
	authzKey(env, t, "member", "development", "rate 500 off")
	for q, want := range map[string]int{"'; DROP TABLE keys; --": 1, "50%": 1, "rate 50_": 0, "' OR 1=1 --": 0} {
		r, b := c.get("/keys?q=" + url.QueryEscape(q))
		if r.StatusCode != http.StatusOK {
			t.Fatalf("search %q: %d", q, r.StatusCode)
		}
		if n := strings.Count(b, `data-testid="key-cell"`); n != want {
			t.Errorf("search %q: %d rows, want %d", q, n, want)
		}
	}
	lead := authzLogin(env, t, "lead")
	if r, b := lead.get("/audit?actor=" + url.QueryEscape("' OR 1=1 --") + "&key=" + url.QueryEscape("'; --")); r.StatusCode != http.StatusOK || !strings.Contains(b, `data-testid="no-events"`) {
		t.Errorf("audit filter with quotes: %d", r.StatusCode)
	}
}

// TestFormsEditBadInput: a refused edit changes neither the key nor any row.
func TestFormsEditBadInput(t *testing.T) {
	t.Parallel()
	cases := []formsCase{
		{name: "empty project", set: map[string]string{"project": ""}, status: 422, field: "project", msg: "Project is required"},
		{name: "project of 101 runes", set: map[string]string{"project": strings.Repeat("ü", 101)}, status: 422, field: "project", msg: "too long (101 characters, at most 100)"},
		{name: "control char in project", set: map[string]string{"project": "a\x1bb"}, status: 422, field: "project", msg: "control characters"},
		{name: "invalid UTF-8 scope", set: map[string]string{"scope": "\xff\xfe"}, status: 400, field: "scope", msg: badBytes},
		{name: "scope of 501 runes", set: map[string]string{"scope": strings.Repeat("s", 501)}, status: 422, field: "scope", msg: "too long"},
		{name: "NUL in description", set: map[string]string{"description": "a\x00b"}, status: 400, field: "description", msg: badBytes},
		{name: "description of 2001 runes", set: map[string]string{"description": strings.Repeat("d", 2001)}, status: 422, field: "description", msg: "too long"},
		{name: "empty owner", set: map[string]string{"owner": ""}, status: 422, field: "owner", msg: "Choose an owner"},
		{name: "unknown owner", set: map[string]string{"owner": "nobody@example.com"}, status: 422, field: "owner", msg: "There is no user"},
		{name: "deactivated owner", set: map[string]string{"owner": "gone@example.com"}, status: 422, field: "owner", msg: "deactivated"},
		{name: "rotation_days abc", set: map[string]string{"rotation_days": "abc"}, status: 422, field: "rotation_days", msg: "whole number"},
		{name: "rotation_days 0", set: map[string]string{"rotation_days": "0"}, status: 422, field: "rotation_days", msg: "whole number"},
		{name: "rotation_days 99999", set: map[string]string{"rotation_days": "99999"}, status: 422, field: "rotation_days", msg: "whole number"},
		{name: "bad project and a smuggled value", set: map[string]string{"project": "", "value": "sk-proj-SMUGGLEDvalue0123456789"}, status: 422, field: "project", msg: "Project is required"},
		{name: "archived key", status: 409, msg: "archived", archived: true},
	}
	env := newEnv(t)
	member := authzLogin(env, t, "member")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := authzFor(member, t)
			k, value := authzKey(env, t, "member", "staging", "edit me "+authzRand(3))
			form := url.Values{"project": {"checkout"}, "owner": {"member@example.com"}, "scope": {"Restricted"},
				"rotation_days": {"45"}, "description": {"new description"}}
			for f, v := range tc.set {
				form.Set(f, v)
			}
			if tc.archived {
				if err := env.Store.ArchiveKey(t.Context(), actorOf(env, "member"), k.ID); err != nil {
					t.Fatal(err)
				}
			}
			old := authzGetKey(env, t, k.ID)
			before := formsCount(env, t)
			resp, body := c.post("/keys/"+k.ID+"/edit", form)
			if tc.status == http.StatusBadRequest {
				formsBadBytes(t, resp, body, tc.field)
				if after := formsCount(env, t); after != before {
					t.Errorf("rows changed: before %+v, after %+v", before, after)
				}
				return
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d\n%s", resp.StatusCode, tc.status, authzMain(body, ""))
			}
			if !strings.Contains(body, `data-testid="edit-submit"`) {
				t.Error("the edit form is not re-rendered")
			}
			if tc.field != "" {
				msg, ok := formsFieldError(body, tc.field)
				if !ok {
					t.Fatalf(`no data-testid="error-%s"\n%s`, tc.field, authzMain(body, ""))
				}
				if !strings.Contains(msg, tc.msg) {
					t.Errorf("error-%s = %q, want %q", tc.field, msg, tc.msg)
				}
				formsErrorNextToField(t, body, tc.field)
			} else if !strings.Contains(body, `data-testid="form-error"`) || !strings.Contains(body, tc.msg) {
				t.Errorf("no form message containing %q", tc.msg)
			}
			formsNoValue(t, env, body, value)
			formsNoValue(t, env, body, form.Get("value"))
			if after := formsCount(env, t); after != before {
				t.Errorf("rows changed: before %+v, after %+v", before, after)
			}
			now := authzGetKey(env, t, k.ID)
			if now.Project != old.Project || now.OwnerEmail != old.OwnerEmail || now.Scope != old.Scope ||
				now.Description != old.Description || now.RotationDays != old.RotationDays || !now.UpdatedAt.Equal(old.UpdatedAt) {
				t.Errorf("the key changed:\nbefore %+v\nafter  %+v", old, now)
			}
			if rev, err := env.Store.Reveal(t.Context(), actorOf(env, "member"), k.ID, "check"); err == nil && rev.Value != value {
				t.Error("the value changed")
			}
		})
	}
}

// TestFormsRevealBadReason: a refused reason reveals nothing and records
// nothing.
func TestFormsRevealBadReason(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, env, reason, msg string
	}{
		{"staging without reason", "staging", "", "asks for a reason"},
		{"staging blank reason", "staging", " \t ", "asks for a reason"},
		{"production without reason", "production", "", "asks for a reason"},
		{"reason of 501 runes", "staging", strings.Repeat("r", 501), "too long (501 characters, at most 500)"},
		{"long optional reason in development", "development", strings.Repeat("ß", 501), "too long"},
		{"NUL in reason", "staging", "debug\x00ging", badBytes},
		{"escape sequence in reason", "staging", "\x1b[2Jcleared", "control characters"},
		{"newline in reason", "production", "two\nlines", "control characters"},
		{"invalid UTF-8 reason", "staging", "\xff\xfe", badBytes},
		{"zero-width reason", "staging", "\u200b\u200c \u2060", "asks for a reason"},
		{"bidi-only reason", "production", "\u202e\u202c", "asks for a reason"},
	}
	env := newEnv(t)
	member := authzLogin(env, t, "member")
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := authzFor(member, t)
			k, value := authzKey(env, t, "member", tc.env, "reveal me "+authzRand(3))
			before := formsCount(env, t)
			resp, body := c.post("/keys/"+k.ID+"/reveal", url.Values{"reason": {tc.reason}})
			if tc.msg == badBytes {
				formsBadBytes(t, resp, body, "reason")
				if after := formsCount(env, t); after != before {
					t.Errorf("rows changed: before %+v, after %+v", before, after)
				}
				return
			}
			if resp.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422\n%s", resp.StatusCode, authzMain(body, ""))
			}
			msg, ok := formsFieldError(body, "reason")
			if !ok {
				t.Fatalf("no data-testid=\"error-reason\"\n%s", authzMain(body, ""))
			}
			if !strings.Contains(msg, tc.msg) {
				t.Errorf("error-reason = %q, want %q", msg, tc.msg)
			}
			formsErrorNextToField(t, body, "reason")
			if !strings.Contains(body, `data-testid="reveal-submit"`) {
				t.Error("the reveal form is not re-rendered")
			}
			if strings.Contains(body, value) || strings.Contains(body, `data-testid="secret-value"`) {
				t.Error("a refused reveal shows the value")
			}
			if after := formsCount(env, t); after != before {
				t.Errorf("rows changed: before %+v, after %+v", before, after)
			}
			if strings.Contains(env.Logs.String(), value) {
				t.Error("the value is in the server log")
			}
		})
	}
}

// formsRaw posts body as-is (chunked when size is unknown).
func formsRaw(t testing.TB, c *client, path string, body io.Reader, length int64) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, c.env.HTTP.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = length
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp, string(b)
}

// TestFormsOversizedBody: more than 64K is refused with 413 and a page
// that says why, before anything is parsed or stored.
func TestFormsOversizedBody(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		path    string
		who     string
		chunked bool
	}{
		{"register", "/keys", "member", false},
		{"register, chunked", "/keys", "member", true},
		{"reveal", "/keys/{id}/reveal", "member", false},
		{"sign in", "/login", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t)
			var c *client
			if tc.who == "" {
				c = authzActorClient(env, t, actorAnonymous)
			} else {
				c = authzLogin(env, t, tc.who)
			}
			k, value := authzKey(env, t, "member", "development", "big")
			path := strings.Replace(tc.path, "{id}", k.ID, 1)
			form := formsBaseRegistration()
			form.Set("_csrf", c.csrf)
			form.Set("email", "member@example.com")
			form.Set("password", Password)
			form.Set("reason", "big")
			form.Set("description", strings.Repeat("x", 70<<10))
			enc := form.Encode()
			before := formsCount(env, t)
			var resp *http.Response
			var body string
			if tc.chunked {
				resp, body = formsRaw(t, c, path, io.MultiReader(strings.NewReader(enc)), -1)
			} else {
				resp, body = formsRaw(t, c, path, strings.NewReader(enc), int64(len(enc)))
			}
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("status %d, want 413\n%s", resp.StatusCode, authzMain(body, ""))
			}
			if !strings.Contains(body, `data-testid="error-message"`) || !strings.Contains(body, "The form was too large") {
				t.Errorf("the page does not say the form was too large:\n%s", authzMain(body, ""))
			}
			if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || resp.Header.Get("Content-Security-Policy") == "" {
				t.Errorf("not a proper page: Content-Type %q", resp.Header.Get("Content-Type"))
			}
			if strings.Contains(body, value) {
				t.Error("the page shows a value")
			}
			if after := formsCount(env, t); after != before {
				t.Errorf("rows changed: before %+v, after %+v", before, after)
			}
		})
	}
}

// TestFormsCSRFRefused: without the right token, no form does anything.
func TestFormsCSRFRefused(t *testing.T) {
	t.Parallel()
	tokens := []struct {
		name string
		// token returns the _csrf to send and possibly a different client.
		token func(t *testing.T, env *testEnv, c *client) (string, *client)
	}{
		{"missing", nil},
		{"empty", func(*testing.T, *testEnv, *client) (string, *client) { return "", nil }},
		{"garbage", func(*testing.T, *testEnv, *client) (string, *client) { return "not-a-token", nil }},
		{"forged", func(*testing.T, *testEnv, *client) (string, *client) { return authzRand(32), nil }},
		{"another browser's", func(t *testing.T, env *testEnv, _ *client) (string, *client) {
			other := authzActorClient(env, t, actorAnonymous)
			return other.csrf, nil
		}},
		{"right token, cookie dropped", func(t *testing.T, env *testEnv, c *client) (string, *client) {
			// Same session, but the CSRF cookie is gone.
			u, _ := url.Parse(env.HTTP.URL)
			bare := authzClient(env, t)
			for _, ck := range c.http.Jar.Cookies(u) {
				if strings.Contains(ck.Name, "session") {
					bare.http.Jar.SetCookies(u, []*http.Cookie{ck})
				}
			}
			return c.csrf, bare
		}},
	}
	routes := []struct {
		name, path string
		form       url.Values
		anonymous  bool
	}{
		{"register", "/keys", nil, false},
		{"edit", "/keys/{id}/edit", url.Values{"project": {"csrf"}, "owner": {"member@example.com"}}, false},
		{"archive", "/keys/{id}/archive", url.Values{}, false},
		{"reveal", "/keys/{id}/reveal", url.Values{"reason": {"csrf"}}, false},
		{"rotate", "/keys/{id}/rotate", url.Values{"value": {"sk-proj-CSRFrotatedVALUE0123456789"}, "grace_days": {"0"}, "version": {"1"}}, false},
		{"roll back", "/keys/{id}/rollback", url.Values{"version": {"1"}}, false},
		{"verify by hand", "/keys/{id}/verify", url.Values{"manual": {"1"}, "note": {"csrf"}}, false},
		{"export", "/export", url.Values{"environment": {"development"}, "format": {"json"}}, false},
		{"sign out", "/logout", url.Values{}, false},
		{"sign in", "/login", url.Values{"email": {"member@example.com"}, "password": {Password}}, true},
	}
	for _, rt := range routes {
		t.Run(rt.name, func(t *testing.T) {
			t.Parallel()
			env := newEnv(t)
			for _, tok := range tokens {
				t.Run(tok.name, func(t *testing.T) {
					var c *client
					if rt.anonymous {
						c = authzActorClient(env, t, actorAnonymous)
					} else {
						c = authzLogin(env, t, "member")
					}
					k, value := authzKey(env, t, "member", "development", "csrf "+authzRand(3))
					form := cloneValues(rt.form)
					if rt.name == "register" {
						form = formsBaseRegistration()
					}
					sender := c
					if tok.token != nil {
						tk, other := tok.token(t, env, c)
						form.Set("_csrf", tk)
						if other != nil {
							sender = other
						}
					}
					before := formsCount(env, t)
					enc := form.Encode()
					resp, body := formsRaw(t, sender, strings.Replace(rt.path, "{id}", k.ID, 1), strings.NewReader(enc), int64(len(enc)))
					if resp.StatusCode != http.StatusForbidden {
						t.Errorf("status %d, want 403\n%s", resp.StatusCode, authzMain(body, ""))
					}
					if !strings.Contains(body, "This form has expired") {
						t.Errorf("the page does not say the form has expired:\n%s", authzMain(body, ""))
					}
					if strings.Contains(body, value) {
						t.Error("the page shows a value")
					}
					if after := formsCount(env, t); after != before {
						t.Errorf("rows changed: before %+v, after %+v", before, after)
					}
					if got := authzGetKey(env, t, k.ID); got.Archived() || got.Project != "checkout" {
						t.Error("the key changed")
					}
					if !rt.anonymous {
						// Still signed in: sign-out without a token does nothing.
						if r, _ := c.get("/keys"); r.StatusCode != http.StatusOK {
							t.Errorf("after the refused form GET /keys = %d", r.StatusCode)
						}
					} else if r, _ := c.get("/keys"); r.StatusCode != http.StatusSeeOther {
						t.Errorf("a sign-in without a token signed in: GET /keys = %d", r.StatusCode)
					}
				})
			}
		})
	}
}

// TestFormsCSRFFailureKeepsReason: a reveal whose form expired (its token
// no longer matches) is refused, and the refusal keeps what the person
// typed: the page offers the reveal again with the reason filled in and a
// fresh token, so pressing the button once more reveals.
func TestFormsCSRFFailureKeepsReason(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := authzLogin(env, t, "member")
	k, value := authzKey(env, t, "member", "development", "csrf keep "+authzRand(3))
	const reason = "deploying the checkout fix <today>"
	resp, body := c.post("/keys/"+k.ID+"/reveal", url.Values{"_csrf": {"expired-token"}, "reason": {reason}})
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("stale token: status %d, want 403", resp.StatusCode)
	}
	if strings.Contains(body, value) {
		t.Fatal("the refusal shows the value")
	}
	form := regexp.MustCompile(`(?s)<form method="post" action="/keys/` + k.ID + `/reveal"[^>]*data-testid="retry-form">(.*?)</form>`).FindStringSubmatch(body)
	if form == nil {
		t.Fatalf("the refusal offers no retry form:\n%s", body)
	}
	kept := regexp.MustCompile(`<input id="retry-reason" name="reason" value="([^"]*)"`).FindStringSubmatch(form[1])
	if len(kept) < 2 || html.UnescapeString(kept[1]) != reason {
		t.Fatalf("the retry form does not keep the reason: %q", kept)
	}
	tok := csrfField.FindStringSubmatch(form[1])
	if tok == nil {
		t.Fatal("the retry form has no token")
	}
	resp, body = c.post("/keys/"+k.ID+"/reveal", url.Values{"_csrf": {tok[1]}, "reason": {reason}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, value) {
		t.Fatalf("the retry: status %d, the value shown: %v", resp.StatusCode, strings.Contains(body, value))
	}
}
