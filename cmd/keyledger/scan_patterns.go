package main

import (
	"bytes"
	"math"
	"regexp"
)

// secretPattern is a provider's key format. A value it matches and that is
// not registered is still worth telling about ("looks like").
type secretPattern struct {
	provider string
	re       *regexp.Regexp
}

// secretPatterns are the provider formats keyledger scan knows. Each
// requires a body long enough that prose ("sk-proj-name") does not match.
var secretPatterns = []secretPattern{
	{"OpenAI", regexp.MustCompile(`sk-(?:proj|admin)-[A-Za-z0-9_-]{20,}`)},
	{"Anthropic", regexp.MustCompile(`sk-ant-[A-Za-z0-9_-]{20,}`)},
	{"Stripe", regexp.MustCompile(`(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}`)},
	{"GitHub", regexp.MustCompile(`(?:ghp|gho)_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}`)},
	{"AWS", regexp.MustCompile(`AKIA[0-9A-Z]{16}`)},
	{"Slack", regexp.MustCompile(`xox[bp]-[A-Za-z0-9-]{10,}`)},
	{"SendGrid", regexp.MustCompile(`SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}`)},
}

// assignment finds a value given to a name: `NAME=value`, `name: value`,
// `name = "value"`, `"name": "value"`. The value is a run of token
// characters, at least 16 long, optionally quoted.
var assignment = regexp.MustCompile(`[A-Za-z0-9_.\-"']\s*(?::|=|:=|=>)\s*["'` + "`" + `]?([A-Za-z0-9+/_\-.=~]{16,})`)

// minEntropy is the Shannon entropy (bits per character) above which an
// assigned value is a candidate. Random hex is 4, base64 about 5.5; words,
// paths and identifiers mostly stay below 3.5.
const minEntropy = 3.5

// candidate is a string found at a line of a file.
type candidate struct {
	line     int
	value    string
	provider string // the pattern that found it; "" for high entropy
}

// findCandidates lists the candidates of one file's content, line by line.
func findCandidates(content []byte) []candidate {
	var out []candidate
	for n, line := range bytes.Split(content, []byte("\n")) {
		var spans [][2]int
		for _, p := range secretPatterns {
			for _, loc := range p.re.FindAllIndex(line, -1) {
				if loc[0] > 0 && isTokenByte(line[loc[0]-1]) {
					continue // the middle of a longer word, e.g. "task-proj-…"
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
				// A path (absolute or relative) is no key, however varied.
				continue
			}
			out = append(out, candidate{line: n + 1, value: string(v)})
		}
	}
	return out
}

func isTokenByte(b byte) bool {
	return b == '_' || b == '-' || b >= '0' && b <= '9' || b >= 'A' && b <= 'Z' || b >= 'a' && b <= 'z'
}

func overlaps(spans [][2]int, start, end int) bool {
	for _, s := range spans {
		if start < s[1] && s[0] < end {
			return true
		}
	}
	return false
}

// mixed says v has letters and digits: a key does, a word or a path of
// words does not.
func mixed(v []byte) bool {
	var letter, digit bool
	for _, b := range v {
		switch {
		case b >= '0' && b <= '9':
			digit = true
		case b >= 'A' && b <= 'Z', b >= 'a' && b <= 'z':
			letter = true
		}
	}
	return letter && digit
}

// shannon is the entropy of v in bits per byte.
func shannon(v []byte) float64 {
	var counts [256]int
	for _, b := range v {
		counts[b]++
	}
	var h float64
	for _, c := range &counts {
		if c > 0 {
			p := float64(c) / float64(len(v))
			h -= p * math.Log2(p)
		}
	}
	return h
}
