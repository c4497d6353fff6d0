package keyledger

import "time"

// KeyAtProvider is a registered key as a connected provider lists it, for
// the key's page: the provider's id and word for its status, last use,
// usage per day, and whether keyledger revoked it there. A key has one
// per provider key linked to it, and one per superseded version whose
// hint a provider key still carries (Version says which).
type KeyAtProvider struct {
	ID             int64 // provider_keys.id
	ConnectionID   string
	ConnectionName string
	Provider       Provider
	ProviderKeyID  string
	Name           string
	Hint           string
	ProjectID      string
	ProjectName    string
	Status         string // the provider's word (active, inactive, …)
	CreatedBy      string
	CreatedAt      *time.Time
	LastUsedAt     *time.Time
	LastSeenAt     time.Time
	DeletedAt      *time.Time // gone from the provider's list
	RevokedAt      *time.Time // revoked by keyledger
	RevokedBy      string
	// Version is the key's version whose hint this provider key carries,
	// 0 when none does (linked by hand).
	Version int
	// Linked: the sync (or an admin) linked this provider key to the
	// key; false for a superseded version's key found by its hint.
	Linked bool
	// Usage is the last 30 days, one entry per day with any use.
	Usage []UsageDay
}

// ProviderKeyActive is the status of a key that works at its provider
// (OpenAI lists only such keys).
const ProviderKeyActive = "active"

// ProviderKeyInactive is Anthropic's status for a deactivated key, the
// one keyledger sets when it revokes there.
const ProviderKeyInactive = "inactive"

// Revocable reports whether revoking at the provider still has something
// to stop: the key is listed there and keyledger has not revoked it.
func (k KeyAtProvider) Revocable() bool {
	return k.DeletedAt == nil && k.RevokedAt == nil && (k.Status == "" || k.Status == ProviderKeyActive)
}

// ProviderRevokeResult says what a revoke at the provider did.
type ProviderRevokeResult struct {
	Key KeyAtProvider
	// Already: keyledger had revoked it before; nothing was called.
	Already bool
}

// UsageDays is how many days of usage the sync reads and the key page
// shows.
const UsageDays = 30
