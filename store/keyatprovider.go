package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// keyAtProviderColumns read a provider key for a registered key's page:
// $1 is the key's id. Version is the key's version whose masked hint the
// provider's hint matches; usage is the last UsageDays days as JSON
// ([day, requests, input, output], oldest first), so the page costs one
// statement however many provider keys and days there are.
const keyAtProviderColumns = `pk.id, c.id::text, c.name, c.provider, pk.provider_key_id, pk.name, pk.hint, pk.project_id, pk.project_name,
	pk.status, pk.created_by, pk.created_at, pk.last_used_at, pk.last_seen_at, pk.deleted_at, pk.revoked_at, coalesce(ru.email, ''),
	coalesce((SELECT max(v.version) FROM key_versions v WHERE v.key_id = $1 AND pk.match_hint <> '' AND v.masked_hint = pk.match_hint), 0),
	coalesce(pk.key_id = $1, false),
	coalesce((SELECT json_agg(json_build_array(to_char(u.day, 'YYYY-MM-DD'), u.requests, u.input_tokens, u.output_tokens) ORDER BY u.day)
		FROM provider_usage u WHERE u.connection_id = pk.connection_id AND u.provider_key_id = pk.provider_key_id AND u.day >= $2::date), '[]'),
	pk.owner_type`

// keyAtProviderFrom selects the provider keys of key $1 at live
// connections of provider $3: the ones linked to it, and the ones nobody
// linked whose hint is a superseded version's (the key before a rotation,
// still alive at the provider).
const keyAtProviderFrom = `FROM provider_keys pk JOIN provider_connections c ON c.id = pk.connection_id AND c.removed_at IS NULL
	LEFT JOIN users ru ON ru.id = pk.revoked_by
	WHERE c.provider = $3 AND (pk.key_id = $1 OR (pk.key_id IS NULL AND pk.match_hint <> '' AND pk.match_hint IN (
		SELECT v.masked_hint FROM key_versions v WHERE v.key_id = $1 AND v.superseded_at IS NOT NULL)))`

func scanKeyAtProvider(r pgx.Row) (keyledger.KeyAtProvider, error) {
	var k keyledger.KeyAtProvider
	var p string
	var usage []byte
	err := r.Scan(&k.ID, &k.ConnectionID, &k.ConnectionName, &p, &k.ProviderKeyID, &k.Name, &k.Hint, &k.ProjectID, &k.ProjectName,
		&k.Status, &k.CreatedBy, &k.CreatedAt, &k.LastUsedAt, &k.LastSeenAt, &k.DeletedAt, &k.RevokedAt, &k.RevokedBy, &k.Version, &k.Linked, &usage, &k.OwnerType)
	if err != nil {
		return k, err
	}
	k.Provider = keyledger.Provider(p)
	var days [][4]json.RawMessage
	if err := json.Unmarshal(usage, &days); err != nil {
		return k, fmt.Errorf("usage of provider key %d: %w", k.ID, err)
	}
	for _, d := range days {
		var u keyledger.UsageDay
		var day string
		if err := json.Unmarshal(d[0], &day); err != nil {
			return k, err
		}
		if u.Day, err = time.Parse(time.DateOnly, day); err != nil {
			return k, err
		}
		for i, dst := range []*int64{&u.Requests, &u.InputTokens, &u.OutputTokens} {
			if err := json.Unmarshal(d[i+1], dst); err != nil {
				return k, err
			}
		}
		k.Usage = append(k.Usage, u)
	}
	return k, nil
}

// KeysAtProvider lists what the connected providers say about key k
// (read by the caller with GetKey, as the same actor): linked provider
// keys first, then those carrying a superseded version's hint. Anyone who
// may see the key may see this; nothing in it is secret.
func (s *Store) KeysAtProvider(ctx context.Context, actor keyledger.Actor, k *keyledger.Key) ([]keyledger.KeyAtProvider, error) {
	if err := mayRead(actor, keyledger.CanUse); err != nil {
		return nil, err
	}
	since := keyledger.UTCDay(s.now()).AddDate(0, 0, -(keyledger.UsageDays - 1))
	rows, err := s.pool.Query(ctx, "SELECT "+keyAtProviderColumns+" "+keyAtProviderFrom+" ORDER BY 19 DESC, 18 DESC, pk.id", k.ID, since, string(k.Provider))
	if err != nil {
		return nil, s.internal(ctx, "read key at provider", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyledger.KeyAtProvider, error) { return scanKeyAtProvider(r) })
	if err != nil {
		return nil, s.internal(ctx, "read key at provider", err)
	}
	return out, nil
}
