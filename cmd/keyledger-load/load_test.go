package main

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	if got := percentile(d, 0.50); got != 50*time.Millisecond {
		t.Errorf("p50 = %s, want 50ms", got)
	}
	if got := percentile(d, 0.99); got != 99*time.Millisecond {
		t.Errorf("p99 = %s, want 99ms", got)
	}
	if got := percentile(d[:1], 0.99); got != time.Millisecond {
		t.Errorf("p99 of one = %s", got)
	}
	if got := percentile(nil, 0.5); got != 0 {
		t.Errorf("p50 of none = %s", got)
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"-duration", "2s", "-clients", "1,4", "-scenarios", "api-reveal,rotation"}, io.Discard)
	if err != nil || o.duration != 2*time.Second || len(o.clients) != 2 || o.clients[1] != 4 || len(o.scenarios) != 2 || maxClients(o) != 4 {
		t.Fatalf("parseFlags: %+v, %v", o, err)
	}
	for _, bad := range [][]string{{"-clients", "0"}, {"-clients", "8,8"}, {"-scenarios", "nope"}, {"-duration", "1ms"}, {"extra"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) accepted", bad)
		}
	}
}

// The database is dropped, so only names that say "load" are accepted;
// the check comes before any connection.
func TestRecreateDatabaseRefusesOtherNames(t *testing.T) {
	for _, name := range []string{"keyledger", "postgres", "Load", "x;drop", ""} {
		_, err := recreateDatabase(context.Background(), "postgres://127.0.0.1:1/postgres", name)
		if err == nil || !strings.Contains(err.Error(), "-db") {
			t.Errorf("recreateDatabase(%q): %v, want a -db error", name, err)
		}
	}
}
