package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
)

// heldRowWait bounds how long a rotation waits for rows that other work
// holds, once nothing else is left.
const heldRowWait = 30 * time.Second

// RotationProgress reports a master-key rotation of one sealed column.
type RotationProgress struct {
	Table     string // the sealed column, as sealedColumns names it ("users.totp")
	Rewrapped int    // envelopes this run re-wrapped
	Remaining int    // envelopes still under an older master key; -1 if they could not be counted
}

// RotateMasterKey re-wraps every envelope of every sealed column (see
// sealedColumns) that is not under the primary master key, batch by batch.
// Ciphertexts are not touched: only the small wrapped DEKs change. Each
// batch commits on its own, so a rotation that is interrupted resumes where
// it stopped when run again. It returns one report per sealed column, also
// on error, so the caller can say what was done and what is left.
func (s *Store) RotateMasterKey(ctx context.Context, batch int, progress func(RotationProgress)) ([]RotationProgress, error) {
	if batch <= 0 {
		batch = 500
	}
	primary := s.keyring.Primary().ID()
	cols := sealedColumns()
	report := make([]RotationProgress, len(cols))
	for i, c := range cols {
		report[i].Table = c.name
	}
	var err error
	for i, c := range cols {
		if err = s.rewrapColumn(ctx, c, primary, batch, &report[i], progress); err != nil {
			break
		}
	}
	if err == nil {
		total, byTable := 0, map[string]int{}
		for _, r := range report {
			total += r.Rewrapped
			byTable[r.Table] = r.Rewrapped
		}
		err = s.tx(ctx, func(tx pgx.Tx) error {
			return writeAudit(ctx, tx, auditEntry{Actor: keyledger.SystemActor("cli"), Action: keyledger.ActionMasterKeyRotate,
				Details: map[string]any{"primary_kek": primary, "rewrapped": total, "rewrapped_by_table": byTable}})
		})
	}
	if err != nil {
		// Count again what is left everywhere: the columns after the one
		// that failed were never looked at.
		for i, c := range cols {
			n, cerr := s.countNotUnder(ctx, c, primary)
			if cerr != nil {
				n = -1
			}
			report[i].Remaining = n
		}
		return report, fmt.Errorf("rotate master key: %w", err)
	}
	return report, nil
}

// rewrapColumn moves the envelopes of c to primary, batch by batch,
// keeping count in p.
func (s *Store) rewrapColumn(ctx context.Context, c sealedColumn, primary string, batch int, p *RotationProgress, progress func(RotationProgress)) error {
	// SKIP LOCKED: rows in use (a reveal, a sign-in) are left for a later
	// batch instead of stalling the rotation or the request. When only
	// such rows are left, one batch waits for them (requests hold a row for
	// one short transaction), bounded by heldRowWait.
	sel := fmt.Sprintf("SELECT %s, %s FROM %s WHERE %s AND %s <> $1 LIMIT $2 FOR UPDATE",
		c.keyText(), c.envelopeColumns(), c.table, c.live, c.kekID())
	upd := fmt.Sprintf("UPDATE %[1]s SET %[2]skek_id = $1, %[2]swrapped_dek = $2 WHERE %[2]skek_id = $3 AND %[3]s",
		c.table, c.prefix, c.keyMatch(4))
	type row struct {
		key []string
		env crypto.Envelope
	}
	wait := false
	for {
		n := 0
		err := s.tx(ctx, func(tx pgx.Tx) error {
			query := sel + " SKIP LOCKED"
			if wait {
				query = sel
				if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL lock_timeout = %d", heldRowWait.Milliseconds())); err != nil {
					return err
				}
			}
			rows, err := tx.Query(ctx, query, primary, batch)
			if err != nil {
				return err
			}
			list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
				x := row{key: make([]string, len(c.key))}
				dest := make([]any, 0, len(c.key)+4)
				for i := range x.key {
					dest = append(dest, &x.key[i])
				}
				dest = append(dest, &x.env.KEKID, &x.env.WrappedDEK, &x.env.Nonce, &x.env.Ciphertext)
				return x, r.Scan(dest...)
			})
			if err != nil {
				return err
			}
			for _, x := range list {
				subject, err := c.subject(x.key)
				if err != nil {
					return fmt.Errorf("re-wrap %s: %w", c.describe(x.key), err)
				}
				env, err := s.keyring.Rewrap(subject, x.env)
				if err != nil {
					return fmt.Errorf("re-wrap %s: %w", c.describe(x.key), err)
				}
				args := []any{env.KEKID, env.WrappedDEK, x.env.KEKID}
				for _, k := range x.key {
					args = append(args, k)
				}
				tag, err := tx.Exec(ctx, upd, args...)
				if err != nil {
					return fmt.Errorf("re-wrap %s: %w", c.describe(x.key), err)
				}
				if tag.RowsAffected() != 1 {
					return fmt.Errorf("re-wrap %s: updated %d rows, want 1", c.describe(x.key), tag.RowsAffected())
				}
			}
			n = len(list)
			return nil
		})
		// 55P03 (lock_not_available): lock_timeout ran out.
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "55P03" {
			return fmt.Errorf("%s: the envelopes left are held by other work for more than %s", c.name, heldRowWait)
		}
		if err != nil {
			return err
		}
		p.Rewrapped += n
		// Count after every batch: a short batch may only mean rows were
		// locked by concurrent work (SKIP LOCKED), so it is not "done".
		remaining, err := s.countNotUnder(ctx, c, primary)
		if err != nil {
			return fmt.Errorf("count %s left: %w", c.name, err)
		}
		p.Remaining = remaining
		if progress != nil {
			progress(*p)
		}
		if remaining == 0 {
			return nil
		}
		if n == 0 && wait {
			return fmt.Errorf("%s: %d envelopes are still under an older master key and held by other work", c.name, remaining)
		}
		wait = n == 0
	}
}

// countNotUnder counts the envelopes of c not sealed under kekID.
func (s *Store) countNotUnder(ctx context.Context, c sealedColumn, kekID string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, fmt.Sprintf("SELECT count(*) FROM %s WHERE %s AND %s <> $1", c.table, c.live, c.kekID()), kekID).Scan(&n)
	return n, err
}
