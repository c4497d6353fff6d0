package web

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/templates"
	"github.com/labstack/echo/v4"
)

// Lead tools: the ownership dashboard and "what has this person seen".

func (s *Server) dashboard(c echo.Context) error {
	d, err := s.store.Dashboard(c.Request().Context(), s.actor(c))
	if err != nil {
		return err
	}
	v := templates.DashboardView{Environments: d.Environments, Total: d.Total, EnvTotals: map[string]int{}}
	for _, o := range d.Owners {
		v.Owners = append(v.Owners, templates.DashboardOwner{OwnerKeys: o})
		for env, n := range o.Counts {
			v.EnvTotals[env] += n
		}
	}
	dueSoonDays := int(keyledger.DueSoonWindow.Hours() / 24)
	staleDays := int(store.StaleAfter.Hours() / 24)
	if d.Revoked > 0 {
		v.LeakMedian, v.LeakRevoked = templates.Span(d.MedianToRevoke), d.Revoked
	}
	v.Lists = []templates.DashboardList{
		{Status: "compromised", Title: "Compromised", Count: d.Compromised, Bad: true,
			Help: "A leak incident is open: rotate each key and revoke the leaked version (see Leaks)."},
		{Status: "orphaned", Title: "Orphaned", Count: d.Orphaned, Bad: true,
			Help: "The owner is deactivated or frozen: nobody is accountable. Reassign them."},
		{Status: "never_verified", Title: "Never verified", Count: d.NeverChecked,
			Help: "Nobody has checked that these keys work."},
		{Status: "failing", Title: "Failing", Count: d.Failing, Bad: true,
			Help: "The provider refused the key at its last check (invalid, forbidden or out of quota)."},
		{Status: "overdue", Title: "Overdue for rotation", Count: d.Overdue, Bad: true,
			Help: "Past their rotation date."},
		{Status: "due_soon", Title: "Due soon", Count: d.DueSoon,
			Help: fmt.Sprintf("Due for rotation within %d days.", dueSoonDays)},
		{Status: "stale", Title: fmt.Sprintf("No reveal in %d days", staleDays), Count: d.Stale,
			Help: fmt.Sprintf("Registered over %d days ago and not revealed or exported since: still needed?", staleDays)},
	}
	var key any
	if len(d.Owners) > 0 {
		key = &d.Owners[0]
	}
	body, err := s.dashboardBody.render(c.Request().Context(), key, templates.DashboardBody(v))
	if err != nil {
		return err
	}
	// Keys at the connected providers that keyledger does not account
	// for, linked to the filtered inventory (nil: not for this viewer).
	if inv := d.Inventory; inv != nil {
		v.Inventory = []templates.DashboardInventory{
			{State: keyledger.InventoryShadow, Count: inv[keyledger.InventoryShadow],
				Help: "Keys that exist at a connected provider but are not registered here. Register them, or revoke them at the provider."},
			{State: keyledger.InventoryOwnerLeft, Count: inv[keyledger.InventoryOwnerLeft],
				Help: "The owner lost access at the provider, or the registered key's owner is deactivated here."},
		}
	}
	return render(c, http.StatusOK, templates.DashboardPage(s.page(c, "Ownership", "dashboard"), body, v))
}

// userID reads the :uid parameter; anything but a positive number is a
// user that does not exist.
func userID(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("uid"), 10, 64)
	if err != nil || id <= 0 {
		return 0, keyledger.ErrNotFound("User")
	}
	return id, nil
}

// userForm is the reassign form's state after a refused submission.
type userForm struct {
	owner    string
	selected map[string]bool
	errs     map[string]string
	msg      string
	flash    []templates.Flash
}

func (s *Server) userPage(c echo.Context) error {
	return s.renderUserPage(c, http.StatusOK, userForm{flash: governanceFlash(c)})
}

func (s *Server) renderUserPage(c echo.Context, status int, f userForm) error {
	ctx := c.Request().Context()
	actor := s.actor(c)
	id, err := userID(c)
	if err != nil {
		return err
	}
	// The store decides who may look: leads, admins and the person; for
	// anyone else the person does not exist.
	seen, err := s.store.UserSeen(ctx, actor, id, 500)
	if err != nil {
		return err
	}
	person, err := s.store.UserByID(ctx, actor, id)
	if err != nil {
		return err
	}
	keys, err := s.allKeys(c, store.KeyFilter{OwnerEmail: person.Email, Sort: "environment"})
	if err != nil {
		return err
	}
	v := templates.UserPageView{Person: person, Self: actor.User.ID == person.ID, Keys: keys,
		Owner: f.owner, Selected: f.selected, Errors: f.errs, Message: f.msg}
	for _, r := range seen {
		v.Seen = append(v.Seen, templates.SeenRow{SeenRecord: r, Export: r.Action == keyledger.ActionKeyExport})
	}
	if keyledger.CanLead(actor.User) == nil {
		v.CanLead = true
		if v.Owners, err = s.otherActiveUsers(c, person.ID); err != nil {
			return err
		}
		list, err := s.store.ListOffboardings(ctx, actor)
		if err != nil {
			return err
		}
		for _, o := range list {
			if o.CompletedAt == nil && strings.EqualFold(o.UserEmail, person.Email) {
				v.OpenOffboarding = o.ID
			}
		}
	}
	p := s.page(c, person.DisplayName(), "dashboard")
	p.Flash = f.flash
	return render(c, status, templates.UserPage(p, v))
}

// otherActiveUsers lists who may take over keys from the user with id
// except: every active user but them.
func (s *Server) otherActiveUsers(c echo.Context, except int64) ([]keyledger.User, error) {
	all, err := s.store.ActiveUsers(c.Request().Context(), s.actor(c))
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, u := range all {
		if u.ID != except {
			out = append(out, u)
		}
	}
	return out, nil
}

// userReassign moves the person's live keys to another owner: the ticked
// ones, or all of them.
func (s *Server) userReassign(c echo.Context) error {
	id, err := userID(c)
	if err != nil {
		return err
	}
	form, err := c.FormParams()
	if err != nil {
		return keyledger.Errorf(keyledger.EINVALID, "The form could not be read.")
	}
	owner := strings.TrimSpace(form.Get("owner"))
	keys := form["key"]
	selected := map[string]bool{}
	for _, k := range keys {
		selected[k] = true
	}
	if form.Get("only_checked") != "" && len(keys) == 0 {
		// Leads only get this far with the page; others are refused below.
		if err := keyledger.CanLead(currentUser(c)); err != nil {
			return err
		}
		return s.renderUserPage(c, http.StatusUnprocessableEntity, userForm{owner: owner, selected: selected,
			errs: map[string]string{"key": "Tick the keys to move, or use Reassign all."}, msg: "No key was ticked."})
	}
	n, err := s.store.ReassignKeys(c.Request().Context(), s.actor(c), id, owner, keys)
	if err != nil {
		status, fields, msg, ok := formFailure(err)
		if !ok {
			return err
		}
		return s.renderUserPage(c, status, userForm{owner: owner, selected: selected, errs: fields, msg: msg})
	}
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/users/%d?reassigned=%d", id, n))
}

// governanceFlash turns the markers redirects leave in the URL into
// messages (no message text travels in the URL).
func governanceFlash(c echo.Context) []templates.Flash {
	q := c.QueryParams()
	var out []templates.Flash
	if v := q.Get("reassigned"); v != "" {
		if n, err := strconv.Atoi(v); err == nil && n >= 0 {
			switch n {
			case 0:
				out = append(out, templates.Flash{Kind: "warn", Message: "There were no live keys to reassign."})
			case 1:
				out = append(out, templates.Flash{Kind: "ok", Message: "Reassigned 1 key. The new owner is accountable for it from now on."})
			default:
				out = append(out, templates.Flash{Kind: "ok", Message: "Reassigned " + strconv.Itoa(n) + " keys. The new owner is accountable for them from now on."})
			}
		}
	}
	if q.Get("started") != "" {
		out = append(out, templates.Flash{Kind: "ok", Message: "Offboarding started. Work through the checklist; items tick themselves off as the actions happen anywhere in keyledger."})
	}
	if q.Get("provider_revoked") != "" {
		out = append(out, templates.Flash{Kind: "ok", Message: "Revoked at the provider. The item is resolved and the revoke is on the record."})
	}
	if q.Get("waived") != "" {
		out = append(out, templates.Flash{Kind: "ok", Message: "Item waived. The reason is on the record."})
	}
	if q.Get("revoked") != "" {
		out = append(out, templates.Flash{Kind: "ok", Message: "Sessions and tokens revoked."})
	}
	if q.Get("deactivated") != "" {
		out = append(out, templates.Flash{Kind: "ok", Message: "Account deactivated."})
	}
	if q.Get("completed") != "" {
		out = append(out, templates.Flash{Kind: "ok", Message: "Offboarding completed. This page is now its record."})
	}
	return out
}
