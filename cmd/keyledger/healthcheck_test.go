package main

import (
	"net"
	"net/http"
	"strings"
	"testing"
)

// fakeReadyz serves /readyz on addr ("127.0.0.1:0" and the like) with the
// given status and body, and returns the address it listens on.
func fakeReadyz(t *testing.T, addr string, status int, body string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/readyz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() }) // teardown
	return ln.Addr().String()
}

func TestHealthcheck(t *testing.T) {
	t.Run("ready", func(t *testing.T) {
		addr := fakeReadyz(t, "127.0.0.1:0", http.StatusOK, "ok")
		r := runMain(t, map[string]string{"KEYLEDGER_LISTEN": addr}, "", "healthcheck")
		if r.code != 0 || r.stdout != "" || r.stderr != "" {
			t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("all interfaces is checked on loopback", func(t *testing.T) {
		addr := fakeReadyz(t, "0.0.0.0:0", http.StatusOK, "ok")
		_, port, _ := net.SplitHostPort(addr)
		r := runMain(t, map[string]string{"KEYLEDGER_LISTEN": "0.0.0.0:" + port}, "", "healthcheck")
		if r.code != 0 {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("not ready", func(t *testing.T) {
		addr := fakeReadyz(t, "127.0.0.1:0", http.StatusServiceUnavailable, "database unreachable\n")
		r := runMain(t, map[string]string{"KEYLEDGER_LISTEN": addr}, "", "healthcheck")
		if r.code != 1 {
			t.Errorf("exit %d, want 1", r.code)
		}
		if r.stderr != "keyledger: not ready: database unreachable\n" {
			t.Errorf("stderr %q", r.stderr)
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		r := runMain(t, map[string]string{"KEYLEDGER_LISTEN": addr}, "", "healthcheck")
		if r.code != 1 || !strings.Contains(r.stderr, "not ready") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("bad listen", func(t *testing.T) {
		r := runMain(t, map[string]string{"KEYLEDGER_LISTEN": "8080"}, "", "healthcheck")
		if r.code != 1 {
			t.Errorf("exit %d", r.code)
		}
		checkOneLine(t, strings.TrimSuffix(r.stderr, "\n"), []string{"KEYLEDGER_LISTEN", "host:port"}, nil)
	})
	// A server bound to one address is not reachable on 127.0.0.1: the
	// check must ask the address the server listens on.
	t.Run("specific loopback address", func(t *testing.T) {
		addr := fakeReadyz(t, "127.0.0.2:0", http.StatusOK, "ok")
		r := runMain(t, map[string]string{"KEYLEDGER_LISTEN": addr}, "", "healthcheck")
		if r.code != 0 {
			t.Errorf("KEYLEDGER_LISTEN=%s: exit %d, stderr %q", addr, r.code, r.stderr)
		}
	})
	t.Run("ipv6 loopback", func(t *testing.T) {
		addr := fakeReadyz(t, "[::1]:0", http.StatusOK, "ok")
		r := runMain(t, map[string]string{"KEYLEDGER_LISTEN": addr}, "", "healthcheck")
		if r.code != 0 {
			t.Errorf("KEYLEDGER_LISTEN=%s: exit %d, stderr %q", addr, r.code, r.stderr)
		}
	})
}
