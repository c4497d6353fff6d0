package web

import (
	"net/http"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web/wire"
	"github.com/labstack/echo/v4"
)

// registerAPI mounts /api/v1: JSON in and out, bearer tokens only (no
// cookies, hence no CSRF), described by web/openapi.json. Handlers live in
// api_*.go; like the pages, they translate HTTP into store calls and never
// decide authorization themselves. The one check made here is the token's
// read scope on GETs, which the store's read paths do not know about; the
// store checks the reveal and write scopes (keyledger.CheckScope) and a
// token's reveal rules (keyledger.CheckStepUp) in the operations that act.
//
// Status codes: 400 malformed JSON, unknown fields or a body that is not
// one JSON object; 401 no, unknown, expired or revoked token, or its user
// was deactivated; 403 the token lacks the scope or the policy refuses; 404
// unknown key or address; 409 conflicts (duplicate value or name, archived
// key, concurrent rotation, a key keyledger cannot rotate at its
// provider); 413 body over the limit; 415 a body that is not
// application/json; 422 validation, with per-field messages; 429 over the
// token's rate (Retry-After); 503 verification not configured, or a
// provider refused or did not answer (sync, revoke, rotation there).
func (s *Server) registerAPI(e *echo.Echo) {
	e.GET("/api/v1/openapi.json", s.apiOpenAPI)
	// Any other address under /api/ that the group below does not own
	// answers a JSON 404, never the pages' sign-in redirect.
	e.RouteNotFound("/api/*", apiNotFound)

	api := e.Group("/api/v1", apiRequestErrors, s.apiAuth, s.apiRateLimit)
	// Replaces echo's catch-all for the group: an unknown address under
	// /api/v1 is authenticated first (no route discovery without a token),
	// then a JSON 404.
	api.RouteNotFound("", apiNotFound)
	api.RouteNotFound("/*", apiNotFound)

	read := s.apiScope(keyledger.ScopeRead)
	// whoami needs no scope: it tells a token's holder about the token
	// itself, so any valid token can check that it works.
	api.GET("/whoami", s.apiWhoami)
	api.GET("/keys", s.apiKeyList, read)
	api.POST("/keys", s.apiKeyCreate)
	api.GET("/keys/:id", s.apiKeyGet, read)
	api.POST("/keys/:id/reveal", s.apiKeyReveal)
	api.POST("/keys/:id/rotate", s.apiKeyRotate)
	api.POST("/keys/:id/verify", s.apiKeyVerify)
	api.GET("/environments", s.apiEnvironments, read)
	api.GET("/audit", s.apiAudit, read)
	api.POST("/export", s.apiExport)
	api.POST("/leaks/check", s.apiLeakCheck, read)
	api.GET("/inventory", s.apiInventory, read)
	api.POST("/inventory/:provider_key/link", s.apiInventoryLink)
	api.POST("/inventory/:provider_key/unlink", s.apiInventoryUnlink)
	api.GET("/providers", s.apiProviders, read)
	api.POST("/providers", s.apiProviderCreate)
	api.POST("/providers/:pid/sync", s.apiProviderSync)
	api.POST("/providers/:pid/remove", s.apiProviderRemove)
	api.POST("/keys/:id/provider-revoke", s.apiKeyProviderRevoke)
	api.POST("/keys/:id/auto-rotate", s.apiKeyAutoRotate)
	api.POST("/keys/:id/provider-rotate", s.apiKeyProviderRotate)
	api.POST("/leaks", s.apiLeakReport)
}

func apiNotFound(echo.Context) error {
	return keyledger.Errorf(keyledger.ENOTFOUND, "There is no API endpoint at this address; see /api/v1/openapi.json.")
}

// apiScope refuses a token that lacks scope.
func (s *Server) apiScope(scope string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			if err := keyledger.CheckScope(s.actor(c), scope); err != nil {
				return err
			}
			return next(c)
		}
	}
}

func (s *Server) apiWhoami(c echo.Context) error {
	u := currentUser(c)
	t := currentToken(c)
	scopes := t.Scopes
	if scopes == nil {
		scopes = []string{}
	}
	return c.JSON(http.StatusOK, wire.Whoami{Email: u.Email, Name: u.Name, Role: string(u.Role),
		Token: wire.WhoamiToken{ID: t.ID, Name: t.Name, Scopes: scopes, ExpiresAt: apiTime(t.ExpiresAt)}})
}
