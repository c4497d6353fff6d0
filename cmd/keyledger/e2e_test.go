package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/keyledger/keyledger/store/storetest"
)

var (
	buildOnce sync.Once
	buildDir  string
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		if err := os.RemoveAll(buildDir); err != nil {
			fmt.Fprintln(os.Stderr, "remove the test build:", err)
		}
	}
	os.Exit(code)
}

// keyledgerBinary builds the command once per test run.
func keyledgerBinary(t testing.TB) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end: builds and runs the binary")
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "keyledger-cmd-test-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(buildDir, "keyledger")
		start := time.Now()
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/keyledger")
		cmd.Dir = "../.."
		out, err := cmd.CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
		t.Logf("built keyledger in %s", time.Since(start).Round(time.Millisecond))
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// freeAddr returns a loopback address with a port nothing listens on.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// syncBuffer collects a process's output while it runs.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// processEnv is this process's environment without KEYLEDGER_* variables,
// plus env.
func processEnv(env map[string]string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "KEYLEDGER_") {
			out = append(out, kv)
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	return out
}

type process struct {
	cmd    *exec.Cmd
	output *syncBuffer
	done   chan struct{}
	err    error // valid after done
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait returns the exit code, or fails the test after d.
func (p *process) wait(t testing.TB, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("process still running after %s; output:\n%s", d, p.output)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatalf("wait: %v", p.err)
	}
	return 0
}

// start runs the binary with env; it is killed if still running when the
// test ends.
func start(t testing.TB, env map[string]string, args ...string) *process {
	t.Helper()
	cmd := exec.Command(keyledgerBinary(t), args...)
	cmd.Env = processEnv(env)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, output: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// runBinary runs the binary to completion and returns its exit code and
// combined output.
func runBinary(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	p := start(t, env, args...)
	code := p.wait(t, 30*time.Second)
	return code, p.output.String()
}

func TestServeEndToEnd(t *testing.T) {
	keyledgerBinary(t)
	dbURL := storetest.NewDatabase(t)
	key := newKEK(t)
	boot := mustRun(t, dbEnv(dbURL, key), "", "bootstrap")
	m := printedPassword.FindStringSubmatch(boot.stdout)
	if m == nil {
		t.Fatalf("bootstrap printed no password:\n%s", boot.stdout)
	}
	password := m[1]

	addr := freeAddr(t)
	env := dbEnv(dbURL, key)
	env["KEYLEDGER_LISTEN"] = addr
	env["KEYLEDGER_LOG_FORMAT"] = "json"
	startedAt := time.Now()
	srv := start(t, env, "serve")
	base := "http://" + addr

	// Ready?
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if srv.exited() {
			t.Fatalf("serve exited early (code %d):\n%s", srv.wait(t, time.Second), srv.output)
		}
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 after 30s (last: %v); output:\n%s", err, srv.output)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("ready after %s", time.Since(startedAt).Round(time.Millisecond))

	for _, path := range []string{"/healthz", "/login"} {
		resp, err := client.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d\n%s", path, resp.StatusCode, body)
		}
		if path == "/login" && !strings.Contains(string(body), `name="password"`) {
			t.Errorf("/login has no password field:\n%s", body)
		}
	}

	// The bootstrap password signs in over HTTP.
	signIn(t, base, "admin@localhost", password)

	// healthcheck against the running server, and against nothing.
	code, out := runBinary(t, map[string]string{"KEYLEDGER_LISTEN": addr}, "healthcheck")
	if code != 0 {
		t.Errorf("healthcheck: exit %d\n%s", code, out)
	}
	code, out = runBinary(t, map[string]string{"KEYLEDGER_LISTEN": freeAddr(t)}, "healthcheck")
	if code != 1 || !strings.Contains(out, "not ready") {
		t.Errorf("healthcheck with no server: exit %d\n%s", code, out)
	}

	// SIGTERM: graceful stop, exit 0.
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopAt := time.Now()
	if code := srv.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit code %d after SIGTERM, want 0; output:\n%s", code, srv.output)
	}
	t.Logf("stopped %s after SIGTERM", time.Since(stopAt).Round(time.Millisecond))
	logs := srv.output.String()
	if !strings.Contains(logs, `"msg":"stopped"`) {
		t.Errorf("no stop message in logs:\n%s", logs)
	}
	for _, secret := range []string{key, password} {
		if strings.Contains(logs, secret) {
			t.Errorf("server logs contain a secret:\n%s", logs)
		}
	}
	if _, err := client.Get(base + "/healthz"); err == nil {
		t.Error("server still answers after exit")
	}
}

var csrfField = regexp.MustCompile(`name="_csrf"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="_csrf"`)

// signIn posts the login form with its CSRF token and expects to land on a
// signed-in page.
func signIn(t *testing.T, base, email, password string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.Get(base + "/login")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	m := csrfField.FindStringSubmatch(string(body))
	if m == nil {
		t.Fatalf("no _csrf field on /login:\n%s", body)
	}
	token := m[1] + m[2]
	form := url.Values{"email": {email}, "password": {password}, "_csrf": {token}}
	final, err := c.PostForm(base+"/login", form)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(final.Body)
	_ = final.Body.Close()
	if final.StatusCode != http.StatusOK || final.Request.URL.Path == "/login" {
		t.Fatalf("sign in: ended at %s with %d:\n%s", final.Request.URL, final.StatusCode, page)
	}
	if !strings.Contains(string(page), `data-testid="whoami"`) {
		t.Errorf("signed-in page %s does not say who is signed in:\n%s", final.Request.URL.Path, page)
	}
	// The profile names the account (the first-run key list has no
	// email on it to look for).
	resp, err = c.Get(base + "/profile")
	if err != nil {
		t.Fatal(err)
	}
	profile, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(profile), email) {
		t.Errorf("GET /profile after sign-in: %d, without %s", resp.StatusCode, email)
	}
}

func TestServeWaitsForDatabase(t *testing.T) {
	keyledgerBinary(t)
	key := newKEK(t)
	env := map[string]string{
		"KEYLEDGER_DATABASE_URL": "postgres://keyledger:hunter2@127.0.0.1:1/keyledger?sslmode=disable",
		"KEYLEDGER_MASTER_KEY":   key,
		"KEYLEDGER_LISTEN":       freeAddr(t),
	}
	srv := start(t, env, "serve")
	time.Sleep(1500 * time.Millisecond)
	if srv.exited() {
		t.Fatalf("serve gave up on the database at once (exit %d):\n%s", srv.wait(t, time.Second), srv.output)
	}
	logs := srv.output.String()
	t.Logf("logs after 1.5s:\n%s", logs)
	if !strings.Contains(logs, "retrying") {
		t.Errorf("no retry logged")
	}
	if strings.Contains(logs, "hunter2") || strings.Contains(logs, key) {
		t.Errorf("logs contain the database password or master key")
	}
	// A stop request while waiting is honoured promptly.
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code := srv.wait(t, 5*time.Second)
	t.Logf("exit %d after SIGTERM while waiting for the database", code)
}
