package web

import "testing"

func TestCSVCellDefusesFormulas(t *testing.T) {
	for in, want := range map[string]string{
		"=cmd()":        "'=cmd()",
		"+SUM(A1)":      "'+SUM(A1)",
		"-2+3":          "'-2+3",
		"@SUM(1)":       "'@SUM(1)",
		"\tindent":      "'\tindent",
		"\rreturn":      "'\rreturn",
		"checkout":      "checkout",
		"":              "",
		"a=b":           "a=b",
		"sk-proj-…XyZ9": "sk-proj-…XyZ9",
	} {
		if got := csvCell(in); got != want {
			t.Errorf("csvCell(%q) = %q, want %q", in, got, want)
		}
	}
}
