package pgcluster_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger/store/pgcluster"
)

// TestLifecycle: a committed row survives a stop, a restart and a kill;
// while stopped, connections are refused.
func TestLifecycle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postgres cluster")
	}
	c := pgcluster.Start(t)
	url := c.CreateDatabase("lifecycle")
	ctx := context.Background()
	exec := func(sql string) error {
		t.Helper()
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		conn, err := pgx.Connect(cctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(cctx, sql)
		return err
	}
	count := func() int {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := exec("CREATE TABLE t (x int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}

	c.Stop()
	if c.Running() {
		t.Fatal("running after Stop")
	}
	if err := exec("SELECT 1"); err == nil {
		t.Fatal("connected to a stopped cluster")
	}
	c.Start()
	if err := exec("INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}

	// Kill with a session open: every server process goes, and the
	// restart recovers.
	held, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close(ctx)
	c.Kill()
	if err := held.Ping(ctx); err == nil {
		t.Error("a session survived Kill")
	}
	c.Start()
	if n := count(); n != 2 {
		t.Errorf("%d rows after restarts, want 2", n)
	}
	if _, err := os.Stat(c.Dir()); err != nil {
		t.Fatal(err)
	}
}
