package store

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
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

// Reveal returns a key's current value to actor. It re-reads the actor
// (a deactivation a moment ago counts), checks the environment's policy,
// step-up and reason, opens the envelope, and writes the audit event; the
// value is returned only after that event committed. If the audit row
// cannot be written, nothing is revealed.
func (s *Store) Reveal(ctx context.Context, actor keyledger.Actor, id, reason string) (Revealed, error) {
	return s.RevealVersion(ctx, actor, id, 0, reason)
}

// revealSelect reads, in one round trip, everything a reveal decides on:
// the actor's current status and role, whether they are being offboarded,
// the key with its environment, and the envelope of the wanted version.
const revealSelect = `SELECT a.status, a.role,
		EXISTS (SELECT 1 FROM offboardings ob WHERE ob.user_id = a.id AND ob.completed_at IS NULL),
		v.version IS NOT NULL, coalesce(v.version, 0), coalesce(v.kek_id, ''), v.wrapped_dek, v.nonce, v.ciphertext,
		v.destroyed_at IS NOT NULL, v.destroy_after,
		k.id::text, k.name, k.provider, k.project, e.id, e.name, e.reveal_policy, e.reason_required, e.sensitive, e.rotation_days, e.allow_token_reveal,
		k.owner_id, o.email, o.name, o.status, k.description, k.scope, k.masked_hint, k.current_version, coalesce(k.rotation_days, 0),
		coalesce(k.rotation_days, e.rotation_days), k.rotate_by, k.last_rotated_at, k.last_verified_at, coalesce(k.verify_result, ''), k.verify_message,
		k.created_at, '', k.updated_at, k.archived_at
	FROM keys k JOIN environments e ON e.id = k.environment_id JOIN users o ON o.id = k.owner_id
	JOIN users a ON a.id = $2
	LEFT JOIN key_versions v ON v.key_id = k.id AND v.version = CASE WHEN $3 > 0 THEN $3 ELSE k.current_version END
	WHERE k.id = $1`

// revealAudit inserts the reveal event only if the actor is still active
// at that instant, so a deactivation that lands between the read and the
// write still stops the reveal: no row, no value.
const revealAudit = `INSERT INTO audit_events
		(actor_id, actor_email, action, key_id, key_name, key_version, subject_id, subject_email, environment, ip, user_agent, reason, details)
	SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13
	WHERE EXISTS (SELECT 1 FROM users WHERE id = $1 AND status = 'active')`

// RevealVersion is Reveal for a given version: 0 is the current one; a
// superseded version can be revealed until its grace period ends, for
// staged roll-outs that still need the old value.
//
// The hot path is two round trips: one read, then one autocommitted audit
// insert. Reading needs no transaction (nothing is locked or changed), and
// the insert is the only write: the value leaves only after it committed,
// which is the fail-closed guarantee. Someone under offboarding takes the
// slower transactional path, because their checklist must change in the
// same transaction as the audit event.
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
	if version < 0 {
		return out, keyledger.ErrNotFound("Version")
	}
	var (
		status, role string
		offboarding  bool
		found        bool
		env          crypto.Envelope
		destroyed    bool
		destroyAfter *time.Time
		k            keyledger.Key
		ownerStatus  string
		versionRead  int
	)
	kenv := &k.EnvironmentInfo
	err := s.pool.QueryRow(ctx, revealSelect, id, actor.User.ID, version).Scan(&status, &role, &offboarding,
		&found, &versionRead, &env.KEKID, &env.WrappedDEK, &env.Nonce, &env.Ciphertext, &destroyed, &destroyAfter,
		&k.ID, &k.Name, &k.Provider, &k.Project, &kenv.ID, &kenv.Name, &kenv.RevealPolicy, &kenv.ReasonRequired, &kenv.Sensitive, &kenv.RotationDays, &kenv.AllowTokenReveal,
		&k.OwnerID, &k.OwnerEmail, &k.OwnerName, &ownerStatus, &k.Description, &k.Scope, &k.MaskedHint, &k.CurrentVersion, &k.RotationDays,
		&k.EffectiveDays, &k.RotateBy, &k.LastRotatedAt, &k.LastVerifiedAt, &k.VerifyResult, &k.VerifyMessage,
		&k.CreatedAt, &k.CreatedByEmail, &k.UpdatedAt, &k.ArchivedAt)
	if errors.Is(err, pgx.ErrNoRows) {
		// Unknown key, or an actor row that vanished: both mean "no".
		return out, keyledger.ErrNotFound("Key")
	}
	if err != nil {
		return out, s.internal(ctx, "reveal key "+id, err)
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
		err = s.tx(ctx, func(tx pgx.Tx) error {
			if err := writeAudit(ctx, tx, entry); err != nil {
				return err
			}
			return syncOffboardings(ctx, tx, actor, s.now(), actor.User.ID)
		})
	} else {
		var args []any
		if args, err = auditArgs(entry); err == nil {
			var tag pgconn.CommandTag
			if tag, err = s.pool.Exec(ctx, revealAudit, args...); err == nil && tag.RowsAffected() == 0 {
				err = keyledger.Errorf(keyledger.EFORBIDDEN, "Your account is deactivated.")
			}
		}
	}
	if err != nil {
		clear(value)
		return Revealed{}, s.internal(ctx, "reveal key "+id, err)
	}
	out.Key, out.Version, out.Value = &k, version, string(value)
	clear(value)
	return out, nil
}
