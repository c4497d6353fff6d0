package web_test

import (
	"context"
	"html"
	"net/http"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/web"
)

// newTokenRe finds the token on the page that shows it once.
var newTokenRe = regexp.MustCompile(`data-testid="new-token">(klt_[A-Za-z0-9_-]+)<`)

// newTokenSecret is the token a page shows, or "".
func newTokenSecret(body string) string {
	if m := newTokenRe.FindStringSubmatch(body); m != nil {
		return m[1]
	}
	return ""
}

func tokenRevokePath(id int64) string {
	return "/profile/tokens/" + strconv.FormatInt(id, 10) + "/revoke"
}

// mintToken creates a read token for u through the store.
func mintToken(t testing.TB, env *testEnv, u *keyledger.User, name string) (int64, string) {
	t.Helper()
	secret, tok, err := env.Store.CreateToken(context.Background(), keyledger.Actor{StepUpAt: time.Now(), User: u}, "", keyledger.TokenInput{Name: name, Scopes: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	return tok.ID, secret
}

// apiStatus is the status GET /api/v1/whoami answers the token.
func apiStatus(t testing.TB, env *testEnv, secret string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, env.HTTP.URL+"/api/v1/whoami", http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func tokenAlive(t testing.TB, env *testEnv, id int64) bool {
	t.Helper()
	var n int
	if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM api_tokens WHERE id = $1", id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func tokenCountNamed(t testing.TB, env *testEnv, name string) int {
	t.Helper()
	var n int
	if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM api_tokens WHERE name = $1", name).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// tokenOwner is the user id of the token secret, through the store's own
// authentication (so the secret shown is a working one).
func tokenOwner(t testing.TB, env *testEnv, secret string) int64 {
	t.Helper()
	a, err := env.Store.TokenActor(context.Background(), secret, "192.0.2.99", "web-test")
	if err != nil {
		t.Fatalf("the token shown does not work: %v", err)
	}
	return a.User.ID
}

// tokenRows splits the profile's token table into rows.
func tokenRows(body string) []string {
	parts := strings.Split(body, `data-testid="token-row"`)
	if len(parts) < 2 {
		return nil
	}
	rows := parts[1:]
	last := rows[len(rows)-1]
	if i := strings.Index(last, "</tr>"); i >= 0 {
		rows[len(rows)-1] = last[:i]
	}
	return rows
}

func TestProfileTokens(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	ctx := context.Background()
	c := env.client().login("member")
	member := env.Users["member"]

	resp, body := c.get("/profile")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Access tokens") || !strings.Contains(body, `data-testid="no-tokens"`) {
		t.Fatalf("profile without tokens = %d", resp.StatusCode)
	}
	// The form as first shown: read ticked, 90 days chosen.
	for _, want := range []string{`action="/profile/tokens"`, `value="read" checked`, `value="90d" selected`, `name="scopes" value="reveal"`, `name="scopes" value="write"`,
		`value="7d"`, `value="30d"`, `value="180d"`, `value="365d"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the token form lacks %q", want)
		}
	}
	for _, unwanted := range []string{`value="reveal" checked`, `value="write" checked`, `value="30d" selected`} {
		if strings.Contains(body, unwanted) {
			t.Errorf("the token form has %q", unwanted)
		}
	}

	// Create: shown once, with the command to sign the CLI in.
	resp, body = c.post("/profile/tokens", url.Values{"name": {"laptop CLI"}, "scopes": {"read", "reveal"}, "expires": {"30d"}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("create token = %d\n%s", resp.StatusCode, authzMain(body, ""))
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q on the page showing the token", cc)
	}
	secret := newTokenSecret(body)
	if secret == "" {
		t.Fatalf("no token shown:\n%s", authzMain(body, ""))
	}
	// The command prompts for the token (input hidden), so the token
	// never lands in shell history the way `echo 'klt_…' |` would.
	wantCmd := "keyledger login --server " + env.HTTP.URL
	if !strings.Contains(html.UnescapeString(body), `data-testid="login-command">`+wantCmd+"<") {
		t.Errorf("the login command is not %q:\n%s", wantCmd, authzMain(body, ""))
	}
	if strings.Count(body, secret) != 1 || strings.Contains(body, "echo ") {
		t.Errorf("the token appears %d times on the page (want once, in the token box), or an echo command is suggested", strings.Count(body, secret))
	}
	if !strings.Contains(body, "paste the token at the prompt") {
		t.Errorf("the page does not say the command prompts for the token:\n%s", authzMain(body, ""))
	}
	for _, want := range []string{`data-copy-target="new-token"`, `data-copy-target="login-command"`, "shown only this once", "read, reveal"} {
		if !strings.Contains(body, want) {
			t.Errorf("the new-token page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script>") || strings.Contains(body, "style=") {
		t.Error("inline script or style on the new-token page")
	}
	if strings.Contains(env.Logs.String(), secret) {
		t.Error("the token is in the server log")
	}

	// The list shows the hint, never the secret.
	resp, body = c.get("/profile")
	rows := tokenRows(body)
	if resp.StatusCode != http.StatusOK || len(rows) != 1 {
		t.Fatalf("profile after create = %d with %d token rows", resp.StatusCode, len(rows))
	}
	row := html.UnescapeString(rows[0])
	hint := secret[:len(keyledger.TokenPrefix)+4]
	for _, want := range []string{`data-testid="token-name">laptop CLI<`, `data-testid="token-hint">` + hint + "…<", `data-testid="token-scopes">read, reveal<`, "never", `action="/profile/tokens/`} {
		if !strings.Contains(row, want) {
			t.Errorf("the token row lacks %q:\n%s", want, row)
		}
	}
	if strings.Contains(row, `data-testid="token-expired"`) {
		t.Error("a fresh token is marked expired")
	}
	if strings.Contains(body, secret) || strings.Contains(body, secret[len(secret)/2-8:len(secret)/2+8]) {
		t.Error("the profile shows the token's secret")
	}
	if strings.Contains(body, `data-testid="new-token"`) {
		t.Error("the profile shows the new-token box again")
	}

	// The token works, as member; the list shows its last use: time and
	// address.
	if a, err := env.Store.TokenActor(ctx, secret, "198.51.100.23", "keyledger-cli/1.0"); err != nil || a.User.ID != member.ID {
		t.Fatalf("the new token: %v", err)
	}
	_, body = c.get("/profile")
	if rows := tokenRows(body); len(rows) != 1 || !strings.Contains(rows[0], "198.51.100.23") || strings.Contains(rows[0], ">never<") {
		t.Errorf("the token row does not show its last use:\n%v", rows)
	}

	// An expired token is marked so.
	oldID, _ := mintToken(t, env, member, "old one")
	if _, err := env.Pool.Exec(ctx, "UPDATE api_tokens SET expires_at = now() - interval '1 day' WHERE id = $1", oldID); err != nil {
		t.Fatal(err)
	}
	_, body = c.get("/profile")
	rows = tokenRows(body)
	if len(rows) != 2 {
		t.Fatalf("%d token rows, want 2", len(rows))
	}
	for _, r := range rows {
		expired := strings.Contains(r, `data-testid="token-expired"`)
		if isOld := strings.Contains(r, "old one"); expired != isOld {
			t.Errorf("row expired = %v for %v:\n%s", expired, isOld, r)
		}
	}

	// Revoke.
	var id int64
	list, err := env.Store.ListTokens(ctx, actorOf(env, "member"), member.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range list {
		if tk.Name == "laptop CLI" {
			id = tk.ID
		}
	}
	resp, _ = c.post(tokenRevokePath(id), nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/profile?token_revoked=1" {
		t.Fatalf("revoke = %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = c.follow(resp)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Access token revoked") {
		t.Errorf("after revoke = %d without the flash", resp.StatusCode)
	}
	if rows := tokenRows(body); len(rows) != 1 || strings.Contains(rows[0], "laptop CLI") {
		t.Errorf("rows after revoke: %v", rows)
	}
	if _, err := env.Store.TokenActor(ctx, secret, "198.51.100.23", "keyledger-cli/1.0"); err != store.ErrBadToken {
		t.Errorf("the revoked token still authenticates: %v", err)
	}
	// Twice: gone.
	if resp, _ := c.post(tokenRevokePath(id), nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("revoking a revoked token = %d, want 404", resp.StatusCode)
	}
}

func TestProfileTokenValidation(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	c := env.client().login("member")
	c.get("/profile")
	for _, tc := range []struct {
		form  url.Values
		field string
	}{
		{url.Values{"name": {"  "}, "scopes": {"read"}, "expires": {"30d"}}, "name"},
		{url.Values{"name": {strings.Repeat("x", 101)}, "scopes": {"read"}, "expires": {"30d"}}, "name"},
		{url.Values{"name": {"ci probe"}, "expires": {"30d"}}, "scopes"},
		{url.Values{"name": {"ci probe"}, "scopes": {"admin"}, "expires": {"30d"}}, "scopes"},
		{url.Values{"name": {"ci probe"}, "scopes": {"read"}, "expires": {"366d"}}, "expires"},
		{url.Values{"name": {"ci probe"}, "scopes": {"read"}, "expires": {"0d"}}, "expires"},
		{url.Values{"name": {"ci probe"}, "scopes": {"read"}, "expires": {"abc"}}, "expires"},
	} {
		resp, body := c.post("/profile/tokens", tc.form)
		if resp.StatusCode != http.StatusUnprocessableEntity || !strings.Contains(body, `data-testid="error-`+tc.field+`"`) {
			t.Errorf("create %v = %d, want 422 with an error on %s", tc.form, resp.StatusCode, tc.field)
		}
		if newTokenSecret(body) != "" {
			t.Errorf("create %v shows a token", tc.form)
		}
		// Still the whole profile, with the sessions.
		if !strings.Contains(body, `data-testid="sessions"`) || !strings.Contains(body, `data-testid="token-form"`) {
			t.Errorf("create %v: the profile is not shown again", tc.form)
		}
	}
	// The form keeps what was typed.
	_, body := c.post("/profile/tokens", url.Values{"name": {"ci <probe>"}, "scopes": {"write", "reveal"}, "expires": {"366d"}})
	for _, want := range []string{`value="ci &lt;probe&gt;"`, `value="reveal" checked`, `value="write" checked`} {
		if !strings.Contains(body, want) {
			t.Errorf("the refused form lost %q", want)
		}
	}
	if strings.Contains(body, `value="read" checked`) {
		t.Error("the refused form ticks read, which was not sent")
	}
	_, body = c.post("/profile/tokens", url.Values{"name": {"ci probe"}, "scopes": {"read"}, "expires": {"180d"}})
	if newTokenSecret(body) == "" {
		t.Fatal("a valid form made no token")
	}
	_, body = c.post("/profile/tokens", url.Values{"name": {""}, "scopes": {"read"}, "expires": {"180d"}})
	if !strings.Contains(body, `value="180d" selected`) {
		t.Error("the refused form lost the expiry")
	}
	var n int
	if err := env.Pool.QueryRow(context.Background(), "SELECT count(*) FROM api_tokens").Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d tokens after refused forms and one valid one, want 1", n)
	}
}

// TestProfileTokenOthers: one's own tokens only, whoever asks; the answer
// for another's token is the same as for none.
func TestProfileTokenOthers(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	memberTok, memberSecret := mintToken(t, env, env.Users["member"], "member's")
	adminTok, _ := mintToken(t, env, env.Users["admin"], "admin's")
	for _, who := range []string{"member2", "admin", "lead"} {
		c := env.client().login(who)
		c.get("/profile")
		resp, body := c.post(tokenRevokePath(memberTok), nil)
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s revoking member's token = %d, want 404", who, resp.StatusCode)
		}
		if !strings.Contains(body, "Token not found") {
			t.Errorf("%s: the answer does not say the token was not found", who)
		}
		_, body = c.get("/profile")
		if strings.Contains(body, "member&#39;s") || strings.Contains(body, "member's") {
			t.Errorf("%s's profile lists member's token", who)
		}
	}
	if !tokenAlive(t, env, memberTok) || tokenOwner(t, env, memberSecret) != env.Users["member"].ID {
		t.Fatal("member's token was revoked by someone else")
	}
	m := env.client().login("member")
	m.get("/profile")
	for _, p := range []string{tokenRevokePath(adminTok), "/profile/tokens/0/revoke", "/profile/tokens/-1/revoke", "/profile/tokens/x/revoke", "/profile/tokens/99999999999999999999/revoke"} {
		if resp, _ := m.post(p, nil); resp.StatusCode != http.StatusNotFound {
			t.Errorf("POST %s = %d, want 404", p, resp.StatusCode)
		}
	}
	if !tokenAlive(t, env, adminTok) {
		t.Error("the admin's token was revoked by a member")
	}
}

func TestProfileTokenCommandUsesBaseURL(t *testing.T) {
	t.Parallel()
	env := newEnv(t, func(c *web.Config) { c.BaseURL = "https://keys.example.com" })
	c := env.client().login("member")
	c.get("/profile")
	_, body := c.post("/profile/tokens", url.Values{"name": {"ci"}, "scopes": {"read"}, "expires": {"7d"}})
	secret := newTokenSecret(body)
	if secret == "" {
		t.Fatal("no token shown")
	}
	want := `data-testid="login-command">keyledger login --server https://keys.example.com<`
	if !strings.Contains(html.UnescapeString(body), want) {
		t.Errorf("the command does not use the base URL:\n%s", authzMain(body, ""))
	}
}

func TestAdminEnvironmentTokenReveal(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	ctx := context.Background()
	admin := env.client().login("admin")
	_, body := admin.get("/admin/environments")
	rowOf := func(body, name string) string {
		i := strings.Index(body, `data-env="`+name+`"`)
		if i < 0 {
			t.Fatalf("no row for %s", name)
		}
		r := body[i:]
		if j := strings.Index(r, "</tr>"); j >= 0 {
			r = r[:j]
		}
		return r
	}
	checked := func(row string) bool {
		return regexp.MustCompile(`name="allow_token_reveal" value="1" checked`).MatchString(row)
	}
	// As seeded: off everywhere (it only matters once sensitive).
	if checked(rowOf(body, "production")) || checked(rowOf(body, "development")) {
		t.Error("the allow-token-reveal boxes do not show the seeded settings")
	}
	if !strings.Contains(body, "Allow revealing with access tokens") || !strings.Contains(body, "step-up") {
		t.Error("the environment form does not explain the token switch")
	}
	if n := strings.Count(body, `name="allow_token_reveal"`); n != 4 {
		t.Errorf("%d allow-token-reveal boxes, want one per seeded environment and one to create", n)
	}

	prodForm := url.Values{"reveal_policy": {"owner_leads_admins"}, "reason_required": {"1"}, "sensitive": {"1"}, "rotation_days": {"90"}}
	on := cloneValues(prodForm)
	on.Set("allow_token_reveal", "1")
	if resp, _ := admin.post("/admin/environments/production", on); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("turn on = %d", resp.StatusCode)
	}
	if e, _ := env.Store.Environment(ctx, "production"); !e.AllowTokenReveal || !e.Sensitive || !e.ReasonRequired {
		t.Errorf("production after turning on: %+v", e)
	}
	_, body = admin.get("/admin/environments")
	if !checked(rowOf(body, "production")) {
		t.Error("the box does not show the switch on")
	}
	// A failed save keeps the box as sent.
	bad := cloneValues(on)
	bad.Set("rotation_days", "abc")
	if resp, body := admin.post("/admin/environments/production", bad); resp.StatusCode != http.StatusUnprocessableEntity || !checked(rowOf(body, "production")) {
		t.Errorf("failed save = %d, box kept = %v", resp.StatusCode, checked(rowOf(body, "production")))
	}
	// Unticked is off.
	if resp, _ := admin.post("/admin/environments/production", prodForm); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("turn off = %d", resp.StatusCode)
	}
	if e, _ := env.Store.Environment(ctx, "production"); e.AllowTokenReveal {
		t.Error("production still allows token reveals after saving with the box unticked")
	}

	// Create, with and without.
	for name, allow := range map[string]bool{"qa": true, "perf": false} {
		form := url.Values{"name": {name}, "reveal_policy": {"any_user"}, "sensitive": {"1"}, "rotation_days": {"30"}}
		if allow {
			form.Set("allow_token_reveal", "1")
		}
		if resp, _ := admin.post("/admin/environments", form); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("create %s = %d", name, resp.StatusCode)
		}
		if e, err := env.Store.Environment(ctx, name); err != nil || e.AllowTokenReveal != allow || !e.Sensitive {
			t.Errorf("%s = %+v, %v; want allow_token_reveal %v", name, e, err, allow)
		}
	}
	// The create form starts unticked.
	_, body = admin.get("/admin/environments")
	i := strings.Index(body, `action="/admin/environments"`)
	if i < 0 || checked(body[i:]) {
		t.Error("the create form ticks allow-token-reveal by default")
	}
}

// TestBrowserProfileTokens creates a token through the form in Chromium:
// the pages render under the CSP, the copy buttons appear, and the token
// is shown once.
func TestBrowserProfileTokens(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	b := newBrowser(t, env.HTTP.URL, 60*time.Second)
	b.signIn("member@example.com", "Member (member)")
	if st := b.navigate("/profile"); st != http.StatusOK {
		b.fatalf("GET /profile: status %d", st)
	}
	b.do("fill the token form",
		chromedp.SendKeys(chromedp.ID("token-name"), "browser CLI", chromedp.NodeVisible),
		chromedp.Click(chromedp.CSS(`[data-testid="token-scope-reveal"]`), chromedp.NodeVisible),
		chromedp.SetValue(chromedp.ID("token-expires"), "7d", chromedp.NodeVisible))
	if st := b.press(`[data-testid="token-create"]`); st != http.StatusOK {
		b.fatalf("create token: status %d", st)
	}
	secret := b.text(`[data-testid="new-token"]`)
	if !strings.HasPrefix(secret, keyledger.TokenPrefix) {
		b.fatalf("new token %q", secret)
	}
	if cmd := b.text(`[data-testid="login-command"]`); cmd != "keyledger login --server "+env.HTTP.URL {
		t.Errorf("login command %q", cmd)
	}
	if hidden := evalIn[int](b, `document.querySelectorAll('button[data-copy-target]:not([hidden])').length`); hidden != 2 {
		t.Errorf("%d copy buttons shown, want 2", hidden)
	}
	a, err := env.Store.TokenActor(context.Background(), secret, "192.0.2.1", "browser-test")
	if err != nil || !reflect.DeepEqual(a.Token.Scopes, []string{"read", "reveal"}) || a.Token.ExpiresAt.Sub(a.Token.CreatedAt) != 7*24*time.Hour {
		t.Errorf("the token made through the form: %+v, %v", a.Token, err)
	}
	if st := b.navigate("/profile"); st != http.StatusOK {
		b.fatalf("GET /profile: status %d", st)
	}
	if name := b.text(`[data-testid="token-name"]`); name != "browser CLI" {
		t.Errorf("listed token %q", name)
	}
	if body := evalIn[string](b, `document.documentElement.outerHTML`); strings.Contains(body, secret) {
		t.Error("the profile shows the secret")
	}
	if probs := b.consoleProblems(); len(probs) > 0 {
		t.Errorf("console problems: %q", probs)
	}
}

// TestProfileTokensNeedRequiredTOTP: someone whose role requires
// two-factor sign-in they have not set up cannot mint a token (which would
// reach the API without it).
func TestProfileTokensNeedRequiredTOTP(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	if err := env.Store.SetRolePolicy(context.Background(), actorOf(env, "admin"), keyledger.RoleMember, true); err != nil {
		t.Fatal(err)
	}
	c := env.client().login("member")
	resp, body := c.get("/profile")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `data-testid="tokens-need-totp"`) || strings.Contains(body, `action="/profile/tokens"`) {
		t.Errorf("profile of a member who must enroll = %d; token form shown = %v", resp.StatusCode, strings.Contains(body, `action="/profile/tokens"`))
	}
	resp, body = c.post("/profile/tokens", url.Values{"name": {"sneaky"}, "scopes": {"reveal"}, "expires": {"30d"}})
	if resp.StatusCode != http.StatusForbidden || newTokenSecret(body) != "" {
		t.Errorf("create token before enrolling = %d", resp.StatusCode)
	}
	if n := tokenCountNamed(t, env, "sneaky"); n != 0 {
		t.Errorf("%d tokens made before enrolling", n)
	}
}
