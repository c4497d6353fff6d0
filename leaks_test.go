package keyledger

import (
	"strings"
	"testing"
)

func TestValidateLeakReport(t *testing.T) {
	ok, err := ValidateLeakReport(LeakReportInput{Value: " sk-proj-abc ", Where: "  https://gist.example.com/x  "})
	if err != nil || ok.Where != "https://gist.example.com/x" || ok.Value != " sk-proj-abc " {
		t.Fatalf("valid report: %+v, %v", ok, err)
	}
	for name, c := range map[string]struct {
		in    LeakReportInput
		field string
	}{
		"no value":           {LeakReportInput{Value: " \n", Where: "x"}, "value"},
		"value too long":     {LeakReportInput{Value: strings.Repeat("k", MaxLeakCandidateBytes+1), Where: "x"}, "value"},
		"no where":           {LeakReportInput{Value: "sk-1", Where: "  "}, "where"},
		"where too long":     {LeakReportInput{Value: "sk-1", Where: strings.Repeat("w", MaxLeakWhereRunes+1)}, "where"},
		"bidi in where":      {LeakReportInput{Value: "sk-1", Where: "repo \u202egnp.exe"}, "where"},
		"NUL in where":       {LeakReportInput{Value: "sk-1", Where: "a\x00b"}, "where"},
		"newline in where":   {LeakReportInput{Value: "sk-1", Where: "a\nBcc: x"}, "where"},
		"value in where":     {LeakReportInput{Value: "sk-proj-SECRET123", Where: "https://x.example/?k=sk-proj-SECRET123"}, "where"},
		"invalid UTF-8 text": {LeakReportInput{Value: "sk-\xff", Where: "x"}, "value"},
	} {
		_, err := ValidateLeakReport(c.in)
		if ErrorCode(err) != EINVALID || FieldErrors(err)[c.field] == "" {
			t.Errorf("%s: %v, want a field error on %s", name, err, c.field)
		}
		if strings.Contains(ErrorMessage(err)+strings.Join(mapValues(FieldErrors(err)), " "), "SECRET123") {
			t.Errorf("%s: the error repeats the value", name)
		}
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func TestLeakWhereURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://gist.example.com/x":  "https://gist.example.com/x",
		"http://ci.example.com/b/812": "http://ci.example.com/b/812",
		"javascript:alert(1)":         "",
		"//evil.example.com":          "",
		"CI log of build 812":         "",
		"ftp://files.example.com/a":   "",
		"https://a.example.com/x y":   "",
	} {
		if got := LeakWhereURL(in); got != want {
			t.Errorf("LeakWhereURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLeakPolicies(t *testing.T) {
	member := &User{ID: 1, Role: RoleMember, Status: UserActive}
	owner := &User{ID: 2, Role: RoleMember, Status: UserActive}
	lead := &User{ID: 3, Role: RoleLead, Status: UserActive}
	gone := &User{ID: 4, Role: RoleAdmin, Status: UserDeactivated}
	if CanReportLeak(member) != nil || CanReportLeak(gone) == nil {
		t.Error("CanReportLeak: any active user, nobody deactivated")
	}
	if CanListLeaks(lead) != nil || CanListLeaks(member) == nil || CanListLeaks(gone) == nil {
		t.Error("CanListLeaks: leads and admins")
	}
	if CanViewLeak(owner, owner.ID, false) != nil || CanViewLeak(lead, owner.ID, false) != nil || CanViewLeak(member, owner.ID, true) != nil {
		t.Error("CanViewLeak: the owner, leads and the reporter may see it")
	}
	if CanViewLeak(member, owner.ID, false) == nil || CanViewLeak(gone, owner.ID, true) == nil {
		t.Error("CanViewLeak: another member or a deactivated user may not")
	}
	if CanResolveLeak(owner, owner.ID) != nil || CanResolveLeak(lead, owner.ID) != nil || CanResolveLeak(member, owner.ID) == nil || CanResolveLeak(gone, owner.ID) == nil {
		t.Error("CanResolveLeak: the owner, leads and admins")
	}
	if CanSeeLeakExposures(owner) == nil || CanSeeLeakExposures(lead) != nil {
		t.Error("CanSeeLeakExposures: the audit log's readers")
	}
}
