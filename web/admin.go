package web

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
	"github.com/keyledger/keyledger/templates"
	"github.com/labstack/echo/v4"
)

// Admin pages: users, role policies, environments. The store enforces
// who may act; every handler also checks keyledger.CanAdminister before
// looking anything up, so that a non-admin learns nothing (not even
// whether a user id exists) and always gets 403.

func (s *Server) requireAdmin(c echo.Context) error {
	return keyledger.CanAdminister(currentUser(c))
}

func (s *Server) adminUsers(c echo.Context) error {
	if err := s.requireAdmin(c); err != nil {
		return err
	}
	return s.renderAdminUsers(c, http.StatusOK, templates.AdminUsersView{Create: templates.NewUserForm{Role: string(keyledger.RoleMember), Mode: "link"}})
}

func (s *Server) renderAdminUsers(c echo.Context, status int, v templates.AdminUsersView) error {
	ctx := c.Request().Context()
	var err error
	if v.Users, err = s.store.ListUsers(ctx, s.actor(c)); err != nil {
		return err
	}
	if v.Policies, err = s.store.RolePolicies(ctx, s.actor(c)); err != nil {
		return err
	}
	v.Roles = keyledger.Roles()
	v.Me = currentUser(c).ID
	p := s.page(c, "Users", "admin")
	q := c.QueryParams()
	for _, f := range []struct{ key, msg string }{
		{"created", "User added."},
		{"role", "Role changed."},
		{"deactivated", "User deactivated; their sessions ended."},
		{"reactivated", "User reactivated. They can sign in again with their password (or send them a set-password link)."},
		{"policies", "Two-factor policy saved."},
		{"totp_reset", "Two-factor sign-in reset; the user's sessions ended and they were told. They sign in with their password and set up a new device."},
		{"totp_reset_untold", "Two-factor sign-in reset; the user's sessions ended. Telling them failed (see the server log): tell them yourself."},
	} {
		if q.Get(f.key) != "" {
			p.Flash = append(p.Flash, templates.Flash{Kind: "ok", Message: f.msg})
		}
	}
	return render(c, status, templates.AdminUsersPage(p, v))
}

// adminTarget parses :uid and finds the user.
func (s *Server) adminTarget(c echo.Context) (*keyledger.User, error) {
	id, err := strconv.ParseInt(c.Param("uid"), 10, 64)
	if err != nil || id < 1 {
		return nil, keyledger.ErrNotFound("User")
	}
	return s.store.UserByID(c.Request().Context(), s.actor(c), id)
}

// adminRowFailure re-renders the users page with the refusal next to the
// user's row (conflicts, e.g. the last admin) or passes the error on.
func (s *Server) adminRowFailure(c echo.Context, userID int64, err error) error {
	if stepUpRequired(err) {
		return confirmFirst(c)
	}
	code := keyledger.ErrorCode(err)
	if code != keyledger.ECONFLICT && code != keyledger.EINVALID {
		return err
	}
	msg := keyledger.ErrorMessage(err)
	return s.renderAdminUsers(c, statusOf(code), templates.AdminUsersView{
		Message: msg, RowErrors: map[int64]string{userID: msg},
		Create: templates.NewUserForm{Role: string(keyledger.RoleMember), Mode: "link"}})
}

// confirmFirst sends an admin whose session is too old for the action to
// confirm it is them, then back to the users page to do it again.
func confirmFirst(c echo.Context) error {
	return c.Redirect(http.StatusSeeOther, "/step-up?next="+url.QueryEscape("/admin/users"))
}

func (s *Server) adminCreateUser(c echo.Context) error {
	if err := s.requireAdmin(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	f := templates.NewUserForm{Email: strings.TrimSpace(c.FormValue("email")), Name: c.FormValue("name"), Role: c.FormValue("role"), Mode: c.FormValue("mode")}
	in := keyledger.NewUser{Email: f.Email, Name: f.Name, Role: keyledger.Role(strings.ToLower(strings.TrimSpace(f.Role)))}
	switch f.Mode {
	case "password":
		in.Password = c.FormValue("password")
	case "link", "":
		f.Mode = "link"
		// Nobody knows this password: the person sets theirs through the
		// link.
		pw, err := crypto.RandomToken(32)
		if err != nil {
			return err
		}
		in.Password = pw
	default:
		f.Errors = map[string]string{"mode": "Choose a set-password link or an initial password."}
		return s.renderAdminUsers(c, http.StatusUnprocessableEntity, templates.AdminUsersView{Create: f})
	}
	u, err := s.store.CreateUser(ctx, s.actor(c), in)
	if stepUpRequired(err) {
		return confirmFirst(c)
	}
	if err != nil {
		status, fields, msg, ok := formFailure(err)
		if !ok {
			return err
		}
		f.Errors, f.Message = fields, msg
		return s.renderAdminUsers(c, status, templates.AdminUsersView{Create: f})
	}
	if f.Mode == "password" {
		return c.Redirect(http.StatusSeeOther, "/admin/users?created=1")
	}
	return s.showPasswordLink(c, u, true)
}

// showPasswordLink makes a set-password link for u and shows it once.
func (s *Server) showPasswordLink(c echo.Context, u *keyledger.User, created bool) error {
	token, expires, err := s.store.CreatePasswordLink(c.Request().Context(), s.actor(c), u.ID)
	if err != nil {
		return err
	}
	c.Response().Header().Set("Cache-Control", "no-store")
	v := templates.PasswordLinkView{Email: u.Email, Link: s.baseURL(c) + "/set-password/" + token, Expires: expires, Created: created}
	return render(c, http.StatusOK, templates.PasswordLinkPage(s.page(c, "Set-password link", "admin"), v))
}

// baseURL is the public URL of the instance: the configured one, or the
// one this request came to.
func (s *Server) baseURL(c echo.Context) string {
	if s.cfg.BaseURL != "" {
		return strings.TrimRight(s.cfg.BaseURL, "/")
	}
	scheme := "http"
	if c.Request().TLS != nil || s.cfg.SecureCookies {
		scheme = "https"
	}
	return scheme + "://" + c.Request().Host
}

func (s *Server) adminSetRole(c echo.Context) error {
	if err := s.requireAdmin(c); err != nil {
		return err
	}
	u, err := s.adminTarget(c)
	if err != nil {
		return err
	}
	if _, err := s.store.SetRole(c.Request().Context(), s.actor(c), u.ID, keyledger.Role(strings.ToLower(strings.TrimSpace(c.FormValue("role"))))); err != nil {
		return s.adminRowFailure(c, u.ID, err)
	}
	return c.Redirect(http.StatusSeeOther, "/admin/users?role=1")
}

func (s *Server) adminDeactivate(c echo.Context) error {
	if err := s.requireAdmin(c); err != nil {
		return err
	}
	u, err := s.adminTarget(c)
	if err != nil {
		return err
	}
	if _, err := s.store.DeactivateUser(c.Request().Context(), s.actor(c), u.Email); err != nil {
		return s.adminRowFailure(c, u.ID, err)
	}
	return c.Redirect(http.StatusSeeOther, "/admin/users?deactivated=1")
}

func (s *Server) adminReactivate(c echo.Context) error {
	if err := s.requireAdmin(c); err != nil {
		return err
	}
	u, err := s.adminTarget(c)
	if err != nil {
		return err
	}
	if _, err := s.store.ReactivateUser(c.Request().Context(), s.actor(c), u.ID); err != nil {
		return s.adminRowFailure(c, u.ID, err)
	}
	return c.Redirect(http.StatusSeeOther, "/admin/users?reactivated=1")
}

func (s *Server) adminPasswordLink(c echo.Context) error {
	if err := s.requireAdmin(c); err != nil {
		return err
	}
	u, err := s.adminTarget(c)
	if err != nil {
		return err
	}
	if err := s.showPasswordLink(c, u, false); err != nil {
		return s.adminRowFailure(c, u.ID, err)
	}
	return nil
}

// adminResetTOTP turns off a user's two-factor sign-in (lost device, or
// a device a thief enrolled) and tells the user, so that a reset they did
// not ask for does not go unnoticed.
func (s *Server) adminResetTOTP(c echo.Context) error {
	if err := s.requireAdmin(c); err != nil {
		return err
	}
	u, err := s.adminTarget(c)
	if err != nil {
		return err
	}
	ctx := c.Request().Context()
	admin := currentUser(c)
	reset, err := s.store.ResetTOTP(ctx, s.actor(c), u.ID)
	if err != nil {
		return s.adminRowFailure(c, u.ID, err)
	}
	u = reset
	if s.cfg.Notifier == nil {
		return c.Redirect(http.StatusSeeOther, "/admin/users?totp_reset_untold=1")
	}
	note := keyledger.Notification{Kind: keyledger.NoticeTOTPReset, OwnerEmail: u.Email, OwnerName: u.Name,
		VerifyMsg: admin.Email, URL: s.baseURL(c) + "/profile/2fa", Recipients: []string{u.Email}}
	if err := s.cfg.Notifier.Notify(ctx, note); err != nil {
		// The reset stands (it is audited); the admin is asked to tell
		// the user themselves.
		s.log.ErrorContext(ctx, "tell a user their two-factor sign-in was reset", "request_id", requestID(c), "user_id", u.ID, "err", err)
		return c.Redirect(http.StatusSeeOther, "/admin/users?totp_reset_untold=1")
	}
	return c.Redirect(http.StatusSeeOther, "/admin/users?totp_reset=1")
}

func (s *Server) adminRolePolicies(c echo.Context) error {
	if err := s.requireAdmin(c); err != nil {
		return err
	}
	ctx := c.Request().Context()
	form, err := c.FormParams()
	if err != nil {
		return err
	}
	want := map[keyledger.Role]bool{}
	for _, r := range form["require_totp"] {
		role, ok := keyledger.ParseRole(r)
		if !ok {
			return keyledger.Errorf(keyledger.EINVALID, "%q is not a role.", r)
		}
		want[role] = true
	}
	have, err := s.store.RolePolicies(ctx, s.actor(c))
	if err != nil {
		return err
	}
	// Only changes are written (and audited).
	for _, r := range keyledger.Roles() {
		if have[r] != want[r] {
			if err := s.store.SetRolePolicy(ctx, s.actor(c), r, want[r]); err != nil {
				return err
			}
		}
	}
	return c.Redirect(http.StatusSeeOther, "/admin/users?policies=1")
}

// Environments.

func (s *Server) adminEnvironments(c echo.Context) error {
	if err := s.requireAdmin(c); err != nil {
		return err
	}
	return s.renderAdminEnvironments(c, http.StatusOK, "", templates.EnvironmentForm{}, templates.EnvironmentForm{
		Input: keyledger.EnvironmentInput{RevealPolicy: string(keyledger.RevealOwnerLeadsAdmins), ReasonRequired: true, RotationDays: "90"}})
}

// renderAdminEnvironments shows the page; failedName names the row whose
// form failed (its input and errors in failed), create is the create
// form's state.
func (s *Server) renderAdminEnvironments(c echo.Context, status int, failedName string, failed, create templates.EnvironmentForm) error {
	envs, err := s.store.Environments(c.Request().Context(), s.actor(c))
	if err != nil {
		return err
	}
	v := templates.AdminEnvironmentsView{Create: create}
	for _, e := range envs {
		row := templates.EnvironmentRow{Env: e, Form: templates.EnvironmentForm{Input: keyledger.EnvironmentInput{Name: e.Name,
			RevealPolicy: string(e.RevealPolicy), ReasonRequired: e.ReasonRequired, Sensitive: e.Sensitive, RotationDays: strconv.Itoa(e.RotationDays),
			AllowTokenReveal: e.AllowTokenReveal}}}
		if e.Name == failedName {
			row.Form = failed
		}
		v.Rows = append(v.Rows, row)
	}
	p := s.page(c, "Environments", "admin")
	if c.QueryParam("saved") != "" {
		p.Flash = append(p.Flash, templates.Flash{Kind: "ok", Message: "Saved. The change applies from the next reveal."})
	}
	if c.QueryParam("created") != "" {
		p.Flash = append(p.Flash, templates.Flash{Kind: "ok", Message: "Environment added."})
	}
	return render(c, status, templates.AdminEnvironmentsPage(p, v))
}

func envInput(c echo.Context) keyledger.EnvironmentInput {
	return keyledger.EnvironmentInput{
		Name:           c.FormValue("name"),
		RevealPolicy:   c.FormValue("reveal_policy"),
		ReasonRequired: c.FormValue("reason_required") != "",
		Sensitive:      c.FormValue("sensitive") != "",
		RotationDays:   c.FormValue("rotation_days"),
		// Unticked is off: token reveals in a sensitive environment skip
		// the step-up, so they are never on by default.
		AllowTokenReveal: c.FormValue("allow_token_reveal") != "",
	}
}

func (s *Server) adminCreateEnvironment(c echo.Context) error {
	if err := s.requireAdmin(c); err != nil {
		return err
	}
	in := envInput(c)
	if _, err := s.store.CreateEnvironment(c.Request().Context(), s.actor(c), in); err != nil {
		status, fields, msg, ok := formFailure(err)
		if !ok {
			return err
		}
		return s.renderAdminEnvironments(c, status, "", templates.EnvironmentForm{}, templates.EnvironmentForm{Input: in, Errors: fields, Message: msg})
	}
	return c.Redirect(http.StatusSeeOther, "/admin/environments?created=1")
}

func (s *Server) adminUpdateEnvironment(c echo.Context) error {
	if err := s.requireAdmin(c); err != nil {
		return err
	}
	name := keyledger.NormalizeEnvironmentName(c.Param("name"))
	in := envInput(c)
	in.Name = name
	if _, err := s.store.UpdateEnvironment(c.Request().Context(), s.actor(c), name, in); err != nil {
		status, fields, msg, ok := formFailure(err)
		if !ok {
			return err
		}
		return s.renderAdminEnvironments(c, status, name, templates.EnvironmentForm{Input: in, Errors: fields, Message: msg},
			templates.EnvironmentForm{Input: keyledger.EnvironmentInput{RevealPolicy: string(keyledger.RevealOwnerLeadsAdmins), ReasonRequired: true, RotationDays: "90"}})
	}
	return c.Redirect(http.StatusSeeOther, "/admin/environments?saved=1")
}
