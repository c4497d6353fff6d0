package web

import (
	"fmt"
	"net/http"

	"github.com/keyledger/keyledger"

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

// apiLeakReport is POST /api/v1/leaks: report one value found out in the
// open (the web form's twin). The value is matched and dropped by the
// store; the answer names the incident, never the value.
func (s *Server) apiLeakReport(c echo.Context) error {
	var in wire.LeakReportRequest
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	r, err := s.store.ReportLeak(c.Request().Context(), s.actor(c), keyledger.LeakReportInput{Value: in.Value, Where: in.Where})
	in.Value = ""
	if err != nil {
		return err
	}
	out := wire.LeakReport{Matched: r.Matched, Joined: r.Joined, Name: r.KeyName, Version: r.Version, Current: r.Current}
	if r.Matched {
		id, u, key := r.IncidentID, fmt.Sprintf("/leaks/%d", r.IncidentID), r.KeyID
		out.IncidentID, out.IncidentURL, out.KeyID = &id, &u, &key
	}
	return c.JSON(http.StatusOK, out)
}
