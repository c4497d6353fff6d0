package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store/storetest"
)

// TestFaultAuditInsertFails breaks the audit insert two ways, a trigger
// that raises and INSERT revoked from the app's role: a reveal then
// answers an error and no value, through the API and the browser, while
// listing keys, key pages and health checks go on working. Repairing the
// fault restores reveals without a restart.
func TestFaultAuditInsertFails(t *testing.T) {
	t.Parallel()
	keyledgerBinary(t)
	ctx := context.Background()
	url := storetest.NewDatabase(t)
	key := newKEK(t)
	st, pool := openStore(t, url, key, fastOpts())
	lead := seedUser(t, st, "lead@example.com", keyledger.RoleLead)
	id, value := seedKey(t, st, lead, "audited")
	token := mintToken(t, st, lead, "read", "reveal")

	// The app runs as a role with only the grants docs/operations.md gives, so
	// that REVOKE applies to it (a superuser ignores privileges). Roles are
	// cluster-wide: dropped at the end.
	role := fmt.Sprintf("keyledger_fault_%d", time.Now().UnixNano()%1e9)
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), storetest.AdminURL())
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP ROLE IF EXISTS "+role)
	})
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	db := pgx.Identifier{cfg.Database}.Sanitize()
	superExec(t, url, "CREATE ROLE "+role+" LOGIN")
	superExec(t, url, fmt.Sprintf(`GRANT CONNECT ON DATABASE %[1]s TO %[2]s;
		GRANT USAGE ON SCHEMA public TO %[2]s;
		GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %[2]s;
		GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO %[2]s;
		REVOKE UPDATE, DELETE, TRUNCATE ON audit_events, audit_chain FROM %[2]s`, db, role))
	t.Cleanup(func() {
		// The role owns nothing, but its grants must go before it can.
		c, err := pgx.Connect(context.Background(), url)
		if err != nil {
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), "DROP OWNED BY "+role)
	})
	appURL := fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", role, cfg.Host, cfg.Port, cfg.Database)
	env := dbEnv(appURL, key)
	env["KEYLEDGER_AUTO_MIGRATE"] = "false"
	srv, base := serveAt(t, env)
	waitReady(t, srv, base)

	api := &http.Client{Timeout: 10 * time.Second}
	b := signInBrowser(t, base, lead.Email, true)
	// The token's first use is audited too: use it before the fault.
	if code, body, err := apiCall(api, http.MethodGet, base, token, "/api/v1/whoami", nil); err != nil || code != http.StatusOK {
		t.Fatalf("whoami: %d %s %v", code, body, err)
	}
	revealed := 0
	revealsWork := func(when string) {
		t.Helper()
		code, v, body, err := apiReveal(api, base, token, id)
		if err != nil || code != http.StatusOK || v != value {
			t.Errorf("%s: API reveal: %d %v %.300s", when, code, err, body)
		} else {
			revealed++
		}
		code, page, err := b.reveal(id)
		if err != nil || code != http.StatusOK || !strings.Contains(string(page), value) {
			t.Errorf("%s: browser reveal: %d %v", when, code, err)
		} else {
			revealed++
		}
	}
	revealsWork("before the fault")

	for _, fault := range []struct{ name, breakSQL, repairSQL string }{
		{"trigger raises",
			`CREATE FUNCTION fault_audit_broken() RETURNS trigger LANGUAGE plpgsql AS $$
				BEGIN RAISE EXCEPTION 'audit storage is broken (fault test)'; END $$;
			 CREATE TRIGGER fault_audit_broken BEFORE INSERT ON audit_events FOR EACH ROW EXECUTE FUNCTION fault_audit_broken()`,
			`DROP TRIGGER fault_audit_broken ON audit_events; DROP FUNCTION fault_audit_broken()`},
		{"insert revoked",
			"REVOKE INSERT ON audit_events FROM " + role,
			"GRANT INSERT ON audit_events TO " + role},
	} {
		t.Run(fault.name, func(t *testing.T) {
			events := countAudit(t, pool, keyledger.ActionKeyReveal)
			superExec(t, url, fault.breakSQL)

			code, _, body, err := apiReveal(api, base, token, id)
			if err != nil || code < 500 || code == http.StatusServiceUnavailable {
				t.Errorf("API reveal with the audit broken: %d %v %.300s; want an internal error", code, err, body)
			}
			if ec, msg := apiErrorOf(body); ec != keyledger.EINTERNAL || msg == "" {
				t.Errorf("API reveal error: code %q message %q", ec, msg)
			}
			if strings.Contains(string(body), value) || strings.Contains(string(body), `"value"`) {
				t.Errorf("API error answer carries the value: %s", body)
			}
			code, page, err := b.reveal(id)
			if err != nil || code < 500 {
				t.Errorf("browser reveal with the audit broken: %d %v", code, err)
			}
			if strings.Contains(string(page), value) {
				t.Error("browser error page carries the value")
			}
			if !strings.Contains(string(page), "Something went wrong") {
				t.Errorf("browser error page does not say what happened:\n%.2000s", page)
			}

			// Everything that does not write an audit event still works.
			if code, body, err := apiCall(api, http.MethodGet, base, token, "/api/v1/keys", nil); err != nil || code != http.StatusOK || !strings.Contains(string(body), id) {
				t.Errorf("GET /api/v1/keys: %d %v %.300s", code, err, body)
			}
			if code, body, err := apiCall(api, http.MethodGet, base, token, "/api/v1/keys/"+id, nil); err != nil || code != http.StatusOK {
				t.Errorf("GET /api/v1/keys/{id}: %d %v %.300s", code, err, body)
			}
			for _, path := range []string{"/keys", "/keys/" + id, "/dashboard"} {
				if code, _, err := b.get(path); err != nil || code != http.StatusOK {
					t.Errorf("GET %s: %d %v", path, code, err)
				}
			}
			for _, path := range []string{"/healthz", "/readyz"} {
				if code, body, err := getStatus(api, base, path); err != nil || code != http.StatusOK {
					t.Errorf("GET %s: %d %q %v", path, code, body, err)
				}
			}
			if n := countAudit(t, pool, keyledger.ActionKeyReveal); n != events {
				t.Errorf("%d key.reveal events after failed reveals, want %d", n, events)
			}

			superExec(t, url, fault.repairSQL)
			revealsWork("after the repair")
			if n := countAudit(t, pool, keyledger.ActionKeyReveal); n != events+2 {
				t.Errorf("%d key.reveal events after the repair, want %d", n, events+2)
			}
		})
	}
	if n := countAudit(t, pool, keyledger.ActionKeyReveal); n != revealed {
		t.Errorf("%d key.reveal events, %d reveals answered 200", n, revealed)
	}
	var orphans int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM audit_events WHERE action = $1 AND key_id IS NULL", keyledger.ActionKeyReveal).Scan(&orphans); err != nil || orphans != 0 {
		t.Errorf("reveal events without a key: %d %v", orphans, err)
	}
	checkNoHalfWrittenRows(t, st, pool)
}
