package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger/crypto"
)

// envFunc turns a map into a getenv.
func envFunc(env map[string]string) func(string) string {
	return func(k string) string { return env[k] }
}

// newKEK returns a fresh base64 master key.
func newKEK(t testing.TB) string {
	t.Helper()
	k, err := crypto.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// kekID is the id of a base64 master key.
func kekID(t testing.TB, b64 string) string {
	t.Helper()
	k, err := crypto.ParseKEK(b64)
	if err != nil {
		t.Fatalf("ParseKEK: %v", err)
	}
	return k.ID()
}

// randomB64 is n random bytes in standard base64: key material of the wrong
// size.
func randomB64(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func writeFile(t testing.TB, path, content string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// checkOneLine fails unless msg is a single line that contains every want
// and none of the secrets.
func checkOneLine(t testing.TB, msg string, want, secrets []string) {
	t.Helper()
	t.Logf("message: %s", msg)
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("message spans several lines:\n%s", msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("message does not contain %q:\n%s", w, msg)
		}
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(msg, s) {
			t.Errorf("message leaks secret %q:\n%s", s, msg)
		}
	}
}

// firstConfigError returns the first configuration error: from LoadConfig, or
// else from Keyring (both run before anything touches the database).
func firstConfigError(env map[string]string) error {
	cfg, err := LoadConfig(envFunc(env))
	if err != nil {
		return err
	}
	_, err = cfg.Keyring()
	return err
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	good := newKEK(t)
	short := randomB64(t, 31)
	long := randomB64(t, 33)
	notB64 := "this is *not* base64 at all, hunter2"
	missing := filepath.Join(dir, "nope", "master.key")
	empty := writeFile(t, filepath.Join(dir, "empty.key"), "")
	commentsOnly := writeFile(t, filepath.Join(dir, "comments.key"), "# the key goes here\n\n")
	badSecond := writeFile(t, filepath.Join(dir, "second.key"), good+"\n"+short+"\n")
	shortFile := writeFile(t, filepath.Join(dir, "short.key"), short+"\n")

	const dbPW = "hunter2"
	base := func(kv ...string) map[string]string {
		env := map[string]string{"KEYLEDGER_MASTER_KEY": good}
		for i := 0; i < len(kv); i += 2 {
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	tests := []struct {
		name    string
		env     map[string]string
		want    []string
		secrets []string
	}{
		// Master key.
		{"key 31 bytes", base("KEYLEDGER_MASTER_KEY", short),
			[]string{"KEYLEDGER_MASTER_KEY", "want 32 bytes of base64, got 31 bytes", "keyledger masterkey generate"}, []string{short}},
		{"key 33 bytes", base("KEYLEDGER_MASTER_KEY", long),
			[]string{"KEYLEDGER_MASTER_KEY", "want 32 bytes of base64, got 33 bytes", "keyledger masterkey generate"}, []string{long}},
		{"key not base64", base("KEYLEDGER_MASTER_KEY", notB64),
			[]string{"KEYLEDGER_MASTER_KEY", "base64", "keyledger masterkey generate"}, []string{notB64, "*not*", dbPW}},
		{"key unset", map[string]string{},
			[]string{"KEYLEDGER_MASTER_KEY", "not set", "keyledger masterkey generate"}, nil},
		{"key blank", base("KEYLEDGER_MASTER_KEY", "   "),
			[]string{"KEYLEDGER_MASTER_KEY", "keyledger masterkey generate"}, nil},
		{"key only separators", base("KEYLEDGER_MASTER_KEY", " , "),
			[]string{"KEYLEDGER_MASTER_KEY", "keyledger masterkey generate"}, nil},
		{"second key of list bad", base("KEYLEDGER_MASTER_KEY", good+","+short),
			[]string{"KEYLEDGER_MASTER_KEY", "key #2", "want 32 bytes of base64, got 31 bytes", "keyledger masterkey generate"}, []string{good, short}},
		{"first key of list bad", base("KEYLEDGER_MASTER_KEY", short+","+good),
			[]string{"KEYLEDGER_MASTER_KEY", "key #1", "got 31 bytes"}, []string{good, short}},
		{"same key twice", base("KEYLEDGER_MASTER_KEY", good+","+good),
			[]string{"KEYLEDGER_MASTER_KEY", "twice"}, []string{good}},
		{"key and file both set", base("KEYLEDGER_MASTER_KEY_FILE", shortFile),
			[]string{"KEYLEDGER_MASTER_KEY and KEYLEDGER_MASTER_KEY_FILE", "set only one"}, []string{good, short}},
		{"key file missing", map[string]string{"KEYLEDGER_MASTER_KEY_FILE": missing},
			[]string{"KEYLEDGER_MASTER_KEY_FILE", missing, "does not exist", "keyledger masterkey generate"}, nil},
		{"key file is a directory", map[string]string{"KEYLEDGER_MASTER_KEY_FILE": dir},
			[]string{"KEYLEDGER_MASTER_KEY_FILE", "cannot read", dir}, nil},
		{"key file empty", map[string]string{"KEYLEDGER_MASTER_KEY_FILE": empty},
			[]string{"KEYLEDGER_MASTER_KEY_FILE", empty, "keyledger masterkey generate"}, nil},
		{"key file only comments", map[string]string{"KEYLEDGER_MASTER_KEY_FILE": commentsOnly},
			[]string{"KEYLEDGER_MASTER_KEY_FILE", commentsOnly, "holds no key", "keyledger masterkey generate"}, nil},
		{"key file short key", map[string]string{"KEYLEDGER_MASTER_KEY_FILE": shortFile},
			[]string{"KEYLEDGER_MASTER_KEY_FILE", shortFile, "want 32 bytes of base64, got 31 bytes", "keyledger masterkey generate"}, []string{short}},
		{"key file second line bad", map[string]string{"KEYLEDGER_MASTER_KEY_FILE": badSecond},
			[]string{"KEYLEDGER_MASTER_KEY_FILE", badSecond, "key #2", "got 31 bytes"}, []string{good, short}},

		// Database URL: never echo it, it holds a password.
		{"database url bad port", base("KEYLEDGER_DATABASE_URL", "postgres://keyledger:hunter2@db:port/keyledger"),
			[]string{"KEYLEDGER_DATABASE_URL", "postgres://"}, []string{dbPW, "db:port", good}},
		{"database url wrong scheme", base("KEYLEDGER_DATABASE_URL", "mysql://root:hunter2@db:3306/keyledger"),
			[]string{"KEYLEDGER_DATABASE_URL", "postgres://"}, []string{dbPW, "mysql", good}},
		{"database url no scheme", base("KEYLEDGER_DATABASE_URL", "keyledger:hunter2@db:5432/keyledger"),
			[]string{"KEYLEDGER_DATABASE_URL", "postgres://"}, []string{dbPW, good}},
		{"database url keyword form", base("KEYLEDGER_DATABASE_URL", "host=db user=keyledger password=hunter2"),
			[]string{"KEYLEDGER_DATABASE_URL", "postgres://"}, []string{dbPW, good}},
		{"database url control char", base("KEYLEDGER_DATABASE_URL", "postgres://keyledger:hunter2@db/keyledger\n"),
			[]string{"KEYLEDGER_DATABASE_URL", "postgres://"}, []string{dbPW, good}},

		// Listen address.
		{"listen without port", base("KEYLEDGER_LISTEN", "8080"),
			[]string{"KEYLEDGER_LISTEN", "host:port", "127.0.0.1:8080"}, []string{good}},
		{"listen host only", base("KEYLEDGER_LISTEN", "localhost"),
			[]string{"KEYLEDGER_LISTEN", "host:port"}, []string{good}},
		{"listen port not a number", base("KEYLEDGER_LISTEN", "127.0.0.1:http-alt"),
			[]string{"KEYLEDGER_LISTEN", "host:port"}, []string{good}},
		{"listen port out of range", base("KEYLEDGER_LISTEN", "127.0.0.1:99999"),
			[]string{"KEYLEDGER_LISTEN", "host:port"}, []string{good}},

		// Base URL.
		{"base url without scheme", base("KEYLEDGER_BASE_URL", "keys.example.com"),
			[]string{"KEYLEDGER_BASE_URL", "https://keys.example.com"}, []string{good}},
		{"base url ftp", base("KEYLEDGER_BASE_URL", "ftp://keys.example.com"),
			[]string{"KEYLEDGER_BASE_URL", "https://"}, []string{good}},
		{"base url without host", base("KEYLEDGER_BASE_URL", "https://"),
			[]string{"KEYLEDGER_BASE_URL", "https://"}, []string{good}},
		{"base url unparsable", base("KEYLEDGER_BASE_URL", "https://keys example.com"),
			[]string{"KEYLEDGER_BASE_URL", "https://"}, []string{good}},

		// Cookies, proxies, sessions, logging.
		{"secure cookies yes", base("KEYLEDGER_SECURE_COOKIES", "yes"),
			[]string{"KEYLEDGER_SECURE_COOKIES", "true or false", `"yes"`}, []string{good}},
		{"trusted proxies bad cidr", base("KEYLEDGER_TRUSTED_PROXIES", "10.0.0.0/33"),
			[]string{"KEYLEDGER_TRUSTED_PROXIES", "10.0.0.0/33", "10.0.0.0/8"}, []string{good}},
		{"trusted proxies hostname", base("KEYLEDGER_TRUSTED_PROXIES", "10.0.0.1, proxy.internal"),
			[]string{"KEYLEDGER_TRUSTED_PROXIES", "proxy.internal", "comma-separated"}, []string{good}},
		{"session idle no unit", base("KEYLEDGER_SESSION_IDLE", "30"),
			[]string{"KEYLEDGER_SESSION_IDLE", "positive duration", "30m"}, []string{good}},
		{"session idle zero", base("KEYLEDGER_SESSION_IDLE", "0s"),
			[]string{"KEYLEDGER_SESSION_IDLE", "positive duration"}, []string{good}},
		{"session max negative", base("KEYLEDGER_SESSION_MAX", "-1h"),
			[]string{"KEYLEDGER_SESSION_MAX", "positive duration", "8h"}, []string{good}},
		{"session max garbage", base("KEYLEDGER_SESSION_MAX", "a day"),
			[]string{"KEYLEDGER_SESSION_MAX", "positive duration"}, []string{good}},
		{"idle longer than max", base("KEYLEDGER_SESSION_IDLE", "2h", "KEYLEDGER_SESSION_MAX", "1h"),
			[]string{"KEYLEDGER_SESSION_IDLE", "KEYLEDGER_SESSION_MAX", "shorter"}, []string{good}},
		{"idle longer than default max", base("KEYLEDGER_SESSION_IDLE", "13h"),
			[]string{"KEYLEDGER_SESSION_IDLE", "KEYLEDGER_SESSION_MAX", "shorter"}, []string{good}},
		{"log level", base("KEYLEDGER_LOG_LEVEL", "verbose"),
			[]string{"KEYLEDGER_LOG_LEVEL", "debug, info, warn or error", `"verbose"`}, []string{good}},
		{"log format", base("KEYLEDGER_LOG_FORMAT", "xml"),
			[]string{"KEYLEDGER_LOG_FORMAT", "text or json"}, []string{good}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := firstConfigError(tt.env)
			if err == nil {
				t.Fatalf("no error for %v", tt.env)
			}
			checkOneLine(t, err.Error(), tt.want, tt.secrets)

			// The same mistake through the program: one line on stderr,
			// nothing on stdout, exit 1, and no database contacted (the
			// URL points nowhere and the context is short).
			env := map[string]string{"KEYLEDGER_DATABASE_URL": "postgres://nobody:" + dbPW + "@127.0.0.1:1/none?sslmode=disable&connect_timeout=1"}
			for k, v := range tt.env {
				env[k] = v
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			r := runMainCtx(ctx, t, env, "", "user", "list")
			if r.code != 1 {
				t.Errorf("exit code %d, want 1; stderr:\n%s", r.code, r.stderr)
			}
			if r.stdout != "" {
				t.Errorf("stdout not empty: %q", r.stdout)
			}
			if want := "keyledger: " + err.Error() + "\n"; r.stderr != want {
				t.Errorf("stderr = %q, want exactly %q", r.stderr, want)
			}
			for _, s := range append(tt.secrets, dbPW) {
				if s != "" && strings.Contains(r.stderr, s) {
					t.Errorf("stderr leaks %q: %s", s, r.stderr)
				}
			}
		})
	}
}

func TestConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig(envFunc(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DatabaseURL != DefaultDatabaseURL {
		t.Errorf("DatabaseURL = %q", cfg.DatabaseURL)
	}
	if cfg.Listen != "127.0.0.1:8080" || cfg.BaseURL != "http://127.0.0.1:8080" {
		t.Errorf("Listen %q BaseURL %q", cfg.Listen, cfg.BaseURL)
	}
	if cfg.SecureCookies {
		t.Error("SecureCookies on for plain http")
	}
	if cfg.SessionIdle != time.Hour || cfg.SessionMax != 12*time.Hour {
		t.Errorf("sessions %s/%s", cfg.SessionIdle, cfg.SessionMax)
	}
	if len(cfg.TrustedProxies) != 0 {
		t.Errorf("TrustedProxies = %v", cfg.TrustedProxies)
	}
}

func TestConfigValues(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		check func(t *testing.T, c Config)
	}{
		{"all interfaces gives localhost base url", map[string]string{"KEYLEDGER_LISTEN": "0.0.0.0:9000"}, func(t *testing.T, c Config) {
			if c.BaseURL != "http://localhost:9000" {
				t.Errorf("BaseURL = %q", c.BaseURL)
			}
		}},
		{"empty host gives localhost base url", map[string]string{"KEYLEDGER_LISTEN": ":9000"}, func(t *testing.T, c Config) {
			if c.BaseURL != "http://localhost:9000" {
				t.Errorf("BaseURL = %q", c.BaseURL)
			}
		}},
		{"ipv6 listen", map[string]string{"KEYLEDGER_LISTEN": "[::1]:9000"}, func(t *testing.T, c Config) {
			if c.BaseURL != "http://[::1]:9000" {
				t.Errorf("BaseURL = %q", c.BaseURL)
			}
		}},
		{"https base url turns on secure cookies", map[string]string{"KEYLEDGER_BASE_URL": "https://keys.example.com/"}, func(t *testing.T, c Config) {
			if c.BaseURL != "https://keys.example.com" || !c.SecureCookies {
				t.Errorf("BaseURL %q SecureCookies %v", c.BaseURL, c.SecureCookies)
			}
		}},
		{"secure cookies can be turned off", map[string]string{"KEYLEDGER_BASE_URL": "https://keys.example.com", "KEYLEDGER_SECURE_COOKIES": "false"}, func(t *testing.T, c Config) {
			if c.SecureCookies {
				t.Error("SecureCookies still on")
			}
		}},
		{"secure cookies can be forced on", map[string]string{"KEYLEDGER_SECURE_COOKIES": "1"}, func(t *testing.T, c Config) {
			if !c.SecureCookies {
				t.Error("SecureCookies off")
			}
		}},
		{"trusted proxies", map[string]string{"KEYLEDGER_TRUSTED_PROXIES": "10.0.0.0/8, 192.168.1.5,,::1"}, func(t *testing.T, c Config) {
			if len(c.TrustedProxies) != 3 {
				t.Fatalf("TrustedProxies = %v", c.TrustedProxies)
			}
			if got := c.TrustedProxies[1].String(); got != "192.168.1.5/32" {
				t.Errorf("single address parsed as %s", got)
			}
		}},
		{"sessions and web config", map[string]string{"KEYLEDGER_SESSION_IDLE": "30m", "KEYLEDGER_SESSION_MAX": "30m"}, func(t *testing.T, c Config) {
			w := c.WebConfig()
			if w.Sessions.Idle != 30*time.Minute || w.Sessions.Absolute != 30*time.Minute || w.BaseURL != c.BaseURL {
				t.Errorf("WebConfig = %+v", w)
			}
		}},
		{"log level and format are case-insensitive", map[string]string{"KEYLEDGER_LOG_LEVEL": "DEBUG", "KEYLEDGER_LOG_FORMAT": "JSON"}, func(t *testing.T, c Config) {
			if c.LogLevel != "debug" || c.LogFormat != "json" {
				t.Errorf("LogLevel %q LogFormat %q", c.LogLevel, c.LogFormat)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadConfig(envFunc(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestKeyringSeveralKeys(t *testing.T) {
	a, b, c := newKEK(t), newKEK(t), newKEK(t)
	dir := t.TempDir()
	// URL-safe, unpadded spelling of a: ParseKEK accepts it.
	raw, err := base64.StdEncoding.DecodeString(a)
	if err != nil {
		t.Fatal(err)
	}
	aURL := base64.RawURLEncoding.EncodeToString(raw)

	tests := []struct {
		name string
		env  map[string]string
		want []string // keys in keyring order; first is primary
	}{
		{"one key", map[string]string{"KEYLEDGER_MASTER_KEY": a}, []string{a}},
		{"one key url-safe unpadded", map[string]string{"KEYLEDGER_MASTER_KEY": aURL}, []string{a}},
		{"comma separated", map[string]string{"KEYLEDGER_MASTER_KEY": b + "," + a}, []string{b, a}},
		{"comma and spaces", map[string]string{"KEYLEDGER_MASTER_KEY": " " + c + " , " + b + " ,\t" + a + " "}, []string{c, b, a}},
		{"newline separated", map[string]string{"KEYLEDGER_MASTER_KEY": a + "\n" + b + "\n"}, []string{a, b}},
		{"file with newline", map[string]string{"KEYLEDGER_MASTER_KEY_FILE": writeFile(t, filepath.Join(dir, "one.key"), a+"\n")}, []string{a}},
		{"file with crlf and comments", map[string]string{"KEYLEDGER_MASTER_KEY_FILE": writeFile(t, filepath.Join(dir, "two.key"),
			"# primary\r\n"+b+"\r\n\r\n# old, remove after rotate\r\n"+a+"\r\n")}, []string{b, a}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadConfig(envFunc(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			r, err := cfg.Keyring()
			if err != nil {
				t.Fatal(err)
			}
			keks := r.KEKs()
			if len(keks) != len(tt.want) {
				t.Fatalf("keyring has %d keys, want %d", len(keks), len(tt.want))
			}
			for i, w := range tt.want {
				if keks[i].ID() != kekID(t, w) {
					t.Errorf("key %d has id %s, want %s", i, keks[i].ID(), kekID(t, w))
				}
			}
			if r.Primary().ID() != kekID(t, tt.want[0]) {
				t.Errorf("primary is %s, want the first key %s", r.Primary().ID(), kekID(t, tt.want[0]))
			}
		})
	}
}
