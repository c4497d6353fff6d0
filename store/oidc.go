package store

import (
	"context"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// Single sign-on (OpenID Connect). The web layer verifies the identity
// provider's ID token; the store decides who that person is here: an
// existing active user found by email, or a new member when the email's
// domain is one the configuration lets in.

// OIDCIdentity is what a verified ID token says about the person. Email
// must already be known to be verified by the identity provider.
type OIDCIdentity struct {
	Email string
	Name  string
	// Issuer and Subject name the account at the identity provider; they
	// are audited, not stored on the user.
	Issuer  string
	Subject string
}

// ErrOIDCNoAccount refuses a verified email that belongs to nobody here
// and whose domain is not allowed to create accounts. The identity
// provider has proved the person owns the address, so telling them there
// is no account reveals nothing about anyone else.
var ErrOIDCNoAccount = &keyledger.Error{Code: keyledger.EFORBIDDEN,
	Message: "There is no keyledger account for this email address, and single sign-on does not create accounts for its domain. Ask an admin to add you."}

// OIDCUser finds the user a verified single sign-on identity signs in as.
// An existing active user is returned as is; a deactivated or frozen one
// is refused with the same answer as a password sign-in (ErrBadCredentials).
// An unknown email whose domain is in allowedDomains (lower case, exact
// match, no subdomains) becomes a new member, audited as user.create with
// via=oidc; any other unknown email is refused with ErrOIDCNoAccount.
// Refusals are audited as failed sign-ins with method=oidc.
func (s *Store) OIDCUser(ctx context.Context, meta keyledger.Actor, id OIDCIdentity, allowedDomains []string) (*keyledger.User, error) {
	email := keyledger.NormalizeEmail(id.Email)
	if keyledger.CheckEmail(email) != "" {
		if err := s.OIDCSignInFailed(ctx, meta, "", "invalid_email"); err != nil {
			return nil, err
		}
		return nil, ErrOIDCNoAccount
	}
	u, err := s.UserByEmail(ctx, email)
	switch {
	case keyledger.ErrorCode(err) == keyledger.ENOTFOUND:
	case err != nil:
		return nil, err
	case !u.Active():
		if err := s.oidcRefused(ctx, meta, u, email, string(u.Status)); err != nil {
			return nil, err
		}
		return nil, ErrBadCredentials
	default:
		return u, nil
	}
	if !domainAllowed(email, allowedDomains) {
		if err := s.oidcRefused(ctx, meta, nil, email, "no_account"); err != nil {
			return nil, err
		}
		return nil, ErrOIDCNoAccount
	}
	name := oidcName(id.Name)
	err = s.tx(ctx, func(tx pgx.Tx) error {
		// No password: the account signs in through the identity provider
		// (an admin's set-password link can add one later).
		u, err = scanUser(tx.QueryRow(ctx, `INSERT INTO users (email, name, role) VALUES ($1, $2, $3) RETURNING `+userColumns,
			email, name, keyledger.RoleMember))
		if err != nil {
			return err
		}
		// The person created their own account by signing in.
		by := meta
		by.User = u
		return writeAudit(ctx, tx, auditEntry{Actor: by, Action: keyledger.ActionUserCreate, SubjectID: u.ID, SubjectEmail: u.Email,
			Details: map[string]any{"role": string(u.Role), "via": "oidc", "issuer": truncate(id.Issuer, 200), "subject": truncate(id.Subject, 200)}})
	})
	if isUniqueViolation(err, "users_email_key") {
		// A first sign-in in another tab or replica won the race: use the
		// account it made, if it may still sign in.
		u, err := s.UserByEmail(ctx, email)
		if err != nil {
			return nil, err
		}
		if !u.Active() {
			return nil, ErrBadCredentials
		}
		return u, nil
	}
	if err != nil {
		return nil, s.internal(ctx, "create user from single sign-on", err)
	}
	return u, nil
}

func (s *Store) oidcRefused(ctx context.Context, meta keyledger.Actor, u *keyledger.User, email, reason string) error {
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var subjectID int64
		if u != nil {
			subjectID = u.ID
		}
		return writeAudit(ctx, tx, auditEntry{Actor: meta, Action: keyledger.ActionSignInFailed, SubjectID: subjectID,
			SubjectEmail: truncate(email, 254), Details: map[string]any{"method": "oidc", "reason": reason}})
	})
	if err != nil {
		return s.internal(ctx, "single sign-on: record refusal", err)
	}
	return nil
}

// OIDCSignInFailed audits a single sign-on that failed before a person
// was identified (a bad state, an ID token that did not verify, an
// unverified email). email is what the identity provider claimed, or "".
// These failures do not count towards the password throttle: nothing was
// guessed here.
func (s *Store) OIDCSignInFailed(ctx context.Context, meta keyledger.Actor, email, reason string) error {
	return s.oidcRefused(ctx, meta, nil, keyledger.NormalizeEmail(email), reason)
}

// StartOIDCSession signs u in after single sign-on. It is StartSession
// with the audit event saying method=oidc, and with the session's step-up
// time set to when the identity provider last authenticated the person
// (authTime, the ID token's auth_time). A provider that signs people in
// silently from an old session of its own therefore does not vouch for a
// fresh step-up. A token without auth_time proves nothing about when the
// person last authenticated, so the session starts with no step-up at all
// (fail closed): they confirm it is them before anything that needs it. Users with two-factor sign-in get a
// pending session: single sign-on replaces the password, not keyledger's
// second factor.
func (s *Store) StartOIDCSession(ctx context.Context, meta keyledger.Actor, u *keyledger.User, t SessionTimeouts, authTime time.Time) (string, error) {
	if authTime.IsZero() {
		authTime = neverFresh
	}
	return s.startSession(ctx, meta, u, t, authTime, map[string]any{"method": "oidc"})
}

// neverFresh is a step-up time long past any window (zero would mean "now"
// to startSession).
var neverFresh = time.Unix(1, 0).UTC()

// domainAllowed reports whether email is one address with exactly one @
// whose domain is one of allowed (exact, case-insensitive).
func domainAllowed(email string, allowed []string) bool {
	// Parsed again here, not only by CheckEmail before: this check admits
	// strangers, so it must not rest on its caller.
	domain, ok := keyledger.EmailDomain(email)
	if !ok {
		return false
	}
	for _, d := range allowed {
		if domain != "" && strings.EqualFold(strings.TrimPrefix(strings.TrimSpace(d), "@"), domain) {
			return true
		}
	}
	return false
}

// oidcName keeps a display name from the identity provider only if it is
// plain text, cut to 200 characters.
func oidcName(n string) string {
	n = strings.TrimSpace(n)
	if !utf8.ValidString(n) {
		return ""
	}
	if r := []rune(n); len(r) > 200 {
		n = strings.TrimSpace(string(r[:200]))
	}
	// The same rule as a name typed into keyledger: no control, invisible
	// or text-direction characters.
	if keyledger.CheckName(n, 200) != "" {
		return ""
	}
	return n
}
