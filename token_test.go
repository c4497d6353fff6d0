package keyledger_test

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

func TestValidateToken(t *testing.T) {
	t.Parallel()
	const day = 24 * time.Hour
	long := strings.Repeat("n", 101)
	cases := []struct {
		name string
		in   keyledger.TokenInput
		// fields with an error; none: valid, then scopes and ttl.
		fields []string
		scopes []string
		ttl    time.Duration
	}{
		{name: "minimal", in: keyledger.TokenInput{Name: "laptop CLI", Scopes: []string{"read"}},
			scopes: []string{"read"}, ttl: keyledger.DefaultTokenTTL},
		{name: "name trimmed, scopes sorted and deduplicated", in: keyledger.TokenInput{Name: "  ci  ", Scopes: []string{"write", "read", "write", "", "reveal"}, Expires: "30d"},
			scopes: []string{"read", "reveal", "write"}, ttl: 30 * day},
		{name: "hours", in: keyledger.TokenInput{Name: "ci", Scopes: []string{"reveal"}, Expires: "12h"}, scopes: []string{"reveal"}, ttl: 12 * time.Hour},
		{name: "an hour is the least", in: keyledger.TokenInput{Name: "ci", Scopes: []string{"read"}, Expires: "1h"}, scopes: []string{"read"}, ttl: time.Hour},
		{name: "a year is the most", in: keyledger.TokenInput{Name: "ci", Scopes: []string{"read"}, Expires: "365d"}, scopes: []string{"read"}, ttl: 365 * day},
		{name: "upper case days", in: keyledger.TokenInput{Name: "ci", Scopes: []string{"read"}, Expires: " 7D "}, scopes: []string{"read"}, ttl: 7 * day},
		{name: "name of 100 characters", in: keyledger.TokenInput{Name: strings.Repeat("é", 100), Scopes: []string{"read"}}, scopes: []string{"read"}, ttl: keyledger.DefaultTokenTTL},

		{name: "no name", in: keyledger.TokenInput{Name: "   ", Scopes: []string{"read"}}, fields: []string{"name"}},
		{name: "name too long", in: keyledger.TokenInput{Name: long, Scopes: []string{"read"}}, fields: []string{"name"}},
		{name: "name with a newline", in: keyledger.TokenInput{Name: "a\nb", Scopes: []string{"read"}}, fields: []string{"name"}},
		{name: "name with NUL", in: keyledger.TokenInput{Name: "a\x00b", Scopes: []string{"read"}}, fields: []string{"name"}},
		{name: "no scopes", in: keyledger.TokenInput{Name: "ci"}, fields: []string{"scopes"}},
		{name: "empty scopes only", in: keyledger.TokenInput{Name: "ci", Scopes: []string{"", ""}}, fields: []string{"scopes"}},
		{name: "unknown scope", in: keyledger.TokenInput{Name: "ci", Scopes: []string{"read", "admin"}}, fields: []string{"scopes"}},
		{name: "scopes are case-sensitive here", in: keyledger.TokenInput{Name: "ci", Scopes: []string{"READ"}}, fields: []string{"scopes"}},
		{name: "0d", in: keyledger.TokenInput{Name: "ci", Scopes: []string{"read"}, Expires: "0d"}, fields: []string{"expires"}},
		{name: "366d", in: keyledger.TokenInput{Name: "ci", Scopes: []string{"read"}, Expires: "366d"}, fields: []string{"expires"}},
		{name: "8761h", in: keyledger.TokenInput{Name: "ci", Scopes: []string{"read"}, Expires: "8761h"}, fields: []string{"expires"}},
		{name: "59m", in: keyledger.TokenInput{Name: "ci", Scopes: []string{"read"}, Expires: "59m"}, fields: []string{"expires"}},
		{name: "negative", in: keyledger.TokenInput{Name: "ci", Scopes: []string{"read"}, Expires: "-48h"}, fields: []string{"expires"}},
		{name: "abc", in: keyledger.TokenInput{Name: "ci", Scopes: []string{"read"}, Expires: "abc"}, fields: []string{"expires"}},
		{name: "d alone", in: keyledger.TokenInput{Name: "ci", Scopes: []string{"read"}, Expires: "d"}, fields: []string{"expires"}},
		{name: "fractional days", in: keyledger.TokenInput{Name: "ci", Scopes: []string{"read"}, Expires: "1.5d"}, fields: []string{"expires"}},
		{name: "negative days", in: keyledger.TokenInput{Name: "ci", Scopes: []string{"read"}, Expires: "-1d"}, fields: []string{"expires"}},
		{name: "huge days", in: keyledger.TokenInput{Name: "ci", Scopes: []string{"read"}, Expires: "99999999999999999999d"}, fields: []string{"expires"}},
		{name: "everything wrong", in: keyledger.TokenInput{Scopes: []string{"root"}, Expires: "366d"}, fields: []string{"expires", "name", "scopes"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			nt, err := keyledger.ValidateToken(tc.in)
			if len(tc.fields) == 0 {
				if err != nil {
					t.Fatalf("ValidateToken(%+v) = %v", tc.in, err)
				}
				if !reflect.DeepEqual(nt.Scopes, tc.scopes) || nt.TTL != tc.ttl || nt.Name != strings.TrimSpace(tc.in.Name) {
					t.Errorf("ValidateToken(%+v) = %+v, want scopes %v ttl %v", tc.in, nt, tc.scopes, tc.ttl)
				}
				return
			}
			if keyledger.ErrorCode(err) != keyledger.EINVALID {
				t.Fatalf("ValidateToken(%+v) = %v, want EINVALID", tc.in, err)
			}
			fields := keyledger.FieldErrors(err)
			var got []string
			for f, msg := range fields {
				got = append(got, f)
				if msg == "" {
					t.Errorf("field %s has an empty message", f)
				}
			}
			if !sameSet(got, tc.fields) {
				t.Errorf("field errors %v, want on %v", fields, tc.fields)
			}
		})
	}
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestParseTTL(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{
		"":      keyledger.DefaultTokenTTL,
		"  ":    keyledger.DefaultTokenTTL,
		"30d":   30 * 24 * time.Hour,
		"12h":   12 * time.Hour,
		"90m":   90 * time.Minute,
		"1h30m": 90 * time.Minute,
		"0d":    0,
	} {
		if got, ok := keyledger.ParseTTL(in); !ok || got != want {
			t.Errorf("ParseTTL(%q) = %v, %v; want %v", in, got, ok, want)
		}
	}
	for _, in := range []string{"abc", "d", "x7d", "7 d", "1.5d", "-1d", "100001d", "7dd", "12"} {
		if got, ok := keyledger.ParseTTL(in); ok {
			t.Errorf("ParseTTL(%q) = %v, ok; want refused", in, got)
		}
	}
}

func TestParseScopes(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		"":                  nil,
		"read":              {"read"},
		"read,reveal":       {"read", "reveal"},
		" READ , Reveal ":   {"read", "reveal"},
		"read reveal write": {"read", "reveal", "write"},
		"read,,write,":      {"read", "write"},
		"read,bogus":        {"read", "bogus"},
	} {
		if got := keyledger.ParseScopes(in); !reflect.DeepEqual(got, want) {
			t.Errorf("ParseScopes(%q) = %#v, want %#v", in, got, want)
		}
	}
	// What ParseScopes leaves is for ValidateToken to judge.
	if _, err := keyledger.ValidateToken(keyledger.TokenInput{Name: "ci", Scopes: keyledger.ParseScopes("read,bogus")}); keyledger.ErrorCode(err) != keyledger.EINVALID {
		t.Errorf("an unknown scope from ParseScopes passed validation: %v", err)
	}
	nt, err := keyledger.ValidateToken(keyledger.TokenInput{Name: "ci", Scopes: keyledger.ParseScopes("WRITE, read")})
	if err != nil || !reflect.DeepEqual(nt.Scopes, []string{"read", "write"}) {
		t.Errorf("ValidateToken of parsed scopes = %+v, %v", nt, err)
	}
}

func TestCheckScopeAndTokenStepUp(t *testing.T) {
	t.Parallel()
	u := &keyledger.User{ID: 1, Role: keyledger.RoleMember, Status: keyledger.UserActive}
	browser := keyledger.Actor{User: u}
	reader := keyledger.Actor{User: u, Token: &keyledger.Token{ID: 9, Scopes: []string{"read"}}}
	for _, scope := range []string{keyledger.ScopeRead, keyledger.ScopeReveal, keyledger.ScopeWrite} {
		if err := keyledger.CheckScope(browser, scope); err != nil {
			t.Errorf("browser session refused %s: %v", scope, err)
		}
	}
	if err := keyledger.CheckScope(reader, keyledger.ScopeRead); err != nil {
		t.Errorf("read token refused read: %v", err)
	}
	for _, scope := range []string{keyledger.ScopeReveal, keyledger.ScopeWrite} {
		err := keyledger.CheckScope(reader, scope)
		if keyledger.ErrorCode(err) != keyledger.EFORBIDDEN || !strings.Contains(keyledger.ErrorMessage(err), `"`+scope+`"`) {
			t.Errorf("read token and %s: %v, want EFORBIDDEN naming the scope", scope, err)
		}
	}

	now := time.Now()
	prod := keyledger.Environment{Name: "production", Sensitive: true}
	dev := keyledger.Environment{Name: "development"}
	tok := keyledger.Actor{User: u, Token: &keyledger.Token{ID: 9, Scopes: []string{"reveal"}}}
	if err := keyledger.CheckStepUp(tok, dev, now); err != nil {
		t.Errorf("token in a non-sensitive environment: %v", err)
	}
	if err := keyledger.CheckStepUp(tok, prod, now); keyledger.ErrorCode(err) != keyledger.EFORBIDDEN {
		t.Errorf("token in production without allow_token_reveal: %v, want EFORBIDDEN (a token cannot step up)", err)
	}
	// A step-up time on a token actor does not count: only the switch.
	tok.StepUpAt = now
	if err := keyledger.CheckStepUp(tok, prod, now); keyledger.ErrorCode(err) != keyledger.EFORBIDDEN {
		t.Errorf("token with a step-up time in production: %v, want EFORBIDDEN", err)
	}
	prod.AllowTokenReveal = true
	if err := keyledger.CheckStepUp(tok, prod, now); err != nil {
		t.Errorf("token in production with allow_token_reveal: %v", err)
	}
	// The switch does not excuse a browser session from stepping up.
	if err := keyledger.CheckStepUp(browser, prod, now); keyledger.ErrorCode(err) != keyledger.ESTEPUP {
		t.Errorf("browser in production with allow_token_reveal and no step-up: %v, want ESTEPUP", err)
	}
}
