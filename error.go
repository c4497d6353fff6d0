package keyledger

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Error codes. They carry no HTTP: the web layer owns the one table that
// maps them to status codes.
const (
	ECONFLICT     = "conflict"
	EFORBIDDEN    = "forbidden"
	EINTERNAL     = "internal"
	EINVALID      = "invalid"
	ENOTFOUND     = "not_found"
	EUNAUTHORIZED = "unauthorized"
	ETOOMANY      = "too_many_requests"
	EUNAVAILABLE  = "unavailable"
	// ESTEPUP asks the person to prove themselves again (password or
	// two-factor code) before a sensitive action.
	ESTEPUP = "step_up_required"
)

// Error is a domain error whose Message is safe to show to the user. It must
// never hold a secret value. Internal details belong in a wrapped error that
// is logged, never in Message.
type Error struct {
	Code    string
	Message string
	// Fields holds per-field messages for form validation, keyed by form
	// field name, so a page can show each next to its field.
	Fields map[string]string
	// RetryAfter, on ETOOMANY, is how long the caller must wait before
	// trying again (zero: not known). The web layer sends it as the
	// Retry-After header.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	if len(e.Fields) == 0 {
		return fmt.Sprintf("%s: %s", e.Code, e.Message)
	}
	names := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names))
	for _, k := range names {
		parts = append(parts, k+": "+e.Fields[k])
	}
	return fmt.Sprintf("%s: %s (%s)", e.Code, e.Message, strings.Join(parts, "; "))
}

// Errorf returns a domain error with a formatted, user-safe message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns the code of the first domain error in err's chain, or
// EINTERNAL when there is none: unknown errors are internal by default, so an
// unexpected failure is never mistaken for the user's fault.
func ErrorCode(err error) string {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EINTERNAL
}

// ErrorMessage returns the user-safe message of err. Internal errors get a
// generic message so that no detail (a query, a path, a value) leaks.
func ErrorMessage(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Message
	}
	return "Something went wrong on our side. The error was logged."
}

// FieldErrors returns the per-field messages of err, or nil.
func FieldErrors(err error) map[string]string {
	var e *Error
	if errors.As(err, &e) {
		return e.Fields
	}
	return nil
}

// RetryAfter returns how long err asks the caller to wait, or zero.
func RetryAfter(err error) time.Duration {
	var e *Error
	if errors.As(err, &e) {
		return e.RetryAfter
	}
	return 0
}

// ErrNotFound is the answer both for a thing that does not exist and for a
// thing the caller may not see, so that probing learns nothing.
func ErrNotFound(what string) *Error {
	return Errorf(ENOTFOUND, "%s not found.", what)
}

// Validation accumulates field errors.
type Validation struct {
	fields map[string]string
}

// Add records msg for field unless that field already has a message.
func (v *Validation) Add(field, msg string) {
	if v.fields == nil {
		v.fields = map[string]string{}
	}
	if _, ok := v.fields[field]; !ok {
		v.fields[field] = msg
	}
}

// Has reports whether field already has a message.
func (v *Validation) Has(field string) bool {
	_, ok := v.fields[field]
	return ok
}

// Err returns nil when nothing was added, else an EINVALID error.
func (v *Validation) Err() error {
	if len(v.fields) == 0 {
		return nil
	}
	return &Error{Code: EINVALID, Message: "Please correct the highlighted fields.", Fields: v.fields}
}
