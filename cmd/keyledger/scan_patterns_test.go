package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
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

// findCandidatesSlow is findCandidates without the prefilters: every
// regexp on every line. It is the reference the fast one must agree with.
func findCandidatesSlow(content []byte) []candidate {
	var out []candidate
	for n, line := range bytes.Split(content, []byte("\n")) {
		var spans [][2]int
		for _, p := range secretPatterns {
			for _, loc := range p.re.FindAllIndex(line, -1) {
				if loc[0] > 0 && isTokenByte(line[loc[0]-1]) {
					continue
				}
				spans = append(spans, [2]int{loc[0], loc[1]})
				out = append(out, candidate{line: n + 1, value: string(line[loc[0]:loc[1]]), provider: p.provider})
			}
		}
		for _, m := range assignment.FindAllSubmatchIndex(line, -1) {
			start, end := m[2], m[3]
			if overlaps(spans, start, end) {
				continue
			}
			v := line[start:end]
			if v[0] == '/' || v[0] == '.' || !mixed(v) || shannon(v) < minEntropy {
				continue
			}
			out = append(out, candidate{line: n + 1, value: string(v)})
		}
	}
	return out
}

// sameCandidates compares as multisets: the order within a line may differ.
func sameCandidates(a, b []candidate) bool {
	key := func(cs []candidate) []string {
		var out []string
		for _, c := range cs {
			out = append(out, fmt.Sprintf("%d\x00%s\x00%s", c.line, c.provider, c.value))
		}
		sort.Strings(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

// TestFindCandidatesPrefilterMissesNothing: the anchors and mayAssign only
// skip lines no regexp would match. Checked against the plain search on
// tricky operators, on lines made of the bytes that matter, and on the
// benchmark's source text.
func TestFindCandidatesPrefilterMissesNothing(t *testing.T) {
	t.Parallel()
	body := "abcdefghij0123456789ABCDEFGHIJ0123456789"
	inputs := []string{
		"a:===Zq8f3a9c0d7e6b\n", // the value is "===Zq8…": 17 bytes, 14 after the '='s
		"a:= =Zq8f3a9c0d7e6b5a4c\n",
		"a => 'Zq8f3a9c0d7e6b5a4c9x'\n",
		"x = `Zq8f3a9c0d7e6b5a4c9x`\n\nlast: Q1w2E3r4T5y6U7i8O9p0",
		"\"k\":\t\"Zq8f3a9c0d7e6b5a4c9x\"\r\n",
		"k=sk-proj-" + body + " v=" + body + "\nsk_live_" + body + "=rk_test_" + body,
		"OPENAI_API_KEY=sk-proj-" + body + "\nGH=ghp_" + body + "ghp_" + body,
		"xoxb-0123456789ab xoxp-0123456789ab AKIAIOSFODNN7EXAMPL3AKIAIOSFODNN7EXAMPL3",
		"SG.abcdefghij0123456789.ABCDEFGHIJ0123456789xyz:" + body,
		"no newline at the end: Zq8f3a9c0d7e6b5a4c9x",
	}
	rng := rand.New(rand.NewPCG(5, 6))
	alphabet := []string{"a", "Z", "9", "=", ":", ">", " ", "\t", "\"", "'", "`", "/", ".", "-", "_", "+", "~", "\n", "sk-proj-", "sk-ant-", "sk-admin-", "sk_live_", "rk_test_", "AKIA", "gho_", "github_pat_", "xoxp-", "ghp_", "xoxb-", "SG.", "Q7x"}
	for range 3000 {
		var b strings.Builder
		for range 5 + rng.IntN(60) {
			b.WriteString(alphabet[rng.IntN(len(alphabet))])
			if rng.IntN(2) == 0 {
				b.WriteString(benchToken(rng, 4+rng.IntN(36)))
			}
		}
		inputs = append(inputs, b.String())
	}
	lines := benchLines(rng)
	var src strings.Builder
	for i := range 20000 {
		if i%50 == 7 {
			fmt.Fprintf(&src, "checksum = \"%x%x\"\n", rng.Uint64(), rng.Uint64())
		}
		src.WriteString(lines[rng.IntN(len(lines))] + "\n")
	}
	inputs = append(inputs, src.String())
	for _, in := range inputs {
		fast, slow := findCandidates([]byte(in)), findCandidatesSlow([]byte(in))
		if !sameCandidates(fast, slow) {
			t.Errorf("%q:\nfast %+v\nslow %+v", in, fast, slow)
		}
	}
}
