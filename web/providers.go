package web

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/templates"
	"github.com/labstack/echo/v4"
)

// Provider connections (admins) and the inventory of keys they list
// (leads and admins). The store decides who may; the handlers check the
// same rule first so that nobody else learns whether a connection exists.

func (s *Server) requireProviderAdmin(c echo.Context) error {
	return keyledger.CanManageProviders(currentUser(c))
}

func (s *Server) adminProviders(c echo.Context) error {
	if err := s.requireProviderAdmin(c); err != nil {
		return err
	}
	return s.renderProviders(c, http.StatusOK, templates.ProviderForm{Provider: string(keyledger.ProviderOpenAI)})
}

func (s *Server) renderProviders(c echo.Context, status int, form templates.ProviderForm) error {
	conns, err := s.store.ProviderConnections(c.Request().Context(), s.actor(c))
	if err != nil {
		return err
	}
	v := templates.ProvidersView{Connections: conns, Create: form, Configured: s.cfg.ProviderAdmin != nil}
	p := s.page(c, "Provider connections", "admin")
	q := c.QueryParams()
	for _, f := range []struct{ key, msg string }{
		{"added", "Connection added: the provider accepted the admin key. Its keys are being listed; see the inventory."},
		{"removed", "Connection removed. Its admin key is erased from keyledger; revoke it at the provider too."},
		{"synced", "Synced."},
	} {
		if q.Get(f.key) != "" {
			p.Flash = append(p.Flash, templates.Flash{Kind: "ok", Message: f.msg})
		}
	}
	if q.Get("sync_failed") != "" {
		p.Flash = append(p.Flash, templates.Flash{Kind: "error", Message: "The sync failed: the provider's answer is in the table below."})
	}
	return render(c, status, templates.ProvidersPage(p, v))
}

func (s *Server) adminProviderCreate(c echo.Context) error {
	if err := s.requireProviderAdmin(c); err != nil {
		return err
	}
	in := keyledger.ProviderConnectionInput{Provider: c.FormValue("provider"), Name: c.FormValue("name"), AdminKey: c.FormValue("admin_key")}
	ctx := c.Request().Context()
	conn, err := s.store.AddProviderConnection(ctx, s.actor(c), s.cfg.ProviderAdmin, in)
	if err != nil {
		status, fields, msg, ok := formFailure(err)
		if !ok {
			return err
		}
		// The admin key is never echoed back into the page.
		return s.renderProviders(c, status, templates.ProviderForm{Provider: in.Provider, Name: in.Name, Errors: fields, Message: msg})
	}
	// The first listing, now: the admin sees the inventory straight away.
	// A failure here is recorded on the connection and shown in the table.
	if _, err := s.store.SyncProviderConnection(ctx, s.actor(c), s.cfg.ProviderAdmin, conn.ID); err != nil && keyledger.ProviderAdminErrorKindOf(err) == "" {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/providers?added=1")
}

func (s *Server) adminProviderSync(c echo.Context) error {
	if err := s.requireProviderAdmin(c); err != nil {
		return err
	}
	_, err := s.store.SyncProviderConnection(c.Request().Context(), s.actor(c), s.cfg.ProviderAdmin, c.Param("pid"))
	if keyledger.ProviderAdminErrorKindOf(err) != "" {
		return c.Redirect(http.StatusSeeOther, "/admin/providers?sync_failed=1")
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/providers?synced=1")
}

func (s *Server) adminProviderRemove(c echo.Context) error {
	if err := s.requireProviderAdmin(c); err != nil {
		return err
	}
	if err := s.store.RemoveProviderConnection(c.Request().Context(), s.actor(c), c.Param("pid")); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/providers?removed=1")
}

// inventoryFilterFrom reads the inventory's filters from the query; an
// unknown state is a 400 that names it.
func inventoryFilterFrom(c echo.Context) (keyledger.InventoryFilter, error) {
	st, ok := keyledger.ParseInventoryState(c.QueryParam("state"))
	if !ok {
		return keyledger.InventoryFilter{}, keyledger.Errorf(keyledger.EINVALID, "There is no inventory state %q.", c.QueryParam("state"))
	}
	return keyledger.InventoryFilter{State: st, ConnectionID: c.QueryParam("connection")}, nil
}

func (s *Server) inventoryPage(c echo.Context) error {
	return s.renderInventory(c, http.StatusOK, "")
}

// renderInventory shows one page of the inventory (inventoryPageSize
// keys, from the "after" cursor), with failure as an error message when
// a link form was refused.
func (s *Server) renderInventory(c echo.Context, status int, failure string) error {
	if err := keyledger.CanViewInventory(currentUser(c)); err != nil {
		return err
	}
	f, err := inventoryFilterFrom(c)
	if err != nil {
		return err
	}
	f.Limit = inventoryPageSize
	after := c.QueryParam("after")
	if after != "" {
		if f.After, err = inventoryCursorFrom(after, "after"); err != nil {
			return err
		}
	}
	ctx := c.Request().Context()
	inv, err := s.store.Inventory(ctx, s.actor(c), f)
	if err != nil {
		return err
	}
	conns, err := s.store.InventoryConnections(ctx, s.actor(c))
	if err != nil {
		return err
	}
	v := templates.InventoryView{Inventory: inv, Connections: conns, State: f.State, Connection: f.ConnectionID, States: keyledger.InventoryStates(),
		After: after, Next: nextInventoryCursor(inv), CanLink: keyledger.CanManageProviders(currentUser(c)) == nil}
	p := s.page(c, "Provider inventory", "inventory")
	q := c.QueryParams()
	switch {
	case failure != "":
		p.Flash = append(p.Flash, templates.Flash{Kind: "error", Message: failure})
	case q.Get("linked") != "":
		p.Flash = append(p.Flash, templates.Flash{Kind: "ok", Message: "Linked. Syncs keep this link until someone unlinks it."})
	case q.Get("unlinked") != "":
		p.Flash = append(p.Flash, templates.Flash{Kind: "ok", Message: "Unlinked: the key is matched by its hint again."})
	}
	return render(c, status, templates.InventoryPage(p, v))
}

// inventoryLink is POST /inventory/{provider_key}/link (key_id): an
// admin says which registered key a provider key is.
func (s *Server) inventoryLink(c echo.Context) error {
	return s.inventoryLinkAction(c, "linked", func(id int64) error {
		return s.store.LinkProviderKey(c.Request().Context(), s.actor(c), id, c.FormValue("key_id"))
	})
}

// inventoryUnlink is POST /inventory/{provider_key}/unlink.
func (s *Server) inventoryUnlink(c echo.Context) error {
	return s.inventoryLinkAction(c, "unlinked", func(id int64) error {
		return s.store.UnlinkProviderKey(c.Request().Context(), s.actor(c), id)
	})
}

// inventoryLinkAction runs a link or unlink and goes back to the
// inventory (post/redirect/get), or shows it with the refusal.
func (s *Server) inventoryLinkAction(c echo.Context, done string, act func(id int64) error) error {
	if err := s.requireProviderAdmin(c); err != nil {
		return err
	}
	id, err := providerKeyParam(c)
	if err != nil {
		return err
	}
	if err := act(id); err != nil {
		status, fields, msg, ok := formFailure(err)
		if !ok {
			return err
		}
		if fields["key_id"] != "" {
			msg = fields["key_id"]
		}
		return s.renderInventory(c, status, msg)
	}
	// Back to the same filters (the form carries them), so an admin
	// working through the ambiguous keys stays on that list.
	back := templates.InventoryQuery("/inventory", "", "")
	if st, ok := keyledger.ParseInventoryState(c.FormValue("state")); ok {
		back = templates.InventoryQuery("/inventory", st, c.FormValue("connection"))
	}
	sep := "?"
	if strings.Contains(back, "?") {
		sep = "&"
	}
	return c.Redirect(http.StatusSeeOther, back+sep+done+"=1")
}

func (s *Server) inventoryCSV(c echo.Context) error {
	if err := keyledger.CanViewInventory(currentUser(c)); err != nil {
		return err
	}
	f, err := inventoryFilterFrom(c)
	if err != nil {
		return err
	}
	inv, err := s.store.Inventory(c.Request().Context(), s.actor(c), f)
	if err != nil {
		return err
	}
	w := startCSV(c, "keyledger-inventory-"+s.store.Now().UTC().Format("20060102")+".csv")
	if err := w.row("connection", "provider", "provider_key_id", "name", "hint", "project_id", "project_name", "status",
		"states", "created_at", "created_by", "owner_type", "owner_active", "last_used_at", "deleted_at",
		"match", "candidates", "keyledger_key_id", "keyledger_key", "keyledger_owner"); err != nil {
		return err
	}
	for _, it := range inv.Items {
		states := ""
		for i, st := range it.States {
			if i > 0 {
				states += " "
			}
			states += string(st)
		}
		if err := w.row(it.ConnectionName, string(it.Provider), it.ProviderKeyID, it.Name, it.Hint, it.ProjectID, it.ProjectName, it.Status,
			states, csvTimePtr(it.CreatedAt), it.CreatedBy, it.OwnerType, strconv.FormatBool(it.OwnerActive), csvTimePtr(it.LastUsedAt), csvTimePtr(it.DeletedAt),
			it.MatchState, csvInt(it.MatchCandidates), it.KeyID, it.KeyName, it.KeyOwnerEmail); err != nil {
			return err
		}
	}
	w.w.Flush()
	return w.w.Error()
}
