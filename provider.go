package keyledger

import (
	"strings"
	"unicode"
)

// Provider is a short lowercase provider id: one of the constants below, or
// whatever the user typed (lowercased and trimmed by ValidateNewKey), so a
// provider nobody here has heard of still groups its keys together.
type Provider string

// The known providers; DetectProvider tells all but ProviderOther from a
// key's prefix.
const (
	ProviderOpenAI    Provider = "openai"
	ProviderAnthropic Provider = "anthropic"
	ProviderStripe    Provider = "stripe"
	ProviderGitHub    Provider = "github"
	ProviderAWS       Provider = "aws"
	ProviderOther     Provider = "other"
)

// providerPrefix returns the documented prefix value starts with and its
// provider, or "", "" when none matches. Longer prefixes come before the
// prefixes they extend ("sk-ant-" before "sk-"), because the first match
// wins. A value that is nothing but a prefix matches nothing: it is not a
// key, and a masked hint built from it would show the whole value.
func providerPrefix(value string) (string, Provider) {
	prefixes := knownPrefixes()
	for _, c := range &prefixes {
		if strings.HasPrefix(value, c.prefix) {
			if len(value) == len(c.prefix) {
				return "", ""
			}
			return c.prefix, c.provider
		}
	}
	return "", ""
}

// knownPrefixes is the prefix table, longer prefixes before the ones
// they extend.
func knownPrefixes() [17]struct {
	prefix   string
	provider Provider
} {
	return [...]struct {
		prefix   string
		provider Provider
	}{
		{"sk-ant-", ProviderAnthropic},
		{"sk-proj-", ProviderOpenAI},
		{"sk-svcacct-", ProviderOpenAI},
		{"sk-admin-", ProviderOpenAI},
		{"sk-", ProviderOpenAI},
		{"sk_live_", ProviderStripe},
		{"sk_test_", ProviderStripe},
		{"rk_live_", ProviderStripe},
		{"rk_test_", ProviderStripe},
		{"github_pat_", ProviderGitHub},
		{"ghp_", ProviderGitHub},
		{"gho_", ProviderGitHub},
		{"ghs_", ProviderGitHub},
		{"ghu_", ProviderGitHub},
		{"ghr_", ProviderGitHub},
		{"AKIA", ProviderAWS},
		{"ASIA", ProviderAWS},
	}
}

// truncatedPrefix returns the one known prefix that head (the part of a
// redacted key before its elision) is a proper beginning of, as when a
// redaction keeps ten characters of "sk-svcacct-…". When none or several
// are, it returns "", "": the head is then read as it stands.
func truncatedPrefix(head string) (string, Provider) {
	var prefix string
	var provider Provider
	for _, c := range knownPrefixes() {
		if len(head) < len(c.prefix) && strings.HasPrefix(c.prefix, head) {
			if prefix != "" {
				return "", ""
			}
			prefix, provider = c.prefix, c.provider
		}
	}
	return prefix, provider
}

// DetectProvider guesses the provider from the value's prefix, or returns ""
// when the prefix is unknown. It is a guess: other vendors reuse "sk-".
func DetectProvider(value string) Provider {
	_, p := providerPrefix(value)
	return p
}

// Label is the provider's name as shown to people.
func (p Provider) Label() string {
	switch p {
	case ProviderOpenAI:
		return "OpenAI"
	case ProviderAnthropic:
		return "Anthropic"
	case ProviderStripe:
		return "Stripe"
	case ProviderGitHub:
		return "GitHub"
	case ProviderAWS:
		return "AWS"
	}
	return string(p)
}

// EnvVarName suggests the environment variable a key is usually read from.
// Known providers get the name their official SDKs read; the value matters
// for AWS, whose access key id and secret access key are separate variables.
// Anything else is derived from the key's name, falling back to the provider
// id, so that the suggestion is always a valid POSIX variable name.
func EnvVarName(p Provider, keyName, value string) string {
	switch p {
	case ProviderOpenAI:
		return "OPENAI_API_KEY"
	case ProviderAnthropic:
		return "ANTHROPIC_API_KEY"
	case ProviderStripe:
		return "STRIPE_SECRET_KEY"
	case ProviderGitHub:
		return "GITHUB_TOKEN"
	case ProviderAWS:
		if strings.HasPrefix(value, "AKIA") || strings.HasPrefix(value, "ASIA") {
			return "AWS_ACCESS_KEY_ID"
		}
		return "AWS_SECRET_ACCESS_KEY"
	}
	name := envVarWords(keyName)
	if name == "" && p != ProviderOther {
		name = envVarWords(string(p))
	}
	if name == "" {
		return "API_KEY"
	}
	if name[0] >= '0' && name[0] <= '9' {
		name = "_" + name
	}
	for _, suffix := range []string{"KEY", "TOKEN", "SECRET"} {
		if name == suffix || strings.HasSuffix(name, "_"+suffix) {
			return name
		}
	}
	return name + "_API_KEY"
}

// envVarWords uppercases s and turns every run of characters outside
// [A-Z0-9] into a single "_", without leading or trailing "_". Non-ASCII
// letters become "_" rather than being transliterated: shells and dotenv
// parsers only accept ASCII names.
func envVarWords(s string) string {
	var b strings.Builder
	pendingSep := false
	for _, r := range s {
		r = unicode.ToUpper(r)
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			if pendingSep && b.Len() > 0 {
				b.WriteByte('_')
			}
			pendingSep = false
			b.WriteRune(r)
			continue
		}
		pendingSep = true
	}
	return b.String()
}

// MaskedHint lets people tell keys apart without revealing them: the known
// prefix (public knowledge) plus "…" and the last runes of the rest. How
// much of the rest is shown shrinks with its length, so that a short secret
// is never mostly given away: last 4 from 16 runes on, last 2 from 8, none
// below. Unknown values show their first 3 runes too once long enough.
// Invalid UTF-8 shows as U+FFFD, so the hint is always valid text.
func MaskedHint(value string) string {
	if prefix, p := providerPrefix(value); p != "" {
		return prefix + hintTail([]rune(value[len(prefix):]))
	}
	runes := []rune(value)
	if len(runes) >= 16 {
		return string(runes[:3]) + hintTail(runes)
	}
	return hintTail(runes)
}

func hintTail(runes []rune) string {
	switch n := len(runes); {
	case n >= 16:
		return "…" + string(runes[n-4:])
	case n >= 8:
		return "…" + string(runes[n-2:])
	}
	return "…"
}

// LooksLive reports a production Stripe key, so that registering one under a
// development environment can be warned about.
func LooksLive(value string) bool {
	return strings.HasPrefix(value, "sk_live_") || strings.HasPrefix(value, "rk_live_")
}

// LiveKeyMisplaced reports a live-looking value (or its masked hint, which
// keeps the prefix) kept in an environment that is not sensitive. What makes
// an environment "production" is its sensitive flag, not its name: a
// sensitive "prod-eu" is where a live key belongs, while a "production-mirror"
// nobody marked sensitive reveals without a step-up, like development.
func LiveKeyMisplaced(value string, env Environment) bool {
	return LooksLive(value) && !env.Sensitive
}

// LiveKeyWarning is the warning shown when LiveKeyMisplaced holds; hint is
// the masked hint, never the value.
func LiveKeyWarning(hint, envName string) string {
	return "This looks like a live production key (" + hint + ") but is registered under " + envName +
		", which is not a sensitive environment. If it is live, move it to a sensitive environment (such as production) or mark " +
		envName + " sensitive; otherwise replace it with a test key."
}
