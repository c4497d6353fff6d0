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

// Revealed is a key's current value, handed out after the reveal was
// audited.
type Revealed struct {
	Key     *keyledger.Key
	Version int
	Value   string
}

// Reveal returns a key's current value to actor. In one transaction it
// re-reads the actor (a deactivation a moment ago counts), checks the
// environment's policy and reason, opens the envelope and writes the audit
// event; the value is returned only after that commit succeeded. If the
// audit row cannot be written, nothing is revealed.
func (s *Store) Reveal(ctx context.Context, actor keyledger.Actor, id, reason string) (Revealed, error) {
	return s.RevealVersion(ctx, actor, id, 0, reason)
}

// RevealVersion is Reveal for a given version: 0 is the current one; a
// superseded version can be revealed until its grace period ends, for
// staged roll-outs that still need the old value.
func (s *Store) RevealVersion(ctx context.Context, actor keyledger.Actor, id string, version int, reason string) (Revealed, error) {
	var out Revealed
	if actor.User == nil {
		return out, keyledger.Errorf(keyledger.EUNAUTHORIZED, "Please sign in.")
	}
	if err := keyledger.CheckScope(actor, keyledger.ScopeReveal); err != nil {
		return out, err
	}
	if !isUUID(id) {
		return out, keyledger.ErrNotFound("Key")
	}
	var value []byte
	err := s.tx(ctx, func(tx pgx.Tx) error {
		var status, role string
		err := tx.QueryRow(ctx, "SELECT status, role FROM users WHERE id = $1", actor.User.ID).Scan(&status, &role)
		if err != nil {
			return fmt.Errorf("re-read actor: %w", err)
		}
		u := *actor.User
		u.Status, u.Role = keyledger.UserStatus(status), keyledger.Role(role)
		actor.User = &u

		k, err := scanKey(tx.QueryRow(ctx, keySelect+" WHERE k.id = $1", id))
		if errors.Is(err, pgx.ErrNoRows) {
			return keyledger.ErrNotFound("Key")
		}
		if err != nil {
			return err
		}
		if k.Archived() {
			return keyledger.Errorf(keyledger.ECONFLICT, "This key is archived; its value was destroyed.")
		}
		if err := keyledger.CanReveal(actor.User, k.EnvironmentInfo, k.OwnerID); err != nil {
			return err
		}
		if err := keyledger.CheckStepUp(actor, k.EnvironmentInfo, s.now()); err != nil {
			return err
		}
		if reason, err = keyledger.CheckReason(reason, k.EnvironmentInfo.ReasonRequired); err != nil {
			return err
		}
		if version == 0 {
			version = k.CurrentVersion
		}
		var env crypto.Envelope
		var destroyed bool
		var destroyAfter *time.Time
		err = tx.QueryRow(ctx, `SELECT coalesce(kek_id, ''), wrapped_dek, nonce, ciphertext, destroyed_at IS NOT NULL, destroy_after
			FROM key_versions WHERE key_id = $1 AND version = $2`, id, version).
			Scan(&env.KEKID, &env.WrappedDEK, &env.Nonce, &env.Ciphertext, &destroyed, &destroyAfter)
		switch {
		case errors.Is(err, pgx.ErrNoRows) && version == k.CurrentVersion:
			return keyledger.Errorf(keyledger.EINTERNAL, "The current version of this key is missing; nothing was revealed.")
		case errors.Is(err, pgx.ErrNoRows):
			return keyledger.ErrNotFound("Version")
		case err != nil:
			return err
		case destroyed || (version != k.CurrentVersion && (destroyAfter == nil || !s.now().Before(*destroyAfter))):
			return keyledger.Errorf(keyledger.ECONFLICT, "Version %d was destroyed at the end of its grace period; only the current version can be revealed.", version)
		}
		value, err = s.keyring.Open(versionSubject(id, version), env)
		if err != nil {
			// A tampered or swapped row: say so plainly, log the key id,
			// reveal nothing, and commit no reveal event.
			s.log.ErrorContext(ctx, "key version does not decrypt", "key_id", id, "version", version, "err", err)
			return &keyledger.Error{Code: keyledger.EINTERNAL, Message: "This key's stored value failed its integrity check (it was altered, moved, or sealed under another master key). Nothing was revealed; an admin should check the database and the master key."}
		}
		out.Key, out.Version = k, version
		if err := writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionKeyReveal, KeyID: id, KeyName: k.Name,
			KeyVersion: version, Environment: k.Environment, Reason: reason}); err != nil {
			return err
		}
		// Someone under offboarding who was not frozen: what they see now
		// goes on their checklist in the same transaction.
		return syncOffboardings(ctx, tx, actor, s.now(), actor.User.ID)
	})
	if err != nil {
		clear(value)
		return Revealed{}, s.internal(ctx, "reveal key "+id, err)
	}
	out.Value = string(value)
	clear(value)
	return out, nil
}
