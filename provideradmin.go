package keyledger

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ProviderAdmin talks to a provider's organization admin API (OpenAI's
// /v1/organization/…, Anthropic's /v1/organizations/…) with an admin key:
// list every API key that exists there, read usage per key, and revoke a
// key at the source. The store takes this interface, as it takes Verifier,
// so it knows no HTTP; package provideradmin implements it.
//
// Errors are *ProviderAdminError where the provider answered or could not
// be reached, so callers can tell a bad admin key from a rate limit or a
// timeout. No error ever carries the admin key or a key value.
type ProviderAdmin interface {
	// Supports reports whether keyledger has an admin client for p
	// (openai and anthropic).
	Supports(p Provider) bool
	// Check makes one cheap list call to prove the admin key works.
	Check(ctx context.Context, c ProviderCredential) error
	// Keys lists every API key the admin key can see, across all projects
	// (OpenAI) or workspaces (Anthropic), following the provider's
	// pagination to the end.
	Keys(ctx context.Context, c ProviderCredential) ([]ProviderKey, error)
	// Usage reads requests and tokens per key per UTC day from since (a UTC
	// midnight) to now, following pagination.
	Usage(ctx context.Context, c ProviderCredential, since time.Time) ([]ProviderUsage, error)
	// Revoke stops key at the provider: OpenAI deletes it, Anthropic sets
	// it inactive. A key the provider no longer knows (404) counts as
	// revoked and returns nil, so a retry is harmless.
	Revoke(ctx context.Context, c ProviderCredential, key ProviderKeyRef) error
}

// ProviderCredential is what a connection holds: which provider, and the
// admin key (unsealed only for the length of a call).
type ProviderCredential struct {
	Provider Provider
	AdminKey string
}

// String never prints the admin key, so a credential that ends up in a log
// line or an error by mistake leaks nothing.
func (c ProviderCredential) String() string {
	return fmt.Sprintf("%s admin credential", c.Provider)
}

// GoString keeps %#v from printing the admin key as well.
func (c ProviderCredential) GoString() string { return c.String() }

// ProviderKeyRef names one key at the provider: its id and, for OpenAI,
// the project it lives in (the delete URL needs it).
type ProviderKeyRef struct {
	ID      string
	Project string
}

// ProviderKey is one API key as the provider lists it. Nothing in it is
// secret: the hint is the provider's own redacted form.
type ProviderKey struct {
	ID          string // the provider's id: OpenAI "key_…", Anthropic "apikey_…"
	Name        string
	Hint        string // OpenAI redacted_value, Anthropic partial_key_hint
	Project     string // OpenAI project id, Anthropic workspace id ("" = default workspace)
	ProjectName string
	// Status is the provider's word: OpenAI keys listed are "active";
	// Anthropic's are active, inactive, archived or expired.
	Status     string
	CreatedAt  time.Time
	LastUsedAt time.Time // zero when the provider says never (or does not say)
	// CreatedBy is the creating or owning user's email, or the service
	// account's name, as the provider gives it; OwnerType says which.
	CreatedBy string
	OwnerType string // "user" or "service_account"
	// OwnerActive is false when the owner no longer has access at the
	// provider (OpenAI owner_project_access = "inactive").
	OwnerActive bool
}

// ProviderUsage is one key's usage on one UTC day.
type ProviderUsage struct {
	KeyID        string
	Day          time.Time // UTC midnight
	Requests     int64
	InputTokens  int64
	OutputTokens int64
}

// ProviderAdminErrorKind classifies a failed admin call.
type ProviderAdminErrorKind string

// The kinds a caller acts on differently.
const (
	ProviderUnauthorized ProviderAdminErrorKind = "unauthorized" // 401/403: the admin key is wrong or lacks the scope
	ProviderRateLimited  ProviderAdminErrorKind = "rate_limited" // 429: RetryAfter says when to come back
	ProviderTimeout      ProviderAdminErrorKind = "timeout"      // no answer in time
	ProviderUnavailable  ProviderAdminErrorKind = "unavailable"  // 5xx, connection refused, unreadable answer
	ProviderRejected     ProviderAdminErrorKind = "rejected"     // any other 4xx
)

// ProviderAdminError is a failed admin call, safe to show an admin: the
// provider's status and its error message, never the admin key.
type ProviderAdminError struct {
	Kind       ProviderAdminErrorKind
	Status     int           // HTTP status, 0 when none came back
	RetryAfter time.Duration // for ProviderRateLimited, from Retry-After
	Message    string        // the provider's error message, trimmed
}

func (e *ProviderAdminError) Error() string {
	msg := string(e.Kind)
	if e.Status != 0 {
		msg = fmt.Sprintf("%s (HTTP %d)", msg, e.Status)
	}
	if e.RetryAfter > 0 {
		msg += fmt.Sprintf(", retry after %s", e.RetryAfter)
	}
	if e.Message != "" {
		msg += ": " + e.Message
	}
	return "provider admin API: " + msg
}

// ProviderAdminErrorKindOf returns the kind of err, or "" when err is not
// a *ProviderAdminError.
func ProviderAdminErrorKindOf(err error) ProviderAdminErrorKind {
	var pe *ProviderAdminError
	if errors.As(err, &pe) {
		return pe.Kind
	}
	return ""
}

// ServiceAccountAdmin is the part of a provider admin client that rotates
// a key by making a new one: OpenAI creates a project service account
// together with its one API key. The store uses it for automated
// rotation; a ProviderAdmin that lacks it cannot rotate at the provider.
type ServiceAccountAdmin interface {
	// CreateServiceAccount creates a service account named name in
	// project and returns it with its new key, value included (OpenAI
	// shows the value once, in this answer).
	CreateServiceAccount(ctx context.Context, c ProviderCredential, project, name string) (ServiceAccountKey, error)
}

// ServiceAccountKey is what the provider returns once when it creates a
// service account: the account and its first API key, value included.
// Value is a secret: seal it, never log it (String and GoString leave it
// out).
type ServiceAccountKey struct {
	ServiceAccountID string // svc_acct_…
	Name             string
	KeyID            string // key_…
	Value            string
}

// String names the account and key, never the value.
func (k ServiceAccountKey) String() string {
	return fmt.Sprintf("service account %s (%s), key %s", k.ServiceAccountID, k.Name, k.KeyID)
}

// GoString keeps %#v from printing the value as well.
func (k ServiceAccountKey) GoString() string { return k.String() }
