package store

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnsureDatabase creates the database named in url if it does not exist,
// connecting to the server's maintenance database to do so.
func EnsureDatabase(ctx context.Context, url string, out io.Writer) error {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return fmt.Errorf("KEYLEDGER_DATABASE_URL: cannot parse it (%T)", err)
	}
	name := cfg.Database
	if name == "" || name == "postgres" {
		return nil
	}
	cfg.Database = "postgres"
	// One attempt: the caller has just reached the server (bootstrap
	// checks the URL first), so a failure here is about the maintenance
	// database, and waiting would not fix it.
	cfg.ConnectTimeout = 5 * time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		// Without access to the maintenance database (a managed service,
		// a restricted role) assume the database was made for us.
		fmt.Fprintf(out, "Could not check whether database %q exists (%v); assuming it does.\n", name, err)
		return nil
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("check database %q: %w", name, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		var already bool
		_ = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&already)
		if already {
			return nil
		}
		return fmt.Errorf("create database %q: %w", name, err)
	}
	fmt.Fprintf(out, "Created database %q.\n", name)
	return nil
}
