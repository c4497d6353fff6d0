package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// syncProviderItems keeps the "revoke at the provider" items of checklist
// offboardingID in line, inside syncOffboardings' transaction: every key
// still active at a connected provider that the person created there
// (provider_keys.created_by is their email, compared case-insensitively)
// becomes an item; an item resolves once keyledger revoked the key, the
// provider no longer lists it, or the provider says it is no longer
// active. The key's own name at the provider is the item's name when it
// is not registered in keyledger.
func syncProviderItems(ctx context.Context, tx pgx.Tx, offboardingID, userID int64, now time.Time, actorID *int64) (added, resolved []syncedItem, err error) {
	rows, err := tx.Query(ctx, `INSERT INTO offboarding_items (offboarding_id, kind, key_id, key_name, environment, why, created_at, provider_key_ref)
		SELECT $1::bigint, $3, pk.key_id, coalesce(k.name, pk.name), coalesce(e.name, ''),
			'created ' || pk.provider_key_id || ' at ' || c.name || CASE WHEN pk.project_name <> '' THEN ' (' || pk.project_name || ')' ELSE '' END,
			$4::timestamptz, pk.id
		FROM provider_keys pk JOIN provider_connections c ON c.id = pk.connection_id AND c.removed_at IS NULL
		LEFT JOIN keys k ON k.id = pk.key_id LEFT JOIN environments e ON e.id = k.environment_id
		WHERE lower(pk.created_by) = (SELECT lower(email) FROM users WHERE id = $2) AND pk.created_by <> ''
			AND pk.deleted_at IS NULL AND pk.revoked_at IS NULL AND pk.status = $5
		ORDER BY pk.id
		ON CONFLICT (offboarding_id, provider_key_ref) WHERE provider_key_ref IS NOT NULL DO NOTHING
		RETURNING id, kind, coalesce(key_id::text, ''), key_name, environment`,
		offboardingID, userID, keyledger.ItemProviderRevoke, now, keyledger.ProviderKeyActive)
	if err != nil {
		return nil, nil, fmt.Errorf("offboarding %d: add provider items: %w", offboardingID, err)
	}
	if added, err = pgx.CollectRows(rows, scanSyncedItem); err != nil {
		return nil, nil, err
	}
	rows, err = tx.Query(ctx, `UPDATE offboarding_items i SET status = $3, resolved_at = $4, resolved_by = coalesce(pk.revoked_by, $5),
			resolution = CASE WHEN pk.revoked_at IS NOT NULL THEN 'revoked at the provider'
				WHEN pk.deleted_at IS NOT NULL THEN 'no longer listed at the provider'
				ELSE 'no longer active at the provider (' || pk.status || ')' END
		FROM provider_keys pk
		WHERE i.offboarding_id = $1 AND i.status = $2 AND i.provider_key_ref = pk.id
			AND (pk.revoked_at IS NOT NULL OR pk.deleted_at IS NOT NULL OR pk.status <> $6)
		RETURNING i.id, i.kind, coalesce(i.key_id::text, ''), i.key_name, i.environment`,
		offboardingID, keyledger.ItemOpen, keyledger.ItemDone, now, actorID, keyledger.ProviderKeyActive)
	if err != nil {
		return nil, nil, fmt.Errorf("offboarding %d: resolve provider items: %w", offboardingID, err)
	}
	if resolved, err = pgx.CollectRows(rows, scanSyncedItem); err != nil {
		return nil, nil, err
	}
	return added, resolved, nil
}
