package web

import (
	"encoding/csv"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/templates"
	"github.com/labstack/echo/v4"
)

// CSV downloads: key metadata (never a value), the audit log and an
// offboarding record. Cells are defused against spreadsheet formulas.

// csvCell defuses a cell a spreadsheet would run as a formula (OWASP "CSV
// injection"): a leading = + - @ tab or carriage return gets a quote.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// csvWriter writes defused rows.
type csvWriter struct{ w *csv.Writer }

func (cw csvWriter) row(cells ...string) error {
	for i, c := range cells {
		cells[i] = csvCell(c)
	}
	return cw.w.Write(cells)
}

// startCSV sets the download headers and returns a writer on the body.
func startCSV(c echo.Context, filename string) csvWriter {
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set(echo.HeaderContentDisposition, fmt.Sprintf("attachment; filename=%q", filename))
	h.Set("Cache-Control", "no-store")
	c.Response().WriteHeader(http.StatusOK)
	return csvWriter{w: csv.NewWriter(c.Response())}
}

func csvTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

func csvTimePtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return csvTime(*t)
}

func csvInt(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

// keyFilterFrom reads the key list's filters from the query, as /keys does.
func keyFilterFrom(c echo.Context) store.KeyFilter {
	q := c.QueryParams()
	return store.KeyFilter{
		Environment: q.Get("environment"),
		OwnerEmail:  q.Get("owner"),
		Provider:    q.Get("provider"),
		Project:     q.Get("project"),
		Q:           q.Get("q"),
		Status:      q.Get("status"),
		Sort:        q.Get("sort"),
		Desc:        q.Get("dir") == "desc",
	}
}

// allKeys reads every page of a key listing.
func (s *Server) allKeys(c echo.Context, f store.KeyFilter) ([]keyledger.Key, error) {
	var out []keyledger.Key
	f.PerPage = 200
	for page := 1; ; page++ {
		f.Page = page
		res, err := s.store.ListKeys(c.Request().Context(), s.actor(c), f)
		if err != nil {
			return nil, err
		}
		out = append(out, res.Keys...)
		if page >= res.Pages() || len(res.Keys) == 0 {
			return out, nil
		}
	}
}

// keyListCSV is the key list with the same filters, every page, as CSV.
// Metadata only: every active user may see it, and no value is in it.
func (s *Server) keyListCSV(c echo.Context) error {
	keys, err := s.allKeys(c, keyFilterFrom(c))
	if err != nil {
		return err
	}
	w := startCSV(c, "keyledger-keys-"+s.store.Now().UTC().Format("20060102")+".csv")
	if err := w.row("name", "project", "environment", "owner", "provider", "masked_hint", "current_version",
		"rotate_by", "last_verified_at", "verify_result", "created_at", "archived_at"); err != nil {
		return err
	}
	for _, k := range keys {
		if err := w.row(k.Name, k.Project, k.Environment, k.OwnerEmail, string(k.Provider), k.MaskedHint, strconv.Itoa(k.CurrentVersion),
			csvTime(k.RotateBy), csvTimePtr(k.LastVerifiedAt), k.VerifyResult, csvTime(k.CreatedAt), csvTimePtr(k.ArchivedAt)); err != nil {
			return err
		}
	}
	w.w.Flush()
	return w.w.Error()
}

// auditFilterFrom reads the audit page's filters from the query.
func auditFilterFrom(c echo.Context) (store.AuditFilter, templates.AuditFilterView, error) {
	q := c.QueryParams()
	fv := templates.AuditFilterView{Actor: q.Get("actor"), Key: q.Get("key"), Action: q.Get("action"),
		Environment: q.Get("environment"), Since: q.Get("since"), Until: q.Get("until")}
	before, _ := strconv.ParseInt(q.Get("before"), 10, 64)
	f := store.AuditFilter{ActorEmail: fv.Actor, KeyID: fv.Key, Action: fv.Action, Environment: fv.Environment, BeforeID: before}
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
	return f, fv, v.Err()
}

// auditPageSize is how many events the CSV reads per query.
const auditPageSize = 500

// auditCSV streams every event matching the audit page's filters, newest
// first, reading pages of 500 so that memory stays flat however long the
// log is. Leads and admins.
func (s *Server) auditCSV(c echo.Context) error {
	f, _, err := auditFilterFrom(c)
	if err != nil {
		return err
	}
	f.Limit = auditPageSize
	ctx := c.Request().Context()
	actor := s.actor(c)
	// The first page before any byte is sent: a refusal is still a page.
	page, err := s.store.ListAudit(ctx, actor, f)
	if err != nil {
		return err
	}
	w := startCSV(c, "keyledger-audit-"+s.store.Now().UTC().Format("20060102")+".csv")
	if err := w.row("id", "time", "actor", "action", "key_id", "key_name", "version", "subject", "environment", "ip", "reason", "details"); err != nil {
		return err
	}
	for {
		for _, e := range page.Events {
			details := e.Details
			if details == "{}" {
				details = ""
			}
			if err := w.row(strconv.FormatInt(e.ID, 10), csvTime(e.Time), e.ActorEmail, e.Action, e.KeyID, e.KeyName, csvInt(e.KeyVersion),
				e.SubjectEmail, e.Environment, e.IP, e.Reason, details); err != nil {
				return s.abortStream(c, err)
			}
		}
		w.w.Flush()
		if err := w.w.Error(); err != nil {
			return s.abortStream(c, err)
		}
		c.Response().Flush()
		if page.NextBeforeID == 0 {
			return nil
		}
		f.BeforeID = page.NextBeforeID
		if page, err = s.store.ListAudit(ctx, actor, f); err != nil {
			return s.abortStream(c, err)
		}
	}
}

// abortStream logs a failure after the response has started: the status
// is sent, so the download simply ends early.
func (s *Server) abortStream(c echo.Context, err error) error {
	s.log.Error("csv stream failed", "request_id", requestID(c), "path", c.Request().URL.Path, "err", err)
	return nil
}

// offboardingCSV is an offboarding checklist (or record) as CSV: one row
// per item, with the checklist's header repeated on each.
func (s *Server) offboardingCSV(c echo.Context) error {
	id, err := offboardingID(c)
	if err != nil {
		return err
	}
	o, err := s.store.Offboarding(c.Request().Context(), s.actor(c), id)
	if err != nil {
		return err
	}
	w := startCSV(c, fmt.Sprintf("keyledger-offboarding-%d.csv", o.ID))
	if err := w.row("offboarding", "person", "started_at", "started_by", "frozen", "completed_at", "completed_by",
		"item", "kind", "key_id", "key_name", "environment", "why", "status", "resolution", "resolved_by", "resolved_at"); err != nil {
		return err
	}
	for _, it := range o.Items {
		if err := w.row(strconv.FormatInt(o.ID, 10), o.User.Email, csvTime(o.StartedAt), o.StartedBy, strconv.FormatBool(o.Frozen),
			csvTimePtr(o.CompletedAt), o.CompletedBy, strconv.FormatInt(it.ID, 10), it.Kind, it.KeyID, it.KeyName, it.Environment,
			it.Why, it.Status, it.Resolution, it.ResolvedBy, csvTimePtr(it.ResolvedAt)); err != nil {
			return err
		}
	}
	w.w.Flush()
	return w.w.Error()
}
