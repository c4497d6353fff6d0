package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger/store/storetest"
)

// TestServeOIDCProviderLate: serve with single sign-on only starts and is
// ready while the identity provider is down; the sign-in page says SSO is
// temporarily unavailable until discovery (retried in the background)
// succeeds. The command line still creates users with password sign-in
// off.
func TestServeOIDCProviderLate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the server")
	}
	dbURL := storetest.NewDatabase(t)
	key := newKEK(t)
	const secret = "e2e-client-secret-7d1c"
	issuerAddr, addr := freeAddr(t), freeAddr(t)
	issuer := "http://" + issuerAddr
	env := dbEnv(dbURL, key)
	for k, v := range map[string]string{"KEYLEDGER_LISTEN": addr, "KEYLEDGER_OIDC_ISSUER": issuer, "KEYLEDGER_OIDC_CLIENT_ID": "keyledger",
		"KEYLEDGER_OIDC_CLIENT_SECRET": secret, "KEYLEDGER_PASSWORD_LOGIN": "false", "KEYLEDGER_LOG_FORMAT": "json"} {
		env[k] = v
	}
	mustRun(t, env, "", "bootstrap")
	if r := mustRun(t, env, "a long enough password 1\n", "user", "create", "--email", "ops@corp.example", "--role", "admin"); !strings.Contains(r.stdout, "created ops@corp.example") {
		t.Fatalf("user create with password sign-in off: %q", r.stdout)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan result, 1)
	go func() { done <- runMainCtx(ctx, t, env, "", "serve") }()
	base := "http://" + addr
	client := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := client.Get(base + path)
		if err != nil {
			return nil, ""
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		return resp, string(b)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if resp, _ := get("/readyz"); resp != nil && resp.StatusCode == http.StatusOK {
			break
		}
		select {
		case r := <-done:
			t.Fatalf("serve exited while the provider was down: %d\n%s", r.code, r.stderr)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("not ready after 30s with the provider down")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, body := get("/login"); !strings.Contains(body, `data-testid="login-sso-unavailable"`) || strings.Contains(body, `name="password"`) {
		t.Fatalf("sign-in page with the provider down:\n%s", body)
	}

	// The provider comes up.
	ln, err := net.Listen("tcp", issuerAddr)
	if err != nil {
		t.Fatal(err)
	}
	idp := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": issuer, "authorization_endpoint": issuer + "/authorize",
			"token_endpoint": issuer + "/token", "jwks_uri": issuer + "/jwks", "id_token_signing_alg_values_supported": []string{"RS256"}})
	})}
	go func() { _ = idp.Serve(ln) }()
	defer func() { _ = idp.Close() }() // teardown
	deadline = time.Now().Add(20 * time.Second)
	for {
		if _, body := get("/login"); strings.Contains(body, `data-testid="login-sso"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the SSO button did not appear after the provider came up")
		}
		time.Sleep(100 * time.Millisecond)
	}
	resp, _ := get("/auth/oidc/login")
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || loc == nil || !strings.HasPrefix(loc.String(), issuer+"/authorize?") ||
		loc.Query().Get("redirect_uri") != base+"/auth/oidc/callback" || loc.Query().Get("code_challenge_method") != "S256" {
		t.Fatalf("SSO start: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}

	cancel()
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	if r.code != 0 {
		t.Errorf("serve exit %d", r.code)
	}
	logs := r.stdout + r.stderr
	for _, want := range []string{"single sign-on configured", base + "/auth/oidc/callback", "single sign-on provider not reachable yet; retrying", "single sign-on ready"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
	if strings.Contains(logs, secret) {
		t.Error("the logs carry the client secret")
	}
}
