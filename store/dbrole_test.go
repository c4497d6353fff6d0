package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

// appRoleGrants is the grant script docs/operations.md gives for running the app
// under a role that may only INSERT and SELECT on the audit tables. The
// test runs exactly this, so the documentation cannot drift from what works.
const appRoleGrants = `
GRANT CONNECT ON DATABASE %[1]s TO %[2]s;
GRANT USAGE ON SCHEMA public TO %[2]s;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %[2]s;
GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %[2]s;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_events, audit_chain, audit_epochs, audit_chain_keying FROM %[2]s;
`

// TestAppRoleGrantsDocumented holds docs/operations.md to the grants this
// file tests, line by line.
func TestAppRoleGrantsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(fmt.Sprintf(appRoleGrants, "keyledger", "keyledger_app")), "\n") {
		if !strings.Contains(string(doc), line) {
			t.Errorf("docs/operations.md lacks the grant %q", line)
		}
	}
}

func TestAppRoleCannotRewriteAudit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	role := fmt.Sprintf("keyledger_app_%d", time.Now().UnixNano()%1e9)
	// Registered before the database, so it runs after the database is
	// dropped: roles are cluster-wide and outlive it.
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), storetest.AdminURL())
		if err != nil {
			t.Logf("drop role %s: %v", role, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), "DROP ROLE IF EXISTS "+role); err != nil {
			t.Logf("drop role %s: %v", role, err)
		}
	})
	url := storetest.NewDatabase(t)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE ROLE "+role+" LOGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf(appRoleGrants, pgx.Identifier{cfg.Database}.Sanitize(), role)); err != nil {
		t.Fatal(err)
	}
	appURL := strings.Replace(url, "postgres://"+cfg.User+":", "postgres://"+role+":", 1)
	pool, err := pgxpool.New(ctx, appURL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	var who string
	if err := pool.QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil || who != role {
		t.Fatalf("connected as %q (%v), want %q", who, err, role)
	}
	s, err := store.New(ctx, pool, storetest.NewKeyring(t), store.Options{PasswordParams: storetest.FastPasswords()})
	if err != nil {
		t.Fatalf("the app role cannot start the store: %v", err)
	}
	u, err := s.CreateUser(ctx, keyledger.SystemActor("test"), keyledger.NewUser{Email: "a@example.com", Name: "A", Role: keyledger.RoleAdmin, Password: "correct horse battery"})
	if err != nil {
		t.Fatal(err)
	}
	actor := keyledger.Actor{User: u, StepUpAt: time.Now()}
	res, err := s.CreateKey(ctx, actor, keyledger.KeyInput{Name: "k", Project: "p", Environment: "development", OwnerEmail: u.Email, Value: "sk-proj-approleTEST1234567890"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reveal(ctx, actor, res.Key.ID, "test"); err != nil {
		t.Fatalf("reveal as the app role: %v", err)
	}
	if _, err := s.ChainAudit(ctx); err != nil {
		t.Fatalf("chain as the app role: %v", err)
	}
	for _, q := range []string{
		"UPDATE audit_events SET reason = 'x'",
		"DELETE FROM audit_events",
		"TRUNCATE audit_events",
		"DELETE FROM audit_chain",
		"UPDATE audit_chain_keying SET keyed_from = 1000000",
		"DELETE FROM audit_chain_keying",
		"ALTER TABLE audit_events DISABLE TRIGGER USER",
	} {
		_, err := pool.Exec(ctx, q)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || (pgErr.Code != "42501" && pgErr.Code != "42P01") {
			t.Errorf("%s as the app role: %v, want permission denied", q, err)
		}
	}
	r, err := s.VerifyAudit(ctx)
	if err != nil || !r.OK() {
		t.Fatalf("verify as the app role: %+v %v", r, err)
	}
}
