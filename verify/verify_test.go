package verify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

// seen is one request a fake provider received.
type seen struct {
	method, path, rawQuery, host string
	header                       http.Header
}

// recorder is a fake provider endpoint: it records every request and
// answers with respond.
type recorder struct {
	mu      sync.Mutex
	reqs    []seen
	respond http.HandlerFunc
}

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.reqs = append(rec.reqs, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Host, r.Header.Clone()})
	rec.mu.Unlock()
	if rec.respond != nil {
		rec.respond(w, r)
	}
}

func (rec *recorder) requests() []seen {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return append([]seen(nil), rec.reqs...)
}

// sawKey reports whether any request carried key anywhere in its headers,
// path or query.
func (rec *recorder) sawKey(key string) bool {
	for _, r := range rec.requests() {
		if strings.Contains(r.path, key) || strings.Contains(r.rawQuery, key) {
			return true
		}
		for _, vs := range r.header {
			for _, v := range vs {
				if strings.Contains(v, key) {
					return true
				}
			}
		}
	}
	return false
}

func newServer(t *testing.T, respond http.HandlerFunc) (*httptest.Server, *recorder) {
	t.Helper()
	rec := &recorder{respond: respond}
	srv := httptest.NewServer(rec)
	t.Cleanup(srv.Close)
	return srv, rec
}

// reply is a canned provider answer; "{{KEY}}" in the body or a header
// value is replaced by the key the request carried, like providers that
// echo it back.
type reply struct {
	status int
	header map[string]string
	body   string
}

func (rp reply) handler(key string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for k, v := range rp.header {
			w.Header().Set(k, strings.ReplaceAll(v, "{{KEY}}", key))
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rp.status)
		_, _ = w.Write([]byte(strings.ReplaceAll(rp.body, "{{KEY}}", key)))
	}
}

type classCase struct {
	name    string
	reply   reply
	result  string
	message string // exact
}

// fake describes how one provider is called and how it answers.
type fake struct {
	provider keyledger.Provider
	key      string
	path     string
	headers  map[string]string // exact values the request must carry
	absent   []string          // headers the request must not carry
	setBase  func(*Config, string)
	classes  []classCase
}

func fakes() []fake {
	const (
		openAIKey    = "sk-proj-Ab12Cd34Ef56Gh78Ij90KlMnOpQr"
		anthropicKey = "sk-ant-api03-Zy98Xw76Vu54Ts32RqPoNm"
		gitHubKey    = "ghp_Qw12Er34Ty56Ui78Op90AsDfGhJkLzXc"
		stripeKey    = "sk_test_51Hx2Jk3Lm4Np5Qr6St7Uv8Wx"
	)
	return []fake{
		{
			provider: keyledger.ProviderOpenAI,
			key:      openAIKey,
			path:     "/v1/models",
			headers:  map[string]string{"Authorization": "Bearer " + openAIKey},
			absent:   []string{"X-Api-Key"},
			setBase:  func(c *Config, u string) { c.OpenAIBaseURL = u },
			classes: []classCase{
				{"ok", reply{200, nil, `{"object":"list","data":[{"id":"gpt-4o"}]}`},
					keyledger.VerifyOK, "OpenAI accepted the key (HTTP 200)."},
				{"invalid", reply{401, nil, `{"error":{"message":"Incorrect API key provided: {{KEY}}. You can find your API key at https://platform.openai.com/account/api-keys.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}`},
					keyledger.VerifyInvalid, "OpenAI rejected the key as invalid or revoked (HTTP 401 invalid_api_key)."},
				{"forbidden", reply{403, nil, `{"error":{"message":"Country, region, or territory not supported","type":"request_forbidden","param":null,"code":"unsupported_country_region_territory"}}`},
					keyledger.VerifyForbidden, "OpenAI refused the key access: check its permissions (HTTP 403 unsupported_country_region_territory)."},
				{"quota 429", reply{429, nil, `{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`},
					keyledger.VerifyQuota, "OpenAI says the key has no quota left: check billing (HTTP 429 insufficient_quota)."},
				{"quota 402", reply{402, nil, `{}`},
					keyledger.VerifyQuota, "OpenAI says the key has no quota left: check billing (HTTP 402)."},
				{"rate limited", reply{429, map[string]string{"Retry-After": "20"}, `{"error":{"message":"Rate limit reached for requests","type":"requests","param":null,"code":"rate_limit_exceeded"}}`},
					keyledger.VerifyRateLimited, "OpenAI is rate-limiting the key; try again later (HTTP 429 rate_limit_exceeded)."},
				{"other 4xx", reply{404, nil, `{"error":{"message":"Invalid URL (GET /v1/modelz)","type":"invalid_request_error","param":null,"code":null}}`},
					keyledger.VerifyInvalid, "OpenAI refused the key (HTTP 404 invalid_request_error)."},
				{"free text code not shown", reply{401, nil, `{"error":{"message":"x","type":"See https://evil.example/phish","code":"Invalid-Key"}}`},
					keyledger.VerifyInvalid, "OpenAI rejected the key as invalid or revoked (HTTP 401)."},
				{"long code not shown", reply{401, nil, `{"error":{"code":"` + strings.Repeat("a", 41) + `"}}`},
					keyledger.VerifyInvalid, "OpenAI rejected the key as invalid or revoked (HTTP 401)."},
				{"server error", reply{500, nil, `{"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}`},
					keyledger.VerifyUnreachable, "OpenAI had a server error; try again later (HTTP 500 server_error)."},
				{"bad gateway html", reply{502, nil, `<html><body>502 Bad Gateway</body></html>`},
					keyledger.VerifyUnreachable, "OpenAI had a server error; try again later (HTTP 502)."},
			},
		},
		{
			provider: keyledger.ProviderAnthropic,
			key:      anthropicKey,
			path:     "/v1/models",
			headers:  map[string]string{"X-Api-Key": anthropicKey, "Anthropic-Version": "2023-06-01"},
			absent:   []string{"Authorization"},
			setBase:  func(c *Config, u string) { c.AnthropicBaseURL = u },
			classes: []classCase{
				{"ok", reply{200, nil, `{"data":[{"type":"model","id":"claude-sonnet-4-5"}],"has_more":false}`},
					keyledger.VerifyOK, "Anthropic accepted the key (HTTP 200)."},
				{"invalid", reply{401, nil, `{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"}}`},
					keyledger.VerifyInvalid, "Anthropic rejected the key as invalid or revoked (HTTP 401 authentication_error)."},
				{"forbidden", reply{403, nil, `{"type":"error","error":{"type":"permission_error","message":"Your API key does not have permission to use the specified resource."}}`},
					keyledger.VerifyForbidden, "Anthropic refused the key access: check its permissions (HTTP 403 permission_error)."},
				{"quota billing 400", reply{400, nil, `{"type":"error","error":{"type":"billing_error","message":"billing problem"}}`},
					keyledger.VerifyQuota, "Anthropic says the key has no quota left: check billing (HTTP 400 billing_error)."},
				{"quota billing 402", reply{402, nil, `{"type":"error","error":{"type":"billing_error","message":"billing problem"}}`},
					keyledger.VerifyQuota, "Anthropic says the key has no quota left: check billing (HTTP 402 billing_error)."},
				{"quota billing 403", reply{403, nil, `{"type":"error","error":{"type":"billing_error","message":"billing problem"}}`},
					keyledger.VerifyQuota, "Anthropic says the key has no quota left: check billing (HTTP 403 billing_error)."},
				{"quota credit balance 400", reply{400, nil, `{"type":"error","error":{"type":"invalid_request_error","message":"Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}}`},
					keyledger.VerifyQuota, "Anthropic says the key has no quota left: check billing (HTTP 400 invalid_request_error)."},
				{"rate limited", reply{429, map[string]string{"Retry-After": "5"}, `{"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your rate limit"}}`},
					keyledger.VerifyRateLimited, "Anthropic is rate-limiting the key; try again later (HTTP 429 rate_limit_error)."},
				{"other 4xx", reply{404, nil, `{"type":"error","error":{"type":"not_found_error","message":"Not found"}}`},
					keyledger.VerifyInvalid, "Anthropic refused the key (HTTP 404 not_found_error)."},
				{"server error", reply{500, nil, `{"type":"error","error":{"type":"api_error","message":"Internal server error"}}`},
					keyledger.VerifyUnreachable, "Anthropic had a server error; try again later (HTTP 500 api_error)."},
				{"overloaded 529", reply{529, nil, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`},
					keyledger.VerifyUnreachable, "Anthropic is overloaded; try again later (HTTP 529 overloaded_error)."},
			},
		},
		{
			provider: keyledger.ProviderGitHub,
			key:      gitHubKey,
			path:     "/user",
			headers: map[string]string{
				"Authorization":        "Bearer " + gitHubKey,
				"Accept":               "application/vnd.github+json",
				"X-Github-Api-Version": "2022-11-28",
			},
			absent:  []string{"X-Api-Key"},
			setBase: func(c *Config, u string) { c.GitHubBaseURL = u },
			classes: []classCase{
				{"ok", reply{200, map[string]string{"X-Ratelimit-Remaining": "4999"}, `{"login":"octocat","id":1}`},
					keyledger.VerifyOK, "GitHub accepted the key (HTTP 200)."},
				{"invalid", reply{401, nil, `{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest","status":"401"}`},
					keyledger.VerifyInvalid, "GitHub rejected the key as invalid or revoked (HTTP 401)."},
				{"forbidden", reply{403, map[string]string{"X-Ratelimit-Remaining": "4999"}, `{"message":"Resource not accessible by integration","documentation_url":"https://docs.github.com/rest/users/users#get-the-authenticated-user","status":"403"}`},
					keyledger.VerifyForbidden, "GitHub refused the key access: check its permissions (HTTP 403)."},
				{"quota 402", reply{402, nil, `{"message":"Payment required"}`},
					keyledger.VerifyQuota, "GitHub says the key has no quota left: check billing (HTTP 402)."},
				{"rate limited 403 primary", reply{403, map[string]string{"X-Ratelimit-Limit": "5000", "X-Ratelimit-Remaining": "0", "X-Ratelimit-Reset": "1700000000"}, `{"message":"API rate limit exceeded for user ID 1.","documentation_url":"https://docs.github.com/rest/overview/resources-in-the-rest-api#rate-limiting"}`},
					keyledger.VerifyRateLimited, "GitHub is rate-limiting the key; try again later (HTTP 403)."},
				{"rate limited 403 header only", reply{403, map[string]string{"X-Ratelimit-Remaining": "0"}, `{}`},
					keyledger.VerifyRateLimited, "GitHub is rate-limiting the key; try again later (HTTP 403)."},
				{"rate limited 403 secondary", reply{403, map[string]string{"Retry-After": "60"}, `{"message":"You have exceeded a secondary rate limit."}`},
					keyledger.VerifyRateLimited, "GitHub is rate-limiting the key; try again later (HTTP 403)."},
				{"rate limited 429", reply{429, map[string]string{"X-Ratelimit-Remaining": "0"}, `{"message":"API rate limit exceeded"}`},
					keyledger.VerifyRateLimited, "GitHub is rate-limiting the key; try again later (HTTP 429)."},
				{"other 4xx", reply{404, nil, `{"message":"Not Found","documentation_url":"https://docs.github.com/rest","status":"404"}`},
					keyledger.VerifyInvalid, "GitHub refused the key (HTTP 404)."},
				{"server error", reply{503, nil, `{"message":"Service unavailable"}`},
					keyledger.VerifyUnreachable, "GitHub had a server error; try again later (HTTP 503)."},
			},
		},
		{
			provider: keyledger.ProviderStripe,
			key:      stripeKey,
			path:     "/v1/balance",
			headers:  map[string]string{"Authorization": "Bearer " + stripeKey},
			absent:   []string{"X-Api-Key"},
			setBase:  func(c *Config, u string) { c.StripeBaseURL = u },
			classes: []classCase{
				{"ok", reply{200, nil, `{"object":"balance","available":[{"amount":0,"currency":"usd"}],"livemode":false}`},
					keyledger.VerifyOK, "Stripe accepted the key (HTTP 200)."},
				{"invalid", reply{401, nil, `{"error":{"message":"Invalid API Key provided: {{KEY}}","type":"invalid_request_error"}}`},
					keyledger.VerifyInvalid, "Stripe rejected the key as invalid or revoked (HTTP 401 invalid_request_error)."},
				{"expired", reply{401, nil, `{"error":{"code":"api_key_expired","doc_url":"https://stripe.com/docs/error-codes/api-key-expired","message":"Expired API Key provided: {{KEY}}","type":"invalid_request_error"}}`},
					keyledger.VerifyInvalid, "Stripe rejected the key as invalid or revoked (HTTP 401 api_key_expired)."},
				{"forbidden", reply{403, nil, `{"error":{"message":"The provided key '{{KEY}}' does not have the required permissions for this endpoint on account 'acct_1'.","type":"invalid_request_error"}}`},
					keyledger.VerifyForbidden, "Stripe refused the key access: check its permissions (HTTP 403 invalid_request_error)."},
				{"quota 402", reply{402, nil, `{"error":{"type":"invalid_request_error"}}`},
					keyledger.VerifyQuota, "Stripe says the key has no quota left: check billing (HTTP 402 invalid_request_error)."},
				{"rate limited", reply{429, nil, `{"error":{"code":"rate_limit","message":"Too many requests","type":"invalid_request_error"}}`},
					keyledger.VerifyRateLimited, "Stripe is rate-limiting the key; try again later (HTTP 429 rate_limit)."},
				{"other 4xx", reply{404, nil, `{"error":{"message":"Unrecognized request URL (GET: /v1/balanc).","type":"invalid_request_error"}}`},
					keyledger.VerifyInvalid, "Stripe refused the key (HTTP 404 invalid_request_error)."},
				{"server error", reply{500, nil, `{"error":{"type":"api_error","message":"Something went wrong"}}`},
					keyledger.VerifyUnreachable, "Stripe had a server error; try again later (HTTP 500 api_error)."},
			},
		},
	}
}

// newVerifier builds a Verifier whose base URL for f points at base.
func newVerifier(t *testing.T, f fake, base string, edit func(*Config)) *Verifier {
	t.Helper()
	var cfg Config
	f.setBase(&cfg, base)
	if edit != nil {
		edit(&cfg)
	}
	v, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return v
}

// checkRequest asserts r is f's one authenticated GET to wantPath.
func checkRequest(t *testing.T, f fake, r seen, wantPath string) {
	t.Helper()
	if r.method != http.MethodGet {
		t.Errorf("method = %q, want GET", r.method)
	}
	if r.path != wantPath {
		t.Errorf("path = %q, want %q", r.path, wantPath)
	}
	if r.rawQuery != "" {
		t.Errorf("query = %q, want none", r.rawQuery)
	}
	for k, want := range f.headers {
		if got := r.header.Values(k); len(got) != 1 || got[0] != want {
			t.Errorf("header %s = %q, want [%q]", k, got, want)
		}
	}
	for _, k := range f.absent {
		if got := r.header.Get(k); got != "" {
			t.Errorf("header %s = %q, want none", k, got)
		}
	}
	if got := r.header.Get("User-Agent"); got != DefaultUserAgent {
		t.Errorf("User-Agent = %q, want %q", got, DefaultUserAgent)
	}
}

// checkResult asserts the result is the wanted class, holds no key, and
// (when want is not "") has exactly the wanted message.
func checkResult(t *testing.T, got keyledger.VerifyResult, result, message, key string) {
	t.Helper()
	if got.Result != result {
		t.Errorf("Result = %q, want %q (message %q)", got.Result, result, got.Message)
	}
	if message != "" && got.Message != message {
		t.Errorf("Message = %q, want %q", got.Message, message)
	}
	if got.Message == "" {
		t.Errorf("Message is empty")
	}
	if strings.Contains(got.Message, key) {
		t.Errorf("Message %q contains the key", got.Message)
	}
}

func TestVerifyClassifies(t *testing.T) {
	for _, f := range fakes() {
		for _, c := range f.classes {
			t.Run(string(f.provider)+"/"+c.name, func(t *testing.T) {
				t.Parallel()
				srv, rec := newServer(t, c.reply.handler(f.key))
				v := newVerifier(t, f, srv.URL, nil)
				if !v.Supports(f.provider) {
					t.Fatalf("Supports(%q) = false", f.provider)
				}
				got := v.Verify(context.Background(), f.provider, f.key)
				checkResult(t, got, c.result, c.message, f.key)
				reqs := rec.requests()
				if len(reqs) != 1 {
					t.Fatalf("provider got %d requests, want exactly 1", len(reqs))
				}
				checkRequest(t, f, reqs[0], f.path)
			})
		}
	}
}

// TestVerifyCoversEveryClass keeps the table above honest: every provider
// is tested for every result an HTTP answer can give.
func TestVerifyCoversEveryClass(t *testing.T) {
	want := []string{keyledger.VerifyOK, keyledger.VerifyInvalid, keyledger.VerifyForbidden,
		keyledger.VerifyQuota, keyledger.VerifyRateLimited, keyledger.VerifyUnreachable}
	for _, f := range fakes() {
		have := map[string]bool{}
		for _, c := range f.classes {
			have[c.result] = true
		}
		for _, w := range want {
			if !have[w] {
				t.Errorf("%s: no case for %q", f.provider, w)
			}
		}
	}
}

func TestVerifyBasePathPrefix(t *testing.T) {
	for _, f := range fakes() {
		for _, prefix := range []string{"/proxy/" + string(f.provider), "/proxy/" + string(f.provider) + "/"} {
			t.Run(string(f.provider)+prefix, func(t *testing.T) {
				srv, rec := newServer(t, reply{200, nil, `{}`}.handler(f.key))
				v := newVerifier(t, f, srv.URL+prefix, nil)
				got := v.Verify(context.Background(), f.provider, f.key)
				checkResult(t, got, keyledger.VerifyOK, "", f.key)
				reqs := rec.requests()
				if len(reqs) != 1 {
					t.Fatalf("got %d requests, want 1", len(reqs))
				}
				checkRequest(t, f, reqs[0], "/proxy/"+string(f.provider)+f.path)
			})
		}
	}
}

// TestVerifyNeverRevealsKey points every provider at a server that echoes
// the key in every field it can, with every status, and checks that no
// message holds the key or a piece of it.
func TestVerifyNeverRevealsKey(t *testing.T) {
	keys := []string{
		"sk-proj-Ab12Cd34Ef56Gh78Ij90KlMnOpQr",
		// Lowercase letters and "_" only: the key itself passes the
		// error code allow-list, so only the overlap check stops it.
		"sk_live_abcdefghijklmnopqrstuvwx",
	}
	bodies := []string{
		`{"error":{"message":"Incorrect API key provided: {{KEY}}","type":"{{KEY}}","code":"{{KEY}}","param":"{{KEY}}"},"message":"{{KEY}}","type":"error"}`,
		`{"type":"error","error":{"type":"{{KEY}}","message":"{{KEY}}"},"message":"{{KEY}}"}`,
		// A piece of the key as the code.
		`{"error":{"code":"abcdefghijklmnop","type":"live_abcdefgh"}}`,
		// A piece of the key inside an otherwise plausible code.
		`{"error":{"code":"zz_ijklmnop_zz","type":"rate_ijklmnop"}}`,
		`{{KEY}}`,
	}
	statuses := []int{200, 400, 401, 402, 403, 404, 409, 418, 429, 500, 503, 529}
	for _, f := range fakes() {
		for _, key := range keys {
			for _, body := range bodies {
				for _, status := range statuses {
					rp := reply{status, map[string]string{
						"X-Ratelimit-Remaining": "{{KEY}}",
						"Retry-After":           "{{KEY}}",
						"X-Request-Id":          "{{KEY}}",
						"Www-Authenticate":      `Bearer error="{{KEY}}"`,
					}, body}
					srv, _ := newServer(t, rp.handler(key))
					v := newVerifier(t, f, srv.URL, nil)
					got := v.Verify(context.Background(), f.provider, key)
					if got.Message == "" {
						t.Errorf("%s %d: empty message", f.provider, status)
					}
					for i := 0; i+6 <= len(key); i++ {
						if piece := key[i : i+6]; strings.Contains(got.Message, piece) {
							t.Errorf("%s %d %s: message %q contains %q from the key", f.provider, status, body, got.Message, piece)
							break
						}
					}
					srv.Close()
				}
			}
		}
	}
}

func TestVerifyRedirectOffOrigin(t *testing.T) {
	for _, f := range fakes() {
		t.Run(string(f.provider), func(t *testing.T) {
			// elsewhere is another host (another port on 127.0.0.1): it
			// must never be asked anything, let alone get the key.
			elsewhere, elsewhereRec := newServer(t, reply{200, nil, `{}`}.handler(f.key))
			targets := map[string]func(r *http.Request) string{
				"other port": func(*http.Request) string { return elsewhere.URL + f.path },
				"other hostname": func(r *http.Request) string {
					return "http://" + strings.Replace(r.Host, "127.0.0.1", "localhost", 1) + "/moved"
				},
				"other scheme": func(r *http.Request) string { return "https://" + r.Host + "/moved" },
			}
			for name, target := range targets {
				for _, code := range []int{http.StatusFound, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
					origin, originRec := newServer(t, func(w http.ResponseWriter, r *http.Request) {
						http.Redirect(w, r, target(r), code)
					})
					v := newVerifier(t, f, origin.URL, nil)
					got := v.Verify(context.Background(), f.provider, f.key)
					if got.Result != keyledger.VerifyUnreachable || !strings.Contains(got.Message, "redirected the request elsewhere") {
						t.Errorf("%s %d: got %+v, want unreachable saying it redirected elsewhere", name, code, got)
					}
					if strings.Contains(got.Message, f.key) || strings.Contains(got.Message, "localhost") || strings.Contains(got.Message, "127.0.0.1") {
						t.Errorf("%s %d: message %q names the key or a host", name, code, got.Message)
					}
					if n := len(originRec.requests()); n != 1 {
						t.Errorf("%s %d: origin got %d requests, want 1", name, code, n)
					}
					origin.Close()
				}
			}
			if n := len(elsewhereRec.requests()); n != 0 || elsewhereRec.sawKey(f.key) {
				t.Errorf("the other host got %d requests (key seen: %v), want none", n, elsewhereRec.sawKey(f.key))
			}
		})
	}
}

func TestVerifyRedirectSameOrigin(t *testing.T) {
	for _, f := range fakes() {
		t.Run(string(f.provider), func(t *testing.T) {
			srv, rec := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == f.path {
					http.Redirect(w, r, "/moved"+f.path, http.StatusTemporaryRedirect)
					return
				}
				w.WriteHeader(http.StatusOK)
			})
			v := newVerifier(t, f, srv.URL, nil)
			got := v.Verify(context.Background(), f.provider, f.key)
			checkResult(t, got, keyledger.VerifyOK, "", f.key)
			reqs := rec.requests()
			if len(reqs) != 2 {
				t.Fatalf("got %d requests, want 2", len(reqs))
			}
			checkRequest(t, f, reqs[0], f.path)
			checkRequest(t, f, reqs[1], "/moved"+f.path)
		})
	}
}

func TestVerifyTooManyRedirects(t *testing.T) {
	for _, f := range fakes() {
		t.Run(string(f.provider), func(t *testing.T) {
			var n atomic.Int32
			srv, rec := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/loop/"+string(rune('a'+n.Add(1))), http.StatusFound)
			})
			v := newVerifier(t, f, srv.URL, nil)
			got := v.Verify(context.Background(), f.provider, f.key)
			checkResult(t, got, keyledger.VerifyUnreachable, f.provider.Label()+" redirected the request too many times.", f.key)
			// The first request and 3 redirects.
			if n := len(rec.requests()); n != 1+maxRedirects {
				t.Errorf("got %d requests, want %d", n, 1+maxRedirects)
			}
		})
	}
}

// slowHandler answers after a long time, or as soon as the client gives up,
// so that servers close quickly.
func slowHandler(w http.ResponseWriter, r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-time.After(5 * time.Second):
		w.WriteHeader(http.StatusOK)
	}
}

func TestVerifyTimeout(t *testing.T) {
	for _, f := range fakes() {
		t.Run(string(f.provider), func(t *testing.T) {
			t.Parallel()
			srv, rec := newServer(t, slowHandler)
			v := newVerifier(t, f, srv.URL, func(c *Config) { c.Timeout = 100 * time.Millisecond })
			start := time.Now()
			got := v.Verify(context.Background(), f.provider, f.key)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Verify took %v with a 100ms timeout", d)
			}
			checkResult(t, got, keyledger.VerifyUnreachable, f.provider.Label()+" did not answer within 100ms.", f.key)
			if n := len(rec.requests()); n != 1 {
				t.Errorf("got %d requests, want 1", n)
			}
		})
	}
}

func TestVerifyHonoursCallerContext(t *testing.T) {
	for _, f := range fakes() {
		t.Run(string(f.provider), func(t *testing.T) {
			t.Parallel()
			srv, _ := newServer(t, slowHandler)
			v := newVerifier(t, f, srv.URL, nil) // default 10s timeout

			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			start := time.Now()
			got := v.Verify(ctx, f.provider, f.key)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("cancelled Verify took %v", d)
			}
			checkResult(t, got, keyledger.VerifyUnreachable, "The check was cancelled before "+f.provider.Label()+" answered.", f.key)

			ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start = time.Now()
			got = v.Verify(ctx, f.provider, f.key)
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("Verify past the caller's deadline took %v", d)
			}
			checkResult(t, got, keyledger.VerifyUnreachable, f.provider.Label()+" did not answer in time.", f.key)
		})
	}
}

func TestVerifyClosedPort(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	base := srv.URL
	srv.Close()
	for _, f := range fakes() {
		v := newVerifier(t, f, base, nil)
		got := v.Verify(context.Background(), f.provider, f.key)
		checkResult(t, got, keyledger.VerifyUnreachable, "Could not reach "+f.provider.Label()+": the connection was refused.", f.key)
	}
}

// TestVerifyHugeBody: a provider that never stops sending must not make
// Verify read it all.
func TestVerifyHugeBody(t *testing.T) {
	for _, f := range fakes() {
		for _, status := range []int{200, 429, 500} {
			t.Run(string(f.provider)+"/"+http.StatusText(status), func(t *testing.T) {
				t.Parallel()
				var written atomic.Int64
				done := make(chan struct{})
				srv, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
					defer close(done)
					w.WriteHeader(status)
					chunk := []byte(`{"error":{"code":"` + strings.Repeat("x", 32<<10) + `",`)
					for written.Load() < 1<<30 { // 1 GiB, unless the client hangs up
						n, err := w.Write(chunk)
						written.Add(int64(n))
						if err != nil {
							return
						}
					}
				})
				v := newVerifier(t, f, srv.URL, nil)
				start := time.Now()
				got := v.Verify(context.Background(), f.provider, f.key)
				if d := time.Since(start); d > 5*time.Second {
					t.Errorf("Verify took %v", d)
				}
				want := map[int]string{200: keyledger.VerifyOK, 429: keyledger.VerifyRateLimited, 500: keyledger.VerifyUnreachable}[status]
				checkResult(t, got, want, "", f.key)
				select {
				case <-done:
				case <-time.After(10 * time.Second):
					t.Fatal("server still writing 10s after Verify returned")
				}
				if n := written.Load(); n >= 1<<30 {
					t.Errorf("server wrote %d bytes: the client read them all", n)
				}
			})
		}
	}
}

// TestVerifyBodyLimit: only the first 64 KiB of a body are read, so an
// error code after that is never seen.
func TestVerifyBodyLimit(t *testing.T) {
	f := fakes()[0] // OpenAI
	quota := `{"error":{"type":"insufficient_quota","code":"insufficient_quota"}}`
	for _, tc := range []struct {
		pad  int
		want string
	}{
		{maxBody - len(quota), keyledger.VerifyQuota},           // fits exactly
		{maxBody - len(quota) + 1, keyledger.VerifyRateLimited}, // one byte cut: not JSON
		{1 << 20, keyledger.VerifyRateLimited},
	} {
		srv, _ := newServer(t, reply{429, nil, strings.Repeat(" ", tc.pad) + quota}.handler(f.key))
		v := newVerifier(t, f, srv.URL, nil)
		got := v.Verify(context.Background(), f.provider, f.key)
		checkResult(t, got, tc.want, "", f.key)
	}
}

func TestVerifyUnsupported(t *testing.T) {
	srv, rec := newServer(t, reply{200, nil, `{}`}.handler(""))
	v, err := New(Config{OpenAIBaseURL: srv.URL, AnthropicBaseURL: srv.URL, GitHubBaseURL: srv.URL, StripeBaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		p    keyledger.Provider
		want string
	}{
		{keyledger.ProviderAWS, "keyledger cannot check AWS keys automatically; mark it verified by hand."},
		{keyledger.ProviderOther, "keyledger cannot check other keys automatically; mark it verified by hand."},
		{"mistral", "keyledger cannot check mistral keys automatically; mark it verified by hand."},
		{"", "keyledger cannot check these keys automatically; mark it verified by hand."},
		{"OpenAI", "keyledger cannot check OpenAI keys automatically; mark it verified by hand."}, // ids are lowercase
	} {
		if v.Supports(tc.p) {
			t.Errorf("Supports(%q) = true", tc.p)
		}
		got := v.Verify(context.Background(), tc.p, "AKIAIOSFODNN7EXAMPLE")
		if got != (keyledger.VerifyResult{Result: "", Message: tc.want}) {
			t.Errorf("Verify(%q) = %+v, want empty result and %q", tc.p, got, tc.want)
		}
	}
	for _, p := range []keyledger.Provider{keyledger.ProviderOpenAI, keyledger.ProviderAnthropic, keyledger.ProviderGitHub, keyledger.ProviderStripe} {
		if !v.Supports(p) {
			t.Errorf("Supports(%q) = false", p)
		}
	}
	if n := len(rec.requests()); n != 0 {
		t.Errorf("unsupported providers sent %d requests", n)
	}
}

// TestVerifyUnsendableKey: a value that cannot be a key is not sent.
func TestVerifyUnsendableKey(t *testing.T) {
	for _, f := range fakes() {
		srv, rec := newServer(t, reply{200, nil, `{}`}.handler(""))
		v := newVerifier(t, f, srv.URL, nil)
		for _, key := range []string{"", " ", f.key + "\r\nX-Evil: 1", f.key + " ", "\t" + f.key, f.key + "é", f.key + "\x00"} {
			got := v.Verify(context.Background(), f.provider, key)
			if got.Result != keyledger.VerifyInvalid || !strings.Contains(got.Message, "nothing was sent") {
				t.Errorf("%s %q: got %+v, want invalid and nothing sent", f.provider, key, got)
			}
			if key != "" && key != " " && strings.Contains(got.Message, key) {
				t.Errorf("message %q holds the key", got.Message)
			}
		}
		if n := len(rec.requests()); n != 0 {
			t.Errorf("%s: %d requests sent", f.provider, n)
		}
	}
}

func TestVerifyConcurrent(t *testing.T) {
	f := fakes()[0]
	srv, rec := newServer(t, reply{200, nil, `{}`}.handler(f.key))
	v := newVerifier(t, f, srv.URL, nil)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if got := v.Verify(context.Background(), f.provider, f.key); got.Result != keyledger.VerifyOK {
				t.Errorf("got %+v", got)
			}
		})
	}
	wg.Wait()
	if n := len(rec.requests()); n != 20 {
		t.Errorf("got %d requests, want 20", n)
	}
}

func TestDefaults(t *testing.T) {
	v, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[keyledger.Provider]string{
		keyledger.ProviderOpenAI:    "https://api.openai.com",
		keyledger.ProviderAnthropic: "https://api.anthropic.com",
		keyledger.ProviderGitHub:    "https://api.github.com",
		keyledger.ProviderStripe:    "https://api.stripe.com",
	}
	if len(v.targets) != len(want) {
		t.Errorf("%d providers, want %d", len(v.targets), len(want))
	}
	for p, base := range want {
		if got := v.targets[p].base.String(); got != base {
			t.Errorf("%s base = %q, want %q", p, got, base)
		}
	}
	// And the URLs actually requested, without any network.
	endpoints := map[keyledger.Provider]string{
		keyledger.ProviderOpenAI:    "https://api.openai.com/v1/models",
		keyledger.ProviderAnthropic: "https://api.anthropic.com/v1/models",
		keyledger.ProviderGitHub:    "https://api.github.com/user",
		keyledger.ProviderStripe:    "https://api.stripe.com/v1/balance",
	}
	for p, endpoint := range endpoints {
		tg := v.targets[p]
		req, err := tg.checker.request(context.Background(), tg.base, "k")
		if err != nil {
			t.Fatal(err)
		}
		if got := req.URL.String(); got != endpoint {
			t.Errorf("%s endpoint = %q, want %q", p, got, endpoint)
		}
	}
	if v.timeout != 10*time.Second {
		t.Errorf("timeout = %v, want 10s", v.timeout)
	}
	if v.userAgent != "keyledger-verify/1" {
		t.Errorf("user agent = %q", v.userAgent)
	}
	if v.client == http.DefaultClient || v.client.CheckRedirect == nil {
		t.Errorf("client must be its own, with a redirect policy")
	}
}

func TestNewValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string // the whole error
	}{
		{"relative", Config{OpenAIBaseURL: "/v1"}, "verify: OpenAIBaseURL must be an absolute http or https URL"},
		{"no scheme", Config{AnthropicBaseURL: "api.anthropic.com"}, "verify: AnthropicBaseURL must be an absolute http or https URL"},
		{"ftp", Config{GitHubBaseURL: "ftp://api.github.com"}, "verify: GitHubBaseURL must be an absolute http or https URL"},
		{"javascript", Config{StripeBaseURL: "javascript:alert(1)"}, "verify: StripeBaseURL must be an absolute http or https URL"},
		{"no host", Config{StripeBaseURL: "https:///v1"}, "verify: StripeBaseURL must be an absolute http or https URL with a host"},
		{"only port", Config{StripeBaseURL: "https://:443"}, "verify: StripeBaseURL must be an absolute http or https URL with a host"},
		{"opaque", Config{OpenAIBaseURL: "http:api.openai.com"}, "verify: OpenAIBaseURL must be an absolute http or https URL with a host"},
		{"userinfo", Config{OpenAIBaseURL: "https://user:hunter2@api.openai.com"}, "verify: OpenAIBaseURL must not contain a user name or password"},
		{"user only", Config{GitHubBaseURL: "https://user@api.github.com"}, "verify: GitHubBaseURL must not contain a user name or password"},
		{"query", Config{AnthropicBaseURL: "https://api.anthropic.com?x=1"}, "verify: AnthropicBaseURL must not have a query"},
		{"empty query", Config{AnthropicBaseURL: "https://api.anthropic.com/?"}, "verify: AnthropicBaseURL must not have a query"},
		{"fragment", Config{GitHubBaseURL: "https://api.github.com/#x"}, "verify: GitHubBaseURL must not have a fragment"},
		{"empty fragment", Config{GitHubBaseURL: "https://api.github.com/#"}, "verify: GitHubBaseURL must not have a fragment"},
		{"spaces", Config{StripeBaseURL: " https://api.stripe.com"}, "verify: StripeBaseURL must not have leading or trailing whitespace"},
		{"control", Config{StripeBaseURL: "https://api.stripe.com/\n"}, "verify: StripeBaseURL must not have leading or trailing whitespace"},
		{"control inside", Config{StripeBaseURL: "https://api.stripe.com/v\x7f1"}, "verify: StripeBaseURL is not a valid URL"},
		{"bad port", Config{OpenAIBaseURL: "https://api.openai.com:port"}, "verify: OpenAIBaseURL is not a valid URL"},
		{"negative timeout", Config{Timeout: -time.Second}, "verify: Timeout must not be negative"},
		{"user agent", Config{UserAgent: "ua\r\nX-Evil: 1"}, "verify: UserAgent must be printable ASCII"},
	}
	for _, tt := range tests {
		_, err := New(tt.cfg)
		if err == nil {
			t.Errorf("%s: New succeeded, want %q", tt.name, tt.want)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("%s: error %q, want %q", tt.name, err, tt.want)
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("%s: error %q repeats a password", tt.name, err)
		}
	}

	for _, ok := range []string{"http://127.0.0.1:8080", "https://proxy.internal/openai/", "HTTPS://API.OPENAI.COM", "http://[::1]:9/x"} {
		if _, err := New(Config{OpenAIBaseURL: ok}); err != nil {
			t.Errorf("New(%q): %v", ok, err)
		}
	}
}

// countingTransport proves an injected client is used.
type countingTransport struct{ n atomic.Int32 }

func (c *countingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return http.DefaultTransport.RoundTrip(r)
}

func TestInjectedClient(t *testing.T) {
	f := fakes()[1] // Anthropic: the key is in x-api-key, which net/http
	// itself would forward on a cross-host redirect.
	elsewhere, elsewhereRec := newServer(t, reply{200, nil, `{}`}.handler(""))
	origin, _ := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+"/v1/models", http.StatusTemporaryRedirect)
	})
	tr := &countingTransport{}
	errFollow := errors.New("caller's policy")
	client := &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return errFollow },
	}
	v := newVerifier(t, f, origin.URL, func(c *Config) { c.HTTPClient = client })
	got := v.Verify(context.Background(), f.provider, f.key)
	if got.Result != keyledger.VerifyUnreachable || !strings.Contains(got.Message, "elsewhere") {
		t.Errorf("got %+v", got)
	}
	if tr.n.Load() != 1 {
		t.Errorf("injected transport used %d times, want 1", tr.n.Load())
	}
	if len(elsewhereRec.requests()) != 0 {
		t.Error("redirect to another host followed")
	}
	// The caller's client is left alone.
	if err := client.CheckRedirect(nil, nil); !errors.Is(err, errFollow) {
		t.Error("caller's CheckRedirect replaced")
	}
}

func TestSameOrigin(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"https://api.openai.com/v1/models", "https://api.openai.com/other", true},
		{"https://api.openai.com/v1/models", "https://API.OpenAI.com:443/x", true},
		{"http://h/x", "http://h:80/y", true},
		{"https://api.openai.com/", "http://api.openai.com/", false},
		{"https://api.openai.com/", "https://api.openai.com:8443/", false},
		{"https://api.openai.com/", "https://evil.example/", false},
		{"https://api.openai.com/", "https://api.openai.com.evil.example/", false},
		{"http://127.0.0.1:8080/", "http://localhost:8080/", false},
	}
	for _, tt := range tests {
		a, _ := url.Parse(tt.a)
		b, _ := url.Parse(tt.b)
		if got := sameOrigin(a, b); got != tt.want {
			t.Errorf("sameOrigin(%s, %s) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
	}
}

func TestToken(t *testing.T) {
	const key = "sk_live_abcdefghijklmnop"
	tests := []struct{ raw, want string }{
		{"insufficient_quota", "insufficient_quota"},
		{"invalid_api_key", "invalid_api_key"},
		{strings.Repeat("a", 40), strings.Repeat("a", 40)},
		{strings.Repeat("a", 41), ""},
		{"", ""},
		{"Invalid_api_key", ""},
		{"invalid api key", ""},
		{"invalid-api-key", ""},
		{"code1", ""},
		{"<script>", ""},
		{"sk_live_abcdefghijklmnop", ""},   // the key
		{"xsk_live_abcdefghijklmnopx", ""}, // holds the key
		{"live_", ""},                      // inside the key
		{"zz_efghi_zz", ""},                // shares a 5-byte run
		{"zz_efgh_zz", "zz_efgh_zz"},       // a 4-byte run is chance
	}
	for _, tt := range tests {
		if got := (answer{secret: key}).token(tt.raw); got != tt.want {
			t.Errorf("token(%q) = %q, want %q", tt.raw, got, tt.want)
		}
	}
	if got := (answer{secret: "ab"}).token("ab"); got != "" {
		t.Errorf("token equal to a short key = %q, want none", got)
	}
}
