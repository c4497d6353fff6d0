package templates

import (
	"net/url"
	"strconv"

	"github.com/keyledger/keyledger"
)

// DashboardView is the ownership audit for leads.
type DashboardView struct {
	Environments []string
	Owners       []DashboardOwner
	// EnvTotals counts live keys per environment (column totals).
	EnvTotals map[string]int
	Total     int
	Lists     []DashboardList
	// Inventory counts provider keys keyledger does not account for.
	Inventory []DashboardInventory
	// LeakMedian is the median time from a leak report to the leaked
	// version's revocation ("" when none was revoked yet), over
	// LeakRevoked incidents.
	LeakMedian  string
	LeakRevoked int
}

// DashboardInventory is one inventory count on the dashboard, linked to
// the inventory filtered by its state.
type DashboardInventory struct {
	State keyledger.InventoryState
	Count int
	Help  string
}

// DashboardOwner is one row of the owner × environment table.
type DashboardOwner struct {
	keyledger.OwnerKeys
}

// DisplayName is the name, or the email when there is none.
func (o DashboardOwner) DisplayName() string {
	if o.Name != "" {
		return o.Name
	}
	return o.Email
}

// DashboardList is one of the problem lists (orphaned, failing, ...): a
// count linking to the key list with that status filter.
type DashboardList struct {
	Status string // the /keys?status= value
	Title  string
	Help   string
	Count  int
	// Bad marks a list that needs action rather than attention.
	Bad bool
}

// keysQuery is a /keys or /keys.csv address with filters.
func keysQuery(base string, kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	if len(v) == 0 {
		return base
	}
	return base + "?" + v.Encode()
}

func userURL(id int64) string { return "/users/" + strconv.FormatInt(id, 10) }

// UserPageView is "what has this person seen".
type UserPageView struct {
	Person *keyledger.User
	// Self: the person is looking at their own page.
	Self bool
	// CanLead: the viewer may reassign keys and start offboarding.
	CanLead bool
	Keys    []keyledger.Key
	// Owners are the active users the keys may move to.
	Owners []keyledger.User
	Seen   []SeenRow
	// OpenOffboarding is the id of the person's open checklist, or 0.
	OpenOffboarding int64
	// Reassign form state after a refused submission.
	Owner    string
	Selected map[string]bool
	Errors   map[string]string
	Message  string
}

// SeenRow is one reveal or export by the person.
type SeenRow struct {
	keyledger.SeenRecord
	Export bool
}

// CurrentCount is how many seen rows are still current versions.
func (v UserPageView) CurrentCount() int {
	n := 0
	for _, s := range v.Seen {
		if s.Current {
			n++
		}
	}
	return n
}

// OffboardingListView lists checklists and holds the start form.
type OffboardingListView struct {
	Open      []OffboardingRow
	Completed []OffboardingRow
	// Candidates are the people who may be offboarded by the viewer.
	Candidates []keyledger.User
	User       string
	Freeze     bool
	Note       string
	Errors     map[string]string
	Message    string
}

// OffboardingRow is one checklist in the list.
type OffboardingRow struct {
	keyledger.OffboardingSummary
}

// Person is the name and email of the departing person.
func (r OffboardingRow) Person() string {
	if r.UserName != "" {
		return r.UserName + " <" + r.UserEmail + ">"
	}
	return r.UserEmail
}

// OffboardingView is one checklist (or, completed, its record).
type OffboardingView struct {
	O      *keyledger.Offboarding
	Groups []ItemGroup
	// Owners are the active users the departing person's keys may move to.
	Owners []keyledger.User
	// CanDeactivate: the viewer is an admin.
	CanDeactivate bool
	// Reassign form state after a refused submission.
	Owner  string
	Errors map[string]string
	// Waive form state after a refused submission.
	WaiveItem   int64
	WaiveReason string
	WaiveError  string
	Message     string
	// CanProviderRevoke: keyledger has a provider admin client, so
	// "revoke at the provider" items offer the revoke.
	CanProviderRevoke bool
	// ProviderStepUpNeeded: the viewer has no fresh password or code, so
	// the revoke form asks for one (keys unknown to keyledger, and keys
	// of sensitive environments, need it).
	ProviderStepUpNeeded bool
	ProviderRevoke       ItemProviderRevokeForm
}

// ItemProviderRevokeForm is a refused "revoke at the provider" item form.
type ItemProviderRevokeForm struct {
	Item int64
	ProviderRevokeForm
}

// ItemGroup is the checklist's items of one kind.
type ItemGroup struct {
	Kind  string
	Label string
	Help  string
	Items []keyledger.OffboardingItem
	Open  int
}

// Resolved is how many items of the checklist are done or waived.
func (v OffboardingView) Resolved() int { return len(v.O.Items) - v.O.Open() }

func offboardingURL(id int64) string { return "/offboarding/" + strconv.FormatInt(id, 10) }

func itemURL(o *keyledger.Offboarding, it keyledger.OffboardingItem) string {
	return offboardingURL(o.ID) + "/items/" + strconv.FormatInt(it.ID, 10) + "/waive"
}

func itemDOMID(it keyledger.OffboardingItem) string { return "item-" + strconv.FormatInt(it.ID, 10) }

func statusBadgeClass(status string) string {
	switch status {
	case keyledger.ItemDone:
		return "good"
	case keyledger.ItemWaived:
		return "warn"
	}
	return "bad"
}

func i64(n int64) string { return strconv.FormatInt(n, 10) }

// CSVQuery is the audit filter as a CSV download address.
func (f AuditFilterView) CSVQuery() string {
	q := f.Query(0)
	return "/audit.csv" + q[len("/audit"):]
}

// hasKey says whether the key menu offers id.
func (v AuditView) hasKey(id string) bool {
	for _, k := range v.Keys {
		if k.ID == id {
			return true
		}
	}
	return false
}
