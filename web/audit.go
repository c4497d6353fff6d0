package web

import (
	"net/http"
	"strconv"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/templates"
	"github.com/labstack/echo/v4"
)

func (s *Server) auditPage(c echo.Context) error {
	ctx := c.Request().Context()
	q := c.QueryParams()
	fv := templates.AuditFilterView{Actor: q.Get("actor"), Key: q.Get("key"), Action: q.Get("action"),
		Environment: q.Get("environment"), Since: q.Get("since"), Until: q.Get("until")}
	before, _ := strconv.ParseInt(q.Get("before"), 10, 64)
	f := store.AuditFilter{ActorEmail: fv.Actor, KeyID: fv.Key, Action: fv.Action, Environment: fv.Environment, BeforeID: before, Limit: 100}
	var v keyledger.Validation
	if fv.Since != "" {
		t, err := time.Parse("2006-01-02", fv.Since)
		if err != nil {
			v.Add("since", "Use a date like 2026-01-31.")
		}
		f.Since = t
	}
	if fv.Until != "" {
		t, err := time.Parse("2006-01-02", fv.Until)
		if err != nil {
			v.Add("until", "Use a date like 2026-01-31.")
		}
		// Until a date means through the end of that day.
		f.Until = t.AddDate(0, 0, 1)
	}
	if err := v.Err(); err != nil {
		return err
	}
	res, err := s.store.ListAudit(ctx, s.actor(c), f)
	if err != nil {
		return err
	}
	envs, err := s.store.Environments(ctx)
	if err != nil {
		return err
	}
	view := templates.AuditView{Events: res.Events, Filter: fv, NextBeforeID: res.NextBeforeID,
		Actions: keyledger.AuditActions(), Environments: envs}
	return render(c, http.StatusOK, templates.AuditPage(s.page(c, "Audit log", "audit"), view))
}
