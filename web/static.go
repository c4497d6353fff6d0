package web

import (
	"net/http"

	"github.com/labstack/echo/v4"
)

func (s *Server) serveStatic(c echo.Context) error {
	as, ok := s.assets.ByPath(c.Request().URL.Path)
	if !ok {
		return echo.ErrNotFound
	}
	h := c.Response().Header()
	// The path carries the content hash, so it never changes.
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	return c.Blob(http.StatusOK, as.ContentType, as.Body)
}
