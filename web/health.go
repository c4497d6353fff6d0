package web

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v4"
)

func (s *Server) healthz(c echo.Context) error {
	return c.String(http.StatusOK, "ok\n")
}

// readyz says whether this replica should get traffic: the database
// answers, writes are not failing for want of disk, memory or connections
// (judged from the requests' own writes, so the probe writes nothing),
// the schema is current, and the master key opens the canary.
func (s *Server) readyz(c echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	var problems []string
	if err := s.store.Ping(ctx); err != nil {
		problems = append(problems, "database unreachable")
	} else if err := s.store.WriteHealth(); err != nil {
		// Reads (and Ping) may work on a full disk; reveals cannot,
		// since each writes its audit event.
		problems = append(problems, err.Error())
	} else if s.cfg.Ready != nil {
		if err := s.cfg.Ready(ctx); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return c.String(http.StatusServiceUnavailable, "not ready: "+strings.Join(problems, "; ")+"\n")
	}
	return c.String(http.StatusOK, "ready\n")
}
