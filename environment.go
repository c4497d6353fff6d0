package keyledger

import "strings"

// RevealPolicy says who may reveal the values of an environment's keys.
type RevealPolicy string

const (
	// RevealAnyUser lets every active user reveal.
	RevealAnyUser RevealPolicy = "any_user"
	// RevealOwnerLeadsAdmins lets only the key's owner, leads and admins reveal.
	RevealOwnerLeadsAdmins RevealPolicy = "owner_leads_admins"
)

// Label is the policy as shown to people.
func (p RevealPolicy) Label() string {
	switch p {
	case RevealAnyUser:
		return "any active user"
	case RevealOwnerLeadsAdmins:
		return "the key's owner, leads and admins"
	}
	return string(p)
}

// Environment groups keys that share a reveal policy: development, staging,
// production, or any an admin adds.
type Environment struct {
	ID             int64
	Name           string
	RevealPolicy   RevealPolicy
	ReasonRequired bool
	// Sensitive environments ask for step-up authentication before a reveal.
	Sensitive    bool
	RotationDays int
}

// NormalizeEnvironmentName trims and lower-cases an environment name.
func NormalizeEnvironmentName(s string) string {
	return strings.ToLower(strings.TrimSpace(s))
}
