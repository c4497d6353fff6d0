package web

import (
	"context"
	"fmt"
	"html"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/a-h/templ"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/templates"
	"github.com/labstack/echo/v4"
)

func (s *Server) keyList(c echo.Context) error {
	ctx := c.Request().Context()
	f := keyFilterFrom(c)
	f.Page, _ = strconv.Atoi(c.QueryParam("page"))
	f.PerPage = 50
	p := s.page(c, "Keys", "keys")
	// The list as of the epoch this request read with its session: kept
	// rendered (store/epochcache.go) for every viewer with the same
	// audience, cut where each viewer's CSRF token goes. Relative times
	// ("due in 3 days") are as of the minute. Without a session's epoch
	// (0) nothing is kept.
	a := s.actor(c)
	menus, err := s.keyListMenus.Get(ctx, a.Epochs.List, p.Now, "", func(ctx context.Context) (store.KeyListMenus, error) {
		return s.store.KeyListMenus(ctx, a)
	})
	if err != nil {
		return err
	}
	key := templates.KeyListAudience(p.User, listColumns(menus.Environments, f)) + fmt.Sprintf("%#v", f)
	body, err := s.keyListBodies.Get(ctx, a.Epochs.List, p.Now, key, func(ctx context.Context) (keptBody, error) {
		hp := p
		hp.CSRF = s.csrfHole
		out, err := s.keyListBody(ctx, a, hp, f, menus)
		return keptBody(strings.Split(out, s.csrfHole)), err
	})
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, templates.KeyListPage(p, body.with(p.CSRF)))
}

// keptBody is a rendered body cut at each place a viewer's CSRF token
// goes, so serving it is writing the parts with the token between them
// (searching 40 KB for the placeholder per view cost a fifth of the
// server's time).
type keptBody []string

func (b keptBody) with(csrf string) templ.Component {
	tok := html.EscapeString(csrf)
	return templ.ComponentFunc(func(_ context.Context, w io.Writer) error {
		for i, part := range b {
			if i > 0 {
				if _, err := io.WriteString(w, tok); err != nil {
					return err
				}
			}
			if _, err := io.WriteString(w, part); err != nil {
				return err
			}
		}
		return nil
	})
}

// listColumns is one column per environment, in the configured order;
// filtering on one leaves its column only.
func listColumns(envs []keyledger.Environment, f store.KeyFilter) []keyledger.Environment {
	var out []keyledger.Environment
	for _, e := range envs {
		if f.Environment == "" || e.Name == keyledger.NormalizeEnvironmentName(f.Environment) {
			out = append(out, e)
		}
	}
	return out
}

// keyListBody reads one page of the list and renders it (KeyListBody)
// with the filter menus already read.
func (s *Server) keyListBody(ctx context.Context, a keyledger.Actor, p templates.Page, f store.KeyFilter, menus store.KeyListMenus) (string, error) {
	res, err := s.store.ListKeyGroups(ctx, a, f)
	if err != nil {
		return "", err
	}
	v := templates.KeyListView{
		Matching: res.Matching, All: res.All, Page: res.Page, Pages: res.Pages(),
		Filter: templates.KeyFilterView{Environment: f.Environment, Owner: f.OwnerEmail, Provider: f.Provider, Project: f.Project,
			Q: f.Q, Status: f.Status, Sort: f.Sort, Desc: f.Desc},
		Environments: menus.Environments, Owners: menus.Owners, Projects: menus.Projects,
		Providers: []string{"openai", "anthropic", "stripe", "github", "aws", "other"},
	}
	v.Columns = listColumns(menus.Environments, f)
	v.Rows = make([]templates.KeyRow, len(res.Groups))
	for i, g := range res.Groups {
		v.Rows[i] = templates.KeyRow{Name: g.Name, Project: g.Project, Keys: g.Keys}
	}
	var sb strings.Builder
	if err := templates.KeyListBody(p, v).Render(ctx, &sb); err != nil {
		return "", err
	}
	return sb.String(), nil
}

func (s *Server) keyFormData(c echo.Context, f *templates.KeyForm) error {
	ctx := c.Request().Context()
	var err error
	if f.Environments, err = s.store.Environments(ctx, s.actor(c)); err != nil {
		return err
	}
	f.Owners, err = s.store.ActiveUsers(ctx, s.actor(c))
	return err
}

func (s *Server) keyNew(c echo.Context) error {
	// The inventory's "register it" prefills what the provider told us
	// about a shadow key (never a value: keyledger has none).
	f := templates.KeyForm{Input: keyledger.KeyInput{OwnerEmail: currentUser(c).Email, Environment: c.QueryParam("environment"),
		Name: c.QueryParam("name"), Provider: c.QueryParam("provider"), Project: c.QueryParam("project")}}
	if err := s.keyFormData(c, &f); err != nil {
		return err
	}
	return render(c, http.StatusOK, templates.KeyFormPage(s.page(c, "Register a key", "new"), f))
}

func keyInput(c echo.Context) keyledger.KeyInput {
	return keyledger.KeyInput{
		Name:         c.FormValue("name"),
		Provider:     c.FormValue("provider"),
		Project:      c.FormValue("project"),
		Environment:  c.FormValue("environment"),
		OwnerEmail:   c.FormValue("owner"),
		Value:        c.FormValue("value"),
		Scope:        c.FormValue("scope"),
		RotationDays: c.FormValue("rotation_days"),
		Description:  c.FormValue("description"),
		// The box the form shows after warning about whitespace.
		KeepWhitespace: c.FormValue("keep_whitespace") != "",
	}
}

// formFailure re-renders a form with its field errors for validation and
// conflict errors, and passes anything else to the error handler.
func formFailure(err error) (int, map[string]string, string, bool) {
	code := keyledger.ErrorCode(err)
	if code != keyledger.EINVALID && code != keyledger.ECONFLICT {
		return 0, nil, "", false
	}
	fields := keyledger.FieldErrors(err)
	msg := keyledger.ErrorMessage(err)
	return statusOf(code), fields, msg, true
}

func (s *Server) keyCreate(c echo.Context) error {
	in := keyInput(c)
	res, err := s.store.CreateKey(c.Request().Context(), s.actor(c), in)
	if err != nil {
		status, fields, msg, ok := formFailure(err)
		if !ok {
			return err
		}
		// The value is never echoed back into the page.
		in.Value = ""
		f := templates.KeyForm{Input: in, Errors: fields, Message: msg}
		if err := s.keyFormData(c, &f); err != nil {
			return err
		}
		return render(c, status, templates.KeyFormPage(s.page(c, "Register a key", "new"), f))
	}
	// Post/redirect/get: a reload of the key page must not resubmit.
	return c.Redirect(http.StatusSeeOther, "/keys/"+res.Key.ID+"?registered=1")
}

func (s *Server) keyDetail(c echo.Context) error {
	return s.renderKeyDetailWith(c, c.Param("id"), http.StatusOK, detailExtras{flash: flashFromQuery(c)})
}

// flashFromQuery turns the markers that redirects after a POST leave in
// the URL into messages (no message text ever travels in the URL).
func flashFromQuery(c echo.Context) []templates.Flash {
	q := c.QueryParams()
	var out []templates.Flash
	if q.Get("registered") != "" {
		out = append(out, templates.Flash{Kind: "ok", Message: "Registered. The value is encrypted; reveal it below when you need it."})
	}
	if v := q.Get("rotated"); v != "" {
		out = append(out, templates.Flash{Kind: "ok", Message: "Rotated: version " + digits(v) + " is now current. Roll it out, then revoke the old key at the provider."})
	}
	if v := q.Get("rolledback"); v != "" {
		out = append(out, templates.Flash{Kind: "ok", Message: "Rolled back: version " + digits(v) + " is current again."})
	}
	if v := q.Get("provider_rotated"); v != "" {
		out = append(out, templates.Flash{Kind: "ok", Message: "Rotated at the provider: version " + digits(v) + " is a new service account key, now current. The old key keeps working there until its grace period ends; then keyledger deletes it at the provider."})
	}
	switch q.Get("auto_rotate") {
	case "on":
		out = append(out, templates.Flash{Kind: "ok", Message: "Automated rotation at the provider is on for this key."})
	case "off":
		out = append(out, templates.Flash{Kind: "ok", Message: "Automated rotation at the provider is off for this key."})
	}
	switch q.Get("provider_revoked") {
	case "":
	case "already":
		out = append(out, templates.Flash{Kind: "ok", Message: "Already revoked at the provider by keyledger; nothing more to do."})
	default:
		out = append(out, templates.Flash{Kind: "ok", Message: "Revoked at the provider. Programs still using that key will now fail; archive the key here too once nothing needs it."})
	}
	switch q.Get("verified") {
	case "":
	case keyledger.VerifyOK:
		out = append(out, templates.Flash{Kind: "ok", Message: "Verified: the provider accepted the key."})
	case keyledger.VerifyManual:
		out = append(out, templates.Flash{Kind: "ok", Message: "Marked as verified by hand."})
	default:
		out = append(out, templates.Flash{Kind: "warn", Message: "Checked: the result is below."})
	}
	return out
}

func digits(s string) string {
	if _, err := strconv.Atoi(s); err != nil {
		return "?"
	}
	return s
}

type detailExtras struct {
	reason, reasonErr string
	note, noteErr     string
	flash             []templates.Flash
	// stepUpErr and stepUpMsg explain a refused or failed step-up.
	stepUpErr, stepUpMsg string
	// providerRevoke is a revoke-at-the-provider form coming back.
	providerRevoke templates.ProviderRevokeForm
	// rotateFailure says why a rotation at the provider (or turning it
	// on) was refused just now, in plain words.
	rotateFailure string
}

func (s *Server) renderKeyDetailWith(c echo.Context, id string, status int, x detailExtras) error {
	ctx := c.Request().Context()
	actor := s.actor(c)
	k, err := s.store.GetKey(ctx, actor, id)
	if err != nil {
		return err
	}
	versions, err := s.store.KeyVersions(ctx, actor, id)
	if err != nil {
		return err
	}
	viewers, err := s.store.KeyViewers(ctx, actor, id, 100)
	if err != nil {
		return err
	}
	v := templates.KeyDetailView{Key: k, Versions: versions, Viewers: viewers, Reason: x.reason, ReasonError: x.reasonErr, Note: x.note, NoteError: x.noteErr,
		CanEdit: keyledger.CanEditKey(actor.User, k.OwnerID) == nil, Now: s.store.Now()}
	if err := keyledger.CanReveal(actor.User, k.EnvironmentInfo, k.OwnerID); err != nil {
		v.RevealRefusal = keyledger.ErrorMessage(err)
	} else {
		v.RevealAllowed = true
	}
	v.StepUpNeeded = s.stepUpNeeded(c, k.EnvironmentInfo) || x.stepUpErr != ""
	v.StepUpError, v.StepUpMessage = x.stepUpErr, x.stepUpMsg
	if v.AtProvider, err = s.store.KeysAtProvider(ctx, actor, k); err != nil {
		return err
	}
	v.CanProviderRevoke = v.CanEdit && s.cfg.ProviderAdmin != nil && s.cfg.ProviderAdmin.Supports(k.Provider)
	v.ProviderStepUpNeeded = keyledger.ErrorCode(keyledger.CanProviderRevoke(actor, &k.EnvironmentInfo, k.OwnerID, s.store.Now())) == keyledger.ESTEPUP
	v.ProviderRevoke = x.providerRevoke
	if err := s.rotationView(c, k, &v, x.rotateFailure); err != nil {
		return err
	}
	v.CanVerify = s.cfg.Verifier != nil && s.cfg.Verifier.Supports(k.Provider) && (v.RevealAllowed || v.CanEdit)
	p := s.page(c, k.Name, "keys")
	p.Flash = x.flash
	if !k.Archived() && keyledger.LiveKeyMisplaced(k.MaskedHint, k.EnvironmentInfo) {
		p.Flash = append(p.Flash, templates.Flash{Kind: "warn", Message: keyledger.LiveKeyWarning(k.MaskedHint, k.Environment)})
	}
	return render(c, status, templates.KeyDetailPage(p, v))
}

func (s *Server) keyEdit(c echo.Context) error {
	k, err := s.store.GetKey(c.Request().Context(), s.actor(c), c.Param("id"))
	if err != nil {
		return err
	}
	if err := keyledger.CanEditKey(currentUser(c), k.OwnerID); err != nil {
		return err
	}
	days := ""
	if k.RotationDays > 0 {
		days = strconv.Itoa(k.RotationDays)
	}
	f := templates.KeyForm{Key: k, Input: keyledger.KeyInput{Project: k.Project, OwnerEmail: k.OwnerEmail, Scope: k.Scope,
		RotationDays: days, Description: k.Description}}
	if err := s.keyFormData(c, &f); err != nil {
		return err
	}
	return render(c, http.StatusOK, templates.KeyFormPage(s.page(c, "Edit "+k.Name, "keys"), f))
}

func (s *Server) keyUpdate(c echo.Context) error {
	in := keyInput(c)
	k, err := s.store.UpdateKey(c.Request().Context(), s.actor(c), c.Param("id"), in)
	if err != nil {
		status, fields, msg, ok := formFailure(err)
		if !ok {
			return err
		}
		cur, gerr := s.store.GetKey(c.Request().Context(), s.actor(c), c.Param("id"))
		if gerr != nil {
			return gerr
		}
		f := templates.KeyForm{Key: cur, Input: in, Errors: fields, Message: msg}
		if err := s.keyFormData(c, &f); err != nil {
			return err
		}
		return render(c, status, templates.KeyFormPage(s.page(c, "Edit "+cur.Name, "keys"), f))
	}
	return c.Redirect(http.StatusSeeOther, "/keys/"+k.ID)
}

func (s *Server) keyArchive(c echo.Context) error {
	id := c.Param("id")
	if err := s.store.ArchiveKey(c.Request().Context(), s.actor(c), id); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/keys/"+id)
}

func (s *Server) keyReveal(c echo.Context) error {
	if wantsJSON(c) {
		return s.keyCopyLine(c)
	}
	id := c.Param("id")
	reason := c.FormValue("reason")
	version := 0
	if v := c.FormValue("version"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return keyledger.Errorf(keyledger.EINVALID, "The version to reveal is not a number.")
		}
		version = n
	}
	if secret := c.FormValue("step_up"); secret != "" {
		// Confirm it is you first; a wrong password or code answers 401
		// (see account.go).
		fieldErr, err := s.doStepUp(c, secret)
		if err != nil {
			return err
		}
		if fieldErr != "" {
			return s.renderKeyDetailWith(c, id, http.StatusUnauthorized, detailExtras{reason: strings.TrimSpace(reason), stepUpErr: fieldErr})
		}
	}
	rev, err := s.store.RevealVersion(c.Request().Context(), s.actor(c), id, version, reason)
	if err != nil {
		if keyledger.ErrorCode(err) == keyledger.EINVALID && keyledger.FieldErrors(err)["reason"] != "" {
			return s.renderKeyDetailWith(c, id, http.StatusUnprocessableEntity, detailExtras{reason: strings.TrimSpace(reason), reasonErr: keyledger.FieldErrors(err)["reason"]})
		}
		if stepUpRequired(err) {
			// Signed in, but this session's password entry is too old for
			// a sensitive environment: 403 with the field to confirm.
			return s.renderKeyDetailWith(c, id, http.StatusForbidden, detailExtras{reason: strings.TrimSpace(reason),
				stepUpErr: keyledger.FieldErrors(err)["step_up"], stepUpMsg: keyledger.ErrorMessage(err)})
		}
		return err
	}
	s.metrics.revealed(rev.Key.Environment)
	name := keyledger.EnvVarName(rev.Key.Provider, rev.Key.Name, rev.Value)
	v := templates.RevealView{Key: rev.Key, Version: rev.Version, Value: rev.Value, VarName: name}
	for _, f := range keyledger.ShellFormats() {
		line, err := keyledger.FormatAssignment(f, name, rev.Value)
		pl := templates.PasteLine{ID: string(f), Label: f.Label(), Line: line}
		if err != nil {
			pl.Problem = err.Error()
		}
		v.Lines = append(v.Lines, pl)
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	return render(c, http.StatusOK, templates.RevealPage(s.page(c, rev.Key.Name, "keys"), v))
}
