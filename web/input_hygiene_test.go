package web_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestKeyFormHygiene: each kind of bad input to the register form gets a
// field error or a 4xx, and the database is untouched (rows counted
// before and after).
func TestKeyFormHygiene(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	env.createKey("member", "development", "openai", authzSecret())
	c := env.client().login("member")
	c.get("/keys/new")
	rows := func() int {
		var n int
		if err := env.Pool.QueryRow(context.Background(), `SELECT (SELECT count(*) FROM keys) + (SELECT count(*) FROM key_versions)
			+ (SELECT count(*) FROM users) + (SELECT count(*) FROM environments)`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	valid := func() url.Values {
		return url.Values{"name": {"hygiene"}, "project": {"checkout"}, "environment": {"development"},
			"owner": {"member@example.com"}, "value": {authzSecret()}}
	}
	before := rows()
	for _, tc := range []struct {
		what, field, value string
		status             int
		message            string
	}{
		{"oversized name", "name", strings.Repeat("n", 201), 422, "too long"},
		{"oversized value", "value", "sk-" + strings.Repeat("v", 9000), 422, "too long"},
		{"oversized description", "description", strings.Repeat("d", 2001), 422, "too long"},
		{"NUL in name", "name", "open\x00ai", 400, "contains a NUL byte"},
		{"NUL in value", "value", "sk-proj-abc\x00defghijklmnop", 422, "NUL"},
		{"invalid UTF-8 in project", "project", "check\xffout", 400, "not valid UTF-8"},
		{"zero-width space in name", "name", "open\u200bai", 422, "invisible"},
		{"bidi override in name", "name", "key-\u202egnp.exe", 422, "text-direction"},
		{"bidi isolate in project", "project", "check\u2067out", 422, "text-direction"},
		{"invisible-only name", "name", "\u200b\u200c", 422, "invisible"},
		{"full-width look-alike name", "name", "ｏｐｅｎａｉ", 409, "already exists"},
		{"script tag as environment", "environment", "<script>alert(1)</script>", 422, "no environment"},
		{"SQL metacharacters as owner", "owner", "x'; DROP TABLE keys; --", 422, "email address"},
	} {
		form := valid()
		form.Set(tc.field, tc.value)
		resp, body := c.post("/keys", form)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.message) {
			t.Errorf("%s: status %d, want %d with %q\n%s", tc.what, resp.StatusCode, tc.status, tc.message, authzMain(body, ""))
		}
		if got := rows(); got != before {
			t.Fatalf("%s: %d rows, want %d (database touched)", tc.what, got, before)
		}
	}
	// Script tags and SQL metacharacters in a filter are text to search
	// for: an ordinary answer, nothing run, nothing changed.
	for _, q := range []string{"<script>alert(1)</script>", "x' OR '1'='1", "'; DROP TABLE keys; --", `%_\`} {
		resp, body := c.get("/keys?q=" + url.QueryEscape(q))
		if resp.StatusCode != http.StatusOK || strings.Contains(body, "<script>alert(1)") {
			t.Errorf("filter %q: status %d (or the tag came back unescaped)", q, resp.StatusCode)
		}
	}
	if got := rows(); got != before {
		t.Errorf("%d rows after filters, want %d", got, before)
	}
}
