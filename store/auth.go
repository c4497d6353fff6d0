package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// ErrBadCredentials is the one answer for an unknown email, a wrong
// password and a deactivated account, so sign-in reveals nothing about
// which accounts exist.
var ErrBadCredentials = &keyledger.Error{Code: keyledger.EUNAUTHORIZED, Message: "That email and password do not match an active account."}

// Authenticate checks an email and password. Every attempt passes the
// throttle (admit) before anything is hashed, is counted until it proves
// right, and every failure and refusal is audited. Input too long to be a
// real email or password is refused without hashing, and counted.
func (s *Store) Authenticate(ctx context.Context, meta keyledger.Actor, email, password string) (*keyledger.User, error) {
	email = keyledger.NormalizeEmail(email)
	emailTooLong := len(email) > maxEmailBytes
	oversized := emailTooLong || len(password) > maxPasswordBytes
	email = truncate(email, maxEmailBytes)

	var u *keyledger.User
	var hash *string
	if !emailTooLong {
		row := s.pool.QueryRow(ctx, "SELECT "+userColumns+", password_hash FROM users WHERE email = $1", email)
		var usr keyledger.User
		err := row.Scan(append(userCols.dests(make([]any, 0, len(userCols)+1), &usr), &hash)...)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
		case err != nil:
			return nil, s.internal(ctx, "sign in: find user", err)
		default:
			u = &usr
		}
	}
	var subjectID int64
	if u != nil {
		subjectID = u.ID
	}
	att, err := s.admit(ctx, meta, email, subjectID, "sign_in")
	if err != nil {
		return nil, err
	}
	fail := func(reason string, answer error) (*keyledger.User, error) {
		if err := s.failed(ctx, auditEntry{Actor: meta, Action: keyledger.ActionSignInFailed, SubjectID: subjectID,
			SubjectEmail: email, Details: map[string]any{"reason": reason}}); err != nil {
			return nil, err
		}
		return nil, answer
	}
	if oversized {
		return fail("oversized", ErrOversized)
	}
	ok, rehash := false, false
	if u != nil && hash != nil {
		ok, rehash, err = s.verifyPassword(ctx, password, *hash)
		if err != nil && ctx.Err() != nil {
			// Canceled while queued for a hash slot: the attempt stays
			// counted (admit), as any that did not prove right.
			return nil, s.internal(ctx, "sign in", err)
		}
		if err != nil {
			s.log.ErrorContext(ctx, "stored password hash is malformed", "user_id", u.ID, "err", err)
			ok = false
		}
	} else {
		// An unknown email takes as long as a wrong password.
		if _, _, err := s.verifyPassword(ctx, password, s.dummyHash); err != nil && ctx.Err() != nil {
			return nil, s.internal(ctx, "sign in", err)
		}
	}
	if !ok || !u.Active() {
		reason := "unknown_email"
		switch {
		case u != nil && !ok:
			reason = "wrong_password"
		case u != nil:
			reason = string(u.Status)
		}
		return fail(reason, ErrBadCredentials)
	}
	// A second factor still due: the address becomes known only when the
	// sign-in is complete (CompleteTOTP).
	if err := s.forgive(ctx, att, !u.TOTPEnabled); err != nil {
		return nil, err
	}
	if rehash {
		// Parameters changed since this hash was made: upgrade it now that
		// we hold the password. A failure here must not block sign-in.
		if newHash, err := s.hashPassword(ctx, password); err == nil {
			if err := s.tx(ctx, func(tx pgx.Tx) error {
				if _, err := tx.Exec(ctx, "UPDATE users SET password_hash = $2 WHERE id = $1", u.ID, newHash); err != nil {
					return err
				}
				return writeAudit(ctx, tx, auditEntry{Actor: keyledger.SystemActor("keyledger"), Action: keyledger.ActionPasswordRehash, SubjectID: u.ID, SubjectEmail: u.Email})
			}); err != nil {
				s.log.ErrorContext(ctx, "rehash password", "user_id", u.ID, "err", err)
			}
		}
	}
	return u, nil
}
