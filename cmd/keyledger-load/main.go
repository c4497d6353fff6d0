// Command keyledger-load is keyledger's load test (`make loadtest`). It
// creates a fresh database, seeds it through the store package (10,000 keys
// over development, staging and production, 50 users, access tokens),
// starts `keyledger serve` as a subprocess, signs browser clients in over
// HTTP, and then measures each scenario for a fixed time at 1, 8 and 32
// concurrent clients with its own HTTP load loop:
//
//   - api-reveal: POST /api/v1/keys/{id}/reveal of a random development key
//   - browser-reveal: POST /keys/{id}/reveal with a session cookie and _csrf
//   - key-list: GET /keys?environment=development&page=N, random N
//   - dashboard: GET /dashboard as a lead
//   - rotation: GET /rotation as a lead
//
// Only 200 answers count as successes; req/s, p50 and p99 are over the
// successes. It samples the server's RSS every 200 ms, checks afterwards
// that the audit log holds exactly one key.reveal event per successful
// reveal (and that the hash chain verifies), and prints a Markdown table
// with the targets of the load-test issue.
//
// Every request goes to 127.0.0.1; the loops stop by themselves.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

type options struct {
	adminURL  string
	dbName    string
	repo      string
	bin       string
	duration  time.Duration
	clients   []int
	scenarios []string
	keys      int
	users     int
	apiRate   int
	out       string
	serverLog string
	settle    time.Duration
	verbose   bool
	pprofDir  string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop() // os.Exit skips deferred calls
	if err != nil {
		fmt.Fprintln(os.Stderr, "keyledger-load:", err)
		var fe *failedError
		if errors.As(err, &fe) {
			os.Exit(3)
		}
		os.Exit(1)
	}
}

// failedError: the run completed but a correctness check failed.
type failedError struct{ msg string }

func (e *failedError) Error() string { return e.msg }

func defaultAdminURL() string {
	if u := os.Getenv("KEYLEDGER_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("keyledger-load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.adminURL, "admin-url", defaultAdminURL(), "Postgres URL used to drop and create the load database (default: $KEYLEDGER_TEST_DATABASE_URL)")
	fs.StringVar(&o.dbName, "db", "keyledger_load", "name of the load database; it is DROPPED and created anew")
	fs.StringVar(&o.repo, "repo", ".", "keyledger repository root to build ./cmd/keyledger from")
	fs.StringVar(&o.bin, "bin", "", "use this keyledger binary instead of building one")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long each scenario runs at each concurrency")
	clients := fs.String("clients", "1,8,32", "comma-separated concurrency levels")
	scen := fs.String("scenarios", strings.Join(allScenarios, ","), "comma-separated scenarios: "+strings.Join(allScenarios, ", "))
	fs.IntVar(&o.keys, "keys", 10000, "keys to seed (spread over development, staging, production)")
	fs.IntVar(&o.users, "users", 50, "users to seed (1 admin, a fifth leads, the rest members)")
	fs.IntVar(&o.apiRate, "api-rate", 1000000, "KEYLEDGER_API_RATE for the server (per-token requests/s), high so the limiter does not throttle")
	fs.StringVar(&o.out, "out", "", "also write the Markdown report to this file")
	fs.StringVar(&o.serverLog, "server-log", "", "write the server's output here (default: a file in the temp dir, shown on failure)")
	fs.DurationVar(&o.settle, "settle", 5*time.Second, "pause after the sign-ins before measuring, so their argon2id memory is not counted against the first scenario (RSS is still sampled)")
	fs.BoolVar(&o.verbose, "v", false, "print the first error answers of each run")
	fs.StringVar(&o.pprofDir, "pprof", "", "write the server's CPU profile of each scenario at the highest concurrency to DIR/<scenario>.pprof (go tool pprof -top bin DIR/x.pprof)")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	for _, p := range strings.Split(*clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil || n < 1 || n > 256 {
			return o, fmt.Errorf("-clients: want numbers from 1 to 256, got %q", p)
		}
		if slices.Contains(o.clients, n) {
			return o, fmt.Errorf("-clients: %d is given twice", n)
		}
		o.clients = append(o.clients, n)
	}
	for _, s := range strings.Split(*scen, ",") {
		s = strings.TrimSpace(s)
		if slices.Contains(o.scenarios, s) {
			return o, fmt.Errorf("-scenarios: %s is given twice", s)
		}
		if !knownScenario(s) {
			return o, fmt.Errorf("-scenarios: unknown %q; want some of %s", s, strings.Join(allScenarios, ", "))
		}
		o.scenarios = append(o.scenarios, s)
	}
	if o.duration < 100*time.Millisecond || o.duration > 10*time.Minute {
		return o, fmt.Errorf("-duration: want 100ms to 10m, got %s", o.duration)
	}
	if o.keys < 3 || o.keys > 1000000 {
		return o, fmt.Errorf("-keys: want 3 to 1000000, got %d", o.keys)
	}
	if o.users < 5 || o.users > 10000 {
		return o, fmt.Errorf("-users: want 5 to 10000, got %d", o.users)
	}
	if o.apiRate < 1 || o.apiRate > 1000000 {
		return o, fmt.Errorf("-api-rate: want 1 to 1000000, got %d", o.apiRate)
	}
	return o, nil
}

func maxClients(o options) int {
	m := 1
	for _, c := range o.clients {
		m = max(m, c)
	}
	return m
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, a...)...)
	}
	tmp, err := os.MkdirTemp("", "keyledger-load-")
	if err != nil {
		return err
	}
	defer func() {
		if err := os.RemoveAll(tmp); err != nil {
			fmt.Fprintln(stderr, "keyledger-load: remove", tmp+":", err)
		}
	}()

	if o.pprofDir != "" {
		if err := os.MkdirAll(o.pprofDir, 0o755); err != nil {
			return err
		}
	}
	started := time.Now()
	masterKey, err := generateMasterKey()
	if err != nil {
		return err
	}
	dbURL, err := recreateDatabase(ctx, o.adminURL, o.dbName)
	if err != nil {
		return err
	}
	logf("database %q dropped and created", o.dbName)

	bin := o.bin
	if bin == "" {
		logf("building ./cmd/keyledger from %s", o.repo)
		if bin, err = buildServer(ctx, o.repo, tmp); err != nil {
			return err
		}
	}

	t0 := time.Now()
	seed, err := seedDatabase(ctx, dbURL, masterKey, o, logf)
	if err != nil {
		return err
	}
	logf("seeded %d keys (%d development), %d users, %d tokens in %s", seed.totalKeys, len(seed.devKeys), seed.totalUsers,
		len(seed.tokens), time.Since(t0).Round(time.Millisecond))

	logPath := o.serverLog
	if logPath == "" {
		logPath = tmp + "/server.log"
	}
	srv, err := startServer(ctx, bin, dbURL, masterKey, o.apiRate, logPath, o.pprofDir != "")
	if err != nil {
		return err
	}
	defer srv.kill()
	logf("server pid %d listening on %s (log: %s)", srv.cmd.Process.Pid, srv.base, logPath)

	h := newHTTP()
	srv.rss.mark("sign-in")
	t0 = time.Now()
	sessions, err := signIn(ctx, h, srv.base, seed, maxClients(o))
	if err != nil {
		srv.showLog(stderr)
		return err
	}
	logf("signed in %d member and %d lead browser sessions in %s", len(sessions.members), len(sessions.leads), time.Since(t0).Round(time.Millisecond))
	select {
	case <-time.After(o.settle):
	case <-ctx.Done():
		return ctx.Err()
	}
	loadStart := loadAverage()

	cpu, err := newCPUMeter(ctx, dbURL, o.dbName, srv.cmd.Process.Pid)
	if err != nil {
		logf("CPU per request not measured: %v", err)
	} else {
		defer cpu.close()
	}
	var results []result
	for _, sc := range o.scenarios {
		for _, n := range o.clients {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if !srv.alive() {
				srv.showLog(stderr)
				return errors.New("the server exited during the load test")
			}
			srv.rss.mark(sc)
			var prof chan error
			if o.pprofDir != "" && n == maxClients(o) {
				prof = srv.profile(ctx, o.duration, filepath.Join(o.pprofDir, sc+".pprof"))
			}
			var before cpuSample
			if cpu != nil {
				before = cpu.sample(ctx)
			}
			r := runScenario(ctx, h, srv.base, sc, n, o.duration, seed, sessions)
			if cpu != nil {
				r.serverCPU, r.pgCPU = cpu.sample(ctx).since(before)
			}
			if prof != nil {
				if err := <-prof; err != nil {
					logf("profile of %s: %v", sc, err)
				}
			}
			results = append(results, r)
			logf("%-15s %3d clients: %8.1f req/s  p50 %7.2f ms  p99 %7.2f ms  errors %d  (%d B/answer)  CPU/req: server %s, Postgres %s", sc, n, r.rate(), ms(r.p50), ms(r.p99), r.errors, r.avgBytes(), r.cpuPerRequest(r.serverCPU), r.cpuPerRequest(r.pgCPU))
			if o.verbose || (r.errors > 0 && r.ok == 0) {
				for _, e := range r.samples {
					logf("    error: %s", e)
				}
			}
		}
	}
	srv.rss.mark("shutdown")

	// SIGTERM: in-flight work finishes and the server chains the last
	// audit events before it exits.
	exitErr := srv.stop(30 * time.Second)
	logf("server stopped (%v)", exitStatus(exitErr))
	rss := srv.rss.stop()

	audit, err := checkAudit(ctx, dbURL, masterKey, results)
	if err != nil {
		return err
	}
	rep := report{
		results: results, rss: rss, audit: audit, opts: o, seed: seed,
		started: started, serverExit: exitErr, machine: machineInfo(), loadStart: loadStart,
	}
	md := rep.markdown()
	fmt.Fprint(stdout, md)
	if o.out != "" {
		if err := os.WriteFile(o.out, []byte(md), 0o644); err != nil {
			return err
		}
	}
	if !audit.pass() {
		return &failedError{"audit check FAILED: the audit log does not hold exactly one key.reveal event per successful reveal"}
	}
	return nil
}

func exitStatus(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}
