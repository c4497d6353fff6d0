package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
	"github.com/keyledger/keyledger/web"
)

// testEnv is a real keyledger stack (store on its own Postgres database,
// web server on httptest) with one user per role.
type testEnv struct {
	t      testing.TB
	Store  *store.Store
	Server *web.Server
	HTTP   *httptest.Server
	Logs   *syncBuffer
	Users  map[string]*keyledger.User // "admin", "lead", "member", "member2", "gone"
	// Pool is the store's database, for tests that set up states only
	// time would produce (e.g. a rotation date in the past).
	Pool *pgxpool.Pool
	// Queries counts the statements the store sent (queries_test.go).
	Queries *storetest.QueryCounter
}

// envOption adjusts the web configuration of a test env.
type envOption func(*web.Config)

// withVerifier makes the server check keys with v (POST /keys/:id/verify).
func withVerifier(v keyledger.Verifier) envOption {
	return func(c *web.Config) { c.Verifier = v }
}

// Password is every test user's password.
const Password = "correct horse battery staple"

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newEnv(t testing.TB, opts ...envOption) *testEnv {
	t.Helper()
	return newEnvWithStore(t, store.Options{}, opts...)
}

// newEnvWithStore is newEnv with store options (a clock, limits); the
// logger is always the env's.
func newEnvWithStore(t testing.TB, sopts store.Options, opts ...envOption) *testEnv {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	sopts.Logger = log
	st, _, queries := storetest.NewCountingStore(t, sopts)
	var cfg web.Config
	for _, o := range opts {
		o(&cfg)
	}
	srv, err := web.New(cfg, st, log)
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{t: t, Store: st, Server: srv, Logs: logs, Users: map[string]*keyledger.User{}, Pool: st.Pool(), Queries: queries}
	env.HTTP = httptest.NewServer(srv)
	t.Cleanup(env.HTTP.Close)
	ctx := context.Background()
	for _, u := range []struct {
		key  string
		role keyledger.Role
	}{{"admin", keyledger.RoleAdmin}, {"lead", keyledger.RoleLead}, {"member", keyledger.RoleMember}, {"member2", keyledger.RoleMember}, {"gone", keyledger.RoleMember}} {
		created, err := st.CreateUser(ctx, keyledger.SystemActor("test"), keyledger.NewUser{Email: u.key + "@example.com", Name: strings.ToUpper(u.key[:1]) + u.key[1:], Role: u.role, Password: Password})
		if err != nil {
			t.Fatal(err)
		}
		env.Users[u.key] = created
	}
	if _, err := st.DeactivateUser(ctx, keyledger.SystemActor("test"), "gone@example.com"); err != nil {
		t.Fatal(err)
	}
	env.Users["gone"].Status = keyledger.UserDeactivated
	return env
}

// createKey registers a key directly through the store as owner.
func (e *testEnv) createKey(owner, env, name, value string) *keyledger.Key {
	e.t.Helper()
	u := e.Users[owner]
	res, err := e.Store.CreateKey(context.Background(), keyledger.Actor{User: u}, keyledger.KeyInput{
		Name: name, Project: "checkout", Environment: env, OwnerEmail: u.Email, Value: value})
	if err != nil {
		e.t.Fatal(err)
	}
	return res.Key
}

// client is a browser-like HTTP client with a cookie jar that does not
// follow redirects, so tests see each response.
type client struct {
	t    testing.TB
	env  *testEnv
	http *http.Client
	csrf string
}

func (e *testEnv) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{t: e.t, env: e, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var csrfField = regexp.MustCompile(`name="_csrf" value="([^"]+)"`)

// get fetches a page and remembers its CSRF token.
func (c *client) get(path string) (*http.Response, string) {
	c.t.Helper()
	resp, err := c.http.Get(c.env.HTTP.URL + path)
	if err != nil {
		c.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if m := csrfField.FindSubmatch(body); m != nil {
		c.csrf = string(m[1])
	}
	return resp, string(body)
}

// post submits a form with the remembered CSRF token (unless the form
// sets _csrf itself).
func (c *client) post(path string, form url.Values) (*http.Response, string) {
	c.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["_csrf"]; !ok {
		if c.csrf == "" {
			c.get("/login")
		}
		form.Set("_csrf", c.csrf)
	}
	req, err := http.NewRequest(http.MethodPost, c.env.HTTP.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := c.http.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if m := csrfField.FindSubmatch(body); m != nil {
		c.csrf = string(m[1])
	}
	return resp, string(body)
}

// login signs in as one of the env's users and fails the test otherwise.
func (c *client) login(who string) *client {
	c.t.Helper()
	c.get("/login")
	resp, body := c.post("/login", url.Values{"email": {who + "@example.com"}, "password": {Password}})
	if resp.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("login as %s: status %d: %s", who, resp.StatusCode, body)
	}
	c.get("/keys")
	return c
}

// follow GETs the Location of a 303 answer, as a browser would.
func (c *client) follow(resp *http.Response) (*http.Response, string) {
	c.t.Helper()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || loc == "" {
		c.t.Fatalf("want a 303 with a Location, got %d %q", resp.StatusCode, loc)
	}
	return c.get(loc)
}

// registeredLocation is where POST /keys sends the browser after a
// registration (post/redirect/get).
var registeredLocation = regexp.MustCompile(`^/keys/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\?registered=1$`)

// register submits the register form, expects the redirect to the new
// key's page and follows it; it returns the key id, the POST's response and
// the key page that followed.
func (c *client) register(form url.Values) (id string, post *http.Response, page string) {
	c.t.Helper()
	resp, body := c.post("/keys", form)
	if resp.StatusCode != http.StatusSeeOther {
		c.t.Fatalf("register: status %d, want 303\n%s", resp.StatusCode, body)
	}
	m := registeredLocation.FindStringSubmatch(resp.Header.Get("Location"))
	if m == nil {
		c.t.Fatalf("register: Location %q, want /keys/{id}?registered=1", resp.Header.Get("Location"))
	}
	if v := strings.TrimSpace(form.Get("value")); len(v) >= 8 && strings.Contains(body, v) {
		c.t.Error("the register redirect carries the value")
	}
	r, page := c.follow(resp)
	if r.StatusCode != http.StatusOK {
		c.t.Fatalf("key page after register: status %d", r.StatusCode)
	}
	return m[1], resp, page
}
