package keyledger

import (
	"strconv"
	"strings"
)

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
	// AllowTokenReveal lets API tokens reveal this environment's keys;
	// off for sensitive environments unless an admin turns it on.
	AllowTokenReveal bool
}

// NormalizeEnvironmentName trims and lower-cases an environment name.
func NormalizeEnvironmentName(s string) string {
	return strings.ToLower(strings.TrimSpace(s))
}

// EnvironmentInput is the admin form for an environment.
type EnvironmentInput struct {
	Name           string
	RevealPolicy   string
	ReasonRequired bool
	Sensitive      bool
	RotationDays   string
	// AllowTokenReveal: API tokens with the reveal scope may reveal here.
	AllowTokenReveal bool
}

// ValidateEnvironment checks an environment definition.
func ValidateEnvironment(in EnvironmentInput) (Environment, error) {
	var v Validation
	env := Environment{Name: NormalizeEnvironmentName(in.Name), RevealPolicy: RevealPolicy(in.RevealPolicy),
		ReasonRequired: in.ReasonRequired, Sensitive: in.Sensitive, AllowTokenReveal: in.AllowTokenReveal}
	switch {
	case env.Name == "":
		v.Add("name", "Name is required.")
	case len(env.Name) > 50:
		v.Add("name", "Name is too long (at most 50 characters).")
	default:
		for _, r := range env.Name {
			if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '_' {
				v.Add("name", "Use lower-case letters, digits, - and _ only (it appears in URLs and exports).")
				break
			}
		}
	}
	if env.RevealPolicy != RevealAnyUser && env.RevealPolicy != RevealOwnerLeadsAdmins {
		v.Add("reveal_policy", "Choose who may reveal keys.")
	}
	days := strings.TrimSpace(in.RotationDays)
	n, err := strconv.Atoi(days)
	if err != nil || n < 1 || n > MaxRotationDays {
		v.Add("rotation_days", "Rotation interval must be a whole number of days from 1 to "+strconv.Itoa(MaxRotationDays)+".")
	}
	env.RotationDays = n
	return env, v.Err()
}
