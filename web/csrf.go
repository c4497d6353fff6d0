package web

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
	"github.com/keyledger/keyledger/templates"
	"github.com/labstack/echo/v4"
)

// csrfGuard refuses cross-site state changes twice over: Go's
// CrossOriginProtection rejects requests whose Sec-Fetch-Site or Origin
// say they came from another site, and every POST must carry a token in
// the _csrf field. The token is an HMAC of a random cookie value and, once
// signed in, of the session id: a token fetched in one session is worthless
// in another, so a cookie planted from a sibling subdomain gains nothing.
type csrfGuard struct {
	key        []byte
	cookieName string
	secure     bool
	origin     *http.CrossOriginProtection
	// base is the configured public origin (scheme://host), if any.
	base string
}

const ctxCSRF = "keyledger.csrf"

func newCSRFGuard(key []byte, secure bool, baseURL string) (*csrfGuard, error) {
	g := &csrfGuard{key: key, secure: secure, cookieName: "keyledger_csrf", origin: http.NewCrossOriginProtection()}
	if secure {
		// __Host- cookies cannot be set by subdomains or for other paths.
		g.cookieName = "__Host-keyledger_csrf"
	}
	if baseURL != "" {
		u, err := url.Parse(baseURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("base URL %q is not an absolute URL", baseURL)
		}
		// Behind a proxy the Host header may differ from the public name.
		g.base = u.Scheme + "://" + u.Host
		if err := g.origin.AddTrustedOrigin(g.base); err != nil {
			return nil, err
		}
	}
	return g, nil
}

func (g *csrfGuard) tokenFor(seed, session string) string {
	m := hmac.New(sha256.New, g.key)
	m.Write([]byte("keyledger csrf v1\x00"))
	m.Write([]byte(seed))
	m.Write([]byte{0})
	m.Write([]byte(session))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (g *csrfGuard) middleware(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		req := c.Request()
		if strings.HasPrefix(req.URL.Path, "/static/") || strings.HasPrefix(req.URL.Path, "/api/") {
			// The API authenticates with bearer tokens, never cookies, so
			// a cross-site request cannot ride on a browser's credentials.
			return next(c)
		}
		seed := ""
		if ck, err := req.Cookie(g.cookieName); err == nil && len(ck.Value) >= 32 && len(ck.Value) <= 64 {
			seed = ck.Value
		}
		safe := req.Method == http.MethodGet || req.Method == http.MethodHead || req.Method == http.MethodOptions
		if !safe {
			if err := g.origin.Check(req); err != nil {
				return g.refusal(req)
			}
			if err := req.ParseForm(); err != nil {
				// An over-long body surfaces here first; say so rather
				// than blaming the token.
				var he *echo.HTTPError
				if errors.As(err, &he) {
					return he
				}
				return echo.NewHTTPError(http.StatusBadRequest, "the form could not be read")
			}
			sent := req.PostFormValue("_csrf")
			if seed == "" || sent == "" || subtle.ConstantTimeCompare([]byte(sent), []byte(g.tokenFor(seed, sessionOf(c)))) != 1 {
				if req.URL.Path == "/logout" && sessionOf(c) == "" {
					// Signing out of a session that already ended (timed
					// out, revoked) is no threat: just show the sign-in.
					return c.Redirect(http.StatusSeeOther, "/login")
				}
				// A signed-in person's form most often sat open past a
				// sign-in elsewhere or a restart of the session: the refusal
				// keeps what was typed (retryAfterCSRF) in a form with this
				// session's token, the one any page of it would carry. Without
				// a live session there is nothing to send again.
				if currentUser(c) != nil && seed != "" {
					if err := g.issue(c, seed); err != nil {
						return err
					}
					c.Set(ctxCSRFRetry, true)
				}
				return g.refusal(req)
			}
		}
		if err := g.issue(c, seed); err != nil {
			return err
		}
		return next(c)
	}
}

// refusal explains a refused form where the cause is the setup rather
// than an old page: the form came from an origin other than the configured
// one, or over plain http while cookies are Secure (the browser then never
// kept the form's cookie). It names what arrived, what was expected and the
// variable to set; otherwise it is the plain "form has expired".
func (g *csrfGuard) refusal(req *http.Request) error {
	scheme := "http"
	if req.TLS != nil {
		scheme = "https"
	}
	arrived := req.Header.Get("Origin")
	if arrived == "" || arrived == "null" {
		arrived = scheme + "://" + req.Host
	}
	switch {
	case g.base != "" && !strings.EqualFold(arrived, g.base):
		return &keyledger.Error{Code: keyledger.EFORBIDDEN, Message: fmt.Sprintf(
			"This form came from %s, but keyledger is set up for %s (KEYLEDGER_BASE_URL). Open keyledger at %s, or, if %s is the address people use, set KEYLEDGER_BASE_URL=%s and restart.",
			arrived, g.base, g.base, arrived, arrived)}
	case g.secure && strings.HasPrefix(arrived, "http://"):
		return &keyledger.Error{Code: keyledger.EFORBIDDEN, Message: fmt.Sprintf(
			"This form came over plain %s, but keyledger marks its cookies Secure (KEYLEDGER_SECURE_COOKIES), which browsers keep only over https. Open keyledger over https, or set KEYLEDGER_SECURE_COOKIES=false on a trusted network.",
			arrived)}
	}
	return errCSRF
}

// BaseURLWarning says why forms will fail when keyledger listens where
// other machines can reach it but KEYLEDGER_BASE_URL names only this
// machine: a browser on the network sends another origin. Empty when the
// two agree, or when no base URL was set (the request's own host is then
// trusted).
func BaseURLWarning(listen, baseURL string) string {
	host, _, err := net.SplitHostPort(listen)
	if err != nil || isLoopbackHost(host) || baseURL == "" {
		return ""
	}
	u, err := url.Parse(baseURL)
	if err != nil || !isLoopbackHost(u.Hostname()) {
		return ""
	}
	return fmt.Sprintf("keyledger listens on %s but KEYLEDGER_BASE_URL is %s, which only this machine can reach: set KEYLEDGER_BASE_URL to the address people type, or forms sent from other machines are refused", listen, baseURL)
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// issue sets the token of this request (and the cookie it derives from,
// when the browser has none) for the forms of the page it answers.
func (g *csrfGuard) issue(c echo.Context, seed string) error {
	if seed == "" {
		var err error
		if seed, err = crypto.RandomToken(32); err != nil {
			return err
		}
		c.SetCookie(&http.Cookie{Name: g.cookieName, Value: seed, Path: "/", HttpOnly: true, Secure: g.secure, SameSite: http.SameSiteStrictMode})
	}
	c.Set(ctxCSRF, g.tokenFor(seed, sessionOf(c)))
	return nil
}

// ctxCSRFRetry marks a request refused for its token alone (not for
// coming from another site): its error page may offer to send it again.
const ctxCSRFRetry = "keyledger.csrf-retry"

// retryAfterCSRF is the form a refused POST may be sent again with: only
// for forms whose typing is worth keeping, and only their fields that are
// no secret (a reason, never a value, a password or a code).
func retryAfterCSRF(c echo.Context) *templates.RetryForm {
	if retry, _ := c.Get(ctxCSRFRetry).(bool); !retry {
		return nil
	}
	req := c.Request()
	path := req.URL.Path
	switch {
	case strings.HasPrefix(path, "/keys/") && strings.HasSuffix(path, "/reveal") && strings.Count(path, "/") == 3:
		return &templates.RetryForm{Action: path, Button: "Reveal value", Fields: []templates.RetryField{
			{Name: "reason", Label: "Reason", Value: req.PostFormValue("reason"), Visible: true},
		}}
	case path == "/export":
		return &templates.RetryForm{Action: path, Button: "Download", Fields: []templates.RetryField{
			{Name: "environment", Value: req.PostFormValue("environment")},
			{Name: "project", Value: req.PostFormValue("project")},
			{Name: "format", Value: req.PostFormValue("format")},
			{Name: "reason", Label: "Reason", Value: req.PostFormValue("reason"), Visible: true},
		}}
	}
	return nil
}

func csrfToken(c echo.Context) string {
	t, _ := c.Get(ctxCSRF).(string)
	return t
}

func sessionOf(c echo.Context) string {
	id, _ := c.Get(ctxSessionID).(string)
	return id
}
