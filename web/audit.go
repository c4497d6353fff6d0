package web

import (
	"net/http"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/templates"
	"github.com/labstack/echo/v4"
)

func (s *Server) auditPage(c echo.Context) error {
	ctx := c.Request().Context()
	f, fv, err := auditFilterFrom(c)
	if err != nil {
		return err
	}
	f.Limit = 100
	res, err := s.store.ListAudit(ctx, s.actor(c), f)
	if err != nil {
		return err
	}
	envs, err := s.store.Environments(ctx, s.actor(c))
	if err != nil {
		return err
	}
	view := templates.AuditView{Events: res.Events, Filter: fv, NextBeforeID: res.NextBeforeID,
		Actions: keyledger.AuditActions(), Environments: envs}
	return render(c, http.StatusOK, templates.AuditPage(s.page(c, "Audit log", "audit"), view))
}
