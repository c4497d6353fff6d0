package store_test

import (
	"bytes"
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

// logBuffer collects a store's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// holdTransaction opens a transaction on url and keeps it open until the
// test ends. withXID makes it write (take a transaction id); without, it
// only holds a snapshot. It returns the backend's pid.
func holdTransaction(t *testing.T, url string, withXID bool) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	if _, err := conn.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ"); err != nil {
		t.Fatal(err)
	}
	q := "SELECT count(*) FROM pg_class"
	if withXID {
		q = "SELECT pg_current_xact_id()::text"
	}
	if _, err := conn.Exec(ctx, q); err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := conn.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&pid); err != nil {
		t.Fatal(err)
	}
	return pid
}

// A transaction left open in another database of the cluster, or one that
// only reads here, must not hold the chain back: it can never write an
// event before the ones being chained. (Before, the chainer waited for the
// cluster-wide xmin, and either stalled it.)
func TestChainPassesTransactionsThatCannotWriteHere(t *testing.T) {
	t.Parallel()
	f := newFixture(t, store.Options{})
	ctx := t.Context()
	f.user(t, "first@example.com", keyledger.RoleMember)
	verifyChained(t, f.s)

	holdTransaction(t, storetest.NewDatabase(t), true)
	holdTransaction(t, storetest.NewDatabase(t), false)
	var db string
	if err := f.pool.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	here, err := storetest.WithDatabase(storetest.AdminURL(), db)
	if err != nil {
		t.Fatal(err)
	}
	holdTransaction(t, here, false)

	for i := range 5 {
		f.user(t, "later"+strconv.Itoa(i)+"@example.com", keyledger.RoleMember)
	}
	if _, err := f.s.ChainAudit(ctx); err != nil {
		t.Fatal(err)
	}
	lag, err := f.s.AuditLag(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if lag.Unchained != 0 {
		t.Errorf("%d events left unchained behind transactions that cannot write here", lag.Unchained)
	}
	r, err := f.s.VerifyAudit(ctx)
	if err != nil || !r.OK() || r.Pending != 0 || r.Checked != 6 {
		t.Errorf("verify: %+v, %v", r, err)
	}
}

// A transaction in this database that has written and stays open does
// hold the chain back (an event it writes must come before later ones).
// The lag shows, the warning names the transaction's pid, and verify
// reports the finished events as pending rather than OK.
func TestAuditLagHeldBackByOldTransaction(t *testing.T) {
	t.Parallel()
	logs := &logBuffer{}
	f := newFixture(t, store.Options{Logger: slog.New(slog.NewTextHandler(logs, nil))})
	ctx := t.Context()
	f.user(t, "first@example.com", keyledger.RoleMember)
	verifyChained(t, f.s)
	var db string
	if err := f.pool.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	here, err := storetest.WithDatabase(storetest.AdminURL(), db)
	if err != nil {
		t.Fatal(err)
	}
	pid := holdTransaction(t, here, true)
	for i := range 3 {
		f.user(t, "later"+strconv.Itoa(i)+"@example.com", keyledger.RoleMember)
	}
	if _, err := f.s.ChainAudit(ctx); err != nil {
		t.Fatal(err)
	}
	lag, err := f.s.WarnAuditLag(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if lag.Unchained != 3 || lag.OldestAge <= 0 {
		t.Errorf("lag %+v, want 3 unchained with an age", lag)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, "waiting to be chained") ||
		!strings.Contains(out, "pid "+strconv.Itoa(pid)) || !strings.Contains(out, "database "+db) {
		t.Errorf("no warning naming pid %d in database %s:\n%s", pid, db, out)
	}
	r, err := f.s.VerifyAuditWith(ctx, store.VerifyOptions{Wait: 300 * 1e6})
	if err != nil {
		t.Fatal(err)
	}
	if !r.OK() || r.Pending != 3 || !strings.Contains(r.Holder, "pid "+strconv.Itoa(pid)) {
		t.Errorf("verify with a transaction holding the chain: %+v", r)
	}
}
