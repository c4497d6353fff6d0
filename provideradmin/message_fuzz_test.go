package provideradmin

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzCleanMessage: whatever a provider says, the cleaned message never
// holds the admin key, is valid UTF-8 without control characters, and is
// at most maxMessage bytes plus the ellipsis.
func FuzzCleanMessage(f *testing.F) {
	const secret = "sk-admin-Fuzz0123456789"
	f.Add("Incorrect API key provided: " + secret + ".")
	f.Add("invalid x-api-key\n\x00" + secret[:5] + "\n" + secret[5:])
	f.Add(strings.Repeat("ü", 200) + secret)
	f.Add("\xff\xfe" + secret + "\u2028")
	f.Fuzz(func(t *testing.T, msg string) {
		got := cleanMessage(msg, secret)
		if strings.Contains(got, secret) {
			t.Fatalf("cleanMessage kept the key: %q", got)
		}
		if !utf8.ValidString(got) {
			t.Fatalf("invalid UTF-8: %q", got)
		}
		if len(got) > maxMessage+len("…") {
			t.Fatalf("len = %d", len(got))
		}
		for _, r := range got {
			if r < ' ' || r == 0x7f {
				t.Fatalf("control character %U in %q", r, got)
			}
		}
	})
}
