package store

import (
	"fmt"
	"strconv"
	"strings"
)

// sealedColumn is one place where the store keeps envelopes
// (crypto.Envelope): a table, the columns that name a row, the four
// envelope columns, the subject an envelope is bound to, and which rows
// hold one.
//
// sealedColumns is the one list of them. RotateMasterKey re-wraps what it
// lists, checkKeyring refuses to start while any of it is sealed under a
// master key that is not loaded, and the tests rotate, check and open
// every entry; TestSealedColumnsCoverSchema fails when a table gains an
// envelope (a *kek_id or *wrapped_dek column) that is missing here. So a
// new sealed column (the provider admin keys, for one) is one more entry
// here, plus a row of it in the tests' seedEverySealed
// (store/sealed_test.go), which fails until there is one.
// Secrets of the instance itself need no entry: they go through
// instanceSecret into instance_secrets, which is listed.
type sealedColumn struct {
	// name is how messages and the rotation report call it.
	name  string
	table string
	// key names a row; its values are read as text, handed to subject, and
	// matched as text (Postgres casts them back) when the row is updated.
	key []string
	// prefix of the envelope columns: <prefix>kek_id, <prefix>wrapped_dek,
	// <prefix>nonce and <prefix>ciphertext.
	prefix string
	// live is an SQL condition on the rows that hold an envelope (a
	// destroyed version has none).
	live string
	// subject rebuilds the subject the row was sealed for: the one Seal
	// and Open use for it, from the key values in key's order.
	subject func(key []string) (string, error)
}

func sealedColumns() []sealedColumn {
	return []sealedColumn{
		{
			name: "key_versions", table: "key_versions", key: []string{"key_id", "version"},
			live: "destroyed_at IS NULL",
			subject: func(k []string) (string, error) {
				v, err := strconv.Atoi(k[1])
				if err != nil {
					return "", fmt.Errorf("version %q: %w", k[1], err)
				}
				return versionSubject(k[0], v), nil
			},
		},
		{
			name: "instance_secrets", table: "instance_secrets", key: []string{"name"},
			live:    "true",
			subject: func(k []string) (string, error) { return instanceSubject(k[0]), nil },
		},
		{
			// Sealed at enrolment, before it is confirmed: a pending one
			// must be re-wrapped too, or confirming it fails afterwards.
			name: "users.totp", table: "users", key: []string{"id"}, prefix: "totp_",
			live: "totp_kek_id IS NOT NULL",
			subject: func(k []string) (string, error) {
				id, err := strconv.ParseInt(k[0], 10, 64)
				if err != nil {
					return "", fmt.Errorf("user id %q: %w", k[0], err)
				}
				return totpSubject(id), nil
			},
		},
		{
			// A removed connection's envelope is shredded, so only live
			// connections hold one.
			name: "provider_connections.admin_key", table: "provider_connections", key: []string{"id"}, prefix: "admin_key_",
			live:    "removed_at IS NULL",
			subject: func(k []string) (string, error) { return adminKeySubject(k[0]), nil },
		},
	}
}

func (c sealedColumn) kekID() string { return c.prefix + "kek_id" }

// envelopeColumns lists the four envelope columns in crypto.Envelope's
// field order.
func (c sealedColumn) envelopeColumns() string {
	return fmt.Sprintf("%[1]skek_id, %[1]swrapped_dek, %[1]snonce, %[1]sciphertext", c.prefix)
}

// keyText selects the key columns as text.
func (c sealedColumn) keyText() string {
	cols := make([]string, len(c.key))
	for i, k := range c.key {
		cols[i] = k + "::text"
	}
	return strings.Join(cols, ", ")
}

// keyMatch is the WHERE condition on the key columns, with parameters
// from $first on.
func (c sealedColumn) keyMatch(first int) string {
	conds := make([]string, len(c.key))
	for i, k := range c.key {
		conds[i] = fmt.Sprintf("%s = $%d", k, first+i)
	}
	return strings.Join(conds, " AND ")
}

// describe names a row in messages: the key values are ids and names,
// never secrets.
func (c sealedColumn) describe(key []string) string {
	return c.name + " " + strings.Join(key, "/")
}
