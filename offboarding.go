package keyledger

import "time"

// Offboarding item kinds (DESIGN.md section 7).
const (
	ItemReassign   = "reassign"   // a live key the person owns
	ItemRotate     = "rotate"     // a live key whose current version they saw
	ItemRevoke     = "revoke"     // their sessions and tokens
	ItemDeactivate = "deactivate" // their account
	// ItemProviderRevoke: a key they created at a connected provider
	// (provider_keys.created_by is their email), still active there.
	ItemProviderRevoke = "provider_revoke"
)

// Item states.
const (
	ItemOpen   = "open"
	ItemDone   = "done"
	ItemWaived = "waived"
)

// Offboarding is the checklist for a departing person.
type Offboarding struct {
	ID          int64
	User        User
	StartedBy   string
	StartedAt   time.Time
	Frozen      bool
	Note        string
	CompletedAt *time.Time
	CompletedBy string
	Items       []OffboardingItem
}

// OffboardingItem is one thing to do before the person's access ends.
type OffboardingItem struct {
	ID          int64
	Kind        string
	KeyID       string
	KeyName     string
	Environment string
	Why         string
	Status      string
	Resolution  string
	ResolvedBy  string
	ResolvedAt  *time.Time
	CreatedAt   time.Time
	// ProviderKeyRef is the provider key of an ItemProviderRevoke item
	// (provider_keys.id); KeyID is then its linked key, if any.
	ProviderKeyRef int64
}

// Open counts the items still to do.
func (o *Offboarding) Open() int {
	n := 0
	for _, it := range o.Items {
		if it.Status == ItemOpen {
			n++
		}
	}
	return n
}

// Completed reports whether the checklist was closed.
func (o *Offboarding) Completed() bool { return o.CompletedAt != nil }

// ProgressPercent is the share of items resolved (done or waived).
func (o *Offboarding) ProgressPercent() int {
	if len(o.Items) == 0 {
		return 100
	}
	return (len(o.Items) - o.Open()) * 100 / len(o.Items)
}

// ItemLabel is the item kind as shown to people.
func ItemLabel(kind string) string {
	switch kind {
	case ItemReassign:
		return "Reassign ownership"
	case ItemRotate:
		return "Rotate (they saw the current value)"
	case ItemRevoke:
		return "Revoke sessions and tokens"
	case ItemDeactivate:
		return "Deactivate the account"
	case ItemProviderRevoke:
		return "Revoke at the provider (they created it there)"
	}
	return kind
}

// OffboardingSummary is a checklist as the offboarding list shows it.
type OffboardingSummary struct {
	ID          int64
	UserEmail   string
	UserName    string
	StartedAt   time.Time
	StartedBy   string
	CompletedAt *time.Time
	Frozen      bool
	Open        int
	Total       int
}

// Done is how many items are resolved.
func (r OffboardingSummary) Done() int { return r.Total - r.Open }
