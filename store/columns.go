package store

import (
	"strings"

	"github.com/keyledger/keyledger"
)

// column is one selected expression and the field its value scans into.
// A select list and its scan list written as one table of these cannot
// drift apart: adding, removing or moving a column moves both.
type column[T any] struct {
	sql  string
	dest func(*T) any
}

// columns is a select list with its scan destinations.
type columns[T any] []column[T]

// sql renders the select list. A non-empty alias qualifies every
// expression, which must then start with a column of that table.
func (cs columns[T]) sql(alias string) string {
	var b strings.Builder
	for i, c := range cs {
		if i > 0 {
			b.WriteString(", ")
		}
		if alias != "" {
			b.WriteString(alias + ".")
		}
		b.WriteString(c.sql)
	}
	return b.String()
}

// dests appends where t's columns go to into, in select-list order.
func (cs columns[T]) dests(into []any, t *T) []any {
	for _, c := range cs {
		into = append(into, c.dest(t))
	}
	return into
}

// userCols are the columns of a keyledger.User, for scanUser and for the
// statements that read a user along with something else.
var userCols = columns[keyledger.User]{
	{"id", func(u *keyledger.User) any { return &u.ID }},
	{"email", func(u *keyledger.User) any { return &u.Email }},
	{"name", func(u *keyledger.User) any { return &u.Name }},
	{"role", func(u *keyledger.User) any { return &u.Role }},
	{"status", func(u *keyledger.User) any { return &u.Status }},
	{"totp_enabled_at IS NOT NULL", func(u *keyledger.User) any { return &u.TOTPEnabled }},
	{"shell", func(u *keyledger.User) any { return &u.Shell }},
	{"created_at", func(u *keyledger.User) any { return &u.CreatedAt }},
	{"updated_at", func(u *keyledger.User) any { return &u.UpdatedAt }},
}
