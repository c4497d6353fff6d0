package store

import (
	"context"
	"errors"
	"fmt"
	"github.com/keyledger/keyledger"
	"strconv"

	"github.com/jackc/pgx/v5/pgxpool"
)

// The audit events of concurrent reveals are written by a batcher: each
// reveal still waits until its own row has committed before the value
// leaves, so a reveal is never answered without its event, but reveals
// arriving together share one INSERT and one WAL flush.

// errActorInactive: the actor was not active when the batch was written,
// so their row was left out.
var errActorInactive = errors.New("actor is not active")

// auditStatusParam is the parameter after the columns' own: the status an
// actor must have for their rows to be written (keyledger.UserActive).
var auditStatusParam = "$" + strconv.Itoa(len(auditInsertColumns)+1)

// auditBatchInsert writes a batch in one statement, keeping only the rows
// whose actor is active in the statement's snapshot, and returns the
// actors whose rows were written (activity depends on the actor alone).
var auditBatchInsert = auditInsertHead + `
	SELECT ` + auditInsertList(func(_ int, name, _, cast string) string { return "x." + name + cast }) + `
	FROM unnest(` + auditInsertList(func(i int, _, array, _ string) string { return "$" + strconv.Itoa(i+1) + "::" + array }) + `) WITH ORDINALITY
		AS x(` + auditInsertList(func(_ int, name, _, _ string) string { return name }) + `, ord)
	WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = x.actor_id AND u.status = ` + auditStatusParam + `)
	ORDER BY x.ord
	RETURNING actor_id`

// auditSingleInsert is auditBatchInsert for one row ($1 is actor_id).
var auditSingleInsert = auditInsertHead + `
	SELECT ` + auditInsertList(auditParam) + `
	WHERE EXISTS (SELECT 1 FROM users WHERE id = $1 AND status = ` + auditStatusParam + `)
	RETURNING actor_id`

// writeAuditBatch writes a batch of audit events in one statement, so in
// one transaction: all rows of active actors commit, or none does.
func writeAuditBatch(pool *pgxpool.Pool, health *writeHealth) func(context.Context, []*batchCall[auditEntry, struct{}]) {
	return func(ctx context.Context, batch []*batchCall[auditEntry, struct{}]) {
		rows := make([]auditRow, len(batch))
		var err error
		for i, p := range batch {
			if rows[i], err = auditRowOf(p.in); err != nil {
				break
			}
		}
		written := map[int64]bool{}
		if err == nil {
			err = func() error {
				q, args := auditBatchInsert, auditBatchArgs(rows)
				if len(batch) == 1 {
					// A batch of one takes the plain statement, whose plan
					// is cached (see revealSelect).
					q, args = auditSingleInsert, rows[0].args()
				}
				args = append(args, string(keyledger.UserActive))
				rows, err := pool.Query(ctx, q, args...)
				if err != nil {
					return err
				}
				defer rows.Close()
				for rows.Next() {
					var id int64
					if err := rows.Scan(&id); err != nil {
						return err
					}
					written[id] = true
				}
				return rows.Err()
			}()
		}
		if err == nil {
			health.succeeded()
		}
		for _, p := range batch {
			switch {
			case err != nil:
				p.err = fmt.Errorf("write %d audit events: %w", len(batch), err)
			case !written[p.in.Actor.User.ID]:
				p.err = errActorInactive
			}
		}
	}
}
