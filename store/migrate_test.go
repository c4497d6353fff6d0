package store_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

// schemaFingerprint summarizes the schema and the seeded rows, so that a
// no-op can be told from a change.
func schemaFingerprint(t *testing.T, pool *pgxpool.Pool) string {
	t.Helper()
	var fp string
	err := pool.QueryRow(context.Background(), `SELECT
		(SELECT string_agg(table_name || '.' || column_name || ':' || data_type, ',' ORDER BY table_name, column_name)
			FROM information_schema.columns WHERE table_schema = 'public') ||
		(SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE schemaname = 'public') ||
		(SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger WHERE NOT tgisinternal) ||
		(SELECT string_agg(name || reveal_policy, ',' ORDER BY id) FROM environments) ||
		(SELECT version::text FROM schema_version)`).Scan(&fp)
	if err != nil {
		t.Fatal(err)
	}
	return fp
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	ctx := t.Context()
	before := schemaFingerprint(t, pool)
	for range 2 {
		st, err := store.Migrate(ctx, pool)
		if err != nil {
			t.Fatal(err)
		}
		if st.Pending() || st.Current != st.Latest || st.Latest < 1 {
			t.Errorf("after Migrate: %+v", st)
		}
	}
	if after := schemaFingerprint(t, pool); after != before {
		t.Errorf("Migrate on a current database changed it:\n%s\n%s", before, after)
	}
	st, err := store.Migrations(ctx, pool)
	if err != nil || st.Pending() || st.Current != st.Latest {
		t.Errorf("Migrations = %+v, %v", st, err)
	}
}

// emptyDatabase creates a database with no schema at all and drops it when
// the test ends.
func emptyDatabase(t *testing.T) string {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, storetest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	name := fmt.Sprintf("keyledger_test_empty_%d", time.Now().UnixNano())
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, storetest.AdminURL())
		if err != nil {
			t.Logf("drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	})
	url, err := storetest.WithDatabase(storetest.AdminURL(), name)
	if err != nil {
		t.Fatal(err)
	}
	return url
}

func TestMigrateConcurrentlyOnEmptyDatabase(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := emptyDatabase(t)
	probe, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer probe.Close()
	st, err := store.Migrations(ctx, probe)
	if err != nil || st.Current != 0 || !st.Pending() {
		t.Fatalf("empty database: %+v, %v", st, err)
	}

	const replicas = 5
	var wg sync.WaitGroup
	start := make(chan struct{})
	results := make([]store.MigrationState, replicas)
	errs := make([]error, replicas)
	for i := range replicas {
		wg.Go(func() {
			// Each replica has its own pool, as separate processes would.
			pool, err := pgxpool.New(ctx, url)
			if err != nil {
				errs[i] = err
				return
			}
			defer pool.Close()
			<-start
			results[i], errs[i] = store.Migrate(ctx, pool)
		})
	}
	close(start)
	wg.Wait()
	for i := range replicas {
		if errs[i] != nil {
			t.Errorf("replica %d: %v", i, errs[i])
		} else if results[i].Current != results[i].Latest || results[i].Pending() {
			t.Errorf("replica %d: %+v", i, results[i])
		}
	}
	var envs int
	if err := probe.QueryRow(ctx, "SELECT count(*) FROM environments").Scan(&envs); err != nil || envs != 3 {
		t.Errorf("%d environments seeded (%v), want 3 exactly once", envs, err)
	}
	// The migrated database works as a store.
	s, err := store.New(ctx, probe, storetest.NewKeyring(t), store.Options{PasswordParams: storetest.FastPasswords()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestMigrateRefusesNewerSchema(t *testing.T) {
	t.Parallel()
	pool := storetest.NewPool(t)
	ctx := t.Context()
	if _, err := pool.Exec(ctx, "UPDATE schema_version SET version = 999"); err != nil {
		t.Fatal(err)
	}
	before := schemaFingerprint(t, pool)
	_, err := store.Migrate(ctx, pool)
	if err == nil {
		t.Fatal("Migrate accepted a schema newer than it knows")
	}
	if msg := err.Error(); !strings.Contains(msg, "999") || !strings.Contains(msg, "knows only") {
		t.Errorf("error %q should name the version and say the binary knows only older ones", msg)
	}
	if after := schemaFingerprint(t, pool); after != before {
		t.Error("refused migration changed the database")
	}
	st, err := store.Migrations(ctx, pool)
	if err != nil || st.Current != 999 || st.Pending() {
		t.Errorf("Migrations = %+v, %v", st, err)
	}
	// The advisory lock was released: another replica's Migrate (its own
	// connection, so no re-entrant lock) does not hang.
	other, err := pgxpool.New(ctx, pool.Config().ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	ctx2, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := store.Migrate(ctx2, other); err == nil || ctx2.Err() != nil {
		t.Errorf("second Migrate: %v (ctx %v)", err, ctx2.Err())
	}
}
