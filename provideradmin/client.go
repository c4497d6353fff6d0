package provideradmin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/keyledger/keyledger"
)

// Defaults for Config fields left zero.
const (
	DefaultOpenAIBaseURL    = "https://api.openai.com"
	DefaultAnthropicBaseURL = "https://api.anthropic.com"
	DefaultTimeout          = 30 * time.Second
	DefaultConcurrency      = 6
	DefaultMaxRetryWait     = 2 * time.Second
	DefaultUserAgent        = "keyledger-provideradmin/1"
)

const (
	// maxBody caps a successful answer. The largest page we ask for is a
	// usage page of 7 daily buckets grouped by key: 2,000 busy keys make
	// about 5 MB of JSON, so 32 MiB leaves room without letting a broken
	// proxy fill memory.
	maxBody = 32 << 20
	// maxErrorBody caps an error answer; providers send a few hundred bytes.
	maxErrorBody = 64 << 10
	// maxMessage caps the provider's error message kept in an error.
	maxMessage = 300
	// maxRetries is how many times a 429 with a short Retry-After is
	// retried before the rate limit goes back to the caller.
	maxRetries = 2
	// maxPages stops a provider that answers has_more forever.
	maxPages = 10000
)

// Config configures a Client. Zero fields take the defaults above. Base
// URLs may carry a path prefix (http://proxy/openai gives
// http://proxy/openai/v1/organization/projects), as in package verify;
// cmd/keyledger fills them from KEYLEDGER_OPENAI_BASE_URL and
// KEYLEDGER_ANTHROPIC_BASE_URL.
type Config struct {
	OpenAIBaseURL    string
	AnthropicBaseURL string
	// Timeout bounds each HTTP request (not a whole paginated listing).
	Timeout time.Duration
	// Concurrency bounds the requests one Keys call has in flight when it
	// lists OpenAI projects' keys.
	Concurrency int
	// MaxRetryWait is the longest Retry-After a 429 is retried for.
	// Negative disables retries.
	MaxRetryWait time.Duration
	// HTTPClient is optional. The Client uses a copy whose CheckRedirect
	// refuses every redirect and whose Jar is dropped.
	HTTPClient *http.Client
	// Logger receives one debug line per request (method, path, status,
	// duration: never a header) and warnings on retries. Default: discard.
	Logger    *slog.Logger
	UserAgent string
}

// Validate reports a Config that New would turn into a Client whose every
// call fails. Messages name the field and never repeat its value.
func (c Config) Validate() error {
	for _, f := range []struct{ field, value string }{
		{"OpenAIBaseURL", c.OpenAIBaseURL}, {"AnthropicBaseURL", c.AnthropicBaseURL},
	} {
		if f.value == "" {
			continue
		}
		if _, err := parseBaseURL(f.value); err != nil {
			return fmt.Errorf("provideradmin: %s %w", f.field, err)
		}
	}
	switch {
	case c.Timeout < 0:
		return errors.New("provideradmin: Timeout must not be negative")
	case c.Concurrency < 0:
		return errors.New("provideradmin: Concurrency must not be negative")
	}
	return nil
}

// Client implements keyledger.ProviderAdmin for OpenAI and Anthropic. It is
// safe for concurrent use.
type Client struct {
	http         *http.Client
	timeout      time.Duration
	concurrency  int
	maxRetryWait time.Duration
	log          *slog.Logger
	userAgent    string
	openAI       *url.URL
	anthropic    *url.URL
	configErr    error
	sleep        func(ctx context.Context, d time.Duration) error
}

var (
	_ keyledger.ProviderAdmin       = (*Client)(nil)
	_ keyledger.ServiceAccountAdmin = (*Client)(nil)
)

// New returns a Client for cfg. A Config that Validate rejects gives a
// Client whose calls all return that error, so cmd should call Validate at
// startup.
func New(cfg Config) *Client {
	c := &Client{
		timeout:      cfg.Timeout,
		concurrency:  cfg.Concurrency,
		maxRetryWait: cfg.MaxRetryWait,
		log:          cfg.Logger,
		userAgent:    cfg.UserAgent,
		configErr:    cfg.Validate(),
		sleep:        sleepCtx,
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.concurrency <= 0 {
		c.concurrency = DefaultConcurrency
	}
	if c.maxRetryWait == 0 {
		c.maxRetryWait = DefaultMaxRetryWait
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.userAgent == "" {
		c.userAgent = DefaultUserAgent
	}
	c.openAI = baseOrDefault(cfg.OpenAIBaseURL, DefaultOpenAIBaseURL)
	c.anthropic = baseOrDefault(cfg.AnthropicBaseURL, DefaultAnthropicBaseURL)

	if cfg.HTTPClient != nil {
		hc := *cfg.HTTPClient
		c.http = &hc
	} else {
		tr := keyledger.ProviderTransport()
		// Enough idle connections for the per-project fan-out to reuse.
		tr.MaxIdleConnsPerHost = 16
		c.http = &http.Client{Transport: tr}
	}
	c.http.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	c.http.Jar = nil
	return c
}

func baseOrDefault(raw, def string) *url.URL {
	if raw == "" {
		raw = def
	}
	u, err := parseBaseURL(raw)
	if err != nil {
		return nil // configErr says why
	}
	return u
}

// parseBaseURL is keyledger.ParseBaseURL without a trailing slash on the
// path, so joined endpoint paths never double it.
func parseBaseURL(raw string) (*url.URL, error) {
	u, err := keyledger.ParseBaseURL(raw)
	if err != nil {
		return nil, err
	}
	u.Path = strings.TrimRight(u.Path, "/")
	return u, nil
}

// Supports reports whether keyledger has an admin client for p: OpenAI and
// Anthropic.
func (c *Client) Supports(p keyledger.Provider) bool {
	return p == keyledger.ProviderOpenAI || p == keyledger.ProviderAnthropic
}

// api is one provider's admin API.
type api interface {
	check(ctx context.Context) error
	keys(ctx context.Context) ([]keyledger.ProviderKey, error)
	usage(ctx context.Context, since time.Time) ([]keyledger.ProviderUsage, error)
	revoke(ctx context.Context, key keyledger.ProviderKeyRef) error
}

func (c *Client) api(cred keyledger.ProviderCredential) (api, error) {
	if c.configErr != nil {
		return nil, c.configErr
	}
	if cred.AdminKey == "" || !validHeaderValue(cred.AdminKey) {
		// Nothing is sent: such a value is no admin key and cannot travel
		// in a header as it is.
		return nil, &keyledger.ProviderAdminError{Kind: keyledger.ProviderUnauthorized,
			Message: "the admin key is empty or has characters no admin key has; nothing was sent"}
	}
	switch cred.Provider {
	case keyledger.ProviderOpenAI:
		return &openAI{c: c, key: cred.AdminKey}, nil
	case keyledger.ProviderAnthropic:
		return &anthropic{c: c, key: cred.AdminKey}, nil
	}
	return nil, fmt.Errorf("provideradmin: no admin client for provider %q", cred.Provider)
}

// Check makes one cheap list call (limit=1) to prove the admin key works.
func (c *Client) Check(ctx context.Context, cred keyledger.ProviderCredential) error {
	a, err := c.api(cred)
	if err != nil {
		return err
	}
	return a.check(ctx)
}

// Keys lists every API key the admin key can see, following pagination.
func (c *Client) Keys(ctx context.Context, cred keyledger.ProviderCredential) ([]keyledger.ProviderKey, error) {
	a, err := c.api(cred)
	if err != nil {
		return nil, err
	}
	return a.keys(ctx)
}

// Usage reads requests and tokens per key per UTC day from since to now.
func (c *Client) Usage(ctx context.Context, cred keyledger.ProviderCredential, since time.Time) ([]keyledger.ProviderUsage, error) {
	a, err := c.api(cred)
	if err != nil {
		return nil, err
	}
	return a.usage(ctx, since.UTC())
}

// Revoke deletes (OpenAI) or deactivates (Anthropic) key; a 404 is done.
func (c *Client) Revoke(ctx context.Context, cred keyledger.ProviderCredential, key keyledger.ProviderKeyRef) error {
	a, err := c.api(cred)
	if err != nil {
		return err
	}
	if !validID(key.ID) {
		return &keyledger.ProviderAdminError{Kind: keyledger.ProviderRejected, Message: "the provider key id is empty or malformed; nothing was sent"}
	}
	return a.revoke(ctx, key)
}

// validID accepts the ids providers hand out (key_…, apikey_…, proj_…,
// wrkspc_…): a short run of letters, digits, '_' and '-'. Anything else
// never reaches a URL path.
func validID(id string) bool {
	if id == "" || len(id) > 200 {
		return false
	}
	for _, r := range id {
		ok := r == '_' || r == '-' || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9')
		if !ok {
			return false
		}
	}
	return true
}

// validHeaderValue reports whether s can be sent as a header value as it
// is: printable ASCII without spaces.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// errorMessage reads the message of an error answer. Both providers put
// it at error.message: OpenAI's {"error": {"message": …}} and Anthropic's
// {"type": "error", "error": {"type": …, "message": …}}.
func errorMessage(body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return ""
	}
	return e.Error.Message
}
