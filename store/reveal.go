package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// Revealed is a key's current value, handed out after the reveal was
// audited.
type Revealed struct {
	Key     *keyledger.Key
	Version int
	Value   string
}

// Reveal returns a key's current value to actor. It re-reads the actor
// (a deactivation a moment ago counts), checks the environment's policy,
// step-up and reason, opens the envelope, and writes the audit event; the
// value is returned only after that event committed. If the audit row
// cannot be written, nothing is revealed.
func (s *Store) Reveal(ctx context.Context, actor keyledger.Actor, id, reason string) (Revealed, error) {
	return s.RevealVersion(ctx, actor, id, 0, reason)
}

// RevealVersion is Reveal for a given version: 0 is the current one; a
// superseded version can be revealed until its grace period ends, for
// staged roll-outs that still need the old value.
//
// The hot path is one share of a batched read (revealbatch.go) and one
// share of a batched audit insert (auditbatch.go). Reading needs no
// transaction (nothing is locked or changed), and the insert is the only
// write: the value leaves only after its row committed, which is the
// fail-closed guarantee, and the row is written only if the actor is still
// active at that instant, so a deactivation that lands between the read
// and the write still stops the reveal. Someone under offboarding takes
// the slower transactional path, because their checklist must change in
// the same transaction as the audit event.
func (s *Store) RevealVersion(ctx context.Context, actor keyledger.Actor, id string, version int, reason string) (Revealed, error) {
	return s.reveal(ctx, actor, id, version, reason, false)
}

// RevealForCopy is the key list's quick copy: Reveal of the current
// version with no reason and no step-up, for a key whose environment asks
// for neither (keyledger.CanCopyWithoutForm). Any other key is refused
// before its envelope is opened or anything is recorded; the person goes
// through the full form. An allowed copy is audited exactly as a reveal.
func (s *Store) RevealForCopy(ctx context.Context, actor keyledger.Actor, id string) (Revealed, error) {
	return s.reveal(ctx, actor, id, 0, "", true)
}

// reveal is RevealVersion; quick refuses what the full form would ask
// more of.
func (s *Store) reveal(ctx context.Context, actor keyledger.Actor, id string, version int, reason string, quick bool) (Revealed, error) {
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
	if version < 0 {
		return out, keyledger.ErrNotFound("Version")
	}
	row, err := s.reads.do(ctx, revealRead{actorID: actor.User.ID, tokenID: actorTokenID(actor), at: s.now(), keyID: id, version: version})
	if err != nil {
		return out, s.internal(ctx, "reveal key "+id, err)
	}
	if !row.found {
		// Unknown key, or an actor row that vanished: both mean "no".
		return out, keyledger.ErrNotFound("Key")
	}
	var (
		status, role = row.status, row.role
		tokenLive    = row.tokenLive
		offboarding  = row.offboarding
		found        = row.versionFound
		env          = row.env
		destroyed    = row.destroyed
		destroyAfter = row.destroyAfter
		k            = row.key
		ownerStatus  = row.ownerStatus
		kenv         = &k.EnvironmentInfo
	)
	if !tokenLive {
		return out, ErrBadToken
	}
	k.EnvironmentID, k.Environment = kenv.ID, kenv.Name
	k.OwnerActive = ownerStatus == string(keyledger.UserActive)
	u := *actor.User
	u.Status, u.Role = keyledger.UserStatus(status), keyledger.Role(role)
	actor.User = &u

	if k.Archived() {
		return out, keyledger.Errorf(keyledger.ECONFLICT, "This key is archived; its value was destroyed.")
	}
	if err := keyledger.CanReveal(actor.User, k.EnvironmentInfo, k.OwnerID); err != nil {
		return out, err
	}
	if quick {
		if err := keyledger.CanCopyWithoutForm(k.EnvironmentInfo); err != nil {
			return out, err
		}
	}
	if err := keyledger.CheckStepUp(actor, k.EnvironmentInfo, s.now()); err != nil {
		return out, err
	}
	if reason, err = keyledger.CheckReason(reason, k.EnvironmentInfo.ReasonRequired); err != nil {
		return out, err
	}
	if version == 0 {
		version = k.CurrentVersion
	}
	switch {
	case !found && version == k.CurrentVersion:
		return out, keyledger.Errorf(keyledger.EINTERNAL, "The current version of this key is missing; nothing was revealed.")
	case !found:
		return out, keyledger.ErrNotFound("Version")
	case destroyed || (version != k.CurrentVersion && (destroyAfter == nil || !s.now().Before(*destroyAfter))):
		return out, keyledger.Errorf(keyledger.ECONFLICT, "Version %d was destroyed at the end of its grace period; only the current version can be revealed.", version)
	}
	value, err := s.keyring.Open(versionSubject(id, version), env)
	if err != nil {
		// A tampered or swapped row: say so plainly, log the key id,
		// reveal nothing, and record no reveal.
		s.log.ErrorContext(ctx, "key version does not decrypt", "key_id", id, "version", version, "err", err)
		return out, &keyledger.Error{Code: keyledger.EINTERNAL, Message: "This key's stored value failed its integrity check (it was altered, moved, or sealed under another master key). Nothing was revealed; an admin should check the database and the master key."}
	}
	entry := auditEntry{Actor: actor, Action: keyledger.ActionKeyReveal, KeyID: id, KeyName: k.Name,
		KeyVersion: version, Environment: k.Environment, Reason: reason}
	if offboarding {
		// Their checklist grows in the same transaction as the event.
		err = s.write(ctx, func(tx pgx.Tx, t *touched) error {
			if err := writeAudit(ctx, tx, entry); err != nil {
				return err
			}
			*t = touchedUser(actor, s.now(), actor.User.ID)
			return nil
		})
	} else if _, err = s.audit.do(ctx, entry); errors.Is(err, errActorInactive) {
		err = keyledger.Errorf(keyledger.EFORBIDDEN, "Your account is deactivated.")
	}
	if err != nil {
		clear(value)
		return Revealed{}, s.internal(ctx, "reveal key "+id, err)
	}
	out.Key, out.Version, out.Value = &k, version, string(value)
	clear(value)
	return out, nil
}
