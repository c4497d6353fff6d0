package keyledger_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	dockeropts "github.com/docker/cli/opts"
	"github.com/joho/godotenv"
	"github.com/keyledger/keyledger"
)

var exportVarName = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

func exportEntry(id, name, project string, p keyledger.Provider, value string) keyledger.ExportEntry {
	return keyledger.ExportEntry{KeyID: id, KeyName: name, Project: project, Provider: p, Value: value}
}

// exportVarNames returns VarName by KeyID.
func exportVarNames(es []keyledger.ExportEntry) map[string]string {
	out := map[string]string{}
	for _, e := range es {
		out[e.KeyID] = e.VarName
	}
	return out
}

// checkExportNames fails unless every name is a valid identifier and
// unique.
func checkExportNames(t *testing.T, es []keyledger.ExportEntry) {
	t.Helper()
	seen := map[string]string{}
	for _, e := range es {
		if !exportVarName.MatchString(e.VarName) {
			t.Errorf("%q (%s): variable name %q is not an identifier", e.KeyName, e.Project, e.VarName)
		}
		if prev, dup := seen[e.VarName]; dup {
			t.Errorf("%s is the name of both %s and %s", e.VarName, prev, e.KeyID)
		}
		seen[e.VarName] = e.KeyID
	}
}

func TestAssignVarNames(t *testing.T) {
	tests := []struct {
		name    string
		entries []keyledger.ExportEntry
		want    map[string]string // by KeyID
	}{
		{
			"one key per provider keeps the SDK names",
			[]keyledger.ExportEntry{
				exportEntry("a", "OpenAI", "checkout", keyledger.ProviderOpenAI, "sk-proj-1"),
				exportEntry("b", "Stripe", "checkout", keyledger.ProviderStripe, "sk_live_1"),
				exportEntry("c", "Anthropic", "search", keyledger.ProviderAnthropic, "sk-ant-1"),
				exportEntry("d", "AWS id", "search", keyledger.ProviderAWS, "AKIAEXAMPLE"),
				exportEntry("e", "AWS secret", "search", keyledger.ProviderAWS, "wJalrXUtnFEMI"),
				exportEntry("f", "Sendgrid mail", "search", "sendgrid", "SG.x"),
			},
			map[string]string{"a": "OPENAI_API_KEY", "b": "STRIPE_SECRET_KEY", "c": "ANTHROPIC_API_KEY",
				"d": "AWS_ACCESS_KEY_ID", "e": "AWS_SECRET_ACCESS_KEY", "f": "SENDGRID_MAIL_API_KEY"},
		},
		{
			"same provider, two projects: project appended",
			[]keyledger.ExportEntry{
				exportEntry("a", "OpenAI", "checkout", keyledger.ProviderOpenAI, "sk-proj-1"),
				exportEntry("b", "OpenAI", "search", keyledger.ProviderOpenAI, "sk-proj-2"),
				exportEntry("c", "Stripe", "checkout", keyledger.ProviderStripe, "sk_live_1"),
			},
			map[string]string{"a": "OPENAI_API_KEY_CHECKOUT", "b": "OPENAI_API_KEY_SEARCH", "c": "STRIPE_SECRET_KEY"},
		},
		{
			"same provider, same project: key name appended too",
			[]keyledger.ExportEntry{
				exportEntry("a", "Primary", "checkout", keyledger.ProviderOpenAI, "sk-proj-1"),
				exportEntry("b", "Batch jobs", "checkout", keyledger.ProviderOpenAI, "sk-proj-2"),
				exportEntry("c", "OpenAI", "search", keyledger.ProviderOpenAI, "sk-proj-3"),
			},
			map[string]string{"a": "OPENAI_API_KEY_CHECKOUT_PRIMARY", "b": "OPENAI_API_KEY_CHECKOUT_BATCH_JOBS", "c": "OPENAI_API_KEY_SEARCH"},
		},
		{
			"projects and names made identifiers",
			[]keyledger.ExportEntry{
				exportEntry("a", "x", "Web shop (EU)", keyledger.ProviderGitHub, "ghp_1"),
				exportEntry("b", "x", "web-shop/us", keyledger.ProviderGitHub, "ghp_2"),
				exportEntry("c", "y", "Café", keyledger.ProviderGitHub, "ghp_3"),
				exportEntry("d", "z", "???", keyledger.ProviderGitHub, "ghp_4"),
			},
			map[string]string{"a": "GITHUB_TOKEN_WEB_SHOP_EU", "b": "GITHUB_TOKEN_WEB_SHOP_US", "c": "GITHUB_TOKEN_CAF", "d": "GITHUB_TOKEN_KEY"},
		},
		{
			// Names unique per project ignore case, not punctuation: both
			// become FOO_BAR and are numbered in key id order.
			"names differing only in punctuation are numbered",
			[]keyledger.ExportEntry{
				exportEntry("2", "Foo-Bar", "p", "acme", "v1"),
				exportEntry("1", "Foo Bar", "p", "acme", "v2"),
			},
			map[string]string{"1": "FOO_BAR_API_KEY_P_FOO_BAR", "2": "FOO_BAR_API_KEY_P_FOO_BAR_2"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			es := slices.Clone(tt.entries)
			keyledger.AssignVarNames(es)
			checkExportNames(t, es)
			if got := exportVarNames(es); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("names %v, want %v", got, tt.want)
			}
			// The order the keys come in does not matter.
			rev := slices.Clone(tt.entries)
			slices.Reverse(rev)
			keyledger.AssignVarNames(rev)
			if got := exportVarNames(rev); fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("in reverse order: %v, want %v", got, tt.want)
			}
		})
	}
}

// TestAssignVarNamesNumberingCollides: the last-resort number can produce
// a name another entry already has. Two keys named "K" and "K!" in project
// "p" end up as K_API_KEY_P_K (and _2 for the second), while a key "K" in
// project "p k 2" gets K_API_KEY_P_K_2 from the project pass.
func TestAssignVarNamesNumberingCollides(t *testing.T) {
	es := []keyledger.ExportEntry{
		exportEntry("a", "K", "p", "acme", "v1"),
		exportEntry("b", "K!", "p", "acme", "v2"),
		exportEntry("c", "K", "p k 2", "acme", "v3"),
	}
	keyledger.AssignVarNames(es)
	checkExportNames(t, es)
	// A duplicate name loses a value in every format.
	res, err := keyledger.RenderExport(keyledger.FormatJSON, es)
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]string
	if err := json.Unmarshal(res.File, &obj); err != nil {
		t.Fatal(err)
	}
	if len(obj) != len(es) {
		t.Errorf("the json export holds %d values for %d keys", len(obj), len(es))
	}
}

// TestAssignVarNamesUniqueProperty throws random small worlds at
// AssignVarNames: few providers, few projects, names that collide after
// upper-casing and punctuation folding.
func TestAssignVarNamesUniqueProperty(t *testing.T) {
	providers := []keyledger.Provider{keyledger.ProviderOpenAI, keyledger.ProviderStripe, keyledger.ProviderAWS, "acme", "other", ""}
	projects := []string{"p", "P", "p k", "p-k", "p k 2", "2", "", "ü", "checkout"}
	names := []string{"K", "k!", "K 2", "p k", "Key", "key-2", "API key", "OpenAI", "", "2", "_", "ß"}
	values := []string{"AKIA1", "secret", "sk-1"}
	r := rand.New(rand.NewPCG(1, 2))
	failures := 0
	for round := range 3000 {
		n := 2 + r.IntN(8)
		es := make([]keyledger.ExportEntry, n)
		for i := range es {
			es[i] = exportEntry(fmt.Sprintf("%02d-%d", r.IntN(100), i), names[r.IntN(len(names))], projects[r.IntN(len(projects))],
				providers[r.IntN(len(providers))], values[r.IntN(len(values))])
		}
		keyledger.AssignVarNames(es)
		seen := map[string]bool{}
		for _, e := range es {
			if !exportVarName.MatchString(e.VarName) {
				t.Fatalf("round %d: %q is not an identifier (%+v)", round, e.VarName, es)
			}
			if seen[e.VarName] {
				failures++
				if failures <= 3 {
					t.Errorf("round %d: duplicate %s in %+v", round, e.VarName, es)
				}
			}
			seen[e.VarName] = true
		}
	}
	if failures > 0 {
		t.Errorf("%d duplicate names in 3000 random exports", failures)
	}
}

// exportValues are values every export format is tried with.
func exportValues() []string {
	return []string{
		"sk-proj-abcDEF0123456789",
		"with spaces inside",
		"it's",
		`say "hi"`,
		`it's "both"`,
		"$HOME and ${PATH} and $(id) and `id`",
		`back\slash`,
		`ends with backslash\`,
		"line one\nline two",
		"crlf\r\nline",
		"# not a comment",
		"key=value=more",
		"-----BEGIN PRIVATE KEY-----\nMIIBVg==\n-----END PRIVATE KEY-----",
		"üñíçødé ✓ 鍵",
		"‘smart’ “quotes”",
		"100% sure!",
		"  padded  ",
		`{"type":"service_account","private_key":"a\nb"}`,
		"tab\tinside",
		"\tleading tab",
		"trailing newline\n",
		"ends with CR\r",
		"inner\rCR",
		"=starts with equals",
		"",
	}
}

// exportRefusable says which values a format may refuse (the documented
// classes); everything else must be written.
func exportRefusable(f keyledger.ShellFormat, v string) bool {
	switch f {
	case keyledger.FormatDotenv:
		needsDouble := strings.ContainsAny(v, "'\n\r")
		return strings.HasSuffix(v, `\`) || needsDouble && strings.ContainsAny(v, "\"\\$")
	case keyledger.FormatEnvFile:
		// docker's parser reads one line per variable (bufio.ScanLines,
		// which also drops a CR before the line end).
		return strings.Contains(v, "\n") || strings.HasSuffix(v, "\r")
	case keyledger.FormatPowerShell:
		return v == ""
	}
	return false
}

func exportEntries(f keyledger.ShellFormat) (ok, refused []keyledger.ExportEntry) {
	for i, v := range exportValues() {
		e := exportEntry(fmt.Sprintf("id-%02d", i), fmt.Sprintf("Key %d", i), "proj", keyledger.Provider(fmt.Sprintf("prov%d", i)), v)
		if exportRefusable(f, v) {
			refused = append(refused, e)
		} else {
			ok = append(ok, e)
		}
	}
	keyledger.AssignVarNames(ok)
	keyledger.AssignVarNames(refused)
	return ok, refused
}

// runShellExport sources file in shell and returns the environment the
// shell then exports.
func runShellExport(t *testing.T, shell string, args ...string) map[string]string {
	t.Helper()
	cmd := exec.Command(shell, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C.UTF-8", "HOME=" + t.TempDir()}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v: %s", shell, err, stderr.String())
	}
	env := map[string]string{}
	for _, kv := range strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		name, value, _ := strings.Cut(kv, "=")
		env[name] = value
	}
	return env
}

func TestRenderExportRoundTrip(t *testing.T) {
	decoders := map[keyledger.ShellFormat]func(t *testing.T, file string) map[string]string{
		keyledger.FormatJSON: func(t *testing.T, file string) map[string]string {
			var obj map[string]string
			if err := json.Unmarshal([]byte(file), &obj); err != nil {
				t.Fatalf("json export does not parse: %v", err)
			}
			return obj
		},
		keyledger.FormatDotenv: func(t *testing.T, file string) map[string]string {
			env, err := godotenv.Unmarshal(file)
			if err != nil {
				t.Fatalf("dotenv export does not parse: %v", err)
			}
			return env
		},
		keyledger.FormatEnvFile: decodeDockerEnvFile,
		keyledger.FormatBash: func(t *testing.T, file string) map[string]string {
			path := filepath.Join(t.TempDir(), "export.sh")
			if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
				t.Fatal(err)
			}
			return runShellExport(t, "bash", "--noprofile", "--norc", "-c", `set -e; . "$1"; exec env -0`, "_", path)
		},
		keyledger.FormatFish: func(t *testing.T, file string) map[string]string {
			if _, err := exec.LookPath("fish"); err != nil {
				t.Skip("fish not installed")
			}
			path := filepath.Join(t.TempDir(), "export.fish")
			if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
				t.Fatal(err)
			}
			return runShellExport(t, "fish", "--no-config", "-c", `source $argv[1]; and exec env -0`, path)
		},
		keyledger.FormatPowerShell: func(t *testing.T, file string) map[string]string {
			if _, err := exec.LookPath("pwsh"); err != nil {
				return decodePowerShellExport(t, file)
			}
			path := filepath.Join(t.TempDir(), "export.ps1")
			body := file + "\nGet-ChildItem env: | ForEach-Object { [Console]::Out.Write($_.Name + '=' + $_.Value + [char]0) }\n"
			if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
			return runShellExport(t, "pwsh", "-NoProfile", "-NonInteractive", "-File", path)
		},
	}
	for _, f := range keyledger.ExportFormats() {
		t.Run(string(f), func(t *testing.T) {
			decode, ok := decoders[f]
			if !ok {
				t.Fatalf("no round trip for export format %s", f)
			}
			es, refused := exportEntries(f)
			res, err := keyledger.RenderExport(f, append(slices.Clone(es), refused...))
			if err != nil {
				t.Fatalf("RenderExport: %v", err)
			}
			got := decode(t, string(res.File))
			for _, e := range es {
				v, ok := got[e.VarName]
				if !ok {
					t.Errorf("%s: %s missing from the export", e.KeyName, e.VarName)
				} else if v != e.Value {
					t.Errorf("%s: %s reads back as %q, want %q", e.KeyName, e.VarName, v, e.Value)
				}
			}
			if f == keyledger.FormatJSON && len(got) != len(es) {
				t.Errorf("json holds %d variables for %d keys", len(got), len(es))
			}
			// The file says which keys it lacks; nothing else is missing.
			for _, e := range refused {
				if !strings.Contains(string(res.File), "# left out: "+e.KeyName+" (proj): cannot be written") {
					t.Errorf("%s: the file does not say it was left out", e.KeyName)
				}
			}
			// Shells add their own variables (PATH, PWD…); files hold ours only.
			if (f == keyledger.FormatDotenv || f == keyledger.FormatEnvFile) && len(got) != len(es) {
				t.Errorf("%s holds %d variables for %d carried keys", f, len(got), len(es))
			}
			// Each refusable value is left out, with a reason naming the
			// key and never the value; the others are written.
			checkExportLeftOut(t, res, refused)
			for _, e := range refused {
				if _, ok := got[e.VarName]; ok {
					t.Errorf("%q (%q) was written although %s cannot carry it:\n%s", e.KeyName, e.Value, f, res.File)
				}
			}
		})
	}
}

// checkExportLeftOut fails unless res lists exactly want as left out,
// each with a reason that names the format and holds no value.
func checkExportLeftOut(t *testing.T, res keyledger.RenderedExport, want []keyledger.ExportEntry) {
	t.Helper()
	byID := map[string]keyledger.LeftOut{}
	for _, l := range res.Unwritable {
		byID[l.KeyID] = l
	}
	if len(byID) != len(want) {
		t.Errorf("%d keys left out, want %d: %+v", len(byID), len(want), res.Unwritable)
	}
	for _, e := range want {
		l, ok := byID[e.KeyID]
		if !ok {
			t.Errorf("%s is not listed as left out", e.KeyName)
			continue
		}
		if l.KeyName != e.KeyName || l.Project != e.Project || !strings.HasPrefix(l.Reason, "cannot be written as") {
			t.Errorf("left out %+v, want %s (%s) with a reason", l, e.KeyName, e.Project)
		}
		if e.Value != "" && strings.Contains(l.Reason, e.Value) {
			t.Errorf("the reason for %s holds the value: %q", e.KeyName, l.Reason)
		}
	}
}

// TestRenderExportLeavesOut: a value the format cannot carry no longer
// fails the whole file (issue 12, item 4): the rest is written, and the
// key is listed with its reason, in the file and in the result, never
// with its value.
func TestRenderExportLeavesOut(t *testing.T) {
	secretA := "TOKEN-A-it's-\"quoted\""
	secretB := "TOKEN-B-line\nwith $VAR"
	es := []keyledger.ExportEntry{
		exportEntry("1", "Fine", "shop", keyledger.ProviderOpenAI, "sk-proj-fine0123456789"),
		exportEntry("2", "Quoted", "shop", "acme", secretA),
		exportEntry("3", "Multiline", "billing", "acme2", secretB),
	}
	keyledger.AssignVarNames(es)
	damaged := keyledger.LeftOut{KeyID: "4", KeyName: "Broken", Project: "shop", Reason: keyledger.ReasonDamaged}
	res, err := keyledger.RenderExport(keyledger.FormatDotenv, es, damaged)
	if err != nil {
		t.Fatalf("dotenv export refused: %v", err)
	}
	checkExportLeftOut(t, res, es[1:])
	if len(res.Carried) != 1 || res.Carried[0].KeyID != "1" {
		t.Errorf("carried %+v, want Fine only", res.Carried)
	}
	got, err := godotenv.Unmarshal(string(res.File))
	if err != nil || len(got) != 1 || got[es[0].VarName] != es[0].Value {
		t.Errorf("the file reads back as %v (%v)", got, err)
	}
	for _, want := range []string{
		"# left out: Broken (shop): " + keyledger.ReasonDamaged,
		"# left out: Quoted (shop): cannot be written as a .env line: contains ' together with",
		"# left out: Multiline (billing): cannot be written as a .env line: contains a line break together with",
	} {
		if !strings.Contains(string(res.File), want) {
			t.Errorf("the file lacks %q:\n%s", want, res.File)
		}
	}
	for _, part := range []string{"TOKEN-A", "TOKEN-B"} {
		if strings.Contains(string(res.File), part) || strings.Contains(fmt.Sprint(res.Unwritable), part) {
			t.Errorf("the export shows %q", part)
		}
	}
	// cmd is not an export format; unknown formats are refused.
	if _, err := keyledger.RenderExport(keyledger.FormatCmd, es[:1]); keyledger.ErrorCode(err) != keyledger.EINVALID {
		t.Errorf("RenderExport(cmd): %v", err)
	}
	if _, err := keyledger.RenderExport("yaml", es[:1]); keyledger.ErrorCode(err) != keyledger.EINVALID {
		t.Errorf("RenderExport(yaml): %v", err)
	}
	// json carries everything.
	res, err = keyledger.RenderExport(keyledger.FormatJSON, es)
	if err != nil || len(res.Unwritable) != 0 || len(res.Carried) != 3 {
		t.Fatalf("json: %v, left out %+v", err, res.Unwritable)
	}
	var obj map[string]string
	if err := json.Unmarshal(res.File, &obj); err != nil || obj[es[1].VarName] != secretA || obj[es[2].VarName] != secretB {
		t.Errorf("json export %s (%v)", res.File, err)
	}
}

// decodeDockerEnvFile reads file the way `docker run --env-file` does, with
// docker's own code: opts.ReadKVEnvStrings (docker/cli
// v29.10.0+incompatible, cli/command/container/opts.go calls it for
// --env-file) over pkg/kvfile's parser. It runs with an empty process
// environment of the file's names, so a line without "=" could not pick a
// value up from the test's environment.
func decodeDockerEnvFile(t *testing.T, file string) map[string]string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "export.env")
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	kvs, err := dockeropts.ReadKVEnvStrings([]string{path}, nil)
	if err != nil {
		t.Fatalf("docker does not read the env-file: %v", err)
	}
	out := map[string]string{}
	for _, kv := range kvs {
		name, value, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("docker read a line without a value: %q", kv)
		}
		if _, dup := out[name]; dup {
			t.Errorf("docker read %s twice", name)
		}
		out[name] = value
	}
	return out
}

// TestEnvFileLongLine: docker's scanner fails the whole file on a line of
// 64 KiB or more, so such a value is left out rather than breaking every
// other variable; the longest line that fits is written.
func TestEnvFileLongLine(t *testing.T) {
	name := "LONG_API_KEY"
	fits := strings.Repeat("a", 65535-len(name)-1)
	es := []keyledger.ExportEntry{
		{KeyID: "1", KeyName: "fits", Project: "p", Value: fits, VarName: name},
		{KeyID: "2", KeyName: "too long", Project: "p", Value: fits + "a", VarName: name + "_2"},
	}
	res, err := keyledger.RenderExport(keyledger.FormatEnvFile, es)
	if err != nil {
		t.Fatal(err)
	}
	checkExportLeftOut(t, res, es[1:])
	if got := decodeDockerEnvFile(t, string(res.File)); got[name] != fits || len(got) != 1 {
		t.Errorf("docker read %d variables; the long one is %d bytes, want %d", len(got), len(got[name]), len(fits))
	}
}

func TestParseExportFormat(t *testing.T) {
	for _, f := range keyledger.ExportFormats() {
		for _, s := range []string{string(f), " " + strings.ToUpper(string(f)) + "\n"} {
			if got, ok := keyledger.ParseExportFormat(s); !ok || got != f {
				t.Errorf("ParseExportFormat(%q) = %q, %v", s, got, ok)
			}
		}
	}
	for _, s := range []string{"", "cmd", "yaml", "bash; rm -rf /"} {
		if got, ok := keyledger.ParseExportFormat(s); ok {
			t.Errorf("ParseExportFormat(%q) = %q", s, got)
		}
	}
}

// decodePowerShellExport reads $env:NAME = '...' lines the way
// PowerShell's tokenizer does: any of ' ‘ ’ ‚ ‛ ends a single-quoted
// string, and two in a row stand for one.
func decodePowerShellExport(t *testing.T, file string) map[string]string {
	t.Helper()
	isQuote := func(r rune) bool { return strings.ContainsRune("'\u2018\u2019\u201A\u201B", r) }
	env := map[string]string{}
	rs := []rune(file)
	for i := 0; i < len(rs); {
		// Skip comments and blank lines.
		if rs[i] == '#' || rs[i] == '\n' {
			for i < len(rs) && rs[i] != '\n' {
				i++
			}
			i++
			continue
		}
		rest := string(rs[i:])
		if !strings.HasPrefix(rest, "$env:") {
			t.Fatalf("unexpected line %q", strings.SplitN(rest, "\n", 2)[0])
		}
		i += len("$env:")
		start := i
		for i < len(rs) && rs[i] != ' ' {
			i++
		}
		name := string(rs[start:i])
		if !strings.HasPrefix(string(rs[i:]), " = ") || !isQuote(rs[i+3]) {
			t.Fatalf("unexpected assignment for %s", name)
		}
		i += 4
		var b strings.Builder
		for {
			if i >= len(rs) {
				t.Fatalf("unterminated string for %s", name)
			}
			if isQuote(rs[i]) {
				if i+1 < len(rs) && isQuote(rs[i+1]) {
					b.WriteRune(rs[i])
					i += 2
					continue
				}
				i++
				break
			}
			b.WriteRune(rs[i])
			i++
		}
		env[name] = b.String()
	}
	return env
}
