package main

import (
	"strings"
	"testing"
	"time"
)

// TestConfigTimeouts reads KEYLEDGER_WRITE_TIMEOUT and
// KEYLEDGER_SHUTDOWN_GRACE, and the request budget derived from the write
// timeout: always less than it, so a busy request is answered before the
// write timeout would cut it.
func TestConfigTimeouts(t *testing.T) {
	key := newKEK(t)
	cfg, err := LoadConfig(envFunc(map[string]string{"KEYLEDGER_MASTER_KEY": key}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.WriteTimeout != time.Minute || cfg.ShutdownGrace != 25*time.Second || cfg.RequestBudget() != 55*time.Second {
		t.Errorf("defaults: write timeout %s, grace %s, budget %s; want 1m, 25s, 55s", cfg.WriteTimeout, cfg.ShutdownGrace, cfg.RequestBudget())
	}
	cfg, err = LoadConfig(envFunc(map[string]string{"KEYLEDGER_MASTER_KEY": key,
		"KEYLEDGER_WRITE_TIMEOUT": "3s", "KEYLEDGER_SHUTDOWN_GRACE": "1s"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.WriteTimeout != 3*time.Second || cfg.ShutdownGrace != time.Second || cfg.RequestBudget() != 2400*time.Millisecond {
		t.Errorf("set: write timeout %s, grace %s, budget %s; want 3s, 1s, 2.4s", cfg.WriteTimeout, cfg.ShutdownGrace, cfg.RequestBudget())
	}
	for _, tc := range []struct{ name, value, want string }{
		{"KEYLEDGER_SHUTDOWN_GRACE", "soon", "want a positive duration"},
		{"KEYLEDGER_SHUTDOWN_GRACE", "-1s", "want a positive duration"},
		{"KEYLEDGER_WRITE_TIMEOUT", "30", "want a positive duration"},
		{"KEYLEDGER_WRITE_TIMEOUT", "500ms", "want at least 1s"},
	} {
		_, err := LoadConfig(envFunc(map[string]string{"KEYLEDGER_MASTER_KEY": key, tc.name: tc.value}))
		if err == nil || !strings.Contains(err.Error(), tc.name) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s=%q: %v, want an error naming it and saying %q", tc.name, tc.value, err, tc.want)
		}
	}
}
