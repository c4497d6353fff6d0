package web

import (
	"errors"
	"net/http"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web/wire"
	"github.com/labstack/echo/v4"
)

// The provider connections and revoke-at-the-provider over the API: the
// same store calls as the pages (web/providers.go, web/keys_provider.go),
// which decide who may. The admin key goes in once, with POST /providers,
// and is in no answer.

func toAPIConnection(c keyledger.ProviderConnection) wire.ProviderConnection {
	out := wire.ProviderConnection{ID: c.ID, Provider: string(c.Provider), Name: c.Name, CreatedBy: c.CreatedBy,
		CreatedAt: apiTime(c.CreatedAt), LastSyncAt: apiTimePtr(c.LastSyncAt), LastSyncError: c.LastSyncError, LastSyncKeys: c.LastSyncKeys}
	if c.LastSyncStatus != "" {
		out.LastSyncStatus = strPtr(c.LastSyncStatus)
	}
	return out
}

// apiProviders is GET /api/v1/providers (admins).
func (s *Server) apiProviders(c echo.Context) error {
	conns, err := s.store.ProviderConnections(c.Request().Context(), s.actor(c))
	if err != nil {
		return err
	}
	out := wire.ProviderConnectionList{Connections: make([]wire.ProviderConnection, 0, len(conns))}
	for _, pc := range conns {
		out.Connections = append(out.Connections, toAPIConnection(pc))
	}
	return c.JSON(http.StatusOK, out)
}

// apiProviderCreate is POST /api/v1/providers: check, store and sync
// once, as the form does. A failed first sync is on the connection.
func (s *Server) apiProviderCreate(c echo.Context) error {
	var req wire.ProviderConnectionCreateRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	in := keyledger.ProviderConnectionInput{Provider: req.Provider, Name: req.Name, AdminKey: req.AdminKey}
	conn, err := s.store.AddProviderConnection(ctx, s.actor(c), s.cfg.ProviderAdmin, in)
	if err != nil {
		return err
	}
	if _, err := s.store.SyncProviderConnection(ctx, s.actor(c), s.cfg.ProviderAdmin, conn.ID); err != nil && keyledger.ProviderAdminErrorKindOf(err) == "" {
		return err
	}
	if conn, err = s.store.ProviderConnection(ctx, s.actor(c), conn.ID); err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, toAPIConnection(conn))
}

// apiProviderSync is POST /api/v1/providers/{pid}/sync. A provider that
// refused or did not answer is a 503 (429 when it rate-limits) with its
// message, which the connection also keeps.
func (s *Server) apiProviderSync(c echo.Context) error {
	var req struct{}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	ctx := c.Request().Context()
	res, err := s.store.SyncProviderConnection(ctx, s.actor(c), s.cfg.ProviderAdmin, c.Param("pid"))
	if kind := keyledger.ProviderAdminErrorKindOf(err); kind != "" {
		return syncFailure(err)
	}
	if err != nil {
		return err
	}
	conn, err := s.store.ProviderConnection(ctx, s.actor(c), c.Param("pid"))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, wire.ProviderSync{Connection: toAPIConnection(conn), Seen: res.Seen, New: res.New, Deleted: res.Deleted,
		Matched: res.Matched, Ambiguous: res.Ambiguous, Unmatched: res.Unmatched})
}

// syncFailure turns a provider's refusal into the API's error: the
// provider's words (a *ProviderAdminError's text never holds the admin
// key), 429 with Retry-After when it rate-limits, else 503.
func syncFailure(err error) error {
	var pe *keyledger.ProviderAdminError
	if !errors.As(err, &pe) {
		return err
	}
	e := keyledger.Errorf(keyledger.EUNAVAILABLE, "The sync failed; the keys stay as they were. The provider's answer: %s", pe.Error())
	if pe.Kind == keyledger.ProviderRateLimited {
		e.Code, e.RetryAfter = keyledger.ETOOMANY, pe.RetryAfter
	}
	return e
}

// apiProviderRemove is POST /api/v1/providers/{pid}/remove: the page's
// action, not a DELETE, since the row stays for the audit trail.
func (s *Server) apiProviderRemove(c echo.Context) error {
	var req struct{}
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	if err := s.store.RemoveProviderConnection(c.Request().Context(), s.actor(c), c.Param("pid")); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// apiKeyProviderRevoke is POST /api/v1/keys/{id}/provider-revoke. A
// token cannot step up, so the store refuses it in a sensitive
// environment with a 403 that says to use the browser.
func (s *Server) apiKeyProviderRevoke(c echo.Context) error {
	var req wire.ProviderRevokeRequest
	if err := decodeJSON(c, &req); err != nil {
		return err
	}
	var pk int64
	if req.ProviderKey != nil {
		if *req.ProviderKey < 1 {
			return &keyledger.Error{Code: keyledger.EINVALID, Message: "Please correct the highlighted fields.",
				Fields: map[string]string{"provider_key": "provider_key is a provider key's id (1 or more), or leave it out for the key linked to this key."}}
		}
		pk = *req.ProviderKey
	}
	// A provider's 429 comes back as ETOOMANY with its wait, which
	// handleError sends as Retry-After.
	res, err := s.store.RevokeAtProvider(c.Request().Context(), s.actor(c), s.cfg.ProviderAdmin, c.Param("id"), pk, req.Reason)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, wire.ProviderRevoked{KeyID: c.Param("id"), Provider: string(res.Key.Provider), Connection: res.Key.ConnectionName,
		ProviderKeyID: res.Key.ProviderKeyID, Status: res.Key.Status, RevokedAt: apiTimePtr(res.Key.RevokedAt), Already: res.Already})
}
