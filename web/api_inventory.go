package web

import (
	"net/http"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web/wire"
	"github.com/labstack/echo/v4"
)

// apiInventory is GET /api/v1/inventory, for leads and admins (the store
// refuses everyone else), with the page's filters.
func (s *Server) apiInventory(c echo.Context) error {
	f, err := inventoryFilterFrom(c)
	if err != nil {
		return err
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
		w := wire.InventoryItem{Connection: it.ConnectionName, ConnectionID: it.ConnectionID, Provider: string(it.Provider),
			ProviderKeyID: it.ProviderKeyID, Name: it.Name, Hint: it.Hint, ProjectID: it.ProjectID, ProjectName: it.ProjectName,
			Status: it.Status, States: make([]string, 0, len(it.States)), CreatedAt: it.CreatedAt, CreatedBy: it.CreatedBy,
			OwnerType: it.OwnerType, OwnerActive: it.OwnerActive, LastUsedAt: it.LastUsedAt, FirstSeenAt: it.FirstSeenAt,
			LastSeenAt: it.LastSeenAt, DeletedAt: it.DeletedAt, Match: it.MatchState, CandidateCount: it.MatchCandidates,
			Candidates: make([]wire.InventoryCandidate, 0, len(it.Candidates))}
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
		out.Items = append(out.Items, w)
	}
	return c.JSON(http.StatusOK, out)
}
