package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// "Account under attack" alerts. admit raises one, in the transaction that
// counts the failure crossing ThrottleLimits.AlertAfter, at most once per
// account per AccountWindow (the row's raised_at is the claim), and
// audits it there; SendAccountAlerts, run by a background job, tells the
// admins. Only existing accounts raise alerts: spraying made-up addresses
// must not turn into a flood of email.

// raiseAlert claims the alert for email inside tx and audits it; a claim
// already made within the window makes this a no-op.
func (s *Store) raiseAlert(ctx context.Context, tx pgx.Tx, email string, subjectID int64, now time.Time) error {
	l := s.throttle
	var failures, addresses int
	err := tx.QueryRow(ctx, `INSERT INTO account_alerts (email, raised_at, failures, addresses)
		SELECT $1, $2, count(*), count(DISTINCT ip) FROM login_failures WHERE email = $1 AND at > $3
		ON CONFLICT (email) DO UPDATE SET raised_at = EXCLUDED.raised_at, failures = EXCLUDED.failures,
			addresses = EXCLUDED.addresses, sent_at = NULL
		WHERE account_alerts.raised_at <= $3
		RETURNING failures, addresses`, email, now, now.Add(-l.AccountWindow)).Scan(&failures, &addresses)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("raise account alert: %w", err)
	}
	return writeAudit(ctx, tx, auditEntry{Actor: keyledger.SystemActor("keyledger"), Action: keyledger.ActionAccountAttack,
		SubjectID: subjectID, SubjectEmail: email,
		Details: map[string]any{"failures": failures, "addresses": addresses, "window_h": int(l.AccountWindow / time.Hour)}})
}

// SendAccountAlerts tells the active admins about accounts under attack
// that they have not heard of yet. Each alert is claimed before sending,
// so two replicas never send it twice; a failed send releases the claim
// for the next run. It returns how many alerts went out.
func (s *Store) SendAccountAlerts(ctx context.Context, n keyledger.Notifier, links keyledger.Links) (int, error) {
	rows, err := s.pool.Query(ctx, "SELECT email FROM users WHERE status = $1 AND role = 'admin' ORDER BY email", string(keyledger.UserActive))
	if err != nil {
		return 0, s.internal(ctx, "account alerts: find admins", err)
	}
	admins, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return 0, s.internal(ctx, "account alerts: find admins", err)
	}
	sent := 0
	var errs []error
	for {
		var note keyledger.Notification
		var raised time.Time
		now := s.now()
		err := s.pool.QueryRow(ctx, `UPDATE account_alerts SET sent_at = $1
			WHERE email = (SELECT email FROM account_alerts WHERE sent_at IS NULL ORDER BY raised_at LIMIT 1 FOR UPDATE SKIP LOCKED)
			RETURNING email, failures, addresses, raised_at`, now).Scan(&note.Account, &note.Failures, &note.Addresses, &raised)
		if errors.Is(err, pgx.ErrNoRows) {
			break
		}
		if err != nil {
			return sent, s.internal(ctx, "account alerts: claim", err)
		}
		note.Kind = keyledger.AlertAccountAttack
		note.Window = s.throttle.AccountWindow
		note.Recipients = admins
		note.URL = links.FailedSignIns()
		if err := n.Notify(ctx, note); err != nil {
			s.log.WarnContext(ctx, "account alert not delivered; will retry", "account", note.Account, "err", err)
			if _, rerr := s.pool.Exec(ctx, "UPDATE account_alerts SET sent_at = NULL WHERE email = $1 AND raised_at = $2", note.Account, raised); rerr != nil {
				errs = append(errs, rerr)
			}
			errs = append(errs, fmt.Errorf("alert about %s: %w", note.Account, err))
			// Retry at the next run rather than spin on a channel that is down.
			break
		}
		sent++
	}
	return sent, errors.Join(errs...)
}

// pendingAlert is one alert row waiting to be sent: its id, the
// notification as read, and the key owner's status (an inactive owner is
// not told).
type pendingAlert struct {
	id          int64
	n           keyledger.Notification
	ownerStatus string
}

// alertSend is what differs between the kinds of alert that sendAlerts
// sends: how a notification is completed, the statement that claims a
// row ($1 its id, $2 now; it must change nothing when the row is already
// claimed), the one that releases the claim after a failed send, and an
// optional step after a send.
type alertSend struct {
	what    string // "leak alert", in errors
	prepare func(p pendingAlert, note *keyledger.Notification)
	claim   string
	release func(p pendingAlert, note keyledger.Notification) (string, []any)
	sent    func(ctx context.Context, p pendingAlert, note keyledger.Notification) error
}

// sendAlerts tells each pending alert's key owner (while active) and the
// leads (the admins when there are no leads), once: each row is claimed
// before sending, so two replicas never send it twice, and a failed send
// releases the claim for the next run.
func (s *Store) sendAlerts(ctx context.Context, n keyledger.Notifier, list []pendingAlert, a alertSend) (int, error) {
	if len(list) == 0 {
		return 0, nil
	}
	leads, err := s.leadEmails(ctx)
	if err != nil {
		return 0, err
	}
	sent := 0
	var errs []error
	for _, p := range list {
		note := p.n
		a.prepare(p, &note)
		note.Recipients = keyRecipients(note.OwnerEmail, p.ownerStatus, leads)
		tag, err := s.pool.Exec(ctx, a.claim, p.id, s.now())
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if tag.RowsAffected() == 0 {
			continue // another replica claimed it
		}
		if err := n.Notify(ctx, note); err != nil {
			sql, args := a.release(p, note)
			_, _ = s.pool.Exec(context.WithoutCancel(ctx), sql, args...)
			errs = append(errs, fmt.Errorf("%s %d: %w", a.what, p.id, err))
			continue
		}
		sent++
		if a.sent != nil {
			if err := a.sent(ctx, p, note); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return sent, s.internal(ctx, "send "+a.what+"s", errors.Join(errs...))
	}
	return sent, nil
}
