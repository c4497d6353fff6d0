package keyledger_test

import (
	"strconv"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/keyledger/keyledger"
)

// FuzzKeyForm feeds arbitrary strings into every field of the key form.
// ValidateNewKey must never panic; it refuses only with a validation error
// that names fields; and what it accepts is the input itself, trimmed (the
// value never: it is stored exactly, and surrounding whitespace is refused
// unless confirmed with KeepWhitespace)
// (environment and owner also lower-cased), free of NUL and control
// characters (value and description may span lines), within the limits,
// and accepted unchanged when validated again (so a stored key re-validates
// as itself).
func FuzzKeyForm(f *testing.F) {
	type form struct{ name, provider, project, env, owner, value, scope, days, desc string }
	for _, in := range []form{
		{"OpenAI checkout", "", "checkout", "development", "dev@example.com", "sk-proj-abc123", "", "", ""},
		{"  Stripe  ", "stripe", " billing ", " Production ", " Lead@Example.COM ", "\tsk_live_x\n", "read-only", " 90 ", "line 1\nline 2"},
		{"a\x00b", "", "p", "development", "a@b.c", "v", "", "", ""},
		{"tab\there", "", "p", "staging", "a@b.c", "v", "", "0", ""},
		{"ok", "", "p", "development", "a@b.c", "-----BEGIN KEY-----\nabc\n-----END KEY-----\n", "", "3651", "\r\n"},
		{"\u0085name\u0085", "", "p", "development", "a@b.c", "v", "", "", ""},
		{"na\u2028me", "GitHub", "p", "development", "a@b.c", "ghp_x", "", "-1", ""},
		{"\xff", "", "\xfe", "dev", "x", "\xc3", "", "1e3", ""},
		{"İstanbul", "", "Ωmega", "İ", "İ@x.io", "ß", "", "+7", "\x7f"},
		{strings.Repeat("n", 201), "", "p", "development", "a@b.c", strings.Repeat("v", 8193), "", "", ""},
	} {
		f.Add(in.name, in.provider, in.project, in.env, in.owner, in.value, in.scope, in.days, in.desc)
	}
	f.Fuzz(func(t *testing.T, name, provider, project, env, owner, value, scope, days, desc string) {
		in := keyledger.KeyInput{Name: name, Provider: provider, Project: project, Environment: env, OwnerEmail: owner,
			Value: value, Scope: scope, RotationDays: days, Description: desc}
		if strings.TrimSpace(value) != value {
			// Unconfirmed surrounding whitespace is refused on the value
			// field, with the box to confirm it; confirmed, it is kept.
			_, err := keyledger.ValidateNewKey(in)
			if fields := keyledger.FieldErrors(err); strings.TrimSpace(value) != "" && utf8.ValidString(value) && fields["value"] == "" {
				t.Fatalf("value %q with surrounding whitespace accepted unconfirmed", value)
			}
			in.KeepWhitespace = true
		}
		out, err := keyledger.ValidateNewKey(in)
		if err != nil {
			if code := keyledger.ErrorCode(err); code != keyledger.EINVALID {
				t.Fatalf("refused with code %q, want %q: %v", code, keyledger.EINVALID, err)
			}
			fields := keyledger.FieldErrors(err)
			if len(fields) == 0 {
				t.Fatalf("refused without naming a field: %v", err)
			}
			for field, msg := range fields {
				if msg == "" || !utf8.ValidString(msg) {
					t.Fatalf("field %q: message %q", field, msg)
				}
			}
			return
		}

		// Accepted: the input, trimmed.
		for _, c := range []struct{ field, got, want string }{
			{"name", out.Name, strings.TrimSpace(name)},
			{"project", out.Project, strings.TrimSpace(project)},
			{"environment", out.Environment, strings.ToLower(strings.TrimSpace(env))},
			{"owner", out.OwnerEmail, strings.ToLower(strings.TrimSpace(owner))},
			{"value", out.Value, value},
			{"scope", out.Scope, strings.TrimSpace(scope)},
			{"description", out.Description, strings.TrimSpace(desc)},
		} {
			if c.got != c.want {
				t.Fatalf("%s: accepted %q as %q, want %q", c.field, c.want, c.got, c.want)
			}
		}
		// Clean text within the limits.
		for _, c := range []struct {
			field     string
			s         string
			required  bool
			multiline bool
			maxRunes  int
		}{
			{"name", out.Name, true, false, keyledger.MaxNameRunes},
			{"project", out.Project, true, false, keyledger.MaxProjectRunes},
			{"environment", out.Environment, true, false, 50},
			{"owner", out.OwnerEmail, true, false, 254},
			{"scope", out.Scope, false, false, keyledger.MaxScopeRunes},
			{"description", out.Description, false, true, keyledger.MaxDescriptionRunes},
			{"value", out.Value, true, true, keyledger.MaxValueBytes},
		} {
			if c.required && c.s == "" {
				t.Fatalf("%s: accepted empty", c.field)
			}
			if !utf8.ValidString(c.s) {
				t.Fatalf("%s: accepted invalid UTF-8 %q", c.field, c.s)
			}
			if n := utf8.RuneCountInString(c.s); n > c.maxRunes {
				t.Fatalf("%s: accepted %d characters, limit %d", c.field, n, c.maxRunes)
			}
			for _, r := range c.s {
				if c.multiline && (r == '\n' || r == '\r' || r == '\t') {
					continue
				}
				if r == 0 || unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
					t.Fatalf("%s: accepted %q with control character %U", c.field, c.s, r)
				}
			}
		}
		if len(out.Value) > keyledger.MaxValueBytes {
			t.Fatalf("value: accepted %d bytes", len(out.Value))
		}
		if !strings.Contains(out.OwnerEmail, "@") {
			t.Fatalf("owner: accepted %q", out.OwnerEmail)
		}
		switch d := strings.TrimSpace(days); {
		case d == "" && out.RotationDays != 0:
			t.Fatalf("rotation days: empty accepted as %d", out.RotationDays)
		case d != "":
			n, err := strconv.Atoi(d)
			if err != nil || n != out.RotationDays || n < 1 || n > keyledger.MaxRotationDays {
				t.Fatalf("rotation days: %q accepted as %d", days, out.RotationDays)
			}
		}
		if out.Provider == "" {
			t.Fatal("accepted without a provider")
		}
		if p := strings.ToLower(strings.TrimSpace(provider)); p != "" && string(out.Provider) != p {
			t.Fatalf("provider: %q accepted as %q", provider, out.Provider)
		}

		// Validating the accepted form again changes nothing.
		again := keyledger.KeyInput{Name: out.Name, Provider: string(out.Provider), Project: out.Project, Environment: out.Environment,
			OwnerEmail: out.OwnerEmail, Value: out.Value, Scope: out.Scope, Description: out.Description, KeepWhitespace: in.KeepWhitespace}
		if out.RotationDays != 0 {
			again.RotationDays = strconv.Itoa(out.RotationDays)
		}
		out2, err := keyledger.ValidateNewKey(again)
		if err != nil {
			t.Fatalf("accepted %+v, but refused its normalized form: %v", in, err)
		}
		if out2 != out {
			t.Fatalf("not idempotent:\n first %+v\nsecond %+v", out, out2)
		}
	})
}
