package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
)

// tokenCreate is an admin command on the server side (it needs the
// database and the master key, like `user create`): it mints a personal
// access token for a user, for the client's `login`.
func (m *Main) tokenCreate(ctx context.Context, cfg Config, args []string) error {
	fs := m.newFlags("token create", "token create --email E --scopes read,reveal [--expires 30d] [--name N]")
	email := fs.String("email", "", "the user the token acts as (required)")
	scopes := fs.String("scopes", "", "comma-separated: read, reveal, write (required)")
	expires := fs.String("expires", "", "lifetime like 30d or 12h (default 90d, at most 365d)")
	name := fs.String("name", "cli-created", "what the token is for, shown in the user's token list")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("token create: unexpected argument %q", fs.Arg(0))
	}
	if *email == "" {
		return usageErr("token create: --email is required")
	}
	if *scopes == "" {
		return usageErr("token create: --scopes is required, e.g. --scopes read,reveal")
	}
	in := keyledger.TokenInput{Name: *name, Scopes: keyledger.ParseScopes(*scopes), Expires: *expires}
	// Refuse a bad request before connecting to anything.
	if _, err := keyledger.ValidateToken(in); err != nil {
		return usageErr("%s", fieldMessage(err))
	}
	return m.withStore(ctx, cfg, func(st *store.Store) error {
		secret, tok, err := st.CreateToken(ctx, keyledger.SystemActor("cli"), *email, in)
		if err != nil {
			return errors.New(fieldMessage(err))
		}
		fmt.Fprintln(m.Stdout, secret)
		fmt.Fprintf(m.Stderr, "token %q for %s (scopes %s) expires %s; it is shown only once\n",
			tok.Name, tok.UserEmail, strings.Join(tok.Scopes, ", "), tok.ExpiresAt.UTC().Format(time.RFC3339))
		return nil
	})
}

// fieldMessage turns a validation error into "--flag: problem" parts.
func fieldMessage(err error) string {
	var ke *keyledger.Error
	if !errors.As(err, &ke) {
		return err.Error()
	}
	f := keyledger.FieldErrors(err)
	if len(f) == 0 {
		return keyledger.ErrorMessage(err)
	}
	var parts []string
	for k, v := range f {
		parts = append(parts, "--"+k+": "+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}
