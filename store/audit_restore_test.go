package store_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/pgcluster"
	"github.com/keyledger/keyledger/store/storetest"
)

// TestChainAfterRestoreOnAnotherServer: a database dumped from one Postgres
// server and restored onto a new one, whose transaction counter is far
// below the restored events' txids. keyledger starts a new audit epoch
// there, chains the new events after the restored ones, and the chain
// verifies. (Before epochs, the new events were never chained and verify
// reported them as inserted out of order.)
func TestChainAfterRestoreOnAnotherServer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts two Postgres clusters")
	}
	t.Parallel()
	ctx := context.Background()
	keyring := storetest.NewKeyring(t)
	opts := store.Options{PasswordParams: storetest.FastPasswords()}

	// The old server: some history, then its counter well ahead of what a
	// new server's will be after initdb and a restore.
	src := pgcluster.Start(t)
	srcURL := src.CreateDatabase("keyledger")
	srcPool, err := pgxpool.New(ctx, srcURL)
	if err != nil {
		t.Fatal(err)
	}
	defer srcPool.Close()
	if _, err := store.Migrate(ctx, srcPool); err != nil {
		t.Fatal(err)
	}
	st, err := store.New(ctx, srcPool, keyring, opts)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{s: st, pool: srcPool}
	owner := f.user(t, "owner@example.com", keyledger.RoleMember)
	k := f.key(t, owner, devKey("OpenAI", owner.Email, secretValue(t, "sk-proj-")))
	for i := range 5 {
		if _, err := st.Reveal(ctx, as(owner), k.ID, fmt.Sprintf("before %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for range 3000 {
		if _, err := srcPool.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
			t.Fatal(err)
		}
	}
	// One more event that is still unchained when the dump is taken.
	if _, err := st.ChainAudit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Reveal(ctx, as(owner), k.ID, "unchained at dump time"); err != nil {
		t.Fatal(err)
	}
	dump := filepath.Join(t.TempDir(), "keyledger.dump")
	if out, err := exec.Command(src.Bin("pg_dump"), "--format=custom", "--dbname", srcURL, "--file", dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, out)
	}

	// The new server.
	dst := pgcluster.Start(t)
	dstURL := dst.CreateDatabase("keyledger")
	if out, err := exec.Command(dst.Bin("pg_restore"), "--no-owner", "--exit-on-error", "--dbname", dstURL, dump).CombinedOutput(); err != nil {
		t.Fatalf("pg_restore: %v\n%s", err, out)
	}
	dstPool, err := pgxpool.New(ctx, dstURL)
	if err != nil {
		t.Fatal(err)
	}
	defer dstPool.Close()
	var maxTxid, nowTxid int64
	if err := dstPool.QueryRow(ctx, "SELECT max(txid)::text::bigint, pg_current_xact_id()::text::bigint FROM audit_events").Scan(&maxTxid, &nowTxid); err != nil {
		t.Fatal(err)
	}
	if nowTxid >= maxTxid {
		t.Fatalf("the new server's counter (%d) is not below the restored txids (%d): the test does not exercise the restore case", nowTxid, maxTxid)
	}

	restored, err := store.New(ctx, dstPool, keyring, opts)
	if err != nil {
		t.Fatal(err)
	}
	g := &fixture{s: restored, pool: dstPool}
	if n := g.count(t, "SELECT count(*) FROM audit_epochs"); n != 2 {
		t.Fatalf("%d audit epochs after the restore, want 2", n)
	}
	// A second process on the new server does not start a third epoch.
	if _, err := store.New(ctx, dstPool, keyring, opts); err != nil {
		t.Fatal(err)
	}
	if n := g.count(t, "SELECT count(*) FROM audit_epochs"); n != 2 {
		t.Fatalf("%d audit epochs after a second start, want 2", n)
	}
	for i := range 5 {
		if _, err := restored.Reveal(ctx, as(owner), k.ID, fmt.Sprintf("after %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := restored.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Unchained != 0 {
		t.Fatalf("verify after the restore: %+v", rep)
	}
	events := g.count(t, "SELECT count(*) FROM audit_events")
	if int64(events) != rep.Checked {
		t.Fatalf("%d events, %d chained", events, rep.Checked)
	}
	// The chain order: the restored history (including the event that
	// was unchained at dump time), then the new server's events.
	var lastOld, firstNew int64
	if err := dstPool.QueryRow(ctx, `SELECT
			(SELECT c.seq FROM audit_chain c JOIN audit_events e ON e.id = c.event_id WHERE e.reason = 'unchained at dump time'),
			(SELECT min(c.seq) FROM audit_chain c JOIN audit_events e ON e.id = c.event_id WHERE e.reason LIKE 'after %')`).Scan(&lastOld, &firstNew); err != nil {
		t.Fatal(err)
	}
	if lastOld >= firstNew {
		t.Fatalf("the restored event is chained at %d, after the new server's first at %d", lastOld, firstNew)
	}

	// Out-of-order insertion is still caught: an event forged with a txid
	// behind the chain's end.
	g.asSuperuser(t, `INSERT INTO audit_events (txid, actor_email, action) VALUES ('5'::xid8, 'forger@example.com', 'key.reveal')`)
	g.asSuperuser(t, `SELECT setval(pg_get_serial_sequence('audit_events', 'id'), (SELECT max(id) FROM audit_events))`)
	rep, err = restored.VerifyAudit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() {
		t.Fatalf("a forged out-of-order event went unnoticed: %+v", rep)
	}
}
