package web

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/templates"
	"github.com/labstack/echo/v4"
)

// Leak response (issue 15): report a value found out in the open, follow
// the incident it opens until the leaked version is rotated away and
// revoked. The store matches and drops the value; these handlers never
// hold it longer than the call, and never render it.

func leakID(c echo.Context) (int64, error) {
	id, err := strconv.ParseInt(c.Param("lid"), 10, 64)
	if err != nil || id <= 0 {
		return 0, keyledger.ErrNotFound("Incident")
	}
	return id, nil
}

func (s *Server) leakNewPage(c echo.Context) error {
	return render(c, http.StatusOK, templates.LeakReportPage(s.page(c, "Report a leaked key", "leaks-new"), templates.LeakReportView{}))
}

// leakReport is POST /leaks/new. A refused form comes back without the
// value (the page says why); a match goes to the incident; no match is
// said on the form, again without the value.
func (s *Server) leakReport(c echo.Context) error {
	in := keyledger.LeakReportInput{Value: c.FormValue("value"), Where: c.FormValue("where")}
	r, err := s.store.ReportLeak(c.Request().Context(), s.actor(c), in)
	in.Value = ""
	if err != nil {
		status, fields, msg, ok := formFailure(err)
		if !ok {
			return err
		}
		if fields == nil {
			fields = map[string]string{}
		}
		v := templates.LeakReportView{Where: in.Where, Errors: fields, Message: msg}
		return render(c, status, templates.LeakReportPage(s.page(c, "Report a leaked key", "leaks-new"), v))
	}
	if !r.Matched {
		return render(c, http.StatusOK, templates.LeakReportPage(s.page(c, "Report a leaked key", "leaks-new"), templates.LeakReportView{NoMatch: true}))
	}
	flag := "reported"
	if r.Joined {
		flag = "joined"
	}
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/leaks/%d?%s=1", r.IncidentID, flag))
}

func (s *Server) leakList(c echo.Context) error {
	sum, err := s.store.LeakSummary(c.Request().Context(), s.actor(c))
	if err != nil {
		return err
	}
	return render(c, http.StatusOK, templates.LeakListPage(s.page(c, "Leaks", "leaks"), templates.LeakListView{Summary: sum}))
}

func (s *Server) leakPage(c echo.Context) error {
	return s.renderLeak(c, http.StatusOK, templates.LeakView{})
}

func (s *Server) renderLeak(c echo.Context, status int, v templates.LeakView) error {
	id, err := leakID(c)
	if err != nil {
		return err
	}
	actor := s.actor(c)
	inc, err := s.store.LeakIncident(c.Request().Context(), actor, id)
	if err != nil {
		return err
	}
	v.I = inc
	v.CanAct = keyledger.CanResolveLeak(actor.User, inc.OwnerID) == nil
	v.CanRotate = keyledger.CanEditKey(actor.User, inc.OwnerID) == nil && !inc.KeyArchived
	v.SeesExposures = keyledger.CanSeeLeakExposures(actor.User) == nil
	if v.CanAct && inc.ProviderRevocable && inc.RevokedAt == nil {
		// The revoke form asks for the step-up the store will ask for,
		// by the same rule as the key page's form.
		k, err := s.store.GetKey(c.Request().Context(), actor, inc.KeyID)
		if err != nil {
			return err
		}
		v.ProviderStepUpNeeded = keyledger.ErrorCode(keyledger.CanProviderRevoke(actor, &k.EnvironmentInfo, k.OwnerID, s.store.Now())) == keyledger.ESTEPUP
	}
	p := s.page(c, fmt.Sprintf("Leak #%d", inc.ID), "leaks")
	p.Flash = leakFlash(c)
	return render(c, status, templates.LeakPage(p, v))
}

// leakFlash says what the last action did (post/redirect/get).
func leakFlash(c echo.Context) []templates.Flash {
	q := c.QueryParams()
	var out []templates.Flash
	switch {
	case q.Get("reported") != "":
		out = append(out, templates.Flash{Kind: "ok", Message: "This value is one of our keys. The incident is open, and the owner and the leads are being told now. Thank you."})
	case q.Get("joined") != "":
		out = append(out, templates.Flash{Kind: "ok", Message: "This value is one of our keys, and an incident on it was open already: your report was added to it."})
	case q.Get("revoked") != "":
		out = append(out, templates.Flash{Kind: "ok", Message: "Recorded as revoked; keyledger destroyed its copy of the leaked version."})
	case q.Get("waived") != "":
		out = append(out, templates.Flash{Kind: "ok", Message: "Incident waived. The reason is on the record."})
	}
	return out
}

// leakFailure re-renders the incident with the message of a refused
// action, or passes the error on.
func (s *Server) leakFailure(c echo.Context, err error, v templates.LeakView) error {
	status, _, msg, ok := formFailure(err)
	if !ok {
		return err
	}
	if v.WaiveError == "" {
		v.Message = msg
	}
	return s.renderLeak(c, status, v)
}

func (s *Server) leakRevoke(c echo.Context) error {
	id, err := leakID(c)
	if err != nil {
		return err
	}
	if err := s.store.RevokeLeakedVersion(c.Request().Context(), s.actor(c), id); err != nil {
		return s.leakFailure(c, err, templates.LeakView{})
	}
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/leaks/%d?revoked=1", id))
}

func (s *Server) leakWaive(c echo.Context) error {
	id, err := leakID(c)
	if err != nil {
		return err
	}
	reason := c.FormValue("reason")
	if err := s.store.WaiveLeak(c.Request().Context(), s.actor(c), id, reason); err != nil {
		v := templates.LeakView{WaiveReason: reason}
		if keyledger.ErrorCode(err) == keyledger.EINVALID {
			if v.WaiveError = keyledger.FieldErrors(err)["reason"]; v.WaiveError == "" {
				v.WaiveError = keyledger.ErrorMessage(err)
			}
		}
		return s.leakFailure(c, err, v)
	}
	return c.Redirect(http.StatusSeeOther, fmt.Sprintf("/leaks/%d?waived=1", id))
}
