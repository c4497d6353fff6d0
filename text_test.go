package keyledger_test

import (
	"strings"
	"testing"

	"github.com/keyledger/keyledger"
)

// Invisible and text-direction characters make two names look alike (or
// a name read backwards) on every page and in every export.
func TestNamesRefuseInvisibleAndBidi(t *testing.T) {
	t.Parallel()
	bad := map[string]string{
		"zero-width space":  "open\u200bai",
		"zero-width joiner": "open\u200dai",
		"word joiner":       "open\u2060ai",
		"BOM":               "\ufeffopenai",
		"soft hyphen":       "open\u00adai",
		"RLO override":      "key-\u202egnp.exe",
		"LRE embedding":     "\u202aopenai",
		"RLI isolate":       "open\u2067ai\u2069",
		"Hangul filler":     "\u3164",
		"only invisible":    "\u200b\u200c",
	}
	for what, name := range bad {
		in := keyledger.KeyInput{Name: name, Project: "checkout", Environment: "development", OwnerEmail: "a@example.com", Value: "sk-proj-abcdefghijklmnopqrstuvwxyz0123"}
		if _, err := keyledger.ValidateNewKey(in); keyledger.FieldErrors(err)["name"] == "" {
			t.Errorf("key name with %s: no field error (%v)", what, err)
		}
		in.Name, in.Project = "openai", name
		if _, err := keyledger.ValidateNewKey(in); keyledger.FieldErrors(err)["project"] == "" {
			t.Errorf("project with %s: no field error (%v)", what, err)
		}
		u := keyledger.NewUser{Email: "a@example.com", Name: name, Role: keyledger.RoleMember, Password: "correct horse battery"}
		if err := u.Validate(); keyledger.FieldErrors(err)["name"] == "" {
			t.Errorf("user name with %s: no field error (%v)", what, err)
		}
		if _, err := keyledger.ValidateEnvironment(keyledger.EnvironmentInput{Name: "prod" + name, RevealPolicy: string(keyledger.RevealAnyUser)}); keyledger.FieldErrors(err)["name"] == "" {
			t.Errorf("environment name with %s: no field error (%v)", what, err)
		}
	}
	// Ordinary names of many scripts still pass.
	for _, name := range []string{"OpenAI prod", "Schlüssel für Zahlungen", "東京 API", "مفتاح", "ключ <b>&amp;", "x'; DROP TABLE keys; --"} {
		in := keyledger.KeyInput{Name: name, Project: "checkout", Environment: "development", OwnerEmail: "a@example.com", Value: "sk-proj-abcdefghijklmnopqrstuvwxyz0123"}
		if _, err := keyledger.ValidateNewKey(in); err != nil {
			t.Errorf("name %q refused: %v", name, err)
		}
	}
}

// A reason of invisible characters only is no reason.
func TestReasonOfInvisibleCharactersIsMissing(t *testing.T) {
	t.Parallel()
	for _, r := range []string{"", "   ", "\u200b", "\u200b\u200c\u200d\u2060\ufeff", " \u00a0\u3000 ", "\u202e\u202c", "\u3164\u115f"} {
		if _, err := keyledger.CheckReason(r, true); keyledger.FieldErrors(err)["reason"] == "" {
			t.Errorf("reason %q satisfied a required reason", r)
		}
		got, err := keyledger.CheckReason(r, false)
		if err != nil || got != "" {
			t.Errorf("optional reason %q: %q, %v; want it dropped", r, got, err)
		}
	}
	if got, err := keyledger.CheckReason("  incident 42 ", true); err != nil || got != "incident 42" {
		t.Errorf("a real reason: %q %v", got, err)
	}
	if !strings.Contains(keyledger.FieldErrors(func() error { _, err := keyledger.CheckReason("\u200b", true); return err }())["reason"], "reason") {
		t.Error("the field error does not ask for a reason")
	}
}

// A project typed with full-width letters is the project, not a look-alike.
func TestProjectIsNFKC(t *testing.T) {
	t.Parallel()
	in := keyledger.KeyInput{Name: "openai", Project: " ｃｈｅｃｋｏｕｔ ", Environment: "development", OwnerEmail: "a@example.com", Value: "sk-proj-abcdefghijklmnopqrstuvwxyz0123"}
	nk, err := keyledger.ValidateNewKey(in)
	if err != nil || nk.Project != "checkout" {
		t.Errorf("project %q, %v; want checkout", nk.Project, err)
	}
	ed, err := keyledger.ValidateKeyEdit(keyledger.KeyInput{Project: "ｃｈｅｃｋｏｕｔ", OwnerEmail: "a@example.com"})
	if err != nil || ed.Project != "checkout" {
		t.Errorf("edited project %q, %v; want checkout", ed.Project, err)
	}
}
