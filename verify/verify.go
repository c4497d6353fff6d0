// Package verify checks API keys against their providers (DESIGN.md §5,
// "Verify"): it makes one cheap, read-only, authenticated request and
// classifies the answer as one of keyledger's Verify* results with a short
// message for people.
//
// What a check proves: that the provider accepts the key for a harmless read
// (OpenAI and Anthropic: list models; GitHub: the token's user; Stripe: the
// balance). Listing models costs nothing, so an OpenAI or Anthropic key whose
// account has run out of credit usually still checks "ok"; "quota" is only
// reported when the provider says so for this request.
//
// Safety:
//   - Every check has a deadline (Config.Timeout, 10s by default) on top of
//     the caller's context.
//   - Redirects are followed only to the same scheme, host and port, at most
//     3 times; a redirect anywhere else is refused before anything is sent
//     there, so the key never leaves the configured host.
//   - At most 64 KiB of a response body is read.
//   - Messages are built from fixed text, the provider's name, the HTTP status
//     and at most one short allow-listed error code token (^[a-z_]{1,40}$, and
//     never a token that overlaps the key). Nothing else the provider says, no
//     URL and no Go error text is copied into a message, so a provider that
//     echoes the key back cannot make it appear in a result.
//
// Providers keyledger cannot check (AWS, anything user-typed) are not an
// error: Supports reports false and Verify returns a VerifyResult with an
// empty Result and a message asking a person to check the key by hand
// (which the UI records as keyledger.VerifyManual).
package verify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/keyledger/keyledger"
)

// Defaults for Config fields left zero.
const (
	DefaultOpenAIBaseURL    = "https://api.openai.com"
	DefaultAnthropicBaseURL = "https://api.anthropic.com"
	DefaultGitHubBaseURL    = "https://api.github.com"
	DefaultStripeBaseURL    = "https://api.stripe.com"
	DefaultTimeout          = 10 * time.Second
	DefaultUserAgent        = "keyledger-verify/1"
)

const (
	// maxBody is how much of a response body is read; error bodies are a
	// few hundred bytes, and 2xx bodies are not needed at all.
	maxBody = 64 << 10
	// maxRedirects is how many same-origin redirects are followed.
	maxRedirects = 3
)

// Config configures a Verifier. Zero fields take the defaults above. Base
// URLs may carry a path prefix (a proxy such as http://proxy/openai gives
// http://proxy/openai/v1/models).
type Config struct {
	OpenAIBaseURL    string        // default https://api.openai.com
	AnthropicBaseURL string        // default https://api.anthropic.com
	GitHubBaseURL    string        // default https://api.github.com
	StripeBaseURL    string        // default https://api.stripe.com
	Timeout          time.Duration // default 10s; a deadline per check
	// HTTPClient is optional. The Verifier uses a copy of it whose
	// CheckRedirect is replaced by the same-origin policy and whose Jar is
	// dropped; the caller's client is not modified. When nil, New builds a
	// client with its own transport (proxy settings from the environment).
	HTTPClient *http.Client
	UserAgent  string // default "keyledger-verify/1"
}

// Verifier checks keys against their providers. It is safe for concurrent
// use.
type Verifier struct {
	client    *http.Client
	timeout   time.Duration
	userAgent string
	targets   map[keyledger.Provider]target
}

// target is one provider's checker and its validated base URL.
type target struct {
	checker checker
	base    *url.URL
}

var _ keyledger.Verifier = (*Verifier)(nil)

// New validates cfg and returns a Verifier. Error messages name the Config
// field at fault and never repeat its value (a URL could carry a password).
func New(cfg Config) (*Verifier, error) {
	v := &Verifier{
		timeout:   cfg.Timeout,
		userAgent: cfg.UserAgent,
		targets:   make(map[keyledger.Provider]target, 4),
	}
	if v.timeout < 0 {
		return nil, errors.New("verify: Timeout must not be negative")
	}
	if v.timeout == 0 {
		v.timeout = DefaultTimeout
	}
	if v.userAgent == "" {
		v.userAgent = DefaultUserAgent
	}
	if !validHeaderValue(v.userAgent, true) {
		return nil, errors.New("verify: UserAgent must be printable ASCII")
	}

	bases := []struct {
		field, value, def string
		provider          keyledger.Provider
		checker           checker
	}{
		{"OpenAIBaseURL", cfg.OpenAIBaseURL, DefaultOpenAIBaseURL, keyledger.ProviderOpenAI, openAI{}},
		{"AnthropicBaseURL", cfg.AnthropicBaseURL, DefaultAnthropicBaseURL, keyledger.ProviderAnthropic, anthropic{}},
		{"GitHubBaseURL", cfg.GitHubBaseURL, DefaultGitHubBaseURL, keyledger.ProviderGitHub, gitHub{}},
		{"StripeBaseURL", cfg.StripeBaseURL, DefaultStripeBaseURL, keyledger.ProviderStripe, stripe{}},
	}
	for _, b := range bases {
		raw := b.value
		if raw == "" {
			raw = b.def
		}
		u, err := keyledger.ParseBaseURL(raw)
		if err != nil {
			return nil, fmt.Errorf("verify: %s %s", b.field, err.Error())
		}
		v.targets[b.provider] = target{checker: b.checker, base: u}
	}

	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		v.client = &c
	} else {
		v.client = &http.Client{Transport: keyledger.ProviderTransport()}
	}
	v.client.CheckRedirect = checkRedirect
	v.client.Jar = nil
	return v, nil
}

// Supports reports whether keyledger can check p's keys: OpenAI, Anthropic,
// GitHub and Stripe.
func (v *Verifier) Supports(p keyledger.Provider) bool {
	_, ok := v.targets[p]
	return ok
}

// Verify checks secret against p and classifies the answer. It never sends
// the key anywhere but p's configured host. For a provider Supports rejects,
// it sends nothing and returns an empty Result with a message asking for a
// check by hand.
func (v *Verifier) Verify(ctx context.Context, p keyledger.Provider, secret string) keyledger.VerifyResult {
	return scrub(v.verify(ctx, p, secret), secret)
}

func (v *Verifier) verify(ctx context.Context, p keyledger.Provider, secret string) keyledger.VerifyResult {
	t, ok := v.targets[p]
	if !ok {
		label := p.Label()
		if label == "" {
			label = "these"
		}
		return keyledger.VerifyResult{
			Result:  "",
			Message: "keyledger cannot check " + label + " keys automatically; mark it verified by hand.",
		}
	}
	label := p.Label()
	if secret == "" {
		return result(keyledger.VerifyInvalid, "The key is empty; nothing was sent to %s.", label)
	}
	if !validHeaderValue(secret, false) {
		// No key of these providers has spaces or control characters, and
		// such a value cannot be sent in a header as it is.
		return result(keyledger.VerifyInvalid, "The key contains spaces or characters no %s key has; nothing was sent.", label)
	}

	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()

	req, err := t.checker.request(ctx, t.base, secret)
	if err != nil {
		return result(keyledger.VerifyUnreachable, "Could not build the request to %s.", label)
	}
	req.Header.Set("User-Agent", v.userAgent)

	resp, err := v.client.Do(req)
	if err != nil {
		return v.networkFailure(parent, ctx, label, err)
	}
	defer func() { _ = resp.Body.Close() }() // a response body: closing it loses nothing
	// A read error (deadline, reset) leaves a partial body; the status
	// line already says what happened, so classify with what was read.
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	return t.checker.classify(answer{
		label:  label,
		status: resp.StatusCode,
		header: resp.Header,
		body:   body,
		secret: secret,
	})
}

// Errors from checkRedirect; the client wraps them in a *url.Error.
var (
	errOffOrigin        = errors.New("redirect to another origin refused")
	errTooManyRedirects = errors.New("too many redirects")
)

// checkRedirect follows a redirect only to the scheme, host and port of the
// first request, at most maxRedirects times. Refusing here happens before
// any request reaches the new location.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) > maxRedirects {
		return errTooManyRedirects
	}
	if !sameOrigin(via[0].URL, req.URL) {
		return errOffOrigin
	}
	return nil
}

func sameOrigin(a, b *url.URL) bool {
	return strings.EqualFold(a.Scheme, b.Scheme) &&
		strings.EqualFold(a.Hostname(), b.Hostname()) &&
		effectivePort(a) == effectivePort(b)
}

func effectivePort(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	switch strings.ToLower(u.Scheme) {
	case "http":
		return "80"
	case "https":
		return "443"
	}
	return ""
}

// networkFailure turns a failed request into an unreachable result. The
// error's text is never shown: it holds URLs and whatever a proxy said.
func (v *Verifier) networkFailure(parent, ctx context.Context, label string, err error) keyledger.VerifyResult {
	unreachable := func(format string, args ...any) keyledger.VerifyResult {
		return result(keyledger.VerifyUnreachable, format, args...)
	}
	var (
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		recErr  tls.RecordHeaderError
	)
	switch {
	case errors.Is(err, errOffOrigin):
		return unreachable("%s redirected the request elsewhere; keyledger did not follow, and the key was not sent there.", label)
	case errors.Is(err, errTooManyRedirects):
		return unreachable("%s redirected the request too many times.", label)
	case parent.Err() != nil && errors.Is(parent.Err(), context.DeadlineExceeded):
		return unreachable("%s did not answer in time.", label)
	case parent.Err() != nil:
		return unreachable("The check was cancelled before %s answered.", label)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return unreachable("%s did not answer within %s.", label, v.timeout)
	case isTimeout(err):
		return unreachable("%s did not answer in time.", label)
	case errors.As(err, &dnsErr):
		return unreachable("Could not reach %s: its host name did not resolve.", label)
	case errors.Is(err, syscall.ECONNREFUSED):
		return unreachable("Could not reach %s: the connection was refused.", label)
	case errors.As(err, &certErr), errors.As(err, &recErr):
		return unreachable("Could not reach %s: the TLS handshake failed.", label)
	}
	return unreachable("Could not reach %s: network error.", label)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func result(res, format string, args ...any) keyledger.VerifyResult {
	return keyledger.VerifyResult{Result: res, Message: fmt.Sprintf(format, args...)}
}

// scrub is the last line of defence: messages are built so that they cannot
// contain the key, but if one ever did (a key that happens to be a word of
// the fixed text), the message is replaced rather than shown. Values under
// 4 bytes are not looked for: they cannot be told apart from the words and
// spaces of any message, and reveal nothing about a real key.
func scrub(r keyledger.VerifyResult, secret string) keyledger.VerifyResult {
	if len(secret) < 4 || !strings.Contains(r.Message, secret) {
		return r
	}
	const fallback = "Checked; the details are withheld."
	if strings.Contains(fallback, secret) {
		r.Message = ""
	} else {
		r.Message = fallback
	}
	return r
}

// validHeaderValue reports whether s is printable ASCII (a space allowed only
// when spaceOK), so it can be sent in a header unchanged.
func validHeaderValue(s string, spaceOK bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == ' ' && spaceOK {
			continue
		}
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}
