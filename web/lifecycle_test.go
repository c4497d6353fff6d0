package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/joho/godotenv"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/verify"
)

// Key lifecycle through the web layer (DESIGN.md §5): rotation with grace
// periods and rollback, checks against a provider, exports, and the
// rotation overview.

// fakeProvider stands in for OpenAI: GET /v1/models with a bearer token
// answers 200 for the keys accept takes (all when accept is nil) and 401
// like OpenAI for the others. It records every request it gets.
type fakeProvider struct {
	*httptest.Server
	accept func(secret string) bool

	mu   sync.Mutex
	seen []string // "METHOD path Authorization"
}

func newFakeOpenAI(t testing.TB, accept func(secret string) bool) *fakeProvider {
	t.Helper()
	f := &fakeProvider{accept: accept}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		f.mu.Lock()
		f.seen = append(f.seen, r.Method+" "+r.URL.Path+" "+auth)
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		secret, ok := strings.CutPrefix(auth, "Bearer ")
		switch {
		case r.Method != http.MethodGet || r.URL.Path != "/v1/models":
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"error":{"message":"Unknown request URL","type":"invalid_request_error","code":"unknown_url"}}`)
		case ok && (f.accept == nil || f.accept(secret)):
			_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"gpt-4o","object":"model"}]}`)
		default:
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = io.WriteString(w, `{"error":{"message":"Incorrect API key provided.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

// verifier is a verify.Verifier sending every provider to f.
func (f *fakeProvider) verifier(t testing.TB) *verify.Verifier {
	t.Helper()
	v, err := verify.New(verify.Config{OpenAIBaseURL: f.URL, AnthropicBaseURL: f.URL, GitHubBaseURL: f.URL, StripeBaseURL: f.URL,
		HTTPClient: f.Client(), Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func (f *fakeProvider) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.seen)
}

var (
	lcVersionRow = regexp.MustCompile(`(?s)<tr data-testid="version-row"><td>(\d+)</td>.*?<td data-testid="version-state">(.*?)</td>`)
	lcTags       = regexp.MustCompile(`<[^>]*>`)
	lcSpaces     = regexp.MustCompile(`\s+`)
	lcHidden     = regexp.MustCompile(`<input type="hidden" name="version" value="([^"]*)"`)
)

// lcText is the text of an HTML fragment with whitespace collapsed.
func lcText(fragment string) string {
	return strings.TrimSpace(lcSpaces.ReplaceAllString(html.UnescapeString(lcTags.ReplaceAllString(fragment, " ")), " "))
}

// lcVersionStates reads the key page's versions table: version → state.
func lcVersionStates(t testing.TB, page string) map[int]string {
	t.Helper()
	out := map[int]string{}
	for _, m := range lcVersionRow.FindAllStringSubmatch(page, -1) {
		n, _ := strconv.Atoi(m[1])
		out[n] = lcText(m[2])
	}
	if len(out) == 0 {
		t.Fatalf("the key page has no versions table:\n%s", authzMain(page, ""))
	}
	return out
}

// lcFlashes are the texts of the page's flash messages.
func lcFlashes(page string) []string {
	var out []string
	for _, m := range regexp.MustCompile(`(?s)<div class="flash ([a-z]+)" role="status">(.*?)</div>`).FindAllStringSubmatch(page, -1) {
		out = append(out, m[1]+": "+lcText(m[2]))
	}
	return out
}

func lcHasFlash(page, kind, prefix string) bool {
	for _, f := range lcFlashes(page) {
		if strings.HasPrefix(f, kind+": "+prefix) {
			return true
		}
	}
	return false
}

// lcDestroyAfter is the date the key page shows for a version's end of
// grace, read from the database.
func lcDestroyAfter(t testing.TB, env *testEnv, keyID string, version int) time.Time {
	t.Helper()
	var at *time.Time
	if err := env.Pool.QueryRow(context.Background(), "SELECT destroy_after FROM key_versions WHERE key_id = $1 AND version = $2",
		keyID, version).Scan(&at); err != nil {
		t.Fatal(err)
	}
	if at == nil {
		t.Fatalf("version %d has no destroy_after", version)
	}
	return *at
}

// lcGraceField reports whether the rotate form's grace period field holds
// value.
func lcGraceField(body, value string) bool {
	return regexp.MustCompile(`<input id="grace_days"[^>]* value="` + regexp.QuoteMeta(html.EscapeString(value)) + `"`).MatchString(body)
}

// lcRotate posts the rotate form as c would after loading it.
func lcRotate(c *client, keyID, value, grace, version string) (*http.Response, string) {
	c.t.Helper()
	return c.post("/keys/"+keyID+"/rotate", url.Values{"value": {value}, "grace_days": {grace}, "version": {version}})
}

// lcReveal reveals a version (0: current) and returns the status, the
// value shown ("" when none) and the page.
func lcReveal(c *client, keyID string, version int) (int, string, string) {
	c.t.Helper()
	form := url.Values{"reason": {"lifecycle test"}}
	if version > 0 {
		form.Set("version", strconv.Itoa(version))
	}
	resp, body := c.post("/keys/"+keyID+"/reveal", form)
	m := regexp.MustCompile(`data-testid="secret-value">([^<]*)<`).FindStringSubmatch(body)
	if m == nil {
		return resp.StatusCode, "", body
	}
	return resp.StatusCode, html.UnescapeString(m[1]), body
}

func TestLifecycleRotateThroughForm(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := authzLogin(env, t, "member")
	k, v1 := authzKey(env, t, "member", "development", "rotate me")

	resp, body := c.get("/keys/" + k.ID + "/rotate")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("rotate form: %d", resp.StatusCode)
	}
	if m := lcHidden.FindStringSubmatch(body); len(m) < 2 || m[1] != "1" {
		t.Fatalf("the rotate form's version field: %v", m)
	}
	if !lcGraceField(body, "7") {
		t.Error("the grace period does not default to 7 days")
	}
	if strings.Contains(body, v1) {
		t.Error("the rotate form shows the current value")
	}

	v2 := authzSecret()
	resp, body = lcRotate(c, k.ID, v2, "7", "1")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/keys/"+k.ID+"?rotated=2" {
		t.Fatalf("rotate: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), authzMain(body, ""))
	}
	_, page := c.follow(resp)
	if !lcHasFlash(page, "ok", "Rotated: version 2 is now current.") {
		t.Errorf("no rotation flash: %q", lcFlashes(page))
	}
	if strings.Contains(page, v1) || strings.Contains(page, v2) {
		t.Fatal("the key page shows a value")
	}
	states := lcVersionStates(t, page)
	end := lcDestroyAfter(t, env, k.ID, 1)
	if d := time.Until(end); d < 7*24*time.Hour-time.Hour || d > 7*24*time.Hour+time.Hour {
		t.Errorf("version 1 is destroyed after %v, want 7 days", d)
	}
	if want := "superseded, destroyed on " + end.UTC().Format("2006-01-02"); states[1] != want || states[2] != "current" || len(states) != 2 {
		t.Errorf("versions %v, want 1 %q and 2 current", states, want)
	}
	if after := authzGetKey(env, t, k.ID); after.CurrentVersion != 2 || after.MaskedHint != keyledger.MaskedHint(v2) {
		t.Errorf("key at version %d, hint %q", after.CurrentVersion, after.MaskedHint)
	}
	for _, testid := range []string{"reveal-old", "rollback"} {
		if !strings.Contains(page, `data-testid="`+testid+`"`) {
			t.Errorf("the key page offers no %s for version 1 in its grace period", testid)
		}
	}

	// The current value is the new one; the old one is still there.
	if st, got, _ := lcReveal(c, k.ID, 0); st != http.StatusOK || got != v2 {
		t.Errorf("reveal after rotation: %d, new value shown %v", st, got == v2)
	}
	st, got, body := lcReveal(c, k.ID, 1)
	if st != http.StatusOK || got != v1 {
		t.Errorf("reveal of version 1 in grace: %d, old value shown %v", st, got == v1)
	}
	if !strings.Contains(body, "version 1") || strings.Contains(body, v2) {
		t.Error("the reveal of version 1 does not say so, or shows the new value")
	}
	if st, got, _ := lcReveal(c, k.ID, 9); st != http.StatusNotFound || got != "" {
		t.Errorf("reveal of a version that never existed: %d", st)
	}
	if resp, _ := c.post("/keys/"+k.ID+"/reveal", url.Values{"version": {"one"}}); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("reveal of version \"one\": %d, want 422", resp.StatusCode)
	}
	page2, err := env.Store.ListAudit(t.Context(), actorOf(env, "admin"), storeAuditFilter(k.ID, keyledger.ActionKeyReveal))
	if err != nil {
		t.Fatal(err)
	}
	var versions []int
	for _, e := range page2.Events {
		versions = append(versions, e.KeyVersion)
	}
	if !slices.Equal(versions, []int{1, 2}) {
		t.Errorf("reveal events of versions %v (newest first), want [1 2]", versions)
	}
	if n := authzAuditCount(env, t, k.ID, keyledger.ActionKeyRotate); n != 1 {
		t.Errorf("%d rotate events", n)
	}
	if logs := env.Logs.String(); strings.Contains(logs, v1) || strings.Contains(logs, v2) {
		t.Error("a value is in the server log")
	}
}

func storeAuditFilter(keyID, action string) store.AuditFilter {
	return store.AuditFilter{KeyID: keyID, Action: action, Limit: 100}
}

func TestLifecycleRotateWithoutGrace(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := authzLogin(env, t, "member")
	k, v1 := authzKey(env, t, "member", "development", "no grace")
	v2 := authzSecret()
	resp, body := lcRotate(c, k.ID, v2, "0", "1")
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("rotate with grace 0: %d\n%s", resp.StatusCode, authzMain(body, ""))
	}
	// Past its grace at once: not revealable even before the sweep.
	if st, got, _ := lcReveal(c, k.ID, 1); st != http.StatusConflict || got != "" {
		t.Errorf("reveal of version 1 without grace: %d, value shown %v", st, got != "")
	}
	n, err := env.Store.DestroyExpiredVersions(t.Context())
	if err != nil || n != 1 {
		t.Fatalf("DestroyExpiredVersions: %d, %v", n, err)
	}
	_, page := c.get("/keys/" + k.ID)
	states := lcVersionStates(t, page)
	if !strings.HasPrefix(states[1], "destroyed ") || states[2] != "current" {
		t.Errorf("versions after the sweep: %v", states)
	}
	if strings.Contains(page, `data-testid="reveal-old"`) || strings.Contains(page, `data-testid="rollback"`) {
		t.Error("a destroyed version can still be revealed or rolled back to from the key page")
	}
	before := authzRevealCount(env, t, k.ID)
	st, got, body := lcReveal(c, k.ID, 1)
	if st != http.StatusConflict || got != "" || strings.Contains(body, v1) || strings.Contains(body, `data-testid="secret-value"`) {
		t.Errorf("reveal of the destroyed version 1: status %d, value shown %v", st, got != "")
	}
	if !strings.Contains(body, "destroyed") {
		t.Errorf("the refusal does not say the version was destroyed:\n%s", authzMain(body, ""))
	}
	if after := authzRevealCount(env, t, k.ID); after != before {
		t.Error("a refused reveal was recorded")
	}
	var wrapped, ciphertext []byte
	if err := env.Pool.QueryRow(t.Context(), "SELECT wrapped_dek, ciphertext FROM key_versions WHERE key_id = $1 AND version = 1", k.ID).
		Scan(&wrapped, &ciphertext); err != nil || wrapped != nil || ciphertext != nil {
		t.Errorf("version 1 still has its ciphertext (%v)", err)
	}
	if n := authzAuditCount(env, t, k.ID, keyledger.ActionVersionDestroy); n != 1 {
		t.Errorf("%d version-destroyed events", n)
	}
	// Nor can it come back.
	if resp, _ := c.post("/keys/"+k.ID+"/rollback", url.Values{"version": {"1"}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("rollback to a destroyed version: %d, want 409", resp.StatusCode)
	}
	if st, got, _ := lcReveal(c, k.ID, 0); st != http.StatusOK || got != v2 {
		t.Errorf("the current version after the sweep: %d", st)
	}
}

func TestLifecycleRollback(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := authzLogin(env, t, "lead")
	k, v1 := authzKey(env, t, "member", "staging", "roll me back")
	v2 := authzSecret()
	if resp, body := lcRotate(c, k.ID, v2, "7", "1"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("rotate: %d\n%s", resp.StatusCode, authzMain(body, ""))
	}
	// Version 2 is current: rolling back "to" it is a conflict.
	if resp, _ := c.post("/keys/"+k.ID+"/rollback", url.Values{"version": {"2"}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("rollback to the current version: %d, want 409", resp.StatusCode)
	}
	for _, bad := range []string{"", "abc", "0", "-1"} {
		if resp, _ := c.post("/keys/"+k.ID+"/rollback", url.Values{"version": {bad}}); resp.StatusCode != http.StatusUnprocessableEntity {
			t.Errorf("rollback to version %q: %d, want 422", bad, resp.StatusCode)
		}
	}
	if resp, _ := c.post("/keys/"+k.ID+"/rollback", url.Values{"version": {"9"}}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("rollback to a version that never existed: %d, want 404", resp.StatusCode)
	}
	resp, body := c.post("/keys/"+k.ID+"/rollback", url.Values{"version": {"1"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/keys/"+k.ID+"?rolledback=1" {
		t.Fatalf("rollback: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), authzMain(body, ""))
	}
	_, page := c.follow(resp)
	if !lcHasFlash(page, "ok", "Rolled back: version 1 is current again.") {
		t.Errorf("flashes %q", lcFlashes(page))
	}
	states := lcVersionStates(t, page)
	if states[1] != "current" || !strings.HasPrefix(states[2], "superseded, destroyed on ") {
		t.Errorf("versions after rollback: %v", states)
	}
	if after := authzGetKey(env, t, k.ID); after.CurrentVersion != 1 || after.MaskedHint != keyledger.MaskedHint(v1) {
		t.Errorf("after rollback: version %d, hint %q", after.CurrentVersion, after.MaskedHint)
	}
	if st, got, _ := lcReveal(c, k.ID, 0); st != http.StatusOK || got != v1 {
		t.Errorf("reveal after rollback: %d, old value shown %v", st, got == v1)
	}
	if n := authzAuditCount(env, t, k.ID, keyledger.ActionKeyRollback); n != 1 {
		t.Errorf("%d rollback events", n)
	}
	// A rotation after the rollback starts from version 1 and makes version 3.
	resp, _ = lcRotate(c, k.ID, authzSecret(), "7", "1")
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/keys/"+k.ID+"?rotated=3" {
		t.Errorf("rotate after rollback: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestLifecycleRotateRefused(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := authzLogin(env, t, "member")
	k, v1 := authzKey(env, t, "member", "development", "refuse me")
	_, otherValue := authzKey(env, t, "member2", "production", "elsewhere")
	// A third key was rotated: its version 1 is in its grace period, still
	// revealable and restorable by rollback, so its value is still stored.
	retiring, retiringOld := authzKey(env, t, "lead", "staging", "retiring")
	if _, err := env.Store.RotateKey(t.Context(), actorOf(env, "lead"), retiring.ID, keyledger.RotateInput{Value: authzSecret(), GraceDays: "7"}); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, value, grace, version string
		status                      int
		field, msg                  string
	}{
		// other is a production key of member2: the member may not reveal
		// it, so it is not named (the try is audited on it).
		{"value stored as another key", otherValue, "7", "1", http.StatusConflict, "value", "already stored in keyledger, under a key you may not see"},
		{"value with surrounding whitespace, unconfirmed", "\n " + otherValue + "\r\n", "7", "1", http.StatusUnprocessableEntity, "value", "starts or ends with whitespace"},
		{"the current value", v1, "7", "1", http.StatusConflict, "value", "already stored as"},
		{"empty value", "", "7", "1", http.StatusUnprocessableEntity, "value", "Paste the key's value"},
		{"grace abc", authzSecret(), "abc", "1", http.StatusUnprocessableEntity, "grace_days", "whole number of days from 0 to 90"},
		{"grace -1", authzSecret(), "-1", "1", http.StatusUnprocessableEntity, "grace_days", "whole number of days from 0 to 90"},
		{"grace 91", authzSecret(), "91", "1", http.StatusUnprocessableEntity, "grace_days", "whole number of days from 0 to 90"},
		{"grace 1.5", authzSecret(), "1.5", "1", http.StatusUnprocessableEntity, "grace_days", "whole number"},
		{"damaged version field", authzSecret(), "7", "one", http.StatusUnprocessableEntity, "version", "reload the page"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := authzFor(c, t)
			before := formsCount(env, t)
			old := authzGetKey(env, t, k.ID)
			resp, body := lcRotate(c, k.ID, tc.value, tc.grace, tc.version)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d\n%s", resp.StatusCode, tc.status, authzMain(body, ""))
			}
			msg, ok := formsFieldError(body, tc.field)
			if !ok || !strings.Contains(msg, tc.msg) {
				t.Errorf("error-%s = %q (found %v), want it to contain %q", tc.field, msg, ok, tc.msg)
			}
			if tc.field != "version" {
				formsErrorNextToField(t, body, tc.field)
			}
			if !strings.Contains(body, `data-testid="rotate-submit"`) || !strings.Contains(body, `data-testid="form-error"`) {
				t.Error("the rotate form is not re-rendered with its message")
			}
			if m := formsValueTextarea.FindStringSubmatch(body); len(m) < 2 || m[1] != "" {
				t.Errorf("the value textarea is missing or not empty: %q", m)
			}
			formsNoValue(t, env, body, tc.value)
			formsNoValue(t, env, body, v1)
			if tc.field == "grace_days" && !lcGraceField(body, tc.grace) {
				t.Error("the typed grace period is not kept in the form")
			}
			if tc.status == http.StatusConflict {
				before.audit++ // key.duplicate_value on the key holding it
				if tc.value == otherValue {
					// The member may not reveal it: a leak signal, so a leak
					// incident opens on it too (leak.incident_open).
					before.audit++
				}
			}
			if after := formsCount(env, t); after != before {
				t.Errorf("rows changed: before %+v, after %+v", before, after)
			}
			if now := authzGetKey(env, t, k.ID); now.CurrentVersion != 1 || now.MaskedHint != old.MaskedHint || !now.UpdatedAt.Equal(old.UpdatedAt) {
				t.Errorf("the key changed: version %d", now.CurrentVersion)
			}
		})
	}
	if st, got, _ := lcReveal(c, k.ID, 0); st != http.StatusOK || got != v1 {
		t.Error("the value changed")
	}
	t.Run("value of another key's version in its grace period", func(t *testing.T) {
		c := authzFor(c, t)
		k2, _ := authzKey(env, t, "member", "development", "refuse me too")
		before := formsCount(env, t)
		resp, body := lcRotate(c, k2.ID, retiringOld, "7", "1")
		if resp.StatusCode != http.StatusConflict {
			t.Fatalf("status %d, want 409: the value is still stored as version 1 of %q", resp.StatusCode, retiring.Name)
		}
		if msg, _ := formsFieldError(body, "value"); !strings.Contains(msg, fmt.Sprintf("already stored as %q", retiring.Name)) {
			t.Errorf("error-value %q", msg)
		}
		formsNoValue(t, env, body, retiringOld)
		before.audit++ // key.duplicate_value on the retiring key
		if after := formsCount(env, t); after != before {
			t.Errorf("rows changed: before %+v, after %+v", before, after)
		}
	})
	// An archived key cannot be rotated.
	if err := env.Store.ArchiveKey(t.Context(), actorOf(env, "member"), k.ID); err != nil {
		t.Fatal(err)
	}
	if resp, _ := lcRotate(c, k.ID, authzSecret(), "7", "1"); resp.StatusCode != http.StatusConflict {
		t.Errorf("rotate an archived key: %d, want 409", resp.StatusCode)
	}
	if resp, body := c.get("/keys/" + k.ID); resp.StatusCode != http.StatusOK || strings.Contains(body, `data-testid="rotate"`) {
		t.Errorf("an archived key's page offers rotation (%d)", resp.StatusCode)
	}
}

// lcRawPost posts a form with a given token without touching c (safe from
// several goroutines at once).
func lcRawPost(c *client, token, path string, form url.Values) (int, string, string, error) {
	form.Set("_csrf", token)
	req, err := http.NewRequest(http.MethodPost, c.env.HTTP.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Location"), string(b), err
}

const lcRaceMessage = "Someone rotated this key a moment ago"

// TestLifecycleRotateRace: two rotations submitted from the same form (the
// same version field) at the same moment, as from two tabs: exactly one
// wins, the other is told someone else rotated, and the version goes up by
// exactly one.
func TestLifecycleRotateRace(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := authzLogin(env, t, "member")
	k, _ := authzKey(env, t, "member", "development", "race me")
	const rounds = 6
	for round := 1; round <= rounds; round++ {
		_, form := c.get("/keys/" + k.ID + "/rotate")
		m := lcHidden.FindStringSubmatch(form)
		if len(m) < 2 || m[1] != strconv.Itoa(round) {
			t.Fatalf("round %d: the form's version field is %v", round, m)
		}
		values := [2]string{authzSecret(), authzSecret()}
		type answer struct {
			status         int
			location, body string
			err            error
		}
		var answers [2]answer
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Go(func() {
				<-start
				var a answer
				a.status, a.location, a.body, a.err = lcRawPost(c, c.csrf, "/keys/"+k.ID+"/rotate",
					url.Values{"value": {values[i]}, "grace_days": {"7"}, "version": {m[1]}})
				answers[i] = a
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, a := range answers {
			if a.err != nil {
				t.Fatal(a.err)
			}
			switch a.status {
			case http.StatusSeeOther:
				if winner >= 0 {
					t.Fatalf("round %d: both rotations succeeded", round)
				}
				winner = i
				if want := fmt.Sprintf("/keys/%s?rotated=%d", k.ID, round+1); a.location != want {
					t.Errorf("round %d: Location %q, want %q", round, a.location, want)
				}
			case http.StatusConflict:
				if !strings.Contains(html.UnescapeString(a.body), lcRaceMessage) {
					t.Errorf("round %d: the refused rotation does not say someone rotated first:\n%s", round, authzMain(a.body, ""))
				}
				if strings.Contains(a.body, values[i]) {
					t.Errorf("round %d: the refused rotation echoes its value", round)
				}
			default:
				t.Fatalf("round %d: status %d\n%s", round, a.status, authzMain(a.body, ""))
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: neither rotation succeeded", round)
		}
		if now := authzGetKey(env, t, k.ID); now.CurrentVersion != round+1 {
			t.Fatalf("round %d: version %d, want %d", round, now.CurrentVersion, round+1)
		}
		if rev, err := env.Store.Reveal(t.Context(), actorOf(env, "member"), k.ID, ""); err != nil || rev.Value != values[winner] {
			t.Errorf("round %d: the current value is not the winner's (%v)", round, err)
		}
	}
	if n := authzAuditCount(env, t, k.ID, keyledger.ActionKeyRotate); n != rounds {
		t.Errorf("%d rotate events after %d rounds", n, rounds)
	}
	var versions int
	if err := env.Pool.QueryRow(t.Context(), "SELECT count(*) FROM key_versions WHERE key_id = $1", k.ID).Scan(&versions); err != nil || versions != rounds+1 {
		t.Errorf("%d stored versions, want %d (%v)", versions, rounds+1, err)
	}

	// The same, one after the other: the second form is stale.
	_, form := c.get("/keys/" + k.ID + "/rotate")
	m := lcHidden.FindStringSubmatch(form)
	first, second := authzSecret(), authzSecret()
	if resp, _ := lcRotate(c, k.ID, first, "7", m[1]); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("first rotation: %d", resp.StatusCode)
	}
	resp, body := lcRotate(c, k.ID, second, "7", m[1])
	if resp.StatusCode != http.StatusConflict {
		t.Fatalf("stale rotation: %d, want 409\n%s", resp.StatusCode, authzMain(body, ""))
	}
	if msg, ok := formsFieldError(body, "value"); !ok || !strings.Contains(msg, lcRaceMessage) || !strings.Contains(msg, fmt.Sprintf("version %d", rounds+2)) {
		t.Errorf("stale rotation message %q", msg)
	}
	formsNoValue(t, env, body, second)
	if now := authzGetKey(env, t, k.ID); now.CurrentVersion != rounds+2 {
		t.Errorf("version %d after a stale rotation, want %d", now.CurrentVersion, rounds+2)
	}
	if rev, err := env.Store.Reveal(t.Context(), actorOf(env, "member"), k.ID, ""); err != nil || rev.Value != first {
		t.Error("the stale rotation replaced the value")
	}
}

// lcKeyRow is a key's row in the key list, as text.
func lcKeyRow(t testing.TB, list, name string) (text, raw string) {
	t.Helper()
	for _, m := range regexp.MustCompile(`(?s)<tr data-testid="key-row">(.*?)</tr>`).FindAllStringSubmatch(list, -1) {
		if strings.Contains(m[1], `<span class="key-name">`+html.EscapeString(name)+"</span>") {
			return lcText(m[1]), m[1]
		}
	}
	t.Fatalf("no row for %q in the key list", name)
	return "", ""
}

// lcVerifiedDD is the "Last verified" detail of the key page.
func lcVerifiedDD(page string) string {
	m := regexp.MustCompile(`(?s)<dt>Last verified</dt>\s*<dd>(.*?)</dd>`).FindStringSubmatch(page)
	if m == nil {
		return ""
	}
	return lcText(m[1])
}

func TestLifecycleVerify(t *testing.T) {
	t.Parallel()
	good, bad := authzSecret(), authzSecret()
	fake := newFakeOpenAI(t, func(s string) bool { return s == good })
	env := newEnv(t, withVerifier(fake.verifier(t)))
	kGood := env.createKey("member", "production", "works", good)
	kBad := env.createKey("member", "development", "revoked", bad)
	c := authzLogin(env, t, "member")
	today := time.Now().UTC().Format("2006-01-02")

	if _, page := c.get("/keys/" + kGood.ID); !strings.Contains(page, `data-testid="verify-submit"`) || !strings.Contains(lcVerifiedDD(page), "never checked") {
		t.Errorf("before: the key page has no Verify button or says %q", lcVerifiedDD(page))
	}
	for _, tc := range []struct {
		k            *keyledger.Key
		value        string
		result       string
		flash, badge string
		msg          string
	}{
		{kGood, good, "ok", "ok: Verified: the provider accepted the key.", "ok " + today, "OpenAI accepted the key (HTTP 200)."},
		{kBad, bad, "invalid", "warn: Checked: the result is below.", "invalid " + today, "OpenAI rejected the key as invalid or revoked (HTTP 401 invalid_api_key)."},
	} {
		resp, body := c.post("/keys/"+tc.k.ID+"/verify", nil)
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/keys/"+tc.k.ID+"?verified="+tc.result {
			t.Fatalf("verify %s: %d %q\n%s", tc.k.Name, resp.StatusCode, resp.Header.Get("Location"), authzMain(body, ""))
		}
		_, page := c.follow(resp)
		if !slices.Contains(lcFlashes(page), tc.flash) {
			t.Errorf("%s: flashes %q, want %q", tc.k.Name, lcFlashes(page), tc.flash)
		}
		if dd := lcVerifiedDD(page); dd != tc.badge+" "+tc.msg {
			t.Errorf("%s: Last verified %q, want %q", tc.k.Name, dd, tc.badge+" "+tc.msg)
		}
		if strings.Contains(page, tc.value) {
			t.Errorf("%s: the key page shows the value", tc.k.Name)
		}
		// The audit says who checked, with what result, and never the value.
		events, err := env.Store.ListAudit(t.Context(), actorOf(env, "admin"), storeAuditFilter(tc.k.ID, keyledger.ActionKeyVerify))
		if err != nil || len(events.Events) != 1 {
			t.Fatalf("%s: %d verify events (%v)", tc.k.Name, len(events.Events), err)
		}
		e := events.Events[0]
		var details map[string]any
		if err := json.Unmarshal([]byte(e.Details), &details); err != nil || details["result"] != tc.result || details["provider"] != "openai" {
			t.Errorf("%s: verify event details %s (%v)", tc.k.Name, e.Details, err)
		}
		if e.ActorEmail != "member@example.com" || e.KeyVersion != 1 {
			t.Errorf("%s: verify event by %q for version %d", tc.k.Name, e.ActorEmail, e.KeyVersion)
		}
		if s := fmt.Sprintf("%+v", e); strings.Contains(s, tc.value) || strings.Contains(s, tc.value[8:]) {
			t.Errorf("%s: the verify event contains the value", tc.k.Name)
		}
		if n := authzRevealCount(env, t, tc.k.ID); n != 0 {
			t.Errorf("%s: a check was recorded as %d reveals", tc.k.Name, n)
		}
	}
	// The provider got each key as a bearer token on GET /v1/models.
	seen := fake.requests()
	for _, v := range []string{good, bad} {
		if !slices.Contains(seen, "GET /v1/models Bearer "+v) {
			t.Errorf("the provider did not get the key as a bearer token: %d requests", len(seen))
		}
	}
	// The list shows a failing result as a red badge, a good one as text.
	_, list := c.get("/keys")
	for name, want := range map[string]string{"works": `<small class="cell-notes">rotate by `, "revoked": `<span class="badge bad">Failing: invalid</span>`} {
		if _, raw := lcKeyRow(t, list, name); !strings.Contains(raw, want) {
			t.Errorf("key list row of %s lacks %s", name, want)
		}
	}
	if _, raw := lcKeyRow(t, list, "works"); strings.Contains(raw, "badge") || !strings.Contains(raw, "verified "+today) {
		t.Errorf("the working key's row has a badge, or does not say it was verified today: %s", raw)
	}
	if _, list := c.get("/keys?status=failing"); strings.Count(list, `data-testid="key-cell"`) != 1 || !strings.Contains(list, `<span class="key-name">revoked</span>`) {
		t.Error("the failing filter does not list exactly the revoked key")
	}
	// A non-owner member may not check a production key; any member may
	// check a development one (whoever may reveal a key may check it).
	other := authzLogin(env, t, "member2")
	if resp, _ := other.post("/keys/"+kGood.ID+"/verify", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("member2 checks a production key: %d, want 403", resp.StatusCode)
	}
	if resp, _ := other.post("/keys/"+kBad.ID+"/verify", nil); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("member2 checks a development key: %d, want 303", resp.StatusCode)
	}
	if logs := env.Logs.String(); strings.Contains(logs, good) || strings.Contains(logs, bad) {
		t.Error("a value is in the server log")
	}
}

func TestLifecycleVerifyByHand(t *testing.T) {
	t.Parallel()
	env := newEnv(t, withVerifier(newFakeOpenAI(t, nil).verifier(t)))
	value := "AKIA" + strings.ToUpper(authzRand(8))
	k := env.createKey("member", "staging", "backups S3", value)
	if k.Provider != keyledger.ProviderAWS {
		t.Fatalf("provider %q, want aws", k.Provider)
	}
	c := authzLogin(env, t, "member")
	_, page := c.get("/keys/" + k.ID)
	if strings.Contains(page, `data-testid="verify-submit"`) || !strings.Contains(page, `data-testid="manual-verify"`) {
		t.Fatal("an AWS key's page must offer the check by hand, not Verify now")
	}
	// keyledger cannot call AWS.
	if resp, body := c.post("/keys/"+k.ID+"/verify", nil); resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, "cannot check AWS keys automatically") {
		t.Errorf("automatic check of an AWS key: %d", resp.StatusCode)
	}
	before := formsCount(env, t)
	for _, note := range []string{"", "   "} {
		resp, body := c.post("/keys/"+k.ID+"/verify", url.Values{"manual": {"1"}, "note": {note}})
		if resp.StatusCode != http.StatusUnprocessableEntity {
			t.Fatalf("manual check with note %q: %d\n%s", note, resp.StatusCode, authzMain(body, ""))
		}
		if msg, ok := formsFieldError(body, "note"); !ok || !strings.Contains(msg, "Say how you checked") {
			t.Errorf("error-note %q", msg)
		}
		formsErrorNextToField(t, body, "note")
	}
	if resp, body := c.post("/keys/"+k.ID+"/verify", url.Values{"manual": {"1"}, "note": {strings.Repeat("n", 301)}}); resp.StatusCode != http.StatusUnprocessableEntity {
		t.Errorf("manual check with a 301-character note: %d\n%s", resp.StatusCode, authzMain(body, ""))
	}
	if after := formsCount(env, t); after != before {
		t.Errorf("a refused manual check changed rows: %+v → %+v", before, after)
	}
	if authzGetKey(env, t, k.ID).LastVerifiedAt != nil {
		t.Fatal("a refused manual check was recorded")
	}
	const note = "listed the backups bucket with the AWS CLI"
	resp, body := c.post("/keys/"+k.ID+"/verify", url.Values{"manual": {"1"}, "note": {note}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/keys/"+k.ID+"?verified=manual" {
		t.Fatalf("manual check: %d %q\n%s", resp.StatusCode, resp.Header.Get("Location"), authzMain(body, ""))
	}
	_, page = c.follow(resp)
	today := time.Now().UTC().Format("2006-01-02")
	if !slices.Contains(lcFlashes(page), "ok: Marked as verified by hand.") {
		t.Errorf("flashes %q", lcFlashes(page))
	}
	if dd, want := lcVerifiedDD(page), "manual "+today+" Checked by hand: "+note; dd != want {
		t.Errorf("Last verified %q, want %q", dd, want)
	}
	_, list := c.get("/keys")
	text, raw := lcKeyRow(t, list, "backups S3")
	if !strings.Contains(text, "verified by hand "+today) {
		t.Errorf("key list row %q does not say it was verified by hand", text)
	}
	// A key checked by hand is not failing: no red badge of revoked keys.
	if strings.Contains(raw, `class="badge bad"`) {
		t.Errorf("the manually verified key has a problem badge: %s", raw)
	}
	events, err := env.Store.ListAudit(t.Context(), actorOf(env, "admin"), storeAuditFilter(k.ID, keyledger.ActionKeyVerify))
	if err != nil || len(events.Events) != 1 || !strings.Contains(events.Events[0].Details, `"result": "manual"`) {
		t.Errorf("manual verify events: %+v (%v)", events.Events, err)
	}
	// Only people who may edit the key may vouch for it.
	other := authzLogin(env, t, "member2")
	if resp, _ := other.post("/keys/"+k.ID+"/verify", url.Values{"manual": {"1"}, "note": {"trust me"}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("member2 marks member's key verified: %d, want 403", resp.StatusCode)
	}
}

// lcExport posts the export form and returns the response and body.
func lcExport(c *client, envName, project, format, reason string) (*http.Response, string) {
	c.t.Helper()
	return c.post("/export", url.Values{"environment": {envName}, "project": {project}, "format": {format}, "reason": {reason}})
}

// lcCheckDownload checks the headers of an export download.
func lcCheckDownload(t testing.TB, resp *http.Response, ext, ctype string) {
	t.Helper()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("export: status %d", resp.StatusCode)
	}
	cd := resp.Header.Get("Content-Disposition")
	if !regexp.MustCompile(`^attachment; filename="keyledger-[a-z0-9_-]+-\d{8}` + regexp.QuoteMeta(ext) + `"$`).MatchString(cd) {
		t.Errorf("Content-Disposition %q, want an attachment named *%s", cd, ext)
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", cc)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, ctype) {
		t.Errorf("Content-Type %q, want %s", ct, ctype)
	}
}

// lcShell sources file in a real shell and prints each variable.
func lcShell(t testing.TB, shell, file string, names ...string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range names {
		var cmd *exec.Cmd
		switch shell {
		case "bash":
			cmd = exec.Command("bash", "--noprofile", "--norc", "-c", `set -a; source "$1"; printf %s "$`+name+`"`, "bash", file)
		case "fish":
			cmd = exec.Command("fish", "--no-config", "-c", `source $argv[1]; printf %s $`+name, file)
		}
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "XDG_CONFIG_HOME=" + t.TempDir(), "XDG_DATA_HOME=" + t.TempDir()}
		b, err := cmd.Output()
		if err != nil {
			var stderr string
			if ee, ok := err.(*exec.ExitError); ok {
				stderr = string(ee.Stderr)
			}
			t.Fatalf("%s: %v\n%s", shell, err, stderr)
		}
		out[name] = string(b)
	}
	return out
}

func TestLifecycleExportFormats(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	// Quotes, $, backslashes, spaces and a backtick: each value is
	// representable in every format (dotenv refuses ' together with ", \
	// or $, so the ' goes in the other value).
	values := map[string]string{
		"OPENAI_API_KEY":    `sk-proj-q"uo$te\back slash $HOME ` + "`id`" + ` $(id) end`,
		"ANTHROPIC_API_KEY": `sk-ant-O'Brien key 42 #not a comment ; & | *`,
	}
	kOpenAI := env.createKey("member", "development", "openai dev", values["OPENAI_API_KEY"])
	kAnthropic := env.createKey("member2", "development", "anthropic dev", values["ANTHROPIC_API_KEY"])
	if kOpenAI.Provider != keyledger.ProviderOpenAI || kAnthropic.Provider != keyledger.ProviderAnthropic {
		t.Fatalf("providers %q and %q", kOpenAI.Provider, kAnthropic.Provider)
	}
	// A staging key is not part of a development export, nor is an
	// archived one.
	_, stagingValue := authzKey(env, t, "member", "staging", "staging key")
	gone, goneValue := authzKey(env, t, "member", "development", "archived key")
	if err := env.Store.ArchiveKey(t.Context(), actorOf(env, "member"), gone.ID); err != nil {
		t.Fatal(err)
	}
	c := authzLogin(env, t, "member")

	resp, page := c.get("/export?environment=development")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /export: %d", resp.StatusCode)
	}
	included, refused := exportLists(page)
	if !strings.Contains(included, "openai dev") || !strings.Contains(included, "anthropic dev") || refused != "" ||
		strings.Contains(included, "staging key") || strings.Contains(included, "archived key") {
		t.Errorf("export preview: included %q, left out %q", lcText(included), lcText(refused))
	}
	if !strings.Contains(page, `data-testid="export-submit"`) {
		t.Error("the export page has no download button")
	}

	names := []string{"OPENAI_API_KEY", "ANTHROPIC_API_KEY"}
	dir := t.TempDir()
	exports := 0
	for _, tc := range []struct {
		format, ext, ctype string
		read               func(t *testing.T, file string, body []byte) map[string]string
	}{
		{"dotenv", ".env", "text/plain", func(t *testing.T, _ string, body []byte) map[string]string {
			m, err := godotenv.UnmarshalBytes(body)
			if err != nil {
				t.Fatal(err)
			}
			return m
		}},
		{"bash", ".sh", "text/plain", func(t *testing.T, file string, _ []byte) map[string]string {
			return lcShell(t, "bash", file, names...)
		}},
		{"fish", ".fish", "text/plain", func(t *testing.T, file string, _ []byte) map[string]string {
			if _, err := exec.LookPath("fish"); err != nil {
				t.Skip("fish is not installed")
			}
			return lcShell(t, "fish", file, names...)
		}},
		{"powershell", ".ps1", "text/plain", func(t *testing.T, _ string, body []byte) map[string]string {
			// No PowerShell here: read the single-quoted assignments
			// back by PowerShell's rule ('' is one ').
			out := map[string]string{}
			for _, m := range regexp.MustCompile(`(?m)^\$env:([A-Z_]+) = '((?:[^']|'')*)'$`).FindAllStringSubmatch(string(body), -1) {
				out[m[1]] = strings.ReplaceAll(m[2], "''", "'")
			}
			return out
		}},
		{"json", ".json", "application/json", func(t *testing.T, _ string, body []byte) map[string]string {
			var m map[string]string
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			return m
		}},
	} {
		t.Run(tc.format, func(t *testing.T) {
			c := authzFor(c, t)
			resp, body := lcExport(c, "development", "", tc.format, "local setup")
			lcCheckDownload(t, resp, tc.ext, tc.ctype)
			exports++
			if strings.Contains(body, stagingValue) || strings.Contains(body, goneValue) {
				t.Error("the development export holds the staging or the archived key")
			}
			file := filepath.Join(dir, "export"+tc.ext)
			if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			got := tc.read(t, file, []byte(body))
			for _, name := range names {
				if got[name] != values[name] {
					t.Errorf("%s reads back %q, want %q\nfile:\n%s", name, got[name], values[name], body)
				}
			}
			if len(got) != len(names) && tc.format != "bash" && tc.format != "fish" {
				t.Errorf("the file sets %d variables, want %d", len(got), len(names))
			}
		})
	}
	// Each key of each download is audited as an export, without the value.
	for _, k := range []*keyledger.Key{kOpenAI, kAnthropic} {
		events, err := env.Store.ListAudit(t.Context(), actorOf(env, "admin"), storeAuditFilter(k.ID, keyledger.ActionKeyExport))
		if err != nil || len(events.Events) != exports {
			t.Fatalf("%s: %d export events after %d downloads (%v)", k.Name, len(events.Events), exports, err)
		}
		for _, e := range events.Events {
			if e.ActorEmail != "member@example.com" || e.Reason != "local setup" || e.Environment != "development" {
				t.Errorf("export event %+v", e)
			}
			if s := fmt.Sprintf("%+v", e); strings.Contains(s, values["OPENAI_API_KEY"]) || strings.Contains(s, values["ANTHROPIC_API_KEY"]) {
				t.Error("an export event contains a value")
			}
		}
		if n := authzRevealCount(env, t, k.ID); n != 0 {
			t.Errorf("%s: exports recorded as %d reveals", k.Name, n)
		}
	}
	if logs := env.Logs.String(); strings.Contains(logs, values["OPENAI_API_KEY"]) || strings.Contains(logs, values["ANTHROPIC_API_KEY"]) {
		t.Error("a value is in the server log")
	}
}

func TestLifecycleExportProductionLeavesOut(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	theirs, theirValue := authzKey(env, t, "member", "production", "member's prod")
	mine, myValue := authzKey(env, t, "member2", "production", "member2's prod")
	c := authzLogin(env, t, "member2")
	resp, page := c.get("/export?environment=production")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /export: %d", resp.StatusCode)
	}
	included, refused := exportLists(page)
	if !strings.Contains(included, mine.Name) || strings.Contains(included, theirs.Name) {
		t.Errorf("In the file: %q", lcText(included))
	}
	if !strings.Contains(refused, theirs.Name) || !strings.Contains(refused, "only the key's owner, leads and admins") {
		t.Errorf("Left out: %q, want %s with the policy's reason", lcText(refused), theirs.Name)
	}
	if !regexp.MustCompile(`<h3>Left out <span class="badge warn">1</span></h3>`).MatchString(page) {
		t.Error(`the page has no "Left out" heading with a count of 1`)
	}
	resp, body := lcExport(c, "production", "", "json", "deploy")
	lcCheckDownload(t, resp, ".json", "application/json")
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got["OPENAI_API_KEY"] != myValue {
		t.Errorf("the production export holds %d keys, own value %v", len(got), got["OPENAI_API_KEY"] == myValue)
	}
	if strings.Contains(body, theirValue) {
		t.Error("the export holds a key member2 may not reveal")
	}
	if n := authzAuditCount(env, t, mine.ID, keyledger.ActionKeyExport); n != 1 {
		t.Errorf("%d export events for member2's key", n)
	}
	if n := authzAuditCount(env, t, theirs.ID, keyledger.ActionKeyExport); n != 0 {
		t.Errorf("%d export events for the key left out", n)
	}
	// With nothing member2 may reveal, there is no file at all.
	if _, err := env.Pool.Exec(t.Context(), "UPDATE keys SET project = 'search' WHERE id = $1", theirs.ID); err != nil {
		t.Fatal(err)
	}
	resp, body = lcExport(c, "production", "search", "json", "deploy")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Disposition") != "" || !strings.Contains(body, "nothing to download") || strings.Contains(body, theirValue) {
		t.Errorf("export of nothing allowed: %d %q", resp.StatusCode, resp.Header.Get("Content-Disposition"))
	}
	// The owner gets their own key.
	owner := authzLogin(env, t, "member")
	resp, body = lcExport(owner, "production", "", "json", "deploy")
	lcCheckDownload(t, resp, ".json", "application/json")
	if !strings.Contains(body, theirValue) || strings.Contains(body, myValue) {
		t.Error("the owner's production export does not hold exactly their key")
	}
}

func TestLifecycleExportRefused(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	awkward := `sk-proj-it's "quoted" text`
	k := env.createKey("member", "development", "awkward", awkward)
	authzKey(env, t, "member", "staging", "staging key")
	c := authzLogin(env, t, "member")
	cases := []struct {
		name                             string
		envName, project, format, reason string
		field, msg                       string
	}{
		{"staging without reason", "staging", "", "json", "", "reason", "asks for a reason"},
		{"staging with a blank reason", "staging", "", "json", "  ", "reason", "asks for a reason"},
		{"unknown format", "development", "", "xml", "", "format", "Choose dotenv, env-file, bash, fish, powershell or json"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := authzFor(c, t)
			before := formsCount(env, t)
			resp, body := lcExport(c, tc.envName, tc.project, tc.format, tc.reason)
			if resp.StatusCode != http.StatusUnprocessableEntity {
				t.Fatalf("status %d, want 422\n%s", resp.StatusCode, authzMain(body, ""))
			}
			if cd := resp.Header.Get("Content-Disposition"); cd != "" {
				t.Errorf("a refused export is a download: %q", cd)
			}
			if msg, ok := formsFieldError(body, tc.field); !ok || !strings.Contains(msg, tc.msg) {
				t.Errorf("error-%s = %q (found %v), want %q\n%s", tc.field, msg, ok, tc.msg, authzMain(body, ""))
			}
			formsErrorNextToField(t, body, tc.field)
			if !strings.Contains(body, `data-testid="export-submit"`) {
				t.Error("the export form is not shown again")
			}
			formsNoValue(t, env, body, awkward)
			if after := formsCount(env, t); after != before {
				t.Errorf("rows changed (an export was recorded?): %+v → %+v", before, after)
			}
		})
	}
	// .env cannot carry it (' with "): it is left out, and as it is the
	// only key there is nothing to download; the page names the key and
	// why, not the value, and nothing is audited. json carries it.
	resp, body := lcExport(c, "development", "", "dotenv", "")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Disposition") != "" || !strings.Contains(body, "nothing to download") {
		t.Errorf("dotenv export of an awkward value only: status %d, %q", resp.StatusCode, resp.Header.Get("Content-Disposition"))
	}
	if page := html.UnescapeString(body); !strings.Contains(page, "awkward") || !strings.Contains(page, "not in .env: contains ' together with") {
		t.Errorf("the page does not say why the key is left out:\n%s", authzMain(body, ""))
	}
	formsNoValue(t, env, body, awkward)
	resp, body = lcExport(c, "development", "", "json", "")
	lcCheckDownload(t, resp, ".json", "application/json")
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil || got["OPENAI_API_KEY"] != awkward {
		t.Errorf("json export of the awkward value: %v", err)
	}
	if n := authzAuditCount(env, t, k.ID, keyledger.ActionKeyExport); n != 1 {
		t.Errorf("%d export events, want 1 (the json download only)", n)
	}
	// An unknown environment is refused without a file.
	before := formsCount(env, t)
	if resp, body := lcExport(c, "qa", "", "json", "x"); resp.StatusCode != http.StatusUnprocessableEntity || resp.Header.Get("Content-Disposition") != "" {
		t.Errorf("export of an unknown environment: %d\n%s", resp.StatusCode, authzMain(body, ""))
	}
	if after := formsCount(env, t); after != before {
		t.Error("an export of an unknown environment changed rows")
	}
}

func TestLifecycleExportDistinctNames(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	ctx := t.Context()
	values := map[string]string{"checkout": authzSecret(), "search": authzSecret()}
	for project, v := range values {
		if _, err := env.Store.CreateKey(ctx, actorOf(env, "member"), keyledger.KeyInput{Name: "openai " + project, Project: project,
			Environment: "development", OwnerEmail: "member@example.com", Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	c := authzLogin(env, t, "member")
	resp, body := lcExport(c, "development", "", "json", "")
	lcCheckDownload(t, resp, ".json", "application/json")
	var got map[string]string
	if err := json.Unmarshal([]byte(body), &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"OPENAI_API_KEY_CHECKOUT": values["checkout"], "OPENAI_API_KEY_SEARCH": values["search"]}
	if len(got) != 2 || got["OPENAI_API_KEY_CHECKOUT"] != want["OPENAI_API_KEY_CHECKOUT"] || got["OPENAI_API_KEY_SEARCH"] != want["OPENAI_API_KEY_SEARCH"] {
		t.Errorf("variables %v, want OPENAI_API_KEY_CHECKOUT and OPENAI_API_KEY_SEARCH with their values", slices.Sorted(func(yield func(string) bool) {
			for k := range got {
				if !yield(k) {
					return
				}
			}
		}))
	}
	// And a shell sees both.
	resp, body = lcExport(c, "development", "", "bash", "")
	lcCheckDownload(t, resp, ".sh", "text/plain")
	file := filepath.Join(t.TempDir(), "keys.sh")
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if sh := lcShell(t, "bash", file, "OPENAI_API_KEY_CHECKOUT", "OPENAI_API_KEY_SEARCH"); sh["OPENAI_API_KEY_CHECKOUT"] != values["checkout"] || sh["OPENAI_API_KEY_SEARCH"] != values["search"] {
		t.Error("bash does not read back both keys")
	}
	// One project only: the plain name.
	resp, body = lcExport(c, "development", "search", "json", "")
	lcCheckDownload(t, resp, ".json", "application/json")
	got = nil
	if err := json.Unmarshal([]byte(body), &got); err != nil || len(got) != 1 || got["OPENAI_API_KEY"] != values["search"] {
		t.Errorf("export of project search: %v (%v)", got != nil, err)
	}
	if cd := resp.Header.Get("Content-Disposition"); !strings.Contains(cd, "keyledger-development-search-") {
		t.Errorf("Content-Disposition %q does not name the project", cd)
	}
}

func TestLifecycleRotationPage(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	ctx := t.Context()
	setRotateBy := func(k *keyledger.Key, days int) {
		if _, err := env.Pool.Exec(ctx, "UPDATE keys SET rotate_by = now() + make_interval(days => $2) WHERE id = $1", k.ID, days); err != nil {
			t.Fatal(err)
		}
	}
	late, _ := authzKey(env, t, "member", "production", "three days late")
	later, _ := authzKey(env, t, "lead", "staging", "a month late")
	soon, _ := authzKey(env, t, "member2", "development", "due in five days")
	fine, _ := authzKey(env, t, "member", "development", "fine for months")
	setRotateBy(late, -3)
	setRotateBy(later, -30)
	setRotateBy(soon, 5)
	archived, _ := authzKey(env, t, "member", "development", "archived and late")
	setRotateBy(archived, -90)
	if err := env.Store.ArchiveKey(ctx, actorOf(env, "member"), archived.ID); err != nil {
		t.Fatal(err)
	}

	c := authzLogin(env, t, "member2") // any active user sees the overview
	resp, page := c.get("/rotation")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /rotation: %d", resp.StatusCode)
	}
	sections := regexp.MustCompile(`(?s)<section data-testid="rotation-([a-z_]+)">(.*?)</section>`).FindAllStringSubmatch(page, -1)
	var order []string
	rows := map[string][]string{}
	for _, s := range sections {
		order = append(order, s[1])
		for _, m := range regexp.MustCompile(`(?s)<tr data-testid="rotation-row"><td><a href="[^"]*">([^<]*)</a>`).FindAllStringSubmatch(s[2], -1) {
			rows[s[1]] = append(rows[s[1]], html.UnescapeString(m[1]))
		}
	}
	if !slices.Equal(order, []string{"overdue", "due_soon", "ok"}) {
		t.Errorf("sections %v, want overdue first, then due_soon, then ok", order)
	}
	if !slices.Equal(rows["overdue"], []string{later.Name, late.Name}) {
		t.Errorf("overdue: %q, want the most overdue first", rows["overdue"])
	}
	if !slices.Equal(rows["due_soon"], []string{soon.Name}) || !slices.Equal(rows["ok"], []string{fine.Name}) {
		t.Errorf("due soon %q, ok %q", rows["due_soon"], rows["ok"])
	}
	overdue := sections[0][2]
	if !strings.Contains(overdue, `<span class="badge">2</span>`) || !strings.Contains(overdue, `class="badge overdue"`) {
		t.Error("the overdue section lacks its count or the overdue badges")
	}
	if strings.Contains(page, "archived and late") {
		t.Error("an archived key is listed for rotation")
	}
	// Rotating the late key takes it off the overdue list.
	lead := authzLogin(env, t, "lead")
	if resp, body := lcRotate(lead, late.ID, authzSecret(), "7", "1"); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("rotate: %d\n%s", resp.StatusCode, authzMain(body, ""))
	}
	_, page = c.get("/rotation")
	if m := regexp.MustCompile(`(?s)<section data-testid="rotation-overdue">(.*?)</section>`).FindStringSubmatch(page); len(m) < 2 || strings.Contains(m[1], late.Name) {
		t.Error("a rotated key is still overdue")
	}
}

// TestLifecycleRegisterRedirect: registering answers 303 to the key page,
// which says so once; a live-looking key outside production carries a
// warning on every visit.
func TestLifecycleRegisterRedirect(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	// "Production" is the sensitive flag, not the name.
	for _, e := range []keyledger.EnvironmentInput{
		{Name: "prod-eu", RevealPolicy: string(keyledger.RevealAnyUser), Sensitive: true, RotationDays: "90"},
		{Name: "production-mirror", RevealPolicy: string(keyledger.RevealAnyUser), RotationDays: "90"},
	} {
		if _, err := env.Store.CreateEnvironment(context.Background(), keyledger.Actor{User: env.Users["admin"]}, e); err != nil {
			t.Fatal(err)
		}
	}
	c := authzLogin(env, t, "member")
	cases := []struct {
		name, env, value string
		warn             bool
	}{
		{"live key in development", "development", "sk_live_" + authzRand(16), true},
		{"live restricted key in staging", "staging", "rk_live_" + authzRand(16), true},
		{"live key in production", "production", "sk_live_" + authzRand(16), false},
		{"test key in development", "development", "sk_test_" + authzRand(16), false},
		{"live key in a sensitive environment not named production", "prod-eu", "sk_live_" + authzRand(16), false},
		{"live key in a non-sensitive environment named like production", "production-mirror", "sk_live_" + authzRand(16), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := authzFor(c, t)
			form := formsBaseRegistration()
			form.Set("environment", tc.env)
			form.Set("value", tc.value)
			id, _, page := c.register(form)
			if !lcHasFlash(page, "ok", "Registered.") {
				t.Errorf("flashes %q, want Registered.", lcFlashes(page))
			}
			formsNoValue(t, env, page, tc.value)
			if got := lcHasFlash(page, "warn", "This looks like a live production key"); got != tc.warn {
				t.Errorf("live-key warning %v, want %v: %q", got, tc.warn, lcFlashes(page))
			}
			// A later visit: no "Registered.", the warning stays.
			_, again := c.get("/keys/" + id)
			if lcHasFlash(again, "ok", "Registered.") {
				t.Error("the registration flash shows on a later visit")
			}
			if got := lcHasFlash(again, "warn", "This looks like a live production key"); got != tc.warn {
				t.Errorf("live-key warning on a later visit %v, want %v", got, tc.warn)
			}
			if tc.warn && !strings.Contains(html.UnescapeString(again), "registered under "+tc.env) {
				t.Error("the warning does not name the environment")
			}
		})
	}
}
