package web

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/gorilla/securecookie"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/templates"
	"github.com/labstack/echo/v4"
	"golang.org/x/oauth2"
)

// Single sign-on with OpenID Connect: the authorization code flow with
// PKCE (S256), a state and a nonce.
//
//	GET /auth/oidc/login?next=…  starts a flow: state, nonce and PKCE
//	    verifier go into a signed, HttpOnly, SameSite=Lax cookie that lives
//	    ten minutes; the browser goes to the identity provider.
//	GET /auth/oidc/callback?code&state  checks the state against the
//	    cookie (constant time), redeems the code with the verifier, verifies
//	    the ID token (signature, issuer, audience, expiry, nonce), requires
//	    a verified email (from the ID token, or from UserInfo when the ID
//	    token lacks the email claims, as many providers' do), finds or
//	    creates the user (store.OIDCUser) and starts the session as the
//	    password sign-in does.
//
// Both routes are GETs outside sign-in. The CSRF guard only checks unsafe
// methods, so the callback needs no exemption: its state parameter, bound
// to the cookie of the browser that started the flow, is what stops a
// forged callback (login CSRF). The start is a plain link rather than a
// form, because CSP's form-action 'self' would stop a form's redirect to
// the provider.

// OIDCConfig configures single sign-on.
type OIDCConfig struct {
	// Issuer is the provider's issuer URL; discovery reads
	// Issuer/.well-known/openid-configuration.
	Issuer       string
	ClientID     string
	ClientSecret string
	// AllowedDomains are the email domains (lower case) whose people get
	// a member account at their first sign-in. Empty: only existing users
	// may sign in.
	AllowedDomains []string
	// HTTPClient talks to the provider; nil means a client with a 15 s
	// timeout.
	HTTPClient *http.Client
}

const (
	oidcCallbackPath = "/auth/oidc/callback"
	// oidcFlowTTL bounds a flow from the button to the callback.
	oidcFlowTTL = 10 * time.Minute
)

// oidcFlow is what the flow cookie carries from the start to the callback.
type oidcFlow struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"r,omitempty"`
}

// oidcClient is the configured provider. Discovery may happen after the
// server starts (the provider may be down at boot), so the provider is
// nil until then and the sign-in button says so.
type oidcClient struct {
	cfg        OIDCConfig
	http       *http.Client
	codec      securecookie.Codec
	cookieName string
	secure     bool

	mu       sync.RWMutex
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
}

func newOIDCClient(cfg OIDCConfig, cookieKey []byte, secure bool) (*oidcClient, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("single sign-on needs an issuer and a client id")
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: 15 * time.Second}
	}
	codec := securecookie.New(cookieKey, nil)
	codec.MaxAge(int(oidcFlowTTL.Seconds()))
	codec.SetSerializer(securecookie.JSONEncoder{})
	name := "keyledger_oidc"
	if secure {
		// __Host-: a sibling subdomain cannot plant its own flow cookie.
		name = "__Host-keyledger_oidc"
	}
	return &oidcClient{cfg: cfg, http: hc, codec: codec, cookieName: name, secure: secure}, nil
}

// ready returns the discovered provider and verifier, or nil.
func (o *oidcClient) ready() (*oidc.Provider, *oidc.IDTokenVerifier) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	return o.provider, o.verifier
}

// discover fetches the provider's discovery document once.
func (o *oidcClient) discover(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, o.http), 15*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, o.cfg.Issuer)
	if err != nil {
		return err
	}
	// Provider.Verifier fetches signing keys with a background context
	// (and our client), refreshing them when the provider rotates keys.
	v := p.Verifier(&oidc.Config{ClientID: o.cfg.ClientID})
	o.mu.Lock()
	o.provider, o.verifier = p, v
	o.mu.Unlock()
	return nil
}

// OIDCEnabled reports whether single sign-on is configured.
func (s *Server) OIDCEnabled() bool { return s.oidc != nil }

// OIDCReady reports whether single sign-on is configured and its provider
// has been discovered.
func (s *Server) OIDCReady() bool {
	if s.oidc == nil {
		return false
	}
	p, _ := s.oidc.ready()
	return p != nil
}

// RunOIDCDiscovery fetches the provider's discovery document, retrying
// with backoff (1 s doubling to 1 min) until it succeeds or ctx ends, so a
// provider that is down when keyledger starts does not stop it: until
// then the sign-in page says single sign-on is temporarily unavailable.
// It returns nil once ready (at once when single sign-on is off), or
// ctx's error.
func (s *Server) RunOIDCDiscovery(ctx context.Context) error {
	if s.oidc == nil {
		return nil
	}
	backoff := time.Second
	for {
		err := s.oidc.discover(ctx)
		if err == nil {
			s.log.Info("single sign-on ready", "issuer", s.oidc.cfg.Issuer)
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.log.Warn("single sign-on provider not reachable yet; retrying", "issuer", s.oidc.cfg.Issuer, "retry_in", backoff.String(), "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, time.Minute)
	}
}

func (s *Server) registerOIDC(e *echo.Echo) {
	e.GET("/auth/oidc/login", s.oidcLogin)
	e.GET(oidcCallbackPath, s.oidcCallback)
}

// signInOptions says which ways in the sign-in page offers.
func (s *Server) signInOptions() templates.SignInOptions {
	return templates.SignInOptions{Password: !s.cfg.PasswordLoginOff, SSO: s.OIDCEnabled(), SSOReady: s.OIDCReady()}
}

var (
	errOIDCOff = keyledger.Errorf(keyledger.ENOTFOUND, "Single sign-on is not configured on this server.")
	// errOIDCFlow: no flow cookie, an expired one, or a state that does
	// not match it.
	errOIDCFlow = keyledger.Errorf(keyledger.EINVALID, "This sign-in did not start in this browser, or took longer than 10 minutes. Start again.")
	errOIDCFail = keyledger.Errorf(keyledger.EUNAUTHORIZED, "Single sign-on did not complete: the identity provider's answer could not be verified. Start again; if it keeps failing, ask an admin.")
	// errOIDCEmail: the provider did not vouch for an email address.
	errOIDCEmail = keyledger.Errorf(keyledger.EFORBIDDEN, "Your identity provider did not confirm an email address for your account, so keyledger cannot tell who you are. Verify your email address with the identity provider, or ask an admin.")
)

func (s *Server) oidcUnavailable() error {
	msg := "Single sign-on is temporarily unavailable: keyledger cannot reach the identity provider yet. Try again in a minute"
	if !s.cfg.PasswordLoginOff {
		msg += ", or sign in with your password"
	}
	return keyledger.Errorf(keyledger.EUNAVAILABLE, "%s.", msg)
}

// oidcRedirectURL is where the provider sends the browser back. It is
// fixed by the base URL (it must match what is registered at the
// provider); only a server without one (tests) derives it from the
// request.
func (s *Server) oidcRedirectURL(c echo.Context) string {
	base := s.cfg.BaseURL
	if base == "" {
		base = c.Scheme() + "://" + c.Request().Host
	}
	return OIDCRedirectURL(base)
}

func (s *Server) oauth2Config(c echo.Context, p *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     s.oidc.cfg.ClientID,
		ClientSecret: s.oidc.cfg.ClientSecret,
		Endpoint:     p.Endpoint(),
		RedirectURL:  s.oidcRedirectURL(c),
		Scopes:       []string{oidc.ScopeOpenID, "email", "profile"},
	}
}

// OIDCRedirectURL is the callback URL to register at the provider.
func OIDCRedirectURL(baseURL string) string {
	return strings.TrimRight(baseURL, "/") + oidcCallbackPath
}

func (s *Server) oidcLogin(c echo.Context) error {
	if s.oidc == nil {
		return errOIDCOff
	}
	next := safeNextOrEmpty(c.QueryParam("next"))
	if currentUser(c) != nil {
		return c.Redirect(http.StatusSeeOther, safeNext(next))
	}
	p, _ := s.oidc.ready()
	if p == nil {
		return s.oidcUnavailable()
	}
	var f oidcFlow
	var err error
	if f.State, err = crypto.RandomToken(32); err != nil {
		return err
	}
	if f.Nonce, err = crypto.RandomToken(32); err != nil {
		return err
	}
	f.Verifier = oauth2.GenerateVerifier()
	f.Next = next
	encoded, err := s.oidc.codec.Encode(s.oidc.cookieName, f)
	if err != nil {
		return err
	}
	c.SetCookie(&http.Cookie{Name: s.oidc.cookieName, Value: encoded, Path: "/", MaxAge: int(oidcFlowTTL.Seconds()),
		HttpOnly: true, Secure: s.oidc.secure,
		// Lax: the provider sends the browser back with a top-level GET
		// from its own site, which Strict would strip the cookie from.
		SameSite: http.SameSiteLaxMode})
	// max_age makes auth_time a required claim (OpenID Connect Core
	// 3.1.2.1), and the step-up clock runs from it; 30 days forces no
	// extra sign-in at the provider in practice.
	return c.Redirect(http.StatusSeeOther, s.oauth2Config(c, p).AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier),
		oauth2.SetAuthURLParam("max_age", strconv.Itoa(oidcMaxAge))))
}

// takeFlow reads the flow cookie and tells the browser to forget it, so
// that each flow ends at its first callback. (Replaying the cookie's value
// gains nothing either: the provider accepts each code once, and the
// nonce binds the ID token to this flow.)
func (s *Server) takeFlow(c echo.Context) (oidcFlow, bool) {
	var f oidcFlow
	ck, err := c.Cookie(s.oidc.cookieName)
	if err != nil {
		return f, false
	}
	c.SetCookie(&http.Cookie{Name: s.oidc.cookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, Secure: s.oidc.secure, SameSite: http.SameSiteLaxMode})
	if err := s.oidc.codec.Decode(s.oidc.cookieName, ck.Value, &f); err != nil || f.State == "" || f.Nonce == "" || f.Verifier == "" {
		return oidcFlow{}, false
	}
	return f, true
}

// oidcClaims are the ID token claims keyledger reads.
type oidcClaims struct {
	Email string `json:"email"`
	// EmailVerified is a boolean; a few providers send the string "true".
	EmailVerified any         `json:"email_verified"`
	Name          string      `json:"name"`
	AuthTime      json.Number `json:"auth_time"`
	AZP           string      `json:"azp"`
}

// hasEmail reports whether the claims say both what the email is and
// whether it is verified. keyledger takes the two from one source: the ID
// token when it has both, else UserInfo.
func (cl oidcClaims) hasEmail() bool {
	return cl.Email != "" && cl.EmailVerified != nil
}

// verified accepts email_verified as JSON true or as the string "true"
// (any case; Cognito and a few others send strings). Anything else,
// "1", "yes" or an absent claim, is not verified: fail closed.
func (cl oidcClaims) verified() bool {
	switch v := cl.EmailVerified.(type) {
	case bool:
		return v
	case string:
		return strings.EqualFold(v, "true")
	}
	return false
}

func (cl oidcClaims) authTime() time.Time {
	// The store ignores a time in the future.
	f, err := cl.AuthTime.Float64()
	if err != nil || f <= 0 || f > 1e12 {
		return time.Time{}
	}
	return time.Unix(int64(f), 0)
}

// oidcMaxAge is the max_age sent with every sign-in request, in seconds.
const oidcMaxAge = 30 * 24 * 60 * 60

func (s *Server) oidcCallback(c echo.Context) error {
	if s.oidc == nil {
		return errOIDCOff
	}
	ctx := c.Request().Context()
	q := c.Request().URL.Query()
	// Whoever may be signed in in this browser, the callback acts for the
	// person the provider names: audit it as an anonymous request.
	meta := keyledger.Actor{IP: c.RealIP(), UserAgent: c.Request().UserAgent()}
	f, ok := s.takeFlow(c)
	if !ok || subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(f.State)) != 1 {
		// Not audited: anyone can make this request, and nothing reached
		// the provider.
		s.log.Info("single sign-on callback refused: no flow or wrong state", "request_id", requestID(c), "had_flow", ok)
		return s.oidcRefuse(c, http.StatusBadRequest, errOIDCFlow, "")
	}
	next := f.Next
	if e := q.Get("error"); e != "" {
		// The provider refused (the person cancelled, or is not allowed
		// to use this client). Only after the state matched, so nobody
		// can make keyledger show a text of their choosing.
		code, desc := printable(e, 64), printable(q.Get("error_description"), 200)
		if err := s.store.OIDCSignInFailed(ctx, meta, "", "provider_error:"+code); err != nil {
			return err
		}
		msg := "Your identity provider did not sign you in (" + code
		if desc != "" {
			msg += ": " + desc
		}
		msg += "). Try again, or ask an admin."
		status := http.StatusBadRequest
		if code == "access_denied" {
			status = http.StatusForbidden
		}
		return s.oidcRefuse(c, status, keyledger.Errorf(keyledger.EINVALID, "%s", msg), next)
	}
	p, verifier := s.oidc.ready()
	if p == nil {
		return s.oidcUnavailable()
	}
	code := q.Get("code")
	if code == "" {
		return s.oidcRefuse(c, http.StatusBadRequest, errOIDCFlow, next)
	}
	xctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, s.oidc.http), 20*time.Second)
	defer cancel()
	tok, err := s.oauth2Config(c, p).Exchange(xctx, code, oauth2.VerifierOption(f.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) {
			s.log.Warn("single sign-on: token endpoint not reachable", "request_id", requestID(c), "err", err)
			return s.oidcUnavailable()
		}
		// The provider refused the code: used twice, expired, or redeemed
		// with the wrong PKCE verifier (a stolen code).
		return s.oidcFailed(c, "code_exchange:"+printable(re.ErrorCode, 64), errOIDCFail, "", next)
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return s.oidcFailed(c, "no_id_token", errOIDCFail, "", next)
	}
	idt, err := verifier.Verify(xctx, raw)
	if err != nil {
		s.log.Warn("single sign-on: ID token refused", "request_id", requestID(c), "err", err)
		return s.oidcFailed(c, "id_token_invalid", errOIDCFail, "", next)
	}
	// The nonce ties the token to this browser's flow: a token replayed
	// from another flow carries another nonce.
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(f.Nonce)) != 1 {
		return s.oidcFailed(c, "nonce_mismatch", errOIDCFail, "", next)
	}
	var cl oidcClaims
	if err := idt.Claims(&cl); err != nil {
		return s.oidcFailed(c, "claims_unreadable", errOIDCFail, "", next)
	}
	if len(idt.Audience) > 1 && cl.AZP != s.oidc.cfg.ClientID {
		// Several audiences: the token must say it was issued to us.
		return s.oidcFailed(c, "azp_mismatch", errOIDCFail, "", next)
	}
	email, name := cl.Email, cl.Name
	if !cl.hasEmail() {
		// A minimal ID token (sub, auth_time, nonce): the provider serves
		// the email claims from UserInfo only, as the specification lets
		// it. auth_time stays the ID token's, for the step-up clock.
		ui, reason, err := s.oidcUserInfo(xctx, c, p, tok, idt.Subject)
		if err != nil {
			return err
		}
		if reason != "" {
			return s.oidcFailed(c, reason, errOIDCFail, "", next)
		}
		email, name = ui.Email, cmp.Or(name, ui.Name)
		cl.EmailVerified = ui.EmailVerified
	}
	if email == "" || !cl.verified() {
		return s.oidcFailed(c, "email_not_verified", errOIDCEmail, email, next)
	}
	u, err := s.store.OIDCUser(ctx, meta, store.OIDCIdentity{Email: email, Name: name, Issuer: idt.Issuer, Subject: idt.Subject}, s.oidc.cfg.AllowedDomains)
	if err != nil {
		code := keyledger.ErrorCode(err)
		if code != keyledger.EUNAUTHORIZED && code != keyledger.EFORBIDDEN {
			return err
		}
		return s.oidcRefuse(c, statusOf(code), err, next)
	}
	return s.oidcStartSession(c, meta, u, cl.authTime(), next)
}

// oidcUserInfo asks the provider's UserInfo endpoint, with the access
// token just redeemed, for the email claims the ID token lacked. It
// returns them, or an audit reason when the answer cannot be used, or an
// error to return as it is (the provider could not be reached). The answer
// must be about the ID token's subject (OpenID Connect Core 5.3.2): an
// answer about someone else, a provider bug or a token mix-up, would
// otherwise sign in whoever it names. The access token is never logged;
// go-oidc sends it in the Authorization header only.
func (s *Server) oidcUserInfo(ctx context.Context, c echo.Context, p *oidc.Provider, tok *oauth2.Token, subject string) (oidcClaims, string, error) {
	var cl oidcClaims
	if p.UserInfoEndpoint() == "" {
		// The ID token was all there was, and it vouched for no email:
		// refused below as an unverified email.
		return cl, "", nil
	}
	ui, err := p.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		if _, ok := errors.AsType[*url.Error](err); ok {
			s.log.Warn("single sign-on: UserInfo endpoint not reachable", "request_id", requestID(c), "err", err)
			return cl, "", s.oidcUnavailable()
		}
		// A refusal (401: the token is not good for UserInfo) or an
		// answer that is not JSON, or whose email_verified is not a
		// boolean. The error quotes the provider's answer: cut it, and
		// blank the token should the provider have echoed it.
		msg := err.Error()
		if tok.AccessToken != "" {
			msg = strings.ReplaceAll(msg, tok.AccessToken, "[access token]")
		}
		s.log.Warn("single sign-on: UserInfo refused", "request_id", requestID(c), "err", printable(msg, 300))
		return cl, "userinfo_failed", nil
	}
	if ui.Subject == "" || ui.Subject != subject {
		s.log.Warn("single sign-on: UserInfo names another subject than the ID token", "request_id", requestID(c))
		return cl, "userinfo_subject_mismatch", nil
	}
	if err := ui.Claims(&cl); err != nil {
		return cl, "userinfo_unreadable", nil
	}
	return cl, "", nil
}

// oidcStartSession signs u in exactly as the password sign-in does; the
// step-up clock starts at the provider's auth_time.
func (s *Server) oidcStartSession(c echo.Context, meta keyledger.Actor, u *keyledger.User, authTime time.Time, next string) error {
	return s.finishSignIn(c, u, next, func() (string, error) {
		return s.store.StartOIDCSession(c.Request().Context(), meta, u, s.cfg.Sessions, authTime)
	})
}

// oidcFailed audits a failed single sign-on and shows why.
func (s *Server) oidcFailed(c echo.Context, reason string, shown error, email, next string) error {
	meta := keyledger.Actor{IP: c.RealIP(), UserAgent: c.Request().UserAgent()}
	if err := s.store.OIDCSignInFailed(c.Request().Context(), meta, email, reason); err != nil {
		return err
	}
	s.log.Info("single sign-on refused", "request_id", requestID(c), "reason", reason)
	return s.oidcRefuse(c, statusOf(keyledger.ErrorCode(shown)), shown, next)
}

// oidcRefuse shows the sign-in page with the reason, so that trying again
// is one click away.
func (s *Server) oidcRefuse(c echo.Context, status int, err error, next string) error {
	return render(c, status, templates.LoginPage(s.page(c, "Sign in", "login"),
		templates.LoginView{Message: keyledger.ErrorMessage(err), Next: next}, s.signInOptions()))
}

// printable keeps the printable characters of a text the provider sent
// (no controls, no line breaks), cut to maxRunes runes. Templates escape it.
func printable(v string, maxRunes int) string {
	var b strings.Builder
	n := 0
	for _, r := range v {
		if n >= maxRunes {
			break
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
			n++
		}
	}
	return strings.TrimSpace(b.String())
}
