package keyledger

import (
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of one leak check call (POST /api/v1/leaks/check). A scanner
// sends its candidates in batches of at most MaxLeakCandidates; a
// candidate longer than MaxLeakCandidateBytes is no API key.
const (
	MaxLeakCandidates     = 500
	MaxLeakCandidateBytes = 1024
)

// LeakHit is a candidate that is the value of a live key version: the
// key's metadata (which every active user may see), never the value.
type LeakHit struct {
	Index       int // position of the candidate in the request
	KeyID       string
	Name        string
	Environment string
	Project     string
	OwnerEmail  string
	Version     int
	Current     bool
}

// Leak reports (GET/POST /leaks/new, POST /api/v1/leaks): someone found a
// value out in the open and asks whether it is one of ours. The value is
// matched by the keyed fingerprint, as for CheckLeaks, and then dropped.
const (
	// MaxLeakWhereRunes caps "where was it seen" (free text or a URL).
	MaxLeakWhereRunes = 500
	// LeakReportLimit reports per person per LeakReportWindow: the lookup
	// is an oracle ("is this string one of our keys?"), so it is cheap to
	// use for a real find and slow to use for guessing.
	LeakReportLimit  = 10
	LeakReportWindow = time.Hour
)

// Where a leak incident came from.
const (
	LeakSourceReport    = "report"    // someone reported the value
	LeakSourceDuplicate = "duplicate" // someone who may not reveal the key registered its value
)

// Steps on an incident's timeline.
const (
	LeakStepReported = "reported"
	LeakStepNotified = "notified"
	LeakStepRotated  = "rotated"
	LeakStepRevoked  = "revoked"
	LeakStepWaived   = "waived"
	LeakStepClosed   = "closed"
)

// Why an incident closed.
const (
	LeakClosedResolved = "resolved" // rotated away and revoked
	LeakClosedWaived   = "waived"
)

// LeakReportInput is the report form: the value found and where.
type LeakReportInput struct {
	Value string
	Where string
}

// ValidateLeakReport checks a report. The value is only checked for size
// (anything pasted may be a key); where is text like any other, shown on
// pages and in notifications.
func ValidateLeakReport(in LeakReportInput) (LeakReportInput, error) {
	var v Validation
	switch {
	case strings.TrimSpace(in.Value) == "":
		v.Add("value", "Paste the value you found.")
	case len(in.Value) > MaxLeakCandidateBytes:
		v.Add("value", fmt.Sprintf("The value is longer than %d bytes; no API key is that long.", MaxLeakCandidateBytes))
	case !utf8.ValidString(in.Value):
		v.Add("value", "The value must be valid UTF-8 text.")
	}
	in.Where = strings.TrimSpace(in.Where)
	if in.Where == "" {
		v.Add("where", "Say where you saw it: a URL, or a few words (\"public gist\", \"CI log of build 812\").")
	} else if p := CheckName(in.Where, MaxLeakWhereRunes); p != "" {
		v.Add("where", "Where "+p+".")
	} else if id := ValueIdentity(in.Value); len(id) >= 8 && strings.Contains(in.Where, id) {
		// "where" is kept on the incident; the value must not be.
		v.Add("where", "Where must not contain the value itself: give the address or a description without it.")
	}
	return in, v.Err()
}

// LeakWhereURL returns where as a link target when it is an http(s) URL,
// or "" when it should be shown as plain text.
func LeakWhereURL(where string) string {
	u, err := url.Parse(where)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(where, " \t") {
		return ""
	}
	return u.String()
}

// LeakReport is the answer to a report: whether the value is a live key
// version and, when it is, the incident it opened or joined. It names the
// key by metadata (which every active user may see), never the value.
type LeakReport struct {
	Matched    bool
	IncidentID int64
	Joined     bool // an open incident for that version existed already
	KeyID      string
	KeyName    string
	Version    int
	Current    bool
}

// LeakIncident is one leaked key version and what was done about it.
type LeakIncident struct {
	ID          int64
	KeyID       string
	KeyName     string
	Project     string
	Environment string
	OwnerID     int64
	OwnerEmail  string
	KeyArchived bool
	Version     int
	// CurrentVersion is the key's current version now.
	CurrentVersion int
	Source         string
	ReportedBy     string // email
	Where          string
	OpenedAt       time.Time
	Reports        int
	RotatedAt      *time.Time
	RevokedAt      *time.Time
	NotifiedAt     *time.Time
	ClosedAt       *time.Time
	CloseReason    string
	WaiveReason    string
	ClosedBy       string
	// ProviderRevocable: the leaked version is alive at a connected
	// provider, as the provider key row ProviderKey, so "Revoke at
	// provider" can be offered for it.
	ProviderRevocable bool
	ProviderKey       int64
	Steps             []LeakStep
	Exposures         []LeakExposure
}

// Open reports whether the incident still needs work.
func (i *LeakIncident) Open() bool { return i.ClosedAt == nil }

// TimeToClose is how long the incident was open (0 while open).
func (i *LeakIncident) TimeToClose() time.Duration {
	if i.ClosedAt == nil {
		return 0
	}
	return i.ClosedAt.Sub(i.OpenedAt)
}

// LeakStep is one line of an incident's timeline.
type LeakStep struct {
	At   time.Time
	Step string
	By   string // email, or a system name
	Note string
}

// LeakExposure is one reveal or export of the leaked version, from the
// audit log: who had the value, and when.
type LeakExposure struct {
	At     time.Time
	Action string // key.reveal | key.export
	Email  string
	Name   string
	Active bool // false for a deactivated (or deleted) account
	Reason string
}

// LeakSummary is the leaks page and the dashboard's figures: open
// incidents, and the median time from report to revoked over closed ones.
type LeakSummary struct {
	Open            []LeakIncident
	Closed          []LeakIncident
	CompromisedKeys int
	// MedianToRevoke is the median time from opening to the version's
	// revocation over incidents that reached it; zero when none has.
	MedianToRevoke time.Duration
	Revoked        int
}
