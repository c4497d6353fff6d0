package web

import (
	"bytes"
	"encoding/base64"
	"errors"
	"image/png"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/templates"
	"github.com/labstack/echo/v4"
	"github.com/pquerna/otp"
)

// Status codes of the account pages, chosen once:
//
//   - A wrong second factor at sign-in, and a wrong password or code given
//     to confirm it is you (step-up), answer 401: a credential was offered
//     and refused, as at POST /login.
//   - A reveal or export that needs a step-up nobody offered answers 403:
//     the person is signed in, the action is refused until they confirm;
//     the page shows the field to do so.
//   - Form mistakes (a mismatched confirmation, a wrong current password
//     on the change form) answer 422, like every other form.

// pendingTOTP reports whether the request holds a half-finished sign-in.
func pendingTOTP(c echo.Context) bool {
	st, ok := sessionState(c)
	return ok && st.PendingTOTP
}

func (s *Server) totpPage(c echo.Context) error {
	next := safeNextOrEmpty(c.QueryParam("next"))
	if !pendingTOTP(c) {
		if currentUser(c) != nil {
			return c.Redirect(http.StatusSeeOther, safeNext(next))
		}
		return c.Redirect(http.StatusSeeOther, "/login")
	}
	return render(c, http.StatusOK, templates.TOTPLoginPage(s.page(c, "Two-factor sign-in", "login"), templates.TOTPLoginView{Next: next}))
}

func (s *Server) totpSubmit(c echo.Context) error {
	next := safeNextOrEmpty(c.FormValue("next"))
	if !pendingTOTP(c) {
		if currentUser(c) != nil {
			return c.Redirect(http.StatusSeeOther, safeNext(next))
		}
		return c.Redirect(http.StatusSeeOther, "/login")
	}
	_, err := s.store.CompleteTOTP(c.Request().Context(), s.actor(c), sessionOf(c), c.FormValue("code"), s.cfg.Sessions)
	if err != nil {
		if errors.Is(err, store.ErrNoSession) {
			// The five minutes to type the code ran out.
			return c.Redirect(http.StatusSeeOther, "/login")
		}
		code := keyledger.ErrorCode(err)
		if code != keyledger.EUNAUTHORIZED && code != keyledger.ETOOMANY {
			return err
		}
		v := templates.TOTPLoginView{Next: next, Errors: keyledger.FieldErrors(err)}
		if code == keyledger.ETOOMANY {
			v.Message = keyledger.ErrorMessage(err)
			setRetryAfter(c, err)
		}
		return render(c, statusOf(code), templates.TOTPLoginPage(s.page(c, "Two-factor sign-in", "login"), v))
	}
	return c.Redirect(http.StatusSeeOther, safeNext(next))
}

// Set-password links. The token is in the path; the request log redacts
// it (see logPath).

func (s *Server) setPasswordPage(c echo.Context) error {
	token := c.Param("token")
	u, err := s.store.PasswordLinkUser(c.Request().Context(), token)
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, templates.SetPasswordPage(s.page(c, "Set your password", ""), templates.SetPasswordView{Token: token, Email: u.Email}))
}

func (s *Server) setPassword(c echo.Context) error {
	token := c.Param("token")
	ctx := c.Request().Context()
	u, err := s.store.PasswordLinkUser(ctx, token)
	if err != nil {
		return err
	}
	password := c.FormValue("password")
	fail := func(status int, fields map[string]string, msg string) error {
		return render(c, status, templates.SetPasswordPage(s.page(c, "Set your password", ""),
			templates.SetPasswordView{Token: token, Email: u.Email, Errors: fields, Message: msg}))
	}
	if password != c.FormValue("confirm") {
		return fail(http.StatusUnprocessableEntity, map[string]string{"confirm": "The two passwords differ."}, "")
	}
	if _, err := s.store.UsePasswordLink(ctx, s.actor(c), token, password); err != nil {
		status, fields, msg, ok := formFailure(err)
		if !ok {
			return err
		}
		return fail(status, fields, msg)
	}
	return c.Redirect(http.StatusSeeOther, "/login?set=1")
}

// Profile.

func (s *Server) profilePage(c echo.Context) error {
	return s.renderProfile(c, http.StatusOK, templates.ProfileView{ShellSaved: c.QueryParam("shell") == "saved"})
}

// newTokenForm is the create-token form as first shown.
func newTokenForm() templates.TokenForm {
	return templates.TokenForm{Scopes: []string{keyledger.ScopeRead}, Expires: templates.DefaultTokenExpiry}
}

func (s *Server) renderProfile(c echo.Context, status int, v templates.ProfileView) error {
	ctx := c.Request().Context()
	actor := s.actor(c)
	list, err := s.store.ListSessions(ctx, actor, actor.User.ID, sessionOf(c))
	if err != nil {
		return err
	}
	tokens, err := s.store.ListTokens(ctx, actor, actor.User.ID)
	if err != nil {
		return err
	}
	now := s.store.Now()
	for _, t := range tokens {
		v.Tokens = append(v.Tokens, templates.TokenRow{ID: t.ID, Name: t.Name, Hint: t.Hint, Scopes: t.Scopes, Created: t.CreatedAt,
			Expires: t.ExpiresAt, LastUsed: t.LastUsedAt, LastUsedIP: t.LastUsedIP, Expired: !now.Before(t.ExpiresAt)})
	}
	if v.TokenForm.Errors == nil && v.TokenForm.Message == "" {
		v.TokenForm = newTokenForm()
	}
	v.User = actor.User
	v.StepUpAt = actor.StepUpAt
	_, refused := v.TokenForm.Errors["current_password"]
	if v.NeedProof = !keyledger.FreshProof(actor, s.store.Now()) || refused; v.NeedProof {
		if v.HasPassword, err = s.store.HasPassword(ctx, actor); err != nil {
			return err
		}
	}
	if st, ok := sessionState(c); ok {
		v.MustEnrollTOTP = st.MustEnrollTOTP
	}
	for _, si := range list {
		v.Sessions = append(v.Sessions, templates.SessionRow{ID: si.ID, Device: device(si.UserAgent), UserAgent: si.UserAgent, IP: si.IP,
			Created: si.CreatedAt, LastSeen: si.LastSeenAt, Current: si.Current})
	}
	p := s.page(c, "Your profile", "profile")
	q := c.QueryParams()
	if q.Get("password") != "" {
		p.Flash = append(p.Flash, templates.Flash{Kind: "ok", Message: "Password changed. Your other sessions were signed out; your access tokens still work (see below: revoke any you do not recognise)."})
	}
	if q.Get("others") != "" {
		p.Flash = append(p.Flash, templates.Flash{Kind: "ok", Message: "Your other sessions were signed out; this one stays."})
	}
	if q.Get("revoked") != "" {
		p.Flash = append(p.Flash, templates.Flash{Kind: "ok", Message: "Session revoked."})
	}
	if q.Get("token_revoked") != "" {
		p.Flash = append(p.Flash, templates.Flash{Kind: "ok", Message: "Access token revoked. Whatever used it can no longer sign in with it."})
	}
	if q.Get("totp") == "off" {
		p.Flash = append(p.Flash, templates.Flash{Kind: "ok", Message: "Two-factor sign-in is off."})
	}
	if q.Get("confirmed") != "" {
		p.Flash = append(p.Flash, templates.Flash{Kind: "ok", Message: "Confirmed. For the next 10 minutes you can reveal and export keys of sensitive environments."})
	}
	return render(c, status, templates.ProfilePage(p, v))
}

func (s *Server) profilePassword(c echo.Context) error {
	current, next := c.FormValue("current_password"), c.FormValue("new_password")
	if next != c.FormValue("confirm") {
		return s.renderProfile(c, http.StatusUnprocessableEntity, templates.ProfileView{
			PasswordErrors: map[string]string{"confirm": "The two new passwords differ."}})
	}
	if err := s.store.ChangePassword(c.Request().Context(), s.actor(c), sessionOf(c), current, next); err != nil {
		status, fields, msg, ok := formFailure(err)
		if !ok {
			return err
		}
		return s.renderProfile(c, status, templates.ProfileView{PasswordErrors: fields, PasswordMessage: msg})
	}
	return c.Redirect(http.StatusSeeOther, "/profile?password=changed")
}

func (s *Server) profileRevokeSession(c echo.Context) error {
	ctx := c.Request().Context()
	actor := s.actor(c)
	sid := c.Param("sid")
	// Only the person's own sessions here, even for admins: the list
	// tells which one is the current session.
	list, err := s.store.ListSessions(ctx, actor, actor.User.ID, sessionOf(c))
	if err != nil {
		return err
	}
	current, found := false, false
	for _, si := range list {
		if si.ID == sid {
			found, current = true, si.Current
		}
	}
	if !found {
		return keyledger.ErrNotFound("Session")
	}
	if err := s.store.RevokeSession(ctx, actor, sid); err != nil {
		return err
	}
	if current {
		// Signed out: drop the cookie too.
		if sess, err := s.sessions.Get(c.Request(), s.sessions.Name()); err == nil {
			sess.Options.MaxAge = -1
			if err := sess.Save(c.Request(), c.Response()); err != nil {
				return err
			}
		}
		return c.Redirect(http.StatusSeeOther, "/login")
	}
	return c.Redirect(http.StatusSeeOther, "/profile?revoked=1")
}

// profileRevokeOtherSessions signs the person out everywhere else: the
// answer to "I signed in on a shared machine" without changing the password.
func (s *Server) profileRevokeOtherSessions(c echo.Context) error {
	if _, err := s.store.EndOtherSessions(c.Request().Context(), s.actor(c), sessionOf(c)); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/profile?others=revoked")
}

// Personal access tokens: one's own, on the profile page.

func (s *Server) profileCreateToken(c echo.Context) error {
	form, err := c.FormParams()
	if err != nil {
		return err
	}
	f := templates.TokenForm{Name: form.Get("name"), Scopes: form["scopes"], Expires: form.Get("expires")}
	// The password typed is checked, never shown again.
	secret, tok, err := s.store.CreateToken(c.Request().Context(), s.actor(c), "", keyledger.TokenInput{Name: f.Name, Scopes: f.Scopes, Expires: f.Expires,
		CurrentPassword: form.Get("current_password")})
	if err != nil {
		status, fields, msg, ok := formFailure(err)
		if !ok {
			return err
		}
		// Field errors are shown next to their fields; only a refusal
		// without them needs the message.
		f.Errors = fields
		if len(fields) == 0 {
			f.Message, f.Errors = msg, map[string]string{}
		}
		return s.renderProfile(c, status, templates.ProfileView{TokenForm: f})
	}
	// The page holds the secret, shown this once.
	c.Response().Header().Set("Cache-Control", "no-store")
	v := templates.NewTokenView{Token: secret, Name: tok.Name, Scopes: tok.Scopes, Expires: tok.ExpiresAt,
		// No token in the command: login prompts for it with input hidden,
		// so it stays out of shell history and the process list.
		Command: "keyledger login --server " + shellWord(s.baseURL(c))}
	return render(c, http.StatusOK, templates.NewTokenPage(s.page(c, "Access token created", "profile"), v))
}

// shellQuote single-quotes s for a POSIX shell.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// shellWord is s as one shell word: as is when no shell treats any of its
// characters specially (a plain URL), else single-quoted.
func shellWord(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') && !strings.ContainsRune("-_./:@%+,", r)
	}) < 0 {
		return s
	}
	return shellQuote(s)
}

func (s *Server) profileRevokeToken(c echo.Context) error {
	ctx := c.Request().Context()
	actor := s.actor(c)
	id, err := strconv.ParseInt(c.Param("tid"), 10, 64)
	if err != nil || id < 1 {
		return keyledger.ErrNotFound("Token")
	}
	// Only the person's own tokens here, even for admins (the store would
	// let an admin revoke anyone's).
	tokens, err := s.store.ListTokens(ctx, actor, actor.User.ID)
	if err != nil {
		return err
	}
	found := false
	for _, t := range tokens {
		found = found || t.ID == id
	}
	if !found {
		return keyledger.ErrNotFound("Token")
	}
	if err := s.store.RevokeToken(ctx, actor, id); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/profile?token_revoked=1")
}

// Two-factor enrollment.

// totpIssuer names keyledger in authenticator apps: the public host when
// known, so that two instances are told apart.
func (s *Server) totpIssuer() string {
	if u, err := url.Parse(s.cfg.BaseURL); err == nil && u.Host != "" {
		return "keyledger (" + u.Host + ")"
	}
	return "keyledger"
}

func (s *Server) totpEnrollPage(c echo.Context) error {
	v := templates.TOTPEnrollView{Enabled: currentUser(c).TOTPEnabled}
	if st, ok := sessionState(c); ok {
		v.MustEnroll = st.MustEnrollTOTP
	}
	if err := s.proofState(c, &v, nil); err != nil {
		return err
	}
	if !v.Enabled {
		enr, err := s.store.BeginTOTP(c.Request().Context(), s.actor(c), s.totpIssuer())
		if err != nil {
			return err
		}
		qr, err := qrDataURL(enr.URL)
		if err != nil {
			return err
		}
		v.Secret, v.QR = enr.Secret, qr
	}
	return s.renderTOTP(c, http.StatusOK, v)
}

// proofState says whether the two-factor forms must ask for a proof
// (the session's last confirmation is stale, or errs holds a refused one)
// and whether the person has a password to give.
func (s *Server) proofState(c echo.Context, v *templates.TOTPEnrollView, errs map[string]string) error {
	_, refusedNew := errs["current_password"]
	_, refusedOff := errs["password"]
	v.NeedProof = !keyledger.FreshProof(s.actor(c), s.store.Now()) || refusedNew || refusedOff
	var err error
	v.HasPassword, err = s.store.HasPassword(c.Request().Context(), s.actor(c))
	return err
}

func (s *Server) renderTOTP(c echo.Context, status int, v templates.TOTPEnrollView) error {
	// The page holds a secret (the key being enrolled, or recovery codes).
	c.Response().Header().Set("Cache-Control", "no-store")
	return render(c, status, templates.TOTPEnrollPage(s.page(c, "Two-factor sign-in", "profile"), v))
}

// qrDataURL renders an otpauth:// URL as a PNG QR code in a data: URL
// (the CSP allows data: images, and nothing leaves the server).
func qrDataURL(otpauth string) (string, error) {
	key, err := otp.NewKeyFromURL(otpauth)
	if err != nil {
		return "", err
	}
	img, err := key.Image(200, 200)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return "", err
	}
	return "data:image/png;base64," + base64.StdEncoding.EncodeToString(buf.Bytes()), nil
}

func (s *Server) totpEnrollConfirm(c echo.Context) error {
	codes, err := s.store.ConfirmTOTP(c.Request().Context(), s.actor(c), sessionOf(c), c.FormValue("code"), c.FormValue("current_password"))
	if err != nil {
		status, fields, msg, ok := formFailure(err)
		if !ok {
			return err
		}
		v := templates.TOTPEnrollView{Errors: fields, Retry: true}
		if st, ok := sessionState(c); ok {
			v.MustEnroll = st.MustEnrollTOTP
		}
		if keyledger.ErrorCode(err) == keyledger.ECONFLICT {
			// Already on (another tab): show the status.
			v = templates.TOTPEnrollView{Enabled: true, Message: msg}
		}
		if err := s.proofState(c, &v, fields); err != nil {
			return err
		}
		return s.renderTOTP(c, status, v)
	}
	return s.renderTOTP(c, http.StatusOK, templates.TOTPEnrollView{Enabled: true, RecoveryCodes: codes})
}

func (s *Server) totpDisable(c echo.Context) error {
	if err := s.store.DisableTOTP(c.Request().Context(), s.actor(c), c.FormValue("password")); err != nil {
		status, fields, _, ok := formFailure(err)
		if !ok {
			return err
		}
		v := templates.TOTPEnrollView{Enabled: currentUser(c).TOTPEnabled, Errors: fields}
		if err := s.proofState(c, &v, fields); err != nil {
			return err
		}
		return s.renderTOTP(c, status, v)
	}
	return c.Redirect(http.StatusSeeOther, "/profile?totp=off")
}

// Step-up: confirming it is you before a sensitive reveal or export.

// doStepUp checks secret and, when it is right, records the step-up in
// the session and in this request's state, so that the actor of the rest
// of the request carries it. A wrong secret returns the field error to
// show (with status 401, see the top of this file).
func (s *Server) doStepUp(c echo.Context, secret string) (fieldErr string, err error) {
	at, err := s.store.StepUp(c.Request().Context(), s.actor(c), sessionOf(c), secret)
	if err != nil {
		if keyledger.ErrorCode(err) == keyledger.ESTEPUP {
			msg := keyledger.FieldErrors(err)["step_up"]
			if msg == "" {
				msg = keyledger.ErrorMessage(err)
			}
			return msg, nil
		}
		return "", err
	}
	if st, ok := sessionState(c); ok {
		st.StepUpAt = at
		c.Set(ctxState, st)
	}
	return "", nil
}

// stepUpRequired reports whether err asks for a step-up.
func stepUpRequired(err error) bool { return keyledger.ErrorCode(err) == keyledger.ESTEPUP }

// stepUpNeeded reports whether a reveal or export in env would ask this
// request's actor to step up first.
func (s *Server) stepUpNeeded(c echo.Context, env keyledger.Environment) bool {
	return keyledger.CheckStepUp(s.actor(c), env, s.store.Now()) != nil
}

// stepUpPage asks for the password or a code before an action that needs
// a fresh proof (an admin's credential grants send people here).
func (s *Server) stepUpPage(c echo.Context) error {
	return render(c, http.StatusOK, templates.StepUpPage(s.page(c, "Confirm it is you", "profile"),
		templates.StepUpView{Next: safeNext(c.QueryParam("next"))}))
}

func (s *Server) stepUp(c echo.Context) error {
	next := safeNext(c.FormValue("next"))
	secret := c.FormValue("secret")
	if secret == "" {
		return render(c, http.StatusUnprocessableEntity, templates.StepUpPage(s.page(c, "Confirm it is you", "profile"),
			templates.StepUpView{Next: next, Errors: map[string]string{"secret": "Enter your password or a two-factor code."}}))
	}
	fieldErr, err := s.doStepUp(c, secret)
	if err != nil {
		return err
	}
	if fieldErr != "" {
		return render(c, http.StatusUnauthorized, templates.StepUpPage(s.page(c, "Confirm it is you", "profile"),
			templates.StepUpView{Next: next, Errors: map[string]string{"secret": fieldErr}}))
	}
	if next == "/profile" {
		next = "/profile?confirmed=1"
	}
	return c.Redirect(http.StatusSeeOther, next)
}
