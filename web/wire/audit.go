package wire

import (
	"encoding/json"
	"time"
)

// Environment is an environment and its reveal policy.
type Environment struct {
	Name             string `json:"name"`
	RevealPolicy     string `json:"reveal_policy"`
	ReasonRequired   bool   `json:"reason_required"`
	Sensitive        bool   `json:"sensitive"`
	RotationDays     int    `json:"rotation_days"`
	AllowTokenReveal bool   `json:"allow_token_reveal"`
}

// EnvironmentList is GET /environments.
type EnvironmentList struct {
	Environments []Environment `json:"environments"`
}

// AuditEvent is one event of the audit log. Details is always a JSON
// object.
type AuditEvent struct {
	ID          int64           `json:"id"`
	Time        time.Time       `json:"time"`
	Actor       string          `json:"actor"`
	Action      string          `json:"action"`
	KeyID       *string         `json:"key_id"`
	KeyName     *string         `json:"key_name"`
	KeyVersion  *int            `json:"key_version"`
	Subject     *string         `json:"subject"`
	Environment *string         `json:"environment"`
	IP          string          `json:"ip"`
	Reason      string          `json:"reason"`
	Details     json.RawMessage `json:"details"`
}

// AuditList is GET /audit, newest first. NextCursor is nil on the last
// page.
type AuditList struct {
	Events     []AuditEvent `json:"events"`
	NextCursor *string      `json:"next_cursor"`
}
