package main

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

func TestTokenCreate(t *testing.T) {
	t.Parallel()
	url := storetest.NewDatabase(t)
	key := newKEK(t)
	env := dbEnv(url, key)
	mustRun(t, env, cliPassword+"\n", "user", "create", "--email", "dev@example.com", "--name", "Dev", "--role", "member")

	r := mustRun(t, env, "", "token", "create", "--email", "Dev@Example.com", "--scopes", "reveal, read", "--expires", "30d", "--name", "ci")
	secret := strings.TrimSuffix(r.stdout, "\n")
	if !strings.HasPrefix(secret, keyledger.TokenPrefix) || strings.ContainsAny(secret, " \n") {
		t.Fatalf("stdout %q, want just the token", r.stdout)
	}
	if strings.Contains(r.stderr, secret) || !strings.Contains(r.stderr, `token "ci" for dev@example.com (scopes read, reveal) expires `) || !strings.Contains(r.stderr, "shown only once") {
		t.Errorf("stderr %q", r.stderr)
	}
	st, _ := openStore(t, url, key, store.Options{PasswordParams: storetest.FastPasswords()})
	ctx := context.Background()
	a, err := st.TokenActor(ctx, secret, "127.0.0.1", "test")
	if err != nil {
		t.Fatalf("the printed token does not authenticate: %v", err)
	}
	if a.User.Email != "dev@example.com" || a.Token.Name != "ci" || !slices.Equal(a.Token.Scopes, []string{"read", "reveal"}) {
		t.Errorf("token %+v for %s", a.Token, a.User.Email)
	}
	if d := time.Until(a.Token.ExpiresAt); d < 29*24*time.Hour || d > 31*24*time.Hour {
		t.Errorf("expires in %s, want 30 days", d)
	}

	// Defaults: named cli-created, 90 days.
	r = mustRun(t, env, "", "token", "create", "--email", "dev@example.com", "--scopes", "read")
	a, err = st.TokenActor(ctx, strings.TrimSpace(r.stdout), "127.0.0.1", "test")
	if err != nil || a.Token.Name != "cli-created" || time.Until(a.Token.ExpiresAt) < 89*24*time.Hour {
		t.Errorf("default token: %v %+v", err, a.Token)
	}

	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"--email", "nobody@example.com", "--scopes", "read"}, 1, "keyledger: --email: There is no user nobody@example.com.\n"},
		{[]string{"--email", "dev@example.com", "--scopes", "read,admin"}, 2, "keyledger: --scopes: Scopes are read, reveal and write.\n"},
		{[]string{"--email", "dev@example.com", "--scopes", "read", "--expires", "400d"}, 2, "keyledger: --expires: Tokens expire within a year (365d at most).\n"},
		{[]string{"--scopes", "read"}, 2, "keyledger: token create: --email is required\n"},
		{[]string{"--email", "dev@example.com"}, 2, "keyledger: token create: --scopes is required, e.g. --scopes read,reveal\n"},
	} {
		r := runMain(t, env, "", append([]string{"token", "create"}, tt.args...)...)
		if r.code != tt.code || r.stderr != tt.want || r.stdout != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d, %q", tt.args, r.code, r.stdout, r.stderr, tt.code, tt.want)
		}
	}
}
