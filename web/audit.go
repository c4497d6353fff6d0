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
	keys, err := s.store.AuditKeys(ctx, s.actor(c))
	if err != nil {
		return err
	}
	choices := make([]templates.AuditKeyChoice, 0, len(keys))
	for _, k := range keys {
		// Names repeat across projects and environments: say which.
		label := k.Name + " (" + k.Project + ", " + k.Environment + ")"
		if k.Archived {
			label += ", archived"
		}
		choices = append(choices, templates.AuditKeyChoice{ID: k.ID, Label: label})
	}
	view := templates.AuditView{Events: res.Events, Filter: fv, NextBeforeID: res.NextBeforeID,
		Actions: keyledger.AuditActions(), Environments: envs, Keys: choices, Now: s.store.Now()}
	return render(c, http.StatusOK, templates.AuditPage(s.page(c, "Audit log", "audit"), view))
}
