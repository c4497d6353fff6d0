package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// providerRotateTimeout bounds the provider call of a rotation: a person
// may be waiting on the page.
const providerRotateTimeout = 20 * time.Second

// ProviderRotateRetry is how long an automated rotation that failed waits
// before the job tries it again: a provider that said 429 or refused the
// admin key is not asked again every scan.
const ProviderRotateRetry = time.Hour

// ProviderRotation reads key k's automated rotation at its provider (off
// and empty when nobody turned it on), for the key's page. Anyone who may
// see the key may see this; nothing in it is secret.
func (s *Store) ProviderRotation(ctx context.Context, actor keyledger.Actor, k *keyledger.Key) (keyledger.ProviderRotation, error) {
	var r keyledger.ProviderRotation
	if err := mayRead(actor, keyledger.CanUse); err != nil {
		return r, err
	}
	err := s.pool.QueryRow(ctx, `SELECT r.enabled, coalesce(u.email, ''), r.changed_at, r.last_attempt_at, r.last_error, r.last_rotated_at
		FROM key_provider_rotations r LEFT JOIN users u ON u.id = r.changed_by WHERE r.key_id = $1`, k.ID).
		Scan(&r.Enabled, &r.ChangedBy, &r.ChangedAt, &r.LastAttemptAt, &r.LastError, &r.LastRotatedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return r, nil
	}
	if err != nil {
		return r, s.internal(ctx, "read provider rotation", err)
	}
	return r, nil
}

// SetAutoRotate turns automated rotation at the provider on or off for a
// key (keyledger.CanRotateAtProvider: leads and admins). Turning it on
// needs a key keyledger can rotate there (keyledger.RotatableAtProvider);
// turning it off always works. Audited either way. An access token needs
// the write scope: like the connections it uses, a lead's or admin's
// token may do it (the job later acts as the person, not the token).
func (s *Store) SetAutoRotate(ctx context.Context, actor keyledger.Actor, keyID string, on bool) error {
	if err := keyledger.CheckScope(actor, keyledger.ScopeWrite); err != nil {
		return err
	}
	k, err := s.GetKey(ctx, actor, keyID)
	if err != nil {
		return err
	}
	if err := keyledger.CanRotateAtProvider(actor.User); err != nil {
		return err
	}
	var target keyledger.KeyAtProvider
	if on {
		list, err := s.KeysAtProvider(ctx, actor, k)
		if err != nil {
			return err
		}
		if target, err = keyledger.RotatableAtProvider(k, list); err != nil {
			return err
		}
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		actor, err := freshActorMay(ctx, tx, actor, keyledger.CanRotateAtProvider)
		if err != nil {
			return err
		}
		now := s.now()
		var was bool
		err = tx.QueryRow(ctx, `SELECT enabled FROM key_provider_rotations WHERE key_id = $1 FOR UPDATE`, keyID).Scan(&was)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if was == on {
			return nil // already so: nothing to record
		}
		if _, err := tx.Exec(ctx, `INSERT INTO key_provider_rotations (key_id, enabled, changed_by, changed_at) VALUES ($1, $2, $3, $4)
			ON CONFLICT (key_id) DO UPDATE SET enabled = excluded.enabled, changed_by = excluded.changed_by, changed_at = excluded.changed_at`,
			keyID, on, actor.User.ID, now); err != nil {
			return err
		}
		action, details := keyledger.ActionAutoRotateOff, map[string]any{}
		if on {
			action = keyledger.ActionAutoRotateOn
			details = map[string]any{"provider": string(target.Provider), "connection_id": target.ConnectionID, "connection": target.ConnectionName,
				"provider_key_id": target.ProviderKeyID, "project": target.ProjectID, "rotate_by": k.RotateBy.UTC().Format(time.DateOnly)}
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: action, KeyID: k.ID, KeyName: k.Name, Environment: k.Environment, Details: details})
	})
	if err != nil {
		return s.internal(ctx, "set automated rotation of key "+keyID, err)
	}
	return nil
}

// RotateAtProvider is "Rotate now at OpenAI": a lead or admin rotates a
// key keyledger can rotate at its provider, whether or not automated
// rotation is on for it. An access token needs the write scope, as for
// any rotation: the new value goes into keyledger, never to the caller.
func (s *Store) RotateAtProvider(ctx context.Context, actor keyledger.Actor, pa keyledger.ProviderAdmin, keyID string) (*keyledger.Key, error) {
	if err := keyledger.CheckScope(actor, keyledger.ScopeWrite); err != nil {
		return nil, err
	}
	k, err := s.GetKey(ctx, actor, keyID)
	if err != nil {
		return nil, err
	}
	fresh, err := freshActorMay(ctx, s.pool, actor, keyledger.CanRotateAtProvider)
	if err != nil {
		return nil, err
	}
	return s.rotateAtProvider(ctx, fresh, pa, k, false)
}

// AutoRotateKey is the job's rotation of one key whose automated rotation
// is on and whose rotation is due. It acts as the lead or admin who
// turned it on, re-read now: someone who left or lost the role no longer
// rotates anything, and the key page says so.
func (s *Store) AutoRotateKey(ctx context.Context, pa keyledger.ProviderAdmin, keyID string) (*keyledger.Key, error) {
	if !isUUID(keyID) {
		return nil, keyledger.ErrNotFound("Key")
	}
	var userID int64
	var enabled bool
	err := s.pool.QueryRow(ctx, `SELECT enabled, coalesce(changed_by, 0) FROM key_provider_rotations WHERE key_id = $1`, keyID).Scan(&enabled, &userID)
	if errors.Is(err, pgx.ErrNoRows) || (err == nil && !enabled) {
		return nil, keyledger.Errorf(keyledger.ECONFLICT, "Automated rotation is off for this key.")
	}
	if err != nil {
		return nil, s.internal(ctx, "read automated rotation", err)
	}
	u, err := s.userByID(ctx, userID)
	if err != nil {
		return nil, err
	}
	actor := keyledger.Actor{User: u, Name: "scheduler", UserAgent: "keyledger scheduler (automated rotation)"}
	k, err := scanKey(s.pool.QueryRow(ctx, keySelect+" WHERE k.id = $1", keyID))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyledger.ErrNotFound("Key")
	}
	if err != nil {
		return nil, s.internal(ctx, "read key", err)
	}
	if err := keyledger.CanRotateAtProvider(u); err != nil {
		cause := keyledger.Errorf(keyledger.EFORBIDDEN, "%s turned automated rotation on but is no longer an active lead or admin, so it did not run. A lead or admin must turn it on again.", u.Email)
		return nil, s.rotateRefused(ctx, keyledger.SystemActor("scheduler"), k, nil, true, cause, nil)
	}
	return s.rotateAtProvider(ctx, actor, pa, k, true)
}

// rotateAtProvider creates the new key at the provider (a new OpenAI
// service account in the old key's project), stores its value exactly as
// returned as the key's new version through the one rotation path (same
// audit event, the default grace period), links the new provider key and
// marks the old one to be revoked when the grace period ends. A refusal
// leaves the key as it was and is recorded and audited. The value is in
// no log line, error or audit detail.
func (s *Store) rotateAtProvider(ctx context.Context, actor keyledger.Actor, pa keyledger.ProviderAdmin, k *keyledger.Key, automated bool) (*keyledger.Key, error) {
	list, err := s.KeysAtProvider(ctx, actor, k)
	if err != nil {
		return nil, err
	}
	target, err := keyledger.RotatableAtProvider(k, list)
	if err != nil {
		return nil, s.rotateRefused(ctx, actor, k, nil, automated, err, nil)
	}
	sa, ok := pa.(keyledger.ServiceAccountAdmin)
	if pa == nil || !ok || !pa.Supports(target.Provider) {
		return nil, s.rotateRefused(ctx, actor, k, &target, automated,
			keyledger.Errorf(keyledger.EUNAVAILABLE, "This keyledger has no admin client that creates %s keys; rotate the key by hand.", target.Provider.Label()), nil)
	}
	cred, err := s.credential(ctx, target.ConnectionID)
	if err != nil {
		return nil, s.internal(ctx, "rotate at provider", err)
	}
	callCtx, cancel := context.WithTimeout(ctx, providerRotateTimeout)
	created, callErr := sa.CreateServiceAccount(callCtx, cred, target.ProjectID, serviceAccountName(k))
	cancel()
	if callErr != nil {
		return nil, s.rotateRefused(ctx, actor, k, &target, automated, providerCallFailure(target, callErr, rotateWords), callErr)
	}
	details := map[string]any{"at_provider": string(target.Provider), "automated": automated, "connection_id": target.ConnectionID,
		"connection": target.ConnectionName, "project": target.ProjectID, "service_account": created.ServiceAccountID,
		"provider_key_id": created.KeyID, "replaces_provider_key_id": target.ProviderKeyID}
	newKey, err := s.rotate(ctx, actor, k.ID, keyledger.RotateInput{Value: created.Value, KeepWhitespace: true,
		ExpectedVersion: strconv.Itoa(k.CurrentVersion)}, rotateExtra{details: details,
		beforeMatch: func(tx pgx.Tx, k *keyledger.Key, _ int, destroyAfter time.Time) error {
			return recordProviderRotation(ctx, tx, s.now(), k, target, created, destroyAfter)
		}})
	if err != nil {
		// The new key exists at the provider but keyledger could not keep
		// it (a rotation a moment ago, the database): delete it there, so
		// no key works that nobody has.
		undoCtx, cancel := context.WithTimeout(ctx, providerRevokeTimeout)
		revErr := pa.Revoke(undoCtx, cred, keyledger.ProviderKeyRef{ID: created.KeyID, Project: target.ProjectID})
		cancel()
		cause := keyledger.Errorf(keyledger.ECONFLICT, "keyledger could not store the new key from %s (%s); it was deleted there again. Nothing was rotated: the key is as it was.",
			target.Provider.Label(), keyledger.ErrorMessage(err))
		if revErr != nil {
			cause = keyledger.Errorf(keyledger.EUNAVAILABLE, "keyledger could not store the new key from %s (%s), and deleting it there failed too: delete key %s of service account %s in %s's dashboard. The key here is as it was.",
				target.Provider.Label(), keyledger.ErrorMessage(err), created.KeyID, created.ServiceAccountID, target.Provider.Label())
		}
		return nil, s.rotateRefused(ctx, actor, k, &target, automated, cause, nil)
	}
	return newKey, nil
}

// recordProviderRotation is the rotation's own step at the provider,
// inside its transaction: the new provider key's row (matched like any
// other right after, by the sync's rule; the next sync fills in what the
// provider lists for it), the old one's revoke date (the end of the old
// version's grace period), and the success on the key's rotation row.
func recordProviderRotation(ctx context.Context, tx pgx.Tx, now time.Time, k *keyledger.Key, old keyledger.KeyAtProvider, created keyledger.ServiceAccountKey, revokeAfter time.Time) error {
	hint := keyledger.MaskedHint(created.Value)
	if _, err := tx.Exec(ctx, `INSERT INTO provider_keys (connection_id, provider_key_id, name, hint, match_hint, project_id, project_name, status,
			created_at, created_by, owner_type, owner_active, first_seen_at, last_seen_at)
		VALUES ($1, $2, $3, $4, $4, $5, $6, $7, $8, $9, $10, true, $8, $8)
		ON CONFLICT (connection_id, provider_key_id) DO NOTHING`,
		old.ConnectionID, created.KeyID, created.Name, hint, old.ProjectID, old.ProjectName, keyledger.ProviderKeyActive,
		now, created.Name, keyledger.OwnerServiceAccount); err != nil {
		return fmt.Errorf("record new provider key: %w", err)
	}
	if _, err := tx.Exec(ctx, `UPDATE provider_keys SET revoke_after = $2, rotated_key = $3 WHERE id = $1`, old.ID, revokeAfter, k.ID); err != nil {
		return fmt.Errorf("mark old provider key: %w", err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO key_provider_rotations (key_id, enabled, changed_at, last_attempt_at, last_error, last_rotated_at)
		VALUES ($1, false, $2, $2, '', $2)
		ON CONFLICT (key_id) DO UPDATE SET last_attempt_at = $2, last_error = '', last_rotated_at = $2`, k.ID, now); err != nil {
		return fmt.Errorf("record rotation at provider: %w", err)
	}
	return nil
}

// serviceAccountName names the new service account after the key, so an
// admin looking at OpenAI's dashboard sees what it is for.
func serviceAccountName(k *keyledger.Key) string {
	name := "keyledger " + k.Name + " v" + strconv.Itoa(k.CurrentVersion+1)
	for utf8.RuneCountInString(name) > 64 {
		_, size := utf8.DecodeLastRuneInString(k.Name)
		k2 := *k
		k2.Name = k.Name[:len(k.Name)-size]
		k = &k2
		name = "keyledger " + k.Name + " v" + strconv.Itoa(k.CurrentVersion+1)
	}
	return name
}

// rotateRefused records a rotation that did not happen on the key's
// rotation row (shown on its page) and in the audit log, and returns the
// cause (plain words) for the caller. at is the provider key it would
// have replaced, when one was found; callErr the provider's answer, when
// it was asked (its kind and status go into the event).
func (s *Store) rotateRefused(ctx context.Context, actor keyledger.Actor, k *keyledger.Key, at *keyledger.KeyAtProvider, automated bool, cause, callErr error) error {
	msg := keyledger.ErrorMessage(cause)
	details := map[string]any{"automated": automated, "error": msg}
	if callErr != nil {
		details["kind"] = string(keyledger.ProviderAdminErrorKindOf(callErr))
		if st := providerStatus(callErr); st != 0 {
			details["status"] = st
		}
	}
	if at != nil {
		details["provider"], details["connection"], details["provider_key_id"] = string(at.Provider), at.ConnectionName, at.ProviderKeyID
	}
	err := s.recordRotateAttempt(ctx, k, msg, auditEntry{Actor: actor, Action: keyledger.ActionProviderRotateFailed,
		KeyID: k.ID, KeyName: k.Name, Environment: k.Environment, Details: details})
	if err != nil {
		return s.internal(ctx, "record failed rotation at provider", errors.Join(err, cause))
	}
	return cause
}

// recordRotateAttempt keeps a failed attempt's plain words on the key's
// rotation row and writes its audit event. Nothing else changes.
func (s *Store) recordRotateAttempt(ctx context.Context, k *keyledger.Key, msg string, e auditEntry) error {
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO key_provider_rotations (key_id, enabled, changed_at, last_attempt_at, last_error)
			VALUES ($1, false, $2, $2, $3)
			ON CONFLICT (key_id) DO UPDATE SET last_attempt_at = $2, last_error = $3`, k.ID, s.now(), msg); err != nil {
			return err
		}
		return writeAudit(ctx, tx, e)
	})
}

// KeysToRotateAtProvider lists the keys the job rotates now: automated
// rotation on, live, due (rotate-by reached), and not tried within
// ProviderRotateRetry.
func (s *Store) KeysToRotateAtProvider(ctx context.Context, limit int) ([]string, error) {
	now := s.now()
	rows, err := s.pool.Query(ctx, `SELECT k.id::text FROM key_provider_rotations r JOIN keys k ON k.id = r.key_id
		WHERE r.enabled AND k.archived_at IS NULL AND k.rotate_by <= $1 AND (r.last_attempt_at IS NULL OR r.last_attempt_at <= $2)
		ORDER BY k.rotate_by, k.id LIMIT $3`, now, now.Add(-ProviderRotateRetry), limit)
	if err != nil {
		return nil, fmt.Errorf("keys to rotate at provider: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("keys to rotate at provider: %w", err)
	}
	return ids, nil
}

// RevokeRotatedAway ends rotations at the provider whose grace period is
// over: each old provider key is revoked there through the revoke path
// (idempotent; a key the provider no longer knows counts as revoked),
// audited as key.provider_revoke by the scheduler. A key that is current
// again (rolled back) is never revoked. A failure is audited and shown on
// the key's page, and tried again at the next scan. It returns how many
// it revoked.
func (s *Store) RevokeRotatedAway(ctx context.Context, pa keyledger.ProviderAdmin) (int, error) {
	now := s.now()
	rows, err := s.pool.Query(ctx, `SELECT pk.id, pk.rotated_key::text FROM provider_keys pk
		JOIN provider_connections c ON c.id = pk.connection_id AND c.removed_at IS NULL
		JOIN keys k ON k.id = pk.rotated_key
		WHERE pk.revoke_after IS NOT NULL AND pk.revoke_after <= $1 AND pk.revoked_at IS NULL AND pk.deleted_at IS NULL
			AND pk.key_id IS DISTINCT FROM k.id AND pk.match_hint <> k.masked_hint
		ORDER BY pk.revoke_after, pk.id LIMIT 100`, now)
	if err != nil {
		return 0, fmt.Errorf("rotated-away provider keys: %w", err)
	}
	type due struct {
		id    int64
		keyID string
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (due, error) {
		var d due
		err := r.Scan(&d.id, &d.keyID)
		return d, err
	})
	if err != nil {
		return 0, fmt.Errorf("rotated-away provider keys: %w", err)
	}
	system := keyledger.SystemActor("scheduler")
	n := 0
	var errs []error
	for _, d := range list {
		k, err := scanKey(s.pool.QueryRow(ctx, keySelect+" WHERE k.id = $1", d.keyID))
		if err != nil {
			errs = append(errs, fmt.Errorf("read key %s: %w", d.keyID, err))
			continue
		}
		at, err := scanKeyAtProvider(s.pool.QueryRow(ctx, "SELECT "+keyAtProviderColumns+` FROM provider_keys pk
			JOIN provider_connections c ON c.id = pk.connection_id LEFT JOIN users ru ON ru.id = pk.revoked_by
			WHERE pk.id = $3`, k.ID, keyledger.UTCDay(now).AddDate(0, 0, -(keyledger.UsageDays-1)), d.id))
		if err != nil {
			errs = append(errs, fmt.Errorf("read provider key %d: %w", d.id, err))
			continue
		}
		reason := fmt.Sprintf("Rotated at %s: the grace period of version %d ended.", at.Provider.Label(), at.Version)
		if _, err := s.revokeNow(ctx, system, pa, revokeTarget{at: at, key: k}, reason); err != nil {
			// Audited by revokeNow; the key's page says it too.
			if rerr := s.noteRotationError(ctx, k.ID, "The old key at "+at.Provider.Label()+" ("+at.ProviderKeyID+
				") was not revoked after the grace period: "+keyledger.ErrorMessage(err)); rerr != nil {
				errs = append(errs, rerr)
			}
			continue
		}
		if err := s.noteRotationError(ctx, k.ID, ""); err != nil {
			errs = append(errs, err)
		}
		n++
	}
	return n, errors.Join(errs...)
}

// noteRotationError keeps on the key's rotation row why the revocation
// that ends a rotation failed (its audit event is revokeNow's), or clears
// it ("") once the revocation worked.
func (s *Store) noteRotationError(ctx context.Context, keyID, msg string) error {
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	_, err := s.pool.Exec(ctx, `UPDATE key_provider_rotations SET last_attempt_at = $2, last_error = $3 WHERE key_id = $1`, keyID, s.now(), msg)
	if err != nil {
		return fmt.Errorf("record revoke after rotation: %w", err)
	}
	return nil
}
