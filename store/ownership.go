package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// StaleAfter is how long without a reveal or export makes a key a
// candidate to retire.
const StaleAfter = 180 * 24 * time.Hour

// Dashboard is the ownership audit for leads.
type Dashboard struct {
	Environments []string
	Owners       []keyledger.OwnerKeys
	Total        int
	Orphaned     int
	NeverChecked int
	Failing      int
	Overdue      int
	DueSoon      int
	Stale        int
	// Compromised keys have an open leak incident; MedianToRevoke is the
	// median time from a leak report to the version's revocation, over
	// the Revoked incidents that reached it.
	Compromised    int
	MedianToRevoke time.Duration
	Revoked        int
	// Inventory counts the connected providers' keys per state; nil for
	// an actor who may not see the inventory.
	Inventory map[keyledger.InventoryState]int
}

// Dashboard computes the ownership audit in one pass over the live keys,
// grouped by owner and environment (integers, so no text sorting of ten
// thousand rows), joined to the few owners afterwards.
//
// It is the same for every lead, so concurrent requests share one
// computation (coalescer): a room of leads refreshing it costs about one
// scan, and each still sees every change made before they asked.
func (s *Store) Dashboard(ctx context.Context, actor keyledger.Actor) (Dashboard, error) {
	if err := keyledger.CanLead(actor.User); err != nil {
		return Dashboard{}, err
	}
	// It shows keys, owners and leaks (the list epoch), reveals and the
	// provider inventory (the activity epoch), and what is due (the time).
	d, err := keptOr(ctx, s.keptDashboards, &s.dashboards, actor.Epochs.All, s.now(), s.dashboard)
	if err == nil && keyledger.CanViewInventory(actor.User) != nil {
		d.Inventory = nil
	}
	return d, err
}

func (s *Store) dashboard(ctx context.Context) (Dashboard, error) {
	var d Dashboard
	envs, err := s.environments(ctx)
	if err != nil {
		return d, err
	}
	envNames := map[int64]string{}
	for _, e := range envs {
		d.Environments = append(d.Environments, e.Name)
		envNames[e.ID] = e.Name
	}
	now := s.now()
	rows, err := s.pool.Query(ctx, `SELECT o.id, o.email, o.name, o.status = $5, c.environment_id,
			c.total, c.never_checked, c.failing, c.overdue, c.due_soon, c.stale
		FROM (SELECT k.owner_id, k.environment_id, count(*) AS total,
				count(*) FILTER (WHERE k.last_verified_at IS NULL) AS never_checked,
				count(*) FILTER (WHERE k.verify_result = ANY($3)) AS failing,
				count(*) FILTER (WHERE k.rotate_by <= $1) AS overdue,
				count(*) FILTER (WHERE k.rotate_by > $1 AND k.rotate_by <= $4) AS due_soon,
				count(*) FILTER (WHERE k.created_at <= $2 AND used.key_id IS NULL) AS stale
			FROM keys k
			-- One index probe per old key (LIMIT 1), not a hash of every
			-- reveal of the last 180 days, which the planner would pick for
			-- a NOT EXISTS over ten thousand keys and which grows with use.
			LEFT JOIN LATERAL (SELECT a.key_id FROM audit_events a WHERE k.created_at <= $2 AND a.key_id = k.id
				AND a.at > $2 AND a.action = ANY($6) LIMIT 1) used ON true
			WHERE k.archived_at IS NULL GROUP BY k.owner_id, k.environment_id) c
		JOIN users o ON o.id = c.owner_id ORDER BY o.email, c.environment_id`,
		now, now.Add(-StaleAfter), failingResults(), now.Add(keyledger.DueSoonWindow), string(keyledger.UserActive), seenActions)
	if err != nil {
		return d, s.internal(ctx, "dashboard", err)
	}
	defer rows.Close()
	byEmail := map[string]*keyledger.OwnerKeys{}
	for rows.Next() {
		var id, envID int64
		var email, name string
		var active bool
		var n, never, failing, overdue, dueSoon, stale int
		if err := rows.Scan(&id, &email, &name, &active, &envID, &n, &never, &failing, &overdue, &dueSoon, &stale); err != nil {
			return d, s.internal(ctx, "dashboard", err)
		}
		r, ok := byEmail[email]
		if !ok {
			d.Owners = append(d.Owners, keyledger.OwnerKeys{ID: id, Email: email, Name: name, Active: active, Counts: map[string]int{}})
			r = &d.Owners[len(d.Owners)-1]
			byEmail = reindex(d.Owners)
		}
		r.Counts[envNames[envID]] += n
		r.Total += n
		d.Total += n
		if !active {
			d.Orphaned += n
		}
		d.NeverChecked += never
		d.Failing += failing
		d.Overdue += overdue
		d.DueSoon += dueSoon
		d.Stale += stale
	}
	if err := rows.Err(); err != nil {
		return d, s.internal(ctx, "dashboard", err)
	}
	if d.Compromised, d.MedianToRevoke, d.Revoked, err = s.leakFigures(ctx); err != nil {
		return d, err
	}
	d.Inventory, err = s.inventoryCounts(ctx, inventoryCountsWhere, inventoryArgs(now))
	if err != nil {
		return d, s.internal(ctx, "count inventory", err)
	}
	return d, nil
}

func reindex(rows []keyledger.OwnerKeys) map[string]*keyledger.OwnerKeys {
	m := make(map[string]*keyledger.OwnerKeys, len(rows))
	for i := range rows {
		m[rows[i].Email] = &rows[i]
	}
	return m
}

func failingResults() []string {
	return []string{keyledger.VerifyInvalid, keyledger.VerifyForbidden, keyledger.VerifyQuota}
}

// UserSeen lists what a person has seen: reveals and exports, newest first.
// Leads and admins, or the person themselves.
func (s *Store) UserSeen(ctx context.Context, actor keyledger.Actor, userID int64, limit int) ([]keyledger.SeenRecord, error) {
	if actor.User == nil || (actor.User.ID != userID && keyledger.CanLead(actor.User) != nil) {
		return nil, keyledger.ErrNotFound("User")
	}
	if limit <= 0 || limit > 1000 {
		limit = 200
	}
	rows, err := s.pool.Query(ctx, `SELECT a.at, a.action, a.key_id::text, a.key_name, a.environment, coalesce(a.key_version, 0), a.reason,
			k.archived_at IS NULL AND k.current_version = a.key_version, k.archived_at IS NOT NULL
		FROM audit_events a JOIN keys k ON k.id = a.key_id
		WHERE a.actor_id = $1 AND a.action = ANY($3) AND a.key_id IS NOT NULL
		ORDER BY a.at DESC, a.id DESC LIMIT $2`, userID, limit, seenActions)
	if err != nil {
		return nil, s.internal(ctx, "what has this person seen", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyledger.SeenRecord, error) {
		var x keyledger.SeenRecord
		err := r.Scan(&x.Time, &x.Action, &x.KeyID, &x.KeyName, &x.Environment, &x.Version, &x.Reason, &x.Current, &x.Archived)
		return x, err
	})
	if err != nil {
		return nil, s.internal(ctx, "what has this person seen", err)
	}
	return out, nil
}

// seenActions are the audit actions by which a person saw a key's value:
// what an offboarding checklist asks to rotate, and what keeps a key from
// being stale.
var seenActions = []string{keyledger.ActionKeyReveal, keyledger.ActionKeyExport}

// ReassignKeys moves live keys owned by fromUserID to toEmail: the given
// keys, or all of them when keyIDs is empty. Leads and admins; audited per
// key; offboarding items resolve in the same transaction.
func (s *Store) ReassignKeys(ctx context.Context, actor keyledger.Actor, fromUserID int64, toEmail string, keyIDs []string) (int, error) {
	if err := noToken(actor); err != nil {
		return 0, err
	}
	toEmail = keyledger.NormalizeEmail(toEmail)
	for _, id := range keyIDs {
		if !isUUID(id) {
			return 0, keyledger.ErrNotFound("Key")
		}
	}
	n := 0
	err := s.write(ctx, func(tx pgx.Tx, t *touched) error {
		actor, err := freshActorMay(ctx, tx, actor, keyledger.CanLead)
		if err != nil {
			return err
		}
		if n, err = reassignKeys(ctx, tx, actor, s.now(), fromUserID, toEmail, keyIDs); err != nil {
			return err
		}
		*t = touchedKeys(actor, s.now())
		return nil
	})
	if err != nil {
		return 0, s.internal(ctx, "reassign keys", err)
	}
	return n, nil
}

// reassignKeys is ReassignKeys inside the caller's transaction, for an
// actor already re-read and allowed to lead.
func reassignKeys(ctx context.Context, tx pgx.Tx, actor keyledger.Actor, now time.Time, fromUserID int64, toEmail string, keyIDs []string) (int, error) {
	if toEmail == "" {
		return 0, &keyledger.Error{Code: keyledger.EINVALID, Message: "Choose the new owner.", Fields: map[string]string{"owner": "Choose the new owner."}}
	}
	var toID int64
	var toStatus string
	err := tx.QueryRow(ctx, "SELECT id, status FROM users WHERE email = $1", toEmail).Scan(&toID, &toStatus)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, &keyledger.Error{Code: keyledger.EINVALID, Message: "Choose the new owner.", Fields: map[string]string{"owner": fmt.Sprintf("There is no user %q.", toEmail)}}
	}
	if err != nil {
		return 0, err
	}
	if toStatus != string(keyledger.UserActive) {
		return 0, &keyledger.Error{Code: keyledger.EINVALID, Message: "Choose an active user.", Fields: map[string]string{"owner": toEmail + " is not active and cannot own keys."}}
	}
	if toID == fromUserID {
		return 0, &keyledger.Error{Code: keyledger.EINVALID, Message: "Choose someone else.", Fields: map[string]string{"owner": "That is the current owner."}}
	}
	var fromEmail string
	if err := tx.QueryRow(ctx, "SELECT email FROM users WHERE id = $1", fromUserID).Scan(&fromEmail); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return 0, keyledger.ErrNotFound("User")
		}
		return 0, err
	}
	q := `UPDATE keys k SET owner_id = $2, updated_by = $3, updated_at = $4 FROM environments e
		WHERE e.id = k.environment_id AND k.owner_id = $1 AND k.archived_at IS NULL`
	args := []any{fromUserID, toID, actor.User.ID, now}
	if len(keyIDs) > 0 {
		q += " AND k.id = ANY($5)"
		args = append(args, keyIDs)
	}
	rows, err := tx.Query(ctx, q+" RETURNING k.id::text, k.name, e.name", args...)
	if err != nil {
		return 0, err
	}
	type moved struct{ id, name, env string }
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (moved, error) {
		var m moved
		err := r.Scan(&m.id, &m.name, &m.env)
		return m, err
	})
	if err != nil {
		return 0, err
	}
	if len(keyIDs) > 0 && len(list) != len(keyIDs) {
		return 0, keyledger.Errorf(keyledger.ECONFLICT, "Some of these keys are no longer owned by %s (or were archived); reload the page.", fromEmail)
	}
	for _, m := range list {
		if err := writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionKeyReassign, KeyID: m.id, KeyName: m.name, Environment: m.env,
			SubjectID: toID, SubjectEmail: toEmail, Details: map[string]any{"from": fromEmail, "to": toEmail}}); err != nil {
			return 0, err
		}
	}
	return len(list), nil
}
