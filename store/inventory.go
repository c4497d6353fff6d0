package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// inventoryFrom joins a provider key to its live connection and, when
// matched, to its registered key and that key's owner.
const inventoryFrom = ` FROM provider_keys pk
	JOIN provider_connections c ON c.id = pk.connection_id AND c.removed_at IS NULL
	LEFT JOIN keys k ON k.id = pk.key_id
	LEFT JOIN environments e ON e.id = k.environment_id
	LEFT JOIN users o ON o.id = k.owner_id`

// inventoryConds are the states as SQL over inventoryFrom, with the
// parameters inventoryArgs gives ($1 and on): the one definition of the
// states, used for the filter, the counts and each item's States, so the
// three cannot disagree. docs/providers.md says the same in words.
var inventoryConds = map[keyledger.InventoryState]string{
	keyledger.InventoryRegistered: `(pk.deleted_at IS NULL AND pk.match_state = $1)`,
	keyledger.InventoryAmbiguous:  `(pk.deleted_at IS NULL AND pk.match_state = $2)`,
	keyledger.InventoryShadow:     `(pk.deleted_at IS NULL AND pk.match_state = $3)`,
	keyledger.InventoryOwnerLeft:  `(pk.deleted_at IS NULL AND (NOT pk.owner_active OR (k.id IS NOT NULL AND o.status <> $4)))`,
	keyledger.InventoryUnused:     `(pk.deleted_at IS NULL AND (pk.last_used_at < $5 OR (pk.last_used_at IS NULL AND pk.created_at < $5)))`,
	keyledger.InventoryDeleted:    `(pk.deleted_at IS NOT NULL AND k.id IS NOT NULL AND k.archived_at IS NULL)`,
}

func inventoryArgs(now time.Time) []any {
	return []any{keyledger.MatchMatched, keyledger.MatchAmbiguous, keyledger.MatchUnmatched, string(keyledger.UserActive),
		now.AddDate(0, 0, -keyledger.UnusedAfterDays)}
}

// Inventory lists the keys at the connected providers that filter
// selects, with counts per state over the filter's connection (all when
// none). Leads and admins only (CanViewInventory). The counts are what
// the ownership dashboard links to.
func (s *Store) Inventory(ctx context.Context, actor keyledger.Actor, filter keyledger.InventoryFilter) (keyledger.Inventory, error) {
	var inv keyledger.Inventory
	if err := keyledger.CanViewInventory(actor.User); err != nil {
		return inv, err
	}
	if _, ok := keyledger.ParseInventoryState(string(filter.State)); !ok {
		return inv, keyledger.Errorf(keyledger.EINVALID, "There is no inventory state %q.", filter.State)
	}
	if filter.ConnectionID != "" && !isUUID(filter.ConnectionID) {
		return inv, keyledger.Errorf(keyledger.EINVALID, "There is no such provider connection.")
	}
	if filter.Limit < 0 {
		return inv, keyledger.Errorf(keyledger.EINVALID, "The page size cannot be negative.")
	}
	now := s.now()
	args := inventoryArgs(now)
	where := ` WHERE (` + inventoryConds[keyledger.InventoryDeleted] + ` OR pk.deleted_at IS NULL)`
	if filter.ConnectionID != "" {
		args = append(args, filter.ConnectionID)
		where += fmt.Sprintf(" AND pk.connection_id = $%d", len(args))
	}
	counts, err := s.inventoryCounts(ctx, where, args)
	if err != nil {
		return inv, s.internal(ctx, "count inventory", err)
	}
	inv.Counts = counts
	if filter.State != "" {
		where += " AND " + inventoryConds[filter.State]
	}
	if filter.ProviderKey != 0 {
		args = append(args, filter.ProviderKey)
		where += fmt.Sprintf(" AND pk.id = $%d", len(args))
	}
	if a := filter.After; a != nil {
		// The keyset: the ORDER BY below, as one row comparison.
		args = append(args, a.Connection, a.ProjectName, a.ProjectID, a.Name, a.ID)
		n := len(args)
		where += fmt.Sprintf(" AND (lower(c.name), lower(pk.project_name), pk.project_id, lower(pk.name), pk.id) > (lower($%d), lower($%d), $%d, lower($%d), $%d)",
			n-4, n-3, n-2, n-1, n)
	}
	limit := ""
	if filter.Limit > 0 {
		// One more than the page: whether another page follows.
		limit = fmt.Sprintf(" LIMIT %d", filter.Limit+1)
	}
	rows, err := s.pool.Query(ctx, `SELECT pk.id, c.id::text, c.name, c.provider, pk.provider_key_id, pk.name, pk.hint, pk.project_id, pk.project_name,
			pk.status, pk.created_at, pk.last_used_at, pk.created_by, pk.owner_type, pk.owner_active, pk.first_seen_at, pk.last_seen_at, pk.deleted_at,
			pk.match_state, pk.match_candidates, pk.linked_by IS NOT NULL,
			coalesce(k.id::text, ''), coalesce(k.name, ''), coalesce(k.project, ''), coalesce(e.name, ''), coalesce(o.email, ''),
			coalesce(o.status = $4, true), coalesce(k.archived_at IS NOT NULL, false), `+stateColumns()+
		inventoryFrom+where+` ORDER BY lower(c.name), lower(pk.project_name), pk.project_id, lower(pk.name), pk.id`+limit, args...)
	if err != nil {
		return inv, s.internal(ctx, "list inventory", err)
	}
	inv.Items, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyledger.InventoryItem, error) {
		var it keyledger.InventoryItem
		var provider string
		in := make([]bool, len(keyledger.InventoryStates()))
		err := r.Scan(&it.ID, &it.ConnectionID, &it.ConnectionName, &provider, &it.ProviderKeyID, &it.Name, &it.Hint, &it.ProjectID, &it.ProjectName,
			&it.Status, &it.CreatedAt, &it.LastUsedAt, &it.CreatedBy, &it.OwnerType, &it.OwnerActive, &it.FirstSeenAt, &it.LastSeenAt, &it.DeletedAt,
			&it.MatchState, &it.MatchCandidates, &it.LinkedManually,
			&it.KeyID, &it.KeyName, &it.KeyProject, &it.KeyEnvironment, &it.KeyOwnerEmail, &it.KeyOwnerActive, &it.KeyArchived,
			&in[0], &in[1], &in[2], &in[3], &in[4], &in[5])
		it.Provider = keyledger.Provider(provider)
		for i, st := range keyledger.InventoryStates() {
			if in[i] {
				it.States = append(it.States, st)
			}
		}
		return it, err
	})
	if err != nil {
		return inv, s.internal(ctx, "list inventory", err)
	}
	if filter.Limit > 0 && len(inv.Items) > filter.Limit {
		inv.Items, inv.More = inv.Items[:filter.Limit], true
	}
	if err := s.inventoryCandidates(ctx, inv.Items); err != nil {
		return inv, s.internal(ctx, "list inventory candidates", err)
	}
	return inv, nil
}

// stateColumns selects, per state in InventoryStates order, whether the
// row is in it.
func stateColumns() string {
	q := ""
	for i, st := range keyledger.InventoryStates() {
		if i > 0 {
			q += ", "
		}
		// NULL (a never-used key of unknown age) is not in the state,
		// as in the counts' FILTER.
		q += "coalesce(" + inventoryConds[st] + ", false)"
	}
	return q
}

func (s *Store) inventoryCounts(ctx context.Context, where string, args []any) (map[keyledger.InventoryState]int, error) {
	states := keyledger.InventoryStates()
	q := "SELECT "
	for i, st := range states {
		if i > 0 {
			q += ", "
		}
		q += "count(*) FILTER (WHERE " + inventoryConds[st] + ")"
	}
	n := make([]int, len(states))
	dest := make([]any, len(states))
	for i := range n {
		dest[i] = &n[i]
	}
	if err := s.pool.QueryRow(ctx, q+inventoryFrom+where, args...).Scan(dest...); err != nil {
		return nil, err
	}
	counts := make(map[keyledger.InventoryState]int, len(states))
	for i, st := range states {
		counts[st] = n[i]
	}
	return counts, nil
}

// inventoryCandidates fills the candidates of the ambiguous items in one
// query: the live registered keys their hint fits, for an admin to choose
// from. Names and projects only.
func (s *Store) inventoryCandidates(ctx context.Context, items []keyledger.InventoryItem) error {
	var ids []int64
	at := map[int64]int{}
	for i, it := range items {
		if it.MatchState == keyledger.MatchAmbiguous && it.DeletedAt == nil {
			ids = append(ids, it.ID)
			at[it.ID] = i
		}
	}
	if len(ids) == 0 {
		return nil
	}
	rows, err := s.pool.Query(ctx, `SELECT pk.id, k.id::text, k.name, k.project, e.name
		FROM provider_keys pk
		JOIN provider_connections c ON c.id = pk.connection_id
		JOIN keys k ON k.provider = c.provider AND k.masked_hint = pk.match_hint AND k.archived_at IS NULL
		JOIN environments e ON e.id = k.environment_id
		WHERE pk.id = ANY($1) AND pk.match_hint <> ''
		ORDER BY pk.id, lower(k.project), lower(k.name), k.id`, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var c keyledger.InventoryCandidate
		if err := rows.Scan(&id, &c.KeyID, &c.Name, &c.Project, &c.Env); err != nil {
			return err
		}
		it := &items[at[id]]
		it.Candidates = append(it.Candidates, c)
	}
	return rows.Err()
}

// InventoryConnections lists the live connections for the inventory's
// filter (leads and admins): names and last sync, nothing of the key.
func (s *Store) InventoryConnections(ctx context.Context, actor keyledger.Actor) ([]keyledger.ProviderConnection, error) {
	if err := keyledger.CanViewInventory(actor.User); err != nil {
		return nil, err
	}
	return s.liveConnections(ctx)
}

// inventoryCountsWhere is every key the inventory counts: listed at the
// provider, or deleted there and still registered.
var inventoryCountsWhere = ` WHERE (` + inventoryConds[keyledger.InventoryDeleted] + ` OR pk.deleted_at IS NULL)`

// InventoryCounts counts the provider keys per state over every live
// connection, in one statement, for the ownership dashboard.
func (s *Store) InventoryCounts(ctx context.Context, actor keyledger.Actor) (map[keyledger.InventoryState]int, error) {
	if err := keyledger.CanViewInventory(actor.User); err != nil {
		return nil, err
	}
	counts, err := s.inventoryCounts(ctx, inventoryCountsWhere, inventoryArgs(s.now()))
	if err != nil {
		return nil, s.internal(ctx, "count inventory", err)
	}
	return counts, nil
}
