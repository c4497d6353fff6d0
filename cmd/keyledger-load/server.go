package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// buildServer compiles ./cmd/keyledger from the repository into dir.
func buildServer(ctx context.Context, repo, dir string) (string, error) {
	bin := filepath.Join(dir, "keyledger")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/keyledger")
	cmd.Dir = repo
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("go build ./cmd/keyledger in %s: %v\n%s", repo, err, out.String())
	}
	return bin, nil
}

type server struct {
	cmd     *exec.Cmd
	base    string
	logPath string
	done    chan struct{}
	waitErr error
	rss     *rssSampler
	// pprofAddr is the server's loopback profiling address, if asked for.
	pprofAddr string
}

// profile records the server's CPU profile for about d (the scenario's
// run) into path.
func (s *server) profile(ctx context.Context, d time.Duration, path string) chan error {
	done := make(chan error, 1)
	go func() {
		secs := max(1, int(d/time.Second))
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", s.pprofAddr, secs), http.NoBody)
		if err != nil {
			done <- err
			return
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- err
			return
		}
		defer func() { _ = resp.Body.Close() }() // a response body: closing it loses nothing
		if resp.StatusCode != http.StatusOK {
			done <- fmt.Errorf("pprof answered %s", resp.Status)
			return
		}
		f, err := os.Create(path)
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(f, resp.Body)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		done <- err
	}()
	return done
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startServer runs `keyledger serve` with its own environment: the load
// database, the master key, a free loopback port, warn-level logs and an
// API rate high enough not to throttle. KEYLEDGER_* variables of the caller
// (make exports some) are not passed on. Provider checks point at a closed
// loopback port: the seeded keys' providers are not checked anyway, and
// nothing may leave this machine.
func startServer(ctx context.Context, bin, dbURL, masterKey string, apiRate int, logPath string, pprof bool) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	pprofAddr := ""
	if pprof {
		pp, err := freePort()
		if err != nil {
			return nil, err
		}
		pprofAddr = "127.0.0.1:" + strconv.Itoa(pp)
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYLEDGER_") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"KEYLEDGER_DATABASE_URL="+dbURL,
		"KEYLEDGER_MASTER_KEY="+masterKey,
		"KEYLEDGER_LISTEN=127.0.0.1:"+strconv.Itoa(port),
		"KEYLEDGER_LOG_LEVEL=warn",
		"KEYLEDGER_API_RATE="+strconv.Itoa(apiRate),
		"KEYLEDGER_OPENAI_BASE_URL=http://127.0.0.1:9",
		"KEYLEDGER_ANTHROPIC_BASE_URL=http://127.0.0.1:9",
		"KEYLEDGER_GITHUB_BASE_URL=http://127.0.0.1:9",
		"KEYLEDGER_STRIPE_BASE_URL=http://127.0.0.1:9",
	)
	if pprofAddr != "" {
		env = append(env, "KEYLEDGER_PPROF_LISTEN="+pprofAddr)
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// The child writes the log through its own descriptor: closing ours
	// loses nothing.
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("start %s serve: %w", bin, err)
	}
	s := &server{cmd: cmd, base: "http://127.0.0.1:" + strconv.Itoa(port), logPath: logPath, done: make(chan struct{}), pprofAddr: pprofAddr}
	s.rss = startRSS(cmd.Process.Pid, 200*time.Millisecond)
	go func() {
		s.waitErr = cmd.Wait()
		_ = logFile.Close()
		close(s.done)
	}()

	// Ready when /readyz answers 200 (migrations applied, database up).
	deadline := time.Now().Add(2 * time.Minute)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		if !s.alive() {
			s.showLog(os.Stderr)
			return nil, fmt.Errorf("keyledger serve exited at start: %v", s.waitErr)
		}
		resp, err := c.Get(s.base + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close() // a response body: closing it loses nothing
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			s.kill()
			s.showLog(os.Stderr)
			return nil, errors.New("keyledger serve did not become ready within 2 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (s *server) alive() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// stop sends SIGTERM and waits up to grace for a clean exit.
func (s *server) stop(grace time.Duration) error {
	if !s.alive() {
		return s.waitErr
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return s.waitErr
	case <-time.After(grace):
		s.kill()
		return fmt.Errorf("did not stop within %s of SIGTERM; killed", grace)
	}
}

func (s *server) kill() {
	if s.alive() {
		_ = s.cmd.Process.Kill()
		<-s.done
	}
	if s.rss != nil {
		s.rss.stop()
	}
}

// showLog prints the server log's last lines.
func (s *server) showLog(w io.Writer) {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	fmt.Fprintf(w, "--- last lines of the server log (%s) ---\n%s\n---\n", s.logPath, strings.Join(lines, "\n"))
}

// rssSampler reads the server's resident set size from /proc every
// interval and keeps the maximum, overall and per phase.
type rssSampler struct {
	pid     int
	mu      sync.Mutex
	phase   string
	order   []string
	byPhase map[string]int64 // KiB
	max     int64
	samples int
	quit    chan struct{}
	stopped chan struct{}
	once    sync.Once
}

type rssSummary struct {
	maxKiB  int64
	samples int
	phases  []string
	byPhase map[string]int64
}

func startRSS(pid int, every time.Duration) *rssSampler {
	r := &rssSampler{pid: pid, phase: "start-up", order: []string{"start-up"}, byPhase: map[string]int64{},
		quit: make(chan struct{}), stopped: make(chan struct{})}
	go func() {
		defer close(r.stopped)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			r.sample()
			select {
			case <-r.quit:
				return
			case <-t.C:
			}
		}
	}()
	return r
}

func readRSS(pid int) (int64, bool) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, false
	}
	defer func() { _ = f.Close() }() // read-only
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				n, err := strconv.ParseInt(f[0], 10, 64)
				return n, err == nil
			}
		}
	}
	return 0, false
}

func (r *rssSampler) sample() {
	kib, ok := readRSS(r.pid)
	if !ok {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.samples++
	r.max = max(r.max, kib)
	r.byPhase[r.phase] = max(r.byPhase[r.phase], kib)
}

// mark starts a phase: later samples count towards it.
func (r *rssSampler) mark(phase string) {
	r.sample()
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, seen := r.byPhase[phase]; !seen {
		r.order = append(r.order, phase)
		r.byPhase[phase] = 0
	}
	r.phase = phase
}

func (r *rssSampler) stop() rssSummary {
	r.once.Do(func() { close(r.quit) })
	<-r.stopped
	r.mu.Lock()
	defer r.mu.Unlock()
	by := make(map[string]int64, len(r.byPhase))
	for k, v := range r.byPhase {
		by[k] = v
	}
	return rssSummary{maxKiB: r.max, samples: r.samples, phases: append([]string(nil), r.order...), byPhase: by}
}
