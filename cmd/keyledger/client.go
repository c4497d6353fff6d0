package main

// The command-line client: it talks to a keyledger server's JSON API
// (/api/v1) with a personal access token kept in the user's configuration
// directory.

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web/wire"
)

// clientConfig is the client's config.json. It holds a token, so the file
// is 0600 in a 0700 directory.
type clientConfig struct {
	Server string `json:"server"`
	Token  string `json:"token"`
}

const clientConfigName = "config.json"

// clientConfigDir is where config.json lives.
func (m *Main) clientConfigDir() (string, error) {
	if m.ConfigDir != "" {
		return m.ConfigDir, nil
	}
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("cannot find the configuration directory (%v); set KEYLEDGER_SERVER and KEYLEDGER_TOKEN instead", err)
	}
	return filepath.Join(d, "keyledger"), nil
}

// readClientConfig reads config.json; a missing file is an empty config.
func (m *Main) readClientConfig() (clientConfig, string, error) {
	var c clientConfig
	dir, err := m.clientConfigDir()
	if err != nil {
		return c, "", err
	}
	path := filepath.Join(dir, clientConfigName)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return c, path, nil
	}
	if err != nil {
		return c, path, fmt.Errorf("cannot read %s: %v", path, err)
	}
	// Opened read-only: closing it cannot lose data.
	defer func() { _ = f.Close() }()
	if fi, err := f.Stat(); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		fmt.Fprintf(m.Stderr, "keyledger: warning: %s holds a token but other users may read it; run 'chmod 600 %s'\n", path, path)
	}
	if err := json.NewDecoder(io.LimitReader(f, 1<<20)).Decode(&c); err != nil {
		return c, path, fmt.Errorf("%s is not valid JSON; delete it and run 'keyledger login --server https://…' again", path)
	}
	return c, path, nil
}

// writeClientConfig replaces config.json atomically: a temporary file in
// the same directory, made 0600 before the token is written, then renamed
// over the old one.
func (m *Main) writeClientConfig(c clientConfig) (string, error) {
	dir, err := m.clientConfigDir()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	// MkdirAll leaves an existing directory as it was.
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", fmt.Errorf("make %s private: %w", dir, err)
	}
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return "", err
	}
	b = append(b, '\n')
	path := filepath.Join(dir, clientConfigName)
	f, err := os.CreateTemp(dir, ".config-*.json.tmp")
	if err != nil {
		return "", fmt.Errorf("save %s: %w", path, err)
	}
	tmp := f.Name()
	// Cleanup after a failed save is best effort: the save error is the
	// one to report, and a leftover temporary file is 0600 (CreateTemp) in
	// the 0700 directory.
	fail := func(err error) (string, error) {
		_ = f.Close()
		_ = os.Remove(tmp)
		return "", fmt.Errorf("save %s: %w", path, err)
	}
	if err := f.Chmod(0o600); err != nil {
		return fail(err)
	}
	if _, err := f.Write(b); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	if err := f.Close(); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("save %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return "", fmt.Errorf("save %s: %w", path, err)
	}
	return path, nil
}

// normalizeServer checks a server URL and drops a trailing slash.
func normalizeServer(s string) (string, error) {
	s = strings.TrimSpace(s)
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("want the server's URL like https://keys.example.com, got %q", s)
	}
	return strings.TrimRight(u.Scheme+"://"+u.Host+u.EscapedPath(), "/"), nil
}

// plainHTTPRemote reports whether base sends tokens unencrypted to
// another machine.
func plainHTTPRemote(base string) bool {
	u, err := url.Parse(base)
	if err != nil || u.Scheme != "http" {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return false
	}
	ip := net.ParseIP(host)
	return ip == nil || !ip.IsLoopback()
}

// apiClient calls one server's API with one token.
type apiClient struct {
	base      string
	token     string
	tokenFrom string // where the token came from, for the 401 hint
	http      *http.Client
}

func (m *Main) httpClient() *http.Client {
	c := &http.Client{Timeout: 2 * time.Minute}
	if m.HTTPClient != nil {
		cp := *m.HTTPClient
		c = &cp
	}
	// A redirect would resend the token (and a POST as a GET); report it
	// instead, so the saved URL can be fixed.
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

const noServerMsg = "no server configured; run 'keyledger login --server https://…'"

// client builds the API client from config.json and the environment:
// KEYLEDGER_SERVER and KEYLEDGER_TOKEN win over the file. The file's token
// is only sent to the server it was saved for.
func (m *Main) client() (*apiClient, error) {
	cfg, path, err := m.readClientConfig()
	if err != nil {
		return nil, err
	}
	server, serverFrom := m.Getenv("KEYLEDGER_SERVER"), "KEYLEDGER_SERVER"
	if server == "" {
		server, serverFrom = cfg.Server, path
	}
	if server == "" {
		return nil, errors.New(noServerMsg)
	}
	base, err := normalizeServer(server)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", serverFrom, err)
	}
	c := &apiClient{base: base, http: m.httpClient()}
	if t := m.Getenv("KEYLEDGER_TOKEN"); t != "" {
		c.token, c.tokenFrom = strings.TrimSpace(t), "KEYLEDGER_TOKEN"
	} else if cfg.Token != "" {
		if saved, err := normalizeServer(cfg.Server); err == nil && saved == base {
			c.token, c.tokenFrom = cfg.Token, path
		}
	}
	if c.token == "" {
		return nil, fmt.Errorf("not signed in to %s; run 'keyledger login --server %s'", base, base)
	}
	return c, nil
}

// apiError is an error answer of the API, or something else that answered.
type apiError struct {
	server     string
	tokenFrom  string
	path       string
	status     int
	code       string
	message    string
	fields     map[string]string
	retryAfter string
	requestID  string
}

// flagNames maps API field names to the flags that set them.
var flagNames = map[string]string{
	"environment": "--environment", "project": "--project", "format": "--format",
	"reason": "--reason", "version": "--version", "owner": "--owner", "q": "--q",
	"status": "--status", "email": "--email", "scopes": "--scopes", "expires": "--expires", "name": "--name",
}

func (e *apiError) Error() string {
	msg := strings.TrimSpace(cell(e.message))
	switch {
	case e.code == "" && e.status == http.StatusNotFound:
		return fmt.Sprintf("the server at %s has no %s (404): is it a keyledger server with the JSON API, and is the URL right?", e.server, e.path)
	case e.code == "":
		return fmt.Sprintf("the server at %s answered %d %s, not the keyledger API; check the URL", e.server, e.status, http.StatusText(e.status))
	case e.status == http.StatusUnauthorized:
		again := fmt.Sprintf("run 'keyledger login --server %s' with a new token", e.server)
		if e.tokenFrom == "KEYLEDGER_TOKEN" {
			again = "put a new token in KEYLEDGER_TOKEN"
		}
		if msg == "" {
			msg = "it is expired, revoked or unknown"
		}
		return fmt.Sprintf("the server rejected the token: %s Then %s.", withStop(msg), again)
	case e.status == http.StatusForbidden:
		return "not allowed: " + msg
	case e.status == http.StatusNotFound:
		return "not found: " + msg
	case e.status == http.StatusTooManyRequests:
		if msg == "" {
			msg = "too many requests with this token; try again in a little while"
		}
		if e.retryAfter == "" {
			return "rate limited by the server: " + msg
		}
		wait := cell(e.retryAfter)
		if n, err := strconv.Atoi(wait); err == nil {
			wait = fmt.Sprintf("%d second(s)", n)
		}
		return fmt.Sprintf("rate limited by the server (Retry-After: %s): %s", wait, msg)
	}
	if len(e.fields) > 0 {
		var parts []string
		for k, v := range e.fields {
			if f, ok := flagNames[k]; ok {
				k = f
			}
			parts = append(parts, cell(k)+": "+cell(v))
		}
		sort.Strings(parts)
		// The fields say it all; the message is the form's summary.
		return strings.Join(parts, "; ")
	}
	if e.status >= 500 {
		msg = fmt.Sprintf("server error (%d %s): %s", e.status, e.code, msg)
		if e.requestID != "" {
			msg += " (request id " + cell(e.requestID) + ")"
		}
		if e.retryAfter != "" {
			msg += "; Retry-After: " + cell(e.retryAfter)
		}
	}
	return msg
}

func withStop(s string) string {
	if s == "" || strings.HasSuffix(s, ".") {
		return s
	}
	return s + "."
}

// do calls the API. body, when not nil, is sent as JSON; out, when not
// nil, receives the JSON answer.
func (c *apiClient) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	u := c.base + "/api/v1" + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "keyledger-cli")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return networkError(c.base, err)
	}
	defer func() { _ = resp.Body.Close() }() // a response body: closing it loses nothing
	if resp.StatusCode >= 300 && resp.StatusCode < 400 {
		loc, err := resp.Location()
		if err != nil {
			return fmt.Errorf("the server at %s answered %d without a usable Location; check the URL", c.base, resp.StatusCode)
		}
		// The base URL the redirect points at: its path without the API's.
		to := loc.Scheme + "://" + loc.Host + strings.TrimSuffix(strings.TrimSuffix(loc.EscapedPath(), "/api/v1"+path), "/")
		if loc.Path == "" || !strings.HasSuffix(loc.Path, "/api/v1"+path) {
			to = loc.Scheme + "://" + loc.Host
		}
		return fmt.Errorf("the server at %s redirects to %s; run 'keyledger login --server %s'", c.base, cell(to), cell(to))
	}
	// Answers hold secret values: read them whole, never echo them.
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return networkError(c.base, err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out == nil {
			return nil
		}
		if err := json.Unmarshal(data, out); err != nil {
			return c.notAPI(method, path)
		}
		return nil
	}
	e := &apiError{server: c.base, tokenFrom: c.tokenFrom, path: "/api/v1" + path, status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After")}
	var env wire.Error
	if json.Unmarshal(data, &env) == nil && env.Error.Code != "" {
		e.code, e.message, e.fields, e.requestID = env.Error.Code, env.Error.Message, env.Error.Fields, env.Error.RequestID
	}
	return e
}

// notAPI is the error for a successful answer the client cannot read.
func (c *apiClient) notAPI(method, path string) error {
	return fmt.Errorf("the server at %s gave an answer that is not the keyledger API's (%s %s); check the URL", c.base, method, path)
}

// networkError says in one line why the server could not be reached.
func networkError(server string, err error) error {
	if errors.Is(err, context.Canceled) {
		return errors.New("interrupted")
	}
	reason := err.Error()
	var dns *net.DNSError
	var unknownCA x509.UnknownAuthorityError
	var hostname x509.HostnameError
	var invalid x509.CertificateInvalidError
	var nerr net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		reason = "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		reason = "connection reset"
	case errors.As(err, &dns):
		reason = "cannot resolve " + dns.Name
		if dns.IsNotFound {
			reason = "no such host " + dns.Name
		}
	case errors.As(err, &unknownCA):
		reason = "its TLS certificate is signed by an unknown authority"
	case errors.As(err, &hostname):
		reason = "its TLS certificate is for another name: " + hostname.Error()
	case errors.As(err, &invalid):
		reason = "its TLS certificate is not valid: " + invalid.Error()
	case errors.As(err, &nerr) && nerr.Timeout():
		reason = "timed out"
	default:
		var ue *url.Error
		if errors.As(err, &ue) {
			reason = ue.Err.Error()
		}
	}
	return fmt.Errorf("cannot reach %s: %s", server, reason)
}

// newFlags makes a flag set that reports to stderr with a one-line usage.
func (m *Main) newFlags(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(m.Stderr, "Usage: keyledger %s\n", usage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args; flag errors are usage errors (the flag package
// has said what is wrong), -h is not an error.
func parseFlags(fs *flag.FlagSet, args []string) (help bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return true, nil
		}
		return false, &exitError{code: 2}
	}
	return false, nil
}

// parseInterspersed parses flags that may come after positional
// arguments, as in `keys show ID --json`, and returns the positionals.
func parseInterspersed(fs *flag.FlagSet, args []string) (pos []string, help bool, err error) {
	for {
		if help, err := parseFlags(fs, args); help || err != nil {
			return nil, help, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, false, nil
		}
		pos, args = append(pos, args[0]), args[1:]
	}
}

func usageErr(format string, args ...any) error {
	return &exitError{code: 2, msg: fmt.Sprintf(format, args...)}
}

// whoSummary is the one line login and whoami print about a token.
func whoSummary(w *wire.Whoami) string {
	scopes := strings.Join(w.Token.Scopes, ", ")
	if scopes == "" {
		scopes = "none"
	}
	exp := "never"
	if !w.Token.ExpiresAt.IsZero() {
		exp = w.Token.ExpiresAt.Local().Format("2006-01-02 15:04 MST")
	}
	return fmt.Sprintf("%s (scopes %s; expires %s)", w.Email, scopes, exp)
}

// checkFormat checks --format before anything is asked of the server.
func checkFormat(f string) error {
	if _, ok := keyledger.ParseExportFormat(f); !ok {
		return usageErr("--format: want bash, fish, powershell, dotenv, env-file or json, got %q", f)
	}
	return nil
}
