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

// CreateEnvironment adds an environment. Admins only; audited.
func (s *Store) CreateEnvironment(ctx context.Context, actor keyledger.Actor, in keyledger.EnvironmentInput) (keyledger.Environment, error) {
	if err := noToken(actor); err != nil {
		return keyledger.Environment{}, err
	}
	env, err := keyledger.ValidateEnvironment(in)
	if err != nil {
		return env, err
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		actor, err := freshActorMay(ctx, tx, actor, keyledger.CanAdminister)
		if err != nil {
			return err
		}
		err = tx.QueryRow(ctx, `INSERT INTO environments (name, reveal_policy, reason_required, sensitive, rotation_days, allow_token_reveal, position)
			VALUES ($1, $2, $3, $4, $5, $6, (SELECT coalesce(max(position), 0) + 10 FROM environments)) RETURNING id`,
			env.Name, string(env.RevealPolicy), env.ReasonRequired, env.Sensitive, env.RotationDays, env.AllowTokenReveal).Scan(&env.ID)
		if isUniqueViolation(err, "") {
			return &keyledger.Error{Code: keyledger.ECONFLICT, Message: "That environment exists.", Fields: map[string]string{"name": "An environment with this name exists."}}
		}
		if err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionEnvCreate, Environment: env.Name, Details: envDetails(env)})
	})
	if err != nil {
		return env, s.internal(ctx, "create environment", err)
	}
	return env, nil
}

// UpdateEnvironment changes an environment's policy. It applies to the
// very next request: policy is read inside each reveal's transaction.
func (s *Store) UpdateEnvironment(ctx context.Context, actor keyledger.Actor, name string, in keyledger.EnvironmentInput) (keyledger.Environment, error) {
	if err := noToken(actor); err != nil {
		return keyledger.Environment{}, err
	}
	in.Name = name
	env, err := keyledger.ValidateEnvironment(in)
	if err != nil {
		return env, err
	}
	err = s.tx(ctx, func(tx pgx.Tx) error {
		actor, err := freshActorMay(ctx, tx, actor, keyledger.CanAdminister)
		if err != nil {
			return err
		}
		before, err := scanEnv(tx.QueryRow(ctx, "SELECT "+envColumns+" FROM environments WHERE name = $1 FOR UPDATE", env.Name))
		if errors.Is(err, pgx.ErrNoRows) {
			return keyledger.ErrNotFound("Environment")
		}
		if err != nil {
			return err
		}
		env.ID = before.ID
		if _, err := tx.Exec(ctx, `UPDATE environments SET reveal_policy = $2, reason_required = $3, sensitive = $4, rotation_days = $5, allow_token_reveal = $6 WHERE id = $1`,
			env.ID, string(env.RevealPolicy), env.ReasonRequired, env.Sensitive, env.RotationDays, env.AllowTokenReveal); err != nil {
			return err
		}
		// Keys following the environment's default get a new due date.
		if before.RotationDays != env.RotationDays {
			if _, err := tx.Exec(ctx, `UPDATE keys SET rotate_by = last_rotated_at + make_interval(days => $2)
				WHERE environment_id = $1 AND rotation_days IS NULL AND archived_at IS NULL`, env.ID, env.RotationDays); err != nil {
				return err
			}
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionEnvUpdate, Environment: env.Name,
			Details: map[string]any{"before": envDetails(before), "after": envDetails(env)}})
	})
	if err != nil {
		return env, s.internal(ctx, "update environment", err)
	}
	return env, nil
}

func envDetails(e keyledger.Environment) map[string]any {
	return map[string]any{"reveal_policy": string(e.RevealPolicy), "reason_required": e.ReasonRequired, "sensitive": e.Sensitive,
		"rotation_days": e.RotationDays, "allow_token_reveal": e.AllowTokenReveal}
}
