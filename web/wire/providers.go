package wire

import "time"

// ProviderConnection is one connection to a provider's admin API with its
// last sync (GET /providers). The admin key is never in it.
type ProviderConnection struct {
	ID        string    `json:"id"`
	Provider  string    `json:"provider"`
	Name      string    `json:"name"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// LastSyncAt and LastSyncStatus ("ok" or "failed") are nil before the
	// first sync.
	LastSyncAt     *time.Time `json:"last_sync_at"`
	LastSyncStatus *string    `json:"last_sync_status"`
	// LastSyncError is the provider's answer to a failed sync ("" after a
	// good one); LastSyncKeys how many keys the last good sync listed.
	LastSyncError string `json:"last_sync_error"`
	LastSyncKeys  int    `json:"last_sync_keys"`
}

// ProviderConnectionList is GET /providers.
type ProviderConnectionList struct {
	Connections []ProviderConnection `json:"connections"`
}

// ProviderConnectionCreateRequest is POST /providers: the form's fields.
type ProviderConnectionCreateRequest struct {
	Provider string `json:"provider"`
	Name     string `json:"name"`
	AdminKey string `json:"admin_key"`
}

// ProviderSync is POST /providers/{id}/sync: the connection afterwards
// and what the sync saw and did.
type ProviderSync struct {
	Connection ProviderConnection `json:"connection"`
	Seen       int                `json:"seen"`
	New        int                `json:"new"`
	Deleted    int                `json:"deleted"`
	Matched    int                `json:"matched"`
	Ambiguous  int                `json:"ambiguous"`
	Unmatched  int                `json:"unmatched"`
}

// ProviderRevokeRequest is POST /keys/{id}/provider-revoke. ProviderKey
// is the provider key's row (an older version's key, as the key page
// lists it); nil for the key linked to this key.
type ProviderRevokeRequest struct {
	Reason      string `json:"reason"`
	ProviderKey *int64 `json:"provider_key,omitempty"`
}

// ProviderRevoked is the answer to a revoke at the provider. Already:
// keyledger had revoked it before, and the provider was not called.
type ProviderRevoked struct {
	KeyID         string     `json:"key_id"`
	Provider      string     `json:"provider"`
	Connection    string     `json:"connection"`
	ProviderKeyID string     `json:"provider_key_id"`
	Status        string     `json:"status"`
	RevokedAt     *time.Time `json:"revoked_at"`
	Already       bool       `json:"already"`
}

// InventoryLinkRequest is POST /inventory/{provider_key}/link: the
// registered key an admin says this provider key is.
type InventoryLinkRequest struct {
	KeyID string `json:"key_id"`
}

// KeyAtProvider is what the connected providers say about a registered
// key (GET /keys/{id}): the provider keys linked to it, and, for an
// OpenAI key, its rotation there (left out for other providers, which
// keyledger does not rotate). Never an admin key or a value.
type KeyAtProvider struct {
	Provider string          `json:"provider"`
	Keys     []LinkedKey     `json:"keys"`
	Rotation *RotationStatus `json:"rotation,omitempty"`
}

// LinkedKey is one provider key linked to a registered key: the
// provider's id and word for it, where it lives, its last use and its
// usage per UTC day over the last 30 days (days without use left out).
type LinkedKey struct {
	// ID is the provider key's row in keyledger, as in the inventory.
	ID            int64  `json:"id"`
	ProviderKeyID string `json:"provider_key_id"`
	Connection    string `json:"connection"`
	ConnectionID  string `json:"connection_id"`
	ProjectID     string `json:"project_id"`
	ProjectName   string `json:"project_name"`
	// Status is the provider's word (active, inactive, …); DeletedAt is
	// set once the provider no longer lists it, RevokedAt and RevokedBy
	// once keyledger revoked it there.
	Status     string     `json:"status"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  *time.Time `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
	LastSeenAt time.Time  `json:"last_seen_at"`
	DeletedAt  *time.Time `json:"deleted_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	RevokedBy  *string    `json:"revoked_by"`
	Usage      []UsageDay `json:"usage"`
}

// UsageDay is one UTC day's use of a provider key (YYYY-MM-DD).
type UsageDay struct {
	Day          string `json:"day"`
	Requests     int64  `json:"requests"`
	InputTokens  int64  `json:"input_tokens"`
	OutputTokens int64  `json:"output_tokens"`
}

// RotationStatus is a key's rotation at its provider (OpenAI): whether
// automated rotation is on and who set it, the last attempt and its
// failure in plain words, and why keyledger cannot rotate the key there
// ("" when it can).
type RotationStatus struct {
	KeyID         string     `json:"key_id"`
	Enabled       bool       `json:"enabled"`
	ChangedBy     *string    `json:"changed_by"`
	ChangedAt     *time.Time `json:"changed_at"`
	LastAttemptAt *time.Time `json:"last_attempt_at"`
	LastError     string     `json:"last_error"`
	LastRotatedAt *time.Time `json:"last_rotated_at"`
	Refusal       string     `json:"refusal"`
}

// AutoRotateRequest is POST /keys/{id}/auto-rotate: true turns automated
// rotation at the provider on, false off; null or absent is refused.
type AutoRotateRequest struct {
	Enabled *bool `json:"enabled"`
}
