package store

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
)

// adminKeySubject binds a connection's sealed admin key to its row, so an
// envelope copied to another connection does not open.
func adminKeySubject(connectionID string) string {
	return "provider_connection/" + strings.ToLower(connectionID) + "/admin_key"
}

const connectionColumns = `c.id::text, c.provider, c.name, coalesce(u.email, ''), c.created_at, c.last_sync_at,
	coalesce(c.last_sync_status, ''), c.last_sync_error, c.last_sync_keys`

func scanConnection(r pgx.Row) (keyledger.ProviderConnection, error) {
	var c keyledger.ProviderConnection
	var p string
	err := r.Scan(&c.ID, &p, &c.Name, &c.CreatedBy, &c.CreatedAt, &c.LastSyncAt, &c.LastSyncStatus, &c.LastSyncError, &c.LastSyncKeys)
	c.Provider = keyledger.Provider(p)
	return c, err
}

// AddProviderConnection checks the admin key with one list call and, only
// when the provider accepts it, stores the connection with the key sealed.
// A refused key is a field error on admin_key (the provider's message,
// never the key) and an audit event; nothing else is written.
func (s *Store) AddProviderConnection(ctx context.Context, actor keyledger.Actor, pa keyledger.ProviderAdmin, in keyledger.ProviderConnectionInput) (keyledger.ProviderConnection, error) {
	var conn keyledger.ProviderConnection
	// A token may, with the write scope: the API mirrors the page.
	if err := keyledger.CheckScope(actor, keyledger.ScopeWrite); err != nil {
		return conn, err
	}
	if err := keyledger.CanManageProviders(actor.User); err != nil {
		return conn, err
	}
	if pa == nil {
		return conn, keyledger.Errorf(keyledger.EINVALID, "This keyledger has no provider admin client configured.")
	}
	nc, err := keyledger.ValidateProviderConnection(in, pa.Supports)
	if err != nil {
		return conn, err
	}
	if taken, err := s.connectionNameTaken(ctx, nc.Name); err != nil {
		return conn, s.internal(ctx, "add provider connection", err)
	} else if taken {
		return conn, connectionNameConflict(nc.Name)
	}
	cred := keyledger.ProviderCredential{Provider: nc.Provider, AdminKey: nc.AdminKey}
	if err := pa.Check(ctx, cred); err != nil {
		msg := checkFailureMessage(err)
		if aerr := s.auditCheckFailure(ctx, actor, nc, err); aerr != nil {
			return conn, s.internal(ctx, "add provider connection", aerr)
		}
		return conn, &keyledger.Error{Code: keyledger.EINVALID, Message: "The provider did not accept this admin key; nothing was saved.",
			Fields: map[string]string{"admin_key": msg}}
	}
	var id string
	err = s.tx(ctx, func(tx pgx.Tx) error {
		actor, err := freshActorMay(ctx, tx, actor, keyledger.CanManageProviders)
		if err != nil {
			return err
		}
		// The id is drawn first so the envelope is sealed for its row
		// before anything is inserted.
		if err := tx.QueryRow(ctx, `SELECT gen_random_uuid()::text`).Scan(&id); err != nil {
			return err
		}
		sealed, err := s.keyring.Seal(adminKeySubject(id), []byte(nc.AdminKey))
		if err != nil {
			return fmt.Errorf("seal admin key: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO provider_connections (id, provider, name, admin_key_kek_id, admin_key_wrapped_dek, admin_key_nonce, admin_key_ciphertext, created_by, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
			id, string(nc.Provider), nc.Name, sealed.KEKID, sealed.WrappedDEK, sealed.Nonce, sealed.Ciphertext, actor.User.ID, s.now()); err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionProviderConnect,
			Details: map[string]any{"connection_id": id, "connection": nc.Name, "provider": string(nc.Provider)}})
	})
	if isUniqueViolation(err, "provider_connections_live_name_key") {
		return conn, connectionNameConflict(nc.Name)
	}
	if err != nil {
		return conn, s.internal(ctx, "add provider connection", err)
	}
	return s.ProviderConnection(ctx, actor, id)
}

func connectionNameConflict(name string) error {
	msg := fmt.Sprintf("A connection named %q already exists.", name)
	return &keyledger.Error{Code: keyledger.ECONFLICT, Message: msg, Fields: map[string]string{"name": msg}}
}

func (s *Store) connectionNameTaken(ctx context.Context, name string) (bool, error) {
	var taken bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM provider_connections WHERE lower(name) = lower($1) AND removed_at IS NULL)`, name).Scan(&taken)
	return taken, err
}

// checkFailureMessage says why the provider refused, in words an admin
// acts on: a 401 means the key is wrong, a timeout that nobody answered.
func checkFailureMessage(err error) string {
	var pe *keyledger.ProviderAdminError
	if !errors.As(err, &pe) {
		return "The provider could not be asked: " + err.Error()
	}
	detail := ""
	if pe.Message != "" {
		detail = " The provider said: " + pe.Message
	}
	switch pe.Kind {
	case keyledger.ProviderUnauthorized:
		return "The provider refused this admin key (HTTP " + fmt.Sprint(pe.Status) + "): check it is an admin key of this organization and has not been revoked." + detail
	case keyledger.ProviderTimeout:
		return "The provider did not answer in time: try again, or check the provider base URL and the network."
	case keyledger.ProviderRateLimited:
		return "The provider is rate limiting requests: try again in " + pe.RetryAfter.String() + "." + detail
	case keyledger.ProviderUnavailable:
		return "The provider could not be reached or failed: " + pe.Error()
	}
	return "The provider rejected the request: " + pe.Error()
}

func (s *Store) auditCheckFailure(ctx context.Context, actor keyledger.Actor, nc keyledger.NewProviderConnection, cause error) error {
	return s.tx(ctx, func(tx pgx.Tx) error {
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionProviderCheckFail,
			Details: map[string]any{"connection": nc.Name, "provider": string(nc.Provider),
				"kind": string(keyledger.ProviderAdminErrorKindOf(cause)), "error": cause.Error()}})
	})
}

// ProviderConnections lists the live connections, for admins.
func (s *Store) ProviderConnections(ctx context.Context, actor keyledger.Actor) ([]keyledger.ProviderConnection, error) {
	if err := keyledger.CanManageProviders(actor.User); err != nil {
		return nil, err
	}
	return s.liveConnections(ctx)
}

func (s *Store) liveConnections(ctx context.Context) ([]keyledger.ProviderConnection, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+connectionColumns+` FROM provider_connections c LEFT JOIN users u ON u.id = c.created_by
		WHERE c.removed_at IS NULL ORDER BY lower(c.name), c.id`)
	if err != nil {
		return nil, s.internal(ctx, "list provider connections", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (keyledger.ProviderConnection, error) { return scanConnection(r) })
	if err != nil {
		return nil, s.internal(ctx, "list provider connections", err)
	}
	return out, nil
}

// ProviderConnection is one live connection, for admins.
func (s *Store) ProviderConnection(ctx context.Context, actor keyledger.Actor, id string) (keyledger.ProviderConnection, error) {
	if err := keyledger.CanManageProviders(actor.User); err != nil {
		return keyledger.ProviderConnection{}, err
	}
	return s.connection(ctx, id)
}

func (s *Store) connection(ctx context.Context, id string) (keyledger.ProviderConnection, error) {
	if !isUUID(id) {
		return keyledger.ProviderConnection{}, keyledger.Errorf(keyledger.ENOTFOUND, "There is no such provider connection.")
	}
	c, err := scanConnection(s.pool.QueryRow(ctx, `SELECT `+connectionColumns+` FROM provider_connections c LEFT JOIN users u ON u.id = c.created_by
		WHERE c.id = $1 AND c.removed_at IS NULL`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, keyledger.Errorf(keyledger.ENOTFOUND, "There is no such provider connection.")
	}
	if err != nil {
		return c, s.internal(ctx, "read provider connection", err)
	}
	return c, nil
}

// RemoveProviderConnection ends a connection: its admin key is shredded
// (the envelope columns cleared), its keys leave the inventory, and the
// row stays for the audit trail. Keys at the provider are not touched.
func (s *Store) RemoveProviderConnection(ctx context.Context, actor keyledger.Actor, id string) error {
	// A token may, with the write scope: the API mirrors the page.
	if err := keyledger.CheckScope(actor, keyledger.ScopeWrite); err != nil {
		return err
	}
	if err := keyledger.CanManageProviders(actor.User); err != nil {
		return err
	}
	if !isUUID(id) {
		return keyledger.Errorf(keyledger.ENOTFOUND, "There is no such provider connection.")
	}
	err := s.tx(ctx, func(tx pgx.Tx) error {
		actor, err := freshActorMay(ctx, tx, actor, keyledger.CanManageProviders)
		if err != nil {
			return err
		}
		var name, provider string
		err = tx.QueryRow(ctx, `UPDATE provider_connections SET removed_at = $2, removed_by = $3,
				admin_key_wrapped_dek = NULL, admin_key_ciphertext = NULL, admin_key_nonce = NULL
			WHERE id = $1 AND removed_at IS NULL RETURNING name, provider`, id, s.now(), actor.User.ID).Scan(&name, &provider)
		if errors.Is(err, pgx.ErrNoRows) {
			return keyledger.Errorf(keyledger.ENOTFOUND, "There is no such provider connection.")
		}
		if err != nil {
			return err
		}
		return writeAudit(ctx, tx, auditEntry{Actor: actor, Action: keyledger.ActionProviderDisconnect,
			Details: map[string]any{"connection_id": id, "connection": name, "provider": provider}})
	})
	return s.internal(ctx, "remove provider connection", err)
}

// credential unseals a live connection's admin key for the length of a
// call. The subject binds it to the row.
func (s *Store) credential(ctx context.Context, id string) (keyledger.ProviderCredential, error) {
	var cred keyledger.ProviderCredential
	var p string
	var env crypto.Envelope
	err := s.pool.QueryRow(ctx, `SELECT provider, admin_key_kek_id, admin_key_wrapped_dek, admin_key_nonce, admin_key_ciphertext
		FROM provider_connections WHERE id = $1 AND removed_at IS NULL`, id).Scan(&p, &env.KEKID, &env.WrappedDEK, &env.Nonce, &env.Ciphertext)
	if errors.Is(err, pgx.ErrNoRows) {
		return cred, keyledger.Errorf(keyledger.ENOTFOUND, "There is no such provider connection.")
	}
	if err != nil {
		return cred, err
	}
	plain, err := s.keyring.Open(adminKeySubject(id), env)
	if err != nil {
		return cred, fmt.Errorf("open admin key of connection %s: %w", id, err)
	}
	return keyledger.ProviderCredential{Provider: keyledger.Provider(p), AdminKey: string(plain)}, nil
}
