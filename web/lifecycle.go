package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/templates"
	"github.com/labstack/echo/v4"
)

func (s *Server) keyRotatePage(c echo.Context) error {
	k, err := s.store.GetKey(c.Request().Context(), s.actor(c), c.Param("id"))
	if err != nil {
		return err
	}
	if err := keyledger.CanEditKey(currentUser(c), k.OwnerID); err != nil {
		return err
	}
	if k.Archived() {
		return keyledger.Errorf(keyledger.ECONFLICT, "This key is archived and can no longer be rotated.")
	}
	v := templates.RotateForm{Key: k, GraceDays: strconv.Itoa(keyledger.DefaultGraceDays), Version: k.CurrentVersion}
	return render(c, http.StatusOK, templates.RotatePage(s.page(c, "Rotate "+k.Name, "keys"), v))
}

func (s *Server) keyRotate(c echo.Context) error {
	id := c.Param("id")
	in := keyledger.RotateInput{Value: c.FormValue("value"), GraceDays: c.FormValue("grace_days"), ExpectedVersion: c.FormValue("version"),
		KeepWhitespace: c.FormValue("keep_whitespace") != ""}
	k, err := s.store.RotateKey(c.Request().Context(), s.actor(c), id, in)
	if err != nil {
		status, fields, msg, ok := formFailure(err)
		if !ok {
			return err
		}
		cur, gerr := s.store.GetKey(c.Request().Context(), s.actor(c), id)
		if gerr != nil {
			return gerr
		}
		expected, _ := strconv.Atoi(in.ExpectedVersion)
		if expected == 0 {
			expected = cur.CurrentVersion
		}
		v := templates.RotateForm{Key: cur, GraceDays: in.GraceDays, Version: expected, Errors: fields, Message: msg}
		return render(c, status, templates.RotatePage(s.page(c, "Rotate "+cur.Name, "keys"), v))
	}
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/keys/%s?rotated=%d", k.ID, k.CurrentVersion))
}

func (s *Server) keyRollback(c echo.Context) error {
	id := c.Param("id")
	version, err := strconv.Atoi(c.FormValue("version"))
	if err != nil || version < 1 {
		return keyledger.Errorf(keyledger.EINVALID, "Choose a version to roll back to.")
	}
	k, err := s.store.RollbackKey(c.Request().Context(), s.actor(c), id, version, 0)
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/keys/%s?rolledback=%d", k.ID, k.CurrentVersion))
}

func (s *Server) keyVerify(c echo.Context) error {
	id := c.Param("id")
	ctx := c.Request().Context()
	if note := c.FormValue("note"); c.FormValue("manual") != "" {
		if err := s.store.MarkVerified(ctx, s.actor(c), id, note); err != nil {
			if keyledger.ErrorCode(err) == keyledger.EINVALID {
				return s.renderKeyDetailWith(c, id, http.StatusUnprocessableEntity, detailExtras{noteErr: keyledger.FieldErrors(err)["note"], note: note})
			}
			return err
		}
		return c.Redirect(http.StatusSeeOther, "/keys/"+id+"?verified=manual")
	}
	res, err := s.store.VerifyKey(ctx, s.actor(c), id, s.cfg.Verifier)
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/keys/"+id+"?verified="+res.Result)
}

func (s *Server) rotationPage(c echo.Context) error {
	o, err := s.store.RotationOverview(c.Request().Context(), s.actor(c))
	if err != nil {
		return err
	}
	titles := map[string][2]string{
		"overdue":  {"Overdue", "No key is overdue."},
		"due_soon": {"Due within 14 days", "Nothing is due in the next 14 days."},
		"ok":       {"Not due yet", "No other keys."},
	}
	var groups []templates.RotationGroup
	for _, g := range o.Groups {
		t := titles[g.Status]
		groups = append(groups, templates.RotationGroup{Status: g.Status, Title: t[0], Empty: t[1], Keys: g.Keys, Total: g.Total})
	}
	var key any
	if len(o.Groups) > 0 {
		key = &o.Groups[0]
	}
	p := s.page(c, "Rotation", "rotation")
	body, err := s.rotationBody.render(c.Request().Context(), key, templates.RotationBody(p.Now, groups))
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, templates.SharedPage(p, body))
}

func (s *Server) exportPage(c echo.Context) error {
	v := templates.ExportView{Environment: c.QueryParam("environment"), Project: c.QueryParam("project"), Format: "dotenv"}
	return s.renderExport(c, http.StatusOK, v)
}

func (s *Server) renderExport(c echo.Context, status int, v templates.ExportView) error {
	ctx := c.Request().Context()
	var err error
	if v.Environment != "" && v.Refused == nil {
		prev, err := s.store.ExportPreview(ctx, s.actor(c), v.Environment, v.Project)
		if err != nil && keyledger.ErrorCode(err) != keyledger.EINVALID {
			return err
		}
		for _, k := range prev.Included {
			row := templates.RefusedRow{Name: k.Name, Project: k.Project, Owner: k.OwnerEmail}
			for _, p := range prev.FormatProblems[k.ID] {
				row.Notes = append(row.Notes, "not in "+p.Format.Label()+": "+p.Reason)
			}
			v.Included = append(v.Included, row)
		}
		for _, r := range prev.Refused {
			v.Refused = append(v.Refused, templates.RefusedRow{Name: r.Key.Name, Project: r.Key.Project, Owner: r.Key.OwnerEmail, Reason: r.Reason})
		}
		v.ReasonRequired = prev.Environment.ReasonRequired
		v.Previewed = err == nil
		v.StepUpNeeded = v.Previewed && (s.stepUpNeeded(c, prev.Environment) || v.Errors["step_up"] != "")
	}
	if v.Environments, err = s.store.Environments(ctx, s.actor(c)); err != nil {
		return err
	}
	if v.Projects, err = s.store.Projects(ctx, s.actor(c)); err != nil {
		return err
	}
	for _, f := range keyledger.ExportFormats() {
		v.Formats = append(v.Formats, templates.Option{Value: string(f), Label: f.Label()})
	}
	return render(c, status, templates.ExportPage(s.page(c, "Export", "export"), v))
}

func (s *Server) export(c echo.Context) error {
	v := templates.ExportView{Environment: c.FormValue("environment"), Project: c.FormValue("project"), Format: c.FormValue("format"), Reason: c.FormValue("reason")}
	format, ok := keyledger.ParseExportFormat(v.Format)
	if !ok {
		v.Errors = map[string]string{"format": "Choose " + exportFormatList() + "."}
		return s.renderExport(c, http.StatusUnprocessableEntity, v)
	}
	if secret := c.FormValue("step_up"); secret != "" {
		// Confirm it is you first; a wrong password or code answers 401
		// (see account.go).
		fieldErr, err := s.doStepUp(c, secret)
		if err != nil {
			return err
		}
		if fieldErr != "" {
			v.Errors = map[string]string{"step_up": fieldErr}
			return s.renderExport(c, http.StatusUnauthorized, v)
		}
	}
	res, err := s.store.ExportKeys(c.Request().Context(), s.actor(c), v.Environment, v.Project, v.Reason, format)
	if err != nil {
		if keyledger.ErrorCode(err) == keyledger.EINVALID {
			v.Errors = keyledger.FieldErrors(err)
			v.Message = keyledger.ErrorMessage(err)
			return s.renderExport(c, http.StatusUnprocessableEntity, v)
		}
		if stepUpRequired(err) {
			// Signed in, but this session's password entry is too old for
			// a sensitive environment: 403 with the field to confirm.
			v.Errors = keyledger.FieldErrors(err)
			v.Message = keyledger.ErrorMessage(err)
			return s.renderExport(c, http.StatusForbidden, v)
		}
		return err
	}
	s.metrics.exported(res.Environment.Name, len(res.Entries))
	for _, r := range res.Refused {
		v.Refused = append(v.Refused, templates.RefusedRow{Name: r.Key.Name, Project: r.Key.Project, Owner: r.Key.OwnerEmail, Reason: r.Reason})
	}
	if len(res.Entries) == 0 {
		v.Message = "You may not reveal any key in " + res.Environment.Name + matchProject(v.Project) + ", so there is nothing to download."
		for _, r := range res.Refused {
			if strings.HasPrefix(r.Reason, "cannot be written") {
				v.Message = "No key of " + res.Environment.Name + matchProject(v.Project) + " can be written as " + format.Label() + ", so there is nothing to download: see below why, or choose another format."
				// The preview lists each key with the formats that
				// cannot carry it.
				v.Refused = nil
				break
			}
		}
		return s.renderExport(c, http.StatusOK, v)
	}
	name := fmt.Sprintf("keyledger-%s%s-%s%s", res.Environment.Name, projectSlug(v.Project), s.store.Now().UTC().Format("20060102"), exportExt(format))
	h := c.Response().Header()
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	ctype := "text/plain; charset=utf-8"
	if format == keyledger.FormatJSON {
		ctype = "application/json"
	}
	return c.Blob(http.StatusOK, ctype, res.File)
}

func matchProject(p string) string {
	if p == "" {
		return ""
	}
	return " for project " + p
}

func projectSlug(p string) string {
	if p == "" {
		return ""
	}
	var b strings.Builder
	b.WriteByte('-')
	for _, r := range strings.ToLower(p) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

func exportExt(f keyledger.ShellFormat) string {
	switch f {
	case keyledger.FormatDotenv:
		return ".env"
	case keyledger.FormatBash:
		return ".sh"
	case keyledger.FormatFish:
		return ".fish"
	case keyledger.FormatPowerShell:
		return ".ps1"
	case keyledger.FormatJSON:
		return ".json"
	case keyledger.FormatEnvFile:
		// Not .env: docker's format is not dotenv, and a tool that finds
		// a .env file would read it with dotenv rules.
		return ".envfile"
	}
	return ".txt"
}

// exportFormatList names the export formats for a field error.
func exportFormatList() string {
	var names []string
	for _, f := range keyledger.ExportFormats() {
		names = append(names, string(f))
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
