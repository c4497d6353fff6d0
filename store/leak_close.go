package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// An incident closes when its version is rotated away (no longer the
// key's current version) AND revoked, or when someone who may act on the
// key waives it with a reason. Each step is recorded in the transaction
// that takes it, and closeLeakIfDone runs there too, so an incident is
// never left open with both conditions met.

// leakRotatedAway records, inside the transaction that moves key id off
// version (a rotation, or a rollback to an older version), that an open
// incident on that version is rotated away, and closes it if it was
// revoked already (at the provider, before the rotation).
func leakRotatedAway(ctx context.Context, tx pgx.Tx, a keyledger.Actor, keyID string, version, to int, now time.Time) error {
	var id int64
	err := tx.QueryRow(ctx, `UPDATE leak_incidents SET rotated_at = $3
		WHERE key_id = $1 AND version = $2 AND closed_at IS NULL AND rotated_at IS NULL RETURNING id`, keyID, version, now).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("leak incident rotated: %w", err)
	}
	if err := addLeakStep(ctx, tx, id, now, keyledger.LeakStepRotated, a, "", fmt.Sprintf("Version %d is current now.", to)); err != nil {
		return err
	}
	return closeLeakIfDone(ctx, tx, a, id, now)
}

// leakKeyArchived marks every open incident of key id rotated away, in
// the transaction that archives it, closing those revoked already.
func leakKeyArchived(ctx context.Context, tx pgx.Tx, a keyledger.Actor, keyID string, now time.Time) error {
	rows, err := tx.Query(ctx, `UPDATE leak_incidents SET rotated_at = $2
		WHERE key_id = $1 AND closed_at IS NULL AND rotated_at IS NULL RETURNING id`, keyID, now)
	if err != nil {
		return fmt.Errorf("leak incidents of an archived key: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return fmt.Errorf("leak incidents of an archived key: %w", err)
	}
	for _, id := range ids {
		if err := addLeakStep(ctx, tx, id, now, keyledger.LeakStepRotated, a, "", "The key was archived."); err != nil {
			return err
		}
		if err := closeLeakIfDone(ctx, tx, a, id, now); err != nil {
			return err
		}
	}
	return nil
}

// refuseLeakedVersion refuses to make a version with an open incident
// current again (a rollback).
func refuseLeakedVersion(ctx context.Context, tx pgx.Tx, keyID string, version int) error {
	var id int64
	err := tx.QueryRow(ctx, "SELECT id FROM leak_incidents WHERE key_id = $1 AND version = $2 AND closed_at IS NULL", keyID, version).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("look for a leak incident: %w", err)
	}
	return keyledger.Errorf(keyledger.ECONFLICT, "Version %d leaked (incident #%d is open): it cannot be made current again.", version, id)
}

// leakRevoked records that version of key id was revoked (note says how)
// on its open incident, and closes it if it is rotated away too. It is
// also how a revocation at the provider counts: POST
// /keys/{id}/provider-revoke calls it in the transaction that records the
// revocation (store/providerrevoke.go).
func leakRevoked(ctx context.Context, tx pgx.Tx, a keyledger.Actor, keyID string, version int, note string, now time.Time) (int64, error) {
	var id int64
	err := tx.QueryRow(ctx, `UPDATE leak_incidents SET revoked_at = $3
		WHERE key_id = $1 AND version = $2 AND closed_at IS NULL AND revoked_at IS NULL RETURNING id`, keyID, version, now).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("leak incident revoked: %w", err)
	}
	if err := addLeakStep(ctx, tx, id, now, keyledger.LeakStepRevoked, a, "", note); err != nil {
		return 0, err
	}
	return id, closeLeakIfDone(ctx, tx, a, id, now)
}

// closeLeakIfDone closes incident id when it is rotated away and revoked.
func closeLeakIfDone(ctx context.Context, tx pgx.Tx, a keyledger.Actor, id int64, now time.Time) error {
	var keyID, name, env string
	var version int
	err := tx.QueryRow(ctx, `UPDATE leak_incidents i SET closed_at = $2, close_reason = $3, closed_by = $4
		FROM keys k WHERE i.id = $1 AND k.id = i.key_id AND i.closed_at IS NULL AND i.rotated_at IS NOT NULL AND i.revoked_at IS NOT NULL
		RETURNING k.id::text, k.name, (SELECT name FROM environments e WHERE e.id = k.environment_id), i.version`,
		id, now, keyledger.LeakClosedResolved, actorID(a)).Scan(&keyID, &name, &env, &version)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("close leak incident: %w", err)
	}
	if err := addLeakStep(ctx, tx, id, now, keyledger.LeakStepClosed, a, "", "Rotated away and revoked."); err != nil {
		return err
	}
	return writeAudit(ctx, tx, auditEntry{Actor: a, Action: keyledger.ActionLeakClose, KeyID: keyID, KeyName: name, KeyVersion: version,
		Environment: env, Details: map[string]any{"incident": id, "reason": keyledger.LeakClosedResolved}})
}

func actorID(a keyledger.Actor) *int64 {
	if a.User == nil {
		return nil
	}
	return &a.User.ID
}

// leakForAction reads and locks an open incident for someone acting on
// it (CanResolveLeak, on the actor re-read in tx).
func leakForAction(ctx context.Context, tx pgx.Tx, actor keyledger.Actor, id int64) (keyledger.Actor, *keyledger.LeakIncident, error) {
	actor, err := freshActor(ctx, tx, actor)
	if err != nil {
		return actor, nil, err
	}
	var inc keyledger.LeakIncident
	err = tx.QueryRow(ctx, `SELECT i.id, k.id::text, k.name, e.name, k.owner_id, i.version, k.current_version, i.closed_at, k.archived_at IS NOT NULL
		FROM leak_incidents i JOIN keys k ON k.id = i.key_id JOIN environments e ON e.id = k.environment_id
		WHERE i.id = $1 FOR UPDATE OF i`, id).Scan(&inc.ID, &inc.KeyID, &inc.KeyName, &inc.Environment, &inc.OwnerID, &inc.Version,
		&inc.CurrentVersion, &inc.ClosedAt, &inc.KeyArchived)
	if errors.Is(err, pgx.ErrNoRows) {
		return actor, nil, keyledger.ErrNotFound("Incident")
	}
	if err != nil {
		return actor, nil, fmt.Errorf("read incident: %w", err)
	}
	if err := keyledger.CanResolveLeak(actor.User, inc.OwnerID); err != nil {
		return actor, nil, err
	}
	if !inc.Open() {
		return actor, nil, keyledger.Errorf(keyledger.ECONFLICT, "This incident is closed already; reload the page.")
	}
	return actor, &inc, nil
}

// RevokeLeakedVersion records that the leaked version was revoked: the
// person confirms the old value no longer works at the provider, and
// keyledger destroys its own copy now instead of at the end of the grace
// period. The current version cannot be revoked (the key would be left
// without a value): rotate first. The incident closes in the same
// transaction when the version is rotated away.
func (s *Store) RevokeLeakedVersion(ctx context.Context, actor keyledger.Actor, id int64) error {
	if err := keyledger.CheckScope(actor, keyledger.ScopeWrite); err != nil {
		return err
	}
	err := s.write(ctx, func(tx pgx.Tx, t *touched) error {
		a, inc, err := leakForAction(ctx, tx, actor, id)
		if err != nil {
			return err
		}
		if inc.Version == inc.CurrentVersion && !inc.KeyArchived {
			return keyledger.Errorf(keyledger.ECONFLICT, "Version %d is still the key's current version: rotate the key first, then revoke the leaked version.", inc.Version)
		}
		now := s.now()
		if _, err := tx.Exec(ctx, `UPDATE key_versions SET wrapped_dek = NULL, ciphertext = NULL, destroyed_at = $3
			WHERE key_id = $1 AND version = $2 AND destroyed_at IS NULL`, inc.KeyID, inc.Version, now); err != nil {
			return fmt.Errorf("destroy leaked version: %w", err)
		}
		if err := writeAudit(ctx, tx, auditEntry{Actor: a, Action: keyledger.ActionLeakRevoke, KeyID: inc.KeyID, KeyName: inc.KeyName,
			KeyVersion: inc.Version, Environment: inc.Environment, Details: map[string]any{"incident": id, "via": "keyledger"}}); err != nil {
			return err
		}
		if _, err := leakRevoked(ctx, tx, a, inc.KeyID, inc.Version, "Revoked; keyledger destroyed its copy of the value.", now); err != nil {
			return err
		}
		*t = touchedKeys(a, now)
		return nil
	})
	return s.internal(ctx, "revoke leaked version", err)
}

// WaiveLeak closes an incident without the rotation and revocation, with
// a reason (a false alarm, a test key), like an offboarding item waiver.
func (s *Store) WaiveLeak(ctx context.Context, actor keyledger.Actor, id int64, reason string) error {
	if err := keyledger.CheckScope(actor, keyledger.ScopeWrite); err != nil {
		return err
	}
	reason = strings.TrimSpace(reason)
	if keyledger.Blank(reason) {
		return &keyledger.Error{Code: keyledger.EINVALID, Message: "Say why this incident can be closed without rotating and revoking.",
			Fields: map[string]string{"reason": "Say why this incident can be closed without rotating and revoking (e.g. \"a test key with no access\")."}}
	}
	if _, err := keyledger.CheckReason(reason, true); err != nil {
		return err
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		a, inc, err := leakForAction(ctx, tx, actor, id)
		if err != nil {
			return err
		}
		now := s.now()
		if _, err := tx.Exec(ctx, `UPDATE leak_incidents SET closed_at = $2, close_reason = $3, waive_reason = $4, closed_by = $5 WHERE id = $1`,
			id, now, keyledger.LeakClosedWaived, reason, a.User.ID); err != nil {
			return fmt.Errorf("waive incident: %w", err)
		}
		if err := addLeakStep(ctx, tx, id, now, keyledger.LeakStepWaived, a, "", reason); err != nil {
			return err
		}
		if err := addLeakStep(ctx, tx, id, now, keyledger.LeakStepClosed, a, "", "Waived."); err != nil {
			return err
		}
		base := auditEntry{Actor: a, KeyID: inc.KeyID, KeyName: inc.KeyName, KeyVersion: inc.Version, Environment: inc.Environment}
		waive, closed := base, base
		waive.Action, waive.Reason, waive.Details = keyledger.ActionLeakWaive, reason, map[string]any{"incident": id}
		closed.Action, closed.Details = keyledger.ActionLeakClose, map[string]any{"incident": id, "reason": keyledger.LeakClosedWaived}
		if err := writeAudit(ctx, tx, waive); err != nil {
			return err
		}
		return writeAudit(ctx, tx, closed)
	})
	return s.internal(ctx, "waive leak incident", err)
}

// providerKeyForLeak finds the key at a connected provider that carries
// version of key keyID (its hint is that version's masked hint), still
// alive there, so that "Revoke at provider" can be offered for exactly the
// leaked version; 0 when there is none. A key linked to keyID comes first.
// It offers only what RevokeAtProvider takes (keyAtProviderFrom): a key
// nobody linked counts once the version is superseded, not while it is
// current (the sync could not tell whose it is), and only at a connection
// to the key's provider.
func providerKeyForLeak(ctx context.Context, q rowQuerier, keyID string, version int) (int64, error) {
	var id int64
	err := q.QueryRow(ctx, `SELECT pk.id FROM provider_keys pk
		JOIN provider_connections c ON c.id = pk.connection_id AND c.removed_at IS NULL
		JOIN key_versions v ON v.key_id = $1 AND v.version = $2
		JOIN keys k ON k.id = $1 AND k.provider = c.provider
		WHERE pk.match_hint <> '' AND pk.match_hint = v.masked_hint
			AND (pk.key_id = $1 OR (pk.key_id IS NULL AND v.superseded_at IS NOT NULL))
			AND pk.revoked_at IS NULL AND pk.deleted_at IS NULL
		ORDER BY pk.key_id IS NULL, pk.id LIMIT 1`, keyID, version).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("find the leaked version at its provider: %w", err)
	}
	return id, nil
}
