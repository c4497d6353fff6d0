package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// providerRevokeTimeout bounds the provider call of a revoke: a person is
// waiting on the page.
const providerRevokeTimeout = 20 * time.Second

// revokeTarget is what a revoke at the provider acts on: a provider key
// and, when it is linked to (or carries a version of) a registered key,
// that key.
type revokeTarget struct {
	at  keyledger.KeyAtProvider
	key *keyledger.Key // nil: a key only the provider knows
	// offboarding is the checklist the revoke was started from (0: none).
	offboarding int64
}

// RevokeAtProvider revokes one of key keyID's provider keys at the
// provider (OpenAI deletes it, Anthropic sets it inactive): providerKey
// is its provider_keys id, or 0 for the one linked to the key. The rule
// is keyledger.CanProviderRevoke with a reason always required. The
// connection's admin key is unsealed only for the call. Success records
// who revoked it and when on the provider key and audits it; a key
// keyledger already revoked is done without a call; a provider that
// refuses or does not answer is audited as a failed attempt and comes
// back as an error in plain words, with nothing marked revoked.
func (s *Store) RevokeAtProvider(ctx context.Context, actor keyledger.Actor, pa keyledger.ProviderAdmin, keyID string, providerKey int64, reason string) (keyledger.ProviderRevokeResult, error) {
	var res keyledger.ProviderRevokeResult
	if err := keyledger.CheckScope(actor, keyledger.ScopeWrite); err != nil {
		return res, err
	}
	k, err := s.GetKey(ctx, actor, keyID)
	if err != nil {
		return res, err
	}
	// Who may, before anything about the provider is said.
	if err := keyledger.CanEditKey(actor.User, k.OwnerID); err != nil {
		return res, keyledger.Errorf(keyledger.EFORBIDDEN, "Only the key's owner, leads and admins may revoke it at the provider.")
	}
	if reason, err = keyledger.CheckProviderRevokeReason(reason); err != nil {
		return res, err
	}
	list, err := s.KeysAtProvider(ctx, actor, k)
	if err != nil {
		return res, err
	}
	var target *keyledger.KeyAtProvider
	for i := range list {
		if (providerKey == 0 && list[i].Linked) || (providerKey != 0 && list[i].ID == providerKey) {
			target = &list[i]
			break
		}
	}
	if target == nil {
		return res, keyledger.Errorf(keyledger.ECONFLICT, "This key is not linked to a key at a connected provider, so there is nothing to revoke there. Revoke it in the provider's dashboard, or ask an admin to connect the provider.")
	}
	return s.revokeAtProvider(ctx, actor, pa, revokeTarget{at: *target, key: k}, reason)
}

// RevokeOffboardingItemAtProvider works an offboarding item "revoke at
// the provider": the provider key the departing person created there.
// Leads and admins of the checklist (CanOffboard), then the same rule and
// path as RevokeAtProvider.
func (s *Store) RevokeOffboardingItemAtProvider(ctx context.Context, actor keyledger.Actor, pa keyledger.ProviderAdmin, offboardingID, itemID int64, reason string) (keyledger.ProviderRevokeResult, error) {
	var res keyledger.ProviderRevokeResult
	if err := noToken(actor); err != nil {
		return res, err
	}
	o, err := s.Offboarding(ctx, actor, offboardingID)
	if err != nil {
		return res, err
	}
	if err := keyledger.CanOffboard(actor.User, &o.User); err != nil {
		return res, err
	}
	if o.Completed() {
		return res, keyledger.Errorf(keyledger.ECONFLICT, "This offboarding is complete; its record can no longer change.")
	}
	var item *keyledger.OffboardingItem
	for i := range o.Items {
		if o.Items[i].ID == itemID && o.Items[i].Kind == keyledger.ItemProviderRevoke {
			item = &o.Items[i]
		}
	}
	if item == nil {
		return res, keyledger.ErrNotFound("Offboarding item")
	}
	if item.Status != keyledger.ItemOpen {
		return res, keyledger.Errorf(keyledger.ECONFLICT, "This item is not open any more (someone resolved it a moment ago); reload the page.")
	}
	if reason, err = keyledger.CheckProviderRevokeReason(reason); err != nil {
		return res, err
	}
	at, err := scanKeyAtProvider(s.pool.QueryRow(ctx, "SELECT "+keyAtProviderColumns+` FROM provider_keys pk
		JOIN provider_connections c ON c.id = pk.connection_id AND c.removed_at IS NULL LEFT JOIN users ru ON ru.id = pk.revoked_by
		WHERE pk.id = $3`, nullUUID(item.KeyID), keyledger.UTCDay(s.now()).AddDate(0, 0, -(keyledger.UsageDays-1)), item.ProviderKeyRef))
	if errors.Is(err, pgx.ErrNoRows) {
		return res, keyledger.Errorf(keyledger.ECONFLICT, "The connection to this key's provider was removed; revoke it in the provider's dashboard and waive the item.")
	}
	if err != nil {
		return res, s.internal(ctx, "read provider key", err)
	}
	t := revokeTarget{at: at, offboarding: offboardingID}
	if item.KeyID != "" {
		if t.key, err = s.GetKey(ctx, actor, item.KeyID); err != nil {
			return res, err
		}
	}
	return s.revokeAtProvider(ctx, actor, pa, t, reason)
}

// nullUUID is id, or NULL for "".
func nullUUID(id string) any {
	if id == "" {
		return nil
	}
	return id
}

func (s *Store) revokeAtProvider(ctx context.Context, actor keyledger.Actor, pa keyledger.ProviderAdmin, t revokeTarget, reason string) (keyledger.ProviderRevokeResult, error) {
	res := keyledger.ProviderRevokeResult{Key: t.at}
	if pa == nil || !pa.Supports(t.at.Provider) {
		return res, keyledger.Errorf(keyledger.EUNAVAILABLE, "This keyledger has no admin client for %s; revoke the key in its dashboard.", t.at.Provider.Label())
	}
	// The rule, on the actor as the database has them now.
	fresh, err := freshActor(ctx, s.pool, actor)
	if err != nil {
		return res, err
	}
	var env *keyledger.Environment
	var owner int64
	if t.key != nil {
		env, owner = &t.key.EnvironmentInfo, t.key.OwnerID
	}
	if err := keyledger.CanProviderRevoke(fresh, env, owner, s.now()); err != nil {
		return res, err
	}
	return s.revokeNow(ctx, fresh, pa, t, reason)
}

// revokeNow is the call and its record, for an actor already allowed: a
// person the rule let through (revokeAtProvider), or the scheduler ending
// a rotation at the provider whose grace period is over (the rotation
// was allowed when it was made). Idempotent: a key keyledger revoked
// before is not called again.
func (s *Store) revokeNow(ctx context.Context, fresh keyledger.Actor, pa keyledger.ProviderAdmin, t revokeTarget, reason string) (keyledger.ProviderRevokeResult, error) {
	res := keyledger.ProviderRevokeResult{Key: t.at}
	if pa == nil || !pa.Supports(t.at.Provider) {
		return res, keyledger.Errorf(keyledger.EUNAVAILABLE, "This keyledger has no admin client for %s; revoke the key in its dashboard.", t.at.Provider.Label())
	}
	var by any // NULL: the scheduler
	if fresh.User != nil {
		by = fresh.User.ID
	}
	if t.at.RevokedAt != nil {
		// Idempotent: keyledger revoked it before; nothing to call. A
		// leak incident opened since still learns that it is revoked.
		res.Already = true
		if t.key == nil || t.at.Version == 0 {
			return res, nil
		}
		now := s.now()
		err := s.write(ctx, func(tx pgx.Tx, tc *touched) error {
			*tc = touchedKeys(fresh, now)
			_, err := leakRevoked(ctx, tx, fresh, t.key.ID, t.at.Version, revokedAtNote(t.at), now)
			return err
		})
		return res, s.internal(ctx, "record revoke at provider", err)
	}
	cred, err := s.credential(ctx, t.at.ConnectionID)
	if err != nil {
		return res, s.internal(ctx, "revoke at provider", err)
	}
	callCtx, cancel := context.WithTimeout(ctx, providerRevokeTimeout)
	callErr := pa.Revoke(callCtx, cred, keyledger.ProviderKeyRef{ID: t.at.ProviderKeyID, Project: t.at.ProjectID})
	cancel()
	details := map[string]any{"provider": string(t.at.Provider), "connection_id": t.at.ConnectionID, "connection": t.at.ConnectionName,
		"provider_key_id": t.at.ProviderKeyID, "project": t.at.ProjectID}
	if t.at.Version > 0 {
		details["version"] = t.at.Version
	}
	if t.offboarding != 0 {
		details["offboarding"] = t.offboarding
	}
	entry := auditEntry{Actor: fresh, Reason: reason, Details: details, KeyName: t.at.Name}
	if t.key != nil {
		entry.KeyID, entry.KeyName, entry.Environment, entry.KeyVersion = t.key.ID, t.key.Name, t.key.Environment, t.at.Version
	}
	if callErr != nil {
		entry.Action = keyledger.ActionProviderRevokeFailed
		details["error"] = string(keyledger.ProviderAdminErrorKindOf(callErr))
		if st := providerStatus(callErr); st != 0 {
			details["status"] = st
		}
		if err := s.auditRevokeFailure(ctx, entry); err != nil {
			return res, s.internal(ctx, "audit failed revoke at provider", errors.Join(err, callErr))
		}
		return res, revokeFailure(t.at, callErr)
	}
	entry.Action = keyledger.ActionProviderRevoke
	now := s.now()
	err = s.write(ctx, func(tx pgx.Tx, tc *touched) error {
		*tc = touchedKeys(fresh, now)
		// Anthropic keeps the key, inactive; OpenAI deleted it, and the
		// next sync marks it gone from the list.
		status := t.at.Status
		if t.at.Provider == keyledger.ProviderAnthropic {
			status = keyledger.ProviderKeyInactive
		}
		err := tx.QueryRow(ctx, `UPDATE provider_keys SET revoked_at = $2, revoked_by = $3, status = $4 WHERE id = $1 AND revoked_at IS NULL
			RETURNING revoked_at`, t.at.ID, now, by, status).Scan(&res.Key.RevokedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			// Revoked by someone else meanwhile: the provider call was a
			// harmless repeat, and their event stands.
			res.Already = true
			return nil
		}
		if err != nil {
			return fmt.Errorf("record revoke at provider: %w", err)
		}
		res.Key.Status, res.Key.RevokedBy = status, fresh.Label()
		if err := writeAudit(ctx, tx, entry); err != nil {
			return err
		}
		// The version this provider key carries may have leaked: its
		// incident counts it revoked (and closes once rotated away too).
		if t.key != nil && t.at.Version > 0 {
			if _, err := leakRevoked(ctx, tx, fresh, t.key.ID, t.at.Version, revokedAtNote(t.at), now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return res, s.internal(ctx, "record revoke at provider", err)
	}
	return res, nil
}

// auditRevokeFailure writes the audit event of a refused revoke: the
// attempt is the record; nothing else changes.
func (s *Store) auditRevokeFailure(ctx context.Context, e auditEntry) error {
	return s.tx(ctx, func(tx pgx.Tx) error { return writeAudit(ctx, tx, e) })
}

func providerStatus(err error) int {
	var pe *keyledger.ProviderAdminError
	if errors.As(err, &pe) {
		return pe.Status
	}
	return 0
}

// callWords is how a failed provider call is told: what keyledger tried
// (to revoke the key, to create a new key), what did not happen, and
// what a person does by hand.
type callWords struct {
	tried, nothing, byHand string
}

var revokeWords = callWords{tried: "revoke the key", nothing: " Nothing was revoked: the key still works.", byHand: "revoke the key in %s's dashboard"}

var rotateWords = callWords{tried: "create the new key", nothing: " Nothing was rotated: the key is as it was and still works.", byHand: "rotate the key by hand in %s's dashboard"}

// revokeFailure says in plain words why the provider did not revoke the
// key, and what to do. It never holds the admin key (a
// *ProviderAdminError does not).
func revokeFailure(at keyledger.KeyAtProvider, err error) error {
	return providerCallFailure(at, err, revokeWords)
}

// providerCallFailure says in plain words why a call to the provider
// about key at did not work, and what to do.
func providerCallFailure(at keyledger.KeyAtProvider, err error, w callWords) error {
	p := at.Provider.Label()
	var pe *keyledger.ProviderAdminError
	if !errors.As(err, &pe) {
		if errors.Is(err, context.DeadlineExceeded) {
			pe = &keyledger.ProviderAdminError{Kind: keyledger.ProviderTimeout}
		} else {
			pe = &keyledger.ProviderAdminError{Kind: keyledger.ProviderUnavailable}
		}
	}
	nothing, byHand := w.nothing, fmt.Sprintf(w.byHand, p)
	switch pe.Kind {
	case keyledger.ProviderUnauthorized:
		return keyledger.Errorf(keyledger.EUNAVAILABLE, "%s refused the admin key of the connection %q (HTTP %d): it was revoked or lacks the permission. An admin must replace the connection's admin key.%s", p, at.ConnectionName, pe.Status, nothing)
	case keyledger.ProviderRateLimited:
		e := keyledger.Errorf(keyledger.ETOOMANY, "%s is limiting requests from keyledger right now.%s Try again %s.", p, nothing, retryIn(pe.RetryAfter))
		e.RetryAfter = pe.RetryAfter
		return e
	case keyledger.ProviderTimeout:
		return keyledger.Errorf(keyledger.EUNAVAILABLE, "%s did not answer in time.%s Try again in a minute; if it keeps failing, %s.", p, nothing, byHand)
	case keyledger.ProviderRejected:
		msg := ""
		if pe.Message != "" {
			msg = ": " + pe.Message
		}
		return keyledger.Errorf(keyledger.EUNAVAILABLE, "%s refused to %s (HTTP %d%s).%s", p, w.tried, pe.Status, msg, nothing)
	}
	return keyledger.Errorf(keyledger.EUNAVAILABLE, "%s could not be reached or answered with an error.%s Try again later, or %s.", p, nothing, byHand)
}

func retryIn(d time.Duration) string {
	if d <= 0 {
		return "in a minute"
	}
	return "in " + d.Round(time.Second).String()
}

// revokedAtNote is the leak timeline's note for a revocation at the
// provider.
func revokedAtNote(at keyledger.KeyAtProvider) string {
	return "Revoked at " + at.Provider.Label() + " (" + at.ProviderKeyID + ")."
}
