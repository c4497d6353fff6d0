package keyledger

import (
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"
)

// checkText returns a user-facing problem with s, or "" when s is fine.
// Names and labels end up in HTML, CSV exports, audit details and shell
// lines, so control characters are refused outright rather than escaped
// differently in each place.
func checkText(s string, maxRunes int, multiline bool) string {
	if !utf8.ValidString(s) {
		return "must be valid UTF-8 text"
	}
	if strings.ContainsRune(s, 0) {
		return "must not contain NUL bytes"
	}
	for _, r := range s {
		if multiline && (r == '\n' || r == '\r' || r == '\t') {
			continue
		}
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return "must not contain control characters"
		}
	}
	if n := utf8.RuneCountInString(s); n > maxRunes {
		return "is too long (" + itoa(n) + " characters, at most " + itoa(maxRunes) + ")"
	}
	return ""
}

// CheckName is checkText for names people tell apart by eye: key names,
// projects, user and token names. Invisible characters (zero-width spaces
// and joiners, the BOM, soft hyphens: Unicode category Cf) and bidi
// embeddings, overrides and isolates (also Cf) are refused, because they
// let two names look the same, or show a name backwards, on every page
// and in every export; so are Hangul fillers, letters that draw nothing. A
// name must show something. (Zero-width joiners are refused too, though
// some scripts and emoji use them: a name can do without.)
func CheckName(s string, maxRunes int) string {
	if p := checkText(s, maxRunes, false); p != "" {
		return p
	}
	for _, r := range s {
		if unicode.Is(unicode.Cf, r) || filler(r) {
			return "must not contain invisible or text-direction characters (zero-width spaces or joiners, bidi overrides); retype it"
		}
	}
	if Blank(s) {
		return "must contain visible characters"
	}
	return ""
}

// Blank reports whether s shows nothing: it holds only white space,
// format characters (Unicode category Cf: zero-width and bidi
// characters) and fillers. A required reason or name that is blank was
// not given.
func Blank(s string) bool {
	for _, r := range s {
		if !unicode.IsSpace(r) && !unicode.Is(unicode.Cf, r) && !filler(r) && !unicode.Is(unicode.Variation_Selector, r) && r != '\u034f' {
			return false
		}
	}
	return true
}

// filler reports the Hangul fillers: letters by category that draw
// nothing, a common way to make a "blank" name.
func filler(r rune) bool {
	return r == '\u115f' || r == '\u1160' || r == '\u3164' || r == '\uffa0'
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	neg := n < 0
	if neg {
		n = -n
	}
	var b [20]byte
	i := len(b)
	for n > 0 {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// NormalizeEmail lower-cases and trims an address; emails are unique
// case-insensitively.
func NormalizeEmail(s string) string {
	return strings.ToLower(strings.TrimSpace(s))
}

// CheckEmail returns a problem with an (already normalized) address, or "".
func CheckEmail(email string) string {
	if email == "" {
		return "is required"
	}
	if p := checkText(email, 254, false); p != "" {
		return p
	}
	if _, ok := EmailDomain(email); !ok || strings.ContainsAny(email, " <>\"',;") {
		return "must be an email address like name@example.com"
	}
	return ""
}

// EmailDomain returns the domain of a bare address (lower case), and
// false unless email is exactly one address with exactly one @. Single
// sign-on lets people in by domain, so "a@evil.example@corp.example" must
// not count as an address at corp.example: net/mail parses it (a quoted
// local part can hold an @) and the address must come back unchanged, with
// no display name, comment or quoting around it.
func EmailDomain(email string) (string, bool) {
	if strings.Count(email, "@") != 1 {
		return "", false
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Name != "" || a.Address != email {
		return "", false
	}
	at := strings.IndexByte(email, '@')
	if at <= 0 || at == len(email)-1 {
		return "", false
	}
	return strings.ToLower(email[at+1:]), true
}
