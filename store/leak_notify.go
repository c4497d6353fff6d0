package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
)

// LeakAlertsArgs sends the pending leak notifications (SendLeakAlerts).
// Opening an incident enqueues one in its own transaction, so the owner
// and leads hear within seconds while the report does not wait on SMTP;
// a periodic run retries sends that failed.
type LeakAlertsArgs struct{}

// Kind names the job.
func (LeakAlertsArgs) Kind() string { return "keyledger.leak_alerts" }

// newJobInserter is an insert-only River client: it puts jobs in River's
// table inside the store's transactions; the workers of `serve` run them.
func newJobInserter(s *Store) (*river.Client[pgx.Tx], error) {
	c, err := river.NewClient(riverpgxv5.New(s.pool), &river.Config{Logger: s.log})
	if err != nil {
		return nil, fmt.Errorf("job inserter: %w", err)
	}
	return c, nil
}

func (s *Store) enqueueLeakAlerts(ctx context.Context, tx pgx.Tx) error {
	if _, err := s.jobs.InsertTx(ctx, tx, LeakAlertsArgs{}, nil); err != nil {
		return fmt.Errorf("queue leak alert: %w", err)
	}
	return nil
}

// SendLeakAlerts tells the key's owner (while active) and the leads of
// each incident not yet notified, once. Each is claimed before sending
// (two replicas never send it twice); a failed send releases the claim
// for the next run. The send is put on the incident's timeline and
// audited.
func (s *Store) SendLeakAlerts(ctx context.Context, n keyledger.Notifier, links keyledger.Links) (int, error) {
	rows, err := s.pool.Query(ctx, `SELECT i.id, k.id::text, k.name, k.project, e.name, o.email, o.name, o.status, i.version, i.source,
			coalesce(r.email, ''), i.location
		FROM leak_incidents i JOIN keys k ON k.id = i.key_id JOIN environments e ON e.id = k.environment_id JOIN users o ON o.id = k.owner_id
		LEFT JOIN users r ON r.id = i.reported_by
		WHERE i.notified_at IS NULL AND i.closed_at IS NULL ORDER BY i.id LIMIT 500`)
	if err != nil {
		return 0, s.internal(ctx, "find leak alerts", err)
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (pendingAlert, error) {
		var p pendingAlert
		err := r.Scan(&p.id, &p.n.KeyID, &p.n.KeyName, &p.n.Project, &p.n.Environment, &p.n.OwnerEmail, &p.n.OwnerName, &p.ownerStatus,
			&p.n.LeakVersion, &p.n.LeakSource, &p.n.AttemptedBy, &p.n.LeakWhere)
		return p, err
	})
	if err != nil {
		return 0, s.internal(ctx, "find leak alerts", err)
	}
	return s.sendAlerts(ctx, n, list, alertSend{
		what: "leak alert",
		prepare: func(p pendingAlert, note *keyledger.Notification) {
			note.Kind = keyledger.AlertLeak
			note.URL = links.Leak(p.id)
		},
		claim: "UPDATE leak_incidents SET notified_at = $2 WHERE id = $1 AND notified_at IS NULL",
		release: func(p pendingAlert, _ keyledger.Notification) (string, []any) {
			return "UPDATE leak_incidents SET notified_at = NULL WHERE id = $1", []any{p.id}
		},
		sent: func(ctx context.Context, p pendingAlert, note keyledger.Notification) error {
			return s.leakNotified(ctx, p.id, note)
		},
	})
}

// leakNotified puts a sent notification on the timeline and in the log.
func (s *Store) leakNotified(ctx context.Context, id int64, note keyledger.Notification) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		sys := keyledger.SystemActor("notifier")
		now := s.now()
		if err := addLeakStep(ctx, tx, id, now, keyledger.LeakStepNotified, sys, "",
			fmt.Sprintf("Told the owner and the leads (%d people).", len(note.Recipients))); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Actor: sys, Action: keyledger.ActionLeakNotify, KeyID: note.KeyID, KeyName: note.KeyName,
			KeyVersion: note.LeakVersion, Environment: note.Environment, Details: map[string]any{"incident": id, "recipients": len(note.Recipients)}})
	})
}
