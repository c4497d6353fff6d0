// Package keyledger holds the vocabulary every other package speaks: users,
// roles, environments, keys, audit events, error kinds, and the pure rules
// about them (who may reveal what, when a rotation is due, what a valid key
// registration looks like). It imports nothing of ours and touches no
// database, so the rules are tested without one. The store enforces these
// rules inside its transactions; handlers only translate HTTP to store calls.
package keyledger
