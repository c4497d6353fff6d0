package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
)

// sessionRow is a session as every browser request reads it.
type sessionRow struct {
	found                    bool
	user                     keyledger.User
	lastSeen, expires        time.Time
	stepUp                   *time.Time
	pendingTOTP, requireTOTP bool
	epochs                   keyledger.Epochs
}

// sessionColumns are the user's columns (userCols), then the session's
// (scanSessionRow), then the change epochs (migration 017): read in the
// same statement, so a request learns them after it arrived at no cost.
var sessionColumns = userCols.sql("u") + `,
		s.last_seen_at, s.expires_at, s.step_up_at, s.pending_totp, coalesce(p.require_totp, false),
		(SELECT sum(epoch)::bigint FROM list_epoch), (SELECT sum(epoch)::bigint FROM activity_epoch)`

var (
	// sessionSelect reads one session (a batch of one: its plan is cached,
	// see revealSelect).
	sessionSelect = `SELECT 1::bigint, ` + sessionColumns + `
		FROM sessions s JOIN users u ON u.id = s.user_id LEFT JOIN role_policies p ON p.role = u.role WHERE s.id_hash = $1`
	// sessionBatchSelect reads the sessions of concurrent requests in one
	// statement; ord says which request a row answers.
	sessionBatchSelect = `SELECT r.ord, ` + sessionColumns + `
		FROM unnest($1::bytea[]) WITH ORDINALITY AS r(id_hash, ord)
		JOIN sessions s ON s.id_hash = r.id_hash JOIN users u ON u.id = s.user_id LEFT JOIN role_policies p ON p.role = u.role`
)

// readSessionBatch is the batcher's run for session reads: every browser
// request starts with one, so under load they share a round trip the way
// reveals do. Each request still reads its session afresh.
func readSessionBatch(pool *pgxpool.Pool) func(context.Context, []*batchCall[[]byte, sessionRow]) {
	return func(ctx context.Context, batch []*batchCall[[]byte, sessionRow]) {
		hashes := make([][]byte, len(batch))
		for i, c := range batch {
			hashes[i] = c.in
		}
		q, arg := sessionBatchSelect, any(hashes)
		if len(batch) == 1 {
			q, arg = sessionSelect, hashes[0]
		}
		readBatch(ctx, pool, batch, q, []any{arg}, scanSessionRow, func(r *sessionRow) { r.found = true })
	}
}

func scanSessionRow(rows pgx.Rows, ord *int64, r *sessionRow) error {
	return rows.Scan(sessionDests(ord, r)...)
}

// sessionDests are where a row of sessionColumns goes, after its ord.
func sessionDests(ord *int64, r *sessionRow) []any {
	dests := userCols.dests(append(make([]any, 0, 1+len(userCols)+7), ord), &r.user)
	return append(dests, &r.lastSeen, &r.expires, &r.stepUp, &r.pendingTOTP, &r.requireTOTP, &r.epochs.List, &r.epochs.All)
}
