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

// Environments lists environments in display order, for every active
// person (menus, forms) and system actors.
func (s *Store) Environments(ctx context.Context, actor keyledger.Actor) ([]keyledger.Environment, error) {
	if err := mayRead(actor, keyledger.CanUse); err != nil {
		return nil, err
	}
	return s.environments(ctx)
}

// environments is Environments for callers that have checked the actor.
func (s *Store) environments(ctx context.Context) ([]keyledger.Environment, error) {
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

// environmentID returns the id of the environment named name (already
// normalized), or 0 if there is none. Environments are never renamed or
// deleted, so a name, once found, maps to the same id for good and is
// remembered; that lets list queries filter on keys.environment_id, which
// the planner can match to an index, instead of joining by name.
func (s *Store) environmentID(ctx context.Context, name string) (int64, error) {
	if id, ok := s.envIDs.Load(name); ok {
		return id.(int64), nil
	}
	var id int64
	err := s.pool.QueryRow(ctx, "SELECT id FROM environments WHERE name = $1", name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, s.internal(ctx, "find environment", err)
	}
	s.envIDs.Store(name, id)
	return id, nil
}
