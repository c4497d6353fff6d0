package keyledger

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// ProviderConnection is a connection to a provider's admin API. The admin
// key it holds is sealed in the store and never leaves it: not here, not
// in a page, an audit detail or a response.
type ProviderConnection struct {
	ID             string
	Provider       Provider
	Name           string
	CreatedBy      string // email, "" for a user since deleted
	CreatedAt      time.Time
	LastSyncAt     *time.Time
	LastSyncStatus string // SyncOK, SyncFailed, or "" before the first sync
	// LastSyncError is the provider's message for a failed sync (a
	// *ProviderAdminError's text), never the admin key.
	LastSyncError string
	LastSyncKeys  int
}

// The outcomes of a sync, as stored on the connection.
const (
	SyncOK     = "ok"
	SyncFailed = "failed"
)

// ProviderConnectionInput is the add-connection form.
type ProviderConnectionInput struct {
	Provider string
	Name     string
	AdminKey string
}

// NewProviderConnection is a validated ProviderConnectionInput.
type NewProviderConnection struct {
	Provider Provider
	Name     string
	AdminKey string
}

// maxConnectionName matches the database's check.
const maxConnectionName = 100

// ValidateProviderConnection checks the add-connection form. The messages
// never repeat the admin key.
func ValidateProviderConnection(in ProviderConnectionInput, supported func(Provider) bool) (NewProviderConnection, error) {
	var v Validation
	nc := NewProviderConnection{
		Provider: Provider(strings.ToLower(strings.TrimSpace(in.Provider))),
		Name:     strings.TrimSpace(in.Name),
		AdminKey: strings.TrimSpace(in.AdminKey),
	}
	switch {
	case nc.Provider != ProviderOpenAI && nc.Provider != ProviderAnthropic:
		v.Add("provider", "Choose OpenAI or Anthropic.")
	case supported != nil && !supported(nc.Provider):
		v.Add("provider", fmt.Sprintf("This keyledger has no admin client for %s.", nc.Provider.Label()))
	}
	switch {
	case nc.Name == "" || Blank(nc.Name):
		v.Add("name", "Give the connection a name, e.g. the organization's.")
	case utf8.RuneCountInString(nc.Name) > maxConnectionName:
		v.Add("name", fmt.Sprintf("Use at most %d characters.", maxConnectionName))
	case !utf8.ValidString(nc.Name) || strings.ContainsFunc(nc.Name, isControl):
		v.Add("name", "The name holds characters that cannot be shown.")
	}
	switch {
	case nc.AdminKey == "":
		v.Add("admin_key", "Paste the organization's admin key.")
	case len(nc.AdminKey) > 512 || strings.ContainsFunc(nc.AdminKey, isControl) || strings.ContainsAny(nc.AdminKey, " \t"):
		v.Add("admin_key", "This does not look like an admin key: it holds spaces or control characters, or is too long.")
	case nc.Provider == ProviderOpenAI && !strings.HasPrefix(nc.AdminKey, "sk-admin-"):
		v.Add("admin_key", "OpenAI admin keys start with sk-admin- (an ordinary API key cannot list keys).")
	case nc.Provider == ProviderAnthropic && !strings.HasPrefix(nc.AdminKey, "sk-ant-admin"):
		v.Add("admin_key", "Anthropic admin keys start with sk-ant-admin (an ordinary API key cannot list keys).")
	}
	return nc, v.Err()
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// SyncResult is what one sync of a connection saw and did.
type SyncResult struct {
	Seen      int // keys the provider listed
	New       int // of those, first seen now
	Deleted   int // keys gone from the provider's list since the last sync
	Matched   int // live keys linked to a registered key
	Ambiguous int // live keys whose hint fits several registered keys
	Unmatched int // live keys in no registered key: shadow keys
}

// InventoryState is one way to look at the provider keys. A key can be in
// several: a registered key can also be unused and its owner gone.
type InventoryState string

// The states of the inventory; docs/providers.md says what each means.
const (
	InventoryRegistered InventoryState = "registered"
	InventoryAmbiguous  InventoryState = "ambiguous"
	InventoryShadow     InventoryState = "not_in_keyledger"
	InventoryOwnerLeft  InventoryState = "owner_left"
	InventoryUnused     InventoryState = "unused"
	InventoryDeleted    InventoryState = "deleted_at_provider"
)

// InventoryStates lists the states in the order pages show them.
func InventoryStates() []InventoryState {
	return []InventoryState{InventoryRegistered, InventoryAmbiguous, InventoryShadow, InventoryOwnerLeft, InventoryUnused, InventoryDeleted}
}

// Label is the state as people read it.
func (s InventoryState) Label() string {
	switch s {
	case InventoryRegistered:
		return "Registered"
	case InventoryAmbiguous:
		return "Ambiguous match"
	case InventoryShadow:
		return "Not in keyledger"
	case InventoryOwnerLeft:
		return "Owner left"
	case InventoryUnused:
		return fmt.Sprintf("Unused for %d days", UnusedAfterDays)
	case InventoryDeleted:
		return "Deleted at provider"
	}
	return string(s)
}

// ParseInventoryState accepts a state from a filter; "" is every key.
func ParseInventoryState(s string) (InventoryState, bool) {
	if s == "" {
		return "", true
	}
	for _, st := range InventoryStates() {
		if string(st) == s {
			return st, true
		}
	}
	return "", false
}

// UnusedAfterDays is how long a live provider key may go without use
// before the inventory calls it unused. A month catches keys nobody needs
// without flagging keys used by a monthly job.
const UnusedAfterDays = 30

// Match states of a provider key.
const (
	MatchMatched   = "matched"
	MatchAmbiguous = "ambiguous"
	MatchUnmatched = "unmatched"
)

// InventoryFilter narrows the inventory.
type InventoryFilter struct {
	State        InventoryState
	ConnectionID string
	// ProviderKey narrows to one provider key (its row id); 0 for all.
	ProviderKey int64
	// Limit is the page size; 0 lists everything (the CSV must be whole).
	Limit int
	// After is the last item of the previous page; nil for the first.
	After *InventoryCursor
}

// Inventory is the provider keys a filter selects, with how many keys of
// the unfiltered connection selection are in each state.
type Inventory struct {
	Items  []InventoryItem
	Counts map[InventoryState]int
	// More says that a page was full and more items follow it.
	More bool
}

// InventoryCursor is a position in the inventory's order (connection,
// project name, project id, key name, row id): a keyset, so keys a sync
// adds or deletes meanwhile never make a page repeat or skip one.
type InventoryCursor struct {
	Connection  string
	ProjectName string
	ProjectID   string
	Name        string
	ID          int64
}

// InventoryCursorOf is the position right after it.
func InventoryCursorOf(it InventoryItem) *InventoryCursor {
	return &InventoryCursor{Connection: it.ConnectionName, ProjectName: it.ProjectName, ProjectID: it.ProjectID, Name: it.Name, ID: it.ID}
}

// InventoryCandidate is a registered key an ambiguous provider key might
// be: enough for an admin to choose, never the value.
type InventoryCandidate struct {
	KeyID   string
	Name    string
	Project string
	Env     string
}

// InventoryItem is one key at a provider, with its match in keyledger.
type InventoryItem struct {
	ID             int64
	ConnectionID   string
	ConnectionName string
	Provider       Provider
	ProviderKeyID  string
	Name           string
	Hint           string // the provider's redacted form
	ProjectID      string
	ProjectName    string
	Status         string // the provider's word
	CreatedAt      *time.Time
	LastUsedAt     *time.Time
	CreatedBy      string
	OwnerType      string
	OwnerActive    bool
	FirstSeenAt    time.Time
	LastSeenAt     time.Time
	DeletedAt      *time.Time

	MatchState      string
	MatchCandidates int
	LinkedManually  bool
	Candidates      []InventoryCandidate // for an ambiguous key
	// The linked registered key, when matched.
	KeyID          string
	KeyName        string
	KeyProject     string
	KeyEnvironment string
	KeyOwnerEmail  string
	KeyOwnerActive bool
	KeyArchived    bool

	States []InventoryState
}

// Has reports whether the item is in state s.
func (it InventoryItem) Has(s InventoryState) bool {
	for _, st := range it.States {
		if st == s {
			return true
		}
	}
	return false
}

// Unused reports a key not used for UnusedAfterDays: last used before
// then, or never used and created before then. A key never used and of
// unknown age is not called unused: there is nothing to say it is old.
func Unused(lastUsed, created *time.Time, now time.Time) bool {
	cutoff := now.AddDate(0, 0, -UnusedAfterDays)
	if lastUsed != nil {
		return lastUsed.Before(cutoff)
	}
	return created != nil && created.Before(cutoff)
}

// MatchHint turns a provider's redacted key (OpenAI "sk-proj-abc…wxyz" /
// "sk-abc...wxyz", Anthropic "sk-ant-api03-R2D...igAA") into the masked
// hint keyledger stores for a value with that prefix and those last four
// characters (MaskedHint), so matching compares hints and never values.
// It returns "" when the hint has no known prefix or fewer than four
// characters after its last elision: such a hint matches nothing.
func MatchHint(hint string) string {
	hint = strings.TrimSpace(hint)
	prefix, p := providerPrefix(hint)
	if i := strings.IndexAny(hint, ".…*"); i >= 0 {
		head := hint[:i]
		// A redaction may cut the prefix short ("sk-svcacct..."): the
		// one known prefix that begins with the head is the key's.
		if tp, tprov := truncatedPrefix(head); tp != "" {
			prefix, p = tp, tprov
		}
	}
	if p == "" {
		return ""
	}
	var tail string
	if i := strings.LastIndexAny(hint, ".…*"); i >= 0 {
		_, size := utf8.DecodeRuneInString(hint[i:])
		tail = hint[i+size:]
	} else {
		// No elision: the provider showed the whole thing, which no admin
		// API does; refuse rather than match on a value.
		return ""
	}
	runes := []rune(tail)
	if len(runes) < 4 {
		return ""
	}
	return prefix + "…" + string(runes[len(runes)-4:])
}
