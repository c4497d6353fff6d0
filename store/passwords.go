package store

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
)

// ChangePassword sets a new password after checking the current one, and
// signs out every other session of the user.
func (s *Store) ChangePassword(ctx context.Context, actor keyledger.Actor, sessionID, current, next string) error {
	if err := noToken(actor); err != nil {
		return err
	}
	if !actor.User.Active() {
		return ErrNoSession
	}
	var v keyledger.Validation
	if p := keyledger.CheckPassword(next); p != "" {
		v.Add("new_password", p)
	}
	if current == next && current != "" {
		v.Add("new_password", "Choose a password different from the current one.")
	}
	if err := v.Err(); err != nil {
		return err
	}
	if err := s.checkPassword(ctx, actor, "change_password", current); err != nil {
		return &keyledger.Error{Code: keyledger.EINVALID, Message: "Your current password is not right.",
			Fields: map[string]string{"current_password": "Your current password is not right."}}
	}
	hash, err := s.hashPassword(ctx, next)
	if err != nil {
		return err
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE users SET password_hash = $2, password_changed_at = now(), updated_at = now() WHERE id = $1", actor.User.ID, hash); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "DELETE FROM sessions WHERE user_id = $1 AND id_hash <> $2", actor.User.ID, hashSessionID(sessionID))
		if err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionPasswordChange, SubjectID: actor.User.ID, SubjectEmail: actor.User.Email,
			Details: map[string]any{"other_sessions_revoked": tag.RowsAffected()}})
	})
	return s.internal(ctx, "change password", err)
}

// PasswordLinkTTL is how long a set-password link works.
const PasswordLinkTTL = 24 * time.Hour

func hashToken(t string) []byte {
	h := sha256.Sum256([]byte(t))
	return h[:]
}

// CreatePasswordLink makes a one-time link for a user to set their
// password (and so sign in for the first time), valid 24 hours. Only its
// hash is stored; the token is returned once to show the admin.
func (s *Store) CreatePasswordLink(ctx context.Context, actor keyledger.Actor, userID int64) (string, time.Time, error) {
	if err := noToken(actor); err != nil {
		return "", time.Time{}, err
	}
	if err := keyledger.CheckCredentialGrant(actor, s.now()); err != nil {
		return "", time.Time{}, err
	}
	token, err := crypto.RandomToken(32)
	if err != nil {
		return "", time.Time{}, err
	}
	expires := s.now().Add(PasswordLinkTTL)
	err = s.tx(ctx, func(tx pgx.Tx) error {
		actor, err := freshActorMay(ctx, tx, actor, keyledger.CanAdminister)
		if err != nil {
			return err
		}
		u, err := scanUser(tx.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE id = $1", userID))
		if errors.Is(err, pgx.ErrNoRows) {
			return keyledger.ErrNotFound("User")
		}
		if err != nil {
			return err
		}
		if !u.Active() {
			return keyledger.Errorf(keyledger.ECONFLICT, "%s is not active; reactivate them first.", u.Email)
		}
		// One live link per user: a new one replaces the old.
		if _, err := tx.Exec(ctx, "DELETE FROM password_links WHERE user_id = $1 AND used_at IS NULL", userID); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "INSERT INTO password_links (token_hash, user_id, created_by, expires_at) VALUES ($1, $2, $3, $4)",
			hashToken(token), userID, actor.User.ID, expires); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionPasswordLink, SubjectID: u.ID, SubjectEmail: u.Email,
			Details: map[string]any{"expires_at": expires.UTC().Format(time.RFC3339)}})
	})
	if err != nil {
		return "", time.Time{}, s.internal(ctx, "create password link", err)
	}
	return token, expires, nil
}

// ErrLinkInvalid answers an unknown, used or expired set-password link.
var ErrLinkInvalid = &keyledger.Error{Code: keyledger.ENOTFOUND, Message: "This link is not valid: it was used already, it expired (links last 24 hours), or it was replaced by a newer one. Ask an admin for a new link."}

// PasswordLinkUser tells whose link a token is, for the set-password page.
func (s *Store) PasswordLinkUser(ctx context.Context, token string) (*keyledger.User, error) {
	var userID int64
	err := s.pool.QueryRow(ctx, `SELECT l.user_id FROM password_links l JOIN users u ON u.id = l.user_id
		WHERE l.token_hash = $1 AND l.used_at IS NULL AND l.expires_at > $2 AND u.status = $3`, hashToken(token), s.now(), string(keyledger.UserActive)).Scan(&userID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrLinkInvalid
	}
	if err != nil {
		return nil, s.internal(ctx, "password link", err)
	}
	return s.userByID(ctx, userID)
}

// UsePasswordLink sets the password of the link's user and spends the
// link. The user's existing sessions and access tokens end.
func (s *Store) UsePasswordLink(ctx context.Context, meta keyledger.Actor, token, password string) (*keyledger.User, error) {
	if p := keyledger.CheckPassword(password); p != "" {
		return nil, &keyledger.Error{Code: keyledger.EINVALID, Message: p, Fields: map[string]string{"password": p}}
	}
	hash, err := s.hashPassword(ctx, password)
	if err != nil {
		return nil, err
	}
	var u *keyledger.User
	err = s.tx(ctx, func(tx pgx.Tx) error {
		var userID int64
		err := tx.QueryRow(ctx, `UPDATE password_links l SET used_at = $2 FROM users u WHERE l.token_hash = $1 AND l.used_at IS NULL
			AND l.expires_at > $2 AND u.id = l.user_id AND u.status = $3 RETURNING l.user_id`, hashToken(token), s.now(), string(keyledger.UserActive)).Scan(&userID)
		if errors.Is(err, pgx.ErrNoRows) {
			return ErrLinkInvalid
		}
		if err != nil {
			return err
		}
		if u, err = scanUser(tx.QueryRow(ctx, "UPDATE users SET password_hash = $2, password_changed_at = now(), updated_at = now() WHERE id = $1 RETURNING "+userColumns, userID, hash)); err != nil {
			return err
		}
		// Recovery: whoever had the account may have made tokens as well
		// as sessions; both end (docs/security.md, "Tokens and credential
		// changes").
		sessions, tokens, err := endAccess(ctx, tx, userID)
		if err != nil {
			return err
		}
		meta.User = u
		return writeAudit(ctx, tx, auditEntry{Actor: meta, Action: keyledger.ActionPasswordChange, SubjectID: u.ID, SubjectEmail: u.Email,
			Details: map[string]any{"via": "set-password link", "sessions_ended": sessions, "tokens_revoked": tokens}})
	})
	s.tokens.clear()
	if err != nil {
		return nil, s.internal(ctx, "use password link", err)
	}
	return u, nil
}

var _ = fmt.Sprintf
