package web_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
	"github.com/keyledger/keyledger/web"
)

// metricsToken is the scrape token of the metrics tests.
const metricsToken = "metrics-test-token-6b1f0c2e9a7d4f35"

// withMetrics turns on GET /metrics with m's token and networks.
func withMetrics(m web.MetricsConfig) envOption {
	return func(c *web.Config) {
		m.Enabled = true
		c.Metrics = m
	}
}

// withTrustedProxies believes X-Forwarded-For from these networks.
func withTrustedProxies(t testing.TB, cidrs string) envOption {
	nets, err := web.ParseTrustedProxies(cidrs)
	if err != nil {
		t.Fatal(err)
	}
	return func(c *web.Config) { c.TrustedProxies = nets }
}

func mustCIDRs(t testing.TB, cidrs string) []*net.IPNet {
	t.Helper()
	nets, err := web.ParseTrustedProxies(cidrs)
	if err != nil {
		t.Fatal(err)
	}
	return nets
}

// scrape GETs /metrics with the given headers, without cookies.
func scrape(t testing.TB, env *testEnv, headers map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, env.HTTP.URL+"/metrics", http.NoBody)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func bearer(token string) map[string]string {
	return map[string]string{"Authorization": "Bearer " + token}
}

// metricValue finds the sample of family name whose labels are exactly
// labels (as Prometheus's text format writes them, sorted by name).
func metricValue(t testing.TB, body, name, labels string) (float64, bool) {
	t.Helper()
	series := name
	if labels != "" {
		series += "{" + labels + "}"
	}
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return 0, false
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatalf("%s: %v", series, err)
	}
	return v, true
}

func wantMetric(t testing.TB, body, name, labels string, want float64) {
	t.Helper()
	got, ok := metricValue(t, body, name, labels)
	if !ok {
		t.Errorf("no sample %s{%s} in /metrics", name, labels)
		return
	}
	if got != want {
		t.Errorf("%s{%s} = %v, want %v", name, labels, got, want)
	}
}

func TestMetricsOffByDefault(t *testing.T) {
	t.Parallel()
	env := newEnv(t)
	for _, r := range env.Server.Routes() {
		if strings.HasSuffix(r, " /metrics") {
			t.Errorf("metrics are off but %q is registered", r)
		}
	}
	for name, h := range map[string]map[string]string{"anonymous": nil, "with a token": bearer(metricsToken)} {
		if resp, _ := scrape(t, env, h); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: GET /metrics = %d, want 404", name, resp.StatusCode)
		}
	}
	// Signed in makes no difference either.
	c := env.client().login("admin")
	if resp, _ := c.get("/metrics"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("signed in: GET /metrics = %d, want 404", resp.StatusCode)
	}
}

func TestMetricsNeedTokenOrNetwork(t *testing.T) {
	t.Parallel()
	st, _ := storetest.NewStore(t, store.Options{})
	_, err := web.New(web.Config{Metrics: web.MetricsConfig{Enabled: true}}, st, nil)
	if err == nil || !strings.Contains(err.Error(), "token") {
		t.Fatalf("metrics on with neither a token nor a network: err %v, want a refusal", err)
	}
}

func TestMetricsToken(t *testing.T) {
	t.Parallel()
	env := newEnv(t, withMetrics(web.MetricsConfig{Token: metricsToken}), withVerifier(newFakeOpenAI(t, nil).verifier(t)))
	ctx := context.Background()

	for name, h := range map[string]map[string]string{
		"no credentials": nil,
		"wrong token":    bearer(metricsToken + "x"),
		"token prefix":   bearer(metricsToken[:len(metricsToken)-1]),
		"empty bearer":   {"Authorization": "Bearer "},
		"basic scheme":   {"Authorization": "Basic " + metricsToken},
		"bare token":     {"Authorization": metricsToken},
		// No allow-list is configured: the loopback client gets nothing
		// for its address.
		"forwarded for": {"X-Forwarded-For": "127.0.0.1"},
	} {
		resp, body := scrape(t, env, h)
		if resp.StatusCode != http.StatusForbidden {
			t.Errorf("%s: GET /metrics = %d, want 403", name, resp.StatusCode)
		}
		if strings.Contains(body, "keyledger_") {
			t.Errorf("%s: the refusal carries metrics", name)
		}
	}

	// Activity to count: a reveal and an export in development, a check
	// from the page and one as the scheduler makes it, a refused reveal,
	// a set-password link and an unknown page.
	secret := "sk-proj-" + authzRand(24) + "Mtr1"
	k := env.createKey("member", "development", "metrics-dev", secret)
	prodSecret := "sk-proj-" + authzRand(24) + "Mtr2"
	prod := env.createKey("member", "production", "metrics-prod", prodSecret)

	member := env.client().login("member")
	if resp, _ := member.get("/keys/" + k.ID); resp.StatusCode != http.StatusOK {
		t.Fatalf("key page = %d", resp.StatusCode)
	}
	if resp, body := member.post("/keys/"+k.ID+"/reveal", url.Values{"reason": {"metrics test"}}); resp.StatusCode != http.StatusOK || !strings.Contains(body, secret) {
		t.Fatalf("reveal = %d", resp.StatusCode)
	}
	member.get("/export?environment=development")
	if resp, body := member.post("/export", url.Values{"environment": {"development"}, "format": {"dotenv"}, "reason": {"metrics test"}}); resp.StatusCode != http.StatusOK || !strings.Contains(body, secret) {
		t.Fatalf("export = %d", resp.StatusCode)
	}
	member.get("/keys/" + k.ID)
	if resp, _ := member.post("/keys/"+k.ID+"/verify", nil); resp.StatusCode != http.StatusSeeOther || !strings.HasSuffix(resp.Header.Get("Location"), "verified=ok") {
		t.Fatalf("verify = %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	// The scheduler's checks go through the same verifier (serve.go hands
	// Server.Verifier to the jobs).
	if res, err := env.Store.VerifyKey(ctx, keyledger.SystemActor("scheduler"), k.ID, env.Server.Verifier()); err != nil || res.Result != keyledger.VerifyOK {
		t.Fatalf("scheduled check: %v %v", res, err)
	}
	// member2 may not reveal production keys: refused, so not counted.
	other := env.client().login("member2")
	other.get("/keys/" + prod.ID)
	if resp, _ := other.post("/keys/"+prod.ID+"/reveal", url.Values{"reason": {"metrics test"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("refused reveal = %d, want 403", resp.StatusCode)
	}
	linkToken := "metricslinktoken" + authzRand(16)
	env.client().get("/set-password/" + linkToken)
	unknown := "/no-such-page-" + authzRand(12)
	member.get(unknown)

	// River: one job waiting on the default queue, one given up on.
	jobs, err := env.Store.NewJobs(store.JobsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobs.Insert(ctx, store.RemindArgs{}, nil); err != nil {
		t.Fatal(err)
	}
	dead, err := jobs.Insert(ctx, store.DestroyVersionsArgs{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Pool.Exec(ctx, `UPDATE river_job SET state = 'discarded', finalized_at = now() WHERE id = $1`, dead.Job.ID); err != nil {
		t.Fatal(err)
	}

	resp, body := scrape(t, env, bearer(metricsToken))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics with the token = %d\n%s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want Prometheus's text format", ct)
	}
	if ck := resp.Header.Values("Set-Cookie"); len(ck) > 0 {
		t.Errorf("GET /metrics sets cookies (sessions and CSRF are not for scrapers): %v", ck)
	}
	// Scheme case and surrounding space do not matter.
	if r, _ := scrape(t, env, map[string]string{"Authorization": "bearer  " + metricsToken + " "}); r.StatusCode != http.StatusOK {
		t.Errorf("lower-case scheme: %d, want 200", r.StatusCode)
	}

	// Requests, by route template.
	if v, ok := metricValue(t, body, "keyledger_http_request_duration_seconds_count", `method="GET",route="/keys/:id",status_class="2xx"`); !ok || v < 1 {
		t.Errorf("no GET /keys/:id in the request histogram (%v)", v)
	}
	wantMetric(t, body, "keyledger_http_request_duration_seconds_count", `method="POST",route="/keys/:id/reveal",status_class="2xx"`, 1)
	wantMetric(t, body, "keyledger_http_request_duration_seconds_count", `method="POST",route="/keys/:id/reveal",status_class="4xx"`, 1)
	// An unknown link: refused, but under its route's template.
	if !regexp.MustCompile(`(?m)^keyledger_http_request_duration_seconds_count\{method="GET",route="/set-password/:token",status_class="\dxx"\} 1$`).MatchString(body) {
		t.Error("no GET /set-password/:token in the request histogram")
	}
	if _, ok := metricValue(t, body, "keyledger_http_request_duration_seconds_bucket", `method="POST",route="/export",status_class="2xx",le="+Inf"`); !ok {
		t.Error("no histogram buckets for POST /export")
	}
	for _, raw := range []string{k.ID, prod.ID, linkToken, unknown} {
		if strings.Contains(body, raw) {
			t.Errorf("/metrics holds %q from a URL as sent; want route templates only", raw)
		}
	}

	checkMetricsNaming(t, body)

	// Reveals, exports and checks.
	wantMetric(t, body, "keyledger_reveals_total", `environment="development"`, 1)
	if _, ok := metricValue(t, body, "keyledger_reveals_total", `environment="production"`); ok {
		t.Error("a refused reveal was counted")
	}
	wantMetric(t, body, "keyledger_exports_total", `environment="development"`, 1)
	wantMetric(t, body, "keyledger_exported_keys_total", `environment="development"`, 1)
	wantMetric(t, body, "keyledger_verifications_total", `provider="openai",result="ok"`, 2)

	// Connection pool, read at scrape time.
	// The reveals above went through the batched statements.
	if v, ok := metricValue(t, body, "keyledger_db_batched_calls_total", `kind="reveal_reads"`); !ok || v < 1 {
		t.Errorf("keyledger_db_batched_calls_total{kind=reveal_reads} = %v (present %v), want at least 1", v, ok)
	}
	if v, ok := metricValue(t, body, "keyledger_db_batches_total", `kind="audit_writes"`); !ok || v < 1 {
		t.Errorf("keyledger_db_batches_total{kind=audit_writes} = %v (present %v), want at least 1", v, ok)
	}
	if v, ok := metricValue(t, body, "keyledger_db_pool_max_conns", ""); !ok || v < 1 {
		t.Errorf("keyledger_db_pool_max_conns = %v (present %v), want at least 1", v, ok)
	}
	if v, ok := metricValue(t, body, "keyledger_db_pool_acquires_total", ""); !ok || v < 1 {
		t.Errorf("keyledger_db_pool_acquires_total = %v (present %v), want at least 1", v, ok)
	}
	for _, g := range []string{"acquired_conns", "idle_conns", "total_conns", "acquire_duration_seconds_total", "empty_acquires_total"} {
		if _, ok := metricValue(t, body, "keyledger_db_pool_"+g, ""); !ok {
			t.Errorf("no keyledger_db_pool_%s", g)
		}
	}

	// River's queue, read at scrape time.
	wantMetric(t, body, "keyledger_river_jobs", `state="available"`, 1)
	wantMetric(t, body, "keyledger_river_jobs", `state="discarded"`, 1)
	wantMetric(t, body, "keyledger_river_jobs", `state="running"`, 0)
	wantMetric(t, body, "keyledger_river_queue_depth", `queue="default"`, 1)
	wantMetric(t, body, "keyledger_river_queue_depth", `queue="verify"`, 0)
	wantMetric(t, body, "keyledger_river_failed_jobs", `kind="keyledger.destroy_versions",state="discarded"`, 1)
	wantMetric(t, body, "keyledger_river_failed_jobs", `kind="keyledger.remind",state="retryable"`, 0)

	// The process's own.
	if _, ok := metricValue(t, body, "go_goroutines", ""); !ok {
		t.Error("no go_goroutines")
	}

	// No value, ever.
	for _, s := range []string{secret, prodSecret, secret[:16], metricsToken} {
		if strings.Contains(body, s) {
			t.Errorf("/metrics contains a secret (%q…)", s[:10])
		}
	}
	if strings.Contains(env.Logs.String(), metricsToken) {
		t.Error("the logs hold the metrics token")
	}
}

func TestMetricsAllowList(t *testing.T) {
	t.Parallel()
	t.Run("loopback allowed", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t, withMetrics(web.MetricsConfig{Allow: mustCIDRs(t, "127.0.0.0/8")}))
		if resp, body := scrape(t, env, nil); resp.StatusCode != http.StatusOK || !strings.Contains(body, "keyledger_db_pool_max_conns") {
			t.Errorf("from 127.0.0.1 with 127.0.0.0/8 allowed: %d", resp.StatusCode)
		}
	})
	t.Run("other network", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t, withMetrics(web.MetricsConfig{Allow: mustCIDRs(t, "10.0.0.0/8")}))
		for name, h := range map[string]map[string]string{
			"plain": nil,
			// Without trusted proxies these headers are the client's
			// word, and count for nothing.
			"X-Forwarded-For": {"X-Forwarded-For": "10.1.2.3"},
			"X-Real-IP":       {"X-Real-IP": "10.1.2.3"},
			"both":            {"X-Forwarded-For": "10.1.2.3, 10.9.9.9", "X-Real-IP": "10.1.2.3"},
		} {
			if resp, _ := scrape(t, env, h); resp.StatusCode != http.StatusForbidden {
				t.Errorf("%s: from 127.0.0.1 with only 10.0.0.0/8 allowed: %d, want 403", name, resp.StatusCode)
			}
		}
	})
	t.Run("behind a trusted proxy", func(t *testing.T) {
		t.Parallel()
		// The test client plays the proxy: its X-Forwarded-For names the
		// real client, which is what the allow-list judges.
		env := newEnv(t, withTrustedProxies(t, "127.0.0.0/8"), withMetrics(web.MetricsConfig{Allow: mustCIDRs(t, "10.0.0.0/8")}))
		if resp, _ := scrape(t, env, map[string]string{"X-Forwarded-For": "10.1.2.3"}); resp.StatusCode != http.StatusOK {
			t.Errorf("client 10.1.2.3 via a trusted proxy: %d, want 200", resp.StatusCode)
		}
		if resp, _ := scrape(t, env, map[string]string{"X-Forwarded-For": "192.0.2.7"}); resp.StatusCode != http.StatusForbidden {
			t.Errorf("client 192.0.2.7 via a trusted proxy: %d, want 403", resp.StatusCode)
		}
		// The proxy itself (no header) is not in the list.
		if resp, _ := scrape(t, env, nil); resp.StatusCode != http.StatusForbidden {
			t.Errorf("the proxy's own address: %d, want 403", resp.StatusCode)
		}
	})
	t.Run("token or network", func(t *testing.T) {
		t.Parallel()
		env := newEnv(t, withMetrics(web.MetricsConfig{Token: metricsToken, Allow: mustCIDRs(t, "10.0.0.0/8")}))
		if resp, _ := scrape(t, env, bearer(metricsToken)); resp.StatusCode != http.StatusOK {
			t.Errorf("right token from outside the network: %d, want 200", resp.StatusCode)
		}
		if resp, _ := scrape(t, env, bearer("nope-"+metricsToken)); resp.StatusCode != http.StatusForbidden {
			t.Errorf("wrong token from outside the network: %d, want 403", resp.StatusCode)
		}
	})
}
