package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// versionSubject binds a ciphertext to its key and version: copied onto
// another row it no longer opens.
func versionSubject(keyID string, version int) string {
	return fmt.Sprintf("key/%s/v/%d", strings.ToLower(keyID), version)
}

// KeyVersions lists a key's versions, newest first.
func (s *Store) KeyVersions(ctx context.Context, actor keyledger.Actor, id string) ([]keyledger.KeyVersion, error) {
	if _, err := s.GetKey(ctx, actor, id); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT v.version, v.created_at, coalesce(u.email, ''), v.superseded_at, v.destroy_after, v.destroyed_at, v.masked_hint
		FROM key_versions v LEFT JOIN users u ON u.id = v.created_by WHERE v.key_id = $1 ORDER BY v.version DESC`, id)
	if err != nil {
		return nil, s.internal(ctx, "list key versions", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyledger.KeyVersion, error) {
		var v keyledger.KeyVersion
		err := r.Scan(&v.Version, &v.CreatedAt, &v.CreatedBy, &v.SupersededAt, &v.DestroyAfter, &v.DestroyedAt, &v.MaskedHint)
		return v, err
	})
	if err != nil {
		return nil, s.internal(ctx, "list key versions", err)
	}
	return out, nil
}

// KeyReveals lists who has seen a key's value (reveals and exports),
// newest first.
func (s *Store) KeyReveals(ctx context.Context, actor keyledger.Actor, id string, limit int) ([]keyledger.RevealRecord, error) {
	k, err := s.GetKey(ctx, actor, id)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT at, actor_email, coalesce(key_version, 0), reason, action, ip FROM audit_events
		WHERE key_id = $1 AND action = ANY($2) ORDER BY at DESC, id DESC LIMIT $3`, id, []string{keyledger.ActionKeyReveal, keyledger.ActionKeyExport}, limit)
	if err != nil {
		return nil, s.internal(ctx, "list reveals", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyledger.RevealRecord, error) {
		var rr keyledger.RevealRecord
		err := r.Scan(&rr.Time, &rr.Email, &rr.Version, &rr.Reason, &rr.Action, &rr.IP)
		rr.StillValid = rr.Version == k.CurrentVersion
		return rr, err
	})
	if err != nil {
		return nil, s.internal(ctx, "list reveals", err)
	}
	return out, nil
}

// KeyViewers is "who has seen this key": one row per person, newest
// first, with counts over all their reveals and exports. The collapse is
// done here rather than in web so the counts are exact, not limited to the
// latest limit events; it stays one statement after GetKey, as KeyReveals.
func (s *Store) KeyViewers(ctx context.Context, actor keyledger.Actor, id string, limit int) ([]keyledger.KeyViewer, error) {
	k, err := s.GetKey(ctx, actor, id)
	if err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 100
	}
	rows, err := s.pool.Query(ctx, `SELECT a.actor_email, coalesce(u.name, ''), coalesce(u.status = $5, false),
			count(*), count(*) FILTER (WHERE a.action = $3), max(a.at),
			(array_agg(a.reason ORDER BY a.at DESC, a.id DESC))[1],
			(array_agg(coalesce(a.key_version, 0) ORDER BY a.at DESC, a.id DESC))[1]
		FROM audit_events a LEFT JOIN users u ON u.id = a.actor_id
		WHERE a.key_id = $1 AND a.action = ANY($2)
		GROUP BY a.actor_email, u.id
		ORDER BY max(a.at) DESC, a.actor_email LIMIT $4`,
		id, []string{keyledger.ActionKeyReveal, keyledger.ActionKeyExport}, keyledger.ActionKeyExport, limit, keyledger.UserActive)
	if err != nil {
		return nil, s.internal(ctx, "list key viewers", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyledger.KeyViewer, error) {
		var v keyledger.KeyViewer
		err := r.Scan(&v.Email, &v.Name, &v.Active, &v.Reveals, &v.Exports, &v.Last, &v.LastReason, &v.LastVersion)
		v.StillValid = v.LastVersion == k.CurrentVersion
		return v, err
	})
	if err != nil {
		return nil, s.internal(ctx, "list key viewers", err)
	}
	return out, nil
}
