package keyledger_test

import (
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

func TestCanProviderRevokeMatrix(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	dev := &keyledger.Environment{Name: "development"}
	prod := &keyledger.Environment{Name: "production", Sensitive: true}
	const owner = 7
	admin := &keyledger.User{ID: 1, Role: keyledger.RoleAdmin, Status: keyledger.UserActive}
	lead := &keyledger.User{ID: 2, Role: keyledger.RoleLead, Status: keyledger.UserActive}
	own := &keyledger.User{ID: owner, Role: keyledger.RoleMember, Status: keyledger.UserActive}
	member := &keyledger.User{ID: 3, Role: keyledger.RoleMember, Status: keyledger.UserActive}
	gone := &keyledger.User{ID: owner, Role: keyledger.RoleAdmin, Status: keyledger.UserDeactivated}
	fresh, stale := now.Add(-time.Minute), now.Add(-time.Hour)
	cases := []struct {
		name string
		a    keyledger.Actor
		env  *keyledger.Environment // nil: a key not registered in keyledger
		code string                 // "" allowed
	}{
		{"owner in development", keyledger.Actor{User: own}, dev, ""},
		{"lead in development", keyledger.Actor{User: lead}, dev, ""},
		{"admin in development", keyledger.Actor{User: admin}, dev, ""},
		{"other member", keyledger.Actor{User: member, StepUpAt: fresh}, dev, keyledger.EFORBIDDEN},
		{"deactivated owner", keyledger.Actor{User: gone, StepUpAt: fresh}, dev, keyledger.EFORBIDDEN},
		{"nobody", keyledger.Actor{}, dev, keyledger.EFORBIDDEN},
		{"owner in production, fresh proof", keyledger.Actor{User: own, StepUpAt: fresh}, prod, ""},
		{"owner in production, stale proof", keyledger.Actor{User: own, StepUpAt: stale}, prod, keyledger.ESTEPUP},
		{"admin in production, no proof", keyledger.Actor{User: admin}, prod, keyledger.ESTEPUP},
		{"token in production", keyledger.Actor{User: admin, StepUpAt: fresh, Token: &keyledger.Token{ID: 1}}, prod, keyledger.EFORBIDDEN},
		// A key only the provider knows has no environment to go by: it
		// may be production, so leads need a fresh proof, and members (who
		// own nothing registered) may not.
		{"lead, unregistered key, fresh proof", keyledger.Actor{User: lead, StepUpAt: fresh}, nil, ""},
		{"lead, unregistered key, no proof", keyledger.Actor{User: lead}, nil, keyledger.ESTEPUP},
		{"member, unregistered key", keyledger.Actor{User: member, StepUpAt: fresh}, nil, keyledger.EFORBIDDEN},
	}
	for _, c := range cases {
		ownerID := int64(owner)
		if c.env == nil {
			ownerID = 0
		}
		err := keyledger.CanProviderRevoke(c.a, c.env, ownerID, now)
		if got := keyledger.ErrorCode(err); (err == nil && c.code != "") || (err != nil && got != c.code) {
			t.Errorf("%s: err %v (code %q), want code %q", c.name, err, got, c.code)
		}
	}
}

func TestProviderRevokeNeedsAReason(t *testing.T) {
	t.Parallel()
	for _, r := range []string{"", "   ", "\u200b"} {
		_, err := keyledger.CheckProviderRevokeReason(r)
		if keyledger.FieldErrors(err)["reason"] == "" {
			t.Errorf("reason %q: err %v, want a field error on reason", r, err)
		}
	}
	got, err := keyledger.CheckProviderRevokeReason("  leaked in a public repo  ")
	if err != nil || got != "leaked in a public repo" {
		t.Errorf("got %q, %v", got, err)
	}
	if _, err := keyledger.CheckProviderRevokeReason(strings.Repeat("x", keyledger.MaxReasonRunes+1)); keyledger.FieldErrors(err)["reason"] == "" {
		t.Errorf("an over-long reason was accepted")
	}
}
