package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

// totpPeriod is the standard 30-second step.
const totpPeriod = 30

func totpSubject(userID int64) string { return fmt.Sprintf("user/%d/totp", userID) }

// TOTPEnrollment is a secret being set up: shown as a QR code and a text
// key until the person confirms it with a code.
type TOTPEnrollment struct {
	Secret string // base32, for typing in by hand
	URL    string // otpauth:// for the QR code
}

// BeginTOTP creates a new secret for actor and keeps it, sealed, until it
// is confirmed. Starting again replaces an unconfirmed secret.
func (s *Store) BeginTOTP(ctx context.Context, actor keyledger.Actor, issuer string) (TOTPEnrollment, error) {
	if err := noToken(actor); err != nil {
		return TOTPEnrollment{}, err
	}
	var out TOTPEnrollment
	if !actor.User.Active() {
		return out, ErrNoSession
	}
	if actor.User.TOTPEnabled {
		return out, keyledger.Errorf(keyledger.ECONFLICT, "Two-factor sign-in is already on. Turn it off first to enroll a new device.")
	}
	key, err := totp.Generate(totp.GenerateOpts{Issuer: issuer, AccountName: actor.User.Email, Period: totpPeriod, SecretSize: 20, Algorithm: otp.AlgorithmSHA1, Digits: otp.DigitsSix})
	if err != nil {
		return out, fmt.Errorf("generate two-factor secret: %w", err)
	}
	env, err := s.keyring.Seal(totpSubject(actor.User.ID), []byte(key.Secret()))
	if err != nil {
		return out, err
	}
	if _, err := s.pool.Exec(ctx, `UPDATE users SET totp_kek_id = $2, totp_wrapped_dek = $3, totp_nonce = $4, totp_ciphertext = $5, totp_last_step = 0
		WHERE id = $1 AND totp_enabled_at IS NULL`, actor.User.ID, env.KEKID, env.WrappedDEK, env.Nonce, env.Ciphertext); err != nil {
		return out, s.internal(ctx, "store two-factor secret", err)
	}
	return TOTPEnrollment{Secret: key.Secret(), URL: key.URL()}, nil
}

// checkTOTP validates a code against the user's sealed secret inside tx,
// accepting one step of clock skew and each step only once.
func (s *Store) checkTOTP(ctx context.Context, tx pgx.Tx, userID int64, code string) (bool, error) {
	code = strings.ReplaceAll(strings.TrimSpace(code), " ", "")
	if len(code) != 6 {
		return false, nil
	}
	var env crypto.Envelope
	var last int64
	err := tx.QueryRow(ctx, `SELECT coalesce(totp_kek_id, ''), totp_wrapped_dek, totp_nonce, totp_ciphertext, totp_last_step
		FROM users WHERE id = $1 FOR UPDATE`, userID).Scan(&env.KEKID, &env.WrappedDEK, &env.Nonce, &env.Ciphertext, &last)
	if err != nil {
		return false, err
	}
	if env.KEKID == "" {
		return false, nil
	}
	secret, err := s.keyring.Open(totpSubject(userID), env)
	if err != nil {
		return false, fmt.Errorf("open two-factor secret: %w", err)
	}
	defer clear(secret)
	now := s.now()
	step := now.Unix() / totpPeriod
	for _, d := range []int64{0, -1, 1} {
		st := step + d
		if st <= last {
			continue
		}
		want, err := totp.GenerateCodeCustom(string(secret), time.Unix(st*totpPeriod, 0), totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return false, err
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			_, err := tx.Exec(ctx, "UPDATE users SET totp_last_step = $2 WHERE id = $1", userID, st)
			return err == nil, err
		}
	}
	return false, nil
}

// RecoveryCodeCount is how many one-time codes enrollment hands out.
const RecoveryCodeCount = 10

func (s *Store) recoveryHash(userID int64, code string) []byte {
	m := hmac.New(sha256.New, s.fingerprintKey)
	fmt.Fprintf(m, "keyledger recovery v1\x00%d\x00%s", userID, normalizeRecovery(code))
	return m.Sum(nil)
}

func normalizeRecovery(code string) string {
	return strings.ToUpper(strings.NewReplacer("-", "", " ", "").Replace(strings.TrimSpace(code)))
}

// ConfirmTOTP turns two-factor sign-in on once the person proves their
// device works, and returns recovery codes to show exactly once. It needs
// a fresh proof (password, or a step-up within the window; see
// freshProof): a stale, perhaps stolen, session must not put a device of
// the thief's on the account. sessionID is the enrolling session, which
// the new factor will not step up (see StepUp).
func (s *Store) ConfirmTOTP(ctx context.Context, actor keyledger.Actor, sessionID, code, password string) ([]string, error) {
	if err := noToken(actor); err != nil {
		return nil, err
	}
	if !actor.User.Active() {
		return nil, ErrNoSession
	}
	if err := s.freshProof(ctx, actor, "enable_totp", "current_password", password); err != nil {
		return nil, err
	}
	var enrolledBy []byte
	if sessionID != "" {
		enrolledBy = hashSessionID(sessionID)
	}
	codes := make([]string, RecoveryCodeCount)
	for i := range codes {
		b, err := crypto.RandomBytes(10)
		if err != nil {
			return nil, err
		}
		c := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
		codes[i] = c[:4] + "-" + c[4:8] + "-" + c[8:12] + "-" + c[12:16]
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		ok, err := s.checkTOTP(ctx, tx, actor.User.ID, code)
		if err != nil {
			return err
		}
		if !ok {
			return &keyledger.Error{Code: keyledger.EINVALID, Message: "That code did not match.",
				Fields: map[string]string{"code": "That code did not match. Check the time on your phone and enter the current 6-digit code."}}
		}
		tag, err := tx.Exec(ctx, "UPDATE users SET totp_enabled_at = $2, totp_enrolled_session = $3, updated_at = $2 WHERE id = $1 AND totp_enabled_at IS NULL",
			actor.User.ID, s.now(), enrolledBy)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return keyledger.Errorf(keyledger.ECONFLICT, "Two-factor sign-in is already on.")
		}
		if _, err := tx.Exec(ctx, "DELETE FROM recovery_codes WHERE user_id = $1", actor.User.ID); err != nil {
			return err
		}
		for _, c := range codes {
			if _, err := tx.Exec(ctx, "INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)", actor.User.ID, s.recoveryHash(actor.User.ID, c)); err != nil {
				return err
			}
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionTOTPEnable, SubjectID: actor.User.ID, SubjectEmail: actor.User.Email})
	})
	if err != nil {
		return nil, s.internal(ctx, "confirm two-factor", err)
	}
	return codes, nil
}

// DisableTOTP turns two-factor sign-in off after a fresh proof: the
// password, or (password empty) a step-up within the window, which is how
// an account without a password (single sign-on only) confirms.
func (s *Store) DisableTOTP(ctx context.Context, actor keyledger.Actor, password string) error {
	if err := noToken(actor); err != nil {
		return err
	}
	if !actor.User.Active() {
		return ErrNoSession
	}
	if err := s.freshProof(ctx, actor, "disable_totp", "password", password); err != nil {
		return err
	}
	// A role that requires two-factor sign-in now refuses the user's
	// tokens: forget the answers cached while it was on.
	defer s.tokens.clear()
	err := s.tx(ctx, func(tx pgx.Tx) error {
		if err := clearTOTP(ctx, tx, actor.User.ID); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionTOTPDisable, SubjectID: actor.User.ID, SubjectEmail: actor.User.Email})
	})
	return s.internal(ctx, "disable two-factor", err)
}

// clearTOTP forgets a user's second factor and recovery codes.
func clearTOTP(ctx context.Context, tx pgx.Tx, userID int64) error {
	if _, err := tx.Exec(ctx, `UPDATE users SET totp_enabled_at = NULL, totp_kek_id = NULL, totp_wrapped_dek = NULL, totp_nonce = NULL,
		totp_ciphertext = NULL, totp_last_step = 0, totp_enrolled_session = NULL, updated_at = now() WHERE id = $1`, userID); err != nil {
		return err
	}
	_, err := tx.Exec(ctx, "DELETE FROM recovery_codes WHERE user_id = $1", userID)
	return err
}

// ResetTOTP turns off another user's two-factor sign-in, for a person who
// lost their device or was locked out by a device a thief enrolled. Admins
// only, never their own (keyledger.CanResetTOTP). The user's sessions end
// too, since one of them may be the thief's; the user signs in again with
// their password and sets up a new device. Audited; the caller tells the
// user.
func (s *Store) ResetTOTP(ctx context.Context, actor keyledger.Actor, userID int64) (*keyledger.User, error) {
	if err := noToken(actor); err != nil {
		return nil, err
	}
	if err := keyledger.CheckCredentialGrant(actor, s.now()); err != nil {
		return nil, err
	}
	defer s.tokens.clear()
	var u *keyledger.User
	err := s.tx(ctx, func(tx pgx.Tx) error {
		actor, err := freshActorMay(ctx, tx, actor, keyledger.CanAdminister)
		if err != nil {
			return err
		}
		u, err = scanUser(tx.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE id = $1 FOR UPDATE", userID))
		if errors.Is(err, pgx.ErrNoRows) {
			return keyledger.ErrNotFound("User")
		}
		if err != nil {
			return err
		}
		if err := keyledger.CanResetTOTP(actor.User, u); err != nil {
			return err
		}
		if !u.TOTPEnabled {
			return keyledger.Errorf(keyledger.ECONFLICT, "%s has no two-factor sign-in to reset.", u.Email)
		}
		if err := clearTOTP(ctx, tx, u.ID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "DELETE FROM sessions WHERE user_id = $1", u.ID)
		if err != nil {
			return err
		}
		u.TOTPEnabled = false
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionTOTPReset, SubjectID: u.ID, SubjectEmail: u.Email,
			Details: map[string]any{"sessions_ended": tag.RowsAffected()}})
	})
	if err != nil {
		return nil, s.internal(ctx, "reset two-factor", err)
	}
	return u, nil
}

// freshProof checks that the person behind actor confirmed who they are
// just now: with their password when one is given (checkPassword:
// throttled, failures counted and audited), or else with a step-up of this
// session within keyledger.StepUpWindow. Single sign-on accounts without
// a password confirm through their identity provider: signing in again
// starts the window at the provider's auth_time (StartOIDCSession). field
// names the form's password field for the error.
func (s *Store) freshProof(ctx context.Context, actor keyledger.Actor, purpose, field, password string) error {
	if password != "" {
		err := s.checkPassword(ctx, actor, purpose, password)
		if keyledger.ErrorCode(err) == keyledger.EINVALID {
			return &keyledger.Error{Code: keyledger.EINVALID, Message: "Your current password is not right.",
				Fields: map[string]string{field: "Your current password is not right."}}
		}
		return err
	}
	if keyledger.FreshProof(actor, s.now()) {
		return nil
	}
	return &keyledger.Error{Code: keyledger.EINVALID,
		Message: "Confirm it is you: enter your current password. (If you sign in only through single sign-on, sign out and sign in again, then do this within 10 minutes.)",
		Fields:  map[string]string{field: "Enter your current password: you last confirmed it is you more than 10 minutes ago."}}
}

// ErrBadCode answers a wrong second factor.
var ErrBadCode = &keyledger.Error{Code: keyledger.EUNAUTHORIZED, Message: "That code did not match.",
	Fields: map[string]string{"code": "That code did not match. Enter the current 6-digit code, or one of your recovery codes."}}

// CompleteTOTP finishes a pending sign-in with a TOTP code or a recovery
// code (each good once). Failures count towards the sign-in throttle.
func (s *Store) CompleteTOTP(ctx context.Context, meta keyledger.Actor, sessionID, code string, t SessionTimeouts) (*keyledger.User, error) {
	st, err := s.Session(ctx, sessionID, t)
	if err != nil {
		return nil, err
	}
	if !st.PendingTOTP {
		return st.User, nil
	}
	u := st.User
	meta.User = u
	att, err := s.admit(ctx, meta, u.Email, u.ID, "totp")
	if err != nil {
		return nil, err
	}
	ok := false
	usedRecovery := false
	err = s.tx(ctx, func(tx pgx.Tx) error {
		var err error
		if ok, err = s.checkTOTP(ctx, tx, u.ID, code); err != nil || ok {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL`,
			u.ID, s.recoveryHash(u.ID, code), s.now())
		if err != nil {
			return err
		}
		ok = tag.RowsAffected() == 1
		usedRecovery = ok
		return nil
	})
	if err != nil {
		return nil, s.internal(ctx, "two-factor: check code", err)
	}
	if !ok {
		if err := s.failed(ctx, auditEntry{Actor: meta, Action: keyledger.ActionTOTPFailed, SubjectID: u.ID, SubjectEmail: u.Email}); err != nil {
			return nil, err
		}
		return nil, ErrBadCode
	}
	if err := s.forgive(ctx, att, true); err != nil {
		return nil, err
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "UPDATE sessions SET pending_totp = false, step_up_at = $2 WHERE id_hash = $1", hashSessionID(sessionID), s.now()); err != nil {
			return err
		}
		details := map[string]any{"second_factor": "totp"}
		if usedRecovery {
			details["second_factor"] = "recovery_code"
		}
		return writeAudit(ctx, tx, auditEntry{Actor: meta, Action: keyledger.ActionSignIn, SubjectID: u.ID, SubjectEmail: u.Email, Details: details})
	})
	if err != nil {
		return nil, s.internal(ctx, "two-factor: finish sign-in", err)
	}
	return u, nil
}

// StepUp records that the person behind a session just proved themselves
// again, with their password or a two-factor code.
func (s *Store) StepUp(ctx context.Context, meta keyledger.Actor, sessionID, secret string) (time.Time, error) {
	if meta.User == nil || sessionID == "" {
		return time.Time{}, ErrNoSession
	}
	u := meta.User
	// The throttle first: while it refuses, no code is compared and no
	// password hashed, so even the right one gets no answer.
	att, err := s.admit(ctx, meta, u.Email, u.ID, "step_up")
	if err != nil {
		return time.Time{}, err
	}
	ok := false
	// enrolledHere: this session enrolled the user's second factor, so
	// its codes prove nothing about who holds the session (see
	// users.totp_enrolled_session); only the password does.
	enrolledHere := false
	err = s.tx(ctx, func(tx pgx.Tx) error {
		if u.TOTPEnabled {
			if err := tx.QueryRow(ctx, "SELECT coalesce(totp_enrolled_session = $2, false) FROM users WHERE id = $1",
				u.ID, hashSessionID(sessionID)).Scan(&enrolledHere); err != nil {
				return err
			}
			if enrolledHere {
				return nil
			}
			var err error
			if ok, err = s.checkTOTP(ctx, tx, u.ID, secret); err != nil || ok {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return time.Time{}, s.internal(ctx, "step up", err)
	}
	if !ok {
		switch err := s.verifyStoredPassword(ctx, u.ID, secret); keyledger.ErrorCode(err) {
		case "":
			ok = true
		case keyledger.EINVALID:
		default:
			return time.Time{}, err
		}
	}
	if !ok {
		// Counted already (admit); audited here, code or password alike.
		if err := s.failed(ctx, auditEntry{Actor: meta, Action: keyledger.ActionReauthFailed, SubjectID: u.ID, SubjectEmail: u.Email,
			Details: map[string]any{"purpose": "step_up"}}); err != nil {
			return time.Time{}, err
		}
		msg := "That password or code did not match."
		if enrolledHere {
			msg = "That password did not match. A code from the device set up in this session does not count here: enter your password."
		}
		return time.Time{}, &keyledger.Error{Code: keyledger.ESTEPUP, Message: msg, Fields: map[string]string{"step_up": msg}}
	}
	if err := s.forgive(ctx, att, false); err != nil {
		return time.Time{}, err
	}
	now := s.now()
	err = s.tx(ctx, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, "UPDATE sessions SET step_up_at = $3 WHERE id_hash = $1 AND user_id = $2", hashSessionID(sessionID), u.ID, now)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrNoSession
		}
		return writeAudit(ctx, tx, auditEntry{Actor: meta, Action: keyledger.ActionStepUp, SubjectID: u.ID, SubjectEmail: u.Email,
			Details: map[string]any{"result": "ok"}})
	})
	if err != nil {
		return time.Time{}, s.internal(ctx, "step up", err)
	}
	return now, nil
}

// checkPassword verifies the actor's password (constant time, argon2id)
// when they confirm who they are. It passes the same throttle as sign-in
// first, and failures are counted and audited: a stolen session must not
// become a way to guess the password.
func (s *Store) checkPassword(ctx context.Context, actor keyledger.Actor, purpose, password string) error {
	if actor.User == nil {
		return ErrNoSession
	}
	userID := actor.User.ID
	att, err := s.admit(ctx, actor, actor.User.Email, userID, purpose)
	if err != nil {
		return err
	}
	err = s.verifyStoredPassword(ctx, userID, password)
	switch keyledger.ErrorCode(err) {
	case "":
		return s.forgive(ctx, att, false)
	case keyledger.EINVALID:
		if rerr := s.failed(ctx, auditEntry{Actor: actor, Action: keyledger.ActionReauthFailed, SubjectID: userID, SubjectEmail: actor.User.Email,
			Details: map[string]any{"purpose": purpose}}); rerr != nil {
			return rerr
		}
	}
	return err
}

func (s *Store) verifyStoredPassword(ctx context.Context, userID int64, password string) error {
	var hash *string
	err := s.pool.QueryRow(ctx, "SELECT password_hash FROM users WHERE id = $1", userID).Scan(&hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return ErrNoSession
	}
	if err != nil {
		return s.internal(ctx, "check password", err)
	}
	if len(password) > maxPasswordBytes {
		// Too long to be anyone's password: wrong, without a hash.
		return badPassword()
	}
	if hash == nil {
		_, _, _ = s.verifyPassword(ctx, "x", s.dummyHash)
		return badPassword()
	}
	ok, _, err := s.verifyPassword(ctx, password, *hash)
	if err != nil && ctx.Err() != nil {
		return s.internal(ctx, "confirm password", err)
	}
	if err != nil || !ok {
		return badPassword()
	}
	return nil
}

// HasPassword reports whether the actor has a password to confirm with
// (an account made by single sign-on has none until a set-password link).
func (s *Store) HasPassword(ctx context.Context, actor keyledger.Actor) (bool, error) {
	// Only ever about the asker themselves: there is no id to ask about.
	if actor.User == nil {
		return false, keyledger.Errorf(keyledger.EUNAUTHORIZED, "Please sign in.")
	}
	var has bool
	if err := s.pool.QueryRow(ctx, "SELECT password_hash IS NOT NULL FROM users WHERE id = $1", actor.User.ID).Scan(&has); err != nil {
		return false, s.internal(ctx, "has password", err)
	}
	return has, nil
}

func badPassword() error {
	return &keyledger.Error{Code: keyledger.EINVALID, Message: "That password is not right.",
		Fields: map[string]string{"current_password": "That password is not right.", "password": "That password is not right."}}
}
