package keyledger_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

func TestCanRevealMatrix(t *testing.T) {
	t.Parallel()
	dev := keyledger.Environment{Name: "development", RevealPolicy: keyledger.RevealAnyUser}
	prod := keyledger.Environment{Name: "production", RevealPolicy: keyledger.RevealOwnerLeadsAdmins, ReasonRequired: true}
	odd := keyledger.Environment{Name: "odd", RevealPolicy: "something_new"}
	const owner = 7
	users := map[string]*keyledger.User{
		"admin":       {ID: 1, Role: keyledger.RoleAdmin, Status: keyledger.UserActive},
		"lead":        {ID: 2, Role: keyledger.RoleLead, Status: keyledger.UserActive},
		"owner":       {ID: owner, Role: keyledger.RoleMember, Status: keyledger.UserActive},
		"member":      {ID: 3, Role: keyledger.RoleMember, Status: keyledger.UserActive},
		"deactivated": {ID: owner, Role: keyledger.RoleAdmin, Status: keyledger.UserDeactivated},
		"nobody":      nil,
	}
	cases := []struct {
		who   string
		env   keyledger.Environment
		allow bool
	}{
		{"admin", dev, true}, {"lead", dev, true}, {"owner", dev, true}, {"member", dev, true}, {"deactivated", dev, false}, {"nobody", dev, false},
		{"admin", prod, true}, {"lead", prod, true}, {"owner", prod, true}, {"member", prod, false}, {"deactivated", prod, false}, {"nobody", prod, false},
		{"admin", odd, false}, {"owner", odd, false},
	}
	for _, c := range cases {
		err := keyledger.CanReveal(users[c.who], c.env, owner)
		if (err == nil) != c.allow {
			t.Errorf("%s in %s: allowed=%v, want %v (err %v)", c.who, c.env.Name, err == nil, c.allow, err)
		}
		if err != nil && keyledger.ErrorCode(err) != keyledger.EFORBIDDEN {
			t.Errorf("%s in %s: code %s, want forbidden", c.who, c.env.Name, keyledger.ErrorCode(err))
		}
	}
	if err := keyledger.CanReveal(users["member"], prod, owner); !strings.Contains(err.Error(), "owner, leads and admins") {
		t.Errorf("refusal should name the policy: %v", err)
	}
}

func TestCanEditAndAudit(t *testing.T) {
	t.Parallel()
	member := &keyledger.User{ID: 3, Role: keyledger.RoleMember, Status: keyledger.UserActive}
	lead := &keyledger.User{ID: 2, Role: keyledger.RoleLead, Status: keyledger.UserActive}
	if keyledger.CanEditKey(member, 3) != nil || keyledger.CanEditKey(member, 4) == nil || keyledger.CanEditKey(lead, 4) != nil {
		t.Error("edit: owner and leads may edit, other members may not")
	}
	if keyledger.CanViewAudit(member) == nil || keyledger.CanViewAudit(lead) != nil {
		t.Error("audit: leads only")
	}
	gone := &keyledger.User{ID: 2, Role: keyledger.RoleLead, Status: keyledger.UserDeactivated}
	if keyledger.CanViewAudit(gone) == nil || keyledger.CanEditKey(gone, 2) == nil || keyledger.CanRegisterKey(gone) == nil {
		t.Error("a deactivated user can do nothing")
	}
}

func TestValidateNewKey(t *testing.T) {
	t.Parallel()
	ok := keyledger.KeyInput{Name: " OpenAI dev ", Project: "checkout", Environment: "Development", OwnerEmail: " Maria@Example.com", Value: "sk-proj-abc123456789"}
	cases := []struct {
		name  string
		edit  func(*keyledger.KeyInput)
		field string
	}{
		{"valid", func(*keyledger.KeyInput) {}, ""},
		{"no name", func(k *keyledger.KeyInput) { k.Name = "  " }, "name"},
		{"long name", func(k *keyledger.KeyInput) { k.Name = strings.Repeat("é", 201) }, "name"},
		{"nul in name", func(k *keyledger.KeyInput) { k.Name = "a\x00b" }, "name"},
		{"newline in name", func(k *keyledger.KeyInput) { k.Name = "a\nb" }, "name"},
		{"bidi line separator", func(k *keyledger.KeyInput) { k.Name = "a\u2028b" }, "name"},
		{"no project", func(k *keyledger.KeyInput) { k.Project = "" }, "project"},
		{"no environment", func(k *keyledger.KeyInput) { k.Environment = "" }, "environment"},
		{"bad owner", func(k *keyledger.KeyInput) { k.OwnerEmail = "maria" }, "owner"},
		{"no value", func(k *keyledger.KeyInput) { k.Value = " \n" }, "value"},
		// Never trimmed: refused until confirmed (then kept, see below).
		{"padded value", func(k *keyledger.KeyInput) { k.Value = "sk-proj-abc123456789\n" }, "value"},
		{"huge value", func(k *keyledger.KeyInput) { k.Value = strings.Repeat("a", keyledger.MaxValueBytes+1) }, "value"},
		{"invalid utf8 value", func(k *keyledger.KeyInput) { k.Value = "sk-\xff\xfe" }, "value"},
		{"nul in value", func(k *keyledger.KeyInput) { k.Value = "sk-a\x00b" }, "value"},
		{"rotation text", func(k *keyledger.KeyInput) { k.RotationDays = "abc" }, "rotation_days"},
		{"rotation zero", func(k *keyledger.KeyInput) { k.RotationDays = "0" }, "rotation_days"},
		{"rotation huge", func(k *keyledger.KeyInput) { k.RotationDays = "99999" }, "rotation_days"},
		{"control in scope", func(k *keyledger.KeyInput) { k.Scope = "a\x1bb" }, "scope"},
	}
	for _, c := range cases {
		in := ok
		c.edit(&in)
		nk, err := keyledger.ValidateNewKey(in)
		if c.field == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
				continue
			}
			if nk.Name != "OpenAI dev" || nk.Environment != "development" || nk.OwnerEmail != "maria@example.com" || nk.Value != "sk-proj-abc123456789" || nk.Provider != keyledger.ProviderOpenAI {
				t.Errorf("%s: not normalized: %+v", c.name, nk)
			}
			continue
		}
		if keyledger.ErrorCode(err) != keyledger.EINVALID {
			t.Errorf("%s: code %q, want invalid", c.name, keyledger.ErrorCode(err))
			continue
		}
		if _, ok := keyledger.FieldErrors(err)[c.field]; !ok {
			t.Errorf("%s: no error for field %s: %v", c.name, c.field, err)
		}
	}
}

func TestValueNeverInValidationErrors(t *testing.T) {
	t.Parallel()
	const marker = "sk-SECRETMARKER"
	_, err := keyledger.ValidateNewKey(keyledger.KeyInput{Value: marker + strings.Repeat("x", keyledger.MaxValueBytes)})
	if err == nil || strings.Contains(err.Error(), marker) {
		t.Fatalf("error must exist and not contain the value: %v", err)
	}
}

func TestRotationStatus(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		by   time.Time
		want keyledger.RotationStatus
	}{
		{now.Add(-time.Second), keyledger.RotationOverdue},
		{now, keyledger.RotationOverdue},
		{now.Add(24 * time.Hour), keyledger.RotationDueSoon},
		{now.Add(keyledger.DueSoonWindow), keyledger.RotationDueSoon},
		{now.Add(keyledger.DueSoonWindow + time.Hour), keyledger.RotationOK},
	}
	for _, c := range cases {
		if got := keyledger.RotationStatusAt(now, c.by); got != c.want {
			t.Errorf("rotate by %s: %s, want %s", c.by, got, c.want)
		}
	}
	if got := keyledger.RotateBy(now, 90); !got.Equal(now.AddDate(0, 0, 90)) {
		t.Errorf("RotateBy = %s", got)
	}
}

func TestChainHashCoversEveryField(t *testing.T) {
	t.Parallel()
	base := keyledger.AuditEvent{ID: 1, Time: time.Unix(1700000000, 0), ActorID: 2, ActorEmail: "a@x", Action: "key.reveal",
		KeyID: "k", KeyName: "n", KeyVersion: 1, SubjectID: 3, SubjectEmail: "s@x", Environment: "dev", IP: "1.2.3.4",
		UserAgent: "ua", Reason: "r", Details: "{}"}
	h0 := keyledger.ChainHash(nil, &base)
	edits := []func(*keyledger.AuditEvent){
		func(e *keyledger.AuditEvent) { e.ID++ },
		func(e *keyledger.AuditEvent) { e.Time = e.Time.Add(time.Microsecond) },
		func(e *keyledger.AuditEvent) { e.ActorID++ },
		func(e *keyledger.AuditEvent) { e.ActorEmail += "x" },
		func(e *keyledger.AuditEvent) { e.Action += "x" },
		func(e *keyledger.AuditEvent) { e.KeyID += "x" },
		func(e *keyledger.AuditEvent) { e.KeyName += "x" },
		func(e *keyledger.AuditEvent) { e.KeyVersion++ },
		func(e *keyledger.AuditEvent) { e.SubjectID++ },
		func(e *keyledger.AuditEvent) { e.SubjectEmail += "x" },
		func(e *keyledger.AuditEvent) { e.Environment += "x" },
		func(e *keyledger.AuditEvent) { e.IP += "x" },
		func(e *keyledger.AuditEvent) { e.UserAgent += "x" },
		func(e *keyledger.AuditEvent) { e.Reason += "x" },
		func(e *keyledger.AuditEvent) { e.Details = `{"a":1}` },
		// Moving a byte from one field to the next must change the hash.
		func(e *keyledger.AuditEvent) { e.KeyID, e.KeyName = "kn", "" },
	}
	for i, edit := range edits {
		e := base
		edit(&e)
		if bytes.Equal(keyledger.ChainHash(nil, &e), h0) {
			t.Errorf("edit %d does not change the hash", i)
		}
	}
	if bytes.Equal(keyledger.ChainHash([]byte("prev"), &base), h0) {
		t.Error("the previous link is not covered")
	}
}

func TestCanResetTOTPMatrix(t *testing.T) {
	t.Parallel()
	admin := &keyledger.User{ID: 1, Role: keyledger.RoleAdmin, Status: keyledger.UserActive}
	admin2 := &keyledger.User{ID: 2, Role: keyledger.RoleAdmin, Status: keyledger.UserActive}
	lead := &keyledger.User{ID: 3, Role: keyledger.RoleLead, Status: keyledger.UserActive}
	member := &keyledger.User{ID: 4, Role: keyledger.RoleMember, Status: keyledger.UserActive}
	gone := &keyledger.User{ID: 5, Role: keyledger.RoleAdmin, Status: keyledger.UserDeactivated}
	cases := []struct {
		name          string
		actor, target *keyledger.User
		allow         bool
	}{
		{"admin resets a member", admin, member, true},
		{"admin resets a lead", admin, lead, true},
		{"admin resets another admin", admin, admin2, true},
		{"admin resets their own", admin, admin, false},
		{"admin, no target", admin, nil, false},
		{"lead resets a member", lead, member, false},
		{"member resets a member", member, &keyledger.User{ID: 9, Role: keyledger.RoleMember, Status: keyledger.UserActive}, false},
		{"member resets their own", member, member, false},
		{"deactivated admin", gone, member, false},
		{"nobody", nil, member, false},
	}
	for _, c := range cases {
		err := keyledger.CanResetTOTP(c.actor, c.target)
		if (err == nil) != c.allow {
			t.Errorf("%s: err = %v, want allowed %v", c.name, err, c.allow)
		}
		if err != nil && keyledger.ErrorCode(err) != keyledger.EFORBIDDEN {
			t.Errorf("%s: code %s, want EFORBIDDEN", c.name, keyledger.ErrorCode(err))
		}
	}
}

// Only admins may offboard admins: a lead who could freeze an admin could
// lock every admin out, one after the other.
func TestCanOffboard(t *testing.T) {
	t.Parallel()
	admin := &keyledger.User{ID: 1, Role: keyledger.RoleAdmin, Status: keyledger.UserActive}
	lead := &keyledger.User{ID: 2, Role: keyledger.RoleLead, Status: keyledger.UserActive}
	member := &keyledger.User{ID: 3, Role: keyledger.RoleMember, Status: keyledger.UserActive}
	otherAdmin := &keyledger.User{ID: 4, Role: keyledger.RoleAdmin, Status: keyledger.UserActive}
	otherLead := &keyledger.User{ID: 5, Role: keyledger.RoleLead, Status: keyledger.UserActive}
	cases := []struct {
		who, subject *keyledger.User
		allow        bool
	}{
		{admin, otherAdmin, true}, {admin, lead, true}, {admin, member, true},
		{lead, otherAdmin, false}, {lead, otherLead, true}, {lead, member, true},
		{member, otherLead, false}, {member, otherAdmin, false}, {nil, member, false},
	}
	for _, c := range cases {
		err := keyledger.CanOffboard(c.who, c.subject)
		if (err == nil) != c.allow {
			t.Errorf("%v offboarding %s: allowed=%v, want %v (err %v)", c.who, c.subject.Role, err == nil, c.allow, err)
		}
		if err != nil && keyledger.ErrorCode(err) != keyledger.EFORBIDDEN {
			t.Errorf("code %s, want forbidden", keyledger.ErrorCode(err))
		}
	}
}

func TestFreshProof(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	u := &keyledger.User{ID: 1, Role: keyledger.RoleMember, Status: keyledger.UserActive}
	cases := []struct {
		name string
		a    keyledger.Actor
		want bool
	}{
		{"just now", keyledger.Actor{User: u, StepUpAt: now.Add(-time.Minute)}, true},
		{"at the edge", keyledger.Actor{User: u, StepUpAt: now.Add(-keyledger.StepUpWindow)}, true},
		{"stale", keyledger.Actor{User: u, StepUpAt: now.Add(-keyledger.StepUpWindow - time.Second)}, false},
		{"never", keyledger.Actor{User: u}, false},
		{"token", keyledger.Actor{User: u, StepUpAt: now, Token: &keyledger.Token{ID: 1}}, false},
	}
	for _, c := range cases {
		if got := keyledger.FreshProof(c.a, now); got != c.want {
			t.Errorf("%s: FreshProof = %v, want %v", c.name, got, c.want)
		}
	}
}

func TestEmailDomainNeedsOneAddress(t *testing.T) {
	t.Parallel()
	for email, want := range map[string]string{
		"a@corp.example": "corp.example", "A.B@Corp.Example": "corp.example",
		"a@evil.example@corp.example": "", `"a@evil"@corp.example`: "", "Name <a@corp.example>": "",
		"a@corp.example (c)": "", "@corp.example": "", "a@": "", "a": "", "a.@corp.example": "",
	} {
		got, ok := keyledger.EmailDomain(email)
		if got != want || ok != (want != "") {
			t.Errorf("EmailDomain(%q) = %q, %v; want %q", email, got, ok, want)
		}
		if (keyledger.CheckEmail(email) == "") != (want != "") && email == strings.ToLower(email) {
			t.Errorf("CheckEmail(%q) = %q", email, keyledger.CheckEmail(email))
		}
	}
}

// TestCheckValueKeepsWhitespace (issue 12, item 5): a confirmed value is
// stored byte for byte, surrounding whitespace included.
func TestCheckValueKeepsWhitespace(t *testing.T) {
	for _, v := range []string{" sk-1", "sk-1\n", "\tsk-1 \r\n", "sk-1\u00a0"} {
		if got, p := keyledger.CheckValue(v, false); p != keyledger.ValueWhitespaceProblem || got != "" {
			t.Errorf("CheckValue(%q, false) = %q, %q", v, got, p)
		}
		if got, p := keyledger.CheckValue(v, true); p != "" || got != v {
			t.Errorf("CheckValue(%q, true) = %q, %q; want it unchanged", v, got, p)
		}
	}
	if got, p := keyledger.CheckValue("a \n b", false); p != "" || got != "a \n b" {
		t.Errorf("inner whitespace: %q, %q", got, p)
	}
}
