package store_test

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

// A database chained by a keyledger from before migration 009 (SHA-256
// links only) upgrades in place: its links stay as they are and verify,
// the keyed part begins right after them, and the start is logged once.
func TestAuditUpgradeKeepsSHA256Links(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool, err := pgxpool.New(ctx, emptyDatabase(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	if err := store.MigrateTo(ctx, pool, 6); err != nil {
		t.Fatal(err)
	}
	// What the old chainer left: five events, each linked with SHA-256.
	if _, err := pool.Exec(ctx, `INSERT INTO audit_events (actor_email, action, reason)
		SELECT 'old@example.com', 'key.reveal', 'before the upgrade ' || g FROM generate_series(1, 5) g`); err != nil {
		t.Fatal(err)
	}
	f := &fixture{pool: pool}
	var prev []byte
	_, events := unchainedEvents(t, f)
	for i, e := range events {
		prev = keyledger.ChainHash(prev, &e)
		if _, err := pool.Exec(ctx, "INSERT INTO audit_chain (seq, event_id, event_txid, hash) SELECT $1, id, txid, $3 FROM audit_events WHERE id = $2",
			i+1, e.ID, prev); err != nil {
			t.Fatal(err)
		}
	}

	if _, err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	kr := storetest.NewKeyring(t)
	opts := store.Options{PasswordParams: storetest.FastPasswords(), Logger: slog.New(slog.NewTextHandler(logs, nil))}
	s, err := store.New(ctx, pool, kr, opts)
	if err != nil {
		t.Fatal(err)
	}
	f.s = s
	if !strings.Contains(logs.String(), "links are now keyed") || !strings.Contains(logs.String(), "keyed_from=6") {
		t.Errorf("the keyed start is not logged:\n%s", logs)
	}
	f.user(t, "new@example.com", keyledger.RoleMember)
	r := verifyChained(t, s)
	if r.Checked != 6 || r.KeyedFrom != 6 {
		t.Errorf("after the upgrade: %+v, want 6 links keyed from 6", r)
	}
	if n := f.count(t, "SELECT count(*) FROM audit_chain WHERE format = CASE WHEN seq < 6 THEN 1 ELSE 2 END"); n != 6 {
		t.Errorf("%d of 6 links in the format of their position", n)
	}
	// An older keyledger still running during the upgrade appends SHA-256
	// links (it knows no format column): refused past the keyed start.
	var id int64
	if err := pool.QueryRow(ctx, "INSERT INTO audit_events (action) VALUES ('key.reveal') RETURNING id").Scan(&id); err != nil {
		t.Fatal(err)
	}
	_, err = pool.Exec(ctx, "INSERT INTO audit_chain (seq, event_id, event_txid, hash) SELECT 7, id, txid, '\\x00' FROM audit_events WHERE id = $1", id)
	if err == nil || !strings.Contains(err.Error(), "wrong format") {
		t.Errorf("an unkeyed link past the keyed start: %v, want refused", err)
	}

	// A restart finds the record and keeps it, without logging a new start.
	s2, err := store.New(ctx, pool, kr, opts)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "links are now keyed"); n != 1 {
		t.Errorf("keyed start logged %d times after a restart, want once", n)
	}
	if r, err := s2.VerifyAudit(ctx); err != nil || !r.OK() || r.KeyedFrom != 6 || r.Checked != 7 {
		t.Errorf("after a restart: %+v, %v", r, err)
	}
}

// unchainedEvents reads every event in chain order ((txid, id)).
func unchainedEvents(t testing.TB, f *fixture) ([]string, []keyledger.AuditEvent) {
	t.Helper()
	rows, err := f.pool.Query(context.Background(), `SELECT txid::text, id, at, coalesce(actor_id, 0), actor_email, action,
		coalesce(key_id::text, ''), key_name, coalesce(key_version, 0), coalesce(subject_id, 0), subject_email,
		environment, ip, user_agent, reason, details::text FROM audit_events ORDER BY txid, id`)
	if err != nil {
		t.Fatal(err)
	}
	var txids []string
	var events []keyledger.AuditEvent
	for rows.Next() {
		var txid string
		var e keyledger.AuditEvent
		if err := rows.Scan(&txid, &e.ID, &e.Time, &e.ActorID, &e.ActorEmail, &e.Action, &e.KeyID, &e.KeyName, &e.KeyVersion,
			&e.SubjectID, &e.SubjectEmail, &e.Environment, &e.IP, &e.UserAgent, &e.Reason, &e.Details); err != nil {
			t.Fatal(err)
		}
		txids = append(txids, txid)
		events = append(events, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return txids, events
}
