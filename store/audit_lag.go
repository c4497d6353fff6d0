package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// AuditLag is how far the chainer is behind: events whose transaction
// committed but that are not in the chain yet, and so not yet protected by
// it.
type AuditLag struct {
	Unchained int64
	// OldestAge is how long ago the oldest of them was written; 0 when
	// none is waiting.
	OldestAge time.Duration
	// Holder names what holds the chain back, when asked for and visible.
	Holder string
}

// AuditLag counts the committed events past the chain's end. It is cheap
// enough for every metrics scrape: an index range scan over the events
// after the last link, nothing else. It counts the current epoch only
// (migration 006): after a restore onto another server, events of the old
// epoch are chained first, within a round or two.
func (s *Store) AuditLag(ctx context.Context, holder bool) (AuditLag, error) {
	var lag AuditLag
	var after int64
	var lastTxid *string
	var lastID *int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce((SELECT after_event_id FROM audit_epochs ORDER BY epoch DESC LIMIT 1), 0),
		c.event_txid::text, c.event_id
		FROM (SELECT 1) AS one LEFT JOIN LATERAL (SELECT event_txid, event_id FROM audit_chain ORDER BY seq DESC LIMIT 1) c ON true`).
		Scan(&after, &lastTxid, &lastID)
	if err != nil {
		return lag, fmt.Errorf("audit lag: %w", err)
	}
	// Events are chained in (txid, id) order, so in the current epoch the
	// unchained ones are exactly those past the last link's (txid, id).
	q := `SELECT count(*), coalesce(extract(epoch FROM clock_timestamp() - min(at)), 0)::float8 FROM audit_events WHERE id > $1`
	args := []any{after}
	if lastID != nil && *lastID > after {
		q += ` AND (txid, id) > ($2::xid8, $3::bigint)`
		args = append(args, *lastTxid, *lastID)
	}
	var age float64
	if err := s.pool.QueryRow(ctx, q, args...).Scan(&lag.Unchained, &age); err != nil {
		return lag, fmt.Errorf("audit lag: %w", err)
	}
	lag.OldestAge = time.Duration(max(age, 0) * float64(time.Second))
	if holder && lag.Unchained > 0 {
		if lag.Holder, err = s.chainHolder(ctx); err != nil {
			return lag, err
		}
	}
	return lag, nil
}

// chainHolder describes the oldest transaction that holds the chainer
// back: one in this database that has written something (it has an xid),
// or a prepared transaction here. Its query text is never shown: it may
// hold anything.
func (s *Store) chainHolder(ctx context.Context) (string, error) {
	var pid int64
	var datname, state, xid string
	var xactStart *time.Time
	err := s.pool.QueryRow(ctx, `SELECT pid, coalesce(datname, ''), coalesce(state, ''), xact_start, backend_xid::text
		FROM pg_stat_activity
		WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() AND datname IS NOT DISTINCT FROM current_database()
		ORDER BY age(backend_xid) DESC LIMIT 1`).Scan(&pid, &datname, &state, &xactStart, &xid)
	if err == nil {
		since := "unknown"
		if xactStart != nil {
			since = xactStart.UTC().Format(time.RFC3339) + fmt.Sprintf(" (%s ago)", s.now().Sub(*xactStart).Round(time.Second))
		}
		return fmt.Sprintf("transaction %s of pid %d in database %s, %s, started %s", xid, pid, datname, state, since), nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("audit lag: find the transaction holding the chain back: %w", err)
	}
	var gid string
	var prepared time.Time
	err = s.pool.QueryRow(ctx, `SELECT gid, prepared FROM pg_prepared_xacts WHERE database = current_database() ORDER BY prepared LIMIT 1`).Scan(&gid, &prepared)
	if err == nil {
		return fmt.Sprintf("prepared transaction %q, prepared %s", gid, prepared.UTC().Format(time.RFC3339)), nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("audit lag: list prepared transactions: %w", err)
	}
	return "no transaction visible in pg_stat_activity (the database role may lack pg_read_all_stats; an xid in another database counts as ours when it cannot be placed)", nil
}

// DefaultAuditLagWarn is how long a committed event may wait to be
// chained before the log warns: the chainer runs every second, so 30 s is
// an old transaction, never ordinary load.
const DefaultAuditLagWarn = 30 * time.Second

// WarnAuditLag logs a warning naming the cause when the oldest unchained
// event is older than threshold, and returns the lag.
func (s *Store) WarnAuditLag(ctx context.Context, threshold time.Duration) (AuditLag, error) {
	lag, err := s.AuditLag(ctx, false)
	if err != nil || lag.Unchained == 0 || lag.OldestAge <= threshold {
		return lag, err
	}
	if lag.Holder, err = s.chainHolder(ctx); err != nil {
		return lag, err
	}
	s.log.WarnContext(ctx, "audit events are waiting to be chained: an old transaction holds the chainer back; until it ends they are not protected by the chain",
		"unchained", lag.Unchained, "oldest_age", lag.OldestAge.Round(time.Second).String(), "held_by", lag.Holder)
	return lag, nil
}
