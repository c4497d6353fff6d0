package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger/crypto"
)

// SealedColumn is the test view of one sealedColumns entry.
type SealedColumn struct {
	Name, Table, KEKID, Live string
	Key                      []string
	Columns                  []string // the key and the four envelope columns
}

// SealedColumns lists sealedColumns for the tests.
func SealedColumns() []SealedColumn {
	var out []SealedColumn
	for _, c := range sealedColumns() {
		cols := append([]string(nil), c.key...)
		for _, e := range []string{"kek_id", "wrapped_dek", "nonce", "ciphertext"} {
			cols = append(cols, c.prefix+e)
		}
		out = append(out, SealedColumn{Name: c.name, Table: c.table, KEKID: c.kekID(), Live: c.live, Key: c.key, Columns: cols})
	}
	return out
}

// OpenSealed opens the envelope of one row of the sealed column name, with
// the subject the registry gives that row.
func (s *Store) OpenSealed(ctx context.Context, name string, key ...string) ([]byte, error) {
	for _, c := range sealedColumns() {
		if c.name != name {
			continue
		}
		var env crypto.Envelope
		args := make([]any, len(key))
		for i, k := range key {
			args[i] = k
		}
		err := s.pool.QueryRow(ctx, fmt.Sprintf("SELECT %s FROM %s WHERE %s", c.envelopeColumns(), c.table, c.keyMatch(1)), args...).
			Scan(&env.KEKID, &env.WrappedDEK, &env.Nonce, &env.Ciphertext)
		if err != nil {
			return nil, err
		}
		subject, err := c.subject(key)
		if err != nil {
			return nil, err
		}
		return s.keyring.Open(subject, env)
	}
	return nil, errors.New("no sealed column " + name)
}

// SealedKeys lists the keys (as text) of the live rows of a sealed column.
func (s *Store) SealedKeys(ctx context.Context, name string) ([][]string, error) {
	for _, c := range sealedColumns() {
		if c.name != name {
			continue
		}
		rows, err := s.pool.Query(ctx, fmt.Sprintf("SELECT ARRAY[%s] FROM %s WHERE %s", c.keyText(), c.table, c.live))
		if err != nil {
			return nil, err
		}
		return pgx.CollectRows(rows, pgx.RowTo[[]string])
	}
	return nil, errors.New("no sealed column " + name)
}
