package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger/crypto"
)

// ErrWrongMasterKey is returned by New when values in the database are
// sealed under a master key that is not loaded.
var ErrWrongMasterKey = errors.New("wrong master key")

// checkKeyring refuses to run with master keys that do not match the
// database: each loaded key must open its canary (a new key gets one), and
// every sealed value (every entry of sealedColumns) must be under a loaded
// key. Failing here, at startup, beats failing on the first reveal or
// two-factor sign-in or, worse, sealing new values under a key nobody kept.
func (s *Store) checkKeyring(ctx context.Context) error {
	var missing []string
	for _, c := range sealedColumns() {
		rows, err := s.pool.Query(ctx, fmt.Sprintf("SELECT coalesce(%[1]s, ''), count(*) FROM %[2]s WHERE %[3]s GROUP BY 1 ORDER BY 1",
			c.kekID(), c.table, c.live))
		if err != nil {
			return fmt.Errorf("master key check: count %s by master key: %w", c.name, err)
		}
		type under struct {
			kekID string
			n     int
		}
		counts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (under, error) {
			var u under
			err := r.Scan(&u.kekID, &u.n)
			return u, err
		})
		if err != nil {
			return fmt.Errorf("master key check: count %s by master key: %w", c.name, err)
		}
		for _, u := range counts {
			if !s.keyring.Has(u.kekID) {
				missing = append(missing, fmt.Sprintf("%s: %d values sealed under master key id %s, which is not loaded", c.name, u.n, printableKEKID(u.kekID)))
			}
		}
	}
	if len(missing) > 0 {
		loaded := make([]string, 0, len(s.keyring.KEKs()))
		for _, k := range s.keyring.KEKs() {
			loaded = append(loaded, k.ID())
		}
		return fmt.Errorf("%w: %s; the loaded master key id(s) are %s. Set KEYLEDGER_MASTER_KEY or KEYLEDGER_MASTER_KEY_FILE to include the key these were sealed under; after a master-key rotation, put the old key back as the second key and run `keyledger masterkey rotate` again",
			ErrWrongMasterKey, strings.Join(missing, "; "), strings.Join(loaded, ", "))
	}
	for _, k := range s.keyring.KEKs() {
		var canary []byte
		err := s.pool.QueryRow(ctx, "SELECT canary FROM keyring_check WHERE kek_id = $1", k.ID()).Scan(&canary)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			sealed, err := crypto.SealCanary(k)
			if err != nil {
				return fmt.Errorf("master key %s: seal canary: %w", k.ID(), err)
			}
			if _, err := s.pool.Exec(ctx, "INSERT INTO keyring_check (kek_id, canary) VALUES ($1, $2) ON CONFLICT (kek_id) DO NOTHING", k.ID(), sealed); err != nil {
				return fmt.Errorf("master key %s: store canary: %w", k.ID(), err)
			}
		case err != nil:
			return fmt.Errorf("master key check: read canary: %w", err)
		default:
			if err := crypto.CheckCanary(k, canary); err != nil {
				return fmt.Errorf("master key %s does not open its canary in keyring_check (the key is corrupt or the row was altered): %w", k.ID(), err)
			}
		}
	}
	return nil
}

func instanceSubject(name string) string { return "instance/" + name }

// printableKEKID keeps a corrupted kek_id from flooding a message: a real
// one is 16 hex digits.
func printableKEKID(id string) string {
	switch {
	case id == "":
		return "(none)"
	case len(id) > 32:
		return fmt.Sprintf("%q...", id[:32])
	}
	return id
}

// instanceSecret returns a 32-byte secret of this installation, creating
// and sealing it on first use.
func (s *Store) instanceSecret(ctx context.Context, name string) ([]byte, error) {
	return s.instanceSecretIn(ctx, s.pool, name)
}

// querier is a pool or a transaction.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// instanceSecretIn is instanceSecret on q, so that a caller can create
// secrets together with what depends on them in one transaction.
func (s *Store) instanceSecretIn(ctx context.Context, q querier, name string) ([]byte, error) {
	subject := instanceSubject(name)
	var env crypto.Envelope
	err := q.QueryRow(ctx, "SELECT kek_id, wrapped_dek, nonce, ciphertext FROM instance_secrets WHERE name = $1", name).
		Scan(&env.KEKID, &env.WrappedDEK, &env.Nonce, &env.Ciphertext)
	if errors.Is(err, pgx.ErrNoRows) {
		secret, err := crypto.RandomBytes(32)
		if err != nil {
			return nil, err
		}
		env, err = s.keyring.Seal(subject, secret)
		if err != nil {
			return nil, fmt.Errorf("seal instance secret %s: %w", name, err)
		}
		// ON CONFLICT: another replica may have created it at the same
		// moment; read back whichever won.
		if _, err := q.Exec(ctx, `INSERT INTO instance_secrets (name, kek_id, wrapped_dek, nonce, ciphertext)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO NOTHING`, name, env.KEKID, env.WrappedDEK, env.Nonce, env.Ciphertext); err != nil {
			return nil, fmt.Errorf("store instance secret %s: %w", name, err)
		}
		return s.instanceSecretIn(ctx, q, name)
	}
	if err != nil {
		return nil, fmt.Errorf("read instance secret %s: %w", name, err)
	}
	secret, err := s.keyring.Open(subject, env)
	if err != nil {
		return nil, fmt.Errorf("master key check: open instance secret %s: %w", name, err)
	}
	return secret, nil
}

// KnownMasterKeys lists the ids of the master keys this database has
// seen (each left a canary in keyring_check), or none for a database not
// yet migrated. bootstrap asks before it generates a key: a database that
// knows keys needs one of them, not a new one.
func KnownMasterKeys(ctx context.Context, pool *pgxpool.Pool) ([]string, error) {
	var ids []string
	err := pool.QueryRow(ctx, `SELECT coalesce(array_agg(kek_id ORDER BY kek_id), '{}') FROM keyring_check`).Scan(&ids)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42P01" || pgErr.Code == "42501") {
		// undefined_table: not migrated yet; insufficient_privilege: a
		// restricted role cannot tell, and opening the store still
		// checks the key against every sealed value.
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read known master keys: %w", err)
	}
	for i, id := range ids {
		ids[i] = printableKEKID(id)
	}
	return ids, nil
}
