package keyledger

import (
	"sort"
	"strings"
	"time"
)

// Token scopes: what a personal access token may do.
const (
	ScopeRead   = "read"   // key metadata, environments, audit (per role)
	ScopeReveal = "reveal" // values: reveal and export
	ScopeWrite  = "write"  // register, rotate, verify
)

// TokenPrefix marks keyledger tokens so a leaked one is recognisable (and
// secret scanners can be taught the pattern).
const TokenPrefix = "klt_"

// Token lifetimes.
const (
	DefaultTokenTTL = 90 * 24 * time.Hour
	MaxTokenTTL     = 365 * 24 * time.Hour
)

// Token is a personal access token's metadata; the secret is never kept.
type Token struct {
	ID         int64
	UserID     int64
	UserEmail  string
	Name       string
	Hint       string
	Scopes     []string
	CreatedAt  time.Time
	ExpiresAt  time.Time
	LastUsedAt *time.Time
	LastUsedIP string
}

// Has reports whether the token carries scope.
func (t *Token) Has(scope string) bool {
	for _, s := range t.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// TokenInput is a token request as typed.
type TokenInput struct {
	Name    string
	Scopes  []string
	Expires string // a duration like 30d, 12h, or empty for the default
	// CurrentPassword confirms it is the person when their session last
	// did so longer ago than StepUpWindow (see FreshProof). Checked, never
	// stored.
	CurrentPassword string
}

// NewToken is a validated token request.
type NewToken struct {
	Name   string
	Scopes []string
	TTL    time.Duration
}

// ParseScopes splits "read,reveal" into scopes.
func ParseScopes(s string) []string {
	var out []string
	for _, p := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		out = append(out, strings.ToLower(strings.TrimSpace(p)))
	}
	return out
}

// ParseTTL reads "30d", "12h", "90d" or a Go duration.
func ParseTTL(s string) (time.Duration, bool) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "" {
		return DefaultTokenTTL, true
	}
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n := 0
		for _, r := range d {
			if r < '0' || r > '9' {
				return 0, false
			}
			n = n*10 + int(r-'0')
			if n > 100000 {
				return 0, false
			}
		}
		if d == "" {
			return 0, false
		}
		return time.Duration(n) * 24 * time.Hour, true
	}
	d, err := time.ParseDuration(s)
	return d, err == nil
}

// ValidateToken checks a token request.
func ValidateToken(in TokenInput) (NewToken, error) {
	var v Validation
	out := NewToken{Name: strings.TrimSpace(in.Name)}
	if out.Name == "" {
		v.Add("name", "Name the token after where it is used, e.g. \"laptop CLI\".")
	} else if p := CheckName(out.Name, 100); p != "" {
		v.Add("name", "Name "+p+".")
	}
	seen := map[string]bool{}
	for _, s := range in.Scopes {
		switch s {
		case ScopeRead, ScopeReveal, ScopeWrite:
			if !seen[s] {
				seen[s] = true
				out.Scopes = append(out.Scopes, s)
			}
		case "":
		default:
			v.Add("scopes", "Scopes are read, reveal and write.")
		}
	}
	if len(out.Scopes) == 0 && !v.Has("scopes") {
		v.Add("scopes", "Choose at least one scope.")
	}
	sort.Strings(out.Scopes)
	ttl, ok := ParseTTL(in.Expires)
	switch {
	case !ok:
		v.Add("expires", "Expiry is a number of days like 30d, or hours like 12h.")
	case ttl < time.Hour:
		v.Add("expires", "A token must live at least an hour.")
	case ttl > MaxTokenTTL:
		v.Add("expires", "Tokens expire within a year (365d at most).")
	}
	out.TTL = ttl
	return out, v.Err()
}
