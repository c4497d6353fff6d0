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
}

// listen binds cfg.Listen and starts serving the startup answers.
func (m *Main) listen(cfg Config, log *slog.Logger) (*frontDoor, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("KEYLEDGER_LISTEN: cannot listen on %s: %w", cfg.Listen, err)
	}
	f := &frontDoor{ln: ln, errc: make(chan error, 1), log: log}
	f.setReason("starting: waiting for the database")
	f.hs = &http.Server{
		Handler:           f,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
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
		(*app).ServeHTTP(w, r)
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

// close drops the listener and any connection left at once (after a
// graceful Shutdown there are none).
func (f *frontDoor) close() { _ = f.hs.Close() }
