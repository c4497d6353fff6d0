package keyledger

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Limits on key fields. MaxValueBytes is generous for PEM-encoded private
// keys and JSON service-account files while still refusing pasted garbage.
const (
	MaxValueBytes       = 8 << 10
	MaxNameRunes        = 200
	MaxProjectRunes     = 100
	MaxProviderRunes    = 50
	MaxScopeRunes       = 500
	MaxDescriptionRunes = 2000
	MaxReasonRunes      = 500
	MaxRotationDays     = 3650
)

// Key is a named secret's metadata. The value lives only in encrypted key
// versions and is never a field here.
type Key struct {
	ID              string
	Name            string
	Provider        Provider
	Project         string
	Environment     string
	EnvironmentID   int64
	OwnerID         int64
	OwnerEmail      string
	OwnerName       string
	OwnerActive     bool
	Description     string
	Scope           string
	MaskedHint      string
	CurrentVersion  int
	RotationDays    int // 0: the environment's default
	EffectiveDays   int // the interval that applies
	RotateBy        time.Time
	LastRotatedAt   time.Time
	LastVerifiedAt  *time.Time
	VerifyResult    string
	VerifyMessage   string
	CreatedAt       time.Time
	CreatedByEmail  string
	UpdatedAt       time.Time
	ArchivedAt      *time.Time
	LastRevealedAt  *time.Time
	LastRevealedBy  string
	RevealCount     int
	EnvironmentInfo Environment
	// OpenLeak is the id of an open leak incident on one of its
	// versions (the oldest), or 0.
	OpenLeak int64
}

// Compromised reports whether a leak incident is open on the key.
func (k *Key) Compromised() bool { return k.OpenLeak != 0 }

// Archived reports whether the key was retired.
func (k *Key) Archived() bool { return k.ArchivedAt != nil }

// KeyVersion is one stored value of a key. Destroyed versions keep their
// row for history but have lost their ciphertext.
type KeyVersion struct {
	Version      int
	CreatedAt    time.Time
	CreatedBy    string
	SupersededAt *time.Time
	DestroyAfter *time.Time
	DestroyedAt  *time.Time
	MaskedHint   string
}

// Current reports whether this is the version in use.
func (v *KeyVersion) Current() bool { return v.SupersededAt == nil && v.DestroyedAt == nil }

// InGrace reports whether a superseded version can still be revealed or
// rolled back to at now.
func (v *KeyVersion) InGrace(now time.Time) bool {
	return v.SupersededAt != nil && v.DestroyedAt == nil && v.DestroyAfter != nil && now.Before(*v.DestroyAfter)
}

// KeyInput is a registration or an edit as typed into the form or the API:
// environment by name and owner by email, resolved by the store.
type KeyInput struct {
	Name         string
	Provider     string
	Project      string
	Environment  string
	OwnerEmail   string
	Value        string
	Scope        string
	RotationDays string
	Description  string
	// KeepWhitespace: the person confirmed that the value's leading or
	// trailing whitespace belongs to it (the JSON API always does).
	KeepWhitespace bool
}

// NewKey is a validated registration.
type NewKey struct {
	Name         string
	Provider     Provider
	Project      string
	Environment  string
	OwnerEmail   string
	Value        string
	Scope        string
	RotationDays int
	Description  string
}

// KeyEdit is a validated metadata edit. The value changes only by rotation.
type KeyEdit struct {
	Project      string
	OwnerEmail   string
	Scope        string
	RotationDays int
	Description  string
}

// ValidateNewKey checks a registration and returns it normalized: provider
// detected from the value when left empty, surrounding whitespace trimmed
// from the metadata; the value itself is never changed (see CheckValue).
func ValidateNewKey(in KeyInput) (NewKey, error) {
	var v Validation
	out := NewKey{
		Name:        strings.TrimSpace(in.Name),
		Project:     normalizeProject(in.Project),
		Environment: NormalizeEnvironmentName(in.Environment),
		OwnerEmail:  NormalizeEmail(in.OwnerEmail),
		Scope:       strings.TrimSpace(in.Scope),
		Description: strings.TrimSpace(in.Description),
	}
	requiredText(&v, "name", "Name", out.Name, MaxNameRunes)
	requiredText(&v, "project", "Project", out.Project, MaxProjectRunes)
	if out.Environment == "" {
		v.Add("environment", "Choose an environment.")
	} else if p := checkText(out.Environment, 50, false); p != "" {
		v.Add("environment", "Environment "+p+".")
	}
	if out.OwnerEmail == "" {
		v.Add("owner", "Choose an owner.")
	} else if p := CheckEmail(out.OwnerEmail); p != "" {
		v.Add("owner", "Owner "+p+".")
	}
	optionalText(&v, "scope", "Scope", out.Scope, MaxScopeRunes, false)
	optionalText(&v, "description", "Description", out.Description, MaxDescriptionRunes, true)
	out.RotationDays = parseRotationDays(&v, in.RotationDays)

	value, problem := CheckValue(in.Value, in.KeepWhitespace)
	if problem != "" {
		v.Add("value", problem)
		if problem == ValueWhitespaceProblem {
			v.Add("keep_whitespace", KeepWhitespaceHint)
		}
	}
	out.Value = value

	prov := strings.ToLower(strings.TrimSpace(in.Provider))
	switch {
	case prov != "":
		if p := checkText(prov, MaxProviderRunes, false); p != "" {
			v.Add("provider", "Provider "+p+".")
		} else {
			out.Provider = Provider(prov)
		}
	case problem == "":
		// Detection looks past surrounding whitespace; the value keeps it.
		out.Provider = DetectProvider(strings.TrimSpace(value))
		if out.Provider == "" {
			out.Provider = ProviderOther
		}
	}
	return out, v.Err()
}

// ValidateKeyEdit checks a metadata edit.
func ValidateKeyEdit(in KeyInput) (KeyEdit, error) {
	var v Validation
	out := KeyEdit{
		Project:     normalizeProject(in.Project),
		OwnerEmail:  NormalizeEmail(in.OwnerEmail),
		Scope:       strings.TrimSpace(in.Scope),
		Description: strings.TrimSpace(in.Description),
	}
	requiredText(&v, "project", "Project", out.Project, MaxProjectRunes)
	if out.OwnerEmail == "" {
		v.Add("owner", "Choose an owner.")
	} else if p := CheckEmail(out.OwnerEmail); p != "" {
		v.Add("owner", "Owner "+p+".")
	}
	optionalText(&v, "scope", "Scope", out.Scope, MaxScopeRunes, false)
	optionalText(&v, "description", "Description", out.Description, MaxDescriptionRunes, true)
	out.RotationDays = parseRotationDays(&v, in.RotationDays)
	return out, v.Err()
}

// ValueWhitespaceProblem is CheckValue's answer to a value with leading or
// trailing whitespace that the person has not confirmed.
const ValueWhitespaceProblem = "The value starts or ends with whitespace (a space, tab or line break). Nothing was stored: paste it again without the whitespace, or tick the box below if the whitespace is part of the key."

// KeepWhitespaceHint labels the confirmation a form asks for then.
const KeepWhitespaceHint = "Keep the whitespace: store the value exactly as pasted."

// CheckValue returns the value exactly as given, with a problem, or ""
// when fine. A secret is never altered: a value stored differently from
// what was pasted fails far from here, at the provider. Surrounding
// whitespace is usually dragged along by a paste, so unless keepWhitespace
// says the person confirmed it, such a value is refused with
// ValueWhitespaceProblem rather than trimmed. Inner newlines are kept: PEM
// keys and JSON credentials span lines.
func CheckValue(raw string, keepWhitespace bool) (string, string) {
	if !utf8.ValidString(raw) {
		return "", "The value must be valid UTF-8 text."
	}
	switch {
	case strings.TrimSpace(raw) == "":
		return "", "Paste the key's value."
	case len(raw) > MaxValueBytes:
		return "", "The value is too long (" + strconv.Itoa(len(raw)) + " bytes, at most " + strconv.Itoa(MaxValueBytes) + ")."
	}
	if p := checkText(raw, MaxValueBytes, true); p != "" {
		return "", "The value " + p + "."
	}
	if !keepWhitespace && strings.TrimSpace(raw) != raw {
		return "", ValueWhitespaceProblem
	}
	return raw, ""
}

// ValueIdentity is the part of a value that tells one key from another:
// the value without surrounding whitespace. The value is stored exactly,
// but duplicate detection (the fingerprint) and the masked hint look at
// this, so "sk-1" and a confirmed "sk-1\n" are the same key, as they were
// when values were trimmed (every fingerprint stored then is of a trimmed
// value, so old and new fingerprints still match).
func ValueIdentity(value string) string { return strings.TrimSpace(value) }

// DuplicateValue is the answer to storing a value that a live key already
// holds (a registration, or a rotation to it). Only someone who may reveal
// that key (CanReveal) is told which key it is: naming it to anyone else
// would tell them which production key a value they found belongs to.
func DuplicateValue(mayReveal bool, name, project, env string, rotation bool) *Error {
	var msg string
	switch {
	case mayReveal && rotation:
		msg = fmt.Sprintf("This value is already stored as %q (%s, %s). A rotation needs a new key from the provider.", name, project, env)
	case mayReveal:
		msg = fmt.Sprintf("This value is already stored as %q (%s, %s). One key per purpose and environment: create a new key at the provider instead of reusing one.", name, project, env)
	default:
		msg = "This value is already stored in keyledger, under a key you may not see. Do not use it: ask a lead, who has been told, and create a new key at the provider."
	}
	return &Error{Code: ECONFLICT, Message: "This value is already stored.", Fields: map[string]string{"value": msg}}
}

// CheckReason validates a reveal reason; required says whether the
// environment's policy asks for one.
func CheckReason(reason string, required bool) (string, error) {
	reason = strings.TrimSpace(reason)
	if Blank(reason) {
		// Zero-width spaces and the like are not a reason, and are not
		// kept as one.
		reason = ""
	}
	var v Validation
	if reason == "" && required {
		v.Add("reason", "This environment asks for a reason before revealing a key: type one (invisible characters do not count).")
	} else if p := checkText(reason, MaxReasonRunes, false); p != "" {
		v.Add("reason", "Reason "+p+".")
	}
	return reason, v.Err()
}

// normalizeProject stores a project in NFKC form: a project is compared
// exactly (it is part of a key's unique name), so "ｃｈｅｃｋｏｕｔ" typed with
// full-width letters must become the project "checkout", not a look-alike
// beside it. Key names are kept as typed and compared normalized (the
// database's keyledger_name_key).
func normalizeProject(s string) string {
	return strings.TrimSpace(norm.NFKC.String(s))
}

func requiredText(v *Validation, field, label, s string, maxLen int) {
	if s == "" {
		v.Add(field, label+" is required.")
		return
	}
	if p := CheckName(s, maxLen); p != "" {
		v.Add(field, label+" "+p+".")
	}
}

func optionalText(v *Validation, field, label, s string, maxLen int, multiline bool) {
	if p := checkText(s, maxLen, multiline); p != "" {
		v.Add(field, label+" "+p+".")
	}
}

func parseRotationDays(v *Validation, s string) int {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > MaxRotationDays {
		v.Add("rotation_days", "Rotation interval must be a whole number of days from 1 to "+strconv.Itoa(MaxRotationDays)+", or empty for the environment's default.")
		return 0
	}
	return n
}

// RotationStatus classifies a key's due date.
type RotationStatus string

// The rotation statuses, worst first.
const (
	RotationOverdue RotationStatus = "overdue"
	RotationDueSoon RotationStatus = "due_soon"
	RotationOK      RotationStatus = "ok"
)

// DueSoonWindow is how far ahead a rotation counts as due soon.
const DueSoonWindow = 14 * 24 * time.Hour

// RotateBy is the date a key must be rotated by.
func RotateBy(lastRotated time.Time, days int) time.Time {
	return lastRotated.AddDate(0, 0, days)
}

// RotationStatusAt classifies rotateBy relative to now.
func RotationStatusAt(now, rotateBy time.Time) RotationStatus {
	switch {
	case !now.Before(rotateBy):
		return RotationOverdue
	case rotateBy.Sub(now) <= DueSoonWindow:
		return RotationDueSoon
	}
	return RotationOK
}

// Grace periods for superseded versions after a rotation.
const (
	DefaultGraceDays = 7
	MaxGraceDays     = 90
)

// RotateInput is a rotation as typed into the form or the API.
type RotateInput struct {
	Value     string
	GraceDays string
	// ExpectedVersion is the version the person saw when they decided to
	// rotate; if another rotation got there first, theirs is refused
	// rather than silently stacked on top. Empty: the current version.
	ExpectedVersion string
	// KeepWhitespace is as in KeyInput.
	KeepWhitespace bool
}

// Rotation is a validated rotation.
type Rotation struct {
	Value           string
	GraceDays       int
	ExpectedVersion int
}

// ValidateRotation checks a rotation.
func ValidateRotation(in RotateInput) (Rotation, error) {
	var v Validation
	out := Rotation{GraceDays: DefaultGraceDays}
	value, problem := CheckValue(in.Value, in.KeepWhitespace)
	if problem != "" {
		v.Add("value", problem)
		if problem == ValueWhitespaceProblem {
			v.Add("keep_whitespace", KeepWhitespaceHint)
		}
	}
	out.Value = value
	if g := strings.TrimSpace(in.GraceDays); g != "" {
		n, err := strconv.Atoi(g)
		if err != nil || n < 0 || n > MaxGraceDays {
			v.Add("grace_days", "Grace period must be a whole number of days from 0 to "+strconv.Itoa(MaxGraceDays)+".")
		} else {
			out.GraceDays = n
		}
	}
	if e := strings.TrimSpace(in.ExpectedVersion); e != "" {
		n, err := strconv.Atoi(e)
		if err != nil || n < 1 {
			v.Add("version", "The form's version field is damaged; reload the page.")
		} else {
			out.ExpectedVersion = n
		}
	}
	return out, v.Err()
}

// RevealRecord is one reveal or export of a key, as shown in "who has
// seen this key".
type RevealRecord struct {
	Time       time.Time
	Email      string
	Version    int
	Reason     string
	Action     string
	IP         string
	StillValid bool // the version revealed is still the current one
}

// KeyViewer is one person in "who has seen this key": their reveals and
// exports of the key collapsed into one line.
type KeyViewer struct {
	Email string
	Name  string
	// Active is false for a deactivated (or unknown) account.
	Active  bool
	Reveals int // reveals and exports together
	Exports int
	Last    time.Time
	// LastReason and LastVersion are those of the latest reveal.
	LastReason  string
	LastVersion int
	StillValid  bool // the latest version they saw is still the current one
}
