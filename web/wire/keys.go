package wire

import "time"

// Owner is a key's owner.
type Owner struct {
	Email  string `json:"email"`
	Name   string `json:"name"`
	Active bool   `json:"active"`
}

// Key is a key's metadata. It has no field for a value: only Revealed and
// Export carry one.
type Key struct {
	ID             string `json:"id"`
	Name           string `json:"name"`
	Provider       string `json:"provider"`
	Project        string `json:"project"`
	Environment    string `json:"environment"`
	Owner          Owner  `json:"owner"`
	Description    string `json:"description"`
	Scope          string `json:"scope"`
	MaskedHint     string `json:"masked_hint"`
	CurrentVersion int    `json:"current_version"`
	// RotationDays is the key's own interval; nil when the environment's
	// default applies (EffectiveRotationDays is the one in force).
	RotationDays          *int       `json:"rotation_days"`
	EffectiveRotationDays int        `json:"effective_rotation_days"`
	RotateBy              time.Time  `json:"rotate_by"`
	RotationStatus        string     `json:"rotation_status"`
	LastRotatedAt         time.Time  `json:"last_rotated_at"`
	LastVerifiedAt        *time.Time `json:"last_verified_at"`
	VerifyResult          *string    `json:"verify_result"`
	VerifyMessage         *string    `json:"verify_message"`
	CreatedAt             time.Time  `json:"created_at"`
	UpdatedAt             time.Time  `json:"updated_at"`
	ArchivedAt            *time.Time `json:"archived_at"`
}

// KeyVersion is one stored version of a key (never its value).
type KeyVersion struct {
	Version      int        `json:"version"`
	CreatedAt    time.Time  `json:"created_at"`
	CreatedBy    *string    `json:"created_by"`
	SupersededAt *time.Time `json:"superseded_at"`
	DestroyAfter *time.Time `json:"destroy_after"`
	DestroyedAt  *time.Time `json:"destroyed_at"`
	MaskedHint   string     `json:"masked_hint"`
	Current      bool       `json:"current"`
}

// KeyDetail is GET /keys/{id}: the key and its versions, and what a
// connected provider says about it (the key page's "At OpenAI" section);
// AtProvider is left out when no connected provider lists a key linked
// to it.
type KeyDetail struct {
	Key
	Versions   []KeyVersion   `json:"versions"`
	AtProvider *KeyAtProvider `json:"at_provider,omitempty"`
}

// KeyList is GET /keys. NextCursor is nil on the last page.
type KeyList struct {
	Keys       []Key   `json:"keys"`
	NextCursor *string `json:"next_cursor"`
}

// KeyCreateRequest is POST /keys, named like the register form.
type KeyCreateRequest struct {
	Name         string `json:"name"`
	Provider     string `json:"provider,omitempty"`
	Project      string `json:"project"`
	Environment  string `json:"environment"`
	Owner        string `json:"owner"`
	Value        string `json:"value"`
	Scope        string `json:"scope,omitempty"`
	RotationDays *int   `json:"rotation_days,omitempty"`
	Description  string `json:"description,omitempty"`
}

// KeyCreated answers POST /keys.
type KeyCreated struct {
	Key      Key      `json:"key"`
	Warnings []string `json:"warnings"`
}

// RevealRequest is POST /keys/{id}/reveal. Version nil means the current
// one; Reason is required only where the environment asks for one.
type RevealRequest struct {
	Reason  string `json:"reason,omitempty"`
	Version *int   `json:"version,omitempty"`
}

// Revealed answers a reveal: the value, and the variable name it goes by.
type Revealed struct {
	KeyID       string `json:"key_id"`
	Name        string `json:"name"`
	Environment string `json:"environment"`
	Version     int    `json:"version"`
	Value       string `json:"value"`
	EnvVar      string `json:"env_var"`
}

// RotateRequest is POST /keys/{id}/rotate. ExpectedVersion, when given,
// makes the rotation fail with a conflict if someone rotated meanwhile.
type RotateRequest struct {
	Value           string `json:"value"`
	GraceDays       *int   `json:"grace_days,omitempty"`
	ExpectedVersion *int   `json:"expected_version,omitempty"`
}

// VerifyResult answers POST /keys/{id}/verify.
type VerifyResult struct {
	Result  string `json:"result"`
	Message string `json:"message"`
	Key     Key    `json:"key"`
}
