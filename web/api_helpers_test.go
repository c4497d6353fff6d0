package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/web"
)

// Helpers of the JSON API tests (api_*_test.go). Every response an API
// test receives goes through apiT.send, which validates it against the
// OpenAPI document (web/openapi.json) with kin-openapi: a status, header or
// body the document does not describe fails the test. Requests that
// succeeded are validated too, so the document's request schemas are the
// ones the server accepts.

// withAPIRate sets the per-token request rate of the JSON API.
func withAPIRate(perSec float64) envOption {
	return func(c *web.Config) { c.APIRate = perSec }
}

// apiT is an API test's view of a test env.
type apiT struct {
	t      testing.TB
	env    *testEnv
	doc    *openapi3.T
	router routers.Router
	// secrets are values stored in the env: no answer but a successful
	// reveal or export, and no log line, may carry one.
	secrets *secretSet
}

type secretSet struct {
	mu sync.Mutex
	v  []string
}

func (s *secretSet) add(v ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.v = append(s.v, v...)
}

func (s *secretSet) all() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.v...)
}

// loadOpenAPI parses and validates web/openapi.json.
func loadOpenAPI(t testing.TB) (*openapi3.T, routers.Router) {
	t.Helper()
	data, err := os.ReadFile("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(data)
	if err != nil {
		t.Fatalf("openapi.json does not load: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, router
}

// newAPI wraps env for API tests; at the end of the test it checks that
// no stored value reached the server log.
func newAPI(t testing.TB, env *testEnv) *apiT {
	t.Helper()
	doc, router := loadOpenAPI(t)
	a := &apiT{t: t, env: env, doc: doc, router: router, secrets: &secretSet{}}
	t.Cleanup(func() {
		logs := env.Logs.String()
		for _, s := range a.secrets.all() {
			if strings.Contains(logs, s) {
				t.Errorf("a key's value appears in the server log")
			}
		}
	})
	return a
}

// withT is a reporting on another (sub)test, sharing env and secrets.
func (a *apiT) withT(t testing.TB) *apiT {
	b := *a
	b.t = t
	return &b
}

// token mints a token for one of env's users ("member", ...).
func (a *apiT) token(who string, scopes ...string) string {
	a.t.Helper()
	if len(scopes) == 0 {
		scopes = []string{keyledger.ScopeRead, keyledger.ScopeReveal, keyledger.ScopeWrite}
	}
	secret, _, err := a.env.Store.CreateToken(context.Background(), keyledger.Actor{StepUpAt: time.Now(), User: a.env.Users[who]}, "",
		keyledger.TokenInput{Name: "t " + authzRand(3), Scopes: scopes})
	if err != nil {
		a.t.Fatal(err)
	}
	return secret
}

// tokenWithID is token plus the token's id.
func (a *apiT) tokenWithID(who string, scopes ...string) (string, int64) {
	a.t.Helper()
	if len(scopes) == 0 {
		scopes = []string{keyledger.ScopeRead, keyledger.ScopeReveal, keyledger.ScopeWrite}
	}
	secret, tok, err := a.env.Store.CreateToken(context.Background(), keyledger.Actor{StepUpAt: time.Now(), User: a.env.Users[who]}, "",
		keyledger.TokenInput{Name: "t " + authzRand(3), Scopes: scopes})
	if err != nil {
		a.t.Fatal(err)
	}
	return secret, tok.ID
}

// key registers a key through the store as owner and remembers its value.
func (a *apiT) key(owner, envName, name string) (*keyledger.Key, string) {
	a.t.Helper()
	k, v := authzKey(a.env, a.t, owner, envName, name)
	a.secrets.add(v)
	return k, v
}

// secret returns a fresh value, remembered as one no answer may show.
func (a *apiT) secret() string {
	v := authzSecret()
	a.secrets.add(v)
	return v
}

// apiResp is an answer of the API.
type apiResp struct {
	Status int
	Header http.Header
	Body   []byte
	JSON   map[string]any
}

func (r apiResp) errCode() string {
	e, _ := r.JSON["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (r apiResp) errMessage() string {
	e, _ := r.JSON["error"].(map[string]any)
	s, _ := e["message"].(string)
	return s
}

// field is the error's message for one field ("" if none).
func (r apiResp) field(name string) string {
	e, _ := r.JSON["error"].(map[string]any)
	f, _ := e["fields"].(map[string]any)
	s, _ := f[name].(string)
	return s
}

func (r apiResp) str(key string) string {
	s, _ := r.JSON[key].(string)
	return s
}

// decode reads the body into v.
func (r apiResp) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// do sends body (nil: none; string or []byte: as is; else JSON-encoded)
// as application/json with token ("" for none).
func (a *apiT) do(token, method, path string, body any) apiResp {
	a.t.Helper()
	var raw []byte
	switch b := body.(type) {
	case nil:
	case string:
		raw = []byte(b)
	case []byte:
		raw = b
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			a.t.Fatal(err)
		}
	}
	h := http.Header{}
	if raw != nil {
		h.Set("Content-Type", "application/json")
	}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	return a.send(method, path, h, raw)
}

// get is do for GET without a body.
func (a *apiT) get(token, path string) apiResp {
	a.t.Helper()
	return a.do(token, http.MethodGet, path, nil)
}

// send sends a request with exactly the headers given, then validates the
// answer against the OpenAPI document and checks it for stored values.
func (a *apiT) send(method, path string, h http.Header, body []byte) apiResp {
	a.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, a.env.HTTP.URL+path, rd)
	if err != nil {
		a.t.Fatal(err)
	}
	req.Header = h.Clone()
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		a.t.Fatal(err)
	}
	r := apiResp{Status: resp.StatusCode, Header: resp.Header, Body: b}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		_ = json.Unmarshal(b, &r.JSON)
	}
	a.validate(method, path, h, body, r)
	isValueAnswer := r.Status == http.StatusOK && method == http.MethodPost &&
		(strings.HasSuffix(strings.SplitN(path, "?", 2)[0], "/reveal") || strings.HasPrefix(path, "/api/v1/export"))
	if !isValueAnswer {
		for _, s := range a.secrets.all() {
			if bytes.Contains(b, []byte(s)) {
				a.t.Errorf("%s %s (status %d): the answer carries a key's value", method, path, r.Status)
			}
		}
	}
	return r
}

// validate checks an answer against the OpenAPI document: a documented
// operation's answer must match its response (status included); anything
// else (an unknown address) must still be the API's error shape.
func (a *apiT) validate(method, path string, h http.Header, body []byte, r apiResp) {
	a.t.Helper()
	if !strings.HasPrefix(path, "/api/") {
		return
	}
	mkReq := func() *http.Request {
		var rd io.Reader
		if body != nil {
			rd = bytes.NewReader(body)
		}
		req, err := http.NewRequest(method, a.env.HTTP.URL+path, rd)
		if err != nil {
			a.t.Fatal(err)
		}
		req.Header = h.Clone()
		return req
	}
	req := mkReq()
	route, params, err := a.router.FindRoute(req)
	if err != nil {
		// Not an operation of the document: only the error shape applies.
		if r.Status < 400 {
			a.t.Errorf("%s %s: status %d for an address the document does not describe", method, path, r.Status)
		}
		a.checkErrorShape(method, path, r)
		return
	}
	ctx := context.Background()
	opts := &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: opts}
	if err := openapi3filter.ValidateResponse(ctx, &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: r.Status, Header: r.Header, Body: io.NopCloser(bytes.NewReader(r.Body)), Options: opts,
	}); err != nil {
		a.t.Errorf("%s %s: the answer (status %d) does not match the OpenAPI document: %v\n%s", method, path, r.Status, err, r.Body)
	}
	if r.Status >= 200 && r.Status < 300 {
		// What the server accepted, the document must accept too.
		req2 := mkReq()
		route2, params2, _ := a.router.FindRoute(req2)
		if err := openapi3filter.ValidateRequest(ctx, &openapi3filter.RequestValidationInput{Request: req2, PathParams: params2, Route: route2, Options: opts}); err != nil {
			a.t.Errorf("%s %s: the server accepted a request the OpenAPI document refuses: %v", method, path, err)
		}
	}
	if r.Status >= 400 {
		a.checkErrorShape(method, path, r)
	}
}

// checkErrorShape: {"error": {"code", "message", "request_id", "fields"?}}
// with the request id of the X-Request-Id header.
func (a *apiT) checkErrorShape(method, path string, r apiResp) {
	a.t.Helper()
	var v any
	if err := json.Unmarshal(r.Body, &v); err != nil {
		a.t.Errorf("%s %s: status %d with a body that is not JSON: %q", method, path, r.Status, r.Body)
		return
	}
	if err := a.doc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
		a.t.Errorf("%s %s: status %d with a body that is not the error shape: %v\n%s", method, path, r.Status, err, r.Body)
	}
	e, _ := r.JSON["error"].(map[string]any)
	if id, _ := e["request_id"].(string); id == "" || id != r.Header.Get("X-Request-Id") {
		a.t.Errorf("%s %s: request_id %q, X-Request-Id %q", method, path, id, r.Header.Get("X-Request-Id"))
	}
}

// want fails unless r has the status (and, for errors, the code).
func (a *apiT) want(r apiResp, status int, code string) {
	a.t.Helper()
	if r.Status != status {
		a.t.Errorf("status %d, want %d: %s", r.Status, status, r.Body)
		return
	}
	if code != "" && r.errCode() != code {
		a.t.Errorf("error code %q, want %q: %s", r.errCode(), code, r.Body)
	}
}

// events lists the audit events of a key (newest first), as admin.
func (a *apiT) events(keyID, action string) []keyledger.AuditEvent {
	a.t.Helper()
	page, err := a.env.Store.ListAudit(context.Background(), keyledger.Actor{User: a.env.Users["admin"]},
		store.AuditFilter{KeyID: keyID, Action: action, Limit: 500})
	if err != nil {
		a.t.Fatal(err)
	}
	return page.Events
}

// viaToken reads details.via_token of an event (0 if absent).
func viaToken(t testing.TB, e keyledger.AuditEvent) int64 {
	t.Helper()
	var d map[string]any
	if err := json.Unmarshal([]byte(e.Details), &d); err != nil {
		t.Fatalf("details %q: %v", e.Details, err)
	}
	n, _ := d["via_token"].(float64)
	return int64(n)
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
