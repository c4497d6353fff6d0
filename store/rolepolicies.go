package store

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// RolePolicies says, per role, whether two-factor sign-in is required.
// Admins (and system actors).
func (s *Store) RolePolicies(ctx context.Context, actor keyledger.Actor) (map[keyledger.Role]bool, error) {
	if err := mayRead(actor, keyledger.CanAdminister); err != nil {
		return nil, err
	}
	out := map[keyledger.Role]bool{}
	rows, err := s.pool.Query(ctx, "SELECT role, require_totp FROM role_policies")
	if err != nil {
		return nil, s.internal(ctx, "role policies", err)
	}
	defer rows.Close()
	for rows.Next() {
		var r string
		var req bool
		if err := rows.Scan(&r, &req); err != nil {
			return nil, s.internal(ctx, "role policies", err)
		}
		out[keyledger.Role(r)] = req
	}
	return out, s.internal(ctx, "role policies", rows.Err())
}

// SetRolePolicy requires (or stops requiring) two-factor sign-in for a
// role. Admins only; audited.
func (s *Store) SetRolePolicy(ctx context.Context, actor keyledger.Actor, role keyledger.Role, requireTOTP bool) error {
	if err := noToken(actor); err != nil {
		return err
	}
	// Tokens of the role's users who have no second factor stop at once
	// on this replica (TokenActor); other replicas' caches hold for
	// seconds, and reveals re-check (tokenLiveSQL).
	defer s.tokens.clear()
	err := s.tx(ctx, func(tx pgx.Tx) error {
		actor, err := freshActorMay(ctx, tx, actor, keyledger.CanAdminister)
		if err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, "UPDATE role_policies SET require_totp = $2 WHERE role = $1", string(role), requireTOTP)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return keyledger.ErrNotFound("Role")
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionRolePolicy,
			Details: map[string]any{"role": string(role), "require_totp": requireTOTP}})
	})
	return s.internal(ctx, "set role policy", err)
}
