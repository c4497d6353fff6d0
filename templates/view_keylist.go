package templates

import (
	"time"

	"github.com/keyledger/keyledger"
)

// KeyRow is one row of the key list: a name in a project, with its keys
// (those matching the filter) in environment order.
type KeyRow struct {
	Name    string
	Project string
	Keys    []keyledger.Key
}

// keysIn are the row's keys in environment env (usually one; two when
// look-alike names registered before migration 010 share a row).
func (r KeyRow) keysIn(env int64) []*keyledger.Key {
	var out []*keyledger.Key
	for i := range r.Keys {
		if r.Keys[i].EnvironmentID == env {
			out = append(out, &r.Keys[i])
		}
	}
	return out
}

// providers names the row's providers, usually one.
func (r KeyRow) providers() string {
	out := ""
	for i, k := range r.Keys {
		if i > 0 && k.Provider == r.Keys[i-1].Provider {
			continue
		}
		if out != "" {
			out += ", "
		}
		out += k.Provider.Label()
	}
	return out
}

// Active says whether any filter narrows the list (sorting does not).
func (f KeyFilterView) Active() bool {
	return f.Environment != "" || f.Owner != "" || f.Provider != "" || f.Project != "" || f.Q != "" || f.Status != ""
}

// KeyStatuses are the status filter's choices, in menu order. A new
// status is one line here and one case in store.keyConditions.
func KeyStatuses() []Option {
	return []Option{
		{"overdue", "Overdue"},
		{"due_soon", "Due within 14 days"},
		{"ok", "Not due"},
		{"failing", "Failing verification"},
		{"compromised", "Compromised (leak open)"},
		{"never_verified", "Never verified"},
		{"orphaned", "Owner deactivated"},
		{"stale", "No reveal in 180 days"},
		{"archived", "Archived"},
	}
}

// keyCount is "5 of 42 keys", or "42 keys" when nothing is filtered.
func keyCount(v KeyListView) string {
	noun := "keys"
	if v.Filter.Status == "archived" {
		noun = "archived keys"
	}
	if !v.Filter.Active() {
		return plural(v.All, "key", "keys")
	}
	if v.All == 1 {
		noun = "key"
		if v.Filter.Status == "archived" {
			noun = "archived key"
		}
	}
	return itoa(v.Matching) + " of " + itoa(v.All) + " " + noun
}

// badge is a problem shown as a badge.
// TestID marks a badge tests look for by name (the compromised one);
// the others are found by class and text.
type badge struct{ Label, Class, TestID string }

// problems are a key's problems, shown as badges: red for overdue and
// failing verification, amber for due soon. Everything else is plain text
// (cellNotes), so the eye goes to what needs doing.
func problems(now time.Time, k *keyledger.Key) []badge {
	if k.Archived() {
		return nil
	}
	var out []badge
	if k.Compromised() {
		out = append(out, badge{"Compromised", "bad", "compromised-badge"})
	}
	switch rotationStatus(now, k) {
	case keyledger.RotationOverdue:
		out = append(out, badge{overdueLabel(now, k), "bad", ""})
	case keyledger.RotationDueSoon:
		out = append(out, badge{"Due in " + daysUntil(now, k.RotateBy), "warn", ""})
	}
	if keyledger.VerifyFailing(k.VerifyResult) {
		out = append(out, badge{"Failing: " + verifyWord(k.VerifyResult), "bad", ""})
	}
	return out
}

// cellNotes is the plain-text part of a cell: what is not a problem.
func cellNotes(now time.Time, k *keyledger.Key) string {
	if k.Archived() {
		return "archived " + datetimePtr(k.ArchivedAt)
	}
	var notes string
	add := func(s string) {
		if notes != "" {
			notes += " · "
		}
		notes += s
	}
	if rotationStatus(now, k) == keyledger.RotationOK {
		add("rotate by " + date(k.RotateBy))
	}
	switch {
	case k.LastVerifiedAt == nil:
		add("never verified")
	case !keyledger.VerifyFailing(k.VerifyResult):
		add(verifyWord(k.VerifyResult) + " " + date(*k.LastVerifiedAt))
	}
	if !k.OwnerActive {
		add("owner deactivated")
	}
	return notes
}

func verifyWord(result string) string {
	switch result {
	case keyledger.VerifyOK:
		return "verified"
	case keyledger.VerifyManual:
		return "verified by hand"
	}
	out := []byte(result)
	for i, c := range out {
		if c == '_' {
			out[i] = ' '
		}
	}
	return string(out)
}

// daysUntil rounds up: a key due in 9.5 days is due in 10.
func daysUntil(now, t time.Time) string {
	d := int((t.Sub(now) + 24*time.Hour - 1) / (24 * time.Hour))
	if d < 1 {
		return "less than a day"
	}
	return plural(d, "day", "days")
}

// missingLabel is what a screen reader hears for an empty cell.
func missingLabel(v KeyListView, env string) string {
	if v.Filter.Active() {
		return "No " + env + " key matches the filters"
	}
	return "No " + env + " key"
}
