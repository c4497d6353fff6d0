package web

import (
	_ "embed"
	"net/http"

	"github.com/labstack/echo/v4"
)

// openAPIDoc describes /api/v1 (OpenAPI 3.0). The tests validate every
// response they get against it, so it cannot drift from the handlers.
//
//go:embed openapi.json
var openAPIDoc []byte

// apiOpenAPI serves the description. It is public: it holds no data, and a
// client needs it before it has a token.
func (s *Server) apiOpenAPI(c echo.Context) error {
	c.Response().Header().Set("Cache-Control", "public, max-age=300")
	c.Response().Header().Del("Pragma")
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPIDoc)
}
