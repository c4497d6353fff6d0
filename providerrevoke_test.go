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

func TestRotatableAtProvider(t *testing.T) {
	sa := keyledger.KeyAtProvider{ID: 1, Provider: keyledger.ProviderOpenAI, ProviderKeyID: "key_1", ProjectID: "proj_1",
		Status: keyledger.ProviderKeyActive, OwnerType: keyledger.OwnerServiceAccount, Linked: true}
	person := sa
	person.OwnerType = "user"
	old := sa
	old.Linked, old.Version = false, 1
	gone := sa
	now := time.Now()
	gone.DeletedAt = &now
	other := sa
	other.ID, other.ProviderKeyID = 2, "key_2"
	noProject := sa
	noProject.ProjectID = ""
	openai := &keyledger.Key{Provider: keyledger.ProviderOpenAI}
	archived := &keyledger.Key{Provider: keyledger.ProviderOpenAI, ArchivedAt: &now}
	anthropic := &keyledger.Key{Provider: keyledger.ProviderAnthropic}
	for _, c := range []struct {
		name string
		k    *keyledger.Key
		at   []keyledger.KeyAtProvider
		want string // provider key id, or "" for refused
	}{
		{"service account", openai, []keyledger.KeyAtProvider{sa, old}, "key_1"},
		{"a person's key", openai, []keyledger.KeyAtProvider{person}, ""},
		{"only an old version", openai, []keyledger.KeyAtProvider{old}, ""},
		{"deleted at the provider", openai, []keyledger.KeyAtProvider{gone}, ""},
		{"two linked", openai, []keyledger.KeyAtProvider{sa, other}, ""},
		{"no project", openai, []keyledger.KeyAtProvider{noProject}, ""},
		{"archived", archived, []keyledger.KeyAtProvider{sa}, ""},
		{"anthropic", anthropic, []keyledger.KeyAtProvider{sa}, ""},
	} {
		got, err := keyledger.RotatableAtProvider(c.k, c.at)
		if c.want == "" {
			if keyledger.ErrorCode(err) != keyledger.ECONFLICT {
				t.Errorf("%s: err = %v, want a conflict in plain words", c.name, err)
			}
			continue
		}
		if err != nil || got.ProviderKeyID != c.want {
			t.Errorf("%s: %+v, %v; want %s", c.name, got, err, c.want)
		}
	}
}

func TestCanRotateAtProvider(t *testing.T) {
	for _, c := range []struct {
		u  *keyledger.User
		ok bool
	}{
		{&keyledger.User{Role: keyledger.RoleAdmin, Status: keyledger.UserActive}, true},
		{&keyledger.User{Role: keyledger.RoleLead, Status: keyledger.UserActive}, true},
		{&keyledger.User{Role: keyledger.RoleMember, Status: keyledger.UserActive}, false},
		{&keyledger.User{Role: keyledger.RoleAdmin, Status: keyledger.UserDeactivated}, false},
		{nil, false},
	} {
		if err := keyledger.CanRotateAtProvider(c.u); (err == nil) != c.ok {
			t.Errorf("%+v: %v", c.u, err)
		}
	}
}
