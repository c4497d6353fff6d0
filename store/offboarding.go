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

// syncOffboardings brings every open checklist (or only the one of
// userID, when not 0) in line with the records, inside the caller's
// transaction: keys the person owns or saw become items; items whose
// action has happened anywhere in the app resolve, with an audit event.
// Callers run it in the same transaction as the action, so the checklist
// can never lag behind what was done.
func syncOffboardings(ctx context.Context, tx pgx.Tx, actor keyledger.Actor, now time.Time, userID int64) error {
	q := "SELECT id, user_id FROM offboardings WHERE completed_at IS NULL"
	args := []any{}
	if userID != 0 {
		q += " AND user_id = $1"
		args = append(args, userID)
	}
	rows, err := tx.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	type open struct{ id, user int64 }
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (open, error) {
		var o open
		err := r.Scan(&o.id, &o.user)
		return o, err
	})
	if err != nil || len(list) == 0 {
		return err
	}
	var actorID *int64
	if actor.User != nil {
		actorID = &actor.User.ID
	}
	for _, o := range list {
		// New items: live keys owned, and live keys whose current version
		// the person revealed or exported (after the start too).
		added, err := tx.Query(ctx, `INSERT INTO offboarding_items (offboarding_id, kind, key_id, key_name, environment, why, created_at)
			SELECT $1::bigint, 'reassign', k.id, k.name, e.name, 'owns this key', $3::timestamptz
			FROM keys k JOIN environments e ON e.id = k.environment_id
			WHERE k.owner_id = $2 AND k.archived_at IS NULL
			UNION ALL
			SELECT $1::bigint, 'rotate', k.id, k.name, e.name,
				'saw version ' || k.current_version || ' (' || string_agg(DISTINCT replace(a.action, 'key.', ''), ', ') || ', last ' || to_char(max(a.at) AT TIME ZONE 'UTC', 'YYYY-MM-DD') || ')', $3::timestamptz
			FROM audit_events a JOIN keys k ON k.id = a.key_id AND a.key_version = k.current_version JOIN environments e ON e.id = k.environment_id
			WHERE a.actor_id = $2 AND a.action = ANY($4) AND k.archived_at IS NULL
			GROUP BY k.id, k.name, e.name, k.current_version
			-- A resolved item whose condition holds again (the key was
			-- handed back, or they saw the new version) opens again.
			ON CONFLICT (offboarding_id, kind, coalesce(key_id, '00000000-0000-0000-0000-000000000000')) WHERE provider_key_ref IS NULL
			DO UPDATE SET status = $5, resolution = '', resolved_at = NULL, resolved_by = NULL, why = EXCLUDED.why
			WHERE offboarding_items.status = $6
			RETURNING id, kind, coalesce(key_id::text, ''), key_name, environment`, o.id, o.user, now, seenActions, keyledger.ItemOpen, keyledger.ItemDone)
		if err != nil {
			return fmt.Errorf("offboarding %d: add items: %w", o.id, err)
		}
		scan := scanSyncedItem
		newItems, err := pgx.CollectRows(added, scan)
		if err != nil {
			return err
		}
		// Resolve what has happened: ownership moved or key archived;
		// key rotated past what they saw, or archived; account
		// deactivated; sessions gone with the account frozen or closed.
		resolved, err := tx.Query(ctx, `UPDATE offboarding_items i SET status = $5, resolved_at = $3, resolved_by = $4,
				resolution = CASE
					WHEN k.archived_at IS NOT NULL THEN 'key archived (its versions destroyed)'
					WHEN i.kind = 'reassign' THEN 'now owned by ' || (SELECT email FROM users WHERE id = k.owner_id)
					ELSE 'rotated to version ' || k.current_version END
			FROM keys k
			WHERE i.offboarding_id = $1 AND i.status = $6 AND i.key_id = k.id AND i.provider_key_ref IS NULL AND (
				k.archived_at IS NOT NULL
				OR (i.kind = 'reassign' AND k.owner_id <> $2)
				OR (i.kind = 'rotate' AND NOT EXISTS (SELECT 1 FROM audit_events a WHERE a.actor_id = $2 AND a.key_id = k.id
					AND a.action = ANY($7) AND a.key_version = k.current_version)))
			RETURNING i.id, i.kind, coalesce(i.key_id::text, ''), i.key_name, i.environment`, o.id, o.user, now, actorID,
			keyledger.ItemDone, keyledger.ItemOpen, seenActions)
		if err != nil {
			return fmt.Errorf("offboarding %d: resolve key items: %w", o.id, err)
		}
		done, err := pgx.CollectRows(resolved, scan)
		if err != nil {
			return err
		}
		resolved, err = tx.Query(ctx, `UPDATE offboarding_items i SET status = $5, resolved_at = $3, resolved_by = $4,
				resolution = CASE i.kind WHEN 'deactivate' THEN 'account deactivated' ELSE 'sessions and tokens revoked' END
			FROM users u
			WHERE i.offboarding_id = $1 AND i.status = $6 AND u.id = $2 AND (
				(i.kind = 'deactivate' AND u.status = $7)
				OR (i.kind = 'revoke' AND u.status <> $8 AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = $2)
					AND NOT EXISTS (SELECT 1 FROM api_tokens t WHERE t.user_id = $2)))
			RETURNING i.id, i.kind, '', '', ''`, o.id, o.user, now, actorID,
			keyledger.ItemDone, keyledger.ItemOpen, string(keyledger.UserDeactivated), string(keyledger.UserActive))
		if err != nil {
			return fmt.Errorf("offboarding %d: resolve account items: %w", o.id, err)
		}
		more, err := pgx.CollectRows(resolved, scan)
		if err != nil {
			return err
		}
		done = append(done, more...)
		provAdded, resolvedAtProvider, err := syncProviderItems(ctx, tx, o.id, o.user, now, actorID)
		if err != nil {
			return err
		}
		newItems = append(newItems, provAdded...)
		done = append(done, resolvedAtProvider...)
		// An account that is active again (reactivated) needs closing
		// again, and a session started after the revoke needs revoking.
		reopened, err := tx.Query(ctx, `UPDATE offboarding_items i SET status = $3, resolution = '', resolved_at = NULL, resolved_by = NULL
			FROM users u WHERE i.offboarding_id = $1 AND i.status = $4 AND u.id = $2 AND u.status = $5 AND (
				i.kind = 'deactivate'
				OR (i.kind = 'revoke' AND (EXISTS (SELECT 1 FROM sessions s WHERE s.user_id = $2 AND s.created_at > i.resolved_at)
					OR EXISTS (SELECT 1 FROM api_tokens t WHERE t.user_id = $2 AND t.created_at > i.resolved_at))))
			RETURNING i.id, i.kind, '', '', ''`, o.id, o.user, keyledger.ItemOpen, keyledger.ItemDone, string(keyledger.UserActive))
		if err != nil {
			return fmt.Errorf("offboarding %d: reopen account items: %w", o.id, err)
		}
		again, err := pgx.CollectRows(reopened, scan)
		if err != nil {
			return err
		}
		newItems = append(newItems, again...)
		var subject string
		if err := tx.QueryRow(ctx, "SELECT email FROM users WHERE id = $1", o.user).Scan(&subject); err != nil {
			return err
		}
		for _, it := range newItems {
			if err := writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionOffboardAdd, KeyID: it.key, KeyName: it.name,
				Environment: it.env, SubjectID: o.user, SubjectEmail: subject, Details: map[string]any{"offboarding": o.id, "item": it.id, "kind": it.kind}}); err != nil {
				return err
			}
		}
		for _, it := range done {
			if err := writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionOffboardResolve, KeyID: it.key, KeyName: it.name,
				Environment: it.env, SubjectID: o.user, SubjectEmail: subject, Details: map[string]any{"offboarding": o.id, "item": it.id, "kind": it.kind}}); err != nil {
				return err
			}
		}
	}
	return nil
}

// syncedItem is an item syncOffboardings added or resolved, for its
// audit event.
type syncedItem struct {
	id                   int64
	kind, key, name, env string
}

func scanSyncedItem(r pgx.CollectableRow) (syncedItem, error) {
	var it syncedItem
	err := r.Scan(&it.id, &it.kind, &it.key, &it.name, &it.env)
	return it, err
}

// StartOffboarding opens the checklist for a departing user. With freeze,
// the user loses access at once (status frozen, sessions deleted) while
// the checklist is worked through. Leads and admins only.
func (s *Store) StartOffboarding(ctx context.Context, actor keyledger.Actor, email string, freeze bool, note string) (int64, error) {
	defer s.tokens.clear()
	if err := noToken(actor); err != nil {
		return 0, err
	}
	email = keyledger.NormalizeEmail(email)
	note = strings.TrimSpace(note)
	if _, err := keyledger.CheckReason(note, false); err != nil {
		return 0, &keyledger.Error{Code: keyledger.EINVALID, Message: "The note must be plain text of at most 500 characters.",
			Fields: map[string]string{"note": "The note must be plain text of at most 500 characters."}}
	}
	var id int64
	err := s.write(ctx, func(tx pgx.Tx, t *touched) error {
		actor, err := freshActorMay(ctx, tx, actor, keyledger.CanLead)
		if err != nil {
			return err
		}
		u, err := scanUser(tx.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE email = $1 FOR UPDATE", email))
		if errors.Is(err, pgx.ErrNoRows) {
			return &keyledger.Error{Code: keyledger.EINVALID, Message: "Choose a person.", Fields: map[string]string{"user": fmt.Sprintf("There is no user %s.", email)}}
		}
		if err != nil {
			return err
		}
		// actor was re-read by freshActorMay above; CanLead there keeps
		// members from learning who exists, this decides about whom.
		if err := keyledger.CanOffboard(actor.User, u); err != nil {
			return err
		}
		if u.ID == actor.User.ID {
			return &keyledger.Error{Code: keyledger.EINVALID, Message: "You cannot offboard yourself.", Fields: map[string]string{"user": "You cannot offboard yourself; ask another lead."}}
		}
		if u.Status == keyledger.UserDeactivated {
			// Still useful: the keys they saw must be rotated. Allowed.
			freeze = false
		}
		if freeze && u.Role == keyledger.RoleAdmin && u.Active() {
			if err := lastAdminGuard(ctx, tx, u.ID); err != nil {
				return err
			}
		}
		now := s.now()
		err = tx.QueryRow(ctx, `INSERT INTO offboardings (user_id, started_by, started_at, frozen, note) VALUES ($1, $2, $3, $4, $5) RETURNING id`,
			u.ID, actor.User.ID, now, freeze, note).Scan(&id)
		if isUniqueViolation(err, "offboardings_open_user_key") {
			return keyledger.Errorf(keyledger.ECONFLICT, "An offboarding for %s is already open.", u.Email)
		}
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `INSERT INTO offboarding_items (offboarding_id, kind, why, created_at) VALUES
			($1, 'revoke', 'sessions and access tokens', $2), ($1, 'deactivate', 'the account', $2)`, id, now); err != nil {
			return err
		}
		if freeze {
			if _, err := tx.Exec(ctx, "UPDATE users SET status = $3, updated_at = $2 WHERE id = $1 AND status = $4", u.ID, now,
				string(keyledger.UserFrozen), string(keyledger.UserActive)); err != nil {
				return err
			}
			sessions, _, err := endAccess(ctx, tx, u.ID)
			if err != nil {
				return err
			}
			if err := writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionUserFreeze, SubjectID: u.ID, SubjectEmail: u.Email,
				Details: map[string]any{"sessions_revoked": sessions, "offboarding": id}}); err != nil {
				return err
			}
		}
		if err := writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionOffboardStart, SubjectID: u.ID, SubjectEmail: u.Email,
			Reason: note, Details: map[string]any{"offboarding": id, "frozen": freeze}}); err != nil {
			return err
		}
		*t = touchedUser(actor, now, u.ID)
		return nil
	})
	if err != nil {
		return 0, s.internal(ctx, "start offboarding", err)
	}
	return id, nil
}

// Offboarding returns a checklist with its items. Leads and admins only.
func (s *Store) Offboarding(ctx context.Context, actor keyledger.Actor, id int64) (*keyledger.Offboarding, error) {
	if err := keyledger.CanLead(actor.User); err != nil {
		return nil, err
	}
	var o keyledger.Offboarding
	u := &o.User
	err := s.pool.QueryRow(ctx, `SELECT o.id, o.started_at, o.frozen, o.note, o.completed_at, coalesce(sb.email, ''), coalesce(cb.email, ''),
			`+userCols.sql("u")+`
		FROM offboardings o JOIN users u ON u.id = o.user_id LEFT JOIN users sb ON sb.id = o.started_by LEFT JOIN users cb ON cb.id = o.completed_by
		WHERE o.id = $1`, id).Scan(userCols.dests([]any{&o.ID, &o.StartedAt, &o.Frozen, &o.Note, &o.CompletedAt, &o.StartedBy, &o.CompletedBy}, u)...)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyledger.ErrNotFound("Offboarding")
	}
	if err != nil {
		return nil, s.internal(ctx, "get offboarding", err)
	}
	rows, err := s.pool.Query(ctx, `SELECT i.id, i.kind, coalesce(i.key_id::text, ''), i.key_name, i.environment, i.why, i.status, i.resolution,
			coalesce(r.email, ''), i.resolved_at, i.created_at, coalesce(i.provider_key_ref, 0)
		FROM offboarding_items i LEFT JOIN users r ON r.id = i.resolved_by WHERE i.offboarding_id = $1
		ORDER BY CASE i.kind WHEN 'reassign' THEN 1 WHEN 'rotate' THEN 2 WHEN 'revoke' THEN 3 ELSE 4 END, i.environment, i.key_name, i.id`, id)
	if err != nil {
		return nil, s.internal(ctx, "get offboarding items", err)
	}
	o.Items, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyledger.OffboardingItem, error) {
		var it keyledger.OffboardingItem
		err := r.Scan(&it.ID, &it.Kind, &it.KeyID, &it.KeyName, &it.Environment, &it.Why, &it.Status, &it.Resolution, &it.ResolvedBy, &it.ResolvedAt, &it.CreatedAt, &it.ProviderKeyRef)
		return it, err
	})
	if err != nil {
		return nil, s.internal(ctx, "get offboarding items", err)
	}
	return &o, nil
}

// ListOffboardings lists checklists, open ones first. Leads and admins.
func (s *Store) ListOffboardings(ctx context.Context, actor keyledger.Actor) ([]keyledger.OffboardingSummary, error) {
	if err := keyledger.CanLead(actor.User); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT o.id, u.email, u.name, o.started_at, coalesce(sb.email, ''), o.completed_at, o.frozen,
			count(i.id) FILTER (WHERE i.status = $1), count(i.id)
		FROM offboardings o JOIN users u ON u.id = o.user_id LEFT JOIN users sb ON sb.id = o.started_by
		LEFT JOIN offboarding_items i ON i.offboarding_id = o.id
		GROUP BY o.id, u.email, u.name, sb.email ORDER BY o.completed_at IS NOT NULL, o.started_at DESC LIMIT 200`, keyledger.ItemOpen)
	if err != nil {
		return nil, s.internal(ctx, "list offboardings", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyledger.OffboardingSummary, error) {
		var o keyledger.OffboardingSummary
		err := r.Scan(&o.ID, &o.UserEmail, &o.UserName, &o.StartedAt, &o.StartedBy, &o.CompletedAt, &o.Frozen, &o.Open, &o.Total)
		return o, err
	})
	if err != nil {
		return nil, s.internal(ctx, "list offboardings", err)
	}
	return out, nil
}

// withOpenOffboarding runs fn on an open checklist, locked, after checking
// the actor may lead it.
func (s *Store) withOpenOffboarding(ctx context.Context, actor keyledger.Actor, id int64, fn func(tx pgx.Tx, actor keyledger.Actor, userID int64, email string) error) error {
	if err := noToken(actor); err != nil {
		return err
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		actor, err := freshActorMay(ctx, tx, actor, keyledger.CanLead)
		if err != nil {
			return err
		}
		o, err := lockOffboarding(ctx, tx, id)
		if err != nil {
			return err
		}
		userID, email := o.userID, o.email
		if err := keyledger.CanOffboard(actor.User, &keyledger.User{ID: userID, Role: o.role}); err != nil {
			return err
		}
		if err := o.open(); err != nil {
			return err
		}
		if userID == actor.User.ID {
			return keyledger.Errorf(keyledger.EFORBIDDEN, "This is your own offboarding; another lead must work through it.")
		}
		return fn(tx, actor, userID, email)
	})
}

// lockedOffboarding is an offboarding row locked for the caller's
// transaction (lockOffboarding): completing it waits for the caller, and
// the caller sees whether it was completed a moment before.
type lockedOffboarding struct {
	userID    int64
	email     string
	role      keyledger.Role
	completed bool
}

func lockOffboarding(ctx context.Context, tx pgx.Tx, id int64) (lockedOffboarding, error) {
	var o lockedOffboarding
	var completed *time.Time
	err := tx.QueryRow(ctx, `SELECT o.user_id, u.email, u.role, o.completed_at FROM offboardings o JOIN users u ON u.id = o.user_id
		WHERE o.id = $1 FOR UPDATE OF o`, id).Scan(&o.userID, &o.email, &o.role, &completed)
	if errors.Is(err, pgx.ErrNoRows) {
		return o, keyledger.ErrNotFound("Offboarding")
	}
	o.completed = completed != nil
	return o, err
}

// open refuses a completed offboarding: its record no longer changes.
func (o lockedOffboarding) open() error {
	if o.completed {
		return keyledger.Errorf(keyledger.ECONFLICT, "This offboarding is complete; its record can no longer change.")
	}
	return nil
}

// ReassignOffboardedKeys moves every live key the person of an open
// offboarding owns to toEmail (ReassignKeys), in the transaction that
// finds the checklist open: a completion a moment earlier refuses it,
// one a moment later waits for it. Leads and admins.
func (s *Store) ReassignOffboardedKeys(ctx context.Context, actor keyledger.Actor, offboardingID int64, toEmail string) (int, error) {
	if err := noToken(actor); err != nil {
		return 0, err
	}
	toEmail = keyledger.NormalizeEmail(toEmail)
	n := 0
	err := s.write(ctx, func(tx pgx.Tx, t *touched) error {
		actor, err := freshActorMay(ctx, tx, actor, keyledger.CanLead)
		if err != nil {
			return err
		}
		o, err := lockOffboarding(ctx, tx, offboardingID)
		if err != nil {
			return err
		}
		if err := o.open(); err != nil {
			return err
		}
		if n, err = reassignKeys(ctx, tx, actor, s.now(), o.userID, toEmail, nil); err != nil {
			return err
		}
		*t = touchedKeys(actor, s.now())
		return nil
	})
	if err != nil {
		return 0, s.internal(ctx, "reassign offboarded keys", err)
	}
	return n, nil
}

// DeactivateOffboarded deactivates the account of the person of an open
// offboarding (DeactivateUser), in the transaction that finds the
// checklist open. Leads may see the checklist; only admins deactivate.
func (s *Store) DeactivateOffboarded(ctx context.Context, actor keyledger.Actor, offboardingID int64) (*keyledger.User, error) {
	// As DeactivateUser: clear after the commit.
	defer s.tokens.clear()
	if err := noToken(actor); err != nil {
		return nil, err
	}
	var u *keyledger.User
	err := s.write(ctx, func(tx pgx.Tx, t *touched) error {
		actor, err := freshActorMay(ctx, tx, actor, keyledger.CanLead)
		if err != nil {
			return err
		}
		o, err := lockOffboarding(ctx, tx, offboardingID)
		if err != nil {
			return err
		}
		if err := o.open(); err != nil {
			return err
		}
		if keyledger.CanAdminister(actor.User) != nil {
			return keyledger.Errorf(keyledger.EFORBIDDEN, "Only admins may deactivate users.")
		}
		if u, err = deactivateUser(ctx, tx, actor, o.email); err != nil {
			return err
		}
		*t = touchedUser(actor, s.now(), u.ID)
		return nil
	})
	if err != nil {
		return nil, s.internal(ctx, "deactivate offboarded user", err)
	}
	return u, nil
}

// WaiveItem closes an item without doing it; a reason is required.
func (s *Store) WaiveItem(ctx context.Context, actor keyledger.Actor, offboardingID, itemID int64, reason string) error {
	reason = strings.TrimSpace(reason)
	if keyledger.Blank(reason) {
		return &keyledger.Error{Code: keyledger.EINVALID, Message: "Say why this item can be skipped.", Fields: map[string]string{"reason": "Say why this item can be skipped (e.g. \"key is revoked at the provider already\")."}}
	}
	if _, err := keyledger.CheckReason(reason, true); err != nil {
		return err
	}
	err := s.withOpenOffboarding(ctx, actor, offboardingID, func(tx pgx.Tx, actor keyledger.Actor, userID int64, email string) error {
		var kind, keyID, keyName, env string
		err := tx.QueryRow(ctx, `UPDATE offboarding_items SET status = $6, resolution = $3, resolved_by = $4, resolved_at = $5
			WHERE id = $1 AND offboarding_id = $2 AND status = $7 RETURNING kind, coalesce(key_id::text, ''), key_name, environment`,
			itemID, offboardingID, "waived: "+reason, actor.User.ID, s.now(), keyledger.ItemWaived, keyledger.ItemOpen).Scan(&kind, &keyID, &keyName, &env)
		if errors.Is(err, pgx.ErrNoRows) {
			return keyledger.Errorf(keyledger.ECONFLICT, "This item is not open any more (someone resolved it a moment ago); reload the page.")
		}
		if err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionOffboardWaive, KeyID: keyID, KeyName: keyName, Environment: env,
			SubjectID: userID, SubjectEmail: email, Reason: reason, Details: map[string]any{"offboarding": offboardingID, "item": itemID, "kind": kind}})
	})
	return s.internal(ctx, "waive offboarding item", err)
}

// endAccess deletes every session and access token of a user, and says
// how many of each there were.
func endAccess(ctx context.Context, tx pgx.Tx, userID int64) (sessions, tokens int64, err error) {
	tag, err := tx.Exec(ctx, "DELETE FROM sessions WHERE user_id = $1", userID)
	if err != nil {
		return 0, 0, err
	}
	tok, err := tx.Exec(ctx, "DELETE FROM api_tokens WHERE user_id = $1", userID)
	if err != nil {
		return 0, 0, err
	}
	return tag.RowsAffected(), tok.RowsAffected(), nil
}

// RevokeAccess deletes the departing user's sessions (and, once they
// exist, tokens) and resolves the checklist's revoke item.
func (s *Store) RevokeAccess(ctx context.Context, actor keyledger.Actor, offboardingID int64) error {
	defer s.tokens.clear()
	err := s.withOpenOffboarding(ctx, actor, offboardingID, func(tx pgx.Tx, actor keyledger.Actor, userID int64, email string) error {
		sessions, tokens, err := endAccess(ctx, tx, userID)
		if err != nil {
			return err
		}
		now := s.now()
		var itemID int64
		err = tx.QueryRow(ctx, `UPDATE offboarding_items SET status = $5, resolution = $2, resolved_by = $3, resolved_at = $4
			WHERE offboarding_id = $1 AND kind = 'revoke' AND status = $6 RETURNING id`, offboardingID,
			fmt.Sprintf("%d sessions and %d tokens revoked", sessions, tokens), actor.User.ID, now, keyledger.ItemDone, keyledger.ItemOpen).Scan(&itemID)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if err := writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionSessionRevoke, SubjectID: userID, SubjectEmail: email,
			Details: map[string]any{"sessions_revoked": sessions, "offboarding": offboardingID}}); err != nil {
			return err
		}
		if itemID != 0 {
			return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionOffboardResolve, SubjectID: userID, SubjectEmail: email,
				Details: map[string]any{"offboarding": offboardingID, "item": itemID, "kind": keyledger.ItemRevoke}})
		}
		return nil
	})
	return s.internal(ctx, "revoke access", err)
}

// CompleteOffboarding closes a checklist; it refuses while items are open.
func (s *Store) CompleteOffboarding(ctx context.Context, actor keyledger.Actor, offboardingID int64) error {
	defer s.tokens.clear()
	err := s.withOpenOffboarding(ctx, actor, offboardingID, func(tx pgx.Tx, actor keyledger.Actor, userID int64, email string) error {
		now := s.now()
		if err := syncOffboardings(ctx, tx, actor, now, userID); err != nil {
			return err
		}
		var open int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM offboarding_items WHERE offboarding_id = $1 AND status = $2", offboardingID, keyledger.ItemOpen).Scan(&open); err != nil {
			return err
		}
		if open > 0 {
			return keyledger.Errorf(keyledger.ECONFLICT, "%d item(s) are still open. Resolve or waive each one before completing.", open)
		}
		if _, err := tx.Exec(ctx, "UPDATE offboardings SET completed_at = $2, completed_by = $3 WHERE id = $1", offboardingID, now, actor.User.ID); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionOffboardComplete, SubjectID: userID, SubjectEmail: email,
			Details: map[string]any{"offboarding": offboardingID}})
	})
	return s.internal(ctx, "complete offboarding", err)
}
