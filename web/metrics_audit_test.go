package web_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger/store/storetest"
	"github.com/keyledger/keyledger/web"
)

// /metrics shows the audit chainer's lag: nothing waiting when the chain
// is current; events waiting, with an age, while a transaction in this
// database that has written stays open.
func TestMetricsAuditLag(t *testing.T) {
	t.Parallel()
	env := newEnv(t, withMetrics(web.MetricsConfig{Token: metricsToken}))
	ctx := context.Background()
	env.createKey("member", "development", "lag-1", "sk-proj-"+authzRand(24)+"Lag1")
	if _, err := env.Store.ChainAudit(ctx); err != nil {
		t.Fatal(err)
	}
	lag := func() (float64, float64) {
		t.Helper()
		resp, body := scrape(t, env, bearer(metricsToken))
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /metrics = %d", resp.StatusCode)
		}
		n, ok1 := metricValue(t, body, "keyledger_audit_unchained_events", "")
		age, ok2 := metricValue(t, body, "keyledger_audit_oldest_unchained_seconds", "")
		if !ok1 || !ok2 {
			t.Fatalf("audit lag metrics missing:\n%s", body)
		}
		return n, age
	}
	if n, age := lag(); n != 0 || age != 0 {
		t.Errorf("chain current: unchained %v, oldest %vs; want 0, 0", n, age)
	}

	var db string
	if err := env.Pool.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
		t.Fatal(err)
	}
	here, err := storetest.WithDatabase(storetest.AdminURL(), db)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, here)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "SELECT pg_current_xact_id()"); err != nil {
		t.Fatal(err)
	}
	env.createKey("member", "development", "lag-2", "sk-proj-"+authzRand(24)+"Lag2")
	if _, err := env.Store.ChainAudit(ctx); err != nil {
		t.Fatal(err)
	}
	if n, age := lag(); n < 1 || age <= 0 {
		t.Errorf("held back: unchained %v, oldest %vs; want events waiting with an age", n, age)
	}
	if _, err := conn.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Store.ChainAudit(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := lag(); n != 0 {
		t.Errorf("after the transaction ended: unchained %v, want 0", n)
	}
}
