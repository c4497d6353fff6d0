package main

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/keyledger/keyledger/store/pgcluster"
)

// TestFaultPostgresUnreachableAtStart starts serve while its Postgres is
// down: it keeps running and retrying with a growing backoff, answers
// /healthz 200 and /readyz 503 (every other route 503) meanwhile, and
// becomes ready on its own once Postgres is started, migrating the empty
// database first. A stop request while it waits exits 0.
func TestFaultPostgresUnreachableAtStart(t *testing.T) {
	keyledgerBinary(t)
	cluster := pgcluster.Start(t)
	url := cluster.CreateDatabase("keyledger")
	cluster.Stop()
	key := newKEK(t)

	srv, base := serveAt(t, dbEnv(url, key))
	c := &http.Client{Timeout: 5 * time.Second}
	startedAt := time.Now()
	// Listening before the database answers.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if code, _, err := getStatus(c, base, "/healthz"); err == nil && code == http.StatusOK {
			break
		}
		if srv.exited() || time.Now().After(deadline) {
			t.Fatalf("/healthz never answered while the database was down:\n%s", srv.output)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("/healthz answered %s after start", time.Since(startedAt).Round(time.Millisecond))
	time.Sleep(1500 * time.Millisecond)
	if srv.exited() {
		t.Fatalf("serve gave up (exit %d):\n%s", srv.wait(t, time.Second), srv.output)
	}
	code, body, err := getStatus(c, base, "/readyz")
	if err != nil || code != http.StatusServiceUnavailable || !strings.HasPrefix(body, "not ready: ") || !strings.Contains(body, "database") {
		t.Errorf("/readyz while the database is down: %d %q %v; want 503 with the reason", code, body, err)
	}
	for _, path := range []string{"/login", "/keys", "/"} {
		if code, _, err := getStatus(c, base, path); err != nil || code != http.StatusServiceUnavailable {
			t.Errorf("GET %s while the database is down: %d %v, want 503", path, code, err)
		}
	}
	code, abody, err := apiCall(c, http.MethodGet, base, "klt_whatever", "/api/v1/keys", nil)
	if ec, _ := apiErrorOf(abody); err != nil || code != http.StatusServiceUnavailable || ec != "unavailable" {
		t.Errorf("API while the database is down: %d %s %v, want a JSON 503", code, abody, err)
	}
	// Backoff: the waits between attempts grow.
	var waits []time.Duration
	for _, line := range strings.Split(srv.output.String(), "\n") {
		var rec struct {
			Msg     string `json:"msg"`
			RetryIn string `json:"retry_in"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && strings.Contains(rec.Msg, "retrying") {
			d, err := time.ParseDuration(rec.RetryIn)
			if err != nil {
				t.Fatalf("retry_in %q: %v", rec.RetryIn, err)
			}
			waits = append(waits, d)
		}
	}
	if len(waits) < 2 {
		t.Fatalf("%d retries logged in 1.5s, want at least 2:\n%s", len(waits), srv.output)
	}
	for i := 1; i < len(waits); i++ {
		if waits[i] <= waits[i-1] && waits[i] < 5*time.Second {
			t.Errorf("backoff does not grow: %v", waits)
		}
	}
	t.Logf("retry waits so far: %v", waits)

	cluster.Start()
	upAt := time.Now()
	waitReady(t, srv, base)
	t.Logf("ready %s after Postgres came up", time.Since(upAt).Round(time.Millisecond))
	for _, path := range []string{"/healthz", "/login"} {
		if code, _, err := getStatus(c, base, path); err != nil || code != http.StatusOK {
			t.Errorf("GET %s once ready: %d %v", path, code, err)
		}
	}
	if code, abody, err := apiCall(c, http.MethodGet, base, "klt_whatever", "/api/v1/keys", nil); err != nil || code != http.StatusUnauthorized {
		t.Errorf("API with a bogus token once ready: %d %s %v, want 401", code, abody, err)
	}
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := srv.wait(t, 10*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM", code)
	}

	// Stopped while still waiting: a clean exit, promptly.
	cluster.Stop()
	srv2, base2 := serveAt(t, dbEnv(url, key))
	deadline = time.Now().Add(10 * time.Second)
	for {
		if code, _, err := getStatus(c, base2, "/readyz"); err == nil && code == http.StatusServiceUnavailable {
			break
		}
		if srv2.exited() || time.Now().After(deadline) {
			t.Fatalf("second serve: /readyz never said 503:\n%s", srv2.output)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := srv2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopAt := time.Now()
	if code := srv2.wait(t, 5*time.Second); code != 0 {
		t.Errorf("exit %d after SIGTERM while waiting for the database, want 0:\n%s", code, srv2.output)
	}
	t.Logf("stopped %s after SIGTERM while waiting", time.Since(stopAt).Round(time.Millisecond))
	if !dialRefused(base2) {
		t.Error("still listening after exit")
	}
}
