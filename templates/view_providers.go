package templates

import (
	"net/url"

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
