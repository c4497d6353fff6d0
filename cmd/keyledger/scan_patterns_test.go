package main

import (
	"strings"
	"testing"
)

// TestFindCandidates: each provider format is found with its line and
// provider; prose that only starts like a key, identifiers and low-entropy
// assignments are not candidates.
func TestFindCandidates(t *testing.T) {
	t.Parallel()
	body := "abcdefghij0123456789ABCDEFGHIJ0123456789"
	for _, tc := range []struct {
		line, value, provider string
	}{
		{"k = sk-proj-" + body, "sk-proj-" + body, "OpenAI"},
		{"k = sk-admin-" + body, "sk-admin-" + body, "OpenAI"},
		{`"sk-ant-api03-` + body + `"`, "sk-ant-api03-" + body, "Anthropic"},
		{"STRIPE=sk_live_" + body, "sk_live_" + body, "Stripe"},
		{"STRIPE=rk_test_" + body, "rk_test_" + body, "Stripe"},
		{"token: ghp_" + body, "ghp_" + body, "GitHub"},
		{"token: gho_" + body, "gho_" + body, "GitHub"},
		{"token: github_pat_11AB" + body, "github_pat_11AB" + body, "GitHub"},
		{"aws AKIAIOSFODNN7EXAMPL3 x", "AKIAIOSFODNN7EXAMPL3", "AWS"},
		{"slack xoxb-1234-5678-abcdEFGH", "xoxb-1234-5678-abcdEFGH", "Slack"},
		{"sg SG.abcdefghij0123456789.ABCDEFGHIJ0123456789xyz", "SG.abcdefghij0123456789.ABCDEFGHIJ0123456789xyz", "SendGrid"},
		{`  api_key = "Zq8f3a9c0d7e6b5a4c3d2e1f0a9b8c7xY",`, "Zq8f3a9c0d7e6b5a4c3d2e1f0a9b8c7xY", ""},
		{`DB_PASSWORD=h7Gk2mPq9xLw4nRt8vBz`, "h7Gk2mPq9xLw4nRt8vBz", ""},
	} {
		got := findCandidates([]byte("first line\n" + tc.line + "\n"))
		if len(got) != 1 || got[0].line != 2 || got[0].value != tc.value || got[0].provider != tc.provider {
			t.Errorf("%q: got %+v, want %q (%q) at line 2", tc.line, got, tc.value, tc.provider)
		}
	}
	for _, line := range []string{
		"see sk-proj-name in the docs",          // too short a body
		"task-proj-" + body,                     // the middle of a word
		"name = checkout_service_production",    // no digits
		"path = /usr/local/share/keyledger/v2x", // low entropy, slashes
		"version = 1.2.3-1.2.3-1.2.3-1.2.3",     // low entropy
		"AKIA1234",                              // too short
		"mask = aaaaaaaaaaaaaaaaaaaa1111111111", // letters and digits, low entropy
	} {
		if got := findCandidates([]byte(line)); len(got) != 0 {
			t.Errorf("%q: candidates %+v, want none", line, got)
		}
	}
	// A pattern hit is not reported again as a high-entropy assignment.
	if got := findCandidates([]byte("OPENAI_API_KEY=sk-proj-" + body)); len(got) != 1 {
		t.Errorf("pattern and entropy both found %+v", got)
	}
	if strings.Contains(withArticle("OpenAI")+withArticle("Stripe"), "a OpenAI") {
		t.Error("article")
	}
}
