package templates

import (
	"strconv"

	"github.com/keyledger/keyledger"
)

// CopyExportView is the quick copy of one key: a button that reveals the
// key through its reveal POST and puts the line that sets it in the
// person's shell on the clipboard (static/app.js). It carries no value.
type CopyExportView struct {
	KeyID       string
	KeyName     string
	Environment string
	Shell       keyledger.ShellFormat
	CSRF        string
	// Offered: the person may reveal the key and its environment asks for
	// no reason and no step-up; otherwise the component renders nothing
	// and the key page's full form is the way.
	Offered bool
}

// NewCopyExport builds the quick copy of k (of environment env, whose
// reveal policy decides) for the page's person. The store decides again
// when the button is pressed (store.RevealForCopy); this only spares the
// person a button that would be refused.
func NewCopyExport(p Page, k *keyledger.Key, env keyledger.Environment) CopyExportView {
	v := CopyExportView{KeyID: k.ID, KeyName: k.Name, Environment: k.Environment, Shell: p.User.CopyShell(), CSRF: p.CSRF}
	v.Offered = p.User != nil && !k.Archived() && env.Name == k.Environment &&
		keyledger.CanReveal(p.User, env, k.OwnerID) == nil && keyledger.CanCopyWithoutForm(env) == nil
	return v
}

// Visible is the button's text: short enough for a table cell.
func (v CopyExportView) Visible() string {
	if v.Shell == keyledger.FormatDotenv {
		return "Copy .env"
	}
	return "Copy " + shellWord(v.Shell) + " export"
}

// Rest completes the button's accessible name after Visible: "Copy bash
// export line for OpenAI (development)".
func (v CopyExportView) Rest() string {
	return " line for " + v.KeyName + " (" + v.Environment + ")"
}

// shellWord is the shell's one-word name, for the narrow button.
func shellWord(f keyledger.ShellFormat) string {
	switch f {
	case keyledger.FormatBash:
		return "bash"
	case keyledger.FormatCmd:
		return "cmd"
	}
	return f.Label()
}

// CopyExport is the quick copy of k in the list, k's environment looked
// up among the list's environments.
func (v KeyListView) CopyExport(p Page, k *keyledger.Key) CopyExportView {
	for _, e := range v.Environments {
		if e.Name == k.Environment {
			return NewCopyExport(p, k, e)
		}
	}
	return CopyExportView{}
}

// ShellChoice is the form that sets the person's quick-copy shell.
type ShellChoice struct {
	Current keyledger.ShellFormat
	CSRF    string
	// ID prefixes the field's id, so two forms could share a page.
	ID string
}

// ShellOptions lists the shells to choose from.
func (ShellChoice) ShellOptions() []keyledger.ShellFormat { return keyledger.ShellFormats() }

// KeyListAudience names everything of the viewer u that KeyListBody reads,
// for a list whose environment columns are columns: viewers with the same
// audience get the same body, but for the CSRF token. The role (the
// first-run hints, and who may reveal in an owner-only environment), the
// shell of the quick copy, and the person only where a column offers the
// quick copy (CanCopyWithoutForm) to a key's owner and u's role alone does
// not decide it. TestKeyListAudienceCoversTheBody renders the body for
// many viewers to hold this to the templates.
func KeyListAudience(u *keyledger.User, columns []keyledger.Environment) string {
	a := string(u.Role) + "/" + string(u.CopyShell())
	if u.Role.AtLeastLead() {
		return a
	}
	for _, e := range columns {
		if e.RevealPolicy != keyledger.RevealAnyUser && keyledger.CanCopyWithoutForm(e) == nil {
			return a + "/" + strconv.FormatInt(u.ID, 10)
		}
	}
	return a
}
