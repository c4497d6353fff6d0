package templates

import (
	"fmt"
	"time"

	"github.com/keyledger/keyledger"
)

// LeakReportView is the report form (GET/POST /leaks/new) and its answer.
// It never holds the reported value: a form that comes back with an error
// asks for the value again rather than echoing it into the page.
type LeakReportView struct {
	Where   string
	Errors  map[string]string
	Message string
	// NoMatch: the value was checked and is no key in keyledger.
	NoMatch bool
}

// LeakListView is GET /leaks.
type LeakListView struct {
	Summary keyledger.LeakSummary
}

// LeakView is GET /leaks/:id.
type LeakView struct {
	I *keyledger.LeakIncident
	// CanAct: the owner, leads and admins (record the revocation, waive).
	CanAct bool
	// CanRotate: the viewer may rotate the key (the same people).
	CanRotate bool
	// SeesExposures: leads and admins see who revealed or exported the
	// leaked version.
	SeesExposures bool
	// ProviderStepUpNeeded: revoking at the provider will ask for a
	// password or code (a sensitive environment, no proof in the last 10
	// minutes), so the form carries the field, as on the key page.
	ProviderStepUpNeeded bool
	WaiveReason          string
	WaiveError           string
	Message              string
}

// leakURL is the incident's page.
func leakURL(id int64) string { return "/leaks/" + i64(id) }

// leakStepLabel is a timeline step as people say it.
func leakStepLabel(step string) string {
	switch step {
	case keyledger.LeakStepReported:
		return "Reported"
	case keyledger.LeakStepNotified:
		return "Owner and leads notified"
	case keyledger.LeakStepRotated:
		return "Rotated away"
	case keyledger.LeakStepRevoked:
		return "Revoked"
	case keyledger.LeakStepWaived:
		return "Waived"
	case keyledger.LeakStepClosed:
		return "Closed"
	}
	return step
}

// leakSourceLabel says how an incident was opened.
func leakSourceLabel(source string) string {
	if source == keyledger.LeakSourceDuplicate {
		return "duplicate registration"
	}
	return "report"
}

// leakStatus is an incident's state in a few words.
func leakStatus(i *keyledger.LeakIncident) string {
	switch {
	case i.CloseReason == keyledger.LeakClosedWaived:
		return "closed (waived)"
	case !i.Open():
		return "closed"
	case i.RotatedAt != nil && i.RevokedAt == nil:
		return "open: rotated, not revoked"
	case i.RotatedAt == nil && i.RevokedAt != nil:
		return "open: revoked, not rotated"
	}
	return "open: rotate and revoke"
}

// span is a duration as people read it: "3 h 20 min", "2 d 4 h".
func span(d time.Duration) string {
	d = d.Round(time.Minute)
	switch {
	case d < time.Minute:
		return "under a minute"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	case d < 24*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%d h", h)
		}
		return fmt.Sprintf("%d h %d min", h, m)
	}
	days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
	if h == 0 {
		return fmt.Sprintf("%d d", days)
	}
	return fmt.Sprintf("%d d %d h", days, h)
}

// Span is span for the web package (the dashboard's median).
func Span(d time.Duration) string { return span(d) }
