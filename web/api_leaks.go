package web

import (
	"net/http"

	"github.com/keyledger/keyledger/web/wire"
	"github.com/labstack/echo/v4"
)

// apiLeakCheck is POST /api/v1/leaks/check (keyledger scan): which of the
// candidates are a live key's value. The candidates are fingerprinted by
// the store and never logged; the answer names keys by metadata only.
func (s *Server) apiLeakCheck(c echo.Context) error {
	var in wire.LeakCheckRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	hits, err := s.store.CheckLeaks(c.Request().Context(), s.actor(c), in.Candidates)
	if err != nil {
		return err
	}
	out := wire.LeakCheckResult{Hits: make([]wire.LeakHit, 0, len(hits))}
	for _, h := range hits {
		out.Hits = append(out.Hits, wire.LeakHit{Index: h.Index, KeyID: h.KeyID, Name: h.Name, Environment: h.Environment,
			Project: h.Project, OwnerEmail: h.OwnerEmail, Version: h.Version, Current: h.Current})
	}
	return c.JSON(http.StatusOK, out)
}
