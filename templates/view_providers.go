package templates

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/keyledger/keyledger"
)

// ProvidersView is the provider connections page.
type ProvidersView struct {
	Connections []keyledger.ProviderConnection
	Create      ProviderForm
	// Configured is false when this keyledger has no admin client: the
	// form is then not offered.
	Configured bool
}

// ProviderForm is the add-connection form. The admin key is never echoed
// back into it.
type ProviderForm struct {
	Provider string
	Name     string
	Errors   map[string]string
	Message  string
}

// InventoryView is the provider inventory page.
type InventoryView struct {
	Inventory   keyledger.Inventory
	Connections []keyledger.ProviderConnection
	State       keyledger.InventoryState
	Connection  string
	States      []keyledger.InventoryState
	// After is this page's cursor ("" for the first page); Next the
	// next page's ("" on the last).
	After, Next string
	// CanLink: an admin, offered the link and unlink forms.
	CanLink bool
}

// InventoryPageURL is the inventory's address with its filters, from the
// page after cursor after ("" for the first).
func InventoryPageURL(state keyledger.InventoryState, connection, after string) string {
	u := InventoryQuery("/inventory", state, connection)
	if after == "" {
		return u
	}
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + "after=" + url.QueryEscape(after)
}

func inventoryAction(it keyledger.InventoryItem, what string) string {
	return "/inventory/" + strconv.FormatInt(it.ID, 10) + "/" + what
}

// InventoryQuery is the inventory's address with its filters.
func InventoryQuery(path string, state keyledger.InventoryState, connection string) string {
	v := url.Values{}
	if state != "" {
		v.Set("state", string(state))
	}
	if connection != "" {
		v.Set("connection", connection)
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}

// RegisterURL opens the register form prefilled from a shadow key:
// provider, name and project, never a value (keyledger has none).
func RegisterURL(it keyledger.InventoryItem) string {
	v := url.Values{}
	v.Set("provider", string(it.Provider))
	v.Set("name", it.Name)
	project := it.ProjectName
	if project == "" {
		project = it.ProjectID
	}
	if project != "" {
		v.Set("project", project)
	}
	return "/keys/new?" + v.Encode()
}

func providerConnAction(c keyledger.ProviderConnection, what string) string {
	return "/admin/providers/" + url.PathEscape(c.ID) + "/" + what
}

func stateBadge(s keyledger.InventoryState) string {
	switch s {
	case keyledger.InventoryRegistered:
		return "badge good"
	case keyledger.InventoryShadow, keyledger.InventoryOwnerLeft, keyledger.InventoryDeleted:
		return "badge bad"
	}
	return "badge warn"
}

func projectOf(it keyledger.InventoryItem) string {
	switch {
	case it.ProjectName != "" && it.ProjectID != "":
		return it.ProjectName + " (" + it.ProjectID + ")"
	case it.ProjectName != "":
		return it.ProjectName
	case it.ProjectID != "":
		return it.ProjectID
	}
	return "default"
}
