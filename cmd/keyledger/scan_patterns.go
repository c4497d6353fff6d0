package main

import (
	"bytes"
	"math"
	"regexp"
	"slices"
	"sort"
)

// secretPattern is a provider's key format. A value it matches and that is
// not registered is still worth telling about ("looks like").
type secretPattern struct {
	provider string
	re       *regexp.Regexp
	// anchors are literals every match contains. Only lines holding one
	// are given to re: most text holds none, and looking for a literal
	// runs at memory speed where the regexp engine crawls.
	anchors []string
}

// secretPatterns are the provider formats keyledger scan knows. Each
// requires a body long enough that prose ("sk-proj-name") does not match.
var secretPatterns = []secretPattern{
	{"OpenAI", regexp.MustCompile(`sk-(?:proj|admin)-[A-Za-z0-9_-]{20,}`), []string{"sk-proj-", "sk-admin-"}},
	{"Anthropic", regexp.MustCompile(`sk-ant-[A-Za-z0-9_-]{20,}`), []string{"sk-ant-"}},
	{"Stripe", regexp.MustCompile(`(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}`), []string{"k_live_", "k_test_"}},
	{"GitHub", regexp.MustCompile(`(?:ghp|gho)_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}`), []string{"ghp_", "gho_", "github_pat_"}},
	{"AWS", regexp.MustCompile(`AKIA[0-9A-Z]{16}`), []string{"AKIA"}},
	{"Slack", regexp.MustCompile(`xox[bp]-[A-Za-z0-9-]{10,}`), []string{"xoxb-", "xoxp-"}},
	{"SendGrid", regexp.MustCompile(`SG\.[A-Za-z0-9_-]{16,}\.[A-Za-z0-9_-]{16,}`), []string{"SG."}},
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

// findCandidates lists the candidates of one file's content, line by line
// (in line order). A regexp only sees the lines that can match it: those
// holding one of a pattern's anchors, and those with an assignment of a
// long enough value (mayAssign), which together are a small share of any
// source tree.
func findCandidates(content []byte) []candidate {
	var out []candidate
	spans := map[int][][2]int{} // by line start: the pattern hits
	for _, p := range secretPatterns {
		for _, start := range linesWith(content, p.anchors) {
			line := lineAt(content, start)
			for _, loc := range p.re.FindAllIndex(line, -1) {
				if loc[0] > 0 && isTokenByte(line[loc[0]-1]) {
					continue // the middle of a longer word, e.g. "task-proj-…"
				}
				spans[start] = append(spans[start], [2]int{loc[0], loc[1]})
				out = append(out, candidate{line: start, value: string(line[loc[0]:loc[1]]), provider: p.provider})
			}
		}
	}
	for start := 0; start < len(content); {
		line := lineAt(content, start)
		if mayAssign(line) {
			for _, m := range assignment.FindAllSubmatchIndex(line, -1) {
				vs, ve := m[2], m[3]
				if overlaps(spans[start], vs, ve) {
					continue
				}
				v := line[vs:ve]
				if !keyLike(v) {
					continue
				}
				out = append(out, candidate{line: start, value: string(v)})
			}
		}
		start += len(line) + 1
	}
	// Line starts to line numbers, counting newlines once, in order.
	sort.SliceStable(out, func(i, j int) bool { return out[i].line < out[j].line })
	n, at := 1, 0
	for i := range out {
		n += bytes.Count(content[at:out[i].line], []byte{'\n'})
		at = out[i].line
		out[i].line = n
	}
	return out
}

// lineAt is the line of content that begins at start, without its newline.
func lineAt(content []byte, start int) []byte {
	if end := bytes.IndexByte(content[start:], '\n'); end >= 0 {
		return content[start : start+end]
	}
	return content[start:]
}

// linesWith returns the starts of the distinct lines of content holding
// one of anchors, in order.
func linesWith(content []byte, anchors []string) []int {
	var starts []int
	for _, a := range anchors {
		for from := 0; ; {
			i := bytes.Index(content[from:], []byte(a))
			if i < 0 {
				break
			}
			i += from
			start := bytes.LastIndexByte(content[:i], '\n') + 1
			starts = append(starts, start)
			end := bytes.IndexByte(content[i:], '\n')
			if end < 0 {
				break
			}
			from = i + end + 1
		}
	}
	if len(anchors) > 1 {
		sort.Ints(starts)
		starts = slices.Compact(starts)
	}
	return starts
}

// mayAssign is a quick test that line can yield an assignment candidate:
// an operator (":", "=", ":=" or "=>"), spaces, an optional quote, then a
// value that keyLike accepts. After an operator the regexp's value is the
// longest run of value bytes, the run measured here, so every line the
// regexp would take a candidate from passes (no false negatives); most
// code does not, and the regexp never sees it.
func mayAssign(line []byte) bool {
	for i, c := range line {
		if c != ':' && c != '=' {
			continue
		}
		if keyLike(valueAt(line, i+1)) {
			return true
		}
		if i+1 < len(line) && (c == ':' && line[i+1] == '=' || c == '=' && line[i+1] == '>') && keyLike(valueAt(line, i+2)) {
			return true
		}
	}
	return false
}

// valueAt is what follows j after spaces and an optional quote: the
// longest run of value bytes.
func valueAt(line []byte, j int) []byte {
	for j < len(line) && isSpace(line[j]) {
		j++
	}
	if j < len(line) && (line[j] == '"' || line[j] == '\'' || line[j] == '`') {
		j++
	}
	k := j
	for k < len(line) && isValueByte(line[k]) {
		k++
	}
	return line[j:k]
}

// keyLike says an assigned value is a candidate: long, not a path (absolute
// or relative, however varied), letters and digits, and high entropy.
func keyLike(v []byte) bool {
	return len(v) >= 16 && v[0] != '/' && v[0] != '.' && mixed(v) && shannon(v) >= minEntropy
}

// isSpace is \s in the assignment regexp.
func isSpace(b byte) bool {
	return b == ' ' || b == '\t' || b == '\n' || b == '\f' || b == '\r'
}

// isValueByte is the assignment regexp's value class [A-Za-z0-9+/_\-.=~].
func isValueByte(b byte) bool {
	return isTokenByte(b) || b == '+' || b == '/' || b == '.' || b == '=' || b == '~'
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
