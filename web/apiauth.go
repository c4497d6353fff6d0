package web

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"
)

const ctxToken = "keyledger.token"

// apiAuth authenticates /api/v1 requests with a bearer token. Cookies are
// never consulted, so the API needs no CSRF protection: a cross-site page
// cannot make a browser attach a bearer token.
func (s *Server) apiAuth(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		h := c.Request().Header.Get(echo.HeaderAuthorization)
		scheme, secret, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(secret) == "" {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="keyledger"`)
			return keyledger.Errorf(keyledger.EUNAUTHORIZED, "Send a personal access token: Authorization: Bearer klt_… (create one on your profile page).")
		}
		a, err := s.store.TokenActor(c.Request().Context(), strings.TrimSpace(secret), c.RealIP(), c.Request().UserAgent())
		if err != nil {
			c.Response().Header().Set("WWW-Authenticate", `Bearer realm="keyledger", error="invalid_token"`)
			return err
		}
		c.Set(ctxUser, a.User)
		c.Set(ctxToken, a.Token)
		return next(c)
	}
}

func currentToken(c echo.Context) *keyledger.Token {
	t, _ := c.Get(ctxToken).(*keyledger.Token)
	return t
}

// tokenLimiter is a per-token token bucket. It lives in each replica's
// memory: with N replicas behind a balancer a token gets up to N times the
// rate, which is fine for its purpose (stopping a runaway script), not a
// quota.
type tokenLimiter struct {
	mu      sync.Mutex
	perSec  rate.Limit
	burst   int
	byToken map[int64]*limiterEntry
}

type limiterEntry struct {
	lim  *rate.Limiter
	seen time.Time
}

func newTokenLimiter(perSec float64, burst int) *tokenLimiter {
	if perSec <= 0 {
		perSec = 20
	}
	if burst <= 0 {
		burst = int(math.Max(1, 2*perSec))
	}
	return &tokenLimiter{perSec: rate.Limit(perSec), burst: burst, byToken: map[int64]*limiterEntry{}}
}

// reserve reports whether the token may go ahead now, or how long to wait.
func (l *tokenLimiter) reserve(id int64, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.byToken[id]
	if !ok {
		if len(l.byToken) > 10000 {
			// Forget idle tokens so the map cannot grow without bound.
			for k, v := range l.byToken {
				if now.Sub(v.seen) > time.Minute {
					delete(l.byToken, k)
				}
			}
		}
		e = &limiterEntry{lim: rate.NewLimiter(l.perSec, l.burst)}
		l.byToken[id] = e
	}
	e.seen = now
	r := e.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (s *Server) apiRateLimit(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		t := currentToken(c)
		if t == nil {
			return next(c)
		}
		ok, wait := s.limiter.reserve(t.ID, time.Now())
		if !ok {
			secs := int(math.Ceil(wait.Seconds()))
			c.Response().Header().Set("Retry-After", strconv.Itoa(max(secs, 1)))
			return keyledger.Errorf(keyledger.ETOOMANY, "Too many requests with this token; retry after %d second(s).", max(secs, 1))
		}
		return next(c)
	}
}

var _ = http.StatusTooManyRequests
