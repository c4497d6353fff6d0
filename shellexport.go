package keyledger

import (
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// ShellFormat is a syntax a revealed key can be copied out in.
type ShellFormat string

// The shell syntaxes offered next to a revealed key.
const (
	FormatBash       ShellFormat = "bash"
	FormatFish       ShellFormat = "fish"
	FormatPowerShell ShellFormat = "powershell"
	FormatCmd        ShellFormat = "cmd"
	FormatDotenv     ShellFormat = "dotenv"
)

// ShellFormats lists the formats in display order.
func ShellFormats() []ShellFormat {
	return []ShellFormat{FormatBash, FormatFish, FormatPowerShell, FormatCmd, FormatDotenv}
}

// Label is the format's name as shown to people.
func (f ShellFormat) Label() string {
	switch f {
	case FormatBash:
		return "bash / zsh"
	case FormatFish:
		return "fish"
	case FormatPowerShell:
		return "PowerShell"
	case FormatCmd:
		return "cmd.exe"
	case FormatDotenv:
		return ".env"
	case FormatEnvFile:
		return "docker --env-file"
	}
	return string(f)
}

// UnrepresentableError says a value cannot be written safely in a format.
// Reason names the offending character class, never the value itself: the
// error may end up in a log or on a page next to other people.
type UnrepresentableError struct {
	Format ShellFormat
	Reason string
}

func (e *UnrepresentableError) Error() string {
	return "cannot be written as a " + e.Format.Label() + " line: " + e.Reason
}

// FormatAssignment returns one line (without a trailing newline) that sets
// the variable name to value in format f. When the format cannot carry the
// value exactly, it returns an *UnrepresentableError instead of a line that
// would silently set something else: a wrong secret fails far from here.
//
// Every format refuses NUL (no environment can hold it), invalid UTF-8 (the
// line is shown in a browser and pasted), and a name outside
// [A-Za-z_][A-Za-z0-9_]*.
func FormatAssignment(f ShellFormat, name, value string) (string, error) {
	fail := func(reason string) (string, error) {
		return "", &UnrepresentableError{Format: f, Reason: reason}
	}
	switch f {
	case FormatBash, FormatFish, FormatPowerShell, FormatCmd, FormatDotenv, FormatEnvFile:
	default:
		return fail("unknown format")
	}
	if !validShellName(name) {
		return fail("the variable name must be a letter or _ followed by letters, digits or _")
	}
	if !utf8.ValidString(value) {
		return fail("is not valid UTF-8 text")
	}
	if strings.IndexByte(value, 0) >= 0 {
		return fail("contains a NUL byte")
	}
	switch f {
	case FormatBash:
		// Inside POSIX single quotes nothing is special but the closing
		// quote, so '\'' (close, escaped quote, reopen) carries any value,
		// newlines included, in bash, zsh and dash alike.
		return "export " + name + "='" + strings.ReplaceAll(value, "'", `'\''`) + "'", nil
	case FormatFish:
		return "set -gx " + name + " '" + fishQuote(value) + "'", nil
	case FormatPowerShell:
		if value == "" {
			// Assigning '' to $env:NAME removes the variable.
			return fail("is empty")
		}
		return "$env:" + name + " = '" + powerShellQuote(value) + "'", nil
	case FormatEnvFile:
		if reason := envFileProblem(name, value); reason != "" {
			return fail(reason)
		}
		return name + "=" + value, nil
	case FormatCmd:
		if reason := cmdProblem(name, value); reason != "" {
			return fail(reason)
		}
		return `set "` + name + "=" + value + `"`, nil
	default:
		line, reason := dotenvLine(name, value)
		if reason != "" {
			return fail(reason)
		}
		return line, nil
	}
}

// validShellName accepts the names every target agrees on; dotenv parsers
// also allow "." and "-", which shells do not.
func validShellName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// fishQuote escapes for fish single quotes, which treat \\ and \' as escapes
// and keep every other backslash; escaping all of them keeps the rule simple.
func fishQuote(value string) string {
	var b strings.Builder
	b.Grow(len(value) + 2)
	for i := 0; i < len(value); i++ {
		c := value[i]
		if c == '\\' || c == '\'' {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}

// powerShellQuote doubles every quote character because PowerShell ends a
// single-quoted string at any of ' ‘ ’ ‚ ‛, not only the ASCII one; a
// doubled quote stands for one literal quote of that kind.
func powerShellQuote(value string) string {
	var b strings.Builder
	b.Grow(len(value) + 2)
	for _, r := range value {
		switch r {
		case '\'', '\u2018', '\u2019', '\u201A', '\u201B':
			b.WriteRune(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// cmdProblem names what set "NAME=value" cannot carry. cmd.exe has no
// escape that works both typed and in a batch file for % and !
// (expansion, delayed expansion), a " ends the quoted form early, and a
// line break ends the command.
func cmdProblem(name, value string) string {
	switch {
	case strings.ContainsRune(value, '%'):
		return "contains %"
	case strings.ContainsRune(value, '!'):
		return "contains !"
	case strings.ContainsRune(value, '"'):
		return `contains "`
	case strings.ContainsAny(value, "\r\n"):
		return "contains a line break"
	case value == "":
		// set "NAME=" deletes the variable instead of emptying it.
		return "is empty"
	}
	// cmd.exe reads at most 8191 UTF-16 units per command line.
	n := len(`set "=`) + len(name) + len(`"`)
	for _, r := range value {
		n += utf16.RuneLen(r)
	}
	if n > 8191 {
		return "is too long for one cmd.exe line"
	}
	return ""
}

// dotenvLine writes a line that godotenv, compose-go and npm dotenv all read
// back as value, or names why no such line exists. Single quotes are
// literal in all three. A line break or a ' needs double quotes, where all
// three agree only on \n and \r: npm dotenv keeps \" \\ and \$ as written,
// and godotenv and compose-go expand $, so a value that needs double quotes
// and holds ", \ or $ is refused. A raw CR is escaped too, because npm
// dotenv turns it into LF.
//
// A value ending in \ is refused because godotenv takes the \ before the
// closing quote as escaping it, in either kind of quotes.
func dotenvLine(name, value string) (string, string) {
	if strings.HasSuffix(value, `\`) {
		return "", `ends with \`
	}
	if !strings.ContainsAny(value, "'\n\r") {
		return name + "='" + value + "'", ""
	}
	if strings.ContainsAny(value, "\"\\$") {
		if strings.ContainsRune(value, '\'') {
			return "", `contains ' together with ", \ or $`
		}
		return "", `contains a line break together with ", \ or $`
	}
	value = strings.ReplaceAll(value, "\n", `\n`)
	value = strings.ReplaceAll(value, "\r", `\r`)
	return name + `="` + value + `"`, ""
}

// envFileProblem names what a docker env-file line cannot carry. docker/cli
// (pkg/kvfile/kvfile.go, parseKeyValueFile, read at v29.10.0+incompatible)
// reads the file with a bufio.Scanner line by line and keeps everything
// after the first "=" as it is: no quotes, escapes or expansion, leading
// and trailing spaces kept (only the line's own leading space, before the
// name, is trimmed). So a value cannot hold a line break; ScanLines also
// drops a CR that ends a line; and the scanner fails the whole file on a
// line of bufio.MaxScanTokenSize (64 KiB) or more. Invalid UTF-8 (refused
// by the parser) and NUL are refused for every format already.
func envFileProblem(name, value string) string {
	switch {
	case strings.Contains(value, "\n"):
		return "contains a line break"
	case strings.HasSuffix(value, "\r"):
		return "ends with a carriage return"
	case len(name)+1+len(value) >= 64<<10:
		return "is too long for one line"
	}
	return ""
}
