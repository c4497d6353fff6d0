// Package web is keyledger's HTTP layer: routes, middleware, sessions and
// handlers. Handlers translate HTTP into store calls and render the result;
// they never decide authorization themselves.
package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/static"
	"github.com/keyledger/keyledger/store"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is the web layer's configuration, parsed in cmd/.
type Config struct {
	// BaseURL is the public URL (scheme://host[:port]); its origin is the
	// only one allowed to submit forms.
	BaseURL string
	// SecureCookies marks cookies Secure and turns on HSTS.
	SecureCookies bool
	Sessions      store.SessionTimeouts
	// TrustedProxies are networks whose X-Forwarded-For is believed. Empty:
	// the client address is the TCP peer.
	TrustedProxies []*net.IPNet
	// BodyLimit caps request bodies, e.g. "64K".
	BodyLimit string
	// Ready reports readiness details beyond the database ping.
	Ready func(ctx context.Context) error
	// Verifier checks keys against their providers; nil disables checks.
	Verifier keyledger.Verifier
	// Notifier tells people about changes to their own account (e.g. an
	// admin reset their two-factor sign-in); nil: nobody is told.
	Notifier keyledger.Notifier
	// APIRate is the per-token request rate of the JSON API (requests per
	// second, burst twice that); 0 means 20.
	APIRate float64
	// OIDC turns on single sign-on (see oidc.go); nil: off. Call
	// Server.RunOIDCDiscovery to make it ready.
	OIDC *OIDCConfig
	// PasswordLoginOff removes the password form and refuses POST /login:
	// single sign-on only. Requires OIDC.
	PasswordLoginOff bool
	// Metrics turns on GET /metrics (see metrics.go); off by default.
	Metrics MetricsConfig
	// ProviderAdmin talks to the providers' admin APIs for provider
	// connections; nil: connections cannot be added or synced.
	ProviderAdmin keyledger.ProviderAdmin
}

// DefaultSessions is the session policy: a secrets app signs idle people out after an hour and
// everyone after twelve.
func DefaultSessions() store.SessionTimeouts {
	return store.SessionTimeouts{Idle: time.Hour, Absolute: 12 * time.Hour}
}

// Server holds what handlers need.
type Server struct {
	cfg      Config
	store    *store.Store
	assets   *static.Assets
	log      *slog.Logger
	sessions *SessionStore
	csrf     *csrfGuard
	echo     *echo.Echo
	limiter  *tokenLimiter
	oidc     *oidcClient // nil: single sign-on off
	metrics  *metrics    // nil: metrics off
	// The rotation and dashboard bodies, rendered once per store result.
	rotationBody, dashboardBody sharedBody
	// The key list's filter menus and rendered bodies, per list epoch
	// (store/epochcache.go); csrfHole stands for each viewer's CSRF token in a
	// kept body: random per process, so no text a user typed is one.
	keyListMenus  *store.EpochCache[store.KeyListMenus]
	keyListBodies *store.EpochCache[keptBody]
	csrfHole      string
}

// New builds the HTTP handler.
func New(cfg Config, st *store.Store, log *slog.Logger) (*Server, error) {
	assets, err := static.Load()
	if err != nil {
		return nil, err
	}
	if cfg.Sessions.Idle == 0 {
		cfg.Sessions = DefaultSessions()
	}
	if cfg.BodyLimit == "" {
		cfg.BodyLimit = "64K"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, store: st, assets: assets, log: log, limiter: newTokenLimiter(cfg.APIRate, 0),
		keyListMenus: store.NewEpochCache[store.KeyListMenus](1, time.Minute), keyListBodies: store.NewEpochCache[keptBody](512, time.Minute),
		csrfHole: "csrf-" + randomID()}
	s.csrf, err = newCSRFGuard(st.CookieKey(), cfg.SecureCookies, cfg.BaseURL)
	if err != nil {
		return nil, err
	}
	s.sessions = NewSessionStore(st, st.CookieKey(), cfg.SecureCookies, cfg.Sessions, s.clientIP)
	if cfg.OIDC != nil {
		if s.oidc, err = newOIDCClient(*cfg.OIDC, st.CookieKey(), cfg.SecureCookies); err != nil {
			return nil, err
		}
	} else if cfg.PasswordLoginOff {
		return nil, errors.New("password sign-in is off but single sign-on is not configured: nobody could sign in")
	}
	if cfg.Metrics.Enabled {
		// This server's own registry, never Prometheus's global one.
		if s.metrics, err = newMetrics(cfg.Metrics, prometheus.NewRegistry(), st, log); err != nil {
			return nil, err
		}
		s.cfg.Verifier = s.metrics.countVerifications(s.cfg.Verifier)
		s.keyListBodies.Hit, s.keyListBodies.Miss = s.metrics.pageCacheCounters("keys")
	}

	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = s.handleError
	e.IPExtractor = ipExtractor(cfg.TrustedProxies)
	e.Pre(middleware.RemoveTrailingSlash())
	e.Pre(func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			// Request ids in logs and error pages must be ours; echo
			// would otherwise keep a client-sent one.
			c.Request().Header.Del(echo.HeaderXRequestID)
			return next(c)
		}
	})
	e.Use(middleware.RequestIDWithConfig(middleware.RequestIDConfig{
		Generator: randomID,
		// A client-sent id is ignored: ids in logs must be ours.
		TargetHeader: echo.HeaderXRequestID,
	}))
	if s.metrics != nil {
		e.Use(s.metrics.observe)
	}
	e.Use(s.recoverPanic)
	e.Use(s.logRequests)
	e.Use(s.securityHeaders)
	e.Use(middleware.BodyLimit(cfg.BodyLimit))
	e.Use(rejectBadBytes)
	e.Use(notForMetrics(s.loadSession))
	e.Use(notForMetrics(s.csrf.middleware))

	e.GET("/healthz", s.healthz)
	e.GET("/readyz", s.readyz)
	s.registerMetrics(e)
	e.GET("/static/*", s.serveStatic)

	e.GET("/login", s.loginPage)
	e.POST("/login", s.login)
	e.POST("/logout", s.logout)
	// Second factor of a pending sign-in, and set-password links: reached
	// without a full session.
	e.GET("/login/2fa", s.totpPage)
	e.POST("/login/2fa", s.totpSubmit)
	e.GET("/set-password/:token", s.setPasswordPage)
	e.POST("/set-password/:token", s.setPassword)
	// Single sign-on: start and callback, both GETs outside sign-in (the
	// callback's state, not a CSRF token, guards it; see oidc.go).
	s.registerOIDC(e)

	// The JSON API: bearer tokens only, no cookies, no CSRF.
	s.registerAPI(e)

	auth := e.Group("", s.requireUser)
	auth.GET("/", func(c echo.Context) error { return c.Redirect(http.StatusSeeOther, "/keys") })
	auth.GET("/keys", s.keyList)
	auth.GET("/keys/new", s.keyNew)
	auth.POST("/keys", s.keyCreate)
	auth.GET("/keys/:id", s.keyDetail)
	auth.GET("/keys/:id/edit", s.keyEdit)
	auth.POST("/keys/:id/edit", s.keyUpdate)
	auth.POST("/keys/:id/archive", s.keyArchive)
	auth.POST("/keys/:id/reveal", s.keyReveal)
	auth.POST("/keys/:id/provider-revoke", s.keyProviderRevoke)
	auth.POST("/keys/:id/auto-rotate", s.keyAutoRotate)
	auth.POST("/keys/:id/provider-rotate", s.keyProviderRotate)
	auth.GET("/keys/:id/rotate", s.keyRotatePage)
	auth.POST("/keys/:id/rotate", s.keyRotate)
	auth.POST("/keys/:id/rollback", s.keyRollback)
	auth.POST("/keys/:id/verify", s.keyVerify)
	auth.GET("/rotation", s.rotationPage)
	auth.GET("/export", s.exportPage)
	auth.POST("/export", s.export)
	auth.GET("/audit", s.auditPage)
	auth.GET("/audit.csv", s.auditCSV)
	auth.GET("/keys.csv", s.keyListCSV)
	auth.GET("/leaks/new", s.leakNewPage)
	auth.POST("/leaks/new", s.leakReport)
	auth.GET("/leaks", s.leakList)
	auth.GET("/leaks/:lid", s.leakPage)
	auth.POST("/leaks/:lid/revoke", s.leakRevoke)
	auth.POST("/leaks/:lid/waive", s.leakWaive)

	// Profile: own password, sessions, two-factor sign-in, access tokens,
	// step-up.
	auth.GET("/profile", s.profilePage)
	auth.POST("/profile/password", s.profilePassword)
	auth.POST("/profile/shell", s.profileShell)
	auth.POST("/profile/sessions/:sid/revoke", s.profileRevokeSession)
	auth.POST("/profile/sessions/revoke-others", s.profileRevokeOtherSessions)
	auth.GET("/profile/2fa", s.totpEnrollPage)
	auth.POST("/profile/2fa", s.totpEnrollConfirm)
	auth.POST("/profile/2fa/disable", s.totpDisable)
	auth.POST("/profile/tokens", s.profileCreateToken)
	auth.POST("/profile/tokens/:tid/revoke", s.profileRevokeToken)
	auth.GET("/step-up", s.stepUpPage)
	auth.POST("/step-up", s.stepUp)

	// Admin: users, roles, environments.
	auth.GET("/admin/users", s.adminUsers)
	auth.POST("/admin/users", s.adminCreateUser)
	auth.POST("/admin/users/:uid/role", s.adminSetRole)
	auth.POST("/admin/users/:uid/deactivate", s.adminDeactivate)
	auth.POST("/admin/users/:uid/reactivate", s.adminReactivate)
	auth.POST("/admin/users/:uid/password-link", s.adminPasswordLink)
	auth.POST("/admin/users/:uid/2fa-reset", s.adminResetTOTP)
	auth.POST("/admin/roles", s.adminRolePolicies)
	auth.GET("/admin/environments", s.adminEnvironments)
	auth.POST("/admin/environments", s.adminCreateEnvironment)
	auth.POST("/admin/environments/:name", s.adminUpdateEnvironment)
	auth.GET("/admin/providers", s.adminProviders)
	auth.POST("/admin/providers", s.adminProviderCreate)
	auth.POST("/admin/providers/:pid/sync", s.adminProviderSync)
	auth.POST("/admin/providers/:pid/remove", s.adminProviderRemove)
	auth.GET("/inventory", s.inventoryPage)
	auth.GET("/inventory.csv", s.inventoryCSV)
	auth.POST("/inventory/:provider_key/link", s.inventoryLink)
	auth.POST("/inventory/:provider_key/unlink", s.inventoryUnlink)

	// Leads: ownership audit, people, offboarding.
	auth.GET("/dashboard", s.dashboard)
	auth.GET("/users/:uid", s.userPage)
	auth.POST("/users/:uid/reassign", s.userReassign)
	auth.GET("/offboarding", s.offboardingList)
	auth.POST("/offboarding", s.offboardingStart)
	auth.GET("/offboarding/:oid", s.offboardingPage)
	auth.GET("/offboarding/:oid/record.csv", s.offboardingCSV)
	auth.POST("/offboarding/:oid/items/:item/waive", s.offboardingWaive)
	auth.POST("/offboarding/:oid/items/:item/provider-revoke", s.offboardingProviderRevoke)
	auth.POST("/offboarding/:oid/reassign", s.offboardingReassign)
	auth.POST("/offboarding/:oid/revoke", s.offboardingRevoke)
	auth.POST("/offboarding/:oid/deactivate", s.offboardingDeactivate)
	auth.POST("/offboarding/:oid/complete", s.offboardingComplete)
	s.echo = e
	return s, nil
}

// ServeHTTP makes the Server an http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.echo.ServeHTTP(w, r) }

// Routes lists every route as "METHOD path", for the authorization test
// that must cover them all.
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.echo.Routes() {
		if strings.HasPrefix(r.Path, "/static") {
			continue
		}
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

func ipExtractor(trusted []*net.IPNet) echo.IPExtractor {
	if len(trusted) == 0 {
		// Without a known proxy, X-Forwarded-For is attacker-controlled;
		// trusting it would let anyone dodge the sign-in throttle.
		return echo.ExtractIPDirect()
	}
	opts := []echo.TrustOption{echo.TrustLoopback(false), echo.TrustLinkLocal(false), echo.TrustPrivateNet(false)}
	for _, n := range trusted {
		opts = append(opts, echo.TrustIPRange(n))
	}
	return echo.ExtractIPFromXFFHeader(opts...)
}

func (s *Server) clientIP(r *http.Request) string {
	return s.echo.IPExtractor(r)
}

// ParseTrustedProxies parses a comma-separated list of CIDRs or IPs.
func ParseTrustedProxies(v string) ([]*net.IPNet, error) {
	var out []*net.IPNet
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if !strings.Contains(part, "/") {
			if ip := net.ParseIP(part); ip != nil {
				if ip.To4() != nil {
					part += "/32"
				} else {
					part += "/128"
				}
			}
		}
		_, n, err := net.ParseCIDR(part)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address or CIDR range", part)
		}
		out = append(out, n)
	}
	return out, nil
}
