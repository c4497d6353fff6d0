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
