package keyledger

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
)

// ExportFormats lists the formats of POST /export in menu order.
func ExportFormats() []ShellFormat {
	return []ShellFormat{FormatDotenv, FormatEnvFile, FormatBash, FormatFish, FormatPowerShell, FormatJSON}
}

const (
	// FormatJSON exports a flat JSON object of variable names to values.
	FormatJSON ShellFormat = "json"
	// FormatEnvFile is docker's env-file (docker run --env-file): KEY=value
	// lines taken literally, with no quoting at all.
	FormatEnvFile ShellFormat = "env-file"
)

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
	KeyID   string
	KeyName string
	Project string
	Reason  string
}

// RenderedExport is a file and what went into it.
type RenderedExport struct {
	File []byte
	// Carried are the entries written to File.
	Carried []ExportEntry
	// Unwritable are the entries format cannot carry exactly, with the
	// reason (a character class, never the value).
	Unwritable []LeftOut
}

// RenderExport writes entries in format f. An entry whose value the format
// cannot carry exactly is left out and listed in Unwritable, rather than
// written so that it reads back wrong or failing every other key with it.
// Formats with comments list leftOut and Unwritable at the top, so a file
// that lacks a key says so; JSON is a flat object of variables and cannot
// (it carries any value, though).
func RenderExport(f ShellFormat, entries []ExportEntry, leftOut ...LeftOut) (RenderedExport, error) {
	var out RenderedExport
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
			return out, err
		}
		out.File, out.Carried = buf.Bytes(), entries
		return out, nil
	}
	switch f {
	case FormatBash:
		buf.WriteString("# keyledger export: source this file (. ./file) in bash or zsh\n")
	case FormatFish:
		buf.WriteString("# keyledger export: source this file in fish\n")
	case FormatPowerShell:
		buf.WriteString("# keyledger export: dot-source this file in PowerShell\n")
	case FormatDotenv:
		buf.WriteString("# keyledger export\n")
	case FormatEnvFile:
		buf.WriteString("# keyledger export: docker run --env-file FILE (values are taken literally)\n")
	default:
		return out, Errorf(EINVALID, "Unknown export format %q.", f)
	}
	var lines []string
	for _, e := range entries {
		line, err := FormatAssignment(f, e.VarName, e.Value)
		if err != nil {
			out.Unwritable = append(out.Unwritable, LeftOut{KeyID: e.KeyID, KeyName: e.KeyName, Project: e.Project,
				Reason: err.Error() + "; json carries any value"})
			continue
		}
		out.Carried = append(out.Carried, e)
		lines = append(lines, line)
	}
	for _, l := range append(slices.Clone(leftOut), out.Unwritable...) {
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
	for _, line := range lines {
		buf.WriteString(line)
		buf.WriteByte('\n')
	}
	out.File = buf.Bytes()
	return out, nil
}

// FormatProblem is why one export format cannot carry a value.
type FormatProblem struct {
	Format ShellFormat
	Reason string
}

// ExportProblems lists the export formats that cannot carry value exactly,
// so the export page can say so before the download. Reasons name a
// character class, never the value.
func ExportProblems(value string) []FormatProblem {
	var out []FormatProblem
	for _, f := range ExportFormats() {
		if f == FormatJSON {
			continue
		}
		// The variable name only matters for env-file's line length,
		// where a placeholder of typical length is close enough for a
		// notice; the export itself checks the real name.
		if _, err := FormatAssignment(f, "PROVIDER_API_KEY", value); err != nil {
			reason := err.Error()
			var ue *UnrepresentableError
			if errors.As(err, &ue) {
				reason = ue.Reason
			}
			out = append(out, FormatProblem{Format: f, Reason: reason})
		}
	}
	return out
}
