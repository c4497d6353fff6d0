package store

import (
	"context"

	"github.com/keyledger/keyledger"
)

// SetShell remembers the shell whose line the actor's quick copy puts on
// the clipboard. A preference of their own: the update names the actor's
// row and re-checks, in the same statement, that the account is active.
func (s *Store) SetShell(ctx context.Context, actor keyledger.Actor, shell string) error {
	if actor.User == nil {
		return keyledger.Errorf(keyledger.EUNAUTHORIZED, "Please sign in.")
	}
	f, err := keyledger.CheckShell(shell)
	if err != nil {
		return err
	}
	tag, err := s.pool.Exec(ctx, "UPDATE users SET shell = $2 WHERE id = $1 AND status = $3", actor.User.ID, string(f), string(keyledger.UserActive))
	if err != nil {
		return s.internal(ctx, "set shell", err)
	}
	if tag.RowsAffected() == 0 {
		return keyledger.Errorf(keyledger.EFORBIDDEN, "Your account is deactivated.")
	}
	return nil
}
