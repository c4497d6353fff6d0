package web

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/templates"
	"github.com/labstack/echo/v4"
)

// Offboarding: the checklist for a departing person (DESIGN.md section 7).
// The store builds and resolves it; these handlers show it and pass the
// actions on.

func offboardingID(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("oid"), 10, 64)
	if err != nil || id <= 0 {
		return 0, keyledger.ErrNotFound("Offboarding")
	}
	return id, nil
}

func (s *Server) offboardingList(c echo.Context) error {
	return s.renderOffboardingList(c, http.StatusOK, templates.OffboardingListView{User: c.QueryParam("user")})
}

func (s *Server) renderOffboardingList(c echo.Context, status int, v templates.OffboardingListView) error {
	ctx := c.Request().Context()
	actor := s.actor(c)
	list, err := s.store.ListOffboardings(ctx, actor)
	if err != nil {
		return err
	}
	for _, o := range list {
		row := templates.OffboardingRow{OffboardingSummary: o}
		if o.CompletedAt == nil {
			v.Open = append(v.Open, row)
		} else {
			v.Completed = append(v.Completed, row)
		}
	}
	users, err := s.store.ListUsers(ctx, actor)
	if err != nil {
		return err
	}
	for _, u := range users {
		// Anyone still able to act (or frozen by an earlier start), except
		// yourself.
		if u.ID != actor.User.ID && u.Status != keyledger.UserDeactivated {
			v.Candidates = append(v.Candidates, u)
		}
	}
	return render(c, status, templates.OffboardingListPage(s.page(c, "Offboarding", "offboarding"), v))
}

func (s *Server) offboardingStart(c echo.Context) error {
	v := templates.OffboardingListView{User: c.FormValue("user"), Freeze: c.FormValue("freeze") != "", Note: c.FormValue("note")}
	id, err := s.store.StartOffboarding(c.Request().Context(), s.actor(c), v.User, v.Freeze, v.Note)
	if err != nil {
		status, fields, msg, ok := formFailure(err)
		if !ok {
			return err
		}
		v.Errors, v.Message = fields, msg
		return s.renderOffboardingList(c, status, v)
	}
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/offboarding/%d?started=1", id))
}

// offboardingExtras is the checklist page's form state after a refusal.
type offboardingExtras struct {
	owner       string
	errs        map[string]string
	waiveItem   int64
	waiveReason string
	waiveErr    string
	msg         string
	flash       []templates.Flash
	// askAdmin: a lead tried to deactivate; the message names the person.
	askAdmin bool
	// providerRevoke is a refused "revoke at the provider" item form.
	providerRevoke templates.ItemProviderRevokeForm
}

func (s *Server) offboardingPage(c echo.Context) error {
	return s.renderOffboarding(c, http.StatusOK, offboardingExtras{flash: governanceFlash(c)})
}

// itemGroups orders the checklist by kind, with what each kind means.
var itemGroups = []struct{ kind, help string }{
	{keyledger.ItemReassign, "Keys they own: someone else must become accountable for each."},
	{keyledger.ItemRotate, "Keys whose current value they revealed or exported: rotating the key (anywhere in keyledger) resolves its item."},
	{keyledger.ItemRevoke, "Their signed-in sessions and access tokens."},
	{keyledger.ItemDeactivate, "Their account: once deactivated they can no longer sign in."},
	{keyledger.ItemProviderRevoke, "Keys they created at a connected provider that still work there, registered in keyledger or not: revoke each at the provider, or waive it with a reason (e.g. a service still needs it and has a new owner)."},
}

func (s *Server) renderOffboarding(c echo.Context, status int, x offboardingExtras) error {
	id, err := offboardingID(c)
	if err != nil {
		return err
	}
	actor := s.actor(c)
	o, err := s.store.Offboarding(c.Request().Context(), actor, id)
	if err != nil {
		return err
	}
	if x.askAdmin {
		x.msg = "Only admins may deactivate accounts. Ask an admin to deactivate " + o.User.Email + " from this checklist."
	}
	v := templates.OffboardingView{O: o, CanDeactivate: keyledger.CanAdminister(actor.User) == nil, Owner: x.owner, Errors: x.errs,
		WaiveItem: x.waiveItem, WaiveReason: x.waiveReason, WaiveError: x.waiveErr, Message: x.msg,
		CanProviderRevoke: s.cfg.ProviderAdmin != nil, ProviderStepUpNeeded: !keyledger.FreshProof(actor, s.store.Now()), ProviderRevoke: x.providerRevoke}
	for _, g := range itemGroups {
		grp := templates.ItemGroup{Kind: g.kind, Label: keyledger.ItemLabel(g.kind), Help: g.help}
		for _, it := range o.Items {
			if it.Kind == g.kind {
				grp.Items = append(grp.Items, it)
				if it.Status == keyledger.ItemOpen {
					grp.Open++
				}
			}
		}
		if len(grp.Items) > 0 {
			v.Groups = append(v.Groups, grp)
		}
	}
	if !o.Completed() {
		if v.Owners, err = s.otherActiveUsers(c, o.User.ID); err != nil {
			return err
		}
	}
	title := "Offboarding " + o.User.DisplayName()
	if o.Completed() {
		title = "Offboarding record: " + o.User.DisplayName()
	}
	p := s.page(c, title, "offboarding")
	p.Flash = x.flash
	return render(c, status, templates.OffboardingPage(p, v))
}

// offboardingFailure re-renders the checklist with the message of a
// refused action (invalid or conflicting), or passes the error on.
func (s *Server) offboardingFailure(c echo.Context, err error, x offboardingExtras) error {
	status, fields, msg, ok := formFailure(err)
	if !ok {
		return err
	}
	if x.errs == nil {
		x.errs = fields
	}
	x.msg = msg
	return s.renderOffboarding(c, status, x)
}

func (s *Server) offboardingWaive(c echo.Context) error {
	id, err := offboardingID(c)
	if err != nil {
		return err
	}
	item, err := strconv.ParseInt(c.Param("item"), 10, 64)
	if err != nil || item <= 0 {
		return keyledger.ErrNotFound("Item")
	}
	reason := c.FormValue("reason")
	if err := s.store.WaiveItem(c.Request().Context(), s.actor(c), id, item, reason); err != nil {
		if keyledger.ErrorCode(err) == keyledger.EINVALID {
			msg := keyledger.FieldErrors(err)["reason"]
			if msg == "" {
				msg = keyledger.ErrorMessage(err)
			}
			return s.offboardingFailure(c, err, offboardingExtras{waiveItem: item, waiveReason: reason, waiveErr: msg, errs: map[string]string{}})
		}
		return s.offboardingFailure(c, err, offboardingExtras{})
	}
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/offboarding/%d?waived=1", id))
}

// offboardingReassign moves every live key the departing person owns to
// one new owner; the reassign items resolve with it. The store checks,
// in the same transaction, that the checklist is still open.
func (s *Server) offboardingReassign(c echo.Context) error {
	id, err := offboardingID(c)
	if err != nil {
		return err
	}
	owner := c.FormValue("owner")
	n, err := s.store.ReassignOffboardedKeys(c.Request().Context(), s.actor(c), id, owner)
	if err != nil {
		return s.offboardingFailure(c, err, offboardingExtras{owner: owner})
	}
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/offboarding/%d?reassigned=%d", id, n))
}

func (s *Server) offboardingRevoke(c echo.Context) error {
	id, err := offboardingID(c)
	if err != nil {
		return err
	}
	if err := s.store.RevokeAccess(c.Request().Context(), s.actor(c), id); err != nil {
		return s.offboardingFailure(c, err, offboardingExtras{})
	}
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/offboarding/%d?revoked=1", id))
}

// offboardingDeactivate deactivates the departing person's account. Only
// admins may; a lead sees the button disabled and is refused here.
func (s *Server) offboardingDeactivate(c echo.Context) error {
	id, err := offboardingID(c)
	if err != nil {
		return err
	}
	if _, err := s.store.DeactivateOffboarded(c.Request().Context(), s.actor(c), id); err != nil {
		if keyledger.ErrorCode(err) == keyledger.EFORBIDDEN {
			// A lead: say so on the checklist rather than on a bare
			// error page.
			return s.renderOffboarding(c, http.StatusForbidden, offboardingExtras{askAdmin: true})
		}
		return s.offboardingFailure(c, err, offboardingExtras{})
	}
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/offboarding/%d?deactivated=1", id))
}

func (s *Server) offboardingComplete(c echo.Context) error {
	id, err := offboardingID(c)
	if err != nil {
		return err
	}
	if err := s.store.CompleteOffboarding(c.Request().Context(), s.actor(c), id); err != nil {
		return s.offboardingFailure(c, err, offboardingExtras{})
	}
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/offboarding/%d?completed=1", id))
}
