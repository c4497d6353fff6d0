package main

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store/pgcluster"
)

// TestFaultDiskFull fills the disk under the audit log while reveals come
// in. Every reveal writes an audit row, so with no room for it the reveal
// must fail, but as what it is: 503 "out of resources" with Retry-After,
// never 500; /readyz must say not ready once writes keep failing that way,
// and ready again once there is room and a write succeeded.
//
// The disk is real where the sandbox lets us mount: the private cluster's
// audit_events table is moved to a tablespace on a 1 MiB tmpfs, and a
// filler table in the same tablespace takes the rest, so Postgres gets
// ENOSPC extending the table (SQLSTATE 53100). Where mounting is refused,
// the same SQLSTATE is raised by a trigger on the audit insert instead, and
// the test says so in its log.
func TestFaultDiskFull(t *testing.T) {
	keyledgerBinary(t)
	cluster := pgcluster.Start(t)
	url := cluster.CreateDatabase("keyledger")
	key := newKEK(t)
	mustRun(t, dbEnv(url, key), "", "migrate")
	st, pool := openStore(t, url, key, fastOpts())
	lead := seedUser(t, st, "lead@example.com", keyledger.RoleLead)
	id, value := seedKey(t, st, lead, "diskfull")
	token := mintToken(t, st, lead, "read", "reveal")
	env := dbEnv(url, key)
	env["KEYLEDGER_API_RATE"] = "1000"
	srv, base := serveAt(t, env)
	waitReady(t, srv, base)
	c := &http.Client{Timeout: 30 * time.Second}

	free := fillAuditDisk(t, cluster, url)

	var saw503 bool
	for i := 0; i < 400 && !saw503; i++ {
		status, got, body, err := apiReveal(c, base, token, id)
		switch {
		case err != nil:
			t.Fatalf("reveal %d with the disk full: %v", i, err)
		case status == http.StatusOK:
			if got != value {
				t.Fatalf("reveal %d: wrong value", i)
			}
			// Room left on the table's last pages: keep going.
		case status == http.StatusServiceUnavailable:
			saw503 = true
			code, msg := apiErrorOf(body)
			if code != keyledger.EUNAVAILABLE || !strings.Contains(msg, "out of resources") {
				t.Errorf("disk-full reveal: %s, want unavailable saying the database is out of resources", body)
			}
		default:
			t.Fatalf("reveal %d with the disk full: %d %s, want 503", i, status, body)
		}
	}
	if !saw503 {
		t.Fatal("400 reveals succeeded with the disk full")
	}
	// A few more writes fail the same way; then the replica is not ready.
	for i := 0; i < 3; i++ {
		resp, err := c.Do(revealRequest(t, base, token, id))
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("reveal with the disk full: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
		}
	}
	status, body, err := getStatus(c, base, "/readyz")
	if err != nil || status != http.StatusServiceUnavailable || !strings.Contains(body, "out of resources") {
		t.Errorf("/readyz with every write failing for want of disk: %d %q %v, want 503 naming the cause", status, body, err)
	}
	if !strings.Contains(srv.output.String(), "53100") {
		t.Errorf("the server's logs do not name SQLSTATE 53100 for the operator")
	}

	free()
	// Room again: the next write succeeds and readiness follows.
	if status, got, body, err := apiReveal(c, base, token, id); err != nil || status != http.StatusOK || got != value {
		t.Fatalf("reveal after freeing the disk: %d %v %s", status, err, body)
	}
	if status, body, err := getStatus(c, base, "/readyz"); err != nil || status != http.StatusOK {
		t.Errorf("/readyz after a write succeeded again: %d %q %v", status, body, err)
	}
	checkNoHalfWrittenRows(t, st, pool)
}

func revealRequest(t *testing.T, base, token, id string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+"/api/v1/keys/"+id+"/reveal", strings.NewReader(`{"reason":"fault test"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	return req
}

// fillAuditDisk leaves audit_events no room to grow and returns the
// function that gives it room again.
func fillAuditDisk(t *testing.T, cluster *pgcluster.Cluster, dbURL string) (free func()) {
	t.Helper()
	dir := filepath.Join(cluster.Dir(), "tiny")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Logf("cannot mount a tmpfs here (%v): raising SQLSTATE 53100 from a trigger on the audit insert instead of a real full disk", err)
		superExec(t, dbURL, `CREATE FUNCTION fault_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = '53100'; END $$;
			CREATE TRIGGER fault_disk_full BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION fault_disk_full()`)
		return func() { superExec(t, dbURL, `DROP TRIGGER fault_disk_full ON audit_events`) }
	}
	t.Cleanup(func() {
		// The cluster is stopped by its own cleanup, registered earlier
		// and so run later: detach lazily.
		_ = syscall.Unmount(dir, syscall.MNT_DETACH)
	})
	// The cluster's temp dir belongs to whoever runs postgres.
	fi, err := os.Stat(cluster.Dir())
	if err != nil {
		t.Fatal(err)
	}
	owner := fi.Sys().(*syscall.Stat_t)
	if err := os.Chown(dir, int(owner.Uid), int(owner.Gid)); err != nil {
		t.Fatal(err)
	}
	superExec(t, dbURL, "CREATE TABLESPACE tiny LOCATION '"+dir+"'")
	superExec(t, dbURL, "ALTER TABLE audit_events SET TABLESPACE tiny")
	superExec(t, dbURL, "CREATE TABLE fault_filler (b text) TABLESPACE tiny")
	superExec(t, dbURL, "ALTER TABLE fault_filler ALTER COLUMN b SET STORAGE PLAIN")
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for i := 0; ; i++ {
		_, err := conn.Exec(ctx, "INSERT INTO fault_filler SELECT repeat('x', 1000) FROM generate_series(1, 8)")
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "53100" {
			break
		}
		if err != nil || i > 10000 {
			t.Fatalf("filling the tmpfs: %v after %d inserts", err, i)
		}
	}
	t.Logf("tmpfs of 1 MiB under audit_events is full (real ENOSPC)")
	return func() { superExec(t, dbURL, "DROP TABLE fault_filler") }
}
