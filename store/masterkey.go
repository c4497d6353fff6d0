package store

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
)

// RotationProgress reports a master-key rotation.
type RotationProgress struct {
	Rewrapped int
	Remaining int
}

// RotateMasterKey re-wraps every data key that is not under the primary
// master key, batch by batch. Ciphertexts are not touched: only the small
// wrapped DEKs change. Each batch commits on its own, so a rotation that is
// interrupted resumes where it stopped when run again.
func (s *Store) RotateMasterKey(ctx context.Context, batch int, progress func(RotationProgress)) (int, error) {
	if batch <= 0 {
		batch = 500
	}
	primary := s.keyring.Primary().ID()
	total := 0
	for {
		n := 0
		err := s.tx(ctx, func(tx pgx.Tx) error {
			rows, err := tx.Query(ctx, `SELECT key_id::text, version, kek_id, wrapped_dek, nonce, ciphertext FROM key_versions
				WHERE destroyed_at IS NULL AND kek_id <> $1 LIMIT $2 FOR UPDATE SKIP LOCKED`, primary, batch)
			if err != nil {
				return err
			}
			type row struct {
				id      string
				version int
				env     crypto.Envelope
			}
			list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
				var x row
				err := r.Scan(&x.id, &x.version, &x.env.KEKID, &x.env.WrappedDEK, &x.env.Nonce, &x.env.Ciphertext)
				return x, err
			})
			if err != nil {
				return err
			}
			for _, x := range list {
				env, err := s.keyring.Rewrap(versionSubject(x.id, x.version), x.env)
				if err != nil {
					return fmt.Errorf("re-wrap key %s version %d: %w", x.id, x.version, err)
				}
				if _, err := tx.Exec(ctx, `UPDATE key_versions SET kek_id = $3, wrapped_dek = $4 WHERE key_id = $1 AND version = $2`,
					x.id, x.version, env.KEKID, env.WrappedDEK); err != nil {
					return err
				}
			}
			n = len(list)
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("rotate master key: %w", err)
		}
		total += n
		if progress != nil {
			var remaining int
			if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM key_versions WHERE destroyed_at IS NULL AND kek_id <> $1", primary).Scan(&remaining); err == nil {
				progress(RotationProgress{Rewrapped: total, Remaining: remaining})
			}
		}
		if n < batch {
			// A short batch may only mean rows were locked by concurrent
			// work (SKIP LOCKED): count what is left before saying done.
			var remaining int
			if err := s.pool.QueryRow(ctx, "SELECT count(*) FROM key_versions WHERE destroyed_at IS NULL AND kek_id <> $1", primary).Scan(&remaining); err != nil {
				return total, fmt.Errorf("rotate master key: count remaining: %w", err)
			}
			if remaining == 0 {
				break
			}
			if n == 0 {
				return total, fmt.Errorf("rotate master key: %d data keys are still under an older master key and locked by other work", remaining)
			}
		}
	}
	// The instance secrets are few; re-wrap them in one go.
	err := s.tx(ctx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, "SELECT name, kek_id, wrapped_dek, nonce, ciphertext FROM instance_secrets WHERE kek_id <> $1 FOR UPDATE", primary)
		if err != nil {
			return err
		}
		type row struct {
			name string
			env  crypto.Envelope
		}
		list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
			var x row
			err := r.Scan(&x.name, &x.env.KEKID, &x.env.WrappedDEK, &x.env.Nonce, &x.env.Ciphertext)
			return x, err
		})
		if err != nil {
			return err
		}
		for _, x := range list {
			env, err := s.keyring.Rewrap("instance/"+x.name, x.env)
			if err != nil {
				return fmt.Errorf("re-wrap instance secret %s: %w", x.name, err)
			}
			if _, err := tx.Exec(ctx, "UPDATE instance_secrets SET kek_id = $2, wrapped_dek = $3 WHERE name = $1", x.name, env.KEKID, env.WrappedDEK); err != nil {
				return err
			}
		}
		return writeAudit(ctx, tx, auditEntry{Actor: keyledger.SystemActor("cli"), Action: keyledger.ActionMasterKeyRotate,
			Details: map[string]any{"primary_kek": primary, "rewrapped": total + len(list)}})
	})
	if err != nil {
		return total, fmt.Errorf("rotate master key: %w", err)
	}
	return total, nil
}
