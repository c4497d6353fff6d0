package main

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store/storetest"
)

// holdLock takes lock on table in a transaction of its own connection and
// keeps it until the returned release is called (or the test ends).
func holdLock(t *testing.T, dbURL, table string) (release func()) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "LOCK TABLE "+pgx.Identifier{table}.Sanitize()+" IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if done {
			return
		}
		done = true
		_ = tx.Rollback(ctx)
		_ = conn.Close(ctx)
	}
	t.Cleanup(release)
	return release
}

// waitLockWaiters waits until n backends of the database at dbURL wait
// for a lock.
func waitLockWaiters(t *testing.T, dbURL string, n int) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for d := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var got int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got >= n {
			return
		}
		if time.Now().After(d) {
			t.Fatalf("only %d backends waiting for a lock after 20s, want %d", got, n)
		}
	}
}

// TestFaultRevealBehindTableLock holds an ACCESS EXCLUSIVE lock on
// key_versions while a reveal comes in, with a 3 s HTTP write timeout. The
// database is reachable, only busy: the reveal must be answered (before the
// write timeout cuts the connection, or there would be no answer at all)
// with 503, Retry-After and a message that says busy, not "not reachable";
// nothing is revealed or audited; and once the lock is gone the same reveal
// works.
func TestFaultRevealBehindTableLock(t *testing.T) {
	keyledgerBinary(t)
	url := storetest.NewDatabase(t)
	key := newKEK(t)
	st, pool := openStore(t, url, key, fastOpts())
	lead := seedUser(t, st, "lead@example.com", keyledger.RoleLead)
	id, value := seedKey(t, st, lead, "locked")
	token := mintToken(t, st, lead, "read", "reveal")
	env := dbEnv(url, key)
	env["KEYLEDGER_WRITE_TIMEOUT"] = "3s"
	srv, base := serveAt(t, env)
	waitReady(t, srv, base)
	c := &http.Client{Timeout: 45 * time.Second}
	b := signInBrowser(t, base, lead.Email, true)
	before := countAudit(t, pool, keyledger.ActionKeyReveal)

	release := holdLock(t, url, "key_versions")
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/keys/"+id+"/reveal", strings.NewReader(`{"reason":"fault test"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("reveal behind a table lock got no answer (cut by the write timeout?): %v", err)
	}
	body := make([]byte, 4096)
	n, _ := resp.Body.Read(body)
	_ = resp.Body.Close()
	body = body[:n]
	code, msg := apiErrorOf(body)
	if resp.StatusCode != http.StatusServiceUnavailable || code != keyledger.EUNAVAILABLE {
		t.Fatalf("reveal behind a table lock: %d %s, want 503 unavailable", resp.StatusCode, body)
	}
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	if !strings.Contains(msg, "busy") || strings.Contains(msg, "not reachable") {
		t.Errorf("message %q: want it to say the database is busy, not unreachable", msg)
	}
	if strings.Contains(string(body), value) {
		t.Fatal("the value was in the refusal")
	}
	if st, body, err := getStatus(c, base, "/readyz"); err != nil || st != http.StatusOK {
		t.Errorf("/readyz while one table is locked: %d %s %v; a lock is not a reason to take the replica out", st, body, err)
	}
	// The browser's reveal form says the same.
	status, page, err := b.reveal(id)
	if err != nil || status != http.StatusServiceUnavailable || !strings.Contains(string(page), "busy") {
		t.Errorf("browser reveal behind a table lock: %d %v %.300s", status, err, page)
	}

	release()
	status, got, body, err := apiReveal(c, base, token, id)
	if err != nil || status != http.StatusOK || got != value {
		t.Fatalf("reveal after the lock went: %d %v %s", status, err, body)
	}
	if n := countAudit(t, pool, keyledger.ActionKeyReveal) - before; n != 1 {
		t.Errorf("%d key.reveal events, want 1 (only the reveal that was answered)", n)
	}
	if strings.Contains(srv.output.String(), value) {
		t.Error("the value is in the server's logs")
	}
}
