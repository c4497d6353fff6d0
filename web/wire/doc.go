// Package wire is the JSON API's contract: the request and answer bodies
// of /api/v1, written once. The server (web) fills them, the command-line
// client (cmd/keyledger) reads them, and the tests of both use them, so a
// renamed or retyped field breaks the build instead of a user.
//
// web/openapi.json describes the same bodies for everyone else; the test
// in this package compares the two (property names, types, nullability,
// required), so they cannot drift either.
//
// Conventions the test holds the document to:
//   - a field without omitempty is always sent, so it is required;
//   - a pointer is nullable, and only a pointer is;
//   - time.Time is a date-time string (the server sends UTC).
//
// This package imports only the standard library: it holds data shapes,
// no behaviour.
package wire
