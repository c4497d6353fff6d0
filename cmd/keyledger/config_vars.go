package main

import (
	"fmt"
	"strings"
)

// envVar is one environment variable keyledger reads. configVars is the one
// place a variable's name, default and meaning are written: LoadConfig reads
// only names in it (env.get panics on any other), the help text lists them,
// and the table in docs/configuration.md is generated from it
// (`make config-docs`; config_vars_test.go fails when they disagree).
type envVar struct {
	Name string
	// Default is the value used when the variable is unset or empty,
	// written as a user would set it; empty for none.
	Default string
	// DefaultDoc describes a default that is derived rather than fixed
	// (it is shown instead of Default).
	DefaultDoc string
	// Short is the help text's one-line description (plain text).
	Short string
	// Doc is the description in docs/configuration.md (Markdown, one line).
	Doc string
	// Client variables are read by the client commands, not the server.
	Client bool
}

// configVars lists every variable, in the order of the documentation.
func configVars() []envVar {
	return []envVar{
		{Name: "KEYLEDGER_DATABASE_URL", Default: DefaultDatabaseURL,
			Short: "Postgres connection URL",
			Doc:   "Postgres connection URL"},
		{Name: "KEYLEDGER_MASTER_KEY",
			Short: "base64 master key(s), comma-separated, the first is primary",
			Doc:   "base64 master key(s); several separated by commas, the first is primary"},
		{Name: "KEYLEDGER_MASTER_KEY_FILE", DefaultDoc: "`./.keyledger/master.key` if it exists (mode 0600)",
			Short: "file holding the master key(s), one per line",
			Doc:   "file holding the master key(s), one per line (use instead of the variable). `make run` creates `.keyledger/master.key`; when neither variable is set, server commands run in the directory holding it use it and say so"},
		{Name: "KEYLEDGER_LISTEN", Default: "127.0.0.1:8080",
			Short: "address to listen on",
			Doc:   "address to listen on (`0.0.0.0:8080` in the container)"},
		{Name: "KEYLEDGER_BASE_URL", DefaultDoc: "`http://<listen address>`",
			Short: "public URL; its origin is trusted for form posts",
			Doc:   "public URL; its origin is trusted for form posts behind a proxy"},
		{Name: "KEYLEDGER_SECURE_COOKIES", DefaultDoc: "true when the base URL is `https://`",
			Short: "Secure + __Host- cookies and HSTS",
			Doc:   "`Secure` + `__Host-` cookies and HSTS; set `true` behind TLS"},
		{Name: "KEYLEDGER_TRUSTED_PROXIES",
			Short: "CIDRs whose X-Forwarded-For is believed",
			Doc:   "CIDRs whose `X-Forwarded-For` is believed (otherwise the TCP peer is the client)"},
		{Name: "KEYLEDGER_SESSION_IDLE", Default: "1h",
			Short: "sign out after this long without a request",
			Doc:   "sign out after this long without a request"},
		{Name: "KEYLEDGER_SESSION_MAX", Default: "12h",
			Short: "sign out this long after sign-in",
			Doc:   "sign out this long after sign-in, whatever happens"},
		{Name: "KEYLEDGER_LOG_LEVEL", Default: "info",
			Short: "debug, info, warn or error",
			Doc:   "`debug`, `info`, `warn` or `error`"},
		{Name: "KEYLEDGER_LOG_FORMAT", Default: "text",
			Short: "text or json",
			Doc:   "`text` or `json`"},
		{Name: "KEYLEDGER_SERVER", Client: true,
			Short: "the server URL",
			Doc:   "client only: server URL, overriding `keyledger login`'s config file"},
		{Name: "KEYLEDGER_TOKEN", Client: true,
			Short: "a personal access token",
			Doc:   "client only: access token, overriding `keyledger login`'s config file"},
		{Name: "KEYLEDGER_AUTO_MIGRATE", Default: "true",
			Short: "apply migrations when serve starts",
			Doc:   "apply migrations when `serve` starts; `false` when the app role may not change the schema"},
		{Name: "KEYLEDGER_METRICS", Default: "false",
			Short: "serve Prometheus metrics at GET /metrics",
			Doc:   "`true` serves Prometheus metrics at `GET /metrics` (see [Operations → Metrics series](operations.md#metrics-series)); needs `KEYLEDGER_METRICS_TOKEN`, `KEYLEDGER_METRICS_ALLOW` or both. Off, `/metrics` answers 404"},
		{Name: "KEYLEDGER_METRICS_TOKEN",
			Short: "bearer token that may read /metrics (16+ characters)",
			Doc:   "scrapers that send `Authorization: Bearer <token>` may read `/metrics`; at least 16 characters (`openssl rand -hex 32`); never logged"},
		{Name: "KEYLEDGER_METRICS_ALLOW",
			Short: "CIDRs or addresses that may read /metrics without the token",
			Doc:   "CIDRs or addresses (`10.0.0.0/8,192.168.1.5`) that may read `/metrics` without the token, judged on the client address (`X-Forwarded-For` only from `KEYLEDGER_TRUSTED_PROXIES`)"},
		{Name: "KEYLEDGER_OPENAI_BASE_URL", Default: "https://api.openai.com",
			Short: "where OpenAI keys are checked",
			Doc:   "where OpenAI keys are checked (`GET /v1/models`); point it at a proxy or a stub"},
		{Name: "KEYLEDGER_ANTHROPIC_BASE_URL", Default: "https://api.anthropic.com",
			Short: "where Anthropic keys are checked",
			Doc:   "Anthropic (`GET /v1/models`, `x-api-key`)"},
		{Name: "KEYLEDGER_GITHUB_BASE_URL", Default: "https://api.github.com",
			Short: "where GitHub tokens are checked",
			Doc:   "GitHub (`GET /user`)"},
		{Name: "KEYLEDGER_STRIPE_BASE_URL", Default: "https://api.stripe.com",
			Short: "where Stripe keys are checked",
			Doc:   "Stripe (`GET /v1/balance`)"},
		{Name: "KEYLEDGER_VERIFY_INTERVAL", Default: "24h",
			Short: "check each key against its provider at most this often",
			Doc:   "each key is checked against its provider at most this often (at least `1m`)"},
		{Name: "KEYLEDGER_PROVIDER_SYNC_INTERVAL", Default: "1h",
			Short: "list each provider connection's keys this often",
			Doc:   "how often each provider connection's keys are listed and matched (at least `1m`); admins can also sync now, see [docs/providers.md](providers.md)"},
		{Name: "KEYLEDGER_AUDIT_CHECKPOINT_INTERVAL", Default: "1h",
			Short: "sign and publish the audit chain's head this often",
			Doc:   "how often `serve` signs the audit chain's head and publishes the checkpoint (in the log, and to `KEYLEDGER_WEBHOOK_URL` when set); at least `1m`, see [docs/audit.md](audit.md)"},
		{Name: "KEYLEDGER_WEBHOOK_URL",
			Short: "Slack-compatible incoming webhook for reminders (a secret)",
			Doc:   "Slack-compatible incoming webhook for reminders (`{\"text\": …}`); a secret, never logged"},
		{Name: "KEYLEDGER_SMTP_URL",
			Short: "email reminders: smtp://user:pass@host:587?from=…",
			Doc:   "email reminders: `smtp://user:pass@host:587?from=keyledger@example.com` (STARTTLS when offered; `?tls=required` to insist), `smtps://host:465`"},
		{Name: "KEYLEDGER_OIDC_ISSUER",
			Short: "single sign-on: the OpenID Connect issuer URL; unset = off",
			Doc:   "single sign-on: the OpenID Connect provider's issuer URL (`https://`; plain `http://` only for `localhost`/`127.0.0.1`); unset = SSO off"},
		{Name: "KEYLEDGER_OIDC_CLIENT_ID",
			Short: "the client id keyledger is registered under",
			Doc:   "the client id keyledger is registered under at the provider"},
		{Name: "KEYLEDGER_OIDC_CLIENT_SECRET",
			Short: "its client secret",
			Doc:   "its client secret (or use `KEYLEDGER_OIDC_CLIENT_SECRET_FILE`; set one); never logged"},
		{Name: "KEYLEDGER_OIDC_CLIENT_SECRET_FILE",
			Short: "a file holding the client secret",
			Doc:   "a file holding the client secret, instead of `KEYLEDGER_OIDC_CLIENT_SECRET`"},
		{Name: "KEYLEDGER_OIDC_ALLOWED_DOMAINS",
			Short: "email domains whose people get a member account at first SSO sign-in",
			Doc:   "comma-separated email domains (`example.com,example.org`; exact, no subdomains) whose people get a member account at their first SSO sign-in; empty = only existing users"},
		{Name: "KEYLEDGER_PASSWORD_LOGIN", Default: "true",
			Short: "false = single sign-on only",
			Doc:   "`false` = SSO only: no password form, `POST /login` answers 403 (needs `KEYLEDGER_OIDC_ISSUER`; the CLI still creates users)"},
		{Name: "KEYLEDGER_API_RATE", Default: "20",
			Short: "JSON API requests per second per access token",
			Doc:   "requests per second each access token may make to the JSON API, per replica (burst twice that)"},
		{Name: "KEYLEDGER_WRITE_TIMEOUT", Default: "60s",
			Short: "HTTP write timeout; requests are given up earlier and answered 503",
			Doc:   "the HTTP write timeout (at least `1s`); a request (and its database work) is given up a fifth of it, at most 5 s, earlier and answered `503` \"busy\" with `Retry-After`, so it is never cut off unanswered. Keep it below your proxy's read timeout"},
		{Name: "KEYLEDGER_SHUTDOWN_GRACE", Default: "25s",
			Short: "after SIGTERM, how long requests in flight may finish",
			Doc:   "after `SIGTERM`, how long requests in flight may finish before they are told to give up (`503`, \"shutting down\"); see [Operations → Stopping](operations.md#stopping)"},
		{Name: "KEYLEDGER_PPROF_LISTEN",
			Short: "serve Go's profiles on this loopback address",
			Doc:   "serve Go's profiles (`/debug/pprof/`) on this **loopback** address, e.g. `127.0.0.1:6060`; any other address is refused because profiles expose memory. `make loadtest LOADTEST_FLAGS=-pprof DIR` uses it"},
		{Name: "GOMEMLIMIT", DefaultDoc: "see text",
			Short: "Go's soft memory limit (serve sets one when unset)",
			Doc:   "Go's soft memory limit. Unset, `serve` sets it to what the password hashes can hold at once plus 48 MiB (112 MiB on 2 cores), which keeps a burst of sign-ins from growing memory; set it to override"},
	}
}

// lookupVar returns the entry for name. An unknown name is a programming
// error (a variable read but not documented), so it panics; every path of
// LoadConfig runs in the tests.
func lookupVar(name string) envVar {
	for _, v := range configVars() {
		if v.Name == name {
			return v
		}
	}
	panic("configuration variable " + name + " is not in configVars (cmd/keyledger/config_vars.go)")
}

// env reads variables named in configVars, giving their defaults.
type env struct{ getenv func(string) string }

// get is the variable's value, or its default when unset or empty.
func (e env) get(name string) string {
	v := lookupVar(name)
	if s := e.getenv(name); s != "" {
		return s
	}
	return v.Default
}

// set reports whether the variable has a (non-empty) value.
func (e env) set(name string) bool {
	lookupVar(name)
	return e.getenv(name) != ""
}

// helpVariables is the help text's list of variables.
func helpVariables() string {
	var b strings.Builder
	for _, client := range []bool{false, true} {
		if client {
			b.WriteString("\nClient configuration (environment; they override the config.json that login\nwrites in the user configuration directory, e.g. ~/.config/keyledger):\n")
		} else {
			b.WriteString("Server configuration (environment; details in docs/configuration.md):\n")
		}
		for _, v := range configVars() {
			if v.Client != client {
				continue
			}
			line := "  " + v.Name
			short := v.Short
			if v.Default != "" && v.Name != "KEYLEDGER_DATABASE_URL" {
				short += " (" + v.Default + ")"
			}
			if len(line) < 38 {
				line += strings.Repeat(" ", 38-len(line))
			} else {
				line += "\n" + strings.Repeat(" ", 38)
			}
			b.WriteString(line + short + "\n")
		}
	}
	return b.String()
}

// docsTable is the Markdown table of docs/configuration.md, between
// docsBegin and docsEnd.
func docsTable() string {
	var b strings.Builder
	b.WriteString("| variable | default | meaning |\n|---|---|---|\n")
	for _, v := range configVars() {
		def := "—"
		switch {
		case v.DefaultDoc != "":
			def = v.DefaultDoc
		case v.Default != "":
			def = "`" + v.Default + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", v.Name, def, v.Doc)
	}
	return b.String()
}

const (
	docsBegin = "<!-- BEGIN variables: generated from cmd/keyledger/config_vars.go by `make config-docs`; do not edit -->\n"
	docsEnd   = "<!-- END variables -->\n"
)

// replaceDocsTable returns doc with the text between the markers replaced
// by table.
func replaceDocsTable(doc, table string) (string, error) {
	i := strings.Index(doc, docsBegin)
	j := strings.Index(doc, docsEnd)
	if i < 0 || j < i {
		return "", fmt.Errorf("docs/configuration.md: markers %q and %q not found in order", strings.TrimSpace(docsBegin), strings.TrimSpace(docsEnd))
	}
	return doc[:i+len(docsBegin)] + table + doc[j:], nil
}
