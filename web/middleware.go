package web

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/labstack/echo/v4"
)

const ctxUser = "keyledger.user"
const ctxSessionID = "keyledger.session"
const ctxState = "keyledger.state"

func sessionState(c echo.Context) (store.SessionState, bool) {
	st, ok := c.Get(ctxState).(store.SessionState)
	return st, ok
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func requestID(c echo.Context) string {
	return c.Response().Header().Get(echo.HeaderXRequestID)
}

// csp allows only our own static files: no inline script or style, no
// framing, forms only to ourselves. Pico's CSS embeds its icons as data:
// URIs, hence img-src data:.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func (s *Server) securityHeaders(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Response().Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()")
		if s.cfg.SecureCookies {
			h.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		if !strings.HasPrefix(c.Request().URL.Path, "/static/") {
			// Pages carry key metadata and, after a reveal, values: never
			// cache them anywhere.
			h.Set("Cache-Control", "no-store")
			h.Set("Pragma", "no-cache")
		}
		return next(c)
	}
}

func (s *Server) recoverPanic(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) (err error) {
		defer func() {
			if r := recover(); r != nil {
				if r == http.ErrAbortHandler {
					panic(r)
				}
				s.log.Error("panic", "request_id", requestID(c), "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
				err = fmt.Errorf("panic: %v", r)
			}
		}()
		return next(c)
	}
}

func (s *Server) logRequests(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		start := time.Now()
		err := next(c)
		if err != nil {
			c.Error(err)
		}
		req := c.Request()
		attrs := []any{
			"request_id", requestID(c),
			"method", req.Method,
			// Path only: queries hold filters, never values, but there is
			// no reason to keep them.
			"path", logPath(req.URL.Path),
			"status", c.Response().Status,
			"duration_ms", float64(time.Since(start).Microseconds()) / 1000,
			"ip", c.RealIP(),
		}
		if u := currentUser(c); u != nil {
			attrs = append(attrs, "user_id", u.ID)
		}
		s.log.Info("request", attrs...)
		return nil
	}
}

// logPath is a request path fit for logs: the token of a set-password
// link is a credential and never written down.
func logPath(p string) string {
	const prefix = "/set-password/"
	if strings.HasPrefix(p, prefix) && len(p) > len(prefix) {
		return prefix + "…"
	}
	return p
}

// loadSession finds the signed-in user, if any.
func (s *Server) loadSession(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if p := c.Request().URL.Path; strings.HasPrefix(p, "/static/") || strings.HasPrefix(p, "/api/") || p == "/healthz" || p == "/readyz" {
			// The API ignores cookies entirely: bearer tokens only.
			return next(c)
		}
		sess, err := s.sessions.Get(c.Request(), s.sessions.Name())
		if err != nil {
			return err
		}
		if st, ok := sess.Values[sessionStateKey].(store.SessionState); ok {
			c.Set(ctxSessionID, sess.ID)
			c.Set(ctxState, st)
			if !st.PendingTOTP {
				c.Set(ctxUser, st.User)
			}
		}
		return next(c)
	}
}

func currentUser(c echo.Context) *keyledger.User {
	u, _ := c.Get(ctxUser).(*keyledger.User)
	return u
}

func (s *Server) actor(c echo.Context) keyledger.Actor {
	a := keyledger.Actor{User: currentUser(c), IP: c.RealIP(), UserAgent: c.Request().UserAgent(), Token: currentToken(c)}
	if st, ok := sessionState(c); ok && a.User != nil {
		a.StepUpAt, a.Epochs = st.StepUpAt, st.Epochs
	}
	return a
}

// requireUser sends anonymous visitors to the sign-in page, remembering
// where they were going (a local path only: no open redirect).
func (s *Server) requireUser(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if st, ok := sessionState(c); ok && st.PendingTOTP {
			// Password given, second factor still due.
			if c.Request().Method != http.MethodGet {
				return store.ErrNoSession
			}
			return c.Redirect(http.StatusSeeOther, "/login/2fa")
		}
		if currentUser(c) != nil {
			if st, ok := sessionState(c); ok && st.MustEnrollTOTP && !enrollmentPath(c.Request().URL.Path) {
				// The role requires two-factor sign-in: nothing else until
				// it is set up.
				if c.Request().Method != http.MethodGet {
					return keyledger.Errorf(keyledger.EFORBIDDEN, "Your role requires two-factor sign-in. Set it up on your profile first.")
				}
				return c.Redirect(http.StatusSeeOther, "/profile/2fa")
			}
			return next(c)
		}
		if c.Request().Method != http.MethodGet {
			return store.ErrNoSession
		}
		return c.Redirect(http.StatusSeeOther, "/login?next="+url.QueryEscape(c.Request().URL.RequestURI()))
	}
}

// safeNext accepts only local absolute paths. Browsers drop tabs and
// newlines from URLs, so "/\t/evil.example" would leave the site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\t\r\n") {
		return "/keys"
	}
	return next
}

var errCSRF = &keyledger.Error{Code: keyledger.EFORBIDDEN, Message: "This form has expired or came from another site. Go back, reload the page and try again."}

// isAPI reports whether a request should get JSON errors.
func isAPI(c echo.Context) bool {
	return strings.HasPrefix(c.Request().URL.Path, "/api/")
}

var _ = errors.New

// enrollmentPath lists what a user who must set up two-factor sign-in may
// still reach.
func enrollmentPath(p string) bool {
	return p == "/profile/2fa" || p == "/logout" || p == "/profile"
}
