package main

import (
	"path/filepath"
	"slices"
	"testing"
)

// Single sign-on settings: each mistake is one line naming the variable
// and never showing the client secret.
func TestConfigOIDCErrors(t *testing.T) {
	dir := t.TempDir()
	const secret = "s3cr3t-client-value"
	emptyFile := writeFile(t, filepath.Join(dir, "empty.secret"), "\n")
	secretFile := writeFile(t, filepath.Join(dir, "client.secret"), secret+"\n")
	sso := func(kv ...string) map[string]string {
		env := map[string]string{"KEYLEDGER_MASTER_KEY": newKEK(t), "KEYLEDGER_OIDC_ISSUER": "https://login.example.com",
			"KEYLEDGER_OIDC_CLIENT_ID": "keyledger", "KEYLEDGER_OIDC_CLIENT_SECRET": secret}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "" {
				delete(env, kv[i])
				continue
			}
			env[kv[i]] = kv[i+1]
		}
		return env
	}
	tests := []struct {
		name string
		env  map[string]string
		want []string
	}{
		{"issuer not a URL", sso("KEYLEDGER_OIDC_ISSUER", "login.example.com"), []string{"KEYLEDGER_OIDC_ISSUER", "https"}},
		{"issuer plain http", sso("KEYLEDGER_OIDC_ISSUER", "http://login.example.com"), []string{"KEYLEDGER_OIDC_ISSUER", "http only for localhost"}},
		{"issuer with query", sso("KEYLEDGER_OIDC_ISSUER", "https://login.example.com/?x=1"), []string{"KEYLEDGER_OIDC_ISSUER"}},
		{"issuer with credentials", sso("KEYLEDGER_OIDC_ISSUER", "https://u:p@login.example.com"), []string{"KEYLEDGER_OIDC_ISSUER", "without credentials"}},
		{"client id missing", sso("KEYLEDGER_OIDC_CLIENT_ID", ""), []string{"KEYLEDGER_OIDC_CLIENT_ID", "not set"}},
		{"secret missing", sso("KEYLEDGER_OIDC_CLIENT_SECRET", ""), []string{"KEYLEDGER_OIDC_CLIENT_SECRET", "not set", "KEYLEDGER_OIDC_CLIENT_SECRET_FILE"}},
		{"secret and file", sso("KEYLEDGER_OIDC_CLIENT_SECRET_FILE", secretFile), []string{"KEYLEDGER_OIDC_CLIENT_SECRET and KEYLEDGER_OIDC_CLIENT_SECRET_FILE", "set only one"}},
		{"secret file missing", sso("KEYLEDGER_OIDC_CLIENT_SECRET", "", "KEYLEDGER_OIDC_CLIENT_SECRET_FILE", filepath.Join(dir, "nope")),
			[]string{"KEYLEDGER_OIDC_CLIENT_SECRET_FILE", "cannot read"}},
		{"secret file empty", sso("KEYLEDGER_OIDC_CLIENT_SECRET", "", "KEYLEDGER_OIDC_CLIENT_SECRET_FILE", emptyFile),
			[]string{"KEYLEDGER_OIDC_CLIENT_SECRET_FILE", "is empty"}},
		{"secret two lines", sso("KEYLEDGER_OIDC_CLIENT_SECRET", secret+"\nmore"), []string{"KEYLEDGER_OIDC_CLIENT_SECRET", "several lines"}},
		{"domain wildcard", sso("KEYLEDGER_OIDC_ALLOWED_DOMAINS", "example.com,*.example.org"), []string{"KEYLEDGER_OIDC_ALLOWED_DOMAINS", "*.example.org", "no wildcards"}},
		{"domain is an email", sso("KEYLEDGER_OIDC_ALLOWED_DOMAINS", "bob@example.com"), []string{"KEYLEDGER_OIDC_ALLOWED_DOMAINS", "bob@example.com"}},
		{"domain one label", sso("KEYLEDGER_OIDC_ALLOWED_DOMAINS", "localhost"), []string{"KEYLEDGER_OIDC_ALLOWED_DOMAINS", "localhost"}},
		{"password login not a bool", sso("KEYLEDGER_PASSWORD_LOGIN", "nope"), []string{"KEYLEDGER_PASSWORD_LOGIN", "true or false"}},
		{"client id without issuer", sso("KEYLEDGER_OIDC_ISSUER", ""), []string{"KEYLEDGER_OIDC_ISSUER", "not set, but KEYLEDGER_OIDC_CLIENT_ID is"}},
		{"domains without issuer", map[string]string{"KEYLEDGER_MASTER_KEY": newKEK(t), "KEYLEDGER_OIDC_ALLOWED_DOMAINS": "example.com"},
			[]string{"KEYLEDGER_OIDC_ISSUER", "KEYLEDGER_OIDC_ALLOWED_DOMAINS"}},
		{"password off without SSO", map[string]string{"KEYLEDGER_MASTER_KEY": newKEK(t), "KEYLEDGER_PASSWORD_LOGIN": "false"},
			[]string{"KEYLEDGER_PASSWORD_LOGIN", "single sign-on is not configured", "nobody could sign in"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := firstConfigError(tt.env)
			if err == nil {
				t.Fatal("accepted")
			}
			checkOneLine(t, err.Error(), tt.want, []string{secret, "u:p@"})
		})
	}
}

func TestConfigOIDCValues(t *testing.T) {
	dir := t.TempDir()
	secretFile := writeFile(t, filepath.Join(dir, "client.secret"), "  from-a-file\n")

	// Off by default; password sign-in on.
	c, err := LoadConfig(envFunc(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.OIDCIssuer != "" || !c.PasswordLogin {
		t.Errorf("defaults: issuer %q password %v", c.OIDCIssuer, c.PasswordLogin)
	}
	if w := c.WebConfig(); w.OIDC != nil || w.PasswordLoginOff {
		t.Errorf("default web config: OIDC %v, PasswordLoginOff %v", w.OIDC, w.PasswordLoginOff)
	}

	c, err = LoadConfig(envFunc(map[string]string{
		"KEYLEDGER_OIDC_ISSUER": "https://login.example.com/realms/acme", "KEYLEDGER_OIDC_CLIENT_ID": "keyledger",
		"KEYLEDGER_OIDC_CLIENT_SECRET_FILE": secretFile, "KEYLEDGER_OIDC_ALLOWED_DOMAINS": " Example.com, @corp.example ,,",
		"KEYLEDGER_PASSWORD_LOGIN": "false", "KEYLEDGER_BASE_URL": "https://keys.example.com",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.OIDCClientSecret != "from-a-file" || c.PasswordLogin || !slices.Equal(c.OIDCAllowedDomains, []string{"example.com", "corp.example"}) {
		t.Errorf("parsed secret %q password %v domains %q", c.OIDCClientSecret, c.PasswordLogin, c.OIDCAllowedDomains)
	}
	w := c.WebConfig()
	if w.OIDC == nil || w.OIDC.Issuer != "https://login.example.com/realms/acme" || w.OIDC.ClientID != "keyledger" ||
		w.OIDC.ClientSecret != "from-a-file" || !slices.Equal(w.OIDC.AllowedDomains, c.OIDCAllowedDomains) || !w.PasswordLoginOff {
		t.Errorf("web config %+v", w)
	}

	// Plain http only for a provider on this machine (tests, development).
	for _, issuer := range []string{"http://127.0.0.1:5556/dex", "http://localhost:8081", "http://[::1]:9000"} {
		if _, err := LoadConfig(envFunc(map[string]string{"KEYLEDGER_OIDC_ISSUER": issuer, "KEYLEDGER_OIDC_CLIENT_ID": "k",
			"KEYLEDGER_OIDC_CLIENT_SECRET": "s"})); err != nil {
			t.Errorf("%s: %v", issuer, err)
		}
	}
}
