package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// linkTarget is the provider key a manual link acts on, locked for the
// transaction.
type linkTarget struct {
	providerKeyID, connectionID, connection, provider string
	keyID, keyName                                    string // '' when not linked
	manual                                            bool
}

// lockProviderKey reads and locks a live provider key of a live
// connection. A key the provider no longer lists is not linked by hand:
// there is nothing left at the provider to say which key it is.
func lockProviderKey(ctx context.Context, tx pgx.Tx, id int64) (linkTarget, error) {
	var t linkTarget
	err := tx.QueryRow(ctx, `SELECT pk.provider_key_id, c.id::text, c.name, c.provider, coalesce(pk.key_id::text, ''), coalesce(k.name, ''), pk.linked_by IS NOT NULL
		FROM provider_keys pk JOIN provider_connections c ON c.id = pk.connection_id AND c.removed_at IS NULL
		LEFT JOIN keys k ON k.id = pk.key_id
		WHERE pk.id = $1 AND pk.deleted_at IS NULL FOR UPDATE OF pk`, id).
		Scan(&t.providerKeyID, &t.connectionID, &t.connection, &t.provider, &t.keyID, &t.keyName, &t.manual)
	if errors.Is(err, pgx.ErrNoRows) {
		return t, keyledger.Errorf(keyledger.ENOTFOUND, "There is no such key at a connected provider (or the provider no longer lists it).")
	}
	return t, err
}

// LinkProviderKey links provider key id (its provider_keys row) to the
// registered key keyID by hand: an admin settles an ambiguous match or
// corrects a wrong one (CanManageProviders, with the write scope for a
// token). The sync leaves a manual link alone. The key must be live and
// of the connection's provider; anything else is a field error on key_id
// and changes nothing.
func (s *Store) LinkProviderKey(ctx context.Context, actor keyledger.Actor, id int64, keyID string) error {
	if err := keyledger.CheckScope(actor, keyledger.ScopeWrite); err != nil {
		return err
	}
	if err := keyledger.CanManageProviders(actor.User); err != nil {
		return err
	}
	notKey := func(msg string) error {
		return &keyledger.Error{Code: keyledger.EINVALID, Message: msg, Fields: map[string]string{"key_id": msg}}
	}
	if !isUUID(keyID) {
		return notKey("Choose a registered key to link it to.")
	}
	err := s.write(ctx, func(tx pgx.Tx, tc *touched) error {
		fresh, err := freshActorMay(ctx, tx, actor, keyledger.CanManageProviders)
		if err != nil {
			return err
		}
		now := s.now()
		// A checklist's provider items name the registered key.
		*tc = touchedKeys(fresh, now)
		t, err := lockProviderKey(ctx, tx, id)
		if err != nil {
			return err
		}
		var name, provider, env string
		var archived bool
		err = tx.QueryRow(ctx, `SELECT k.name, k.provider, e.name, k.archived_at IS NOT NULL FROM keys k JOIN environments e ON e.id = k.environment_id
			WHERE k.id = $1`, keyID).Scan(&name, &provider, &env, &archived)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return notKey("There is no such key in keyledger.")
		case err != nil:
			return err
		case archived:
			return notKey(fmt.Sprintf("The key %q is archived: link the provider key to a live one.", name))
		case provider != t.provider:
			return notKey(fmt.Sprintf("The key %q is for %s; this provider key is at %s.", name, keyledger.Provider(provider).Label(), keyledger.Provider(t.provider).Label()))
		}
		if _, err := tx.Exec(ctx, `UPDATE provider_keys SET key_id = $2, match_state = $3, linked_by = $4, linked_at = $5 WHERE id = $1`,
			id, keyID, keyledger.MatchMatched, fresh.User.ID, now); err != nil {
			return fmt.Errorf("link provider key: %w", err)
		}
		details := map[string]any{"connection_id": t.connectionID, "connection": t.connection, "provider": t.provider, "provider_key_id": t.providerKeyID}
		if t.keyID != "" && t.keyID != keyID {
			details["previous_key_id"] = t.keyID
		}
		return writeAudit(ctx, tx, auditEntry{Actor: fresh, Action: keyledger.ActionProviderLink, KeyID: keyID, KeyName: name, Environment: env, Details: details})
	})
	return s.internal(ctx, "link provider key", err)
}

// UnlinkProviderKey undoes a manual link: the provider key goes back to
// matching by hint, at once (not at the next sync), so the inventory
// shows what the hints say. A key nobody linked by hand is a conflict.
func (s *Store) UnlinkProviderKey(ctx context.Context, actor keyledger.Actor, id int64) error {
	if err := keyledger.CheckScope(actor, keyledger.ScopeWrite); err != nil {
		return err
	}
	if err := keyledger.CanManageProviders(actor.User); err != nil {
		return err
	}
	err := s.write(ctx, func(tx pgx.Tx, tc *touched) error {
		fresh, err := freshActorMay(ctx, tx, actor, keyledger.CanManageProviders)
		if err != nil {
			return err
		}
		*tc = touchedKeys(fresh, s.now())
		t, err := lockProviderKey(ctx, tx, id)
		if err != nil {
			return err
		}
		if !t.manual {
			return keyledger.Errorf(keyledger.ECONFLICT, "Nobody linked this provider key by hand, so there is no link to undo; link it to the right key instead.")
		}
		if _, err := tx.Exec(ctx, `UPDATE provider_keys SET key_id = NULL, match_state = $2, linked_by = NULL, linked_at = NULL WHERE id = $1`,
			id, keyledger.MatchUnmatched); err != nil {
			return fmt.Errorf("unlink provider key: %w", err)
		}
		// Matching covers every key of the connection nobody linked, this
		// one now among them; one statement, as in a sync.
		if err := matchProviderKeys(ctx, tx, t.connectionID, t.provider); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Actor: fresh, Action: keyledger.ActionProviderUnlink, KeyID: t.keyID, KeyName: t.keyName,
			Details: map[string]any{"connection_id": t.connectionID, "connection": t.connection, "provider": t.provider, "provider_key_id": t.providerKeyID}})
	})
	return s.internal(ctx, "unlink provider key", err)
}
