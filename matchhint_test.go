package keyledger_test

import (
	"testing"

	"github.com/keyledger/keyledger"
)

// TestMatchHint: a provider's redacted key becomes the masked hint of a
// value with that prefix and those last four characters, also when the
// redaction cuts a known prefix short (the OpenAI fake keeps the first
// ten characters, so "sk-svcacct-…" comes back as "sk-svcacct...").
func TestMatchHint(t *testing.T) {
	svc := "sk-svcacct-" + "AbCdEfGhIjKlMnOpQrStUvWxYz0123"
	for _, c := range []struct{ hint, want string }{
		{"sk-proj-abc...wxyz", "sk-proj-…wxyz"},
		{"sk-abc...wxyz", "sk-…wxyz"},
		{"sk-ant-api03-R2D...igAA", "sk-ant-…igAA"},
		{"sk-proj-abc…wxyz", "sk-proj-…wxyz"},
		{"sk-svcacct…0123", keyledger.MaskedHint(svc)},
		// Cut short: only one known prefix begins with the head.
		{"sk-svcacct...0123", keyledger.MaskedHint(svc)},
		{"sk-proj...wxyz", "sk-proj-…wxyz"},
		{"sk-adm...wxyz", "sk-admin-…wxyz"},
		// Several known prefixes begin with "sk-a": the head is read as
		// it stands.
		{"sk-a...wxyz", "sk-…wxyz"},
		{"sk-...wxyz", "sk-…wxyz"},
		// No elision, too short a tail, unknown prefix: nothing.
		{"sk-proj-abcdefwxyz", ""},
		{"sk-proj-abc...xyz", ""},
		{"pk-abc...wxyz", ""},
		{"", ""},
	} {
		if got := keyledger.MatchHint(c.hint); got != c.want {
			t.Errorf("MatchHint(%q) = %q, want %q", c.hint, got, c.want)
		}
	}
}
