package store

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
)

// touched is what a write tells write about itself: who acted (for the
// audit events the checklist sync writes) and whose offboarding
// checklist its change concerns. The zero value syncs every open
// checklist (its events then name no actor), so a write that says
// nothing is still kept in step.
type touched struct {
	by   keyledger.Actor
	at   time.Time
	user int64 // 0: every open checklist (e.g. a key's owner or viewers may be anyone)
}

// touchedUser says the write changed what the checklist of userID (if
// one is open) follows: their keys, their reveals, their account.
func touchedUser(by keyledger.Actor, at time.Time, userID int64) touched {
	return touched{by: by, at: at, user: userID}
}

// touchedKeys says the write changed keys whose owner or past viewers
// may be anyone with an open checklist.
func touchedKeys(by keyledger.Actor, at time.Time) touched {
	return touched{by: by, at: at}
}

// write runs fn in a transaction (s.tx, with its retries) and, before
// the transaction commits, brings the open offboarding checklists that
// fn's change concerns in line with the records (syncOffboardings).
// Every write that changes what a checklist follows (key ownership,
// archiving and versions; key.reveal and key.export events; an
// account's status) goes through here, so none can forget the sync;
// TestWritesGoThroughWrite holds every other transaction in the package
// to a list of the ones that change none of that, each with its reason.
func (s *Store) write(ctx context.Context, fn func(tx pgx.Tx, t *touched) error) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		var t touched
		if err := fn(tx, &t); err != nil {
			return err
		}
		if t.at.IsZero() {
			t.at = s.now()
		}
		return syncOffboardings(ctx, tx, t.by, t.at, t.user)
	})
}
