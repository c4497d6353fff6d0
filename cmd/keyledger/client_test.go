package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyledger/keyledger/web/wire"
)

const testToken = "klt_test0123456789abcdefghijklmnopqrstuvwxyz"

// fakeAPI mimics the server's /api/v1 contract, so the client can be
// tested without a database. It answers with the server's own bodies
// (web/wire), so it speaks the contract the server does.
type fakeAPI struct {
	t   testing.TB
	srv *httptest.Server

	mu       sync.Mutex
	token    string
	keys     []wire.Key
	pageSize int
	// exportVars is what POST /export hands out, NAME → value.
	exportVars map[string]string
	leftOut    []wire.ExportLeftOut
	// fail forces an answer for "METHOD /path".
	fail     map[string]fakeAnswer
	requests []fakeRequest
}

type fakeAnswer struct {
	status int
	header map[string]string
	body   string
}

type fakeRequest struct {
	method, path, auth string
	query              url.Values
	body               map[string]any
}

func newFakeAPI(t testing.TB) *fakeAPI {
	a := &fakeAPI{t: t, token: testToken, pageSize: 2, fail: map[string]fakeAnswer{},
		exportVars: map[string]string{"OPENAI_API_KEY": "sk-proj-fromserver111", "STRIPE_SECRET_KEY": "sk_live_fromserver222"},
		leftOut:    []wire.ExportLeftOut{{KeyID: "k-prod", Name: "Prod OpenAI", Project: "checkout", Reason: "Only the key's owner may reveal it."}},
	}
	for i, name := range []string{"Anthropic", "GitHub deploy", "OpenAI", "Stripe", "Twilio"} {
		a.keys = append(a.keys, fakeKey(fmt.Sprintf("00000000-0000-0000-0000-00000000000%d", i+1), name))
	}
	a.srv = httptest.NewServer(http.HandlerFunc(a.serve))
	t.Cleanup(a.srv.Close)
	return a
}

func fakeKey(id, name string) wire.Key {
	return wire.Key{
		ID: id, Name: name, Provider: "openai", Project: "checkout", Environment: "development",
		Owner:      wire.Owner{Email: "dev@example.com", Name: "Dev", Active: true},
		MaskedHint: "sk-…" + id[len(id)-4:], CurrentVersion: 2,
		EffectiveRotationDays: 180, RotateBy: day0(2031, 1, 2), RotationStatus: "ok",
		LastRotatedAt: day0(2030, 7, 6), CreatedAt: day0(2030, 1, 1), UpdatedAt: day0(2030, 7, 6),
	}
}

// day0 is midnight UTC of a date.
func day0(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

func (a *fakeAPI) URL() string { return a.srv.URL }

func (a *fakeAPI) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (a *fakeAPI) apiError(w http.ResponseWriter, status int, code, msg string, fields map[string]string) {
	a.writeJSON(w, status, wire.Error{Error: wire.ErrorBody{Code: code, Message: msg, RequestID: "fake-request", Fields: fields}})
}

func (a *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	defer a.mu.Unlock()
	req := fakeRequest{method: r.Method, path: r.URL.Path, auth: r.Header.Get("Authorization"), query: r.URL.Query()}
	raw, _ := io.ReadAll(r.Body)
	if len(raw) > 0 {
		if r.Header.Get("Content-Type") != "application/json" {
			a.apiError(w, http.StatusUnsupportedMediaType, "invalid", "Send JSON.", nil)
			return
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		if err := dec.Decode(&req.body); err != nil {
			a.apiError(w, http.StatusBadRequest, "invalid", "The request body is not valid JSON.", nil)
			return
		}
	}
	a.requests = append(a.requests, req)
	if f, ok := a.fail[r.Method+" "+r.URL.Path]; ok {
		for k, v := range f.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(f.status)
		if _, err := io.WriteString(w, f.body); err != nil {
			a.t.Errorf("fake API: write the %s body: %v", r.URL.Path, err)
		}
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+a.token {
		a.apiError(w, http.StatusUnauthorized, "unauthorized", "This access token is not valid: it is unknown, expired or revoked, or its user was deactivated. Create a new one on your profile page.", nil)
		return
	}
	// The real server refuses unknown fields; so does the fake, with the
	// server's request bodies.
	path := strings.TrimPrefix(r.URL.Path, "/api/v1")
	var reqBody any
	switch {
	case path == "/export":
		reqBody = &wire.ExportRequest{}
	case strings.HasSuffix(path, "/reveal"):
		reqBody = &wire.RevealRequest{}
	}
	if len(raw) > 0 {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if reqBody == nil || dec.Decode(reqBody) != nil {
			a.apiError(w, http.StatusBadRequest, "invalid", "The request body does not fit this endpoint.", nil)
			return
		}
	}
	switch {
	case r.Method == http.MethodGet && path == "/whoami":
		a.writeJSON(w, 200, wire.Whoami{Email: "dev@example.com", Name: "Dev", Role: "member",
			Token: wire.WhoamiToken{ID: 7, Name: "laptop", Scopes: []string{"read", "reveal"}, ExpiresAt: time.Date(2031, 3, 4, 5, 6, 7, 0, time.UTC)}})
	case r.Method == http.MethodGet && path == "/keys":
		start := 0
		if c := r.URL.Query().Get("cursor"); c != "" {
			n, err := strconv.Atoi(strings.TrimPrefix(c, "after-"))
			if err != nil {
				a.apiError(w, 422, "invalid", "Please correct the highlighted fields.", map[string]string{"cursor": "The cursor is not valid."})
				return
			}
			start = n
		}
		end := min(start+a.pageSize, len(a.keys))
		page := wire.KeyList{Keys: a.keys[start:end]}
		if end < len(a.keys) {
			page.NextCursor = ptr(fmt.Sprintf("after-%d", end))
		}
		a.writeJSON(w, 200, page)
	case r.Method == http.MethodGet && strings.HasPrefix(path, "/keys/"):
		id := strings.TrimPrefix(path, "/keys/")
		for _, k := range a.keys {
			if k.ID == id {
				a.writeJSON(w, 200, wire.KeyDetail{Key: k, Versions: []wire.KeyVersion{
					{Version: 2, CreatedAt: day0(2030, 7, 6), CreatedBy: ptr("dev@example.com"), MaskedHint: "sk-…0002", Current: true},
					{Version: 1, CreatedAt: day0(2030, 1, 1), CreatedBy: ptr("dev@example.com"), SupersededAt: ptr(day0(2030, 7, 6)),
						DestroyAfter: ptr(day0(2030, 7, 13)), DestroyedAt: ptr(day0(2030, 7, 13)), MaskedHint: "sk-…0001"},
				}})
				return
			}
		}
		a.apiError(w, 404, "not_found", "Key not found.", nil)
	case r.Method == http.MethodPost && strings.HasPrefix(path, "/keys/") && strings.HasSuffix(path, "/reveal"):
		id := strings.TrimSuffix(strings.TrimPrefix(path, "/keys/"), "/reveal")
		version := 2
		if v, ok := req.body["version"].(float64); ok {
			version = int(v)
		}
		a.writeJSON(w, 200, wire.Revealed{KeyID: id, Name: "OpenAI", Environment: "development", Version: version,
			Value: fmt.Sprintf("sk-value-%s-v%d", id[len(id)-1:], version), EnvVar: "OPENAI_API_KEY"})
	case r.Method == http.MethodPost && path == "/export":
		env, _ := req.body["environment"].(string)
		if env == "" {
			a.apiError(w, 422, "invalid", "Please correct the highlighted fields.", map[string]string{"environment": "Choose an environment."})
			return
		}
		format, _ := req.body["format"].(string)
		names := make([]string, 0, len(a.exportVars))
		for n := range a.exportVars {
			names = append(names, n)
		}
		slices.Sort(names)
		var content strings.Builder
		vars := []wire.ExportVariable{}
		switch format {
		case "json":
			b, _ := json.MarshalIndent(a.exportVars, "", "  ")
			content.Write(b)
			content.WriteString("\n")
		case "bash":
			content.WriteString("# keyledger export: source this file (. ./file) in bash or zsh\n")
			for _, n := range names {
				fmt.Fprintf(&content, "export %s='%s'\n", n, a.exportVars[n])
			}
		default:
			for _, n := range names {
				fmt.Fprintf(&content, "%s=%s\n", n, a.exportVars[n])
			}
		}
		for _, n := range names {
			vars = append(vars, wire.ExportVariable{Name: n, KeyID: "id-" + n, KeyName: n, Project: "checkout"})
		}
		leftOut := a.leftOut
		if leftOut == nil {
			leftOut = []wire.ExportLeftOut{}
		}
		a.writeJSON(w, 200, wire.Export{Environment: env, Format: format, Content: content.String(), Variables: vars, LeftOut: leftOut})
	default:
		a.apiError(w, 404, "not_found", "There is no API endpoint at this address.", nil)
	}
}

// requestsTo lists the requests made to path.
func (a *fakeAPI) requestsTo(method, path string) []fakeRequest {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []fakeRequest
	for _, r := range a.requests {
		if r.method == method && r.path == path {
			out = append(out, r)
		}
	}
	return out
}

func (a *fakeAPI) setFail(method, path string, f fakeAnswer) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail[method+" "+path] = f
}

// client is the command-line client run in-process with its own config
// directory and environment.
type client struct {
	dir     string
	env     map[string]string
	environ []string
}

func newClient(t testing.TB) *client {
	return &client{dir: filepath.Join(t.TempDir(), "keyledger"), env: map[string]string{}, environ: []string{"PATH=" + os.Getenv("PATH")}}
}

func (c *client) run(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	m := &Main{Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr, Getenv: envFunc(c.env),
		ConfigDir: c.dir, Environ: func() []string { return c.environ }}
	code := m.Run(ctx, args)
	t.Logf("keyledger %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, stdout.String(), stderr.String())
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

func (c *client) mustRun(t testing.TB, stdin string, args ...string) result {
	t.Helper()
	r := c.run(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("keyledger %s: exit %d\nstderr: %s", strings.Join(args, " "), r.code, r.stderr)
	}
	return r
}

// signedIn is a client logged in to api.
func signedIn(t testing.TB, api *fakeAPI) *client {
	t.Helper()
	c := newClient(t)
	c.mustRun(t, testToken+"\n", "login", "--server", api.URL())
	return c
}

func TestLoginSavesPrivateConfig(t *testing.T) {
	api := newFakeAPI(t)
	c := newClient(t)
	r := c.mustRun(t, "  "+testToken+"  \n", "login", "--server", api.URL()+"/")
	want := "Signed in to " + api.URL() + " as dev@example.com (scopes read, reveal; expires "
	if !strings.HasPrefix(r.stdout, want) {
		t.Errorf("stdout %q, want prefix %q", r.stdout, want)
	}
	if strings.Contains(r.stdout+r.stderr, testToken) {
		t.Error("login printed the token")
	}
	if got := api.requestsTo("GET", "/api/v1/whoami"); len(got) != 1 || got[0].auth != "Bearer "+testToken {
		t.Errorf("whoami requests: %+v", got)
	}
	checkConfig(t, c.dir, clientConfig{Server: api.URL(), Token: testToken})

	// A loose directory and file from elsewhere are made private again.
	if err := os.Chmod(c.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(c.dir, "config.json"), 0o644); err != nil {
		t.Fatal(err)
	}
	r = c.mustRun(t, "", "whoami")
	if !strings.Contains(r.stderr, "other users may read it") {
		t.Errorf("no warning about a readable config file: %q", r.stderr)
	}
	c.mustRun(t, testToken, "login") // the saved server is the default
	checkConfig(t, c.dir, clientConfig{Server: api.URL(), Token: testToken})
}

// checkConfig checks config.json's modes and content, and that no
// temporary file is left beside it.
func checkConfig(t *testing.T, dir string, want clientConfig) {
	t.Helper()
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o700 {
		t.Errorf("config dir mode %o, want 700", fi.Mode().Perm())
	}
	path := filepath.Join(dir, "config.json")
	fi, err = os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
		t.Errorf("config file mode %o, want 600", fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got clientConfig
	if err := json.Unmarshal(b, &got); err != nil || got != want {
		t.Errorf("config.json = %s (%v), want %+v", b, err, want)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("config dir holds %v, want only config.json", entries)
	}
}

func TestLoginRefusals(t *testing.T) {
	api := newFakeAPI(t)
	tests := []struct {
		name, stdin string
		args        []string
		code        int
		want        string
		whoami      int
	}{
		{"not a keyledger token", "ghp_abcdef\n", []string{"--server", api.URL()}, 1, `start with "klt_"`, 0},
		{"no token", "\n", []string{"--server", api.URL()}, 1, "no token on stdin", 0},
		{"rejected token", "klt_wrong\n", []string{"--server", api.URL()}, 1, "does not accept this token, nothing was saved: This access token is not valid", 1},
		{"no server", testToken, nil, 2, "--server is required", 0},
		{"bad server", testToken, []string{"--server", "keys.example.com"}, 2, "want the server's URL like https://", 0},
		{"argument", testToken, []string{"--server", api.URL(), testToken}, 2, "unexpected argument", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t)
			before := len(api.requestsTo("GET", "/api/v1/whoami"))
			r := c.run(t, tt.stdin, append([]string{"login"}, tt.args...)...)
			if r.code != tt.code || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want exit %d and %q", r.code, r.stderr, tt.code, tt.want)
			}
			if strings.Contains(r.stderr, "klt_wrong") || strings.Contains(r.stderr, "ghp_abcdef") {
				t.Errorf("the token was printed: %q", r.stderr)
			}
			if n := len(api.requestsTo("GET", "/api/v1/whoami")) - before; n != tt.whoami {
				t.Errorf("%d whoami requests, want %d", n, tt.whoami)
			}
			if _, err := os.Stat(filepath.Join(c.dir, "config.json")); !os.IsNotExist(err) {
				t.Errorf("config.json was written (%v)", err)
			}
		})
	}
}

func TestClientEnvironmentOverrides(t *testing.T) {
	a, b := newFakeAPI(t), newFakeAPI(t)

	// Environment only, no file: works, and writes nothing.
	c := newClient(t)
	c.env = map[string]string{"KEYLEDGER_SERVER": a.URL(), "KEYLEDGER_TOKEN": testToken}
	c.mustRun(t, "", "whoami")
	if _, err := os.Stat(c.dir); !os.IsNotExist(err) {
		t.Errorf("config dir created (%v)", err)
	}

	// KEYLEDGER_SERVER wins over the file, but the file's token is not
	// sent to another server.
	c = signedIn(t, a)
	c.env = map[string]string{"KEYLEDGER_SERVER": b.URL()}
	r := c.run(t, "", "keys", "list")
	if r.code != 1 || r.stderr != "keyledger: not signed in to "+b.URL()+"; run 'keyledger login --server "+b.URL()+"'\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if n := len(b.requests); n != 0 {
		t.Errorf("the other server got %d requests", n)
	}
	// With a token of its own, it is used.
	c.env["KEYLEDGER_TOKEN"] = testToken
	c.mustRun(t, "", "keys", "list")
	if n := len(b.requestsTo("GET", "/api/v1/keys")); n == 0 {
		t.Error("KEYLEDGER_SERVER was not used")
	}

	// KEYLEDGER_TOKEN wins over the file's token.
	c.env = map[string]string{"KEYLEDGER_TOKEN": "klt_fromenv"}
	r = c.run(t, "", "whoami")
	reqs := a.requestsTo("GET", "/api/v1/whoami")
	if last := reqs[len(reqs)-1]; last.auth != "Bearer klt_fromenv" {
		t.Errorf("sent %q, want the KEYLEDGER_TOKEN", last.auth)
	}
	if r.code != 1 || !strings.Contains(r.stderr, "put a new token in KEYLEDGER_TOKEN") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestClientErrorMessages(t *testing.T) {
	api := newFakeAPI(t)
	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	jsonAnswer := func(status int, code, msg string, extra string) fakeAnswer {
		return fakeAnswer{status: status, header: map[string]string{"Content-Type": "application/json"},
			body: fmt.Sprintf(`{"error":{"code":%q,"message":%q%s}}`, code, msg, extra)}
	}
	tests := []struct {
		name   string
		answer *fakeAnswer
		server string // instead of the fake
		nofile bool
		want   string
	}{
		{name: "no server", nofile: true, want: "keyledger: no server configured; run 'keyledger login --server https://…'"},
		{name: "network", server: closedURL, want: "keyledger: cannot reach " + closedURL + ": connection refused"},
		{name: "401", answer: &fakeAnswer{status: 401, body: `{"error":{"code":"unauthorized","message":"This access token is not valid: it is unknown, expired or revoked, or its user was deactivated. Create a new one on your profile page."}}`},
			want: "keyledger: the server rejected the token: This access token is not valid: it is unknown, expired or revoked, or its user was deactivated. Create a new one on your profile page. Then run 'keyledger login --server " + api.URL() + "' with a new token."},
		{name: "403", answer: ptr(jsonAnswer(403, "forbidden", "Keys of production are revealed only by their owner, leads and admins.", "")),
			want: "keyledger: not allowed: Keys of production are revealed only by their owner, leads and admins."},
		{name: "404", answer: ptr(jsonAnswer(404, "not_found", "Key not found.", "")), want: "keyledger: not found: Key not found."},
		{name: "404 not the API", answer: &fakeAnswer{status: 404, body: "404 page not found"},
			want: "keyledger: the server at " + api.URL() + " has no /api/v1/keys (404): is it a keyledger server with the JSON API, and is the URL right?"},
		{name: "429", answer: &fakeAnswer{status: 429, header: map[string]string{"Retry-After": "7"}, body: `{"error":{"code":"too_many_requests","message":"Too many requests with this token; retry after 7 second(s)."}}`},
			want: "keyledger: rate limited by the server (Retry-After: 7 second(s)): Too many requests with this token; retry after 7 second(s)."},
		{name: "invalid", answer: ptr(jsonAnswer(422, "invalid", "Please correct the highlighted fields.", `,"fields":{"reason":"This environment asks for a reason before revealing a key.","environment":"Choose an environment."}`)),
			want: "keyledger: --environment: Choose an environment.; --reason: This environment asks for a reason before revealing a key."},
		{name: "500", answer: ptr(jsonAnswer(500, "internal", "Something went wrong on our side. The error was logged.", `,"request_id":"r-1"`)),
			want: "keyledger: server error (500 internal): Something went wrong on our side. The error was logged. (request id r-1)"},
		{name: "502", answer: &fakeAnswer{status: 502, body: "<html>bad gateway</html>"},
			want: "keyledger: the server at " + api.URL() + " answered 502 Bad Gateway, not the keyledger API; check the URL"},
		{name: "redirect", answer: &fakeAnswer{status: 308, header: map[string]string{"Location": "https://keys.example.com/vault/api/v1/keys"}},
			want: "keyledger: the server at " + api.URL() + " redirects to https://keys.example.com/vault; run 'keyledger login --server https://keys.example.com/vault'"},
		{name: "redirect elsewhere", answer: &fakeAnswer{status: 302, header: map[string]string{"Location": "https://sso.example.com/login"}},
			want: "keyledger: the server at " + api.URL() + " redirects to https://sso.example.com; run 'keyledger login --server https://sso.example.com'"},
		{name: "control characters", answer: &fakeAnswer{status: 403, body: `{"error":{"code":"forbidden","message":"No\u001b[31m\nway."}}`}, want: "keyledger: not allowed: No [31m way."},
		{name: "not JSON", answer: &fakeAnswer{status: 200, body: "<html>hello</html>"},
			want: "keyledger: the server at " + api.URL() + " gave an answer that is not the keyledger API's (GET /keys); check the URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := signedIn(t, api)
			switch {
			case tt.nofile:
				c = newClient(t)
			case tt.server != "":
				c.env = map[string]string{"KEYLEDGER_SERVER": tt.server, "KEYLEDGER_TOKEN": testToken}
			}
			if tt.answer != nil {
				api.setFail("GET", "/api/v1/keys", *tt.answer)
				defer func() {
					api.mu.Lock()
					delete(api.fail, "GET /api/v1/keys")
					api.mu.Unlock()
				}()
			}
			r := c.run(t, "", "keys", "list")
			if r.code != 1 {
				t.Errorf("exit %d, want 1", r.code)
			}
			if r.stderr != tt.want+"\n" {
				t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, tt.want)
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func TestKeysListFollowsCursor(t *testing.T) {
	api := newFakeAPI(t)
	c := signedIn(t, api)
	r := c.mustRun(t, "", "keys", "list", "-e", "development", "--project", "checkout", "--owner", "dev@example.com", "--q", "open ai", "--status", "ok")
	reqs := api.requestsTo("GET", "/api/v1/keys")
	if len(reqs) != 3 {
		t.Fatalf("%d requests for 5 keys in pages of 2, want 3", len(reqs))
	}
	for i, want := range []string{"", "after-2", "after-4"} {
		q := reqs[i].query
		if q.Get("cursor") != want {
			t.Errorf("request %d: cursor %q, want %q", i, q.Get("cursor"), want)
		}
		for k, v := range map[string]string{"environment": "development", "project": "checkout", "owner": "dev@example.com", "q": "open ai", "status": "ok"} {
			if q.Get(k) != v {
				t.Errorf("request %d: %s=%q, want %q", i, k, q.Get(k), v)
			}
		}
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 6 {
		t.Fatalf("want a header and 5 rows:\n%s", r.stdout)
	}
	if f := strings.Fields(lines[0]); !slices.Equal(f, []string{"NAME", "PROJECT", "ENV", "OWNER", "PROVIDER", "HINT", "ROTATE-BY", "ID"}) {
		t.Errorf("header %q", lines[0])
	}
	for i, name := range []string{"Anthropic", "GitHub deploy", "OpenAI", "Stripe", "Twilio"} {
		if !strings.HasPrefix(lines[i+1], name+" ") || !strings.Contains(lines[i+1], "dev@example.com") || !strings.Contains(lines[i+1], "2031-01-0") {
			t.Errorf("row %d: %q", i+1, lines[i+1])
		}
		// The id is the last column, so keys reveal can be given one
		// straight from the table (awk '{print $NF}').
		if f := strings.Fields(lines[i+1]); f[len(f)-1] != fmt.Sprintf("00000000-0000-0000-0000-00000000000%d", i+1) {
			t.Errorf("row %d does not end with the key's id: %q", i+1, lines[i+1])
		}
	}

	r = c.mustRun(t, "", "keys", "list", "--json")
	var keys []map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &keys); err != nil || len(keys) != 5 {
		t.Fatalf("--json: %v, %d keys:\n%s", err, len(keys), r.stdout)
	}
	if keys[4]["name"] != "Twilio" || keys[4]["effective_rotation_days"] != float64(180) {
		t.Errorf("--json lost fields: %v", keys[4])
	}

	// A server that repeats a cursor is not followed forever.
	api.setFail("GET", "/api/v1/keys", fakeAnswer{status: 200, body: `{"keys":[],"next_cursor":"again"}`})
	r = c.run(t, "", "keys", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "keeps handing out page cursors") {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
}

func TestKeysShowAndReveal(t *testing.T) {
	api := newFakeAPI(t)
	c := signedIn(t, api)
	id := "00000000-0000-0000-0000-000000000003"
	r := c.mustRun(t, "", "keys", "show", id)
	for _, want := range []string{"ID:", id, "Name:", "OpenAI", "Owner:", "Dev <dev@example.com>", "every 180 days (the environment's default)", "2031-01-0", "v2", "current", "v1", "destroyed"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("show lacks %q:\n%s", want, r.stdout)
		}
	}
	r = c.mustRun(t, "", "keys", "show", id, "--json")
	var k map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &k); err != nil || k["id"] != id || len(k["versions"].([]any)) != 2 {
		t.Errorf("show --json: %v\n%s", err, r.stdout)
	}
	r = c.run(t, "", "keys", "show", "no-such-id")
	if r.code != 1 || r.stderr != "keyledger: not found: Key not found.\n" {
		t.Errorf("show unknown: exit %d, %q", r.code, r.stderr)
	}
	r = c.run(t, "", "keys", "show")
	if r.code != 2 {
		t.Errorf("show without an ID: exit %d", r.code)
	}

	r = c.mustRun(t, "", "keys", "reveal", id, "--reason", "debugging", "--version", "1")
	if r.stdout != "sk-value-3-v1\n" || r.stderr != "" {
		t.Errorf("reveal: stdout %q stderr %q", r.stdout, r.stderr)
	}
	r = c.mustRun(t, "", "keys", "reveal", "--reason", "again", id)
	if r.stdout != "sk-value-3-v2\n" {
		t.Errorf("reveal: stdout %q", r.stdout)
	}
	reqs := api.requestsTo("POST", "/api/v1/keys/"+id+"/reveal")
	if len(reqs) != 2 || reqs[0].body["reason"] != "debugging" || reqs[0].body["version"] != float64(1) {
		t.Fatalf("reveal requests: %+v", reqs)
	}
	if _, ok := reqs[1].body["version"]; ok || reqs[1].body["reason"] != "again" {
		t.Errorf("reveal without --version sent %v", reqs[1].body)
	}
}

func TestEnvCommand(t *testing.T) {
	api := newFakeAPI(t)
	c := signedIn(t, api)
	r := c.mustRun(t, "", "env", "-e", "development", "-p", "checkout", "--reason", "local dev")
	want := "# keyledger export: source this file (. ./file) in bash or zsh\nexport OPENAI_API_KEY='sk-proj-fromserver111'\nexport STRIPE_SECRET_KEY='sk_live_fromserver222'\n"
	if r.stdout != want {
		t.Errorf("stdout %q, want %q", r.stdout, want)
	}
	if r.stderr != "keyledger: left out Prod OpenAI (project checkout, id k-prod): Only the key's owner may reveal it.\n" {
		t.Errorf("stderr %q", r.stderr)
	}
	reqs := api.requestsTo("POST", "/api/v1/export")
	wantBody := map[string]any{"environment": "development", "project": "checkout", "format": "bash", "reason": "local dev"}
	if len(reqs) != 1 || fmt.Sprint(reqs[0].body) != fmt.Sprint(wantBody) {
		t.Errorf("export requests %+v, want body %v", reqs, wantBody)
	}

	r = c.mustRun(t, "", "env", "--environment", "development", "--format", "json")
	var vars map[string]string
	if err := json.Unmarshal([]byte(r.stdout), &vars); err != nil || vars["OPENAI_API_KEY"] != "sk-proj-fromserver111" {
		t.Errorf("json: %v %v", err, vars)
	}

	for _, args := range [][]string{{"env"}, {"env", "-e", "development", "--format", "xml"}, {"env", "-e", "development", "extra"}, {"env", "--bogus"}} {
		before := len(api.requestsTo("POST", "/api/v1/export"))
		r := c.run(t, "", args...)
		if r.code != 2 {
			t.Errorf("%v: exit %d, want 2", args, r.code)
		}
		if len(api.requestsTo("POST", "/api/v1/export")) != before {
			t.Errorf("%v: asked the server anyway", args)
		}
	}
	if r := c.run(t, "", "env", "-h"); r.code != 0 || !strings.Contains(r.stderr, "Usage: keyledger env") {
		t.Errorf("env -h: exit %d, %q", r.code, r.stderr)
	}

	// Nothing to export is said on stderr.
	api.mu.Lock()
	api.exportVars, api.leftOut = map[string]string{}, nil
	api.mu.Unlock()
	r = c.mustRun(t, "", "env", "-e", "staging")
	if !strings.Contains(r.stderr, "no keys exported from staging") {
		t.Errorf("stderr %q", r.stderr)
	}
}

func TestRunMergesEnvironment(t *testing.T) {
	api := newFakeAPI(t)
	c := signedIn(t, api)
	c.environ = append(c.environ, "OPENAI_API_KEY=mine", "HOME=/nowhere")
	script := `printf '%s|%s|%s' "$OPENAI_API_KEY" "$STRIPE_SECRET_KEY" "$HOME"`

	r := c.mustRun(t, "", "run", "-e", "development", "--reason", "tests", "--", "sh", "-c", script)
	if r.stdout != "mine|sk_live_fromserver222|/nowhere" {
		t.Errorf("stdout %q", r.stdout)
	}
	if !strings.Contains(r.stderr, "kept OPENAI_API_KEY from your environment (--override replaces them)") {
		t.Errorf("stderr does not say which variable was kept: %q", r.stderr)
	}
	reqs := api.requestsTo("POST", "/api/v1/export")
	if len(reqs) != 1 || reqs[0].body["format"] != "json" || reqs[0].body["environment"] != "development" || reqs[0].body["reason"] != "tests" {
		t.Errorf("export requests %+v", reqs)
	}

	r = c.mustRun(t, "", "run", "-e", "development", "--override", "--", "sh", "-c", script)
	if r.stdout != "sk-proj-fromserver111|sk_live_fromserver222|/nowhere" {
		t.Errorf("--override: stdout %q", r.stdout)
	}
	if strings.Contains(r.stderr, "kept") {
		t.Errorf("--override: stderr %q", r.stderr)
	}
	// Without "--" the command starts at the first non-flag.
	r = c.mustRun(t, "", "run", "-e", "development", "sh", "-c", `test "$STRIPE_SECRET_KEY" = sk_live_fromserver222`)
	for _, v := range []string{"sk-proj-fromserver111", "sk_live_fromserver222"} {
		if strings.Contains(r.stderr, v) {
			t.Errorf("run printed a value: %q", r.stderr)
		}
	}
	// The child's stdin is ours.
	r = c.mustRun(t, "piped input", "run", "-e", "development", "--", "cat")
	if r.stdout != "piped input" {
		t.Errorf("stdin not passed on: %q", r.stdout)
	}
}

func TestRunExitStatus(t *testing.T) {
	api := newFakeAPI(t)
	c := signedIn(t, api)
	for _, tt := range []struct {
		script string
		code   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{`test "$OPENAI_API_KEY" = sk-proj-fromserver111`, 0},
		{`test "$OPENAI_API_KEY" = wrong`, 1},
		{"kill -TERM $$", 128 + int(syscall.SIGTERM)},
		{"kill -KILL $$", 128 + int(syscall.SIGKILL)},
	} {
		r := c.run(t, "", "run", "-e", "development", "--", "sh", "-c", tt.script)
		if r.code != tt.code {
			t.Errorf("%s: exit %d, want %d", tt.script, r.code, tt.code)
		}
		if strings.Contains(r.stderr, "keyledger:") && !strings.Contains(r.stderr, "left out") {
			t.Errorf("%s: keyledger spoke: %q", tt.script, r.stderr)
		}
	}

	// A command that does not exist is reported before anything is
	// revealed.
	before := len(api.requestsTo("POST", "/api/v1/export"))
	r := c.run(t, "", "run", "-e", "development", "--", "keyledger-no-such-command")
	if r.code != 127 || r.stderr != "keyledger: run: keyledger-no-such-command: command not found\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if len(api.requestsTo("POST", "/api/v1/export")) != before {
		t.Error("exported keys for a command that does not exist")
	}
	for _, args := range [][]string{{"run", "-e", "development"}, {"run", "--", "true"}, {"run", "--nope", "--", "true"}} {
		if r := c.run(t, "", args...); r.code != 2 {
			t.Errorf("%v: exit %d, want 2", args, r.code)
		}
	}
	// An export the server refuses starts nothing.
	api.setFail("POST", "/api/v1/export", fakeAnswer{status: 403, body: `{"error":{"code":"forbidden","message":"Tokens may not reveal production keys."}}`})
	marker := filepath.Join(t.TempDir(), "ran")
	r = c.run(t, "", "run", "-e", "production", "--", "touch", marker)
	if r.code != 1 || r.stderr != "keyledger: not allowed: Tokens may not reveal production keys.\n" {
		t.Errorf("exit %d, stderr %q", r.code, r.stderr)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("the command ran although the export failed")
	}
}

func TestMergeEnv(t *testing.T) {
	base := []string{"PATH=/bin", "A=1", "=C:=C:\\x", "B=2", "A=3", "NOEQUALS"}
	vars := map[string]string{"A": "new", "C": "c", "B": "b", "BAD=NAME": "x", "NUL": "a\x00b"}
	env, kept, skipped := mergeEnv(base, vars, false)
	if !slices.Equal(env, []string{"PATH=/bin", "A=1", "=C:=C:\\x", "B=2", "A=3", "NOEQUALS", "C=c"}) {
		t.Errorf("env %q", env)
	}
	if !slices.Equal(kept, []string{"A", "B"}) || !slices.Equal(skipped, []string{`"BAD=NAME"`, `"NUL"`}) {
		t.Errorf("kept %q skipped %q", kept, skipped)
	}
	// Override replaces the entry that counts (the last of duplicates).
	env, kept, _ = mergeEnv(base, vars, true)
	if !slices.Equal(env, []string{"PATH=/bin", "A=1", "=C:=C:\\x", "B=b", "A=new", "NOEQUALS", "C=c"}) || len(kept) != 0 {
		t.Errorf("override: env %q kept %q", env, kept)
	}
	if base[4] != "A=3" {
		t.Error("mergeEnv changed its input")
	}
}

type recordingProcess struct {
	mu   sync.Mutex
	sigs []os.Signal
}

func (p *recordingProcess) Signal(s os.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sigs = append(p.sigs, s)
	return nil
}

func TestForwardSignals(t *testing.T) {
	rec := &recordingProcess{}
	sigs, done, finished := make(chan os.Signal), make(chan struct{}), make(chan struct{})
	go func() {
		forwardSignals(rec, sigs, done)
		close(finished)
	}()
	for _, s := range forwardedSignals {
		sigs <- s
	}
	close(done)
	<-finished
	rec.mu.Lock()
	if !slices.Equal(rec.sigs, forwardedSignals) {
		t.Errorf("forwarded %v, want %v", rec.sigs, forwardedSignals)
	}
	rec.mu.Unlock()

	// A real child that traps SIGTERM gets it and decides its exit code.
	cmd := exec.Command("sh", "-c", `trap 'kill $! 2>/dev/null; exit 7' TERM; echo ready; sleep 30 >/dev/null 2>&1 & wait`)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("child said %q, %v", line, err)
	}
	sigs, done = make(chan os.Signal, 1), make(chan struct{})
	defer close(done)
	go forwardSignals(cmd.Process, sigs, done)
	sigs <- syscall.SIGTERM
	code, err := exitStatus(cmd.Wait())
	if err != nil || code != 7 {
		t.Errorf("exit %d (%v), want 7", code, err)
	}
}

// TestRunForwardsSignals sends real signals to the built binary while it
// runs a command (against the fake API): the command gets them and
// keyledger exits with its status.
func TestRunForwardsSignals(t *testing.T) {
	bin := keyledgerBinary(t)
	api := newFakeAPI(t)
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP} {
		t.Run(sig.String(), func(t *testing.T) {
			name := map[syscall.Signal]string{syscall.SIGTERM: "TERM", syscall.SIGINT: "INT", syscall.SIGHUP: "HUP"}[sig]
			script := fmt.Sprintf(`trap 'kill $! 2>/dev/null; exit 7' %s; echo ready; sleep 30 >/dev/null 2>&1 & wait`, name)
			cmd := exec.Command(bin, "run", "-e", "development", "--", "sh", "-c", script)
			cmd.Env = processEnv(map[string]string{"KEYLEDGER_SERVER": api.URL(), "KEYLEDGER_TOKEN": testToken, "XDG_CONFIG_HOME": t.TempDir()})
			var stderr syncBuffer
			cmd.Stderr = &stderr
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = cmd.Process.Kill() }() // teardown; it may have exited already
			if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
				t.Fatalf("child said %q, %v; stderr %s", line, err, stderr.String())
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			waited := make(chan error, 1)
			go func() { waited <- cmd.Wait() }()
			select {
			case err = <-waited:
			case <-time.After(10 * time.Second):
				t.Fatalf("still running 10s after %s", sig)
			}
			code, err := exitStatus(err)
			if err != nil || code != 7 {
				t.Errorf("exit %d (%v), want 7; stderr %s", code, err, stderr.String())
			}
		})
	}
}

func TestNormalizeServer(t *testing.T) {
	for in, want := range map[string]string{
		"https://keys.example.com":         "https://keys.example.com",
		" https://keys.example.com/ ":      "https://keys.example.com", //nolint:gocritic // mapKey: the spaces are the input under test
		"http://127.0.0.1:8080/":           "http://127.0.0.1:8080",
		"https://example.com/keyledger/":   "https://example.com/keyledger",
		"keys.example.com":                 "",
		"ftp://keys.example.com":           "",
		"https://user:pw@keys.example.com": "",
		"https://keys.example.com/?x=1":    "",
		"https://":                         "",
	} {
		got, err := normalizeServer(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("normalizeServer(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for in, want := range map[string]bool{
		"http://127.0.0.1:8080": false, "http://localhost:8080": false, "http://[::1]:80": false,
		"https://keys.example.com": false, "http://keys.example.com": true, "http://10.0.0.5": true,
	} {
		if got := plainHTTPRemote(in); got != want {
			t.Errorf("plainHTTPRemote(%q) = %v", in, got)
		}
	}
}
