package web

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/web/wire"
	"github.com/labstack/echo/v4"
)

func (s *Server) apiEnvironments(c echo.Context) error {
	envs, err := s.store.Environments(c.Request().Context(), s.actor(c))
	if err != nil {
		return err
	}
	out := wire.EnvironmentList{Environments: make([]wire.Environment, 0, len(envs))}
	for _, e := range envs {
		out.Environments = append(out.Environments, wire.Environment{Name: e.Name, RevealPolicy: string(e.RevealPolicy),
			ReasonRequired: e.ReasonRequired, Sensitive: e.Sensitive, RotationDays: e.RotationDays, AllowTokenReveal: e.AllowTokenReveal})
	}
	return c.JSON(http.StatusOK, out)
}

// apiAuditTime reads since/until: RFC 3339, or a date (until a date means
// through the end of that day, as on the page).
func apiAuditTime(v *keyledger.Validation, field, raw string, until bool) time.Time {
	if raw == "" {
		return time.Time{}
	}
	if t, err := time.Parse(time.RFC3339, raw); err == nil {
		return t
	}
	t, err := time.Parse("2006-01-02", raw)
	if err != nil {
		v.Add(field, field+" is a date like 2026-01-31 or a time like 2026-01-31T09:00:00Z.")
		return time.Time{}
	}
	if until {
		t = t.AddDate(0, 0, 1)
	}
	return t
}

// apiAudit is GET /api/v1/audit, newest first, for leads and admins (the
// store refuses everyone else).
func (s *Server) apiAudit(c echo.Context) error {
	q := c.QueryParams()
	var v keyledger.Validation
	f := store.AuditFilter{ActorEmail: q.Get("actor"), KeyID: q.Get("key"), Action: q.Get("action"), Environment: q.Get("environment")}
	f.Limit = queryLimit(c, &v, 50, 500)
	f.Since = apiAuditTime(&v, "since", q.Get("since"), false)
	f.Until = apiAuditTime(&v, "until", q.Get("until"), true)
	if f.Action != "" && !keyledger.AuditActionFilterKnown(f.Action) {
		v.Add("action", "Unknown action; use an action (listed in the API description) or reveals-and-exports.")
	}
	if raw := q.Get("cursor"); raw != "" {
		cur, err := decodeCursor(raw, "audit")
		if err != nil {
			return err
		}
		if cur.Before < 1 {
			v.Add("cursor", "Use the next_cursor of a previous answer of this listing, unchanged.")
		}
		f.BeforeID = cur.Before
	}
	if err := v.Err(); err != nil {
		return err
	}
	page, err := s.store.ListAudit(c.Request().Context(), s.actor(c), f)
	if err != nil {
		return err
	}
	out := wire.AuditList{Events: make([]wire.AuditEvent, 0, len(page.Events))}
	for _, e := range page.Events {
		ev := wire.AuditEvent{ID: e.ID, Time: apiTime(e.Time), Actor: e.ActorEmail, Action: e.Action, KeyID: strPtr(e.KeyID),
			KeyName: strPtr(e.KeyName), Subject: strPtr(e.SubjectEmail), Environment: strPtr(e.Environment), IP: e.IP, Reason: e.Reason,
			Details: json.RawMessage(e.Details)}
		if e.KeyVersion != 0 {
			n := e.KeyVersion
			ev.KeyVersion = &n
		}
		if !json.Valid(ev.Details) || len(ev.Details) == 0 || ev.Details[0] != '{' {
			ev.Details = json.RawMessage("{}")
		}
		out.Events = append(out.Events, ev)
	}
	if page.NextBeforeID > 0 {
		next := encodeCursor(apiCursor{Kind: "audit", Before: page.NextBeforeID})
		out.NextCursor = &next
	}
	return c.JSON(http.StatusOK, out)
}
