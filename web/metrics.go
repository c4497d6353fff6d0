package web

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"
)

// GET /metrics serves Prometheus's text format (DESIGN.md section 8). It
// is off by default. When on, a scrape must carry the bearer token or come
// from an allowed network; everything else is refused with 403. Label
// values are route templates, methods, status classes, environment and
// provider names, results, job states and kinds: never a URL as sent, an
// id, a user or anything derived from a key's value.

const metricsPath = "/metrics"

// MetricsConfig turns on GET /metrics.
type MetricsConfig struct {
	// Enabled serves /metrics; off, it answers 404.
	Enabled bool
	// Token, if set, admits a scrape with "Authorization: Bearer <Token>".
	Token string
	// Allow admits scrapes from these networks. The client address is the
	// one the trusted-proxy settings yield (X-Forwarded-For only from
	// TrustedProxies).
	Allow []*net.IPNet
}

// metrics holds the server's instruments; a nil *metrics (metrics off)
// records nothing.
type metrics struct {
	token         [sha256.Size]byte
	hasToken      bool
	allow         []*net.IPNet
	handler       http.Handler
	requests      *prometheus.HistogramVec
	reveals       *prometheus.CounterVec
	exports       *prometheus.CounterVec
	exportedKeys  *prometheus.CounterVec
	verifications *prometheus.CounterVec
	pageCache     *prometheus.CounterVec
}

// newMetrics registers keyledger's instruments and collectors on reg,
// which is this server's own registry (never the global default one).
func newMetrics(cfg MetricsConfig, reg *prometheus.Registry, st *store.Store, log *slog.Logger) (*metrics, error) {
	pool := st.Pool()
	if cfg.Token == "" && len(cfg.Allow) == 0 {
		return nil, errors.New("metrics are on but neither a token nor an allowed network is set: nobody could scrape them")
	}
	m := &metrics{
		allow: cfg.Allow,
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "keyledger_http_request_duration_seconds",
			Help:    "Time to answer HTTP requests, by method, route template and status class.",
			Buckets: prometheus.DefBuckets,
		}, []string{"method", "route", "status_class"}),
		reveals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyledger_reveals_total",
			Help: "Key values revealed (page or API), counted after the audited reveal committed, by environment.",
		}, []string{"environment"}),
		exports: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyledger_exports_total",
			Help: "Exports that handed out at least one value (page or API), counted after the audited export committed, by environment.",
		}, []string{"environment"}),
		exportedKeys: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyledger_exported_keys_total",
			Help: "Key values handed out by exports, by environment.",
		}, []string{"environment"}),
		verifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyledger_verifications_total",
			Help: "Checks of keys against their provider (from a page, the API or the scheduler), by provider and result.",
		}, []string{"provider", "result"}),
		pageCache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "keyledger_page_cache_lookups_total",
			Help: "Rendered pages looked up in the per-epoch page cache, by page and result (hit, miss). A miss reads the database and renders.",
		}, []string{"page", "result"}),
	}
	if cfg.Token != "" {
		m.token, m.hasToken = sha256.Sum256([]byte(cfg.Token)), true
	}
	for _, c := range []prometheus.Collector{
		m.requests, m.reveals, m.exports, m.exportedKeys, m.verifications, m.pageCache,
		newPoolCollector(pool),
		newJobsCollector(st),
		newBatchCollector(st),
		newAuditCollector(st),
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	m.handler = promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		// A collector that fails (the database is down) drops its own
		// series and is logged; the rest of the scrape still answers.
		ErrorHandling: promhttp.ContinueOnError,
		ErrorLog:      promLogger{log},
		// Counts failed gatherings in promhttp_metric_handler_errors_total.
		Registry: reg,
		// Each scrape queries the database; a pile-up of scrapers must not
		// take its connections.
		MaxRequestsInFlight: 3,
	})
	return m, nil
}

type promLogger struct{ log *slog.Logger }

func (l promLogger) Println(v ...any) {
	l.log.Warn("metrics", "err", strings.TrimSpace(fmt.Sprintln(v...)))
}

// registerMetrics mounts GET /metrics when metrics are on. Off, /metrics
// is no route at all, and a middleware answers 404 for it so that it does
// not fall into the sign-in redirect every unknown page gets.
func (s *Server) registerMetrics(e *echo.Echo) {
	if s.metrics == nil {
		e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error {
				if c.Request().URL.Path == metricsPath {
					return echo.ErrNotFound
				}
				return next(c)
			}
		})
		return
	}
	e.GET(metricsPath, s.metrics.serve)
}

// notForMetrics keeps mw (sessions, CSRF) off /metrics: a scraper has no
// session and needs no CSRF cookie; the token or its address admits it.
func notForMetrics(mw echo.MiddlewareFunc) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		withMW := mw(next)
		return func(c echo.Context) error {
			if c.Request().URL.Path == metricsPath {
				return next(c)
			}
			return withMW(c)
		}
	}
}

func (m *metrics) serve(c echo.Context) error {
	if !m.allowed(c) {
		return echo.ErrForbidden
	}
	m.handler.ServeHTTP(c.Response(), c.Request())
	return nil
}

// allowed: the right bearer token, or a client address in the allow-list.
func (m *metrics) allowed(c echo.Context) bool {
	if m.hasToken {
		scheme, secret, ok := strings.Cut(c.Request().Header.Get(echo.HeaderAuthorization), " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			// Hashing first makes the comparison constant-time in the
			// length too.
			sent := sha256.Sum256([]byte(strings.TrimSpace(secret)))
			if subtle.ConstantTimeCompare(sent[:], m.token[:]) == 1 {
				return true
			}
		}
	}
	if len(m.allow) > 0 {
		// RealIP goes through the server's IPExtractor: X-Forwarded-For
		// counts only when it comes from a trusted proxy.
		if ip := net.ParseIP(c.RealIP()); ip != nil {
			for _, n := range m.allow {
				if n.Contains(ip) {
					return true
				}
			}
		}
	}
	return false
}

// observe times every request. It sits outside recoverPanic and settles
// errors itself (as logRequests does) so that the status it records is the
// one sent, a recovered panic included.
func (m *metrics) observe(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		if err := next(c); err != nil {
			c.Error(err)
		}
		// The route template (/keys/:id), never the path as sent: ids and
		// set-password tokens stay out, and the label set stays bounded.
		route := c.Path()
		if route == "" {
			route = "unmatched"
		}
		class := strconv.Itoa(c.Response().Status/100) + "xx"
		m.requests.WithLabelValues(metricMethod(c.Request().Method), route, class).Observe(time.Since(start).Seconds())
		return nil
	}
}

// metricMethod bounds the method label: clients may send any token.
func metricMethod(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions:
		return method
	}
	return "other"
}

// revealed counts a reveal; call it only once the store returned success
// (the audit event committed).
func (m *metrics) revealed(environment string) {
	if m != nil {
		m.reveals.WithLabelValues(environment).Inc()
	}
}

// exported counts an export that committed; one that handed out nothing
// counts nowhere.
func (m *metrics) exported(environment string, keys int) {
	if m != nil && keys > 0 {
		m.exports.WithLabelValues(environment).Inc()
		m.exportedKeys.WithLabelValues(environment).Add(float64(keys))
	}
}

// countVerifications wraps v so that every answer of a provider is counted,
// whoever asked (a person or the scheduler). nil stays nil: the store reads
// a nil verifier as "checks not configured".
func (m *metrics) countVerifications(v keyledger.Verifier) keyledger.Verifier {
	if m == nil || v == nil {
		return v
	}
	return countingVerifier{Verifier: v, n: m.verifications}
}

type countingVerifier struct {
	keyledger.Verifier
	n *prometheus.CounterVec
}

func (v countingVerifier) Verify(ctx context.Context, p keyledger.Provider, secret string) keyledger.VerifyResult {
	res := v.Verifier.Verify(ctx, p, secret)
	result := "other"
	for _, r := range keyledger.VerifyResults() {
		if res.Result == r {
			result = r
		}
	}
	v.n.WithLabelValues(string(p), result).Inc()
	return res
}

// Verifier is the provider checker handlers use: the configured one, which
// counts its results when metrics are on. Give it to the background jobs
// too, so that scheduled checks are counted alike.
func (s *Server) Verifier() keyledger.Verifier { return s.cfg.Verifier }

// poolCollector reads the connection pool's statistics at scrape time.
type poolCollector struct {
	pool  *pgxpool.Pool
	stats []poolStat
}

type poolStat struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*pgxpool.Stat) float64
}

func newPoolCollector(pool *pgxpool.Pool) *poolCollector {
	stat := func(name, help string, kind prometheus.ValueType, value func(*pgxpool.Stat) float64) poolStat {
		return poolStat{desc: prometheus.NewDesc("keyledger_db_pool_"+name, help, nil, nil), kind: kind, value: value}
	}
	g, c := prometheus.GaugeValue, prometheus.CounterValue
	return &poolCollector{pool: pool, stats: []poolStat{
		stat("acquired_conns", "Connections currently checked out of the pool.", g, func(s *pgxpool.Stat) float64 { return float64(s.AcquiredConns()) }),
		stat("idle_conns", "Idle connections in the pool.", g, func(s *pgxpool.Stat) float64 { return float64(s.IdleConns()) }),
		stat("constructing_conns", "Connections being opened.", g, func(s *pgxpool.Stat) float64 { return float64(s.ConstructingConns()) }),
		stat("total_conns", "Connections in the pool (acquired, idle and being opened).", g, func(s *pgxpool.Stat) float64 { return float64(s.TotalConns()) }),
		stat("max_conns", "Most connections the pool will open.", g, func(s *pgxpool.Stat) float64 { return float64(s.MaxConns()) }),
		stat("acquires_total", "Connections acquired from the pool.", c, func(s *pgxpool.Stat) float64 { return float64(s.AcquireCount()) }),
		stat("acquire_duration_seconds_total", "Time spent acquiring connections.", c, func(s *pgxpool.Stat) float64 { return s.AcquireDuration().Seconds() }),
		stat("empty_acquires_total", "Acquires that had to wait because no connection was idle.", c, func(s *pgxpool.Stat) float64 { return float64(s.EmptyAcquireCount()) }),
		stat("empty_acquire_wait_seconds_total", "Time spent waiting by acquires that found no idle connection.", c, func(s *pgxpool.Stat) float64 { return s.EmptyAcquireWaitTime().Seconds() }),
		stat("canceled_acquires_total", "Acquires abandoned because their context ended.", c, func(s *pgxpool.Stat) float64 { return float64(s.CanceledAcquireCount()) }),
		stat("new_conns_total", "Connections opened.", c, func(s *pgxpool.Stat) float64 { return float64(s.NewConnsCount()) }),
	}}
}

func (p *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, s := range p.stats {
		ch <- s.desc
	}
}

func (p *poolCollector) Collect(ch chan<- prometheus.Metric) {
	st := p.pool.Stat()
	for _, s := range p.stats {
		ch <- prometheus.MustNewConstMetric(s.desc, s.kind, s.value(st))
	}
}

// batchCollector reports how the store batches concurrent requests'
// statements (store/batch.go).
type batchCollector struct {
	store          *store.Store
	batches, calls *prometheus.Desc
}

func newBatchCollector(st *store.Store) *batchCollector {
	return &batchCollector{store: st,
		batches: prometheus.NewDesc("keyledger_db_batches_total",
			"Batched statements run, by kind (reveal_reads, audit_writes, session_reads).", []string{"kind"}, nil),
		calls: prometheus.NewDesc("keyledger_db_batched_calls_total",
			"Requests served by batched statements, by kind; divided by keyledger_db_batches_total it is the mean batch size.", []string{"kind"}, nil),
	}
}

func (b *batchCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- b.batches
	ch <- b.calls
}

func (b *batchCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range b.store.BatchStats() {
		ch <- prometheus.MustNewConstMetric(b.batches, prometheus.CounterValue, float64(st.Batches), st.Kind)
		ch <- prometheus.MustNewConstMetric(b.calls, prometheus.CounterValue, float64(st.Calls), st.Kind)
	}
}

// jobsCollector counts River's jobs by state at scrape time. Every replica
// reports the same numbers (the queue is shared), so aggregate with max,
// not sum.
type jobsCollector struct {
	store *store.Store
	// kinds are keyledger's jobs, reported as failed_jobs 0 when none
	// failed, so that an alert on them needs no absent().
	kinds  []string
	jobs   *prometheus.Desc
	depth  *prometheus.Desc
	failed *prometheus.Desc
}

func newJobsCollector(st *store.Store) *jobsCollector {
	return &jobsCollector{
		store: st,
		kinds: []string{store.VerifyScanArgs{}.Kind(), store.VerifyKeyArgs{}.Kind(),
			store.DestroyVersionsArgs{}.Kind(), store.RemindArgs{}.Kind(), store.AuditCheckpointArgs{}.Kind()},
		jobs: prometheus.NewDesc("keyledger_river_jobs",
			"Background jobs in River's table, by state (retryable: failed, will run again; discarded: failed for good).", []string{"state"}, nil),
		depth: prometheus.NewDesc("keyledger_river_queue_depth",
			"Jobs ready to run and waiting for a worker (state available), by queue.", []string{"queue"}, nil),
		failed: prometheus.NewDesc("keyledger_river_failed_jobs",
			"Jobs whose last attempt failed, by kind and state (retryable or discarded).", []string{"kind", "state"}, nil),
	}
}

func (j *jobsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- j.jobs
	ch <- j.depth
	ch <- j.failed
}

func (j *jobsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	states := map[string]float64{}
	for _, s := range rivertype.JobStates() {
		states[string(s)] = 0
	}
	depth := map[string]float64{river.QueueDefault: 0, store.QueueVerify: 0}
	type kindState struct{ kind, state string }
	failed := map[kindState]float64{}
	for _, k := range j.kinds {
		failed[kindState{k, string(rivertype.JobStateRetryable)}] = 0
		failed[kindState{k, string(rivertype.JobStateDiscarded)}] = 0
	}
	counts, err := j.store.JobQueueCounts(ctx)
	for _, c := range counts {
		n := float64(c.Count)
		states[c.State] += n
		switch rivertype.JobState(c.State) {
		case rivertype.JobStateAvailable:
			depth[c.Queue] += n
		case rivertype.JobStateRetryable, rivertype.JobStateDiscarded:
			failed[kindState{c.Kind, c.State}] += n
		}
	}
	if err != nil {
		// Reported as a gathering error (logged, and counted in
		// promhttp_metric_handler_errors_total); the other series still go
		// out, these are absent.
		ch <- prometheus.NewInvalidMetric(j.jobs, fmt.Errorf("count river jobs: %w", err))
		return
	}
	for s, n := range states {
		ch <- prometheus.MustNewConstMetric(j.jobs, prometheus.GaugeValue, n, s)
	}
	for q, n := range depth {
		ch <- prometheus.MustNewConstMetric(j.depth, prometheus.GaugeValue, n, q)
	}
	for ks, n := range failed {
		ch <- prometheus.MustNewConstMetric(j.failed, prometheus.GaugeValue, n, ks.kind, ks.state)
	}
}

// auditCollector reports the audit chainer's lag at scrape time: one
// index range scan over the events past the chain's end (store.AuditLag).
// Every replica reports the same numbers; aggregate with max.
type auditCollector struct {
	store          *store.Store
	unchained, age *prometheus.Desc
}

func newAuditCollector(st *store.Store) *auditCollector {
	return &auditCollector{store: st,
		unchained: prometheus.NewDesc("keyledger_audit_unchained_events",
			"Audit events whose transaction committed but that the hash chain does not hold yet (not yet tamper-evident).", nil, nil),
		age: prometheus.NewDesc("keyledger_audit_oldest_unchained_seconds",
			"Age of the oldest committed audit event not yet chained; 0 when none waits. Above a few seconds, an old transaction holds the chainer back (the log names it).", nil, nil),
	}
}

func (a *auditCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- a.unchained
	ch <- a.age
}

func (a *auditCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	lag, err := a.store.AuditLag(ctx, false)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(a.unchained, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(a.unchained, prometheus.GaugeValue, float64(lag.Unchained))
	ch <- prometheus.MustNewConstMetric(a.age, prometheus.GaugeValue, lag.OldestAge.Seconds())
}

// pageCacheCounters counts an epochCache's hits and misses for page.
func (m *metrics) pageCacheCounters(page string) (hit, miss func()) {
	h, ms := m.pageCache.WithLabelValues(page, "hit"), m.pageCache.WithLabelValues(page, "miss")
	return h.Inc, ms.Inc
}
