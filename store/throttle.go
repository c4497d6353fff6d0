package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// Every try at a password or a second factor, signed in or not, goes
// through admit before anything is checked: no argon2id hash and no code
// comparison runs for a request the throttle refuses. The design and its
// numbers are in docs/security.md, "Sign-in throttling".

// Input bounds: no email address is longer (RFC 5321), and no one types a
// longer password; anything bigger is refused before it is hashed.
const (
	maxEmailBytes    = 254
	maxPasswordBytes = 1024
)

// ErrThrottled answers too many failed attempts. The errors admit returns
// are copies that also say when to come back (RetryAfter).
var ErrThrottled = &keyledger.Error{Code: keyledger.ETOOMANY, Message: "Too many failed sign-in attempts. Try again later, or ask an admin to check your account."}

// ErrOversized answers an email or password too long to be real.
var ErrOversized = &keyledger.Error{Code: keyledger.EINVALID,
	Message: fmt.Sprintf("That email or password is too long. An email has at most %d characters, a password at most %d.", maxEmailBytes, maxPasswordBytes)}

// Advisory lock classes for admit: one for accounts, one for addresses, so
// that an email and an address never share a lock by accident.
const (
	lockClassAccount = 0x4b4c01
	lockClassAddress = 0x4b4c02
)

// attempt is one admitted try. It is counted as a failure from the start
// (so parallel guesses cannot all slip past the count) and forgiven when
// it turns out right.
type attempt struct {
	id    int64
	email string
	ip    string
}

// throttleCounts is what admit reads about an email and an address.
type throttleCounts struct {
	pair, ip, account, pairLong int
	pairNth, ipNth, lastFailure *time.Time
	known                       bool
}

// throttleRefusal says which limit refused an attempt and for how long.
type throttleRefusal struct {
	reason string // pair | address | account
	wait   time.Duration
}

// decide applies the limits to counts at now. The order matters only for
// the message: each refusal is a refusal.
func (l ThrottleLimits) decide(c throttleCounts, now time.Time) *throttleRefusal {
	if c.pairNth != nil && c.pair >= l.PerPair {
		return &throttleRefusal{reason: "pair", wait: c.pairNth.Add(l.Window).Sub(now)}
	}
	if c.ipNth != nil && c.ip >= l.PerIP {
		return &throttleRefusal{reason: "address", wait: c.ipNth.Add(l.Window).Sub(now)}
	}
	if c.known && c.pairLong < l.PerPair {
		// The owner's usual address: a stranger's failures elsewhere do
		// not hold it up.
		return nil
	}
	if c.account >= l.PerAccount && c.lastFailure != nil {
		if wait := c.lastFailure.Add(l.delay(c.account)).Sub(now); wait > 0 {
			return &throttleRefusal{reason: "account", wait: wait}
		}
	}
	return nil
}

// delay is how long after the last failure an account with failures
// failures in AccountWindow makes the next attempt wait.
func (l ThrottleLimits) delay(failures int) time.Duration {
	d := l.BaseDelay
	for i := l.PerAccount; i < failures && d < l.MaxDelay; i++ {
		d *= 2
	}
	return min(d, l.MaxDelay)
}

// throttled is the 429 for a refusal, with a message that says when to
// come back.
func throttled(r *throttleRefusal) error {
	// Whole seconds, rounded up, as the Retry-After header carries them.
	wait := max(r.wait, time.Second)
	if rem := wait % time.Second; rem != 0 {
		wait += time.Second - rem
	}
	var msg string
	switch r.reason {
	case "pair":
		msg = "Too many failed sign-in attempts for this account from your address. Try again in %s, or ask an admin to check your account."
	case "address":
		msg = "Too many failed sign-in attempts from your address. Try again in %s."
	default:
		msg = "Too many failed sign-in attempts for this account. Try again in %s."
	}
	return &keyledger.Error{Code: keyledger.ETOOMANY, Message: fmt.Sprintf(msg, waitPhrase(wait)), RetryAfter: wait}
}

// waitPhrase is "15 seconds" or "4 minutes", rounded up: telling someone
// to come back too early only earns them another refusal.
func waitPhrase(d time.Duration) string {
	if d <= time.Minute {
		s := int((d + time.Second - 1) / time.Second)
		if s == 1 {
			return "1 second"
		}
		return fmt.Sprintf("%d seconds", s)
	}
	m := int((d + time.Minute - 1) / time.Minute)
	return fmt.Sprintf("%d minutes", m)
}

// admit decides whether meta may try a secret for email now (subjectID:
// the account's id, 0 if there is none) and, if so, counts the attempt
// as a failure until forgive says otherwise. A refusal is audited and
// returns a 429 error. purpose names the door: sign_in, totp, step_up,
// or a password re-check such as change_password.
func (s *Store) admit(ctx context.Context, meta keyledger.Actor, email string, subjectID int64, purpose string) (attempt, error) {
	email = truncate(email, maxEmailBytes)
	ip := truncate(meta.IP, 100)
	l := s.throttle
	now := s.now()
	att := attempt{email: email, ip: ip}
	var refusal *throttleRefusal
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// Check and count under one lock per account and per address, so
		// that a burst of parallel guesses is counted one by one. The
		// address lock is always taken second: no two attempts wait on
		// each other in a cycle.
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, hashtext($2)), pg_advisory_xact_lock($3, hashtext($4))",
			lockClassAccount, email, lockClassAddress, ip); err != nil {
			return err
		}
		var c throttleCounts
		err := tx.QueryRow(ctx, `SELECT
			(SELECT count(*) FROM login_failures WHERE email = $1 AND ip = $2 AND at > $3),
			(SELECT at FROM login_failures WHERE email = $1 AND ip = $2 AND at > $3 ORDER BY at DESC OFFSET $6 - 1 LIMIT 1),
			(SELECT count(*) FROM login_failures WHERE ip = $2 AND at > $3),
			(SELECT at FROM login_failures WHERE ip = $2 AND at > $3 ORDER BY at DESC OFFSET $7 - 1 LIMIT 1),
			(SELECT count(*) FROM login_failures WHERE email = $1 AND at > $4),
			(SELECT max(at) FROM login_failures WHERE email = $1 AND at > $4),
			(SELECT count(*) FROM login_failures WHERE email = $1 AND ip = $2 AND at > $4),
			EXISTS (SELECT 1 FROM login_known_addresses WHERE email = $1 AND ip = $2 AND last_success > $5)`,
			email, ip, now.Add(-l.Window), now.Add(-l.AccountWindow), now.Add(-l.KnownFor), l.PerPair, l.PerIP).Scan(
			&c.pair, &c.pairNth, &c.ip, &c.ipNth, &c.account, &c.lastFailure, &c.pairLong, &c.known)
		if err != nil {
			return err
		}
		if refusal = l.decide(c, now); refusal != nil {
			// Refusals are audited but not counted: counting them would
			// let a stranger who keeps knocking hold the delay open for
			// ever, which is the lock this design avoids.
			return writeAudit(ctx, tx, auditEntry{Actor: meta, Action: keyledger.ActionSignInThrottle, SubjectID: subjectID, SubjectEmail: email,
				Details: map[string]any{"purpose": purpose, "limit": refusal.reason, "retry_after_s": int(keyledger.RetryAfter(throttled(refusal)) / time.Second),
					"failures_for_account": c.account, "failures_from_ip": c.ip, "failures_from_ip_for_account": c.pair}})
		}
		if err := tx.QueryRow(ctx, "INSERT INTO login_failures (email, ip, at) VALUES ($1, $2, $3) RETURNING id", email, ip, now).Scan(&att.id); err != nil {
			return err
		}
		if subjectID != 0 && c.account+1 >= l.AlertAfter {
			return s.raiseAlert(ctx, tx, email, subjectID, now)
		}
		return nil
	})
	if err != nil {
		return att, s.internal(ctx, "throttle: admit "+purpose, err)
	}
	if refusal != nil {
		return att, throttled(refusal)
	}
	return att, nil
}

// forgive uncounts an attempt that turned out right. signedIn records the
// address as one the account signs in from (see ThrottleLimits.KnownFor);
// only a completed sign-in, second factor included, earns that.
func (s *Store) forgive(ctx context.Context, att attempt, signedIn bool) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DELETE FROM login_failures WHERE id = $1", att.id); err != nil {
			return err
		}
		if !signedIn {
			return nil
		}
		_, err := tx.Exec(ctx, `INSERT INTO login_known_addresses (email, ip, last_success) VALUES ($1, $2, $3)
			ON CONFLICT (email, ip) DO UPDATE SET last_success = EXCLUDED.last_success`, att.email, att.ip, s.now())
		return err
	})
	return s.internal(ctx, "throttle: forgive attempt", err)
}

// failed audits an admitted attempt that was wrong. It stays counted.
func (s *Store) failed(ctx context.Context, e auditEntry) error {
	err := s.tx(ctx, func(tx pgx.Tx) error { return writeAudit(ctx, tx, e) })
	return s.internal(ctx, "throttle: record failure", err)
}
