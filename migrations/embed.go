// Package migrations holds the numbered SQL migrations, embedded so that the
// binary carries its own schema. The store applies them under an advisory
// lock (jackc/tern), so replicas starting together do not race.
package migrations

import "embed"

// FS holds the migration files: NNN_name.sql, applied in order.
//
//go:embed *.sql
var FS embed.FS
