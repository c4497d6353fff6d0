package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// ReminderInterval is the least time between two reminders about one key.
const ReminderInterval = 24 * time.Hour

// SendReminders tells owners and leads about keys that are due soon,
// overdue, or failing verification, at most once a day per key. Each key
// is claimed (its last-reminded time set) before sending, so two runs never
// send twice; a failed send releases the claim so the next run retries.
func (s *Store) SendReminders(ctx context.Context, n keyledger.Notifier, links keyledger.Links) (int, error) {
	now := s.now()
	rows, err := s.pool.Query(ctx, `SELECT k.id::text, k.name, k.project, e.name, o.email, o.name, o.status, k.rotate_by,
			coalesce(k.verify_result, ''), k.verify_message, k.last_reminded_at
		FROM keys k JOIN environments e ON e.id = k.environment_id JOIN users o ON o.id = k.owner_id
		WHERE k.archived_at IS NULL
		  AND (k.rotate_by <= $1 OR k.verify_result = ANY($2))
		  AND (k.last_reminded_at IS NULL OR k.last_reminded_at <= $3)
		ORDER BY k.rotate_by`, now.Add(keyledger.DueSoonWindow), []string{keyledger.VerifyInvalid, keyledger.VerifyForbidden, keyledger.VerifyQuota}, now.Add(-ReminderInterval))
	if err != nil {
		return 0, s.internal(ctx, "find reminders", err)
	}
	type due struct {
		n           keyledger.Notification
		ownerStatus string
		last        *time.Time
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (due, error) {
		var d due
		err := r.Scan(&d.n.KeyID, &d.n.KeyName, &d.n.Project, &d.n.Environment, &d.n.OwnerEmail, &d.n.OwnerName, &d.ownerStatus,
			&d.n.RotateBy, &d.n.Verify, &d.n.VerifyMsg, &d.last)
		return d, err
	})
	if err != nil {
		return 0, s.internal(ctx, "find reminders", err)
	}
	if len(list) == 0 {
		return 0, nil
	}
	// Leads are told; a team without leads hears through its admins.
	leadEmails, err := s.leadEmails(ctx)
	if err != nil {
		return 0, err
	}
	sent := 0
	var errs []error
	for _, d := range list {
		note := d.n
		switch {
		case !now.Before(note.RotateBy):
			note.Kind = keyledger.RemindOverdue
		case keyledger.VerifyFailing(note.Verify):
			note.Kind = keyledger.RemindFailing
		default:
			note.Kind = keyledger.RemindDueSoon
		}
		note.URL = links.Key(note.KeyID)
		note.Recipients = keyRecipients(note.OwnerEmail, d.ownerStatus, leadEmails)
		claimed, err := s.claimReminder(ctx, note.KeyID, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !claimed {
			continue
		}
		if err := n.Notify(ctx, note); err != nil {
			s.log.WarnContext(ctx, "reminder not delivered; will retry", "key_id", note.KeyID, "err", err)
			if _, rerr := s.pool.Exec(ctx, "UPDATE keys SET last_reminded_at = $2 WHERE id = $1", note.KeyID, d.last); rerr != nil {
				errs = append(errs, rerr)
			}
			errs = append(errs, fmt.Errorf("remind about key %s: %w", note.KeyID, err))
			continue
		}
		err = s.tx(ctx, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "UPDATE keys SET last_reminder = $2 WHERE id = $1", note.KeyID, note.Kind); err != nil {
				return err
			}
			return writeAudit(ctx, tx, auditEntry{Actor: keyledger.SystemActor("scheduler"), Action: keyledger.ActionKeyRemind,
				KeyID: note.KeyID, KeyName: note.KeyName, Environment: note.Environment,
				Details: map[string]any{"kind": note.Kind, "recipients": note.Recipients}})
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sent++
	}
	return sent, errors.Join(errs...)
}

func (s *Store) claimReminder(ctx context.Context, id string, now time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE keys SET last_reminded_at = $2 WHERE id = $1
		AND (last_reminded_at IS NULL OR last_reminded_at <= $3)`, id, now, now.Add(-ReminderInterval))
	if err != nil {
		return false, s.internal(ctx, "claim reminder", err)
	}
	return tag.RowsAffected() == 1, nil
}
