// Package storetest hands tests their own freshly migrated Postgres
// database. A template database is migrated once per schema (its name
// carries a hash of the migrations) and cloned per test, which takes tens of
// milliseconds, so packages and tests run in parallel without seeing each
// other's rows.
package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger/crypto"
	"github.com/keyledger/keyledger/migrations"
	"github.com/keyledger/keyledger/store"
)

// DefaultURL is used when KEYLEDGER_TEST_DATABASE_URL is unset.
const DefaultURL = "postgres://postgres:postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminURL is the server to create test databases on.
func AdminURL() string {
	if u := os.Getenv("KEYLEDGER_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

// WithDatabase returns url with its database name replaced.
func WithDatabase(url, name string) (string, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return "", fmt.Errorf("parse database url: %w", err)
	}
	// Rebuild from the parsed config so any URL form works.
	return fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=disable", cfg.User, cfg.Password, cfg.Host, cfg.Port, name), nil
}

// templateLock serializes template creation and cloning across test
// processes (CREATE DATABASE ... TEMPLATE refuses while the template has
// other connections).
const templateLock = int64(0x6b6c74657374) // "kltest"

func schemaHash() (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		if err != nil {
			return err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", path, len(b))
		h.Write(b)
		return nil
	})
	// River's own migrations go into the template too; bump this when
	// upgrading River so templates are rebuilt.
	h.Write([]byte("river v0.51.1"))
	return hex.EncodeToString(h.Sum(nil))[:12], err
}

// NewDatabase creates a fresh migrated database and returns its URL; it is
// dropped when the test ends. Without a reachable Postgres the test fails:
// tests never silently skip the database.
func NewDatabase(t testing.TB) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("storetest: connect to Postgres at KEYLEDGER_TEST_DATABASE_URL (default %s): %v", DefaultURL, err)
	}
	defer admin.Close(context.Background())
	hash, err := schemaHash()
	if err != nil {
		t.Fatalf("storetest: hash migrations: %v", err)
	}
	tmpl := "keyledger_tmpl_" + hash
	if _, err := admin.Exec(ctx, "SELECT pg_advisory_lock($1)", templateLock); err != nil {
		t.Fatalf("storetest: lock: %v", err)
	}
	// Best effort: closing admin (deferred above, so it runs after this)
	// ends the session, which releases the lock anyway.
	defer func() { _, _ = admin.Exec(context.Background(), "SELECT pg_advisory_unlock($1)", templateLock) }()
	var exists bool
	if err := admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", tmpl).Scan(&exists); err != nil {
		t.Fatalf("storetest: %v", err)
	}
	if !exists {
		if err := createTemplate(ctx, admin, tmpl); err != nil {
			t.Fatalf("storetest: create template: %v", err)
		}
	}
	name := strings.ToLower(fmt.Sprintf("keyledger_test_%s_%d", sanitize(t.Name()), time.Now().UnixNano()%1e9))
	if len(name) > 63 {
		name = name[len(name)-63:]
		name = "k" + name[1:]
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s TEMPLATE %s", pgx.Identifier{name}.Sanitize(), pgx.Identifier{tmpl}.Sanitize())); err != nil {
		t.Fatalf("storetest: create database: %v", err)
	}
	url, err := WithDatabase(AdminURL(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, AdminURL())
		if err != nil {
			t.Logf("storetest: drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{name}.Sanitize())); err != nil {
			t.Logf("storetest: drop %s: %v", name, err)
		}
	})
	return url
}

func createTemplate(ctx context.Context, admin *pgx.Conn, tmpl string) error {
	building := tmpl + "_building"
	if _, err := admin.Exec(ctx, fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", pgx.Identifier{building}.Sanitize())); err != nil {
		return err
	}
	if _, err := admin.Exec(ctx, fmt.Sprintf("CREATE DATABASE %s", pgx.Identifier{building}.Sanitize())); err != nil {
		return err
	}
	url, err := WithDatabase(AdminURL(), building)
	if err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	_, err = store.Migrate(ctx, pool)
	pool.Close()
	if err != nil {
		return err
	}
	// Rename only when complete, so a crash mid-migration never leaves a
	// half-built template behind under the real name.
	_, err = admin.Exec(ctx, fmt.Sprintf("ALTER DATABASE %s RENAME TO %s", pgx.Identifier{building}.Sanitize(), pgx.Identifier{tmpl}.Sanitize()))
	return err
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// NewPool returns a pool on a fresh migrated database.
func NewPool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	pool, _ := newCountingPool(t)
	return pool
}

// QueryCounter counts the statements sent through a pool, so tests can
// hold a request to a query budget (and catch N+1 loops).
type QueryCounter struct {
	n atomic.Int64
}

// TraceQueryStart implements pgx.QueryTracer.
func (c *QueryCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.n.Add(1)
	return ctx
}

// TraceQueryEnd implements pgx.QueryTracer.
func (c *QueryCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}

// Count is the number of statements so far.
func (c *QueryCounter) Count() int64 { return c.n.Load() }

func newCountingPool(t testing.TB) (*pgxpool.Pool, *QueryCounter) {
	t.Helper()
	cfg, err := pgxpool.ParseConfig(NewDatabase(t))
	if err != nil {
		t.Fatalf("storetest: pool config: %v", err)
	}
	qc := &QueryCounter{}
	cfg.ConnConfig.Tracer = qc
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		t.Fatalf("storetest: pool: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool, qc
}

// FastPasswords are argon2id parameters cheap enough for tests.
func FastPasswords() *crypto.PasswordParams {
	p := crypto.DefaultPasswordParams()
	p.MemoryKiB = 64
	p.Time = 1
	p.Threads = 1
	return &p
}

// NewKeyring returns a keyring with one fresh master key.
func NewKeyring(t testing.TB) *crypto.Keyring {
	t.Helper()
	b64, err := crypto.GenerateKEK()
	if err != nil {
		t.Fatal(err)
	}
	k, err := crypto.ParseKEK(b64)
	if err != nil {
		t.Fatal(err)
	}
	r, err := crypto.NewKeyring(k)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// NewStore returns a Store on a fresh database with a fresh master key.
func NewStore(t testing.TB, opts store.Options) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	s, pool, _ := NewCountingStore(t, opts)
	return s, pool
}

// NewCountingStore is NewStore that also counts the statements the store
// sends.
func NewCountingStore(t testing.TB, opts store.Options) (*store.Store, *pgxpool.Pool, *QueryCounter) {
	t.Helper()
	pool, qc := newCountingPool(t)
	if opts.PasswordParams == nil {
		opts.PasswordParams = FastPasswords()
	}
	s, err := store.New(context.Background(), pool, NewKeyring(t), opts)
	if err != nil {
		t.Fatalf("storetest: store: %v", err)
	}
	return s, pool, qc
}
