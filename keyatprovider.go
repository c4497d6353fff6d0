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
	OwnerType      string // OwnerServiceAccount, "user", or "" when the provider does not say
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

// OwnerServiceAccount is the owner type of a key that belongs to an
// OpenAI project service account (rather than to a person).
const OwnerServiceAccount = "service_account"

// RotatableAtProvider picks the provider key an automated rotation of k
// replaces, from what KeysAtProvider lists for it: the one linked to k,
// at OpenAI, owned by a project service account, still active there.
// Anything else is refused in plain words: keyledger rotates at the
// provider only what it can replace there one for one.
func RotatableAtProvider(k *Key, at []KeyAtProvider) (KeyAtProvider, error) {
	if k.Archived() {
		return KeyAtProvider{}, Errorf(ECONFLICT, "This key is archived.")
	}
	if k.Provider != ProviderOpenAI {
		return KeyAtProvider{}, Errorf(ECONFLICT, "Only OpenAI keys can be rotated at the provider by keyledger.")
	}
	var linked []KeyAtProvider
	for _, a := range at {
		if a.Linked && a.Provider == ProviderOpenAI && a.Revocable() {
			linked = append(linked, a)
		}
	}
	switch {
	case len(linked) == 0:
		return KeyAtProvider{}, Errorf(ECONFLICT, "This key is not linked to an active key at a connected OpenAI organization, so keyledger cannot rotate it there. Sync the connection, or rotate it by hand.")
	case len(linked) > 1:
		return KeyAtProvider{}, Errorf(ECONFLICT, "This key's hint fits %d keys at OpenAI, so keyledger cannot tell which one to replace. Rotate it by hand.", len(linked))
	case linked[0].OwnerType != OwnerServiceAccount:
		return KeyAtProvider{}, Errorf(ECONFLICT, "The key at OpenAI belongs to a person, not a service account: OpenAI's API creates keys only for service accounts. Rotate it by hand.")
	case linked[0].ProjectID == "":
		return KeyAtProvider{}, Errorf(ECONFLICT, "OpenAI did not say which project the key belongs to. Sync the connection, or rotate it by hand.")
	}
	return linked[0], nil
}

// ProviderRotation is a key's automated rotation at its provider, for its
// page.
type ProviderRotation struct {
	Enabled   bool
	ChangedBy string // who turned it on or off last
	ChangedAt *time.Time
	// LastAttemptAt and LastError: the last rotation or revocation
	// attempt, and why it failed in plain words ("" when it worked).
	LastAttemptAt *time.Time
	LastError     string
	LastRotatedAt *time.Time
}
