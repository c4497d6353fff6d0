package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger/provideradmin"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/verify"
	"github.com/keyledger/keyledger/web"
)

// connect opens a pool and checks that Postgres answers. With wait 0 (the
// one-shot commands) it makes one attempt and fails with one line naming
// the host and the cause. Otherwise (serve) it waits for Postgres with
// backoff, so that a server started before its database (compose, a
// reboot) comes up once the database does instead of crash-looping; each
// failed attempt is logged at ERROR with the reason, because a wrong URL
// looks the same as a database still starting and must not wait in silence.
func connect(ctx context.Context, log *slog.Logger, url string, wait time.Duration) (*pgxpool.Pool, error) {
	pcfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, cfgErr("KEYLEDGER_DATABASE_URL: %v", redact(err))
	}
	pcfg.MaxConns = max(pcfg.MaxConns, 16)
	if pcfg.ConnConfig.ConnectTimeout == 0 || pcfg.ConnConfig.ConnectTimeout > connectTimeout {
		pcfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	pool, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("database: %w", err)
	}
	deadline := time.Now().Add(wait)
	backoff := 250 * time.Millisecond
	for {
		pctx, cancel := context.WithTimeout(ctx, connectTimeout)
		err = pool.Ping(pctx)
		cancel()
		if err == nil {
			return pool, nil
		}
		why := describeDBError(&pcfg.ConnConfig.Config, err)
		if ctx.Err() != nil || wait == 0 || time.Now().After(deadline) {
			pool.Close()
			return nil, why
		}
		log.Error("cannot use the database yet; retrying", "host", why.addr, "retry_in", backoff.String(), "err", why.Error())
		select {
		case <-ctx.Done():
			pool.Close()
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// redact keeps a connection string's password out of error messages: the
// parser's error may quote the string, so only the fix is shown.
func redact(error) string {
	return "cannot parse it; want a URL like postgres://user:password@host:5432/keyledger?sslmode=disable with valid query parameters (not shown: it may hold a password)"
}

func (m *Main) openStore(ctx context.Context, cfg Config, log *slog.Logger, wait time.Duration, migrate bool) (*store.Store, *pgxpool.Pool, error) {
	keyring, err := cfg.Keyring()
	if err != nil {
		return nil, nil, err
	}
	pool, err := connect(ctx, log, cfg.DatabaseURL, wait)
	if err != nil {
		return nil, nil, err
	}
	if migrate {
		st, err := store.Migrate(ctx, pool)
		if err != nil {
			pool.Close()
			return nil, nil, err
		}
		log.Info("database schema is current", "version", st.Current)
	} else {
		st, err := store.Migrations(ctx, pool)
		if err != nil {
			pool.Close()
			return nil, nil, err
		}
		if st.Current != st.Latest {
			pool.Close()
			return nil, nil, fmt.Errorf("database schema is at version %d, this keyledger expects %d: run 'keyledger migrate'", st.Current, st.Latest)
		}
	}
	s, err := store.New(ctx, pool, keyring, store.Options{Logger: log})
	if errors.Is(err, store.ErrWrongMasterKey) {
		err = fmt.Errorf("%w. %s", err, leftoverDatabaseHint(pool.Config().ConnConfig))
	}
	if err != nil {
		pool.Close()
		return nil, nil, err
	}
	return s, pool, nil
}

func (m *Main) serve(ctx context.Context, cfg Config) error {
	log := m.logger(cfg)
	// Listen first: /healthz, and /readyz saying 503 until the app below
	// is swapped in (startup.go).
	front, err := m.listen(cfg, log)
	if err != nil {
		return err
	}
	defer front.close()
	st, pool, err := m.openStore(ctx, cfg, log, 10*time.Minute, cfg.AutoMigrate)
	if err != nil {
		return front.abort(ctx, err)
	}
	defer pool.Close()
	if n, err := st.CountUsers(ctx); err == nil && n == 0 {
		// Nobody could sign in: say how to get the first admin.
		log.Warn("no users yet: run 'keyledger bootstrap' (creates admin@localhost and prints its password once), " +
			"or 'keyledger user create --email you@example.com --name You --role admin' with the same environment")
	}
	if !cfg.GoMemLimit {
		// What the password hashes can hold at once, plus room for
		// everything else (a live heap of a few MiB at ten thousand
		// keys). With the collection after each hash (store.hashPassword)
		// this keeps a burst of sign-ins from growing RSS with Go's
		// default pacing; measured with make loadtest (docs/performance.md).
		limit := st.PasswordMemory() + 48<<20
		debug.SetMemoryLimit(limit)
		log.Debug("Go soft memory limit set (GOMEMLIMIT overrides it)", "limit_mib", limit>>20)
	}
	wcfg := cfg.WebConfig()
	wcfg.Ready = func(ctx context.Context) error {
		ms, err := store.Migrations(ctx, pool)
		if err != nil {
			return errors.New("cannot read schema version")
		}
		if ms.Current != ms.Latest {
			return fmt.Errorf("schema at version %d, want %d", ms.Current, ms.Latest)
		}
		return nil
	}
	verifier, err := verify.New(cfg.Verify)
	if err != nil {
		return cfgErr("provider base URLs: %v", err)
	}
	wcfg.Verifier = verifier
	// The admin APIs live at the same base URLs as the key checks.
	pcfg := provideradmin.Config{OpenAIBaseURL: cfg.Verify.OpenAIBaseURL, AnthropicBaseURL: cfg.Verify.AnthropicBaseURL, Logger: log}
	if err := pcfg.Validate(); err != nil {
		return cfgErr("provider base URLs: %v", err)
	}
	providerAdmin := provideradmin.New(pcfg)
	wcfg.ProviderAdmin = providerAdmin
	notifier, err := cfg.Notifier()
	if err != nil {
		return err
	}
	// The same channels tell people about changes to their own account.
	wcfg.Notifier = notifier
	srv, err := web.New(wcfg, st, log)
	if err != nil {
		return err
	}
	// srv.Verifier counts provider answers in /metrics when that is on.
	checkpoints, err := cfg.CheckpointPublisher()
	if err != nil {
		return err
	}
	jobs, err := st.NewJobs(store.JobsConfig{Verifier: srv.Verifier(), Notifier: notifier, Links: web.NewLinks(cfg.BaseURL),
		VerifyInterval: cfg.VerifyInterval, Logger: log, CheckpointInterval: cfg.CheckpointInterval, Checkpoints: checkpoints,
		ProviderAdmin: providerAdmin, ProviderSyncInterval: cfg.ProviderSyncInterval})
	if err != nil {
		return err
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	go m.background(bg, log, st, cfg)
	if srv.OIDCEnabled() {
		// Discovery retries in the background: an identity provider that
		// is down at boot must not stop keyledger (the sign-in page says
		// single sign-on is temporarily unavailable until it answers).
		log.Info("single sign-on configured", "issuer", cfg.OIDCIssuer, "redirect_url", web.OIDCRedirectURL(cfg.BaseURL),
			"allowed_domains", len(cfg.OIDCAllowedDomains), "password_login", cfg.PasswordLogin)
		go func() { _ = srv.RunOIDCDiscovery(bg) }()
	}
	if err := jobs.Start(bg); err != nil {
		return fmt.Errorf("start job queue: %w", err)
	}

	if cfg.PprofListen != "" {
		stopPprof, err := startPprof(cfg.PprofListen, log)
		if err != nil {
			return err
		}
		defer stopPprof()
	}
	errc := front.ready(srv)
	log.Info("keyledger listening", "addr", front.addr(), "url", cfg.BaseURL, "version", version)
	if w := web.BaseURLWarning(cfg.Listen, m.Getenv("KEYLEDGER_BASE_URL")); w != "" {
		log.Warn(w)
	}
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down: finishing in-flight requests", "grace", cfg.ShutdownGrace.String())
	started := time.Now()
	cut := front.shutdown(cfg.ShutdownGrace)
	// The job queue gets what is left of the grace, at least a few
	// seconds; a job still running then is cancelled (River retries it
	// later), so the pool is closed under no job either.
	jctx, cancel := context.WithTimeout(context.Background(), max(cfg.ShutdownGrace-time.Since(started), answerWindow))
	if err := jobs.Stop(jctx); err != nil {
		log.Warn("job queue did not stop within the grace; cancelling its jobs", "err", err)
		cctx, ccancel := context.WithTimeout(context.Background(), answerWindow)
		if err := jobs.StopAndCancel(cctx); err != nil {
			log.Warn("job queue did not stop cleanly", "err", err)
		}
		ccancel()
	}
	cancel()
	stopBG()
	// Chain what the last requests wrote before leaving. Not bound by the
	// grace: events left unchained are chained by the next start anyway,
	// but an orderly stop leaves none.
	cctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := st.ChainAudit(cctx); err != nil {
		log.Warn("final audit chaining", "err", err)
	}
	if cut > 0 {
		// Exit non-zero only when something was lost: a request that got
		// no answer at all (docs/operations.md, Stopping).
		return fmt.Errorf("shutdown: %d requests were cut off without an answer after the %s grace and %s more", cut, cfg.ShutdownGrace, answerWindow)
	}
	log.Info("stopped")
	return nil
}

// background chains audit events, watches the chainer's lag and purges
// expired sessions. Every replica runs it; the chainer's advisory lock
// makes one do the work.
func (m *Main) background(ctx context.Context, log *slog.Logger, st *store.Store, cfg Config) {
	chain := time.NewTicker(time.Second)
	lag := time.NewTicker(5 * time.Second)
	purge := time.NewTicker(10 * time.Minute)
	defer chain.Stop()
	defer lag.Stop()
	defer purge.Stop()
	var warned time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-chain.C:
			if _, err := st.ChainAudit(ctx); err != nil && ctx.Err() == nil {
				log.Warn("audit chaining failed; will retry", "err", err)
			}
		case <-lag.C:
			// At most a warning a minute while the lag lasts.
			if time.Since(warned) < time.Minute {
				continue
			}
			l, err := st.WarnAuditLag(ctx, store.DefaultAuditLagWarn)
			if err != nil && ctx.Err() == nil {
				log.Warn("audit lag check failed", "err", err)
			}
			if l.OldestAge > store.DefaultAuditLagWarn {
				warned = time.Now()
			}
		case <-purge.C:
			if err := st.PurgeExpired(ctx, cfg.SessionIdle); err != nil && ctx.Err() == nil {
				log.Warn("session purge failed; will retry", "err", err)
			}
		}
	}
}

// startPprof serves the runtime profiles on a loopback address of their
// own, never on the app's listener.
func startPprof(addr string, log *slog.Logger) (func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("KEYLEDGER_PPROF_LISTEN: %w", err)
	}
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	log.Warn("profiling endpoints on", "addr", ln.Addr().String())
	return func() { _ = hs.Close() }, nil
}

// leftoverDatabaseHint is the way out when the values are not yours to
// open: a fresh clone's `make run` generates a new development key, and a
// keyledger database left from an earlier try refuses it. Suggesting a new
// key would not help; a new or an emptied database does.
func leftoverDatabaseHint(cc *pgx.ConnConfig) string {
	return fmt.Sprintf("If the database %q at %s is left over from an earlier try, either point KEYLEDGER_DATABASE_URL at a new database "+
		"(bootstrap creates it), or drop the old one if it holds nothing of value (dropdb -h %s -p %d -U %s %s); otherwise find the master key it was set up with",
		cc.Database, dbAddr(&cc.Config), cc.Host, cc.Port, cc.User, cc.Database)
}
