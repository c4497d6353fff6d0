package keyledger

import (
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestDetectProvider(t *testing.T) {
	tests := []struct {
		value string
		want  Provider
	}{
		{"sk-ant-api03-abcdefghijklmnopqrstuvwxyz", ProviderAnthropic},
		{"sk-proj-abcdefghijklmnopqrstuvwxyz", ProviderOpenAI},
		{"sk-svcacct-abcdefghijklmnopqrstuvwxyz", ProviderOpenAI},
		{"sk-admin-abcdefghijklmnopqrstuvwxyz", ProviderOpenAI},
		{"sk-abcdefghijklmnopqrstuvwxyz", ProviderOpenAI},
		{"sk-antelope", ProviderOpenAI}, // "sk-ant" without the dash is not Anthropic's prefix
		{"sk_live_51abcdefghijklmnop", ProviderStripe},
		{"sk_test_51abcdefghijklmnop", ProviderStripe},
		{"rk_live_51abcdefghijklmnop", ProviderStripe},
		{"rk_test_51abcdefghijklmnop", ProviderStripe},
		{"ghp_abcdefghijklmnopqrstuvwxyz0123456789", ProviderGitHub},
		{"github_pat_11ABCDEFG0123456789_abcdefghijkl", ProviderGitHub},
		{"gho_abcdefghijklmnopqrstuvwxyz0123456789", ProviderGitHub},
		{"ghs_abcdefghijklmnopqrstuvwxyz0123456789", ProviderGitHub},
		{"ghu_abcdefghijklmnopqrstuvwxyz0123456789", ProviderGitHub},
		{"ghr_abcdefghijklmnopqrstuvwxyz0123456789", ProviderGitHub},
		{"AKIAIOSFODNN7EXAMPLE", ProviderAWS},
		{"ASIAIOSFODNN7EXAMPLE", ProviderAWS},

		// A bare prefix is not a key, and must not fall through to a
		// shorter prefix either ("sk-ant-" is not an OpenAI "sk-" key).
		{"sk-ant-", ""},
		{"sk-proj-", ""},
		{"sk-", ""},
		{"sk_live_", ""},
		{"AKIA", ""},
		{"ghp_", ""},

		{"", ""},
		{"akiaiosfodnn7example", ""}, // prefixes are case-sensitive
		{"SK-proj-abc", ""},
		{" sk-proj-abc", ""}, // callers trim; a guess must not
		{"xoxb-123-456-abc", ""},
		{"pk_live_abc", ""}, // publishable, not secret
		{"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", ""},
		{"\xffsk-proj-abc", ""},
		{"日本語sk-proj-", ""},
	}
	for _, tt := range tests {
		if got := DetectProvider(tt.value); got != tt.want {
			t.Errorf("DetectProvider(%q) = %q, want %q", tt.value, got, tt.want)
		}
	}
}

func TestProviderLabel(t *testing.T) {
	tests := []struct {
		p    Provider
		want string
	}{
		{ProviderOpenAI, "OpenAI"},
		{ProviderAnthropic, "Anthropic"},
		{ProviderStripe, "Stripe"},
		{ProviderGitHub, "GitHub"},
		{ProviderAWS, "AWS"},
		{ProviderOther, "other"},
		{"mistral", "mistral"},
		{"", ""},
	}
	for _, tt := range tests {
		if got := tt.p.Label(); got != tt.want {
			t.Errorf("Provider(%q).Label() = %q, want %q", tt.p, got, tt.want)
		}
	}
}

func TestEnvVarName(t *testing.T) {
	tests := []struct {
		p       Provider
		keyName string
		value   string
		want    string
	}{
		{ProviderOpenAI, "whatever", "sk-proj-abc", "OPENAI_API_KEY"},
		{ProviderAnthropic, "", "", "ANTHROPIC_API_KEY"},
		{ProviderStripe, "billing", "rk_live_abc", "STRIPE_SECRET_KEY"},
		{ProviderGitHub, "ci bot", "ghp_abc", "GITHUB_TOKEN"},
		{ProviderAWS, "deploy", "AKIAIOSFODNN7EXAMPLE", "AWS_ACCESS_KEY_ID"},
		{ProviderAWS, "deploy", "ASIAIOSFODNN7EXAMPLE", "AWS_ACCESS_KEY_ID"},
		{ProviderAWS, "deploy", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AWS_SECRET_ACCESS_KEY"},
		{ProviderAWS, "deploy", "", "AWS_SECRET_ACCESS_KEY"},

		{ProviderOther, "Mistral prod", "x", "MISTRAL_PROD_API_KEY"},
		{ProviderOther, "twilio auth token", "x", "TWILIO_AUTH_TOKEN"},
		{ProviderOther, "sendgrid-key", "x", "SENDGRID_KEY"},
		{ProviderOther, "webhook.secret", "x", "WEBHOOK_SECRET"},
		{ProviderOther, "  my__weird--name!!  ", "x", "MY_WEIRD_NAME_API_KEY"},
		{ProviderOther, "_already_ok_", "x", "ALREADY_OK_API_KEY"},
		{ProviderOther, "3scale", "x", "_3SCALE_API_KEY"},
		{ProviderOther, "42", "x", "_42_API_KEY"},
		{ProviderOther, "7 token", "x", "_7_TOKEN"},
		{ProviderOther, "token", "x", "TOKEN"},
		{ProviderOther, "Crème brûlée", "x", "CR_ME_BR_L_E_API_KEY"},
		{ProviderOther, "ſecret", "x", "SECRET"},           // long s uppercases to ASCII S
		{ProviderOther, "ﬁ key", "x", "KEY"},               // the ligature has no uppercase: a separator
		{ProviderOther, "ıd", "x", "ID_API_KEY"},           // dotless i uppercases to ASCII I
		{ProviderOther, "keyring", "x", "KEYRING_API_KEY"}, // "KEY" only counts as a whole word
		{ProviderOther, "", "x", "API_KEY"},
		{ProviderOther, "日本語", "x", "API_KEY"},
		{ProviderOther, "🔑🔑", "x", "API_KEY"},

		// A typed provider fills in for a name with nothing usable.
		{"mistral", "", "x", "MISTRAL_API_KEY"},
		{"mistral", "!!!", "x", "MISTRAL_API_KEY"},
		{"mistral", "chat", "x", "CHAT_API_KEY"},
		{"3d-render", "", "x", "_3D_RENDER_API_KEY"},
		{"日本", "", "x", "API_KEY"},
		{"", "", "x", "API_KEY"},
	}
	for _, tt := range tests {
		if got := EnvVarName(tt.p, tt.keyName, tt.value); got != tt.want {
			t.Errorf("EnvVarName(%q, %q, %q) = %q, want %q", tt.p, tt.keyName, tt.value, got, tt.want)
		}
	}
}

func TestEnvVarNameAlwaysValid(t *testing.T) {
	valid := regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	names := []string{
		"", " ", "_", "__", "-", "0", "9lives", "a", "a b c", "a\tb\nc", "\x00", "\xff\xfe",
		"key", "KEY", "_KEY", "api_key", "my token", "secret", "x_secret", "ab__cd",
		"é", "ÉCOLE", "straße", "İstanbul", "Ωmega", "K", "ǅ", "🔑", "日本語キー", "\u200bzero width",
		"$(rm -rf /)", "'; DROP TABLE keys;--", "a.b-c/d", strings.Repeat("x", 500),
	}
	providers := []Provider{ProviderOther, "", "mistral", "3d", "日本", "x y"}
	for _, p := range providers {
		for _, n := range names {
			got := EnvVarName(p, n, "value")
			if !valid.MatchString(got) {
				t.Errorf("EnvVarName(%q, %q) = %q, not a valid variable name", p, n, got)
			}
			if _, err := FormatAssignment(FormatBash, got, "v"); err != nil {
				t.Errorf("EnvVarName(%q, %q) = %q, refused by FormatAssignment: %v", p, n, got, err)
			}
		}
	}
}

func TestMaskedHint(t *testing.T) {
	tests := []struct {
		value string
		want  string
	}{
		{"sk-proj-" + strings.Repeat("a", 44) + "Kl9q", "sk-proj-…Kl9q"},
		{"sk-svcacct-" + strings.Repeat("a", 44) + "Kl9q", "sk-svcacct-…Kl9q"},
		{"sk-admin-" + strings.Repeat("a", 44) + "Kl9q", "sk-admin-…Kl9q"},
		{"sk-" + strings.Repeat("a", 44) + "Kl9q", "sk-…Kl9q"},
		{"sk-ant-api03-" + strings.Repeat("a", 80) + "AAAA", "sk-ant-…AAAA"},
		{"sk_live_" + strings.Repeat("5", 20) + "abcd", "sk_live_…abcd"},
		{"sk_test_" + strings.Repeat("5", 20) + "abcd", "sk_test_…abcd"},
		{"rk_live_" + strings.Repeat("5", 20) + "abcd", "rk_live_…abcd"},
		{"rk_test_" + strings.Repeat("5", 20) + "abcd", "rk_test_…abcd"},
		{"AKIAIOSFODNN7EXAWXYZ", "AKIA…WXYZ"},
		{"ASIAIOSFODNN7EXAWXYZ", "ASIA…WXYZ"},
		{"ghp_" + strings.Repeat("x", 32) + "1234", "ghp_…1234"},
		{"gho_" + strings.Repeat("x", 32) + "1234", "gho_…1234"},
		{"ghs_" + strings.Repeat("x", 32) + "1234", "ghs_…1234"},
		{"ghu_" + strings.Repeat("x", 32) + "1234", "ghu_…1234"},
		{"ghr_" + strings.Repeat("x", 32) + "1234", "ghr_…1234"},
		{"github_pat_" + strings.Repeat("x", 78) + "1234", "github_pat_…1234"},

		// Short bodies behind a known prefix give away less.
		{"ghp_12345678", "ghp_…78"},
		{"ghp_1234567", "ghp_…"},
		{"sk-proj-a", "sk-proj-…"},

		// Unknown values.
		{"abcdefghijklmnop", "abc…mnop"},
		{"abcdefghijklmno", "…no"},
		{"abcdefgh", "…gh"},
		{"abcdefg", "…"},
		{"", "…"},
		{"sk-", "…"},
		{"AKIA", "…"},
		{"😀😁😂🤣😃😄😅😆😉😊😋😎😍😘🥰😗", "😀😁😂…😍😘🥰😗"},
		{"ключ-ключ-ключ-1", "клю…юч-1"},
		{"日本語日本語日本", "…日本"},
		{"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8\xf7\xf6\xf5\xf4\xf3\xf2\xf1\xf0", "\uFFFD\uFFFD\uFFFD…\uFFFD\uFFFD\uFFFD\uFFFD"},
	}
	for _, tt := range tests {
		if got := MaskedHint(tt.value); got != tt.want {
			t.Errorf("MaskedHint(%q) = %q, want %q", tt.value, got, tt.want)
		}
	}
}

// TestMaskedHintRevealsLittle checks, for every length up to 40 behind every
// known prefix and none, that the hint never holds the whole value, shows at
// most the last 4 runes of the secret part and at most a quarter of it, and
// (for unknown values) at most 7 runes and half the value.
func TestMaskedHintRevealsLittle(t *testing.T) {
	prefixes := []string{"", "sk-ant-", "sk-proj-", "sk-svcacct-", "sk-admin-", "sk-",
		"sk_live_", "sk_test_", "rk_live_", "rk_test_", "ghp_", "github_pat_", "gho_", "ghs_", "ghu_", "ghr_", "AKIA", "ASIA"}
	alphabets := [][]rune{
		[]rune("0123456789bcdefghjkmnpqrtuvwxyz"),
		[]rune("é日🔑ß∑Ωж"),
	}
	for _, prefix := range prefixes {
		for ai, alphabet := range alphabets {
			for n := 0; n <= 40; n++ {
				body := make([]rune, n)
				for i := range body {
					body[i] = alphabet[(i*7+ai)%len(alphabet)]
				}
				value := prefix + string(body)
				hint := MaskedHint(value)
				if !utf8.ValidString(hint) {
					t.Fatalf("MaskedHint(%q) = %q, not valid UTF-8", value, hint)
				}
				if value != "" && strings.Contains(hint, value) {
					t.Fatalf("MaskedHint(%q) = %q reveals the whole value", value, hint)
				}
				known := DetectProvider(value) != ""
				shownPrefix, tail, ok := strings.Cut(hint, "…")
				if !ok {
					t.Fatalf("MaskedHint(%q) = %q has no ellipsis", value, hint)
				}
				secret := []rune(value)
				if known {
					if shownPrefix != prefix {
						t.Fatalf("MaskedHint(%q) = %q, want prefix %q", value, hint, prefix)
					}
					secret = body
				} else if shownPrefix != "" && !strings.HasPrefix(value, shownPrefix) {
					t.Fatalf("MaskedHint(%q) = %q shows a head that is not the value's", value, hint)
				}
				tailRunes := utf8.RuneCountInString(tail)
				if !strings.HasSuffix(string(secret), tail) {
					t.Fatalf("MaskedHint(%q) = %q: tail is not the value's end", value, hint)
				}
				if tailRunes > 4 || tailRunes*4 > len(secret) {
					t.Fatalf("MaskedHint(%q) = %q shows %d of %d secret runes at the end", value, hint, tailRunes, len(secret))
				}
				if !known {
					shown := utf8.RuneCountInString(shownPrefix) + tailRunes
					if shown > 7 || shown*2 > len(secret) {
						t.Fatalf("MaskedHint(%q) = %q shows %d of %d runes", value, hint, shown, len(secret))
					}
				}
			}
		}
	}
}

func TestLooksLive(t *testing.T) {
	tests := []struct {
		value string
		want  bool
	}{
		{"sk_live_51abc", true},
		{"rk_live_51abc", true},
		{"sk_test_51abc", false},
		{"rk_test_51abc", false},
		{"pk_live_51abc", false},
		{"SK_LIVE_51abc", false},
		{"sk-proj-live", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := LooksLive(tt.value); got != tt.want {
			t.Errorf("LooksLive(%q) = %v, want %v", tt.value, got, tt.want)
		}
	}
}

// TestLiveKeyMisplaced: the sensitive flag, not the environment's name,
// says where a live key belongs.
func TestLiveKeyMisplaced(t *testing.T) {
	tests := []struct {
		value string
		env   Environment
		want  bool
	}{
		{"sk_live_51abc", Environment{Name: "production", Sensitive: true}, false},
		{"sk_live_51abc", Environment{Name: "prod-eu", Sensitive: true}, false},
		{"sk_live_51abc", Environment{Name: "production"}, true},
		{"rk_live_…9x", Environment{Name: "production-mirror"}, true},
		{"sk_live_51abc", Environment{Name: "development"}, true},
		{"sk_test_51abc", Environment{Name: "development"}, false},
	}
	for _, tt := range tests {
		if got := LiveKeyMisplaced(tt.value, tt.env); got != tt.want {
			t.Errorf("LiveKeyMisplaced(%q, %+v) = %v, want %v", tt.value, tt.env, got, tt.want)
		}
	}
	w := LiveKeyWarning("sk_live_…9x", "production-mirror")
	if !strings.Contains(w, "sk_live_…9x") || !strings.Contains(w, "registered under production-mirror") {
		t.Errorf("warning %q should name the hint and the environment", w)
	}
}
