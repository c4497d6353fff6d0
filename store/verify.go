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

// CanVerify decides who may trigger a check: anyone who may reveal the key
// or edit it. The check uses the value but shows it to nobody.
func canVerify(u *keyledger.User, k *keyledger.Key) error {
	if keyledger.CanReveal(u, k.EnvironmentInfo, k.OwnerID) == nil || keyledger.CanEditKey(u, k.OwnerID) == nil {
		return nil
	}
	return keyledger.Errorf(keyledger.EFORBIDDEN, "Only people who may reveal or edit this key may check it.")
}

// VerifyKey uses the key's current value against its provider and records
// the result. The value is decrypted in memory, sent only to the provider,
// and never returned; the audit event records a use by the system on
// behalf of actor, not a reveal. actor.User nil means the scheduler.
func (s *Store) VerifyKey(ctx context.Context, actor keyledger.Actor, id string, v keyledger.Verifier) (keyledger.VerifyResult, error) {
	var res keyledger.VerifyResult
	if err := keyledger.CheckScope(actor, keyledger.ScopeWrite); err != nil {
		return res, err
	}
	if !isUUID(id) {
		return res, keyledger.ErrNotFound("Key")
	}
	k, err := scanKey(s.pool.QueryRow(ctx, keySelect+" WHERE k.id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return res, keyledger.ErrNotFound("Key")
	}
	if err != nil {
		return res, s.internal(ctx, "verify key "+id, err)
	}
	if actor, err = freshActor(ctx, s.pool, actor); err != nil {
		return res, s.internal(ctx, "verify key "+id, err)
	}
	if actor.User != nil {
		if err := canVerify(actor.User, k); err != nil {
			return res, err
		}
	}
	if k.Archived() {
		return res, keyledger.Errorf(keyledger.ECONFLICT, "This key is archived; there is nothing to check.")
	}
	if v == nil {
		return res, keyledger.Errorf(keyledger.EUNAVAILABLE, "Checking keys against providers is not configured on this server.")
	}
	if !v.Supports(k.Provider) {
		return res, keyledger.Errorf(keyledger.EINVALID, "keyledger cannot check %s keys automatically; mark it verified by hand with a note.", k.Provider.Label())
	}
	var env crypto.Envelope
	err = s.pool.QueryRow(ctx, `SELECT coalesce(kek_id, ''), wrapped_dek, nonce, ciphertext FROM key_versions
		WHERE key_id = $1 AND version = $2 AND destroyed_at IS NULL`, id, k.CurrentVersion).Scan(&env.KEKID, &env.WrappedDEK, &env.Nonce, &env.Ciphertext)
	if err != nil {
		return res, s.internal(ctx, "verify key "+id, err)
	}
	value, err := s.keyring.Open(versionSubject(id, k.CurrentVersion), env)
	if err != nil {
		s.log.ErrorContext(ctx, "key version does not decrypt", "key_id", id, "version", k.CurrentVersion, "err", err)
		return res, &keyledger.Error{Code: keyledger.EINTERNAL, Message: "This key's stored value failed its integrity check; it was not sent anywhere."}
	}
	// No transaction is held across the provider call: it may take ten
	// seconds, and a connection held that long is one nobody else gets.
	res = v.Verify(ctx, k.Provider, string(value))
	clear(value)
	res.Message = limitMessage(res.Message)
	if err := s.recordVerification(ctx, actor, k, res, 0); err != nil {
		return res, err
	}
	return res, nil
}

// MarkVerified records a check done by hand, for providers keyledger cannot
// call. The note says what was checked.
func (s *Store) MarkVerified(ctx context.Context, actor keyledger.Actor, id, note string) error {
	if !isUUID(id) {
		return keyledger.ErrNotFound("Key")
	}
	note = strings.TrimSpace(note)
	var v keyledger.Validation
	if note == "" {
		v.Add("note", "Say how you checked the key (e.g. \"signed in to the AWS console with it\").")
	} else if len([]rune(note)) > 300 {
		v.Add("note", "The note is too long (at most 300 characters).")
	} else if _, err := keyledger.CheckReason(note, false); err != nil {
		v.Add("note", "The note must be plain text without control characters.")
	}
	if err := v.Err(); err != nil {
		return err
	}
	if err := keyledger.CheckScope(actor, keyledger.ScopeWrite); err != nil {
		return err
	}
	actor, err := freshActor(ctx, s.pool, actor)
	if err != nil {
		return s.internal(ctx, "mark verified", err)
	}
	k, err := s.GetKey(ctx, actor, id)
	if err != nil {
		return err
	}
	if err := keyledger.CanEditKey(actor.User, k.OwnerID); err != nil {
		return err
	}
	if k.Archived() {
		return keyledger.Errorf(keyledger.ECONFLICT, "This key is archived.")
	}
	return s.recordVerification(ctx, actor, k, keyledger.VerifyResult{Result: keyledger.VerifyManual, Message: "Checked by hand: " + note}, actor.User.ID)
}

func (s *Store) recordVerification(ctx context.Context, actor keyledger.Actor, k *keyledger.Key, res keyledger.VerifyResult, by int64) error {
	if actor.User == nil && actor.Name == "" {
		actor = keyledger.SystemActor("scheduler")
	}
	var verifiedBy *int64
	if by != 0 {
		verifiedBy = &by
	}
	stale := false
	err := s.tx(ctx, func(tx pgx.Tx) error {
		// Only a check of the version still current describes the key: a
		// rotation that landed while the provider was answering wins.
		tag, err := tx.Exec(ctx, `UPDATE keys SET last_verified_at = $2, verify_result = $3, verify_message = $4, verified_by = $5
			WHERE id = $1 AND current_version = $6`, k.ID, s.now(), res.Result, res.Message, verifiedBy, k.CurrentVersion)
		if err != nil {
			return err
		}
		details := map[string]any{"result": res.Result, "message": res.Message, "provider": string(k.Provider)}
		if tag.RowsAffected() == 0 {
			// The use still happened and is recorded, for the version used.
			stale = true
			details["superseded_during_check"] = true
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionKeyVerify, KeyID: k.ID, KeyName: k.Name,
			KeyVersion: k.CurrentVersion, Environment: k.Environment, Details: details})
	})
	if err != nil {
		return s.internal(ctx, "record verification of "+k.ID, err)
	}
	if stale {
		return keyledger.Errorf(keyledger.ECONFLICT, "The key was rotated while it was being checked; check it again.")
	}
	return nil
}

func limitMessage(m string) string {
	m = strings.ToValidUTF8(m, "")
	if r := []rune(m); len(r) > 300 {
		m = string(r[:300])
	}
	return m
}

// KeysToVerify lists live keys of providers v supports whose last check is
// older than interval (or that were never checked), oldest first. Keys
// checked by hand are left alone: keyledger cannot check them itself.
func (s *Store) KeysToVerify(ctx context.Context, v keyledger.Verifier, interval time.Duration, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, "SELECT DISTINCT provider FROM keys WHERE archived_at IS NULL")
	if err != nil {
		return nil, s.internal(ctx, "keys to verify", err)
	}
	all, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.internal(ctx, "keys to verify", err)
	}
	var supported []string
	for _, p := range all {
		if v.Supports(keyledger.Provider(p)) {
			supported = append(supported, p)
		}
	}
	if len(supported) == 0 {
		return nil, nil
	}
	rows, err = s.pool.Query(ctx, `SELECT id::text FROM keys WHERE archived_at IS NULL AND provider = ANY($3)
		AND (last_verified_at IS NULL OR last_verified_at < $1)
		ORDER BY last_verified_at NULLS FIRST, id LIMIT $2`, s.now().Add(-interval), limit, supported)
	if err != nil {
		return nil, s.internal(ctx, "keys to verify", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, s.internal(ctx, "keys to verify", err)
	}
	return ids, nil
}
