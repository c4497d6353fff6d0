package store

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
)

// tokenCols are a token's columns: its row (t) and its user's email (u).
var tokenCols = columns[keyledger.Token]{
	{"t.id", func(t *keyledger.Token) any { return &t.ID }},
	{"t.user_id", func(t *keyledger.Token) any { return &t.UserID }},
	{"u.email", func(t *keyledger.Token) any { return &t.UserEmail }},
	{"t.name", func(t *keyledger.Token) any { return &t.Name }},
	{"t.hint", func(t *keyledger.Token) any { return &t.Hint }},
	{"t.scopes", func(t *keyledger.Token) any { return &t.Scopes }},
	{"t.created_at", func(t *keyledger.Token) any { return &t.CreatedAt }},
	{"t.expires_at", func(t *keyledger.Token) any { return &t.ExpiresAt }},
	{"t.last_used_at", func(t *keyledger.Token) any { return &t.LastUsedAt }},
	{"t.last_used_ip", func(t *keyledger.Token) any { return &t.LastUsedIP }},
}

var (
	tokenColumns = tokenCols.sql("")
	// tokenActorSelect reads a token with its user (userCols) and whether
	// the user's role requires two-factor sign-in.
	tokenActorSelect = `SELECT ` + tokenColumns + `, ` + userCols.sql("u") + `, coalesce(p.require_totp, false)
		FROM api_tokens t JOIN users u ON u.id = t.user_id LEFT JOIN role_policies p ON p.role = u.role WHERE t.token_hash = $1`
)

func scanToken(row pgx.Row) (*keyledger.Token, error) {
	var t keyledger.Token
	err := row.Scan(tokenCols.dests(make([]any, 0, len(tokenCols)), &t)...)
	return &t, err
}

// CreateToken mints a personal access token for forEmail (empty: the
// actor). People mint their own; admins (and the command line) may mint
// for anyone. The secret is returned once; only its hash is stored.
func (s *Store) CreateToken(ctx context.Context, actor keyledger.Actor, forEmail string, in keyledger.TokenInput) (string, *keyledger.Token, error) {
	nt, err := keyledger.ValidateToken(in)
	if err != nil {
		return "", nil, err
	}
	if actor.User != nil && actor.Token == nil {
		// A person (not the command line) mints a credential that outlives
		// the session: a stale, perhaps stolen, session must not.
		if err := s.freshProof(ctx, actor, "create_token", "current_password", in.CurrentPassword); err != nil {
			return "", nil, err
		}
	}
	raw, err := crypto.RandomToken(32)
	if err != nil {
		return "", nil, err
	}
	secret := keyledger.TokenPrefix + raw
	var tok *keyledger.Token
	err = s.tx(ctx, func(tx pgx.Tx) error {
		actor, err := freshActor(ctx, tx, actor)
		if err != nil {
			return err
		}
		if actor.Token != nil {
			return keyledger.Errorf(keyledger.EFORBIDDEN, "Tokens cannot mint tokens; create them on your profile page.")
		}
		target := keyledger.NormalizeEmail(forEmail)
		if actor.User != nil {
			if !actor.User.Active() {
				return keyledger.Errorf(keyledger.EFORBIDDEN, "Your account is deactivated.")
			}
			if target == "" {
				target = actor.User.Email
			}
			if target != actor.User.Email && keyledger.CanAdminister(actor.User) != nil {
				return keyledger.Errorf(keyledger.EFORBIDDEN, "Only admins may create tokens for someone else.")
			}
		}
		u, err := scanUser(tx.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE email = $1", target))
		if errors.Is(err, pgx.ErrNoRows) {
			return &keyledger.Error{Code: keyledger.EINVALID, Message: "There is no such user.", Fields: map[string]string{"email": "There is no user " + target + "."}}
		}
		if err != nil {
			return err
		}
		if !u.Active() {
			return keyledger.Errorf(keyledger.ECONFLICT, "%s is not active; tokens are only for active users.", u.Email)
		}
		var createdBy *int64
		if actor.User != nil {
			createdBy = &actor.User.ID
		}
		now := s.now()
		tok, err = scanToken(tx.QueryRow(ctx, `WITH t AS (INSERT INTO api_tokens (user_id, name, token_hash, hint, scopes, created_by, created_at, expires_at)
				VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING *)
			SELECT `+tokenColumns+` FROM t JOIN users u ON u.id = t.user_id`,
			u.ID, nt.Name, hashToken(secret), secret[:len(keyledger.TokenPrefix)+4], nt.Scopes, createdBy, now, now.Add(nt.TTL)))
		if err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionTokenCreate, SubjectID: u.ID, SubjectEmail: u.Email,
			Details: map[string]any{"token_id": tok.ID, "name": tok.Name, "scopes": tok.Scopes, "expires_at": tok.ExpiresAt.UTC().Format(time.RFC3339)}})
	})
	if err != nil {
		return "", nil, s.internal(ctx, "create token", err)
	}
	return secret, tok, nil
}

// ErrBadToken is the one answer for a missing, malformed, unknown, expired
// or revoked token, or one whose user is no longer active.
var ErrBadToken = &keyledger.Error{Code: keyledger.EUNAUTHORIZED, Message: "This access token is not valid: it is unknown, expired or revoked, or its user was deactivated. Create a new one on your profile page."}

// ErrTokenNeedsTOTP refuses the token of a user whose role requires
// two-factor sign-in that they have not set up: the token would be a way
// around the policy. It works again once they set it up.
var ErrTokenNeedsTOTP = &keyledger.Error{Code: keyledger.EFORBIDDEN, Message: "Your role requires two-factor sign-in, and your account has none yet: access tokens stop working until you set it up on your profile page (/profile/2fa)."}

// TokenActor authenticates an API request. It records the last use (at
// most once a minute) and audits a token's first use.
func (s *Store) TokenActor(ctx context.Context, secret, ip, userAgent string) (keyledger.Actor, error) {
	var a keyledger.Actor
	if !strings.HasPrefix(secret, keyledger.TokenPrefix) || len(secret) > 200 {
		return a, ErrBadToken
	}
	now := s.now()
	hash := hashToken(secret)
	if cu, ct, ok := s.tokens.get(hash, now); ok && now.Before(ct.ExpiresAt) && ct.LastUsedIP == ip &&
		ct.LastUsedAt != nil && now.Sub(*ct.LastUsedAt) <= time.Minute {
		return keyledger.Actor{User: cu, Token: ct, IP: ip, UserAgent: userAgent}, nil
	}
	var u keyledger.User
	var t *keyledger.Token
	var requireTOTP bool
	row := s.pool.QueryRow(ctx, tokenActorSelect, hash)
	t = &keyledger.Token{}
	dests := userCols.dests(tokenCols.dests(make([]any, 0, len(tokenCols)+len(userCols)+1), t), &u)
	err := row.Scan(append(dests, &requireTOTP)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return a, ErrBadToken
	}
	if err != nil {
		return a, s.internal(ctx, "check token", err)
	}
	if !u.Active() || !now.Before(t.ExpiresAt) {
		return a, ErrBadToken
	}
	if requireTOTP && !u.TOTPEnabled {
		return a, ErrTokenNeedsTOTP
	}
	a = keyledger.Actor{User: &u, Token: t, IP: ip, UserAgent: userAgent}
	if t.LastUsedAt == nil || now.Sub(*t.LastUsedAt) > time.Minute || t.LastUsedIP != ip {
		err := s.tx(ctx, func(tx pgx.Tx) error {
			// The first use is claimed by whichever request flips
			// last_used_at from NULL, so it is audited exactly once.
			tag, err := tx.Exec(ctx, "UPDATE api_tokens SET last_used_at = $2, last_used_ip = $3 WHERE id = $1 AND last_used_at IS NULL", t.ID, now, truncate(ip, 100))
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 0 {
				_, err := tx.Exec(ctx, "UPDATE api_tokens SET last_used_at = $2, last_used_ip = $3 WHERE id = $1", t.ID, now, truncate(ip, 100))
				return err
			}
			return writeAudit(ctx, tx, auditEntry{Actor: a, Action: keyledger.ActionTokenUse, SubjectID: u.ID, SubjectEmail: u.Email,
				Details: map[string]any{"token_id": t.ID, "name": t.Name}})
		})
		if err != nil {
			return a, s.internal(ctx, "record token use", err)
		}
		t.LastUsedAt, t.LastUsedIP = &now, ip
	}
	s.tokens.put(hash, &u, t, now)
	return a, nil
}

// tokenLive is true when the request came without a token (token = 0),
// or its token still exists, belongs to the actor (a, in the query), has
// not expired at at, and the actor's role does not require a second factor
// the actor lacks. Reveals and exports check it in their own query, so a
// token revoked (or a policy turned on) a moment ago elsewhere cannot
// reveal through tokenCache.
func tokenLive(token, at string) string {
	return `CASE WHEN ` + token + ` = 0 THEN true ELSE EXISTS (SELECT 1 FROM api_tokens t WHERE t.id = ` + token + ` AND t.user_id = a.id AND t.expires_at > ` + at + `)
	AND NOT EXISTS (SELECT 1 FROM role_policies rp WHERE rp.role = a.role AND rp.require_totp AND a.totp_enabled_at IS NULL) END`
}

// tokenLiveSQL is tokenLive for a statement whose $2 is the token id and
// $3 the time.
var tokenLiveSQL = tokenLive("$2::bigint", "$3")

func actorTokenID(a keyledger.Actor) int64 {
	if a.Token == nil {
		return 0
	}
	return a.Token.ID
}

// ListTokens lists a user's tokens (their own, or anyone's for admins).
func (s *Store) ListTokens(ctx context.Context, actor keyledger.Actor, userID int64) ([]keyledger.Token, error) {
	if actor.User == nil || (actor.User.ID != userID && keyledger.CanAdminister(actor.User) != nil) {
		return nil, keyledger.ErrNotFound("Tokens")
	}
	rows, err := s.pool.Query(ctx, `SELECT `+tokenColumns+` FROM api_tokens t JOIN users u ON u.id = t.user_id
		WHERE t.user_id = $1 ORDER BY t.created_at DESC`, userID)
	if err != nil {
		return nil, s.internal(ctx, "list tokens", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyledger.Token, error) {
		t, err := scanToken(r)
		if err != nil {
			return keyledger.Token{}, err
		}
		return *t, nil
	})
	if err != nil {
		return nil, s.internal(ctx, "list tokens", err)
	}
	return out, nil
}

// RevokeToken deletes one of the actor's tokens (admins: anyone's).
func (s *Store) RevokeToken(ctx context.Context, actor keyledger.Actor, id int64) error {
	if err := noToken(actor); err != nil {
		return err
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		actor, err := freshActor(ctx, tx, actor)
		if err != nil {
			return err
		}
		if actor.User == nil || !actor.User.Active() {
			return ErrNoSession
		}
		t, err := scanToken(tx.QueryRow(ctx, `WITH t AS (DELETE FROM api_tokens WHERE id = $1 AND (user_id = $2 OR $3) RETURNING *)
			SELECT `+tokenColumns+` FROM t JOIN users u ON u.id = t.user_id`, id, actor.User.ID, keyledger.CanAdminister(actor.User) == nil))
		if errors.Is(err, pgx.ErrNoRows) {
			return keyledger.ErrNotFound("Token")
		}
		if err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionTokenRevoke, SubjectID: t.UserID, SubjectEmail: t.UserEmail,
			Details: map[string]any{"token_id": t.ID, "name": t.Name}})
	})
	s.tokens.clear()
	return s.internal(ctx, "revoke token", err)
}
