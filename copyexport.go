package keyledger

// The quick copy: from the key list, one click reveals a key and puts the
// line that sets it (export OPENAI_API_KEY='…') on the clipboard, through
// the same audited reveal as the full form. Only a key that the full form
// would reveal without asking anything offers it.

// DefaultShell is the shell a person's quick copy uses until they choose
// another.
const DefaultShell = FormatBash

// ParseShellFormat accepts the name of a shell the reveal page offers
// (ShellFormats), exactly as written there.
func ParseShellFormat(s string) (ShellFormat, bool) {
	for _, f := range ShellFormats() {
		if string(f) == s {
			return f, true
		}
	}
	return "", false
}

// CheckShell validates a chosen shell; the error names the shell field.
func CheckShell(s string) (ShellFormat, error) {
	if f, ok := ParseShellFormat(s); ok {
		return f, nil
	}
	return "", &Error{Code: EINVALID, Message: "Choose one of the shells offered.",
		Fields: map[string]string{"shell": "Choose one of the shells offered."}}
}

// CanCopyWithoutForm decides whether a key of env may be revealed by the
// quick copy, which sends no reason and no step-up: only when the
// environment asks for neither. Whether the person may reveal at all is
// CanReveal's decision, made first.
func CanCopyWithoutForm(env Environment) error {
	switch {
	case env.ReasonRequired && env.Sensitive:
		return Errorf(EINVALID, "%s asks for a reason and for your password before a reveal: reveal this key from its page.", env.Name)
	case env.ReasonRequired:
		return Errorf(EINVALID, "%s asks for a reason before a reveal: reveal this key from its page.", env.Name)
	case env.Sensitive:
		return Errorf(EINVALID, "%s is sensitive and asks for your password before a reveal: reveal this key from its page.", env.Name)
	}
	return nil
}

// CopyShell is the shell of u's quick copy: their choice, or DefaultShell.
func (u *User) CopyShell() ShellFormat {
	if u != nil {
		if f, ok := ParseShellFormat(string(u.Shell)); ok {
			return f
		}
	}
	return DefaultShell
}
