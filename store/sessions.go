package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
)

// SessionTimeouts bound a session: Idle since the last request, Absolute
// since sign-in.
type SessionTimeouts struct {
	Idle     time.Duration
	Absolute time.Duration
}

func hashSessionID(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// StartSession signs u in: it creates a new session (a fresh id at every
// sign-in defeats fixation), audits the sign-in, and returns the id for
// the cookie. Only the id's hash is stored. A user with two-factor sign-in
// gets a pending session, good for nothing but entering the code.
func (s *Store) StartSession(ctx context.Context, meta keyledger.Actor, u *keyledger.User, t SessionTimeouts) (string, error) {
	return s.startSession(ctx, meta, u, t, time.Time{}, nil)
}

// startSession inserts a session and audits the sign-in. stepUpAt zero
// means "now" (a password was just entered); extra goes into the audit
// details.
func (s *Store) startSession(ctx context.Context, meta keyledger.Actor, u *keyledger.User, t SessionTimeouts, stepUpAt time.Time, extra map[string]any) (string, error) {
	id, err := crypto.RandomToken(32)
	if err != nil {
		return "", err
	}
	now := s.now()
	if stepUpAt.IsZero() || stepUpAt.After(now) {
		stepUpAt = now
	}
	pending := u.TOTPEnabled
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO sessions (id_hash, user_id, created_at, last_seen_at, expires_at, ip, user_agent, pending_totp, step_up_at)
			VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8)`, hashSessionID(id), u.ID, now, now.Add(t.Absolute), truncate(meta.IP, 100), truncate(meta.UserAgent, 300), pending, stepUpAt); err != nil {
			return err
		}
		meta.User = u
		details := map[string]any{}
		for k, v := range extra {
			details[k] = v
		}
		if pending {
			details["second_factor"] = "pending"
		}
		return writeAudit(ctx, tx, auditEntry{Actor: meta, Action: keyledger.ActionSignIn, SubjectID: u.ID, SubjectEmail: u.Email, Details: details})
	})
	if err != nil {
		return "", s.internal(ctx, "start session", err)
	}
	return id, nil
}

// ErrNoSession means the session is unknown, expired or its user inactive.
var ErrNoSession = &keyledger.Error{Code: keyledger.EUNAUTHORIZED, Message: "Please sign in."}

// SessionState is what a request learns from its session.
type SessionState struct {
	User *keyledger.User
	// StepUpAt is when the person last entered their password or a code.
	StepUpAt time.Time
	// PendingTOTP: the password was right, the second factor is still due.
	PendingTOTP bool
	// MustEnrollTOTP: the user's role requires two-factor sign-in and the
	// user has not set it up yet.
	MustEnrollTOTP bool
	// Epochs are the change epochs (migration 017) as this read saw them.
	Epochs keyledger.Epochs
}

// Session returns the state of a live session, pending or not, and
// refreshes its idle timer. Expired sessions are deleted on sight.
func (s *Store) Session(ctx context.Context, id string, t SessionTimeouts) (SessionState, error) {
	var st SessionState
	now := s.now()
	row, err := s.sessions.do(ctx, hashSessionID(id))
	if err != nil {
		return st, s.internal(ctx, "load session", err)
	}
	if !row.found {
		return st, ErrNoSession
	}
	u := row.user
	lastSeen, expires, stepUp := row.lastSeen, row.expires, row.stepUp
	st.PendingTOTP, st.MustEnrollTOTP = row.pendingTOTP, row.requireTOTP
	st.Epochs = row.epochs
	st.Epochs.All += st.Epochs.List
	idle := t.Idle
	if st.PendingTOTP {
		// Five minutes to type a code; a half-signed-in session must not
		// linger.
		idle = min(idle, 5*time.Minute)
	}
	if !u.Active() || !now.Before(expires) || now.Sub(lastSeen) >= idle {
		if _, err := s.pool.Exec(ctx, "DELETE FROM sessions WHERE id_hash = $1", hashSessionID(id)); err != nil {
			return st, s.internal(ctx, "delete expired session", err)
		}
		return st, ErrNoSession
	}
	st.MustEnrollTOTP = st.MustEnrollTOTP && !u.TOTPEnabled
	if stepUp != nil {
		st.StepUpAt = *stepUp
	}
	// Touch at most once a minute: idle timeouts are minutes long, and a
	// write per request would cost more than the request.
	if now.Sub(lastSeen) > time.Minute {
		if _, err := s.pool.Exec(ctx, "UPDATE sessions SET last_seen_at = $2 WHERE id_hash = $1", hashSessionID(id), now); err != nil {
			return st, s.internal(ctx, "touch session", err)
		}
	}
	st.User = &u
	return st, nil
}

// SessionUser returns the active user of a fully signed-in session.
func (s *Store) SessionUser(ctx context.Context, id string, t SessionTimeouts) (*keyledger.User, error) {
	st, err := s.Session(ctx, id, t)
	if err != nil {
		return nil, err
	}
	if st.PendingTOTP {
		return nil, ErrNoSession
	}
	return st.User, nil
}

// SessionInfo is one of a user's sessions, for the profile page.
type SessionInfo struct {
	// ID identifies the session in URLs: the hex of its stored hash, which
	// is useless for riding the session.
	ID         string
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time
	IP         string
	UserAgent  string
	Current    bool
}

// ListSessions lists a user's live sessions, newest first; current is the
// raw id of the asking session, to mark it.
func (s *Store) ListSessions(ctx context.Context, actor keyledger.Actor, userID int64, current string) ([]SessionInfo, error) {
	if actor.User == nil || (actor.User.ID != userID && keyledger.CanAdminister(actor.User) != nil) {
		return nil, keyledger.ErrNotFound("Sessions")
	}
	rows, err := s.pool.Query(ctx, `SELECT encode(id_hash, 'hex'), created_at, last_seen_at, expires_at, ip, user_agent
		FROM sessions WHERE user_id = $1 AND NOT pending_totp AND expires_at > $2 ORDER BY last_seen_at DESC`, userID, s.now())
	if err != nil {
		return nil, s.internal(ctx, "list sessions", err)
	}
	cur := fmt.Sprintf("%x", hashSessionID(current))
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SessionInfo, error) {
		var si SessionInfo
		err := r.Scan(&si.ID, &si.CreatedAt, &si.LastSeenAt, &si.ExpiresAt, &si.IP, &si.UserAgent)
		si.Current = current != "" && si.ID == cur
		return si, err
	})
	if err != nil {
		return nil, s.internal(ctx, "list sessions", err)
	}
	return list, nil
}

// RevokeSession ends one of the actor's own sessions (admins: anyone's),
// named by the hex id ListSessions gave.
func (s *Store) RevokeSession(ctx context.Context, actor keyledger.Actor, hexID string) error {
	if actor.User == nil {
		return ErrNoSession
	}
	hash, err := hex.DecodeString(hexID)
	if err != nil || len(hash) != sha256.Size {
		return keyledger.ErrNotFound("Session")
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		var owner int64
		var email string
		err := tx.QueryRow(ctx, `DELETE FROM sessions s USING users u WHERE s.id_hash = $1 AND u.id = s.user_id
			AND (s.user_id = $2 OR $3) RETURNING s.user_id, u.email`, hash, actor.User.ID, keyledger.CanAdminister(actor.User) == nil).Scan(&owner, &email)
		if errors.Is(err, pgx.ErrNoRows) {
			return keyledger.ErrNotFound("Session")
		}
		if err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionSessionRevoke, SubjectID: owner, SubjectEmail: email})
	})
	if err != nil {
		return s.internal(ctx, "revoke session", err)
	}
	return nil
}

// EndOtherSessions signs the actor out everywhere but the session current
// (the raw id of the asking session) and says how many sessions ended.
func (s *Store) EndOtherSessions(ctx context.Context, actor keyledger.Actor, current string) (int64, error) {
	if actor.User == nil || current == "" {
		return 0, ErrNoSession
	}
	var n int64
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2", actor.User.ID, hashSessionID(current))
		if err != nil {
			return err
		}
		n = tag.RowsAffected()
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionSessionRevokeOthers, SubjectID: actor.User.ID,
			SubjectEmail: actor.User.Email, Details: map[string]any{"sessions_revoked": n}})
	})
	if err != nil {
		return 0, s.internal(ctx, "end other sessions", err)
	}
	return n, nil
}

// EndSession signs out: the server-side row goes, so the cookie is dead
// even if someone copied it.
func (s *Store) EndSession(ctx context.Context, meta keyledger.Actor, id string) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "DELETE FROM sessions WHERE id_hash = $1", hashSessionID(id))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 || meta.User == nil {
			return nil
		}
		return writeAudit(ctx, tx, auditEntry{Actor: meta, Action: keyledger.ActionSignOut, SubjectID: meta.User.ID, SubjectEmail: meta.User.Email})
	})
	if err != nil {
		return s.internal(ctx, "end session", err)
	}
	return nil
}

// PurgeExpired removes expired sessions and old sign-in failures.
func (s *Store) PurgeExpired(ctx context.Context, idle time.Duration) error {
	now := s.now()
	if _, err := s.pool.Exec(ctx, "DELETE FROM sessions WHERE expires_at <= $1 OR last_seen_at <= $2", now, now.Add(-idle)); err != nil {
		return fmt.Errorf("purge sessions: %w", err)
	}
	// Failures count for a day at most (AccountWindow); known addresses
	// and sent alerts lapse on their own clocks.
	if _, err := s.pool.Exec(ctx, "DELETE FROM login_failures WHERE at <= $1", now.Add(-max(24*time.Hour, s.throttle.AccountWindow))); err != nil {
		return fmt.Errorf("purge sign-in failures: %w", err)
	}
	if _, err := s.pool.Exec(ctx, "DELETE FROM login_known_addresses WHERE last_success <= $1", now.Add(-s.throttle.KnownFor)); err != nil {
		return fmt.Errorf("purge known sign-in addresses: %w", err)
	}
	if _, err := s.pool.Exec(ctx, "DELETE FROM account_alerts WHERE sent_at IS NOT NULL AND raised_at <= $1", now.Add(-s.throttle.AccountWindow)); err != nil {
		return fmt.Errorf("purge account alerts: %w", err)
	}
	return nil
}
