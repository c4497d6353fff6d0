package store

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

const envColumns = "id, name, reveal_policy, reason_required, sensitive, rotation_days, allow_token_reveal"

func scanEnv(row pgx.Row) (keyledger.Environment, error) {
	var e keyledger.Environment
	err := row.Scan(&e.ID, &e.Name, &e.RevealPolicy, &e.ReasonRequired, &e.Sensitive, &e.RotationDays, &e.AllowTokenReveal)
	return e, err
}

// Environments lists environments in display order.
func (s *Store) Environments(ctx context.Context) ([]keyledger.Environment, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+envColumns+" FROM environments ORDER BY position, name")
	if err != nil {
		return nil, s.internal(ctx, "list environments", err)
	}
	envs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyledger.Environment, error) { return scanEnv(r) })
	if err != nil {
		return nil, s.internal(ctx, "list environments", err)
	}
	return envs, nil
}

// Environment finds an environment by name.
func (s *Store) Environment(ctx context.Context, name string) (keyledger.Environment, error) {
	e, err := scanEnv(s.pool.QueryRow(ctx, "SELECT "+envColumns+" FROM environments WHERE name = $1", keyledger.NormalizeEnvironmentName(name)))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, keyledger.ErrNotFound("Environment")
	}
	if err != nil {
		return e, s.internal(ctx, "find environment", err)
	}
	return e, nil
}
