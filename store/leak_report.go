package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
)

// leakReportLock is the advisory-lock class that serialises one person's
// reports, so that two at once cannot both pass the rate limit.
const leakReportLock = int32(0x6c65616b) // "leak"

// ReportLeak answers "is this value one of our keys?" for someone who
// found it out in the open. The value is fingerprinted with the keyed HMAC
// the store keeps for duplicate detection and then dropped: it is never
// stored, logged, audited or returned. A match against any live version
// of any key opens an incident on that version (or joins the open one);
// no match keeps nothing but the audit event saying a check was made.
//
// The answer is an oracle, so reports are limited per person
// (LeakReportLimit per LeakReportWindow, refused with ETOOMANY and the
// wait), and every check is audited.
func (s *Store) ReportLeak(ctx context.Context, actor keyledger.Actor, in keyledger.LeakReportInput) (keyledger.LeakReport, error) {
	if err := keyledger.CheckScope(actor, keyledger.ScopeWrite); err != nil {
		return keyledger.LeakReport{}, err
	}
	in, err := keyledger.ValidateLeakReport(in)
	if err != nil {
		return keyledger.LeakReport{}, err
	}
	fp := crypto.Fingerprint(s.fingerprintKey, []byte(keyledger.ValueIdentity(in.Value)))
	in.Value = "" // from here on only the fingerprint exists
	var out keyledger.LeakReport
	err = s.tx(ctx, func(tx pgx.Tx) error {
		out = keyledger.LeakReport{}
		a, err := freshActorMay(ctx, tx, actor, keyledger.CanReportLeak)
		if err != nil {
			return err
		}
		now := s.now()
		if err := admitLeakReport(ctx, tx, a.User.ID, now); err != nil {
			return err
		}
		m, err := matchLeak(ctx, tx, fp)
		if err != nil {
			return err
		}
		if m == nil {
			return writeAudit(ctx, tx, auditEntry{Actor: a, Action: keyledger.ActionLeakReport, Details: map[string]any{"matched": false}})
		}
		id, joined, err := s.openLeakIncident(ctx, tx, a, *m, keyledger.LeakSourceReport, in.Where, now)
		if err != nil {
			return err
		}
		out = keyledger.LeakReport{Matched: true, IncidentID: id, Joined: joined, KeyID: m.keyID, KeyName: m.name, Version: m.version, Current: m.current}
		return writeAudit(ctx, tx, auditEntry{Actor: a, Action: keyledger.ActionLeakReport, KeyID: m.keyID, KeyName: m.name, KeyVersion: m.version,
			Environment: m.env, Details: map[string]any{"matched": true, "incident": id, "joined": joined}})
	})
	if err != nil {
		return keyledger.LeakReport{}, s.internal(ctx, "report leak", err)
	}
	return out, nil
}

// admitLeakReport counts the person's reports in the window and records
// this one, or refuses it with the wait until the oldest leaves the
// window. The advisory lock (held to the end of tx) makes the count and
// the insert one step per person.
func admitLeakReport(ctx context.Context, tx pgx.Tx, userID int64, now time.Time) error {
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", leakReportLock, int32(userID)); err != nil {
		return fmt.Errorf("lock reports: %w", err)
	}
	since := now.Add(-keyledger.LeakReportWindow)
	var n int
	var oldest *time.Time
	if err := tx.QueryRow(ctx, "SELECT count(*), min(at) FROM leak_report_attempts WHERE user_id = $1 AND at > $2", userID, since).Scan(&n, &oldest); err != nil {
		return fmt.Errorf("count reports: %w", err)
	}
	if n >= keyledger.LeakReportLimit && oldest != nil {
		wait := oldest.Add(keyledger.LeakReportWindow).Sub(now)
		return &keyledger.Error{Code: keyledger.ETOOMANY, RetryAfter: max(wait, time.Second),
			Message: fmt.Sprintf("You have reported %d values in the last hour, the most allowed. Try again in %d minutes; if this is an emergency, tell a lead directly.",
				n, int(wait.Round(time.Minute)/time.Minute)+1)}
	}
	if _, err := tx.Exec(ctx, "DELETE FROM leak_report_attempts WHERE user_id = $1 AND at <= $2", userID, since); err != nil {
		return fmt.Errorf("prune reports: %w", err)
	}
	if _, err := tx.Exec(ctx, "INSERT INTO leak_report_attempts (user_id, at) VALUES ($1, $2)", userID, now); err != nil {
		return fmt.Errorf("record report: %w", err)
	}
	return nil
}

// leakMatch is the live key version a fingerprint belongs to.
type leakMatch struct {
	keyID, name, env string
	version          int
	current          bool
}

// matchLeak finds the live version (not destroyed, key not archived)
// whose fingerprint is fp, as CheckLeaks and duplicate detection match.
func matchLeak(ctx context.Context, tx pgx.Tx, fp []byte) (*leakMatch, error) {
	var m leakMatch
	err := tx.QueryRow(ctx, `SELECT k.id::text, k.name, e.name, v.version, v.version = k.current_version
		FROM key_versions v JOIN keys k ON k.id = v.key_id JOIN environments e ON e.id = k.environment_id
		WHERE v.fingerprint = $1 AND v.destroyed_at IS NULL AND k.archived_at IS NULL
		ORDER BY k.created_at, v.version LIMIT 1`, fp).Scan(&m.keyID, &m.name, &m.env, &m.version, &m.current)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("match reported value: %w", err)
	}
	return &m, nil
}

// openLeakIncident opens an incident on m's version, or joins the open
// one (one per version: the partial unique index), and puts the report on
// its timeline. A version that is no longer current is rotated away from
// the start. A new incident is audited and its notification queued in tx,
// so the owner and leads hear of it as soon as it commits.
func (s *Store) openLeakIncident(ctx context.Context, tx pgx.Tx, a keyledger.Actor, m leakMatch, source, where string, now time.Time) (int64, bool, error) {
	var id int64
	joined := false
	err := tx.QueryRow(ctx, `INSERT INTO leak_incidents (key_id, version, source, reported_by, location, opened_at, rotated_at)
		VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $7 THEN NULL ELSE $6::timestamptz END)
		ON CONFLICT (key_id, version) WHERE closed_at IS NULL DO NOTHING RETURNING id`,
		m.keyID, m.version, source, a.User.ID, where, now, m.current).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		joined = true
		err = tx.QueryRow(ctx, "SELECT id FROM leak_incidents WHERE key_id = $1 AND version = $2 AND closed_at IS NULL", m.keyID, m.version).Scan(&id)
	}
	if err != nil {
		return 0, false, fmt.Errorf("open leak incident: %w", err)
	}
	if err := addLeakStep(ctx, tx, id, now, keyledger.LeakStepReported, a, source, where); err != nil {
		return 0, false, err
	}
	if joined {
		return id, true, nil
	}
	if !m.current {
		if err := addLeakStep(ctx, tx, id, now, keyledger.LeakStepRotated, keyledger.SystemActor("keyledger"), "",
			"Already rotated away: it was not the current version when reported."); err != nil {
			return 0, false, err
		}
	}
	if err := writeAudit(ctx, tx, auditEntry{Actor: a, Action: keyledger.ActionLeakOpen, KeyID: m.keyID, KeyName: m.name, KeyVersion: m.version,
		Environment: m.env, Details: map[string]any{"incident": id, "source": source}}); err != nil {
		return 0, false, err
	}
	if err := s.enqueueLeakAlerts(ctx, tx); err != nil {
		return 0, false, err
	}
	return id, false, nil
}

// addLeakStep puts one step on an incident's timeline.
func addLeakStep(ctx context.Context, tx pgx.Tx, id int64, at time.Time, step string, a keyledger.Actor, via, note string) error {
	var actorID *int64
	if a.User != nil {
		actorID = &a.User.ID
	}
	if _, err := tx.Exec(ctx, `INSERT INTO leak_incident_steps (incident_id, at, step, actor_id, actor_email, via, note)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, id, at, step, actorID, actorEmail(a), via, note); err != nil {
		return fmt.Errorf("leak timeline %s: %w", step, err)
	}
	return nil
}
