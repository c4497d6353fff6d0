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

// RotateKey makes value the key's new current version. The previous version
// stays revealable for the grace period (a staged roll-out needs both), then
// the destroy job shreds it. Two rotations racing from the same version:
// the conditional update lets exactly one win; the other gets a conflict.
func (s *Store) RotateKey(ctx context.Context, actor keyledger.Actor, id string, in keyledger.RotateInput) (*keyledger.Key, error) {
	return s.rotate(ctx, actor, id, in, rotateExtra{})
}

// rotateExtra is what a rotation at the provider adds to a rotation: a
// step inside its transaction before the provider keys are matched (the
// new provider key's row, the old one's revoke date), and details for
// its key.rotate event.
type rotateExtra struct {
	beforeMatch func(tx pgx.Tx, k *keyledger.Key, newVersion int, destroyAfter time.Time) error
	details     map[string]any
}

// rotate is RotateKey with extra: the one rotation path, for a value a
// person typed and for one a provider created.
func (s *Store) rotate(ctx context.Context, actor keyledger.Actor, id string, in keyledger.RotateInput, extra rotateExtra) (*keyledger.Key, error) {
	if err := keyledger.CheckScope(actor, keyledger.ScopeWrite); err != nil {
		return nil, err
	}
	if !isUUID(id) {
		return nil, keyledger.ErrNotFound("Key")
	}
	rot, err := keyledger.ValidateRotation(in)
	if err != nil {
		return nil, err
	}
	fp := crypto.Fingerprint(s.fingerprintKey, []byte(keyledger.ValueIdentity(rot.Value)))
	hint := keyledger.MaskedHint(keyledger.ValueIdentity(rot.Value))
	var newVersion int
	var conflict *keyledger.Error
	err = s.write(ctx, func(tx pgx.Tx, t *touched) error {
		conflict = nil // the transaction may be retried
		actor, k, err := editableKey(ctx, tx, actor, id, false, "This key is archived and can no longer be rotated.")
		if err != nil {
			return err
		}
		expected := rot.ExpectedVersion
		if expected == 0 {
			expected = k.CurrentVersion
		}
		if expected != k.CurrentVersion {
			return rotationConflict(k.CurrentVersion)
		}
		// As at registration: refused, recorded, answered after commit.
		if conflict, err = s.duplicateValue(ctx, tx, actor, fp, k.Environment, "rotate", s.now()); err != nil || conflict != nil {
			return err
		}
		if err := tx.QueryRow(ctx, "SELECT max(version) + 1 FROM key_versions WHERE key_id = $1", id).Scan(&newVersion); err != nil {
			return err
		}
		now := s.now()
		// The conditional update is the arbiter: of two rotations that
		// both read version N, only one finds current_version still N.
		tag, err := tx.Exec(ctx, `UPDATE keys SET current_version = $3, fingerprint = $4, masked_hint = $5, last_rotated_at = $6,
			rotate_by = $7, updated_by = $8, updated_at = $6 WHERE id = $1 AND current_version = $2`,
			id, expected, newVersion, fp, hint, now, keyledger.RotateBy(now, k.EffectiveDays), actor.User.ID)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			var cur int
			_ = tx.QueryRow(ctx, "SELECT current_version FROM keys WHERE id = $1", id).Scan(&cur)
			return rotationConflict(cur)
		}
		destroyAfter := now.AddDate(0, 0, rot.GraceDays)
		if _, err := tx.Exec(ctx, `UPDATE key_versions SET superseded_at = $3, destroy_after = $4
			WHERE key_id = $1 AND version = $2`, id, expected, now, destroyAfter); err != nil {
			return err
		}
		sealed, err := s.keyring.Seal(versionSubject(id, newVersion), []byte(rot.Value))
		if err != nil {
			return fmt.Errorf("seal value: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO key_versions (key_id, version, kek_id, wrapped_dek, nonce, ciphertext, masked_hint, fingerprint, created_by, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`, id, newVersion, sealed.KEKID, sealed.WrappedDEK, sealed.Nonce, sealed.Ciphertext,
			hint, fp, actor.User.ID, now); err != nil {
			return err
		}
		if err := leakRotatedAway(ctx, tx, actor, id, expected, newVersion, now); err != nil {
			return err
		}
		if extra.beforeMatch != nil {
			if err := extra.beforeMatch(tx, k, newVersion, destroyAfter); err != nil {
				return err
			}
		}
		// The provider key carrying the new value is linked now; the one
		// carrying the old value is the superseded version's (see
		// KeysAtProvider), as the next sync would decide.
		if err := matchProviderKeysByHint(ctx, tx, string(k.Provider), k.MaskedHint, hint); err != nil {
			return err
		}
		details := map[string]any{"from_version": expected, "grace_days": rot.GraceDays,
			"previous_destroyed_after": destroyAfter.UTC().Format(time.RFC3339)}
		for name, v := range extra.details {
			details[name] = v
		}
		if err := writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionKeyRotate, KeyID: id, KeyName: k.Name, KeyVersion: newVersion,
			Environment: k.Environment, Details: details}); err != nil {
			return err
		}
		*t = touchedKeys(actor, now)
		return nil
	})
	if isUniqueViolation(err, "key_versions_pkey") {
		// Two rotations computed the same new version number: the loser.
		var cur int
		_ = s.pool.QueryRow(ctx, "SELECT current_version FROM keys WHERE id = $1", id).Scan(&cur)
		return nil, rotationConflict(cur)
	}
	if err != nil {
		return nil, s.internal(ctx, "rotate key "+id, err)
	}
	if conflict != nil {
		return nil, conflict
	}
	return s.GetKey(ctx, actor, id)
}

func rotationConflict(current int) error {
	msg := fmt.Sprintf("Someone rotated this key a moment ago; it is now at version %d. Reload the page and check before rotating again.", current)
	return &keyledger.Error{Code: keyledger.ECONFLICT, Message: msg, Fields: map[string]string{"value": msg}}
}

// RollbackKey makes a superseded version current again, within its grace
// period: for when a new key turned out not to work. The version it
// replaces becomes superseded with a fresh grace period.
func (s *Store) RollbackKey(ctx context.Context, actor keyledger.Actor, id string, version, graceDays int) (*keyledger.Key, error) {
	if err := keyledger.CheckScope(actor, keyledger.ScopeWrite); err != nil {
		return nil, err
	}
	if !isUUID(id) {
		return nil, keyledger.ErrNotFound("Key")
	}
	if graceDays <= 0 {
		graceDays = keyledger.DefaultGraceDays
	}
	err := s.write(ctx, func(tx pgx.Tx, t *touched) error {
		actor, k, err := editableKey(ctx, tx, actor, id, true, "This key is archived.")
		if err != nil {
			return err
		}
		if version == k.CurrentVersion {
			return keyledger.Errorf(keyledger.ECONFLICT, "Version %d is already the current version.", version)
		}
		if err := refuseLeakedVersion(ctx, tx, id, version); err != nil {
			return err
		}
		now := s.now()
		if err := leakRotatedAway(ctx, tx, actor, id, k.CurrentVersion, version, now); err != nil {
			return err
		}
		var fp []byte
		var hint string
		var destroyAfter *time.Time
		var destroyed bool
		err = tx.QueryRow(ctx, `SELECT fingerprint, masked_hint, destroy_after, destroyed_at IS NOT NULL FROM key_versions
			WHERE key_id = $1 AND version = $2 FOR UPDATE`, id, version).Scan(&fp, &hint, &destroyAfter, &destroyed)
		if errors.Is(err, pgx.ErrNoRows) {
			return keyledger.ErrNotFound("Version")
		}
		if err != nil {
			return err
		}
		if destroyed || destroyAfter == nil || !now.Before(*destroyAfter) {
			return keyledger.Errorf(keyledger.ECONFLICT, "Version %d is past its grace period and was destroyed (or is about to be); it cannot be restored.", version)
		}
		newDestroy := now.AddDate(0, 0, graceDays)
		if _, err := tx.Exec(ctx, `UPDATE key_versions SET superseded_at = $3, destroy_after = $4 WHERE key_id = $1 AND version = $2`,
			id, k.CurrentVersion, now, newDestroy); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE key_versions SET superseded_at = NULL, destroy_after = NULL WHERE key_id = $1 AND version = $2`, id, version); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `UPDATE keys SET current_version = $2, fingerprint = coalesce($3, fingerprint), masked_hint = $4,
			updated_by = $5, updated_at = $6 WHERE id = $1`, id, version, fp, hint, actor.User.ID, now); err != nil {
			return err
		}
		if err := matchProviderKeysByHint(ctx, tx, string(k.Provider), k.MaskedHint, hint); err != nil {
			return err
		}
		// The version rolled back to is current again: its provider key,
		// rotated away at the provider, must not be revoked there.
		if _, err := tx.Exec(ctx, `UPDATE provider_keys SET revoke_after = NULL WHERE rotated_key = $1 AND match_hint = $2 AND revoke_after IS NOT NULL`,
			id, hint); err != nil {
			return err
		}
		if err := writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionKeyRollback, KeyID: id, KeyName: k.Name, KeyVersion: version,
			Environment: k.Environment, Details: map[string]any{"from_version": k.CurrentVersion, "grace_days": graceDays}}); err != nil {
			return err
		}
		*t = touchedKeys(actor, now)
		return nil
	})
	if err != nil {
		return nil, s.internal(ctx, "roll back key "+id, err)
	}
	return s.GetKey(ctx, actor, id)
}

// DestroyExpiredVersions shreds superseded versions whose grace period has
// ended: wrapped DEK and ciphertext are removed, the row stays for history.
func (s *Store) DestroyExpiredVersions(ctx context.Context) (int, error) {
	n := 0
	err := s.tx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `UPDATE key_versions v SET wrapped_dek = NULL, ciphertext = NULL, destroyed_at = $1
			FROM keys k WHERE k.id = v.key_id AND v.destroyed_at IS NULL AND v.destroy_after IS NOT NULL AND v.destroy_after <= $1
			RETURNING v.key_id::text, v.version, k.name, (SELECT name FROM environments e WHERE e.id = k.environment_id)`, s.now())
		if err != nil {
			return err
		}
		type gone struct {
			id, name, env string
			version       int
		}
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (gone, error) {
			var g gone
			err := r.Scan(&g.id, &g.version, &g.name, &g.env)
			return g, err
		})
		if err != nil {
			return err
		}
		for _, g := range list {
			if err := writeAudit(ctx, tx, auditEntry{Actor: keyledger.SystemActor("scheduler"), Action: keyledger.ActionVersionDestroy,
				KeyID: g.id, KeyName: g.name, KeyVersion: g.version, Environment: g.env}); err != nil {
				return err
			}
		}
		n = len(list)
		return nil
	})
	if err != nil {
		return 0, s.internal(ctx, "destroy expired versions", err)
	}
	return n, nil
}
