package store

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
)

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// isUUID guards key ids from URLs: anything else is simply not found,
// rather than a database error.
func isUUID(s string) bool { return uuidPattern.MatchString(s) }

// CreateResult is a registered key and any warnings worth showing.
type CreateResult struct {
	Key      *keyledger.Key
	Warnings []string
}

// CreateKey registers a key: the value is sealed before it reaches SQL, its
// keyed fingerprint refuses a value already stored under another live key,
// and the key, its first version and the audit event commit together.
func (s *Store) CreateKey(ctx context.Context, actor keyledger.Actor, in keyledger.KeyInput) (CreateResult, error) {
	var res CreateResult
	if err := keyledger.CanRegisterKey(actor.User); err != nil {
		return res, err
	}
	if err := keyledger.CheckScope(actor, keyledger.ScopeWrite); err != nil {
		return res, err
	}
	nk, err := keyledger.ValidateNewKey(in)
	if err != nil {
		return res, err
	}
	fp := crypto.Fingerprint(s.fingerprintKey, []byte(keyledger.ValueIdentity(nk.Value)))
	hint := keyledger.MaskedHint(keyledger.ValueIdentity(nk.Value))
	var id string
	var conflict *keyledger.Error
	err = s.write(ctx, func(tx pgx.Tx, t *touched) error {
		conflict = nil // the transaction may be retried
		actor, err := freshActorMay(ctx, tx, actor, keyledger.CanRegisterKey)
		if err != nil {
			return err
		}
		env, ownerID, err := resolveEnvOwner(ctx, tx, nk.Environment, nk.OwnerEmail)
		if err != nil {
			return err
		}
		// The value is refused when a live key holds it; the hit is
		// recorded, so this transaction commits and the conflict is
		// answered after.
		if conflict, err = s.duplicateValue(ctx, tx, actor, fp, env.Name, "register", s.now()); err != nil || conflict != nil {
			return err
		}
		days := env.RotationDays
		if nk.RotationDays > 0 {
			days = nk.RotationDays
		}
		now := s.now()
		var rotationDays *int
		if nk.RotationDays > 0 {
			rotationDays = &nk.RotationDays
		}
		err = tx.QueryRow(ctx, `INSERT INTO keys (name, provider, project, environment_id, owner_id, description, scope, masked_hint,
				fingerprint, current_version, rotation_days, rotate_by, last_rotated_at, created_by, created_at, updated_by, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $11, $12, $13, $12, $13, $12) RETURNING id::text`,
			nk.Name, string(nk.Provider), nk.Project, env.ID, ownerID, nk.Description, nk.Scope, hint, fp,
			rotationDays, keyledger.RotateBy(now, days), now, actor.User.ID).Scan(&id)
		if err != nil {
			return err
		}
		sealed, err := s.keyring.Seal(versionSubject(id, 1), []byte(nk.Value))
		if err != nil {
			return fmt.Errorf("seal value: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO key_versions (key_id, version, kek_id, wrapped_dek, nonce, ciphertext, masked_hint, fingerprint, created_by, created_at)
			VALUES ($1, 1, $2, $3, $4, $5, $6, $7, $8, $9)`, id, sealed.KEKID, sealed.WrappedDEK, sealed.Nonce, sealed.Ciphertext, hint, fp, actor.User.ID, now); err != nil {
			return err
		}
		// Provider keys synced before this registration whose hint is
		// this key's are matched now, not at the next sync.
		if err := matchProviderKeysByHint(ctx, tx, string(nk.Provider), hint); err != nil {
			return err
		}
		details := map[string]any{"provider": string(nk.Provider), "project": nk.Project, "owner": nk.OwnerEmail}
		if keyledger.LiveKeyMisplaced(nk.Value, env) {
			// The detail keeps its first name so that existing audit
			// queries still find it; it now means "outside a sensitive
			// environment".
			details["live_value_outside_production"] = true
		}
		if err := writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionKeyCreate, KeyID: id, KeyName: nk.Name, KeyVersion: 1,
			Environment: env.Name, Details: details}); err != nil {
			return err
		}
		// A key handed to someone under offboarding joins their checklist.
		*t = touchedUser(actor, now, ownerID)
		return nil
	})
	if isUniqueViolation(err, "keys_live_name_key") {
		msg := fmt.Sprintf("A live key named %q already exists in project %q and environment %s.", nk.Name, nk.Project, nk.Environment)
		return res, &keyledger.Error{Code: keyledger.ECONFLICT, Message: msg, Fields: map[string]string{"name": msg}}
	}
	if err != nil {
		return res, s.internal(ctx, "register key", err)
	}
	if conflict != nil {
		return res, conflict
	}
	if res.Key, err = s.GetKey(ctx, actor, id); err != nil {
		return res, err
	}
	if keyledger.LiveKeyMisplaced(nk.Value, res.Key.EnvironmentInfo) {
		res.Warnings = append(res.Warnings, keyledger.LiveKeyWarning(hint, res.Key.Environment))
	}
	return res, nil
}

func resolveEnvOwner(ctx context.Context, tx pgx.Tx, envName, ownerEmail string) (keyledger.Environment, int64, error) {
	var v keyledger.Validation
	env, err := scanEnv(tx.QueryRow(ctx, "SELECT "+envColumns+" FROM environments WHERE name = $1", envName))
	if errors.Is(err, pgx.ErrNoRows) {
		v.Add("environment", fmt.Sprintf("There is no environment named %q.", envName))
	} else if err != nil {
		return env, 0, err
	}
	var ownerID int64
	var status string
	err = tx.QueryRow(ctx, "SELECT id, status FROM users WHERE email = $1", ownerEmail).Scan(&ownerID, &status)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		v.Add("owner", fmt.Sprintf("There is no user %s.", ownerEmail))
	case err != nil:
		return env, 0, err
	case status != string(keyledger.UserActive):
		v.Add("owner", fmt.Sprintf("%s is deactivated and cannot own keys.", ownerEmail))
	}
	return env, ownerID, v.Err()
}

// keySelect reads keys with their environment and owner, and whether a
// leak incident is open on one of their versions (compromised). Last-reveal
// columns come from the audit index, per key.
const keySelect = `SELECT k.id::text, k.name, k.provider, k.project, e.id, e.name, e.reveal_policy, e.reason_required, e.sensitive, e.rotation_days, e.allow_token_reveal,
	k.owner_id, o.email, o.name, o.status, k.description, k.scope, k.masked_hint, k.current_version, coalesce(k.rotation_days, 0),
	coalesce(k.rotation_days, e.rotation_days), k.rotate_by, k.last_rotated_at, k.last_verified_at, coalesce(k.verify_result, ''), k.verify_message,
	k.created_at, coalesce(c.email, ''), k.updated_at, k.archived_at,
	coalesce((SELECT min(li.id) FROM leak_incidents li WHERE li.key_id = k.id AND li.closed_at IS NULL), 0)
	FROM keys k JOIN environments e ON e.id = k.environment_id JOIN users o ON o.id = k.owner_id LEFT JOIN users c ON c.id = k.created_by`

func scanKey(row pgx.Row) (*keyledger.Key, error) {
	var k keyledger.Key
	var ownerStatus string
	env := &k.EnvironmentInfo
	err := row.Scan(&k.ID, &k.Name, &k.Provider, &k.Project, &env.ID, &env.Name, &env.RevealPolicy, &env.ReasonRequired, &env.Sensitive, &env.RotationDays, &env.AllowTokenReveal,
		&k.OwnerID, &k.OwnerEmail, &k.OwnerName, &ownerStatus, &k.Description, &k.Scope, &k.MaskedHint, &k.CurrentVersion, &k.RotationDays,
		&k.EffectiveDays, &k.RotateBy, &k.LastRotatedAt, &k.LastVerifiedAt, &k.VerifyResult, &k.VerifyMessage,
		&k.CreatedAt, &k.CreatedByEmail, &k.UpdatedAt, &k.ArchivedAt, &k.OpenLeak)
	if err != nil {
		return nil, err
	}
	k.EnvironmentID = env.ID
	k.Environment = env.Name
	k.OwnerActive = ownerStatus == string(keyledger.UserActive)
	return &k, nil
}

// GetKey returns a key's metadata. Every active user sees metadata; values
// are only revealed through Reveal.
func (s *Store) GetKey(ctx context.Context, actor keyledger.Actor, id string) (*keyledger.Key, error) {
	if !actor.User.Active() {
		return nil, keyledger.Errorf(keyledger.EFORBIDDEN, "Your account is deactivated.")
	}
	if !isUUID(id) {
		return nil, keyledger.ErrNotFound("Key")
	}
	k, err := scanKey(s.pool.QueryRow(ctx, keySelect+" WHERE k.id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyledger.ErrNotFound("Key")
	}
	if err != nil {
		return nil, s.internal(ctx, "get key "+id, err)
	}
	return k, nil
}

// RotationPerGroup is how many keys each group of the overview lists; the
// key list (status filter) shows the rest. Listing every key made the page
// hundreds of kilobytes at ten thousand keys, more than anyone reads.
const RotationPerGroup = 50

// UpdateKey edits a key's metadata (not its value: that is a rotation).
func (s *Store) UpdateKey(ctx context.Context, actor keyledger.Actor, id string, in keyledger.KeyInput) (*keyledger.Key, error) {
	if err := keyledger.CheckScope(actor, keyledger.ScopeWrite); err != nil {
		return nil, err
	}
	edit, err := keyledger.ValidateKeyEdit(in)
	if err != nil {
		return nil, err
	}
	if !isUUID(id) {
		return nil, keyledger.ErrNotFound("Key")
	}
	err = s.write(ctx, func(tx pgx.Tx, t *touched) error {
		actor, k, err := editableKey(ctx, tx, actor, id, true, "This key is archived and can no longer be changed.")
		if err != nil {
			return err
		}
		_, ownerID, err := resolveEnvOwner(ctx, tx, k.Environment, edit.OwnerEmail)
		if err != nil {
			return err
		}
		days := k.EnvironmentInfo.RotationDays
		var rotationDays *int
		if edit.RotationDays > 0 {
			days = edit.RotationDays
			rotationDays = &edit.RotationDays
		}
		if _, err := tx.Exec(ctx, `UPDATE keys SET project = $2, owner_id = $3, scope = $4, description = $5, rotation_days = $6,
			rotate_by = $7, updated_by = $8, updated_at = $9 WHERE id = $1`,
			id, edit.Project, ownerID, edit.Scope, edit.Description, rotationDays, keyledger.RotateBy(k.LastRotatedAt, days), actor.User.ID, s.now()); err != nil {
			return err
		}
		changed := map[string]any{}
		if k.Project != edit.Project {
			changed["project"] = map[string]string{"from": k.Project, "to": edit.Project}
		}
		if k.OwnerEmail != edit.OwnerEmail {
			changed["owner"] = map[string]string{"from": k.OwnerEmail, "to": edit.OwnerEmail}
		}
		if k.Scope != edit.Scope {
			changed["scope"] = map[string]string{"from": k.Scope, "to": edit.Scope}
		}
		if k.Description != edit.Description {
			changed["description"] = "changed"
		}
		if k.RotationDays != edit.RotationDays {
			changed["rotation_days"] = map[string]int{"from": k.RotationDays, "to": edit.RotationDays}
		}
		if err := writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionKeyUpdate, KeyID: id, KeyName: k.Name,
			Environment: k.Environment, Details: changed}); err != nil {
			return err
		}
		*t = touchedKeys(actor, s.now())
		return nil
	})
	if err != nil {
		return nil, s.internal(ctx, "update key "+id, err)
	}
	return s.GetKey(ctx, actor, id)
}

// ArchiveKey retires a key: it leaves the live list and every version is
// destroyed (wrapped DEK and ciphertext removed), so not even the master
// key can bring the value back.
func (s *Store) ArchiveKey(ctx context.Context, actor keyledger.Actor, id string) error {
	if err := keyledger.CheckScope(actor, keyledger.ScopeWrite); err != nil {
		return err
	}
	if !isUUID(id) {
		return keyledger.ErrNotFound("Key")
	}
	err := s.write(ctx, func(tx pgx.Tx, t *touched) error {
		actor, k, err := editableKey(ctx, tx, actor, id, true, "This key is already archived.")
		if err != nil {
			return err
		}
		now := s.now()
		if _, err := tx.Exec(ctx, "UPDATE keys SET archived_at = $2, updated_by = $3, updated_at = $2 WHERE id = $1", id, now, actor.User.ID); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `UPDATE key_versions SET wrapped_dek = NULL, ciphertext = NULL, destroyed_at = $2,
			superseded_at = coalesce(superseded_at, $2) WHERE key_id = $1 AND destroyed_at IS NULL`, id, now)
		if err != nil {
			return err
		}
		// An archived key has no current version any more: its open leak
		// incidents are rotated away (they still need the revocation at
		// the provider, or a waiver).
		if err := leakKeyArchived(ctx, tx, actor, id, now); err != nil {
			return err
		}
		if err := writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionKeyArchive, KeyID: id, KeyName: k.Name,
			Environment: k.Environment, Details: map[string]any{"versions_destroyed": tag.RowsAffected()}}); err != nil {
			return err
		}
		*t = touchedKeys(actor, now)
		return nil
	})
	if err != nil {
		return s.internal(ctx, "archive key "+id, err)
	}
	return nil
}

// editableKey starts every change to a key inside tx: it re-reads the
// actor, finds the key (locking its row when lock is set), checks that
// the actor may edit it, and refuses an archived key with archivedMsg.
func editableKey(ctx context.Context, tx pgx.Tx, actor keyledger.Actor, id string, lock bool, archivedMsg string) (keyledger.Actor, *keyledger.Key, error) {
	actor, err := freshActor(ctx, tx, actor)
	if err != nil {
		return actor, nil, err
	}
	q := keySelect + " WHERE k.id = $1"
	if lock {
		q += " FOR UPDATE OF k"
	}
	k, err := scanKey(tx.QueryRow(ctx, q, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return actor, nil, keyledger.ErrNotFound("Key")
	}
	if err != nil {
		return actor, nil, err
	}
	if err := keyledger.CanEditKey(actor.User, k.OwnerID); err != nil {
		return actor, nil, err
	}
	if k.Archived() {
		return actor, nil, keyledger.Errorf(keyledger.ECONFLICT, "%s", archivedMsg)
	}
	return actor, k, nil
}
