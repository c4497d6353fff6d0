package main

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
)

// TestConfigPprofListen: profiles are served only on a loopback address.
func TestConfigPprofListen(t *testing.T) {
	base := map[string]string{"KEYLEDGER_MASTER_KEY": newKEK(t)}
	for _, ok := range []string{"", "127.0.0.1:6060", "[::1]:6060", " 127.0.0.2:0 "} {
		base["KEYLEDGER_PPROF_LISTEN"] = ok
		if _, err := LoadConfig(envFunc(base)); err != nil {
			t.Errorf("KEYLEDGER_PPROF_LISTEN=%q refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"0.0.0.0:6060", ":6060", "10.1.2.3:6060", "localhost:6060", "127.0.0.1", "[::]:6060"} {
		base["KEYLEDGER_PPROF_LISTEN"] = bad
		_, err := LoadConfig(envFunc(base))
		if err == nil {
			t.Errorf("KEYLEDGER_PPROF_LISTEN=%q accepted", bad)
			continue
		}
		checkOneLine(t, err.Error(), []string{"KEYLEDGER_PPROF_LISTEN", "loopback"}, nil)
	}
}

// TestStartPprof: the profiles answer on their own listener.
func TestStartPprof(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	stop, err := startPprof(addr, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/debug/pprof/cmdline")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || len(body) == 0 {
		t.Fatalf("pprof cmdline: %d, %d bytes", resp.StatusCode, len(body))
	}
}
