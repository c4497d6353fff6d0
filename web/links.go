package web

import (
	"net/url"
	"strconv"

	"github.com/keyledger/keyledger"
)

// Links is keyledger.Links for this server's routes (server.go) under
// the public base URL, for the addresses reminders and alerts carry.
type Links struct {
	base string
}

var _ keyledger.Links = Links{}

// NewLinks builds links under base, the public URL without a trailing
// slash (KEYLEDGER_BASE_URL).
func NewLinks(base string) Links { return Links{base: base} }

// Key is GET /keys/:id.
func (l Links) Key(id string) string { return l.base + "/keys/" + url.PathEscape(id) }

// Leak is GET /leaks/:id.
func (l Links) Leak(id int64) string { return l.base + "/leaks/" + strconv.FormatInt(id, 10) }

// FailedSignIns is GET /audit filtered to failed sign-ins.
func (l Links) FailedSignIns() string {
	return l.base + "/audit?action=" + url.QueryEscape(keyledger.ActionSignInFailed)
}
