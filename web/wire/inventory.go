package wire

import "time"

// Inventory is GET /inventory: the keys at the connected providers that
// the filter selects, and how many keys are in each state (over the
// connection filter only, so the counts do not change with the state
// filter).
type Inventory struct {
	Counts InventoryCounts `json:"counts"`
	Items  []InventoryItem `json:"items"`
	// NextCursor asks for the next page; nil on the last one.
	NextCursor *string `json:"next_cursor"`
}

// InventoryCounts counts provider keys per state; a key may be in several.
type InventoryCounts struct {
	Registered        int `json:"registered"`
	Ambiguous         int `json:"ambiguous"`
	NotInKeyledger    int `json:"not_in_keyledger"`
	OwnerLeft         int `json:"owner_left"`
	Unused            int `json:"unused"`
	DeletedAtProvider int `json:"deleted_at_provider"`
}

// InventoryItem is one key at a provider: what the provider lists (never
// a value; the hint is the provider's redacted form) and its match in
// keyledger.
type InventoryItem struct {
	// ID is the provider key's row in keyledger, which the link and
	// provider-revoke calls take.
	ID             int64      `json:"id"`
	Connection     string     `json:"connection"`
	ConnectionID   string     `json:"connection_id"`
	Provider       string     `json:"provider"`
	ProviderKeyID  string     `json:"provider_key_id"`
	Name           string     `json:"name"`
	Hint           string     `json:"hint"`
	ProjectID      string     `json:"project_id"`
	ProjectName    string     `json:"project_name"`
	Status         string     `json:"status"`
	States         []string   `json:"states"`
	CreatedAt      *time.Time `json:"created_at"`
	CreatedBy      string     `json:"created_by"`
	OwnerType      string     `json:"owner_type"`
	OwnerActive    bool       `json:"owner_active"`
	LastUsedAt     *time.Time `json:"last_used_at"`
	FirstSeenAt    time.Time  `json:"first_seen_at"`
	LastSeenAt     time.Time  `json:"last_seen_at"`
	DeletedAt      *time.Time `json:"deleted_at"`
	Match          string     `json:"match"`
	CandidateCount int        `json:"candidate_count"`
	// KeyID is the registered key it is matched to; nil when none.
	// LinkedManually: an admin linked it, and syncs leave the link alone.
	KeyID          *string              `json:"key_id"`
	LinkedManually bool                 `json:"linked_manually"`
	Candidates     []InventoryCandidate `json:"candidates"`
}

// InventoryCandidate is a registered key an ambiguous provider key may be.
type InventoryCandidate struct {
	KeyID       string `json:"key_id"`
	Name        string `json:"name"`
	Project     string `json:"project"`
	Environment string `json:"environment"`
}
