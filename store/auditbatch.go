package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
)

// The audit events of concurrent reveals are written by a batcher: each
// reveal still waits until its own row has committed before the value
// leaves, so a reveal is never answered without its event, but reveals
// arriving together share one INSERT and one WAL flush.

// errActorInactive: the actor was not active when the batch was written,
// so their row was left out.
var errActorInactive = errors.New("actor is not active")

// auditBatchInsert writes a batch in one statement, keeping only the rows
// whose actor is active in the statement's snapshot, and returns the
// actors whose rows were written (activity depends on the actor alone).
const auditBatchInsert = `INSERT INTO audit_events
		(actor_id, actor_email, action, key_id, key_name, key_version, subject_id, subject_email, environment, ip, user_agent, reason, details)
	SELECT x.actor_id, x.actor_email, x.action, x.key_id::uuid, x.key_name, x.key_version, x.subject_id, x.subject_email,
		x.environment, x.ip, x.user_agent, x.reason, x.details::jsonb
	FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::bigint[], $8::text[],
		$9::text[], $10::text[], $11::text[], $12::text[], $13::text[]) WITH ORDINALITY
		AS x(actor_id, actor_email, action, key_id, key_name, key_version, subject_id, subject_email, environment, ip, user_agent, reason, details, ord)
	WHERE EXISTS (SELECT 1 FROM users u WHERE u.id = x.actor_id AND u.status = $14)
	ORDER BY x.ord
	RETURNING actor_id`

// auditBatchRows are a batch's rows as the thirteen arrays of
// auditBatchInsert, in auditArgs' order, then the active status ($14).
type auditBatchRows struct {
	actorIDs, subjectIDs                                        []*int64
	keyIDs                                                      []*string
	keyVersions                                                 []*int
	actorEmails, actions, keyNames, subjectEmails, environments []string
	ips, userAgents, reasons, details                           []string
}

func (c *auditBatchRows) add(e auditEntry) error {
	a, err := auditArgs(e)
	if err != nil {
		return err
	}
	c.actorIDs = append(c.actorIDs, a[0].(*int64))
	c.actorEmails = append(c.actorEmails, a[1].(string))
	c.actions = append(c.actions, a[2].(string))
	c.keyIDs = append(c.keyIDs, a[3].(*string))
	c.keyNames = append(c.keyNames, a[4].(string))
	c.keyVersions = append(c.keyVersions, a[5].(*int))
	c.subjectIDs = append(c.subjectIDs, a[6].(*int64))
	c.subjectEmails = append(c.subjectEmails, a[7].(string))
	c.environments = append(c.environments, a[8].(string))
	c.ips = append(c.ips, a[9].(string))
	c.userAgents = append(c.userAgents, a[10].(string))
	c.reasons = append(c.reasons, a[11].(string))
	c.details = append(c.details, string(a[12].([]byte)))
	return nil
}

func (c *auditBatchRows) args() []any {
	return []any{c.actorIDs, c.actorEmails, c.actions, c.keyIDs, c.keyNames, c.keyVersions, c.subjectIDs, c.subjectEmails,
		c.environments, c.ips, c.userAgents, c.reasons, c.details, string(keyledger.UserActive)}
}

// auditSingleInsert is auditBatchInsert for one row.
const auditSingleInsert = `INSERT INTO audit_events
		(actor_id, actor_email, action, key_id, key_name, key_version, subject_id, subject_email, environment, ip, user_agent, reason, details)
	SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13
	WHERE EXISTS (SELECT 1 FROM users WHERE id = $1 AND status = $14)
	RETURNING actor_id`

// writeAuditBatch writes a batch of audit events in one statement, so in
// one transaction: all rows of active actors commit, or none does.
func writeAuditBatch(pool *pgxpool.Pool, health *writeHealth) func(context.Context, []*batchCall[auditEntry, struct{}]) {
	return func(ctx context.Context, batch []*batchCall[auditEntry, struct{}]) {
		var cols auditBatchRows
		var err error
		for _, p := range batch {
			if err = cols.add(p.in); err != nil {
				break
			}
		}
		written := map[int64]bool{}
		if err == nil {
			err = func() error {
				q, args := auditBatchInsert, cols.args()
				if len(batch) == 1 {
					// A batch of one takes the plain statement, whose plan
					// is cached (see revealSelect).
					q = auditSingleInsert
					if args, err = auditArgs(batch[0].in); err != nil {
						return err
					}
					args = append(args, string(keyledger.UserActive))
				}
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
