package web

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/templates"
	"github.com/labstack/echo/v4"
)

func (s *Server) loginPage(c echo.Context) error {
	if currentUser(c) != nil {
		return c.Redirect(http.StatusSeeOther, safeNext(c.QueryParam("next")))
	}
	v := templates.LoginView{Next: safeNextOrEmpty(c.QueryParam("next"))}
	if c.QueryParam("set") != "" && !s.cfg.PasswordLoginOff {
		v.Notice = "Password set. Sign in with your email and new password."
	}
	return render(c, http.StatusOK, templates.LoginPage(s.page(c, "Sign in", "login"), v, s.signInOptions()))
}

func safeNextOrEmpty(n string) string {
	if n == "" {
		return ""
	}
	return safeNext(n)
}

func (s *Server) login(c echo.Context) error {
	email := c.FormValue("email")
	password := c.FormValue("password")
	next := safeNextOrEmpty(c.FormValue("next"))
	if s.cfg.PasswordLoginOff {
		// Single sign-on only. Accounts (and passwords) made on the command
		// line still exist; they just cannot sign in here.
		return render(c, http.StatusForbidden, templates.LoginPage(s.page(c, "Sign in", "login"),
			templates.LoginView{Message: "Password sign-in is switched off on this server. Sign in with single sign-on.", Next: next}, s.signInOptions()))
	}
	u, err := s.store.Authenticate(c.Request().Context(), s.actor(c), email, password)
	if err != nil {
		code := keyledger.ErrorCode(err)
		// EINVALID: an email or password too long to be real, refused
		// before it was hashed.
		if code != keyledger.EUNAUTHORIZED && code != keyledger.ETOOMANY && code != keyledger.EINVALID {
			return err
		}
		setRetryAfter(c, err)
		if len(email) > 320 {
			// Do not echo a huge "email" back into the form.
			email = ""
		}
		return render(c, statusOf(code), templates.LoginPage(s.page(c, "Sign in", "login"),
			templates.LoginView{Email: keyledger.NormalizeEmail(email), Message: keyledger.ErrorMessage(err), Next: next}, s.signInOptions()))
	}
	return s.finishSignIn(c, u, next, func() (string, error) {
		return s.store.StartSession(c.Request().Context(), s.actor(c), u, s.cfg.Sessions)
	})
}

// finishSignIn ends any sign-in, password or single sign-on: whatever
// session id the browser held before (possibly planted) is dropped, never
// promoted; start creates the new server-side session; a user with
// two-factor sign-in goes on to the second step.
func (s *Server) finishSignIn(c echo.Context, u *keyledger.User, next string, start func() (string, error)) error {
	if old, err := s.sessions.Get(c.Request(), s.sessions.Name()); err == nil && old.ID != "" {
		old.Options.MaxAge = -1
		if err := old.Save(c.Request(), c.Response()); err != nil {
			return err
		}
	}
	id, err := start()
	if err != nil {
		return err
	}
	sess := s.sessions.Fresh()
	sess.ID = id
	sess.Values[sessionUserKey] = u
	if err := s.sessions.Save(c.Request(), c.Response(), sess); err != nil {
		return err
	}
	if u.TOTPEnabled {
		// The session is pending until the second factor is given.
		loc := "/login/2fa"
		if next != "" {
			loc += "?next=" + url.QueryEscape(next)
		}
		return c.Redirect(http.StatusSeeOther, loc)
	}
	return c.Redirect(http.StatusSeeOther, safeNext(next))
}

func (s *Server) logout(c echo.Context) error {
	sess, err := s.sessions.Get(c.Request(), s.sessions.Name())
	if err != nil && !errors.Is(err, http.ErrNoCookie) {
		return err
	}
	sess.Options.MaxAge = -1
	if err := sess.Save(c.Request(), c.Response()); err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/login")
}
