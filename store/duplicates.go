package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// duplicateValue looks for a live key holding the value whose fingerprint
// is fp (any version not destroyed: an old version in its grace period is
// a live secret too), other than except. When there is one, it records the
// hit inside tx (audit event on that key; an alert for its owner and the
// leads when the actor may not reveal it) and returns the conflict to
// answer once tx has committed. via is "register" or "rotate"; env is the
// environment the actor was storing into.
//
// A value held by someone who may not reveal the key is a leak signal:
// an incident opens on that key version (or the open one is joined), with
// the registrant as its reporter. They are not told (the answer stays the
// same) and may not see the incident (CanViewLeak).
func (s *Store) duplicateValue(ctx context.Context, tx pgx.Tx, actor keyledger.Actor, fp []byte, env, via string, now time.Time) (*keyledger.Error, error) {
	var keyID, name, project string
	var ownerID, envID int64
	var version int
	var current bool
	err := tx.QueryRow(ctx, `SELECT k.id::text, k.name, k.project, k.owner_id, k.environment_id, v.version, v.version = k.current_version
		FROM key_versions v JOIN keys k ON k.id = v.key_id
		WHERE v.fingerprint = $1 AND v.destroyed_at IS NULL AND k.archived_at IS NULL
		ORDER BY k.created_at, v.version LIMIT 1`, fp).Scan(&keyID, &name, &project, &ownerID, &envID, &version, &current)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look for a stored value: %w", err)
	}
	keyEnv, err := scanEnv(tx.QueryRow(ctx, "SELECT "+envColumns+" FROM environments WHERE id = $1", envID))
	if err != nil {
		return nil, fmt.Errorf("look for a stored value: %w", err)
	}
	mayReveal := keyledger.CanReveal(actor.User, keyEnv, ownerID) == nil
	who := actorEmail(actor)
	if err := writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionKeyDuplicateValue, KeyID: keyID, KeyName: name,
		Environment: keyEnv.Name, Details: map[string]any{"attempted_by": who, "environment": env, "via": via, "may_reveal": mayReveal}}); err != nil {
		return nil, err
	}
	if !mayReveal {
		if _, err := tx.Exec(ctx, `INSERT INTO value_alerts (key_id, attempted_by_email, environment, created_at, last_at)
			VALUES ($1, $2, $3, $4, $4)
			ON CONFLICT (key_id, attempted_by_email) WHERE sent_at IS NULL
			DO UPDATE SET attempts = value_alerts.attempts + 1, last_at = EXCLUDED.last_at, environment = EXCLUDED.environment`,
			keyID, who, env, now); err != nil {
			return nil, fmt.Errorf("record value alert: %w", err)
		}
		where := "Registered as a new key in " + env + "."
		if via == "rotate" {
			where = "Offered as a rotation of a key in " + env + "."
		}
		m := leakMatch{keyID: keyID, name: name, env: keyEnv.Name, version: version, current: current}
		if _, _, err := s.openLeakIncident(ctx, tx, actor, m, keyledger.LeakSourceDuplicate, where, now); err != nil {
			return nil, err
		}
	}
	return keyledger.DuplicateValue(mayReveal, name, project, keyEnv.Name, via == "rotate"), nil
}

// actorEmail names who acts, for audit details and alerts.
func actorEmail(a keyledger.Actor) string {
	if a.User != nil {
		return a.User.Email
	}
	return a.Name
}

// SendValueAlerts tells each pending alert's key owner (when active) and
// the leads (the admins when there are no leads) that the key's value was
// offered by someone outside its reveal policy. Each alert is claimed
// before sending; a failed send releases it for the next run.
func (s *Store) SendValueAlerts(ctx context.Context, n keyledger.Notifier, links keyledger.Links) (int, error) {
	rows, err := s.pool.Query(ctx, `SELECT a.id, k.id::text, k.name, k.project, e.name, o.email, o.name, o.status, a.attempted_by_email, a.environment, a.attempts
		FROM value_alerts a JOIN keys k ON k.id = a.key_id JOIN environments e ON e.id = k.environment_id JOIN users o ON o.id = k.owner_id
		WHERE a.sent_at IS NULL ORDER BY a.id LIMIT 500`)
	if err != nil {
		return 0, s.internal(ctx, "find value alerts", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pendingAlert, error) {
		var p pendingAlert
		err := r.Scan(&p.id, &p.n.KeyID, &p.n.KeyName, &p.n.Project, &p.n.Environment, &p.n.OwnerEmail, &p.n.OwnerName, &p.ownerStatus,
			&p.n.AttemptedBy, &p.n.AttemptEnvironment, &p.n.Attempts)
		return p, err
	})
	if err != nil {
		return 0, s.internal(ctx, "find value alerts", err)
	}
	return s.sendAlerts(ctx, n, list, alertSend{
		what: "value alert",
		prepare: func(_ pendingAlert, note *keyledger.Notification) {
			note.Kind = keyledger.AlertDuplicateValue
			note.URL = links.Key(note.KeyID)
		},
		claim: "UPDATE value_alerts SET sent_at = $2 WHERE id = $1 AND sent_at IS NULL",
		// Released for the next run, unless a new try opened a fresh
		// pending alert meanwhile (then that one carries the news).
		release: func(p pendingAlert, note keyledger.Notification) (string, []any) {
			return `UPDATE value_alerts SET sent_at = NULL WHERE id = $1
				AND NOT EXISTS (SELECT 1 FROM value_alerts b WHERE b.key_id = $2 AND b.attempted_by_email = $3 AND b.sent_at IS NULL)`,
				[]any{p.id, note.KeyID, note.AttemptedBy}
		},
	})
}

// leadEmails lists who hears about keys beyond their owner: the active
// leads, or the active admins when a team has no leads.
// keyRecipients are who hears about a key: its owner while active, and the
// leads (see leadEmails), each once.
func keyRecipients(owner, ownerStatus string, leads []string) []string {
	var to []string
	if ownerStatus == string(keyledger.UserActive) {
		to = append(to, owner)
	}
	for _, l := range leads {
		if l != owner {
			to = append(to, l)
		}
	}
	return to
}

func (s *Store) leadEmails(ctx context.Context) ([]string, error) {
	leads, err := s.pool.Query(ctx, `SELECT email FROM users WHERE status = $1 AND (role = 'lead'
		OR (role = 'admin' AND NOT EXISTS (SELECT 1 FROM users WHERE status = $1 AND role = 'lead'))) ORDER BY email`, string(keyledger.UserActive))
	if err != nil {
		return nil, s.internal(ctx, "find leads", err)
	}
	out, err := pgx.CollectRows(leads, pgx.RowTo[string])
	if err != nil {
		return nil, s.internal(ctx, "find leads", err)
	}
	return out, nil
}
