// Package templates renders keyledger's pages with templ. It receives
// plain view data and never touches the database or HTTP; the web package
// fills the data in.
package templates

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyledger/keyledger"
)

// Page is what every page's layout needs.
type Page struct {
	Title     string
	User      *keyledger.User
	CSRF      string
	RequestID string
	// Asset maps a static file name to its content-hashed URL path.
	Asset func(name string) string
	Flash []Flash
	// Nav marks the current section for the navigation.
	Nav string
	Now time.Time
}

// Flash is a one-off message at the top of a page.
type Flash struct {
	Kind    string // ok | warn | error
	Message string
}

// KeyListView is the key list with its filters: one row per key name and
// project, one column per environment.
type KeyListView struct {
	Rows []KeyRow
	// Matching keys of All ("5 of 42 keys"); All is 0 only when there
	// are no keys at all (first run).
	Matching, All int
	Page, Pages   int
	Filter        KeyFilterView
	// Columns are the environments shown as columns, in their configured
	// order: all of them, or the one filtered on.
	Columns      []keyledger.Environment
	Environments []keyledger.Environment
	Owners       []keyledger.User
	Projects     []string
	Providers    []string
}

// KeyFilterView echoes the list's query parameters.
type KeyFilterView struct {
	Environment string
	Owner       string
	Provider    string
	Project     string
	Q           string
	Status      string
	Sort        string
	Desc        bool
}

// Query renders the filter as a query string, with overrides.
func (f KeyFilterView) Query(overrides ...string) string {
	v := url.Values{}
	set := func(k, val string) {
		if val != "" {
			v.Set(k, val)
		}
	}
	set("environment", f.Environment)
	set("owner", f.Owner)
	set("provider", f.Provider)
	set("project", f.Project)
	set("q", f.Q)
	set("status", f.Status)
	set("sort", f.Sort)
	if f.Desc {
		v.Set("dir", "desc")
	}
	for i := 0; i+1 < len(overrides); i += 2 {
		if overrides[i+1] == "" {
			v.Del(overrides[i])
		} else {
			v.Set(overrides[i], overrides[i+1])
		}
	}
	if len(v) == 0 {
		return ""
	}
	return "?" + v.Encode()
}

// SortLink toggles the direction when the column is already the sort.
func (f KeyFilterView) SortLink(col string) string {
	dir := ""
	if f.Sort == col && !f.Desc {
		dir = "desc"
	}
	return "/keys" + f.Query("sort", col, "dir", dir, "page", "")
}

// KeyForm is the register or edit form with its errors.
type KeyForm struct {
	Input        keyledger.KeyInput
	Errors       map[string]string
	Message      string
	Environments []keyledger.Environment
	Owners       []keyledger.User
	Key          *keyledger.Key // set when editing
}

// KeyDetailView is a key's page.
type KeyDetailView struct {
	Key      *keyledger.Key
	Versions []keyledger.KeyVersion
	// Viewers is "who has seen this key", one line per person.
	Viewers []keyledger.KeyViewer
	CanEdit bool
	// RevealAllowed is false with RevealRefusal saying why.
	RevealAllowed bool
	RevealRefusal string
	ReasonError   string
	Reason        string
	// CanVerify: the provider can be checked automatically.
	CanVerify bool
	NoteError string
	Note      string
	Now       time.Time
	// StepUpNeeded: the environment is sensitive and this session's last
	// password or code entry is older than keyledger.StepUpWindow, so the
	// reveal form asks for one.
	StepUpNeeded bool
	StepUpError  string
	// StepUpMessage explains a refusal for want of a step-up.
	StepUpMessage string
	// AtProvider is what connected providers list for this key: the
	// linked provider key first, then older versions still there.
	AtProvider []keyledger.KeyAtProvider
	// CanProviderRevoke: the person may revoke at the provider (owner,
	// leads, admins) and keyledger has an admin client.
	CanProviderRevoke bool
	// ProviderStepUpNeeded: revoking at the provider will ask for a
	// password or code first (a sensitive environment, no fresh proof).
	ProviderStepUpNeeded bool
	// ProviderRevoke is the state of the revoke form just posted.
	ProviderRevoke ProviderRevokeForm
	// Rotation is the key's automated rotation at its provider.
	Rotation keyledger.ProviderRotation
	// RotateRefusal says why keyledger cannot rotate this key at the
	// provider ("" when it can).
	RotateRefusal string
	// CanRotateAtProvider: the person may turn automated rotation on or
	// off and rotate now (leads, admins) and the admin client creates
	// keys.
	CanRotateAtProvider bool
	// RotateFailure: a rotation or switch just posted was refused.
	RotateFailure string
}

// ProviderRevokeForm is a posted "revoke at the provider" form coming
// back with an error: which provider key, what was typed, what went
// wrong (Failure: the provider's refusal, in plain words).
type ProviderRevokeForm struct {
	ProviderKey   int64
	Reason        string
	ReasonError   string
	StepUpError   string
	StepUpMessage string
	Failure       string
}

// RevealView shows a revealed value once.
type RevealView struct {
	Key     *keyledger.Key
	Version int
	Value   string
	VarName string
	Lines   []PasteLine
}

// PasteLine is a ready-to-paste assignment, or why there is none.
type PasteLine struct {
	ID      string
	Label   string
	Line    string
	Problem string
}

// AuditView is the audit log page.
type AuditView struct {
	Events       []keyledger.AuditEvent
	Filter       AuditFilterView
	NextBeforeID int64
	Actions      []string
	Environments []keyledger.Environment
	Keys         []AuditKeyChoice
	// Now is the store's clock, for "3 hours ago".
	Now time.Time
}

// AuditKeyChoice is one key in the audit filter's key menu.
type AuditKeyChoice struct {
	ID, Label string
}

// AuditFilterView echoes the audit page's query.
type AuditFilterView struct {
	Actor       string
	Key         string
	Action      string
	Environment string
	Since       string
	Until       string
}

// Query renders the filter with a page cursor.
func (f AuditFilterView) Query(before int64) string {
	v := url.Values{}
	for k, val := range map[string]string{"actor": f.Actor, "key": f.Key, "action": f.Action, "environment": f.Environment, "since": f.Since, "until": f.Until} {
		if val != "" {
			v.Set(k, val)
		}
	}
	if before > 0 {
		v.Set("before", strconv.FormatInt(before, 10))
	}
	return "/audit?" + v.Encode()
}

// ErrorView is an error page.
type ErrorView struct {
	Status  int
	Heading string
	Message string
	// Retry, when set, sends the refused form again with what the person
	// typed (a form refused for an expired token).
	Retry *RetryForm
}

// RetryForm is a refused form offered again.
type RetryForm struct {
	Action string
	Button string
	Fields []RetryField
}

// RetryField is one kept field; the ones not Visible travel hidden.
type RetryField struct {
	Name, Label, Value string
	Visible            bool
}

// LoginView is the sign-in form.
type LoginView struct {
	Email   string
	Message string
	Next    string
	// Notice is a neutral message, e.g. after setting a password.
	Notice string
}

func date(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02")
}

func datetime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// isoTime is a time for a <time datetime=…> attribute.
func isoTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// relativeTime says how long before now t was ("3 hours ago"), in the
// largest whole unit; the exact time goes in the title beside it.
func relativeTime(now, t time.Time) string {
	d := now.Sub(t)
	suffix := " ago"
	if d < 0 {
		d, suffix = -d, " from now"
	}
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one + suffix
		}
		return strconv.FormatInt(n, 10) + " " + one + "s" + suffix
	}
	day := 24 * time.Hour
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return unit(int64(d/time.Minute), "minute")
	case d < day:
		return unit(int64(d/time.Hour), "hour")
	case d < 30*day:
		return unit(int64(d/day), "day")
	case d < 365*day:
		return unit(int64(d/(30*day)), "month")
	}
	return unit(int64(d/(365*day)), "year")
}

func datetimePtr(t *time.Time) string {
	if t == nil {
		return ""
	}
	return datetime(*t)
}

func itoa(n int) string { return strconv.Itoa(n) }

func keyURL(k *keyledger.Key) string { return "/keys/" + k.ID }

func rotationStatus(now time.Time, k *keyledger.Key) keyledger.RotationStatus {
	return keyledger.RotationStatusAt(now, k.RotateBy)
}

func rotationLabel(s keyledger.RotationStatus) string {
	switch s {
	case keyledger.RotationOverdue:
		return "overdue"
	case keyledger.RotationDueSoon:
		return "due soon"
	}
	return "ok"
}

func verifyBadge(k *keyledger.Key) (string, string) {
	if k.LastVerifiedAt == nil {
		return "never checked", "warn"
	}
	label := strings.ReplaceAll(k.VerifyResult, "_", " ") + " " + date(*k.LastVerifiedAt)
	switch {
	case k.VerifyResult == keyledger.VerifyOK || k.VerifyResult == keyledger.VerifyManual:
		return label, "good"
	case keyledger.VerifyFailing(k.VerifyResult):
		return label, "bad"
	}
	// Rate limited or unreachable says nothing about the key itself.
	return label, "warn"
}

func plural(n int, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}

// RotateForm is the rotation form.
type RotateForm struct {
	Key       *keyledger.Key
	GraceDays string
	Version   int
	Errors    map[string]string
	Message   string
}

// RotationGroup is one section of the rotation page.
type RotationGroup struct {
	Status string
	Title  string
	Empty  string
	Keys   []keyledger.Key
	Total  int
}

// Option is a select option.
type Option struct {
	Value string
	Label string
}

// ExportView is the export page.
type ExportView struct {
	Environment    string
	Project        string
	Format         string
	Reason         string
	ReasonRequired bool
	Environments   []keyledger.Environment
	Projects       []string
	Formats        []Option
	Errors         map[string]string
	Message        string
	Previewed      bool
	Included       []RefusedRow
	Refused        []RefusedRow
	// StepUpNeeded: the environment is sensitive and this session's last
	// password or code entry is too old; the form asks for one (field
	// step_up, errors under Errors["step_up"]).
	StepUpNeeded bool
}

// RefusedRow is a key in the export preview.
type RefusedRow struct {
	Name    string
	Project string
	Owner   string
	Reason  string
	// Notes are, for a key in the file, the formats that cannot carry
	// its value ("not in .env: contains a line break").
	Notes []string
}

func graceLabel(now time.Time, v keyledger.KeyVersion) string {
	if v.DestroyAfter == nil {
		return ""
	}
	return "superseded, destroyed on " + date(*v.DestroyAfter)
}
