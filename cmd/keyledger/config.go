package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
	"github.com/keyledger/keyledger/notify"
	"github.com/keyledger/keyledger/verify"
	"github.com/keyledger/keyledger/web"
)

// DefaultDatabaseURL matches DESIGN.md section 9.
const DefaultDatabaseURL = "postgres://postgres:postgres@127.0.0.1:5432/keyledger?sslmode=disable"

// Config is every setting, read once from the environment. Nothing below
// cmd/ reads the environment.
type Config struct {
	DatabaseURL    string
	MasterKeys     string // raw; parsed by Keyring so errors can name the variable
	MasterKeySrc   string // which variable the keys came from
	MasterKeyFile  string
	Listen         string
	BaseURL        string
	SecureCookies  bool
	TrustedProxies []*net.IPNet
	SessionIdle    time.Duration
	SessionMax     time.Duration
	LogLevel       string
	LogFormat      string
	// AutoMigrate applies migrations at serve start; off when the app
	// runs as a database role that may not change the schema.
	AutoMigrate bool

	Verify         verify.Config
	VerifyInterval time.Duration
	// ProviderSyncInterval is how often each provider connection's keys
	// are listed (KEYLEDGER_PROVIDER_SYNC_INTERVAL).
	ProviderSyncInterval time.Duration
	// CheckpointInterval is how often the audit chain's head is signed
	// and published.
	CheckpointInterval time.Duration
	// WebhookURL and SMTPURL hold credentials; never print them.
	WebhookURL string
	SMTPURL    string

	// Single sign-on (OpenID Connect); off when OIDCIssuer is empty.
	OIDCIssuer   string
	OIDCClientID string
	// OIDCClientSecret is a credential; never print it.
	OIDCClientSecret   string
	OIDCAllowedDomains []string
	// PasswordLogin: the password sign-in form works (default). Off means
	// single sign-on only; the command line still creates users.
	PasswordLogin bool

	// Metrics serves GET /metrics to MetricsToken holders and to the
	// MetricsAllow networks. MetricsToken is a credential; never print it.
	Metrics      bool
	MetricsToken string
	MetricsAllow []*net.IPNet

	// APIRate is each access token's request rate on the JSON API
	// (requests per second per replica, burst twice that); 0 means 20.
	APIRate float64
	// PprofListen, when set, serves net/http/pprof on this loopback
	// address for profiling (make loadtest -pprof uses it).
	PprofListen string
	// GoMemLimit is set when GOMEMLIMIT is: then serve leaves Go's soft
	// memory limit alone.
	GoMemLimit bool

	// WriteTimeout is the HTTP server's write timeout; a request's work
	// (and so its database statements) must end a margin before it, see
	// RequestBudget.
	WriteTimeout time.Duration
	// ShutdownGrace is how long SIGTERM waits for requests in flight
	// before telling them to give up (docs/operations.md).
	ShutdownGrace time.Duration
}

// RequestBudget is how long a request may work: the write timeout less
// the time needed to send its answer (a fifth, at most 5 s), so that a
// request stuck on the database is answered "busy" before the write
// timeout would cut its connection without any answer.
func (c *Config) RequestBudget() time.Duration {
	return c.WriteTimeout - min(c.WriteTimeout/5, 5*time.Second)
}

// configError is one clear line: the variable, what is wrong, the fix.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

func cfgErr(format string, args ...any) error { return &configError{fmt.Sprintf(format, args...)} }

// LoadConfig reads the environment through getenv. Each group of
// variables has its loader; the variables themselves (names, defaults,
// meanings) are listed once, in configVars.
func LoadConfig(getenv func(string) string) (Config, error) {
	e := env{getenv}
	var c Config
	for _, load := range []func(env, *Config) error{
		loadHTTP, loadMetrics, loadTimes, loadLogging, loadProviders, loadNotify, loadOIDC, loadTuning, loadMasterKey,
	} {
		if err := load(e, &c); err != nil {
			return c, err
		}
	}
	return c, nil
}

// loadHTTP reads the database URL and what the web server needs to know
// about where it is reached: listen address, public URL, cookies, proxies.
func loadHTTP(e env, c *Config) error {
	c.DatabaseURL = e.get("KEYLEDGER_DATABASE_URL")
	if u, err := url.Parse(c.DatabaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return cfgErr("KEYLEDGER_DATABASE_URL: want a URL like postgres://user:password@host:5432/keyledger, got something else (not shown: it may hold a password)")
	}
	c.Listen = e.get("KEYLEDGER_LISTEN")
	if _, port, err := net.SplitHostPort(c.Listen); err != nil || !validPort(port) {
		return cfgErr("KEYLEDGER_LISTEN: want host:port such as 127.0.0.1:8080 or 0.0.0.0:8080, got %q", c.Listen)
	}
	c.BaseURL = strings.TrimRight(e.get("KEYLEDGER_BASE_URL"), "/")
	if c.BaseURL == "" {
		host, port, _ := net.SplitHostPort(c.Listen)
		if host == "" || host == "0.0.0.0" || host == "::" {
			host = "localhost"
		}
		c.BaseURL = "http://" + net.JoinHostPort(host, port)
	}
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return cfgErr("KEYLEDGER_BASE_URL: want the public URL such as https://keys.example.com, got %q", c.BaseURL)
	}
	c.SecureCookies = strings.HasPrefix(c.BaseURL, "https://")
	if e.set("KEYLEDGER_SECURE_COOKIES") {
		b, err := boolVar(e, "KEYLEDGER_SECURE_COOKIES")
		if err != nil {
			return err
		}
		c.SecureCookies = b
	}
	if v := e.get("KEYLEDGER_TRUSTED_PROXIES"); v != "" {
		nets, err := web.ParseTrustedProxies(v)
		if err != nil {
			return cfgErr("KEYLEDGER_TRUSTED_PROXIES: %v; want a comma-separated list like 10.0.0.0/8,192.168.1.5", err)
		}
		c.TrustedProxies = nets
	}
	return nil
}

// loadTimes reads the session lengths, the HTTP timeouts and the
// background intervals.
func loadTimes(e env, c *Config) error {
	var err error
	for _, d := range []struct {
		name string
		dst  *time.Duration
		min  time.Duration
		why  string
	}{
		{"KEYLEDGER_SESSION_IDLE", &c.SessionIdle, 0, ""},
		{"KEYLEDGER_SESSION_MAX", &c.SessionMax, 0, ""},
		{"KEYLEDGER_WRITE_TIMEOUT", &c.WriteTimeout, time.Second, ""},
		{"KEYLEDGER_SHUTDOWN_GRACE", &c.ShutdownGrace, 0, ""},
		{"KEYLEDGER_VERIFY_INTERVAL", &c.VerifyInterval, time.Minute, " so providers are not hammered"},
		{"KEYLEDGER_PROVIDER_SYNC_INTERVAL", &c.ProviderSyncInterval, time.Minute, " so the providers' admin APIs are not hammered"},
		{"KEYLEDGER_AUDIT_CHECKPOINT_INTERVAL", &c.CheckpointInterval, time.Minute, " (each checkpoint verifies the whole chain)"},
	} {
		if *d.dst, err = duration(e, d.name); err != nil {
			return err
		}
		if *d.dst < d.min {
			return cfgErr("%s: want at least %s%s, got %s", d.name, shortDuration(d.min), d.why, *d.dst)
		}
		if d.name == "KEYLEDGER_SESSION_MAX" && c.SessionIdle > c.SessionMax {
			return cfgErr("KEYLEDGER_SESSION_IDLE (%s) is longer than KEYLEDGER_SESSION_MAX (%s); make the idle timeout the shorter one", c.SessionIdle, c.SessionMax)
		}
	}
	return nil
}

// shortDuration writes 1m rather than 1m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	s = strings.TrimSuffix(s, "0s")
	if strings.HasSuffix(s, "m") || strings.HasSuffix(s, "h") {
		return strings.TrimSuffix(s, "0m")
	}
	return d.String()
}

// loadLogging reads the log level and format.
func loadLogging(e env, c *Config) error {
	c.LogLevel = strings.ToLower(e.get("KEYLEDGER_LOG_LEVEL"))
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return cfgErr("KEYLEDGER_LOG_LEVEL: want debug, info, warn or error, got %q", c.LogLevel)
	}
	c.LogFormat = strings.ToLower(e.get("KEYLEDGER_LOG_FORMAT"))
	switch c.LogFormat {
	case "text", "json":
	default:
		return cfgErr("KEYLEDGER_LOG_FORMAT: want text or json, got %q", c.LogFormat)
	}
	return nil
}

// loadProviders reads where provider keys are checked.
func loadProviders(e env, c *Config) error {
	c.Verify = verify.Config{}
	for _, p := range []struct {
		name string
		dst  *string
	}{
		{"KEYLEDGER_OPENAI_BASE_URL", &c.Verify.OpenAIBaseURL}, {"KEYLEDGER_ANTHROPIC_BASE_URL", &c.Verify.AnthropicBaseURL},
		{"KEYLEDGER_GITHUB_BASE_URL", &c.Verify.GitHubBaseURL}, {"KEYLEDGER_STRIPE_BASE_URL", &c.Verify.StripeBaseURL},
	} {
		// Unset stays empty: the verifier owns the defaults (the table
		// documents them, config_vars_test.go checks they agree).
		if !e.set(p.name) {
			continue
		}
		v := e.get(p.name)
		if u, err := url.Parse(v); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" {
			return cfgErr("%s: want a base URL like https://api.example.com or http://127.0.0.1:9000/openai (no credentials, no query), got something else", p.name)
		}
		*p.dst = v
	}
	if _, err := verify.New(c.Verify); err != nil {
		return cfgErr("provider base URLs: %v", err)
	}
	return nil
}

// loadNotify reads the reminder channels; both URLs hold credentials.
func loadNotify(e env, c *Config) error {
	c.WebhookURL = e.get("KEYLEDGER_WEBHOOK_URL")
	if c.WebhookURL != "" {
		if _, err := notify.NewWebhook(c.WebhookURL, nil); err != nil {
			return cfgErr("KEYLEDGER_WEBHOOK_URL: %v; want the incoming-webhook URL your chat tool gave you (https://…)", err)
		}
	}
	c.SMTPURL = e.get("KEYLEDGER_SMTP_URL")
	if c.SMTPURL != "" {
		if _, err := notify.NewSMTP(c.SMTPURL); err != nil {
			return cfgErr("KEYLEDGER_SMTP_URL: %v; want smtp://user:password@host:587?from=keyledger@example.com", err)
		}
	}
	return nil
}

// loadTuning reads migrations at start, the API rate, profiling and
// whether Go's memory limit is the operator's.
func loadTuning(e env, c *Config) error {
	var err error
	if c.AutoMigrate, err = boolVar(e, "KEYLEDGER_AUTO_MIGRATE"); err != nil {
		return err
	}
	if c.APIRate, err = apiRate(e); err != nil {
		return err
	}
	if c.PprofListen, err = pprofListen(e); err != nil {
		return err
	}
	c.GoMemLimit = e.set("GOMEMLIMIT")
	return nil
}

// loadMasterKey notes where the master keys come from; Keyring reads and
// parses them, so that commands that need none (migrate) run without.
func loadMasterKey(e env, c *Config) error {
	c.MasterKeyFile = e.get("KEYLEDGER_MASTER_KEY_FILE")
	if k := e.get("KEYLEDGER_MASTER_KEY"); k != "" {
		if c.MasterKeyFile != "" {
			return cfgErr("KEYLEDGER_MASTER_KEY and KEYLEDGER_MASTER_KEY_FILE are both set; set only one")
		}
		c.MasterKeys, c.MasterKeySrc = k, "KEYLEDGER_MASTER_KEY"
	}
	return nil
}

// boolVar parses a true/false variable, its default when unset.
func boolVar(e env, name string) (bool, error) {
	v := strings.TrimSpace(e.get(name))
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, cfgErr("%s: want true or false, got %q", name, v)
	}
	return b, nil
}

// loadOIDC reads the single sign-on settings and KEYLEDGER_PASSWORD_LOGIN.
func loadOIDC(e env, c *Config) error {
	var err error
	if c.PasswordLogin, err = boolVar(e, "KEYLEDGER_PASSWORD_LOGIN"); err != nil {
		return err
	}
	c.OIDCIssuer = strings.TrimSpace(e.get("KEYLEDGER_OIDC_ISSUER"))
	c.OIDCClientID = strings.TrimSpace(e.get("KEYLEDGER_OIDC_CLIENT_ID"))
	secret, secretFile := e.get("KEYLEDGER_OIDC_CLIENT_SECRET"), e.get("KEYLEDGER_OIDC_CLIENT_SECRET_FILE")
	domains := e.get("KEYLEDGER_OIDC_ALLOWED_DOMAINS")
	if c.OIDCIssuer == "" {
		for _, v := range []struct{ name, value string }{{"KEYLEDGER_OIDC_CLIENT_ID", c.OIDCClientID}, {"KEYLEDGER_OIDC_CLIENT_SECRET", secret},
			{"KEYLEDGER_OIDC_CLIENT_SECRET_FILE", secretFile}, {"KEYLEDGER_OIDC_ALLOWED_DOMAINS", domains}} {
			if v.value != "" {
				return cfgErr("KEYLEDGER_OIDC_ISSUER: not set, but %s is; set the issuer URL too (e.g. https://login.example.com) or unset the other KEYLEDGER_OIDC_ variables", v.name)
			}
		}
		if !c.PasswordLogin {
			return cfgErr("KEYLEDGER_PASSWORD_LOGIN: false, but single sign-on is not configured (KEYLEDGER_OIDC_ISSUER), so nobody could sign in; configure single sign-on or leave password sign-in on")
		}
		return nil
	}
	u, err := url.Parse(c.OIDCIssuer)
	if err == nil && u.User != nil {
		return cfgErr("KEYLEDGER_OIDC_ISSUER: want the provider's issuer URL without credentials in it (not shown); the client secret goes in KEYLEDGER_OIDC_CLIENT_SECRET")
	}
	if err != nil || u.Host == "" || u.RawQuery != "" || u.Fragment != "" ||
		(u.Scheme != "https" && (u.Scheme != "http" || !isLoopbackHost(u.Hostname()))) {
		return cfgErr("KEYLEDGER_OIDC_ISSUER: want the provider's https issuer URL such as https://login.example.com/realms/acme (http only for localhost), got %q", c.OIDCIssuer)
	}
	if c.OIDCClientID == "" {
		return cfgErr("KEYLEDGER_OIDC_CLIENT_ID: not set; want the client id keyledger is registered under at %s", c.OIDCIssuer)
	}
	switch {
	case secret != "" && secretFile != "":
		return cfgErr("KEYLEDGER_OIDC_CLIENT_SECRET and KEYLEDGER_OIDC_CLIENT_SECRET_FILE are both set; set only one")
	case secretFile != "":
		b, err := os.ReadFile(secretFile)
		if err != nil {
			return cfgErr("KEYLEDGER_OIDC_CLIENT_SECRET_FILE: cannot read it: %v", err)
		}
		if secret = strings.TrimSpace(string(b)); secret == "" {
			return cfgErr("KEYLEDGER_OIDC_CLIENT_SECRET_FILE: %s is empty; put the client secret from the identity provider in it", secretFile)
		}
	case secret == "":
		return cfgErr("KEYLEDGER_OIDC_CLIENT_SECRET: not set; want the client secret from the identity provider (or name a file holding it in KEYLEDGER_OIDC_CLIENT_SECRET_FILE)")
	}
	if strings.ContainsAny(secret, "\r\n") {
		return cfgErr("KEYLEDGER_OIDC_CLIENT_SECRET: spans several lines (not shown); want the client secret on one line")
	}
	c.OIDCClientSecret = strings.TrimSpace(secret)
	c.OIDCAllowedDomains = nil
	for _, d := range strings.Split(domains, ",") {
		d = strings.ToLower(strings.TrimPrefix(strings.TrimSpace(d), "@"))
		if d == "" {
			continue
		}
		if !validDomain(d) {
			return cfgErr("KEYLEDGER_OIDC_ALLOWED_DOMAINS: %q is not an email domain; want a comma-separated list like example.com,example.org (no wildcards)", d)
		}
		c.OIDCAllowedDomains = append(c.OIDCAllowedDomains, d)
	}
	return nil
}

// loadMetrics reads KEYLEDGER_METRICS (off by default) and, when it is on,
// who may scrape: KEYLEDGER_METRICS_TOKEN and KEYLEDGER_METRICS_ALLOW.
// Off, the other two are ignored.
func loadMetrics(e env, c *Config) error {
	var err error
	if c.Metrics, err = boolVar(e, "KEYLEDGER_METRICS"); err != nil {
		return err
	}
	if !c.Metrics {
		return nil
	}
	token := strings.TrimSpace(e.get("KEYLEDGER_METRICS_TOKEN"))
	if strings.IndexFunc(token, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return cfgErr("KEYLEDGER_METRICS_TOKEN: contains spaces or control characters (not shown); want one random string such as the output of 'openssl rand -hex 32'")
	}
	if token != "" && len(token) < 16 {
		return cfgErr("KEYLEDGER_METRICS_TOKEN: too short (not shown); want at least 16 random characters, such as the output of 'openssl rand -hex 32'")
	}
	c.MetricsToken = token
	if v := e.get("KEYLEDGER_METRICS_ALLOW"); v != "" {
		nets, err := web.ParseTrustedProxies(v)
		if err != nil {
			return cfgErr("KEYLEDGER_METRICS_ALLOW: %v; want a comma-separated list of networks allowed to scrape, like 10.0.0.0/8,192.168.1.5", err)
		}
		c.MetricsAllow = nets
	}
	if c.MetricsToken == "" && len(c.MetricsAllow) == 0 {
		return cfgErr("KEYLEDGER_METRICS: true, but neither KEYLEDGER_METRICS_TOKEN nor KEYLEDGER_METRICS_ALLOW is set, so nobody could scrape /metrics; set a bearer token, the networks allowed to scrape (e.g. 10.0.0.0/8), or both")
	}
	return nil
}

func isLoopbackHost(h string) bool {
	return h == "localhost" || h == "127.0.0.1" || h == "::1"
}

// validDomain accepts a DNS name of at least two labels: letters, digits
// and inner hyphens.
func validDomain(d string) bool {
	labels := strings.Split(d, ".")
	if len(d) > 253 || len(labels) < 2 {
		return false
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for _, r := range l {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' {
				return false
			}
		}
	}
	return true
}

// validPort accepts a numeric port, 0 to 65535: net.Listen would also take
// a service name, but the derived base URL could not.
func validPort(p string) bool {
	n, err := strconv.Atoi(p)
	return err == nil && n >= 0 && n <= 65535 && p == strconv.Itoa(n)
}

// duration parses a duration variable, its default when unset.
func duration(e env, name string) (time.Duration, error) {
	v := e.get(name)
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, cfgErr("%s: want a positive duration such as 30m or 8h, got %q", name, v)
	}
	return d, nil
}

// Keyring loads the master keys: from KEYLEDGER_MASTER_KEY, or from the
// file named by KEYLEDGER_MASTER_KEY_FILE. Several keys may be given, one
// per line or comma-separated; the first is primary (used for new values),
// the rest are older keys kept only until `masterkey rotate` has moved
// everything off them.
func (c *Config) Keyring() (*crypto.Keyring, error) {
	raw, src := c.MasterKeys, c.MasterKeySrc
	if raw == "" && c.MasterKeyFile != "" {
		b, err := os.ReadFile(c.MasterKeyFile)
		if errors.Is(err, os.ErrNotExist) {
			return nil, cfgErr("KEYLEDGER_MASTER_KEY_FILE: %s does not exist; if the database already holds keys, name the key file they were stored with (a new key cannot open them); only for a new installation create one with 'keyledger masterkey generate > %s' (and back it up apart from the database)", c.MasterKeyFile, c.MasterKeyFile)
		}
		if err != nil {
			return nil, cfgErr("KEYLEDGER_MASTER_KEY_FILE: cannot read %s: %v", c.MasterKeyFile, err)
		}
		raw, src = string(b), "KEYLEDGER_MASTER_KEY_FILE ("+c.MasterKeyFile+")"
	}
	if strings.TrimSpace(raw) == "" && c.MasterKeys == "" && c.MasterKeyFile != "" {
		return nil, cfgErr("KEYLEDGER_MASTER_KEY_FILE: %s is empty; put the master key the database was set up with in it (only for a new installation a new one: 'keyledger masterkey generate > %s')", c.MasterKeyFile, c.MasterKeyFile)
	}
	if strings.TrimSpace(raw) == "" {
		return nil, cfgErr("KEYLEDGER_MASTER_KEY: not set; 'make run' keeps the development key in %s of the repository: run from there or export KEYLEDGER_MASTER_KEY_FILE=<repository>/%s. Only for a new installation (an empty database) create a key with 'keyledger masterkey generate': a new key cannot open the values already stored", devKeyFile, devKeyFile)
	}
	// Lines first, so that a comment line may itself contain commas.
	var keks []crypto.KEK
	var parts []string
	for _, line := range strings.FieldsFunc(raw, func(r rune) bool { return r == '\n' || r == '\r' }) {
		if line = strings.TrimSpace(line); line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, part := range strings.Split(line, ",") {
			if part = strings.TrimSpace(part); part != "" && !strings.HasPrefix(part, "#") {
				parts = append(parts, part)
			}
		}
	}
	for i, part := range parts {
		k, err := crypto.ParseKEK(part)
		if err != nil {
			which := "key"
			if len(parts) > 1 {
				which = fmt.Sprintf("key #%d", i+1)
			}
			return nil, cfgErr("%s: %s: %v; create one with 'keyledger masterkey generate'", src, which, err)
		}
		keks = append(keks, k)
	}
	if len(keks) == 0 {
		return nil, cfgErr("%s: holds no key; create one with 'keyledger masterkey generate'", src)
	}
	r, err := crypto.NewKeyring(keks[0], keks[1:]...)
	if err != nil {
		return nil, cfgErr("%s: %v", src, err)
	}
	return r, nil
}

// WebConfig is the part of the configuration the web layer needs.
func (c *Config) WebConfig() web.Config {
	t := web.DefaultSessions()
	t.Idle, t.Absolute = c.SessionIdle, c.SessionMax
	wc := web.Config{BaseURL: c.BaseURL, SecureCookies: c.SecureCookies, Sessions: t, TrustedProxies: c.TrustedProxies,
		PasswordLoginOff: !c.PasswordLogin, APIRate: c.APIRate}
	wc.Metrics = web.MetricsConfig{Enabled: c.Metrics, Token: c.MetricsToken, Allow: c.MetricsAllow}
	if c.OIDCIssuer != "" {
		wc.OIDC = &web.OIDCConfig{Issuer: c.OIDCIssuer, ClientID: c.OIDCClientID, ClientSecret: c.OIDCClientSecret,
			AllowedDomains: c.OIDCAllowedDomains}
	}
	return wc
}

// Notifier builds the reminder channels that are configured, or nil.
func (c *Config) Notifier() (keyledger.Notifier, error) {
	var m notify.Multi
	if c.WebhookURL != "" {
		w, err := notify.NewWebhook(c.WebhookURL, nil)
		if err != nil {
			return nil, cfgErr("KEYLEDGER_WEBHOOK_URL: %v", err)
		}
		m = append(m, w)
	}
	if c.SMTPURL != "" {
		s, err := notify.NewSMTP(c.SMTPURL)
		if err != nil {
			return nil, cfgErr("KEYLEDGER_SMTP_URL: %v", err)
		}
		m = append(m, s)
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// CheckpointPublisher is where audit checkpoints are posted besides the
// log: the chat webhook, when one is set (email is for people, not for
// an hourly token), or nil.
func (c *Config) CheckpointPublisher() (keyledger.CheckpointPublisher, error) {
	if c.WebhookURL == "" {
		return nil, nil
	}
	w, err := notify.NewWebhook(c.WebhookURL, nil)
	if err != nil {
		return nil, cfgErr("KEYLEDGER_WEBHOOK_URL: %v", err)
	}
	return w, nil
}

// apiRate reads KEYLEDGER_API_RATE: a token's requests per second on the
// JSON API; its default is in configVars.
func apiRate(e env) (float64, error) {
	v := strings.TrimSpace(e.get("KEYLEDGER_API_RATE"))
	r, err := strconv.ParseFloat(v, 64)
	if err != nil || r < 1 || r > 1e6 || math.IsNaN(r) {
		return 0, cfgErr("KEYLEDGER_API_RATE: want requests per second per token, a number from 1 to 1000000 (default 20), got %q", v)
	}
	return r, nil
}

// pprofListen reads KEYLEDGER_PPROF_LISTEN. Profiles show heap contents
// and goroutine stacks, so only a loopback address is accepted: reaching it
// takes a shell on the host.
func pprofListen(e env) (string, error) {
	v := strings.TrimSpace(e.get("KEYLEDGER_PPROF_LISTEN"))
	if v == "" {
		return "", nil
	}
	host, port, err := net.SplitHostPort(v)
	ip := net.ParseIP(host)
	if err != nil || port == "" || ip == nil || !ip.IsLoopback() {
		return "", cfgErr("KEYLEDGER_PPROF_LISTEN: want a loopback host:port such as 127.0.0.1:6060 (profiles expose memory, so no other address is allowed), got %q", v)
	}
	return v, nil
}

// devKeyFile is where `make run` keeps the development master key, relative
// to the repository (the Makefile's DEV_MASTER_KEY_FILE).
const devKeyFile = ".keyledger/master.key"

// useDevKey points a server command run without a master key at the
// development key `make run` made in the working directory, and says so.
// It only reads a file in the directory the user runs keyledger from, and
// refuses one that group or others may read: that is not the 0600 file
// make run writes, and a key others can read is no secret.
func useDevKey(c *Config, stderr io.Writer) error {
	if c.MasterKeys != "" || c.MasterKeyFile != "" {
		return nil
	}
	fi, err := os.Lstat(devKeyFile)
	if err != nil || !fi.Mode().IsRegular() {
		return nil // Keyring says "not set" and where to look
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return cfgErr("KEYLEDGER_MASTER_KEY: not set, and ./%s is not used because group or others may read it (mode %04o); chmod 600 %s, or set KEYLEDGER_MASTER_KEY_FILE", devKeyFile, perm, devKeyFile)
	}
	c.MasterKeyFile = devKeyFile
	fmt.Fprintf(stderr, "keyledger: using the development master key ./%s (made by make run); set KEYLEDGER_MASTER_KEY_FILE to use another\n", devKeyFile)
	return nil
}
