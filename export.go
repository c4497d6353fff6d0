package keyledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
)

// ExportFormats lists the formats of POST /export in menu order.
func ExportFormats() []ShellFormat {
	return []ShellFormat{FormatDotenv, FormatBash, FormatFish, FormatPowerShell, FormatJSON}
}

// FormatJSON exports a flat JSON object of variable names to values.
const FormatJSON ShellFormat = "json"

// ParseExportFormat accepts a format name of POST /export.
func ParseExportFormat(s string) (ShellFormat, bool) {
	for _, f := range ExportFormats() {
		if string(f) == strings.ToLower(strings.TrimSpace(s)) {
			return f, true
		}
	}
	return "", false
}

// ExportEntry is one key in an export.
type ExportEntry struct {
	KeyID    string
	KeyName  string
	Project  string
	Provider Provider
	Value    string
	VarName  string
}

// AssignVarNames names each entry's variable after its provider
// (OPENAI_API_KEY…) and makes the names unique: when two keys would share
// a name, each gets its project appended (OPENAI_API_KEY_CHECKOUT), then,
// if that still collides, its key name.
func AssignVarNames(entries []ExportEntry) {
	for i := range entries {
		entries[i].VarName = EnvVarName(entries[i].Provider, entries[i].KeyName, entries[i].Value)
	}
	for _, suffix := range []func(e ExportEntry) string{
		func(e ExportEntry) string { return e.Project },
		func(e ExportEntry) string { return e.KeyName },
	} {
		count := map[string]int{}
		for _, e := range entries {
			count[e.VarName]++
		}
		for i, e := range entries {
			if count[e.VarName] > 1 {
				entries[i].VarName = e.VarName + "_" + identifierPart(suffix(e))
			}
		}
	}
	// Last resort for keys with identical names in one project (possible
	// across providers): number them in a stable order. A number is only
	// taken if no entry has that name already (K_2 may be another key's
	// project suffix), so the result is unique.
	taken := map[string]bool{}
	for _, e := range entries {
		taken[e.VarName] = true
	}
	used := map[string]bool{}
	order := make([]int, len(entries))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return entries[order[a]].KeyID < entries[order[b]].KeyID })
	for _, i := range order {
		name := entries[i].VarName
		if used[name] {
			for n := 2; ; n++ {
				if c := fmt.Sprintf("%s_%d", entries[i].VarName, n); !taken[c] && !used[c] {
					name = c
					break
				}
			}
		}
		used[name] = true
		entries[i].VarName = name
	}
}

// identifierPart turns free text into an upper-case identifier fragment.
func identifierPart(s string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToUpper(s) {
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
			under = false
		} else if !under && b.Len() > 0 {
			b.WriteByte('_')
			under = true
		}
	}
	out := strings.TrimRight(b.String(), "_")
	if out == "" {
		return "KEY"
	}
	return out
}

// ReasonDamaged is why a key whose stored value no longer decrypts (its
// envelope fails the integrity check) is left out of an export.
const ReasonDamaged = "could not be decrypted: the stored value is damaged; ask an admin to check the audit log and restore it from a backup"

// LeftOut is a key an export does not carry, and why.
type LeftOut struct {
	KeyName string
	Project string
	Reason  string
}

// RenderExport writes entries in format f. A value the format cannot carry
// exactly fails the whole export with a message naming the key (never the
// value), rather than writing a file that reads back wrong. Formats with
// comments list leftOut at the top, so a file that lacks a key says so;
// JSON is a flat object of variables and cannot.
func RenderExport(f ShellFormat, entries []ExportEntry, leftOut ...LeftOut) ([]byte, error) {
	var buf bytes.Buffer
	if f == FormatJSON {
		obj := make(map[string]string, len(entries))
		for _, e := range entries {
			obj[e.VarName] = e.Value
		}
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		if err := enc.Encode(obj); err != nil {
			return nil, err
		}
		return buf.Bytes(), nil
	}
	var problems []string
	switch f {
	case FormatBash:
		buf.WriteString("# keyledger export: source this file (. ./file) in bash or zsh\n")
	case FormatFish:
		buf.WriteString("# keyledger export: source this file in fish\n")
	case FormatPowerShell:
		buf.WriteString("# keyledger export: dot-source this file in PowerShell\n")
	case FormatDotenv:
		buf.WriteString("# keyledger export\n")
	default:
		return nil, Errorf(EINVALID, "Unknown export format %q.", f)
	}
	for _, l := range leftOut {
		// Names hold no line breaks (checkText), but a comment must never
		// end early whatever a name holds.
		line := "# left out: " + l.KeyName + " (" + l.Project + "): " + l.Reason
		buf.WriteString(strings.Map(func(r rune) rune {
			if r == '\n' || r == '\r' || r == '\u2028' || r == '\u2029' || r == '\u0085' {
				return ' '
			}
			return r
		}, line))
		buf.WriteByte('\n')
	}
	for _, e := range entries {
		line, err := FormatAssignment(f, e.VarName, e.Value)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s (%s): %v", e.KeyName, e.Project, err))
			continue
		}
		buf.WriteString(line)
		buf.WriteByte('\n')
	}
	if len(problems) > 0 {
		return nil, &Error{Code: EINVALID, Message: "Some values cannot be written exactly as " + f.Label() + ": " + strings.Join(problems, "; ") + ". Choose another format (json carries any value).",
			Fields: map[string]string{"format": "Some values cannot be written exactly in this format; choose another (json carries any value)."}}
	}
	return buf.Bytes(), nil
}
