package store_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

// TestRevealDatabaseTroubleIsUnavailable raises each SQLSTATE of interest
// from the audit insert every reveal makes, and checks what the reveal
// says: class 53 "out of resources", a lock or statement timeout "busy",
// a connection failure "not reachable" (all unavailable: 503 with
// Retry-After), anything else internal. Nothing is revealed in any case.
func TestRevealDatabaseTroubleIsUnavailable(t *testing.T) {
	t.Parallel()
	f := newRevealFixture(t)
	ctx := t.Context()
	k := f.keys["production"]
	if _, err := f.pool.Exec(ctx, `CREATE FUNCTION test_trouble() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'injected (test)' USING ERRCODE = current_setting('test.sqlstate'); END $$;
		CREATE TRIGGER test_trouble BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION test_trouble()`); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ sqlstate, code, message string }{
		{"53100", keyledger.EUNAVAILABLE, "out of resources"}, // disk_full
		{"53200", keyledger.EUNAVAILABLE, "out of resources"}, // out_of_memory
		{"53300", keyledger.EUNAVAILABLE, "out of resources"}, // too_many_connections
		{"55P03", keyledger.EUNAVAILABLE, "busy"},             // lock_not_available
		{"57014", keyledger.EUNAVAILABLE, "busy"},             // query_canceled
		{"08006", keyledger.EUNAVAILABLE, "not reachable"},    // connection_failure
		{"P0001", keyledger.EINTERNAL, "went wrong"},
	} {
		if _, err := f.pool.Exec(ctx, "ALTER DATABASE "+currentDB(t, f)+" SET test.sqlstate = '"+tc.sqlstate+"'"); err != nil {
			t.Fatal(err)
		}
		// The setting reaches new connections only.
		f.pool.Reset()
		got, err := f.s.Reveal(ctx, as(f.owner), k.ID, "incident")
		if err == nil || got.Value != "" {
			t.Fatalf("%s: revealed without its audit event", tc.sqlstate)
		}
		if keyledger.ErrorCode(err) != tc.code || !strings.Contains(keyledger.ErrorMessage(err), tc.message) {
			t.Errorf("%s: %s %q, want %s saying %q", tc.sqlstate, keyledger.ErrorCode(err), keyledger.ErrorMessage(err), tc.code, tc.message)
		}
		if !strings.Contains(err.Error(), tc.sqlstate) {
			t.Errorf("%s: the logged error %q lacks the SQLSTATE", tc.sqlstate, err)
		}
	}
}

// TestWriteHealth: three writes in a row failing for want of disk make
// WriteHealth (and so /readyz) report it; one write that succeeds clears
// it. Failures of other kinds do not count.
func TestWriteHealth(t *testing.T) {
	t.Parallel()
	f := newRevealFixture(t)
	ctx := t.Context()
	k := f.keys["production"]
	if _, err := f.pool.Exec(ctx, `CREATE FUNCTION test_full() RETURNS trigger LANGUAGE plpgsql AS $$
		BEGIN RAISE EXCEPTION 'could not extend file (test)' USING ERRCODE = '53100'; END $$`); err != nil {
		t.Fatal(err)
	}
	trigger := func(on bool) {
		t.Helper()
		sql := `DROP TRIGGER test_full ON audit_events`
		if on {
			sql = `CREATE TRIGGER test_full BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION test_full()`
		}
		if _, err := f.pool.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	trigger(true)
	for i := 0; i < 3; i++ {
		if err := f.s.WriteHealth(); err != nil {
			t.Fatalf("after %d failed writes: %v", i, err)
		}
		if _, err := f.s.Reveal(ctx, as(f.owner), k.ID, "incident"); err == nil {
			t.Fatal("revealed on a full disk")
		}
	}
	err := f.s.WriteHealth()
	if err == nil || !strings.Contains(err.Error(), "out of resources") || !strings.Contains(err.Error(), "53100 disk full") {
		t.Fatalf("after 3 failed writes: %v, want out of resources naming 53100 disk full", err)
	}
	// A reveal stopped by its caller's deadline is no sign of a full disk.
	dctx, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	_, _ = f.s.Reveal(dctx, as(f.owner), k.ID, "incident")
	cancel()
	trigger(false)
	if _, err := f.s.Reveal(ctx, as(f.owner), k.ID, "incident"); err != nil {
		t.Fatal(err)
	}
	if err := f.s.WriteHealth(); err != nil {
		t.Errorf("after a write succeeded: %v", err)
	}
}

func currentDB(t *testing.T, f *revealFixture) string {
	t.Helper()
	var name string
	if err := f.pool.QueryRow(t.Context(), "SELECT quote_ident(current_database())").Scan(&name); err != nil {
		t.Fatal(err)
	}
	return name
}
