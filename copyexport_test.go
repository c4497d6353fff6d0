package keyledger

import (
	"strings"
	"testing"
)

func TestCanCopyWithoutForm(t *testing.T) {
	for _, c := range []struct {
		env  Environment
		want bool
	}{
		{Environment{Name: "development", RevealPolicy: RevealAnyUser}, true},
		{Environment{Name: "staging", RevealPolicy: RevealAnyUser, ReasonRequired: true}, false},
		{Environment{Name: "production", RevealPolicy: RevealOwnerLeadsAdmins, ReasonRequired: true, Sensitive: true}, false},
		// A sensitive environment without a reason still needs step-up:
		// only the full form asks for it.
		{Environment{Name: "secure-dev", RevealPolicy: RevealAnyUser, Sensitive: true}, false},
		// The policy of who may reveal is CanReveal's business, not this one's.
		{Environment{Name: "team", RevealPolicy: RevealOwnerLeadsAdmins}, true},
	} {
		err := CanCopyWithoutForm(c.env)
		if (err == nil) != c.want {
			t.Errorf("%s: CanCopyWithoutForm = %v, want allowed=%v", c.env.Name, err, c.want)
		}
		if err != nil {
			if ErrorCode(err) != EINVALID {
				t.Errorf("%s: code %s, want %s", c.env.Name, ErrorCode(err), EINVALID)
			}
			if msg := ErrorMessage(err); msg == "" || !strings.Contains(msg, c.env.Name) {
				t.Errorf("%s: message %q does not name the environment", c.env.Name, msg)
			}
		}
	}
}

func TestParseShellFormat(t *testing.T) {
	for _, f := range ShellFormats() {
		if got, ok := ParseShellFormat(string(f)); !ok || got != f {
			t.Errorf("ParseShellFormat(%q) = %q, %v", f, got, ok)
		}
	}
	for _, bad := range []string{"", "zsh", "env-file", "BASH ", "sh"} {
		if got, ok := ParseShellFormat(bad); ok {
			t.Errorf("ParseShellFormat(%q) = %q, accepted", bad, got)
		}
	}
	if DefaultShell != FormatBash {
		t.Errorf("DefaultShell = %q", DefaultShell)
	}
}
