package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/keyledger/keyledger"
)

// syncBatch is how many provider keys one upsert statement carries: the
// statement count of a sync grows with keys/syncBatch, never per key.
const syncBatch = 1000

// SyncProviderConnection lists every key at the connection's provider,
// upserts them, marks the ones no longer listed as deleted at the
// provider, and matches the live ones to registered keys (see
// docs/providers.md, "Matching"). The actor is an admin (the sync button)
// or the scheduler. When the provider call fails, the connection records
// the provider's message and the keys stay as they were.
func (s *Store) SyncProviderConnection(ctx context.Context, actor keyledger.Actor, pa keyledger.ProviderAdmin, id string) (keyledger.SyncResult, error) {
	var res keyledger.SyncResult
	if actor.User != nil {
		// A token may, with the write scope: the API mirrors the page.
		if err := keyledger.CheckScope(actor, keyledger.ScopeWrite); err != nil {
			return res, err
		}
		if err := keyledger.CanManageProviders(actor.User); err != nil {
			return res, err
		}
	}
	if pa == nil {
		return res, keyledger.Errorf(keyledger.EINVALID, "This keyledger has no provider admin client configured.")
	}
	if !isUUID(id) {
		return res, keyledger.Errorf(keyledger.ENOTFOUND, "There is no such provider connection.")
	}
	cred, err := s.credential(ctx, id)
	if err != nil {
		return res, s.internal(ctx, "sync provider connection", err)
	}
	keys, err := pa.Keys(ctx, cred)
	if err != nil {
		if rerr := s.recordSyncFailure(ctx, actor, id, err); rerr != nil {
			return res, s.internal(ctx, "record failed provider sync", rerr)
		}
		return res, fmt.Errorf("sync provider connection %s: %w", id, err)
	}
	keys = dedupeProviderKeys(keys)
	err = s.tx(ctx, func(tx pgx.Tx) error {
		res = keyledger.SyncResult{Seen: len(keys)}
		if actor.User != nil {
			if actor, err = freshActorMay(ctx, tx, actor, keyledger.CanManageProviders); err != nil {
				return err
			}
		}
		// One sync of a connection at a time: the button and the job
		// would otherwise mark each other's keys deleted.
		var name, provider string
		err := tx.QueryRow(ctx, `SELECT name, provider FROM provider_connections WHERE id = $1 AND removed_at IS NULL FOR UPDATE`, id).Scan(&name, &provider)
		if errors.Is(err, pgx.ErrNoRows) {
			return keyledger.Errorf(keyledger.ENOTFOUND, "There is no such provider connection.")
		}
		if err != nil {
			return err
		}
		now := s.now()
		for start := 0; start < len(keys); start += syncBatch {
			n, err := upsertProviderKeys(ctx, tx, id, keys[start:min(start+syncBatch, len(keys))], now)
			if err != nil {
				return err
			}
			res.New += n
		}
		ids := make([]string, len(keys))
		for i, k := range keys {
			ids[i] = k.ID
		}
		tag, err := tx.Exec(ctx, `UPDATE provider_keys SET deleted_at = $2
			WHERE connection_id = $1 AND deleted_at IS NULL AND provider_key_id NOT IN (SELECT unnest($3::text[]))`, id, now, ids)
		if err != nil {
			return fmt.Errorf("mark deleted provider keys: %w", err)
		}
		res.Deleted = int(tag.RowsAffected())
		if err := matchProviderKeys(ctx, tx, id, provider); err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FILTER (WHERE match_state = $2), count(*) FILTER (WHERE match_state = $3), count(*) FILTER (WHERE match_state = $4)
			FROM provider_keys WHERE connection_id = $1 AND deleted_at IS NULL`, id, keyledger.MatchMatched, keyledger.MatchAmbiguous, keyledger.MatchUnmatched).
			Scan(&res.Matched, &res.Ambiguous, &res.Unmatched); err != nil {
			return fmt.Errorf("count matches: %w", err)
		}
		if _, err := tx.Exec(ctx, `UPDATE provider_connections SET last_sync_at = $2, last_sync_status = $3, last_sync_error = '', last_sync_keys = $4 WHERE id = $1`,
			id, now, keyledger.SyncOK, res.Seen); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionProviderSync, Details: map[string]any{
			"connection_id": id, "connection": name, "provider": provider,
			"seen": res.Seen, "new": res.New, "deleted": res.Deleted, "matched": res.Matched, "ambiguous": res.Ambiguous, "unmatched": res.Unmatched}})
	})
	if err != nil {
		return keyledger.SyncResult{}, s.internal(ctx, "sync provider connection", err)
	}
	return res, nil
}

// dedupeProviderKeys keeps the last listing of each id: a page boundary
// that moved while the provider was paged can list a key twice, and one
// upsert statement may not touch a row twice.
func dedupeProviderKeys(keys []keyledger.ProviderKey) []keyledger.ProviderKey {
	at := make(map[string]int, len(keys))
	out := keys[:0:0]
	for _, k := range keys {
		if i, ok := at[k.ID]; ok {
			out[i] = k
			continue
		}
		at[k.ID] = len(out)
		out = append(out, k)
	}
	return out
}

// upsertProviderKeys writes one batch in one statement and returns how
// many keys were new.
func upsertProviderKeys(ctx context.Context, tx pgx.Tx, connID string, keys []keyledger.ProviderKey, now time.Time) (int, error) {
	n := len(keys)
	var (
		ids, names, hints, matchHints    = make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		projects, projectNames, statuses = make([]string, n), make([]string, n), make([]string, n)
		createdBy, ownerTypes            = make([]string, n), make([]string, n)
		ownerActive                      = make([]bool, n)
		createdAt, lastUsed              = make([]pgtype.Timestamptz, n), make([]pgtype.Timestamptz, n)
	)
	for i, k := range keys {
		ids[i], names[i], hints[i], matchHints[i] = k.ID, k.Name, k.Hint, keyledger.MatchHint(k.Hint)
		projects[i], projectNames[i], statuses[i] = k.Project, k.ProjectName, k.Status
		createdBy[i], ownerTypes[i], ownerActive[i] = k.CreatedBy, k.OwnerType, k.OwnerActive
		createdAt[i] = pgtype.Timestamptz{Time: k.CreatedAt, Valid: !k.CreatedAt.IsZero()}
		lastUsed[i] = pgtype.Timestamptz{Time: k.LastUsedAt, Valid: !k.LastUsedAt.IsZero()}
	}
	var inserted int
	err := tx.QueryRow(ctx, `WITH up AS (
		INSERT INTO provider_keys (connection_id, provider_key_id, name, hint, match_hint, project_id, project_name, status,
			created_at, last_used_at, created_by, owner_type, owner_active, first_seen_at, last_seen_at)
		SELECT $1, u.*, $2, $2 FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
			$10::timestamptz[], $11::timestamptz[], $12::text[], $13::text[], $14::boolean[]) AS u
		ON CONFLICT (connection_id, provider_key_id) DO UPDATE SET name = excluded.name, hint = excluded.hint, match_hint = excluded.match_hint,
			project_id = excluded.project_id, project_name = excluded.project_name, status = excluded.status,
			created_at = excluded.created_at, last_used_at = excluded.last_used_at, created_by = excluded.created_by,
			owner_type = excluded.owner_type, owner_active = excluded.owner_active, last_seen_at = excluded.last_seen_at, deleted_at = NULL
		RETURNING xmax = 0 AS inserted)
		SELECT count(*) FILTER (WHERE inserted) FROM up`,
		connID, now, ids, names, hints, matchHints, projects, projectNames, statuses, createdAt, lastUsed, createdBy, ownerTypes, ownerActive).Scan(&inserted)
	if err != nil {
		return 0, fmt.Errorf("upsert %d provider keys: %w", n, err)
	}
	return inserted, nil
}

// matchScope says which provider keys a pass of matchProviderKeysIn
// decides again: every live key of one connection (a sync), or the live
// keys of every live connection of a provider whose match hint is one of
// hints (a key registered, rotated or rolled back: only the provider keys
// whose candidates it changed).
type matchScope struct {
	connID   string // "" for every live connection of provider
	provider string
	hints    []string // nil for every hint
}

// matchProviderKeys matches every live key of connection connID (a
// sync, an unlink) by the one matching rule (matchProviderKeysIn).
func matchProviderKeys(ctx context.Context, tx pgx.Tx, connID, provider string) error {
	return matchProviderKeysIn(ctx, tx, matchScope{connID: connID, provider: provider})
}

// matchProviderKeysByHint matches the provider keys whose candidates a
// registered key of provider changed: those whose match hint is one of
// hints (its masked hint now, and before a rotation or rollback), at
// every live connection of provider, by the same rule.
func matchProviderKeysByHint(ctx context.Context, tx pgx.Tx, provider string, hints ...string) error {
	if hints == nil {
		hints = []string{}
	}
	return matchProviderKeysIn(ctx, tx, matchScope{provider: provider, hints: hints})
}

// matchProviderKeysIn matches the provider keys in scope that no admin
// linked by hand, in one statement: the one definition of the matching
// rule, for the sync and for registration alike. The candidates of a
// provider key are the live registered keys of the same provider whose
// masked hint equals its match hint (same known prefix, same last four
// characters). One candidate: matched. Several: those whose project is
// the provider key's project (by id or name, case-insensitively) decide
// when exactly one is; otherwise ambiguous, linked to none. None:
// unmatched, a shadow key. No value is read: hints only.
func matchProviderKeysIn(ctx context.Context, tx pgx.Tx, sc matchScope) error {
	var connID any
	if sc.connID != "" {
		connID = sc.connID
	}
	_, err := tx.Exec(ctx, `WITH scope AS (
		SELECT pk.id, pk.match_hint, pk.project_id, pk.project_name
		FROM provider_keys pk JOIN provider_connections c ON c.id = pk.connection_id AND c.removed_at IS NULL AND c.provider = $2
		WHERE ($1::uuid IS NULL OR pk.connection_id = $1::uuid) AND ($6::text[] IS NULL OR pk.match_hint = ANY ($6::text[]))
			AND pk.deleted_at IS NULL AND pk.linked_by IS NULL
	), cand AS (
		SELECT p.id, k.id AS key_id,
			p.project_id <> '' AND lower(k.project) IN (lower(p.project_id), lower(p.project_name)) AS same_project
		FROM scope p
		JOIN keys k ON k.provider = $2 AND k.masked_hint = p.match_hint AND k.archived_at IS NULL
		WHERE p.match_hint <> ''
	), agg AS (
		SELECT id, count(*) AS n, count(*) FILTER (WHERE same_project) AS np,
			(array_agg(key_id ORDER BY key_id))[1] AS any_key,
			(array_agg(key_id ORDER BY key_id) FILTER (WHERE same_project))[1] AS project_key
		FROM cand GROUP BY id
	)
	UPDATE provider_keys pk SET
		key_id = CASE WHEN a.n = 1 THEN a.any_key WHEN a.np = 1 THEN a.project_key END,
		match_state = CASE WHEN a.n IS NULL THEN $5 WHEN a.n = 1 OR a.np = 1 THEN $3 ELSE $4 END,
		match_candidates = coalesce(a.n, 0)
	FROM scope p LEFT JOIN agg a ON a.id = p.id
	WHERE pk.id = p.id`,
		connID, sc.provider, keyledger.MatchMatched, keyledger.MatchAmbiguous, keyledger.MatchUnmatched, sc.hints)
	if err != nil {
		return fmt.Errorf("match provider keys: %w", err)
	}
	return nil
}

// recordSyncFailure keeps the provider's answer on the connection and in
// the audit log. The error is a *ProviderAdminError, whose text is the
// kind, the status and the provider's message: never the admin key.
func (s *Store) recordSyncFailure(ctx context.Context, actor keyledger.Actor, id string, cause error) error {
	msg := cause.Error()
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	return s.tx(ctx, func(tx pgx.Tx) error {
		var name, provider string
		err := tx.QueryRow(ctx, `UPDATE provider_connections SET last_sync_at = $2, last_sync_status = $3, last_sync_error = $4
			WHERE id = $1 AND removed_at IS NULL RETURNING name, provider`, id, s.now(), keyledger.SyncFailed, msg).Scan(&name, &provider)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // removed meanwhile
		}
		if err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionProviderSyncFail, Details: map[string]any{
			"connection_id": id, "connection": name, "provider": provider,
			"kind": string(keyledger.ProviderAdminErrorKindOf(cause)), "error": msg}})
	})
}

// ConnectionsToSync lists the live connections not synced within
// interval (or never), for the scheduler.
func (s *Store) ConnectionsToSync(ctx context.Context, interval time.Duration) ([]string, error) {
	rows, err := s.pool.Query(ctx, `SELECT id::text FROM provider_connections
		WHERE removed_at IS NULL AND (last_sync_at IS NULL OR last_sync_at <= $1) ORDER BY last_sync_at NULLS FIRST, id`, s.now().Add(-interval))
	if err != nil {
		return nil, fmt.Errorf("provider connections to sync: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("provider connections to sync: %w", err)
	}
	return ids, nil
}
