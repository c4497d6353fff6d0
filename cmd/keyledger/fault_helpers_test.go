package main

// Helpers for the fault tests (fault_*_test.go): each starts the real
// binary (built once, see e2e_test.go) against its own database and, where
// it stops Postgres, its own cluster (store/pgcluster).

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
	"github.com/keyledger/keyledger/web/wire"
)

// serveAt starts `keyledger serve` with env plus a free listen address
// and JSON logs, and returns it with its base URL (not waiting for ready).
func serveAt(t *testing.T, env map[string]string) (*process, string) {
	t.Helper()
	addr := freeAddr(t)
	e := map[string]string{"KEYLEDGER_LISTEN": addr, "KEYLEDGER_LOG_FORMAT": "json"}
	for k, v := range env {
		e[k] = v
	}
	srv := start(t, e, "serve")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("serve output:\n%s", tailString(srv.output.String(), 20000))
		}
	})
	return srv, "http://" + addr
}

func tailString(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// seedUser creates an active user with password cliPassword (cheap hash).
func seedUser(t testing.TB, st *store.Store, email string, role keyledger.Role) *keyledger.User {
	t.Helper()
	u, err := st.CreateUser(context.Background(), keyledger.SystemActor("test"), keyledger.NewUser{Email: email, Name: email, Role: role, Password: cliPassword})
	if err != nil {
		t.Fatalf("create user %s: %v", email, err)
	}
	return u
}

// seedKey registers a development key owned by u and returns its id and
// value.
func seedKey(t testing.TB, st *store.Store, u *keyledger.User, name string) (string, string) {
	t.Helper()
	value := "sk-test-" + randomHex(t, 20)
	res, err := st.CreateKey(context.Background(), keyledger.Actor{User: u, StepUpAt: time.Now()}, keyledger.KeyInput{
		Name: name, Project: "fault", Environment: "development", OwnerEmail: u.Email, Value: value})
	if err != nil {
		t.Fatalf("create key %s: %v", name, err)
	}
	return res.Key.ID, value
}

// mintToken creates an access token for u with scopes.
func mintToken(t testing.TB, st *store.Store, u *keyledger.User, scopes ...string) string {
	t.Helper()
	secret, _, err := st.CreateToken(context.Background(), keyledger.Actor{StepUpAt: time.Now(), User: u}, u.Email,
		keyledger.TokenInput{Name: "fault-" + randomHex(t, 4), Scopes: scopes, Expires: "1d"})
	if err != nil {
		t.Fatalf("create token: %v", err)
	}
	return secret
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// apiCall sends one JSON API request with a bearer token.
func apiCall(c *http.Client, method, base, token, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// apiReveal reveals key id through the API and returns the status, the
// value (on 200) and the body.
func apiReveal(c *http.Client, base, token, id string) (int, string, []byte, error) {
	status, body, err := apiCall(c, http.MethodPost, base, token, "/api/v1/keys/"+id+"/reveal", wire.RevealRequest{Reason: "fault test"})
	if err != nil || status != http.StatusOK {
		return status, "", body, err
	}
	var r wire.Revealed
	if err := json.Unmarshal(body, &r); err != nil {
		return status, "", body, fmt.Errorf("reveal answer is not JSON: %v", err)
	}
	return status, r.Value, body, nil
}

// apiErrorOf decodes {"error":{"code","message"}}.
func apiErrorOf(body []byte) (code, message string) {
	var e wire.Error
	_ = json.Unmarshal(body, &e)
	return e.Error.Code, e.Error.Message
}

// browser is a signed-in browser session: cookies and the CSRF token.
type browser struct {
	c    *http.Client
	base string
	csrf string
}

// signInBrowser signs in through the login form; keepAlive false makes
// every request use a new connection.
func signInBrowser(t testing.TB, base, email string, keepAlive bool) *browser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableKeepAlives = !keepAlive
	tr.MaxIdleConnsPerHost = 16
	b := &browser{c: &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: tr}, base: base}
	token := b.csrfFrom(t, "/login")
	resp, err := b.c.PostForm(base+"/login", url.Values{"email": {email}, "password": {cliPassword}, "_csrf": {token}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path == "/login" {
		t.Fatalf("sign in as %s: ended at %s with %d:\n%s", email, resp.Request.URL, resp.StatusCode, page)
	}
	// The token is bound to the session: take it from a signed-in page.
	b.csrf = b.csrfFrom(t, "/keys")
	return b
}

func (b *browser) csrfFrom(t testing.TB, path string) string {
	t.Helper()
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	m := csrfField.FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("no _csrf field on %s (%d):\n%s", path, resp.StatusCode, body)
	}
	return m[1] + m[2]
}

// get fetches a page.
func (b *browser) get(path string) (int, []byte, error) {
	resp, err := b.c.Get(b.base + path)
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// reveal posts the reveal form of key id.
func (b *browser) reveal(id string) (int, []byte, error) {
	resp, err := b.c.PostForm(b.base+"/keys/"+id+"/reveal", url.Values{"_csrf": {b.csrf}, "reason": {"fault test"}})
	if err != nil {
		return 0, nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// countAudit counts audit events with action.
func countAudit(t testing.TB, pool *pgxpool.Pool, action string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), "SELECT count(*) FROM audit_events WHERE action = $1", action).Scan(&n); err != nil {
		t.Fatalf("count %s events: %v", action, err)
	}
	return n
}

// superExec runs SQL as the superuser on the database at url.
func superExec(t testing.TB, dbURL, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// checkNoHalfWrittenRows checks the invariants a crash or a failed
// commit must never break: every key has its current version, no version
// points at a missing key, every live version has its whole envelope, and
// the audit chain verifies.
func checkNoHalfWrittenRows(t testing.TB, st *store.Store, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []struct{ what, sql string }{
		{"keys without their current version", `SELECT count(*) FROM keys k WHERE NOT EXISTS
			(SELECT 1 FROM key_versions v WHERE v.key_id = k.id AND v.version = k.current_version)`},
		{"versions beyond their key's current version", `SELECT count(*) FROM key_versions v JOIN keys k ON k.id = v.key_id WHERE v.version > k.current_version`},
		{"live versions with a partial envelope", `SELECT count(*) FROM key_versions WHERE destroyed_at IS NULL
			AND (kek_id IS NULL OR wrapped_dek IS NULL OR nonce IS NULL OR ciphertext IS NULL)`},
		{"keys without a key.create event", `SELECT count(*) FROM keys k WHERE NOT EXISTS
			(SELECT 1 FROM audit_events a WHERE a.action = 'key.create' AND a.key_id = k.id)`},
		{"key.create events without their key", `SELECT count(*) FROM audit_events a WHERE a.action = 'key.create'
			AND NOT EXISTS (SELECT 1 FROM keys k WHERE k.id = a.key_id)`},
	} {
		var n int
		if err := pool.QueryRow(ctx, q.sql).Scan(&n); err != nil {
			t.Fatalf("%s: %v", q.what, err)
		}
		if n != 0 {
			t.Errorf("%d %s", n, q.what)
		}
	}
	if _, err := st.ChainAudit(ctx); err != nil {
		dumpAuditChain(t, pool)
		t.Fatalf("chain audit: %v", err)
	}
	r, err := st.VerifyAudit(ctx)
	if err != nil {
		dumpAuditChain(t, pool)
		t.Fatalf("verify audit: %v", err)
	}
	if !r.OK() {
		t.Errorf("audit chain broken: %s", r.Problem)
	}
}

// dumpAuditChain logs where the chain's txid order breaks, its last
// links and the unchained events, to diagnose a chaining failure.
func dumpAuditChain(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	ctx := context.Background()
	rows, err := pool.Query(ctx, `WITH c AS (SELECT seq, event_id, event_txid, lag(event_txid) OVER (ORDER BY seq) AS prev_txid,
			lag(event_id) OVER (ORDER BY seq) AS prev_id, max(seq) OVER () AS last FROM audit_chain)
		SELECT 'chain', seq, event_id, event_txid::text, coalesce(e.action, '?'), coalesce(e.at::text, '') FROM c LEFT JOIN audit_events e ON e.id = c.event_id
			WHERE (c.event_txid, c.event_id) < (c.prev_txid, c.prev_id) OR c.seq > c.last - 5
		UNION ALL
		SELECT 'unchained', 0, e.id, e.txid::text, e.action, e.at::text FROM audit_events e
			WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id)
		ORDER BY 1, 2, 4 LIMIT 60`)
	if err != nil {
		t.Logf("dump audit chain: %v", err)
		return
	}
	defer rows.Close()
	for rows.Next() {
		var what, txid, action, at string
		var seq, id int64
		if err := rows.Scan(&what, &seq, &id, &txid, &action, &at); err != nil {
			t.Logf("dump audit chain: %v", err)
			return
		}
		t.Logf("%s seq=%d event=%d txid=%s %s at %s", what, seq, id, txid, action, at)
	}
}

// outcome is one request made under a fault.
type outcome struct {
	kind       string // "api-reveal", "browser-reveal", "api-create"
	start, end time.Time
	status     int // 0: no HTTP answer
	err        error
	body       []byte
}

// recorder collects outcomes from concurrent workers.
type recorder struct {
	mu  sync.Mutex
	all []outcome
}

func (r *recorder) add(o outcome) {
	r.mu.Lock()
	r.all = append(r.all, o)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []outcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]outcome(nil), r.all...)
}

// refused reports whether err is a refused or reset connection: the
// request never reached a handler.
func refused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || strings.Contains(err.Error(), "server closed")
}

// dialRefused reports whether a new TCP connection to base is refused.
func dialRefused(base string) bool {
	c, err := net.DialTimeout("tcp", strings.TrimPrefix(base, "http://"), time.Second)
	if err != nil {
		return errors.Is(err, syscall.ECONNREFUSED)
	}
	_ = c.Close() // only probing whether the port answers
	return false
}

// getStatus GETs base+path and returns the status and body.
func getStatus(c *http.Client, base, path string) (int, string, error) {
	resp, err := c.Get(base + path)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// fastOpts are store options with cheap password hashes.
func fastOpts() store.Options { return store.Options{PasswordParams: storetest.FastPasswords()} }
