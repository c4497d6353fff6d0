package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store/storetest"
)

// TestAuditVerifyExitCodes runs the built binary: `audit verify` exits 0
// when everything finished is chained and verified, 1 when the chain is
// broken, 2 when it could not check (no database, a bad checkpoint file,
// or finished events an open transaction keeps from being chained).
func TestAuditVerifyExitCodes(t *testing.T) {
	t.Parallel()
	keyledgerBinary(t)
	ctx := context.Background()
	url := storetest.NewDatabase(t)
	key := newKEK(t)
	st, _ := openStore(t, url, key, fastOpts())
	seedUser(t, st, "lead@example.com", keyledger.RoleLead)
	env := dbEnv(url, key)
	dir := t.TempDir()

	verify := func(want int, args ...string) string {
		t.Helper()
		code, out := runBinary(t, env, append([]string{"audit", "verify"}, args...)...)
		if code != want {
			t.Fatalf("audit verify %v: exit %d, want %d\n%s", args, code, want, out)
		}
		return out
	}
	out := verify(0)
	if !strings.Contains(out, "audit chain OK: 1 events verified") || !strings.Contains(out, "checkpoint public key ") {
		t.Errorf("exit 0 output: %s", out)
	}

	// A checkpoint, then more events: verify against it still passes.
	code, cpOut := runBinary(t, env, "audit", "checkpoint")
	if code != 0 {
		t.Fatalf("audit checkpoint: exit %d\n%s", code, cpOut)
	}
	start := strings.Index(cpOut, "{\n")
	if start < 0 {
		t.Fatalf("no checkpoint JSON in:\n%s", cpOut)
	}
	var cp keyledger.AuditCheckpoint
	if err := json.NewDecoder(strings.NewReader(cpOut[start:])).Decode(&cp); err != nil {
		t.Fatalf("checkpoint JSON: %v\n%s", err, cpOut)
	}
	if cp.Seq != 1 || cp.PublicKey == "" || cp.Signature == "" || len(cp.Link) != 64 {
		t.Fatalf("checkpoint %+v", cp)
	}
	if !strings.Contains(out, cp.PublicKey) {
		t.Errorf("verify does not print the public key to pin (%s):\n%s", cp.PublicKey, out)
	}
	cpFile := filepath.Join(dir, "checkpoint.json")
	writeFile(t, cpFile, cp.JSON())
	seedUser(t, st, "member@example.com", keyledger.RoleMember)
	verify(0, "--checkpoint", cpFile)

	// Could not check: exit 2.
	writeFile(t, filepath.Join(dir, "garbage.json"), "not a checkpoint")
	verify(2, "--checkpoint", filepath.Join(dir, "garbage.json"))
	verify(2, "--checkpoint", filepath.Join(dir, "missing.json"))
	for name, bad := range map[string]string{
		"unparsable URL":        "postgres://%zz",
		"nothing listens there": "postgres://postgres@127.0.0.1:1/keyledger?sslmode=disable&connect_timeout=1",
	} {
		code, out := runBinary(t, dbEnv(bad, key), "audit", "verify")
		if code != 2 || !strings.Contains(out, "NOT CHECKED") {
			t.Errorf("%s: exit %d, want 2 and NOT CHECKED:\n%s", name, code, out)
		}
	}

	// A transaction in this database that has written and stays open keeps
	// later events from being chained: 2, naming it.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	var pid int
	var xid string
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid(), pg_current_xact_id()::text").Scan(&pid, &xid); err != nil {
		t.Fatal(err)
	}
	seedUser(t, st, "held@example.com", keyledger.RoleMember)
	out = verify(2, "--wait", "500ms")
	if !strings.Contains(out, "NOT FULLY CHECKED") || !strings.Contains(out, "pid "+strconv.Itoa(pid)) {
		t.Errorf("exit 2 output does not name pid %d:\n%s", pid, out)
	}
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	verify(0, "--checkpoint", cpFile)

	// Broken: exit 1. An edited checkpoint fails its signature; an edited
	// event fails its link.
	forged := cp
	forged.Link = strings.Repeat("ab", 32)
	writeFile(t, filepath.Join(dir, "forged.json"), forged.JSON())
	if out := verify(1, "--checkpoint", filepath.Join(dir, "forged.json")); !strings.Contains(out, "signature") {
		t.Errorf("forged checkpoint: %s", out)
	}
	superExec(t, url, "SET session_replication_role = replica; UPDATE audit_events SET reason = 'x' WHERE id = (SELECT min(id) FROM audit_events)")
	if out := verify(1); !strings.Contains(out, "BROKEN") || !strings.Contains(out, "does not match its hash") {
		t.Errorf("exit 1 output: %s", out)
	}
}

// TestServePublishesCheckpoints starts the server with a chat webhook: the
// scheduled checkpoint job (run at start) logs the checkpoint as one token
// and posts it to the webhook, and the posted token verifies through
// `audit verify --checkpoint`.
func TestServePublishesCheckpoints(t *testing.T) {
	t.Parallel()
	keyledgerBinary(t)
	url := storetest.NewDatabase(t)
	key := newKEK(t)
	st, _ := openStore(t, url, key, fastOpts())
	seedUser(t, st, "lead@example.com", keyledger.RoleLead)

	var mu sync.Mutex
	var posts []string
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posts = append(posts, string(b))
		mu.Unlock()
	}))
	defer hook.Close()
	env := dbEnv(url, key)
	env["KEYLEDGER_WEBHOOK_URL"] = hook.URL + "/hook/secret-token"
	srv, base := serveAt(t, env)
	waitReady(t, srv, base)

	token := regexp.MustCompile(`klcp1\.[A-Za-z0-9_-]+`)
	var posted string
	deadline := time.Now().Add(30 * time.Second)
	for posted == "" && time.Now().Before(deadline) {
		mu.Lock()
		for _, p := range posts {
			if strings.Contains(p, "audit checkpoint") {
				posted = token.FindString(p)
			}
		}
		mu.Unlock()
		time.Sleep(100 * time.Millisecond)
	}
	if posted == "" {
		t.Fatalf("no checkpoint posted to the webhook within 30s; posts: %q", posts)
	}
	logged := false
	for _, line := range strings.Split(srv.output.String(), "\n") {
		if strings.Contains(line, `"level":"INFO"`) && strings.Contains(line, "audit checkpoint") && strings.Contains(line, posted) {
			logged = true
		}
	}
	if !logged {
		t.Errorf("no INFO log line carries the posted checkpoint %s", posted)
	}
	cpFile := filepath.Join(t.TempDir(), "cp")
	writeFile(t, cpFile, posted+"\n")
	if code, out := runBinary(t, dbEnv(url, key), "audit", "verify", "--checkpoint", cpFile); code != 0 {
		t.Errorf("verify against the posted checkpoint: exit %d\n%s", code, out)
	}
}
