package keyledger

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/joho/godotenv"
)

// testVarName is unusual enough not to collide with anything the shells
// under test set themselves.
const testVarName = "KL_TEST_VALUE"

// nastyValues are values every shell format must either carry exactly or
// refuse; the round-trip tests run all of them through real interpreters
// where those are installed.
func nastyValues() []string {
	return []string{
		"",
		"plain",
		"sk-proj-abcDEF123_-xyz",
		"it's", "'", "''", "'leading", "trailing'", `\'`, `'\''`,
		`"double"`, `"`, `'"mixed"'`, `say "hi" it's`,
		"$HOME", "${HOME}", "$(rm -rf /)", "`whoami`", "$1 $@ $$ $?",
		`back\slash`, `\`, `\\`, `trailing\`, `\n literal`, `C:\Users\me\`,
		"with space", " leading space", "trailing space ", "\ttab\t",
		"line1\nline2", "trailing newline\n", "\n", "\n\n", "crlf\r\nline", "cr\ronly", "\r",
		"héllo wörld", "日本語のキー", "emoji 🔑🙂👩‍💻", "‘curly’ ‚low‛ “double” „low“",
		"’", "’’", "'’", "it’s",
		"!", "!!", "bang!$", "!$:p", "%PATH%", "100%", "%%", "^&|<>", "a=b=c",
		"#hash", "a #comment", "a#b", "export FOO=bar", "; rm -rf / #",
		"-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----\n",
		`{"type": "service_account", "private_key": "-----BEGIN\nabc\n-----END\n"}`,
		"\x01\x07\x1b[31mred\x7f", "\u2028\u2029", "\u00a0nbsp\u0085nel", "\ufeffbom",
		strings.Repeat("abcdefgh", 1024),
		strings.Repeat("aB3'\"$\\`!% \t\n‘’", 8192/16),
	}
}

func TestShellFormats(t *testing.T) {
	want := []ShellFormat{FormatBash, FormatFish, FormatPowerShell, FormatCmd, FormatDotenv}
	got := ShellFormats()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ShellFormats() = %v, want %v", got, want)
	}
	labels := map[ShellFormat]string{
		FormatBash:       "bash / zsh",
		FormatFish:       "fish",
		FormatPowerShell: "PowerShell",
		FormatCmd:        "cmd.exe",
		FormatDotenv:     ".env",
		"tcsh":           "tcsh",
	}
	for f, want := range labels {
		if got := f.Label(); got != want {
			t.Errorf("%q.Label() = %q, want %q", f, got, want)
		}
	}
}

func TestFormatAssignmentExamples(t *testing.T) {
	tests := []struct {
		f     ShellFormat
		value string
		want  string
	}{
		{FormatBash, "abc", `export KL_TEST_VALUE='abc'`},
		{FormatBash, "it's", `export KL_TEST_VALUE='it'\''s'`},
		{FormatBash, "", `export KL_TEST_VALUE=''`},
		{FormatFish, "abc", `set -gx KL_TEST_VALUE 'abc'`},
		{FormatFish, `it's a\b`, `set -gx KL_TEST_VALUE 'it\'s a\\b'`},
		{FormatPowerShell, "abc", `$env:KL_TEST_VALUE = 'abc'`},
		{FormatPowerShell, "it's it’s", `$env:KL_TEST_VALUE = 'it''s it’’s'`},
		{FormatCmd, "a b&c^", `set "KL_TEST_VALUE=a b&c^"`},
		{FormatDotenv, "abc", `KL_TEST_VALUE='abc'`},
		{FormatDotenv, `a"b$c\d`, `KL_TEST_VALUE='a"b$c\d'`},
		{FormatDotenv, "it's", `KL_TEST_VALUE="it's"`},
		{FormatDotenv, "a\nb\rc", `KL_TEST_VALUE="a\nb\rc"`},
	}
	for _, tt := range tests {
		got, err := FormatAssignment(tt.f, testVarName, tt.value)
		if err != nil || got != tt.want {
			t.Errorf("FormatAssignment(%s, %q) = %q, %v; want %q", tt.f, tt.value, got, err, tt.want)
		}
	}
}

// TestFormatAssignmentBashRoundTrip sources each line in real POSIX shells
// and compares what they hold byte for byte. Only bash is required; sh, dash
// and zsh run when present, since export NAME='...' is meant for all of them.
func TestFormatAssignmentBashRoundTrip(t *testing.T) {
	for _, sh := range []string{"bash", "sh", "dash", "zsh"} {
		if _, err := exec.LookPath(sh); err != nil {
			if sh == "bash" {
				t.Fatalf("bash not found: %v", err)
			}
			continue
		}
		t.Run(sh, func(t *testing.T) {
			args := []string{"-c", `. "$1" && printf %s "$` + testVarName + `"`, "_"}
			if sh == "zsh" {
				args = append([]string{"-f"}, args...)
			}
			roundTripInShell(t, FormatBash, sh, args)
		})
	}
}

// TestFormatAssignmentFishRoundTrip runs fish when installed;
// TestFormatAssignmentDecoders covers the escaping everywhere else.
func TestFormatAssignmentFishRoundTrip(t *testing.T) {
	if _, err := exec.LookPath("fish"); err != nil {
		t.Skip("fish not installed; the escaping is checked against a reference decoder in TestFormatAssignmentDecoders")
	}
	roundTripInShell(t, FormatFish, "fish", []string{"--no-config", "-c", `source $argv[1]; and printf %s "$` + testVarName + `"`})
}

// TestFormatAssignmentPowerShellRoundTrip runs pwsh when installed; it rarely
// is on Linux, so TestFormatAssignmentDecoders carries a decoder that follows
// PowerShell's own tokenizer (any of ' ‘ ’ ‚ ‛ ends the string, two in a row
// stand for one).
func TestFormatAssignmentPowerShellRoundTrip(t *testing.T) {
	if _, err := exec.LookPath("pwsh"); err != nil {
		t.Skip("pwsh not installed; the quoting is checked against a reference decoder in TestFormatAssignmentDecoders")
	}
	dir := t.TempDir()
	for i, v := range nastyValues() {
		line, err := FormatAssignment(FormatPowerShell, testVarName, v)
		if err != nil {
			continue
		}
		script := filepath.Join(dir, fmt.Sprintf("v%d.ps1", i))
		body := line + "\n[Console]::Out.Write($env:" + testVarName + ")\n"
		if err := os.WriteFile(script, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("pwsh", "-NoProfile", "-NonInteractive", "-File", script).Output()
		if err != nil {
			t.Errorf("pwsh on value %d (%q): %v", i, v, err)
			continue
		}
		if string(out) != v {
			t.Errorf("pwsh round trip of %q gave %q", v, out)
		}
	}
}

func roundTripInShell(t *testing.T, f ShellFormat, shell string, args []string) {
	t.Helper()
	dir := t.TempDir()
	for i, v := range nastyValues() {
		line, err := FormatAssignment(f, testVarName, v)
		if err != nil {
			t.Errorf("FormatAssignment(%s, %q): %v", f, v, err)
			continue
		}
		file := filepath.Join(dir, fmt.Sprintf("v%d", i))
		if err := os.WriteFile(file, []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(shell, append(args, file)...)
		// A bare environment keeps BASH_ENV, ENV and rc files of the host
		// out of the comparison.
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C.UTF-8", "HOME=" + dir}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Errorf("%s on value %d (%q): %v: %s", shell, i, v, err, stderr.String())
			continue
		}
		if string(out) != v {
			t.Errorf("%s round trip of %q gave %q", shell, v, out)
		}
	}
}

func TestFormatAssignmentDotenvRoundTrip(t *testing.T) {
	accepted := 0
	for _, v := range nastyValues() {
		line, err := FormatAssignment(FormatDotenv, testVarName, v)
		if err != nil {
			if !dotenvMayRefuse(v) {
				t.Errorf("FormatAssignment(dotenv, %q) refused a portable value: %v", v, err)
			}
			continue
		}
		accepted++
		checkDotenvLine(t, line, v)
	}
	if accepted < len(nastyValues())/2 {
		t.Errorf("dotenv accepted only %d of %d values", accepted, len(nastyValues()))
	}
}

func TestFormatAssignmentDotenvRefusals(t *testing.T) {
	tests := []struct {
		value  string
		reason string
	}{
		{`it's "quoted"`, `contains ' together with ", \ or $`},
		{`it's $HOME`, `contains ' together with ", \ or $`},
		{`it's a\b`, `contains ' together with ", \ or $`},
		{"line\n\"two\"", `contains a line break together with ", \ or $`},
		{"line\n$HOME", `contains a line break together with ", \ or $`},
		{"line\r\\two", `contains a line break together with ", \ or $`},
		{`trailing\`, `ends with \`},
		{`it's\`, `ends with \`},
		{"a\x00b", "contains a NUL byte"},
		{"a\xffb", "is not valid UTF-8 text"},
	}
	for _, tt := range tests {
		line, err := FormatAssignment(FormatDotenv, testVarName, tt.value)
		var ue *UnrepresentableError
		if !errors.As(err, &ue) {
			t.Errorf("FormatAssignment(dotenv, %q) = %q, %v; want an *UnrepresentableError", tt.value, line, err)
			continue
		}
		if ue.Format != FormatDotenv || ue.Reason != tt.reason {
			t.Errorf("FormatAssignment(dotenv, %q): got %+v, want reason %q", tt.value, *ue, tt.reason)
		}
	}
}

func TestFormatAssignmentCmdRefusals(t *testing.T) {
	tests := []struct {
		value  string
		reason string
	}{
		{"100%", "contains %"},
		{"%PATH%", "contains %"},
		{"bang!", "contains !"},
		{`say "hi"`, `contains "`},
		{"a\nb", "contains a line break"},
		{"a\rb", "contains a line break"},
		{"", "is empty"},
		{strings.Repeat("x", 8191), "is too long for one cmd.exe line"},
		{strings.Repeat("🔑", 4090), "is too long for one cmd.exe line"}, // 8180 UTF-16 units
	}
	for _, tt := range tests {
		line, err := FormatAssignment(FormatCmd, testVarName, tt.value)
		var ue *UnrepresentableError
		if !errors.As(err, &ue) || ue.Reason != tt.reason {
			t.Errorf("FormatAssignment(cmd, %.40q) = %.40q, %v; want reason %q", tt.value, line, err, tt.reason)
		}
	}
	longest := strings.Repeat("x", 8191-len(`set "`+testVarName+`="`))
	if _, err := FormatAssignment(FormatCmd, testVarName, longest); err != nil {
		t.Errorf("a value filling the line exactly was refused: %v", err)
	}
	if _, err := FormatAssignment(FormatCmd, testVarName, longest+"x"); err == nil {
		t.Errorf("a value one past the line limit was accepted")
	}
}

// TestFormatAssignmentDecoders runs every nasty value through the reference
// decoders, which follow each interpreter's documented quoting rules rather
// than the encoder's code, so they catch an escaping rule that was forgotten.
func TestFormatAssignmentDecoders(t *testing.T) {
	for _, f := range ShellFormats() {
		for _, v := range nastyValues() {
			line, err := FormatAssignment(f, testVarName, v)
			if err != nil {
				if !mayRefuse(f, v) {
					t.Errorf("FormatAssignment(%s, %q) refused: %v", f, v, err)
				}
				continue
			}
			got, err := decodeLine(f, line, testVarName)
			if err != nil {
				t.Errorf("decoding %s line %q: %v", f, line, err)
				continue
			}
			if got != v {
				t.Errorf("%s: %q decodes to %q", f, v, got)
			}
		}
	}
}

// TestFormatAssignmentRefusedEverywhere checks what no format may carry, and that the error
// never repeats the value, which may be the secret itself.
func TestFormatAssignmentRefusedEverywhere(t *testing.T) {
	const marker = "SECRET-MARKER-7d3f"
	badValues := []string{
		marker + "\x00",
		"\x00" + marker,
		marker + "\xff",
		marker + "\xc3\x28",
		marker + "\xed\xa0\x80", // a UTF-16 surrogate encoded as UTF-8
	}
	badNames := []string{"", "1ABC", "A-B", "A B", "A=B", "É", "A\n", "$A", "A.B", "export X", "A\x00", marker}
	for _, f := range append(ShellFormats(), "tcsh") {
		for _, v := range badValues {
			checkRefusal(t, f, testVarName, v, marker)
		}
		for _, name := range badNames {
			if name == marker {
				continue // marker is a valid name; it is used as a value below
			}
			checkRefusal(t, f, name, marker, marker)
		}
		checkRefusal(t, f, "9"+marker, marker, marker)
	}
	// Format-specific refusals must not leak either.
	for f, v := range map[ShellFormat]string{
		FormatCmd:    marker + "%!\"\n",
		FormatDotenv: marker + "'\"$\\",
	} {
		checkRefusal(t, f, testVarName, v, marker)
	}
}

func checkRefusal(t *testing.T, f ShellFormat, name, value, marker string) {
	t.Helper()
	line, err := FormatAssignment(f, name, value)
	if err == nil {
		t.Errorf("FormatAssignment(%s, %q, %q) = %q, want a refusal", f, name, value, line)
		return
	}
	if line != "" {
		t.Errorf("FormatAssignment(%s, %q, %q) returned a line with its error", f, name, value)
	}
	var ue *UnrepresentableError
	if !errors.As(err, &ue) || ue.Format != f {
		t.Errorf("FormatAssignment(%s, %q, %q): error %T %v, want *UnrepresentableError for %s", f, name, value, err, err, f)
		return
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "cannot be written as a "+f.Label()+" line: ") {
		t.Errorf("error text %q", msg)
	}
	if strings.Contains(msg, marker) || strings.Contains(ue.Reason, marker) {
		t.Errorf("error text %q contains the value", msg)
	}
}

func FuzzFormatAssignment(f *testing.F) {
	for _, v := range nastyValues() {
		f.Add(v)
	}
	f.Add("a\x00b")
	f.Add("\xff")
	f.Fuzz(func(t *testing.T, value string) {
		sound := utf8.ValidString(value) && !strings.Contains(value, "\x00")
		for _, format := range ShellFormats() {
			line, err := FormatAssignment(format, testVarName, value)
			if err != nil {
				var ue *UnrepresentableError
				if !errors.As(err, &ue) || ue.Format != format {
					t.Fatalf("%s: error %T %v", format, err, err)
				}
				if sound && !mayRefuse(format, value) {
					t.Fatalf("%s refused %q: %v", format, value, err)
				}
				continue
			}
			if !sound {
				t.Fatalf("%s accepted %q", format, value)
			}
			if format == FormatCmd || format == FormatDotenv {
				if strings.ContainsAny(line, "\r\n") {
					t.Fatalf("%s line %q spans lines", format, line)
				}
			}
			got, err := decodeLine(format, line, testVarName)
			if err != nil {
				t.Fatalf("%s line %q: %v", format, line, err)
			}
			if got != value {
				t.Fatalf("%s: %q decodes to %q", format, value, got)
			}
			if format == FormatDotenv {
				checkDotenvLine(t, line, value)
			}
		}
	})
}

// mayRefuse says whether format f has a documented reason to refuse a
// value that is valid UTF-8 without NUL; the tests hold FormatAssignment to
// exactly these refusals.
func mayRefuse(f ShellFormat, v string) bool {
	switch f {
	case FormatBash, FormatFish:
		return false
	case FormatPowerShell:
		return v == ""
	case FormatCmd:
		return v == "" || strings.ContainsAny(v, "%!\"\r\n") || len(v) > 8000
	case FormatDotenv:
		return dotenvMayRefuse(v)
	}
	return true
}

func dotenvMayRefuse(v string) bool {
	if strings.HasSuffix(v, `\`) {
		return true
	}
	return strings.ContainsAny(v, "'\r\n") && strings.ContainsAny(v, "\"\\$")
}

// checkDotenvLine parses line with godotenv, and checks the shape that makes
// it portable to compose-go and npm dotenv too (checked by hand on this
// machine; neither is a dependency): single quotes around text without ' or
// a line break and not ending in \, or double quotes whose only backslashes
// are those of \n and \r and that hold no " or $ for anyone to interpret.
func checkDotenvLine(t *testing.T, line, want string) {
	t.Helper()
	env, err := godotenv.Unmarshal(line)
	if err != nil {
		t.Fatalf("godotenv rejects %q: %v", line, err)
	}
	if len(env) != 1 || env[testVarName] != want {
		t.Fatalf("godotenv reads %q as %q, want %q", line, env, want)
	}
	quoted := strings.TrimPrefix(line, testVarName+"=")
	if len(quoted) < 2 || quoted[0] != quoted[len(quoted)-1] {
		t.Fatalf("dotenv line %q is not one quoted value", line)
	}
	inner := quoted[1 : len(quoted)-1]
	switch quoted[0] {
	case '\'':
		if strings.ContainsAny(inner, "'\r\n") || strings.HasSuffix(inner, `\`) {
			t.Fatalf("single-quoted dotenv line %q is not portable", line)
		}
	case '"':
		if strings.ContainsAny(strings.NewReplacer(`\n`, "", `\r`, "").Replace(inner), "\\\"$\r\n") {
			t.Fatalf("double-quoted dotenv line %q uses more than \\n and \\r", line)
		}
	default:
		t.Fatalf("dotenv line %q is not quoted", line)
	}
}

// decodeLine is a reference reader for each format's assignment line. Each
// accepts only the exact shape FormatAssignment promises, so a stray quote
// or an escape the interpreter would not undo shows up as an error or a
// different value.
func decodeLine(f ShellFormat, line, name string) (string, error) {
	switch f {
	case FormatBash:
		return decodeBash(line, name)
	case FormatFish:
		return decodeFish(line, name)
	case FormatPowerShell:
		return decodePowerShell(line, name)
	case FormatCmd:
		return decodeCmd(line, name)
	case FormatDotenv:
		env, err := godotenv.Unmarshal(line)
		return env[name], err
	}
	return "", fmt.Errorf("no decoder for %q", f)
}

// decodeBash reads export NAME='…' as POSIX sh does: a single-quoted span
// ends at the first ', outside quotes \' is a literal quote, and nothing
// else may appear, so no quote inside a span can go unescaped.
func decodeBash(line, name string) (string, error) {
	rest, ok := strings.CutPrefix(line, "export "+name+"=")
	if !ok {
		return "", errors.New("no export NAME= prefix")
	}
	var b strings.Builder
	for {
		if !strings.HasPrefix(rest, "'") {
			return "", errors.New("expected an opening quote")
		}
		end := strings.IndexByte(rest[1:], '\'')
		if end < 0 {
			return "", errors.New("unterminated single quote")
		}
		b.WriteString(rest[1 : 1+end])
		rest = rest[2+end:]
		if rest == "" {
			return b.String(), nil
		}
		after, ok := strings.CutPrefix(rest, `\'`)
		if !ok {
			return "", fmt.Errorf("unquoted text %q after a quoted span", rest)
		}
		b.WriteByte('\'')
		rest = after
	}
}

// decodeFish reads set -gx NAME '…' as fish does: inside single quotes \\
// and \' are escapes, any other backslash is literal, and ' ends the string.
func decodeFish(line, name string) (string, error) {
	rest, ok := strings.CutPrefix(line, "set -gx "+name+" '")
	if !ok {
		return "", errors.New("no set -gx NAME ' prefix")
	}
	var b strings.Builder
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		switch {
		case c == '\\' && i+1 < len(rest) && (rest[i+1] == '\\' || rest[i+1] == '\''):
			b.WriteByte(rest[i+1])
			i++
		case c == '\'':
			if i != len(rest)-1 {
				return "", fmt.Errorf("text %q after the closing quote", rest[i+1:])
			}
			return b.String(), nil
		default:
			b.WriteByte(c)
		}
	}
	return "", errors.New("unterminated single quote")
}

// decodePowerShell follows PowerShell's tokenizer (ScanStringLiteral): any
// of ' ‘ ’ ‚ ‛ ends a single-quoted string unless another of them follows,
// in which case the second is kept.
func decodePowerShell(line, name string) (string, error) {
	rest, ok := strings.CutPrefix(line, "$env:"+name+" = '")
	if !ok {
		return "", errors.New("no $env:NAME = ' prefix")
	}
	isQuote := func(r rune) bool {
		return r == '\'' || r == '\u2018' || r == '\u2019' || r == '\u201A' || r == '\u201B'
	}
	runes := []rune(rest)
	var b strings.Builder
	for i := 0; i < len(runes); i++ {
		r := runes[i]
		if isQuote(r) {
			if i+1 < len(runes) && isQuote(runes[i+1]) {
				i++
				b.WriteRune(runes[i])
				continue
			}
			if i != len(runes)-1 {
				return "", fmt.Errorf("text %q after the closing quote", string(runes[i+1:]))
			}
			return b.String(), nil
		}
		b.WriteRune(r)
	}
	return "", errors.New("unterminated single quote")
}

// decodeCmd reads set "NAME=…" the way cmd.exe does when nothing in it is
// expanded or ends the command: the text between the first = and the last
// quote. It refuses what cmd.exe would not pass through as written.
func decodeCmd(line, name string) (string, error) {
	rest, ok := strings.CutPrefix(line, `set "`+name+"=")
	if !ok {
		return "", errors.New(`no set "NAME= prefix`)
	}
	value, ok := strings.CutSuffix(rest, `"`)
	if !ok {
		return "", errors.New("no closing quote")
	}
	if i := strings.IndexAny(value, "\"%!\r\n"); i >= 0 {
		return "", fmt.Errorf("%q would be interpreted by cmd.exe", value[i])
	}
	return value, nil
}
