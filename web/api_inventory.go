package web

import (
	"net/http"
	"strconv"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web/wire"
	"github.com/labstack/echo/v4"
)

// inventoryPageSize is how many provider keys a page of /inventory (and
// the API's default page) shows: an organization with thousands of keys
// is paged, never rendered at once.
const inventoryPageSize = 100

// apiInventory is GET /api/v1/inventory, for leads and admins (the store
// refuses everyone else), with the page's filters, in pages joined by an
// opaque cursor (a keyset on the inventory's order).
func (s *Server) apiInventory(c echo.Context) error {
	f, err := inventoryFilterFrom(c)
	if err != nil {
		return err
	}
	var v keyledger.Validation
	f.Limit = queryLimit(c, &v, inventoryPageSize, 500)
	if err := v.Err(); err != nil {
		return err
	}
	if raw := c.QueryParam("cursor"); raw != "" {
		if f.After, err = inventoryCursorFrom(raw, "cursor"); err != nil {
			return err
		}
	}
	inv, err := s.store.Inventory(c.Request().Context(), s.actor(c), f)
	if err != nil {
		return err
	}
	out := wire.Inventory{Items: make([]wire.InventoryItem, 0, len(inv.Items)), Counts: wire.InventoryCounts{
		Registered: inv.Counts[keyledger.InventoryRegistered], Ambiguous: inv.Counts[keyledger.InventoryAmbiguous],
		NotInKeyledger: inv.Counts[keyledger.InventoryShadow], OwnerLeft: inv.Counts[keyledger.InventoryOwnerLeft],
		Unused: inv.Counts[keyledger.InventoryUnused], DeletedAtProvider: inv.Counts[keyledger.InventoryDeleted]}}
	for _, it := range inv.Items {
		out.Items = append(out.Items, toAPIInventoryItem(it))
	}
	if next := nextInventoryCursor(inv); next != "" {
		out.NextCursor = &next
	}
	return c.JSON(http.StatusOK, out)
}

func toAPIInventoryItem(it keyledger.InventoryItem) wire.InventoryItem {
	w := wire.InventoryItem{ID: it.ID, Connection: it.ConnectionName, ConnectionID: it.ConnectionID, Provider: string(it.Provider),
		ProviderKeyID: it.ProviderKeyID, Name: it.Name, Hint: it.Hint, ProjectID: it.ProjectID, ProjectName: it.ProjectName,
		Status: it.Status, States: make([]string, 0, len(it.States)), CreatedAt: it.CreatedAt, CreatedBy: it.CreatedBy,
		OwnerType: it.OwnerType, OwnerActive: it.OwnerActive, LastUsedAt: it.LastUsedAt, FirstSeenAt: it.FirstSeenAt,
		LastSeenAt: it.LastSeenAt, DeletedAt: it.DeletedAt, Match: it.MatchState, CandidateCount: it.MatchCandidates,
		LinkedManually: it.LinkedManually, Candidates: make([]wire.InventoryCandidate, 0, len(it.Candidates))}
	for _, st := range it.States {
		w.States = append(w.States, string(st))
	}
	if it.KeyID != "" {
		id := it.KeyID
		w.KeyID = &id
	}
	for _, c := range it.Candidates {
		w.Candidates = append(w.Candidates, wire.InventoryCandidate{KeyID: c.KeyID, Name: c.Name, Project: c.Project, Environment: c.Env})
	}
	return w
}

// nextInventoryCursor is the cursor of the page after inv, "" when inv
// is the last one. The page's "after" and the API's "cursor" are the same
// opaque string.
func nextInventoryCursor(inv keyledger.Inventory) string {
	if !inv.More || len(inv.Items) == 0 {
		return ""
	}
	at := keyledger.InventoryCursorOf(inv.Items[len(inv.Items)-1])
	return encodeCursor(apiCursor{Kind: "inventory", Inv: &inventoryCursor{Connection: at.Connection, ProjectName: at.ProjectName,
		ProjectID: at.ProjectID, Name: at.Name, ID: at.ID}})
}

// inventoryCursorFrom reads a cursor from the query parameter field.
func inventoryCursorFrom(raw, field string) (*keyledger.InventoryCursor, error) {
	cur, err := decodeCursor(raw, "inventory")
	if err == nil && (cur.Inv == nil || cur.Inv.ID < 1) {
		err = &keyledger.Error{Code: keyledger.EINVALID, Message: "The cursor is not valid."}
	}
	if err != nil {
		return nil, &keyledger.Error{Code: keyledger.EINVALID, Message: "The cursor is not valid.",
			Fields: map[string]string{field: "Use the link to the next page (or the next_cursor of a previous answer) unchanged."}}
	}
	i := cur.Inv
	return &keyledger.InventoryCursor{Connection: i.Connection, ProjectName: i.ProjectName, ProjectID: i.ProjectID, Name: i.Name, ID: i.ID}, nil
}

// providerKeyParam is the provider key's row id in the address.
func providerKeyParam(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("provider_key"), 10, 64)
	if err != nil || id < 1 {
		return 0, keyledger.Errorf(keyledger.ENOTFOUND, "There is no such key at a connected provider (or the provider no longer lists it).")
	}
	return id, nil
}

// inventoryItem reads one provider key as the inventory shows it.
func (s *Server) inventoryItem(c echo.Context, id int64) (keyledger.InventoryItem, error) {
	inv, err := s.store.Inventory(c.Request().Context(), s.actor(c), keyledger.InventoryFilter{ProviderKey: id})
	if err != nil {
		return keyledger.InventoryItem{}, err
	}
	if len(inv.Items) != 1 {
		return keyledger.InventoryItem{}, keyledger.Errorf(keyledger.ENOTFOUND, "There is no such key at a connected provider (or the provider no longer lists it).")
	}
	return inv.Items[0], nil
}

// apiInventoryLink is POST /api/v1/inventory/{provider_key}/link.
func (s *Server) apiInventoryLink(c echo.Context) error {
	id, err := providerKeyParam(c)
	if err != nil {
		return err
	}
	var req wire.InventoryLinkRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := s.store.LinkProviderKey(c.Request().Context(), s.actor(c), id, req.KeyID); err != nil {
		return err
	}
	it, err := s.inventoryItem(c, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toAPIInventoryItem(it))
}

// apiInventoryUnlink is POST /api/v1/inventory/{provider_key}/unlink.
func (s *Server) apiInventoryUnlink(c echo.Context) error {
	id, err := providerKeyParam(c)
	if err != nil {
		return err
	}
	var req struct{}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := s.store.UnlinkProviderKey(c.Request().Context(), s.actor(c), id); err != nil {
		return err
	}
	it, err := s.inventoryItem(c, id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, toAPIInventoryItem(it))
}
