package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// userColumns is userCols' select list, unqualified.
var userColumns = userCols.sql("")

func scanUser(row pgx.Row) (*keyledger.User, error) {
	var u keyledger.User
	if err := row.Scan(userCols.dests(make([]any, 0, len(userCols)), &u)...); err != nil {
		return nil, err
	}
	return &u, nil
}

// CreateUser adds a user. The actor must be an admin, or the system (the
// command line, first-run bootstrap).
func (s *Store) CreateUser(ctx context.Context, actor keyledger.Actor, in keyledger.NewUser) (*keyledger.User, error) {
	if err := noToken(actor); err != nil {
		return nil, err
	}
	if actor.User != nil && (!actor.User.Active() || actor.User.Role != keyledger.RoleAdmin) {
		return nil, keyledger.Errorf(keyledger.EFORBIDDEN, "Only admins may create users.")
	}
	if err := keyledger.CheckCredentialGrant(actor, s.now()); err != nil {
		return nil, err
	}
	if err := in.Validate(); err != nil {
		return nil, err
	}
	hash, err := s.hashPassword(ctx, in.Password)
	if err != nil {
		return nil, fmt.Errorf("create user: hash password: %w", err)
	}
	var u *keyledger.User
	err = s.tx(ctx, func(tx pgx.Tx) error {
		u, err = scanUser(tx.QueryRow(ctx, `INSERT INTO users (email, name, role, password_hash) VALUES ($1, $2, $3, $4)
			RETURNING `+userColumns, in.Email, in.Name, in.Role, hash))
		if err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionUserCreate, SubjectID: u.ID, SubjectEmail: u.Email,
			Details: map[string]any{"role": string(u.Role)}})
	})
	if isUniqueViolation(err, "users_email_key") {
		return nil, &keyledger.Error{Code: keyledger.ECONFLICT, Message: "A user with this email already exists.",
			Fields: map[string]string{"email": "A user with this email already exists."}}
	}
	if err != nil {
		return nil, s.internal(ctx, "create user "+in.Email, err)
	}
	return u, nil
}

// CountUsers counts all users, active or not.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM users").Scan(&n); err != nil {
		return 0, s.internal(ctx, "count users", err)
	}
	return n, nil
}

// ListUsers lists users by email. Leads and admins (and system actors).
func (s *Store) ListUsers(ctx context.Context, actor keyledger.Actor) ([]keyledger.User, error) {
	if err := mayRead(actor, keyledger.CanLead); err != nil {
		return nil, err
	}
	return s.listUsers(ctx)
}

// listUsers is ListUsers for callers that have checked the actor.
func (s *Store) listUsers(ctx context.Context) ([]keyledger.User, error) {
	rows, err := s.pool.Query(ctx, "SELECT "+userColumns+" FROM users ORDER BY email")
	if err != nil {
		return nil, s.internal(ctx, "list users", err)
	}
	users, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (keyledger.User, error) {
		u, err := scanUser(row)
		if err != nil {
			return keyledger.User{}, err
		}
		return *u, nil
	})
	if err != nil {
		return nil, s.internal(ctx, "list users", err)
	}
	return users, nil
}

// ActiveUsers lists active users for owner pickers, which every active
// person sees (a key's owner is chosen when it is registered).
func (s *Store) ActiveUsers(ctx context.Context, actor keyledger.Actor) ([]keyledger.User, error) {
	if err := mayRead(actor, keyledger.CanUse); err != nil {
		return nil, err
	}
	all, err := s.listUsers(ctx)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, u := range all {
		if u.Status == keyledger.UserActive {
			out = append(out, u)
		}
	}
	return out, nil
}

// mayRead applies the root package's rule may to the person behind
// actor, as the request loaded them: the session read re-reads status and
// role on every request, and a read changes nothing that a deactivation a
// moment later could regret, so reads add no statement to re-read them
// (writes do, inside their transaction: freshActorMay). A system actor (a
// job or the CLI: no user, no token, a name) may read; an empty actor may
// not.
func mayRead(actor keyledger.Actor, may func(*keyledger.User) error) error {
	if actor.User == nil && actor.Token == nil && actor.Name != "" {
		return nil
	}
	return may(actor.User)
}

// UserByEmail finds a user by email.
func (s *Store) UserByEmail(ctx context.Context, email string) (*keyledger.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE email = $1", keyledger.NormalizeEmail(email)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyledger.ErrNotFound("User")
	}
	if err != nil {
		return nil, s.internal(ctx, "find user", err)
	}
	return u, nil
}

// DeactivateUser ends a user's access at once: status, sessions and the
// audit event change in one transaction, so a copied cookie dies with it.
func (s *Store) DeactivateUser(ctx context.Context, actor keyledger.Actor, email string) (*keyledger.User, error) {
	// Clear after the change committed, so no lookup can refill the
	// cache with the old state.
	defer s.tokens.clear()
	if err := noToken(actor); err != nil {
		return nil, err
	}
	if actor.User != nil && (!actor.User.Active() || actor.User.Role != keyledger.RoleAdmin) {
		return nil, keyledger.Errorf(keyledger.EFORBIDDEN, "Only admins may deactivate users.")
	}
	email = keyledger.NormalizeEmail(email)
	var u *keyledger.User
	err := s.write(ctx, func(tx pgx.Tx, t *touched) error {
		actor, err := freshActor(ctx, tx, actor)
		if err != nil {
			return err
		}
		if actor.User != nil && keyledger.CanAdminister(actor.User) != nil {
			return keyledger.Errorf(keyledger.EFORBIDDEN, "Only admins may deactivate users.")
		}
		if u, err = deactivateUser(ctx, tx, actor, email); err != nil {
			return err
		}
		*t = touchedUser(actor, s.now(), u.ID)
		return nil
	})
	if err != nil {
		return nil, s.internal(ctx, "deactivate user "+email, err)
	}
	return u, nil
}

// deactivateUser is DeactivateUser inside the caller's transaction, for an
// actor already re-read and allowed to administer.
func deactivateUser(ctx context.Context, tx pgx.Tx, actor keyledger.Actor, email string) (*keyledger.User, error) {
	var target int64
	var role, status string
	err := tx.QueryRow(ctx, "SELECT id, role, status FROM users WHERE email = $1 FOR UPDATE", email).Scan(&target, &role, &status)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyledger.ErrNotFound("User")
	}
	if err != nil {
		return nil, err
	}
	if role == string(keyledger.RoleAdmin) && status == string(keyledger.UserActive) {
		if err := lastAdminGuard(ctx, tx, target); err != nil {
			return nil, err
		}
	}
	u, err := scanUser(tx.QueryRow(ctx, `UPDATE users SET status = $2, deactivated_at = now(), updated_at = now()
		WHERE email = $1 RETURNING `+userColumns, email, string(keyledger.UserDeactivated)))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyledger.ErrNotFound("User")
	}
	if err != nil {
		return nil, err
	}
	sessions, _, err := endAccess(ctx, tx, u.ID)
	if err != nil {
		return nil, err
	}
	if err := writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionUserDeactivate, SubjectID: u.ID, SubjectEmail: u.Email,
		Details: map[string]any{"sessions_revoked": sessions}}); err != nil {
		return nil, err
	}
	return u, nil
}

// UserByID finds a user: for the person themselves, leads and admins (and
// system actors). Anyone else is told there is no such user.
func (s *Store) UserByID(ctx context.Context, actor keyledger.Actor, id int64) (*keyledger.User, error) {
	if actor.User == nil || actor.User.ID != id || !actor.User.Active() {
		if err := mayRead(actor, keyledger.CanLead); err != nil {
			return nil, keyledger.ErrNotFound("User")
		}
	}
	return s.userByID(ctx, id)
}

// userByID is UserByID for callers that have checked the actor.
func (s *Store) userByID(ctx context.Context, id int64) (*keyledger.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE id = $1", id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, keyledger.ErrNotFound("User")
	}
	if err != nil {
		return nil, s.internal(ctx, "find user", err)
	}
	return u, nil
}

// lastAdminGuard refuses to leave the instance without an active admin.
func lastAdminGuard(ctx context.Context, tx pgx.Tx, userID int64) error {
	// FOR UPDATE: two admins stepping down at once must not each count
	// the other as the one who stays (write skew).
	rows, err := tx.Query(ctx, "SELECT id FROM users WHERE role = 'admin' AND status = $2 AND id <> $1 FOR UPDATE", userID, string(keyledger.UserActive))
	if err != nil {
		return err
	}
	others, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return err
	}
	if len(others) == 0 {
		return keyledger.Errorf(keyledger.ECONFLICT, "This is the last active admin; make someone else admin first.")
	}
	return nil
}

// SetRole changes a user's role. Admins only; audited.
func (s *Store) SetRole(ctx context.Context, actor keyledger.Actor, userID int64, role keyledger.Role) (*keyledger.User, error) {
	defer s.tokens.clear()
	if err := noToken(actor); err != nil {
		return nil, err
	}
	if _, ok := keyledger.ParseRole(string(role)); !ok {
		return nil, &keyledger.Error{Code: keyledger.EINVALID, Message: "Choose admin, lead or member.", Fields: map[string]string{"role": "Choose admin, lead or member."}}
	}
	var u *keyledger.User
	err := s.tx(ctx, func(tx pgx.Tx) error {
		actor, err := freshActorMay(ctx, tx, actor, keyledger.CanAdminister)
		if err != nil {
			return err
		}
		before, err := scanUser(tx.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE id = $1 FOR UPDATE", userID))
		if errors.Is(err, pgx.ErrNoRows) {
			return keyledger.ErrNotFound("User")
		}
		if err != nil {
			return err
		}
		if before.Role == role {
			u = before
			return nil
		}
		if before.Role == keyledger.RoleAdmin && before.Active() {
			if err := lastAdminGuard(ctx, tx, userID); err != nil {
				return err
			}
		}
		if u, err = scanUser(tx.QueryRow(ctx, "UPDATE users SET role = $2, updated_at = now() WHERE id = $1 RETURNING "+userColumns, userID, string(role))); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionUserRole, SubjectID: u.ID, SubjectEmail: u.Email,
			Details: map[string]any{"from": string(before.Role), "to": string(role)}})
	})
	if err != nil {
		return nil, s.internal(ctx, "set role", err)
	}
	return u, nil
}

// ReactivateUser lets a deactivated or frozen user sign in again. Admins
// only; audited.
func (s *Store) ReactivateUser(ctx context.Context, actor keyledger.Actor, userID int64) (*keyledger.User, error) {
	if err := noToken(actor); err != nil {
		return nil, err
	}
	var u *keyledger.User
	err := s.write(ctx, func(tx pgx.Tx, t *touched) error {
		actor, err := freshActorMay(ctx, tx, actor, keyledger.CanAdminister)
		if err != nil {
			return err
		}
		u, err = scanUser(tx.QueryRow(ctx, `UPDATE users SET status = $2, deactivated_at = NULL, updated_at = now()
			WHERE id = $1 AND status <> $2 RETURNING `+userColumns, userID, string(keyledger.UserActive)))
		if errors.Is(err, pgx.ErrNoRows) {
			if _, gerr := scanUser(tx.QueryRow(ctx, "SELECT "+userColumns+" FROM users WHERE id = $1", userID)); gerr == nil {
				return keyledger.Errorf(keyledger.ECONFLICT, "This user is already active.")
			}
			return keyledger.ErrNotFound("User")
		}
		if err != nil {
			return err
		}
		if err := writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionUserReactivate, SubjectID: u.ID, SubjectEmail: u.Email}); err != nil {
			return err
		}
		*t = touchedUser(actor, s.now(), u.ID)
		return nil
	})
	if err != nil {
		return nil, s.internal(ctx, "reactivate user", err)
	}
	return u, nil
}
