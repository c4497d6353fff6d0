package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/tern/v2/migrate"
	"github.com/keyledger/keyledger/migrations"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"
)

const versionTable = "public.schema_version"

// migrationLock is the advisory lock tern takes around migrations. Taking
// the same lock (session locks are re-entrant) around our own checks makes
// the version check and the migration one atomic step across replicas.
const migrationLock = int64(9628173550095224)

// MigrationState reports the schema version in the database and the latest
// version this binary knows.
type MigrationState struct {
	Current int32
	Latest  int32
}

// Pending reports whether migrations remain to apply.
func (m MigrationState) Pending() bool { return m.Current < m.Latest }

// Migrate applies pending migrations under an advisory lock. It refuses a
// database whose schema is newer than this binary, since running old code
// against a newer schema can corrupt data the newer code relies on.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (MigrationState, error) {
	var st MigrationState
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return st, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Release()
	c := conn.Conn()
	if _, err := c.Exec(ctx, "SELECT pg_advisory_lock($1)", migrationLock); err != nil {
		return st, fmt.Errorf("migrate: take lock: %w", err)
	}
	defer func() {
		// Unlock with a fresh context: a cancelled ctx must not leave the
		// lock held on a pooled connection.
		_, _ = c.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrationLock)
	}()
	m, err := newMigrator(ctx, c)
	if err != nil {
		return st, err
	}
	st.Latest = int32(len(m.Migrations))
	if st.Current, err = m.GetCurrentVersion(ctx); err != nil {
		return st, fmt.Errorf("migrate: read schema version: %w", err)
	}
	if st.Current > st.Latest {
		return st, fmt.Errorf("database schema is at version %d but this keyledger binary knows only up to %d: run the newer keyledger, or restore a backup taken before the upgrade", st.Current, st.Latest)
	}
	if err := m.Migrate(ctx); err != nil {
		return st, fmt.Errorf("migrate from version %d to %d: %w", st.Current, st.Latest, err)
	}
	st.Current = st.Latest
	// River keeps its job tables in the same database; its migrations run
	// under the same lock so replicas do not race on them either.
	rm, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return st, fmt.Errorf("migrate job queue: %w", err)
	}
	if _, err := rm.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return st, fmt.Errorf("migrate job queue: %w", err)
	}
	return st, nil
}

// Migrations reports the schema version without changing anything.
func Migrations(ctx context.Context, pool *pgxpool.Pool) (MigrationState, error) {
	var st MigrationState
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return st, fmt.Errorf("migration state: connect: %w", err)
	}
	defer conn.Release()
	names, err := migrate.FindMigrations(migrations.FS)
	if err != nil {
		return st, fmt.Errorf("migration state: list migrations: %w", err)
	}
	st.Latest = int32(len(names))
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", versionTable).Scan(&exists); err != nil {
		return st, fmt.Errorf("migration state: %w", err)
	}
	if !exists {
		return st, nil
	}
	if err := conn.QueryRow(ctx, "SELECT version FROM "+versionTable).Scan(&st.Current); err != nil && err != pgx.ErrNoRows {
		return st, fmt.Errorf("migration state: read version: %w", err)
	}
	return st, nil
}

func newMigrator(ctx context.Context, c *pgx.Conn) (*migrate.Migrator, error) {
	m, err := migrate.NewMigrator(ctx, c, versionTable)
	if err != nil {
		return nil, fmt.Errorf("migrate: prepare: %w", err)
	}
	if err := m.LoadMigrations(migrations.FS); err != nil {
		return nil, fmt.Errorf("migrate: load migrations: %w", err)
	}
	return m, nil
}
