package store_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/pgcluster"
	"github.com/keyledger/keyledger/store/storetest"
)

// TestChainAcrossTxidDigitBoundary chains, in one batch, events whose
// transaction ids cross a power of ten (…998, 999, 1000, 1001…). The chain
// must follow numeric txid order: sorted as text, 1000 came before 999, and
// the next chaining run failed for ever on a duplicate event. A private
// cluster is used because only a fresh one has txids near a small power of
// ten.
func TestChainAcrossTxidDigitBoundary(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a Postgres cluster")
	}
	t.Parallel()
	ctx := context.Background()
	c := pgcluster.Start(t)
	pool, err := pgxpool.New(ctx, c.CreateDatabase("chain"))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if _, err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	st, err := store.New(ctx, pool, storetest.NewKeyring(t), store.Options{PasswordParams: storetest.FastPasswords()})
	if err != nil {
		t.Fatal(err)
	}
	// Everything so far chained; then burn txids up to just below the
	// next power of ten.
	if _, err := st.ChainAudit(ctx); err != nil {
		t.Fatal(err)
	}
	txid := func() int64 {
		t.Helper()
		var s string
		if err := pool.QueryRow(ctx, "SELECT pg_current_xact_id()::text").Scan(&s); err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	cur := txid()
	boundary := int64(10)
	for boundary <= cur+20 {
		boundary *= 10
	}
	if boundary-cur > 20000 {
		t.Skipf("txid %d is too far below %d to reach cheaply", cur, boundary)
	}
	for cur < boundary-8 {
		cur = txid()
	}
	// Events from txids on both sides of the boundary, none chained yet.
	for i := range 16 {
		if _, err := st.CreateUser(ctx, keyledger.SystemActor("test"), keyledger.NewUser{
			Email: fmt.Sprintf("u%d@example.com", i), Name: "U", Role: keyledger.RoleMember, Password: "correct horse battery staple"}); err != nil {
			t.Fatal(err)
		}
	}
	if now := txid(); now <= boundary {
		t.Fatalf("txids did not cross %d (now %d)", boundary, now)
	}
	if n, err := st.ChainAudit(ctx); err != nil || n < 16 {
		t.Fatalf("chain: %d, %v", n, err)
	}
	var outOfOrder int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM (SELECT event_txid, event_id, lag(event_txid) OVER w AS pt, lag(event_id) OVER w AS pi
		FROM audit_chain WINDOW w AS (ORDER BY seq)) c WHERE (event_txid, event_id) < (pt, pi)`).Scan(&outOfOrder); err != nil {
		t.Fatal(err)
	}
	if outOfOrder != 0 {
		t.Errorf("%d chain links out of (txid, id) order across txid %d", outOfOrder, boundary)
	}
	// Chaining again (more events or none) works, and the chain verifies.
	if _, err := st.CreateUser(ctx, keyledger.SystemActor("test"), keyledger.NewUser{
		Email: "late@example.com", Name: "L", Role: keyledger.RoleMember, Password: "correct horse battery staple"}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.ChainAudit(ctx); err != nil {
		t.Fatalf("chaining after the boundary: %v", err)
	}
	r, err := st.VerifyAudit(ctx)
	if err != nil || !r.OK() {
		t.Fatalf("verify: %v %s", err, r.Problem)
	}
}
