package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keyledger/keyledger"
)

// frontDoor is serve's HTTP server. It listens before the database is
// reachable, so that an orchestrator sees a live process that is not ready
// yet rather than a closed port: until the app is swapped in, /healthz
// answers 200, /readyz 503 with the reason, and every other route 503 with
// Retry-After. Once the database is connected and migrated and the store
// is open, ready swaps the full app in atomically; from then on every
// request goes to it (its own /readyz then reports on the database).
type frontDoor struct {
	hs   *http.Server
	ln   net.Listener
	errc chan error // hs.Serve's result
	log  *slog.Logger

	app    atomic.Pointer[http.Handler]
	reason atomic.Pointer[string]

	// budget bounds each request's work (Config.RequestBudget); halt
	// stops every request in flight when a shutdown overruns its grace.
	budget   time.Duration
	halted   context.Context
	halt     context.CancelCauseFunc
	inFlight atomic.Int64 // app requests whose handler has not returned
}

// The causes a request's context carries when the front door stops it:
// the store and the error page answer them as they are (503, Retry-After)
// instead of as an internal error.
var (
	errRequestBusy = &keyledger.Error{Code: keyledger.EUNAVAILABLE,
		Message: "keyledger is busy right now: this request waited too long (for the database) and was given up. Please try again in a moment."}
	errShuttingDown = &keyledger.Error{Code: keyledger.EUNAVAILABLE,
		Message: "keyledger is shutting down and stopped this request before it finished. Please try again in a moment."}
)

// listen binds cfg.Listen and starts serving the startup answers.
func (m *Main) listen(cfg Config, log *slog.Logger) (*frontDoor, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("KEYLEDGER_LISTEN: cannot listen on %s: %w", cfg.Listen, err)
	}
	f := &frontDoor{ln: ln, errc: make(chan error, 1), log: log, budget: cfg.RequestBudget()}
	f.halted, f.halt = context.WithCancelCause(context.Background())
	f.setReason("starting: waiting for the database")
	f.hs = &http.Server{
		Handler:           f,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      cfg.WriteTimeout,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() { f.errc <- f.hs.Serve(ln) }()
	log.Info("listening; the app is served once the database is reachable", "addr", ln.Addr().String())
	return f, nil
}

func (f *frontDoor) addr() string { return f.ln.Addr().String() }

func (f *frontDoor) setReason(s string) { f.reason.Store(&s) }

// ready swaps the app in and returns the channel hs.Serve's error arrives
// on.
func (f *frontDoor) ready(app http.Handler) <-chan error {
	f.app.Store(&app)
	return f.errc
}

func (f *frontDoor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if app := f.app.Load(); app != nil {
		f.inFlight.Add(1)
		defer f.inFlight.Add(-1)
		// The request's deadline, and the shutdown, reach the database
		// through the context: pgx cancels the statement, so a request
		// waiting for a lock stops waiting. A per-connection
		// statement_timeout would also hit the job queue, migrations and
		// the audit chainer, which share the pool and may rightly run
		// longer; this limits requests only.
		ctx, cancel := context.WithCancelCause(r.Context())
		defer cancel(nil)
		stop := context.AfterFunc(f.halted, func() { cancel(context.Cause(f.halted)) })
		defer stop()
		ctx, cancelT := context.WithTimeoutCause(ctx, f.budget, errRequestBusy)
		defer cancelT()
		(*app).ServeHTTP(w, r.WithContext(ctx))
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "no-store")
	switch r.URL.Path {
	case "/healthz":
		h.Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = fmt.Fprint(w, "ok\n")
		return
	case "/readyz":
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, "not ready: %s\n", *f.reason.Load())
		return
	}
	const msg = "keyledger is starting and cannot reach its database yet. Please try again in a moment."
	h.Set("Retry-After", "5")
	if strings.HasPrefix(r.URL.Path, "/api/") {
		h.Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = fmt.Fprintf(w, `{"error":{"code":"unavailable","message":%q}}`+"\n", msg)
		return
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = fmt.Fprintln(w, msg)
}

// abort ends a startup that failed before the app was ready. A stop
// request (SIGTERM while waiting for the database) is a clean exit; any
// other failure is returned.
func (f *frontDoor) abort(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if serr := f.hs.Shutdown(sctx); serr != nil {
			f.log.Warn("shutdown", "err", serr)
		}
		f.log.Info("stopped before the database was reachable")
		return nil
	}
	return err
}

// shutdown stops serving: the listener closes at once and the requests in
// flight get grace to finish. Past it they are stopped (errShuttingDown:
// each is answered 503 on its connection) and get a few seconds more to
// send that answer; only connections still busy after that are cut. It
// returns once no handler runs any more (or it gave up waiting), so the
// pool can be closed under no request, and reports how many requests were
// cut off without an answer.
func (f *frontDoor) shutdown(grace time.Duration) (cut int64) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	err := f.hs.Shutdown(ctx)
	cancel()
	if err == nil {
		return 0
	}
	f.log.Warn("shutdown grace over: stopping the requests still in flight; they are answered 503", "grace", grace.String(), "in_flight", f.inFlight.Load())
	f.halt(errShuttingDown)
	ctx, cancel = context.WithTimeout(context.Background(), answerWindow)
	err = f.hs.Shutdown(ctx)
	cancel()
	if err != nil {
		cut = max(f.inFlight.Load(), 1)
		f.log.Error("requests still running after being stopped; cutting their connections", "requests", cut)
		_ = f.hs.Close()
	}
	// Handlers outlive their connections: wait for them to return before
	// anyone closes the pool they use.
	for d := time.Now().Add(answerWindow); f.inFlight.Load() > 0 && time.Now().Before(d); {
		time.Sleep(10 * time.Millisecond)
	}
	if n := f.inFlight.Load(); n > 0 {
		f.log.Error("handlers still running at exit", "requests", n)
		cut = max(cut, n)
	}
	return cut
}

// answerWindow is how long requests stopped past the grace get to send
// their 503, and handlers to return after that.
const answerWindow = 5 * time.Second

// close drops the listener and any connection left at once (after a
// graceful Shutdown there are none).
func (f *frontDoor) close() { _ = f.hs.Close() }
