package main

import (
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger/verify"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the variables table in docs/configuration.md from configVars")

const configDoc = "../../docs/configuration.md"

// TestConfigDocsTable: the table in docs/configuration.md is the one
// generated from configVars. `make config-docs` (go test -update-docs)
// rewrites it.
func TestConfigDocsTable(t *testing.T) {
	b, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	want, err := replaceDocsTable(string(b), docsTable())
	if err != nil {
		t.Fatal(err)
	}
	if *updateDocs {
		if want != string(b) {
			if err := os.WriteFile(configDoc, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("rewrote the variables table in %s", configDoc)
		}
		return
	}
	if want != string(b) {
		t.Errorf("docs/configuration.md's variables table differs from configVars (cmd/keyledger/config_vars.go); run `make config-docs` and commit.\n got:\n%s\nwant:\n%s",
			between(string(b)), docsTable())
	}
}

func between(doc string) string {
	_, after, _ := strings.Cut(doc, docsBegin)
	table, _, _ := strings.Cut(after, docsEnd)
	return table
}

// TestConfigVarsReadAreListed greps every KEYLEDGER_* name in the
// non-test Go files of cmd/ and wants each in configVars, in the help
// text and in docs/configuration.md: a variable the program reads but
// nobody is told about is the finding (twelve were missing from help).
func TestConfigVarsReadAreListed(t *testing.T) {
	names := map[string][]string{} // name -> files
	re := regexp.MustCompile(`KEYLEDGER_[A-Z_]+`)
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, n := range re.FindAllString(string(b), -1) {
			if strings.HasSuffix(n, "_") {
				continue // a prefix in prose ("the other KEYLEDGER_OIDC_ variables")
			}
			if !slices.Contains(names[n], path) {
				names[n] = append(names[n], path)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Read by other programs in cmd/, not by keyledger: the load tool's
	// admin database (docs/performance.md).
	notKeyledger := map[string]bool{"KEYLEDGER_TEST_DATABASE_URL": true}
	if len(names) < 30 {
		t.Fatalf("found only %d KEYLEDGER_ names in cmd/; is the walk broken? %v", len(names), names)
	}
	help := usage()
	doc, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	for n, files := range names {
		if notKeyledger[n] {
			continue
		}
		if _, ok := findVar(n); !ok {
			t.Errorf("%s (read in %s) is not in configVars", n, strings.Join(files, ", "))
			continue
		}
		if !regexp.MustCompile(`\b` + n + `\b`).MatchString(help) {
			t.Errorf("%s (read in %s) is not in the help text", n, strings.Join(files, ", "))
		}
		if !strings.Contains(between(string(doc)), "`"+n+"`") {
			t.Errorf("%s is not in docs/configuration.md's table", n)
		}
	}
	// And the other way: nothing listed that nobody reads.
	for _, v := range configVars() {
		if _, ok := names[v.Name]; !ok && strings.HasPrefix(v.Name, "KEYLEDGER_") {
			t.Errorf("%s is in configVars but no Go file in cmd/ names it", v.Name)
		}
		if !strings.Contains(help, v.Name) {
			t.Errorf("%s is not in the help text", v.Name)
		}
	}
}

func findVar(name string) (envVar, bool) {
	for _, v := range configVars() {
		if v.Name == name {
			return v, true
		}
	}
	return envVar{}, false
}

// TestConfigVarsDefaults: the documented defaults are the ones used.
func TestConfigVarsDefaults(t *testing.T) {
	c, err := LoadConfig(envFunc(nil))
	if err != nil {
		t.Fatal(err)
	}
	def := func(name string) string { v, _ := findVar(name); return v.Default }
	for name, got := range map[string]string{
		"KEYLEDGER_DATABASE_URL": c.DatabaseURL,
		"KEYLEDGER_LISTEN":       c.Listen,
		"KEYLEDGER_LOG_LEVEL":    c.LogLevel,
		"KEYLEDGER_LOG_FORMAT":   c.LogFormat,
		// The verifier owns the provider defaults; the table repeats them.
		"KEYLEDGER_OPENAI_BASE_URL":    verify.DefaultOpenAIBaseURL,
		"KEYLEDGER_ANTHROPIC_BASE_URL": verify.DefaultAnthropicBaseURL,
		"KEYLEDGER_GITHUB_BASE_URL":    verify.DefaultGitHubBaseURL,
		"KEYLEDGER_STRIPE_BASE_URL":    verify.DefaultStripeBaseURL,
	} {
		if d := def(name); d != got {
			t.Errorf("%s: configVars says the default is %q, LoadConfig uses %q", name, d, got)
		}
	}
	for name, got := range map[string]time.Duration{
		"KEYLEDGER_SESSION_IDLE":              c.SessionIdle,
		"KEYLEDGER_SESSION_MAX":               c.SessionMax,
		"KEYLEDGER_WRITE_TIMEOUT":             c.WriteTimeout,
		"KEYLEDGER_SHUTDOWN_GRACE":            c.ShutdownGrace,
		"KEYLEDGER_VERIFY_INTERVAL":           c.VerifyInterval,
		"KEYLEDGER_AUDIT_CHECKPOINT_INTERVAL": c.CheckpointInterval,
	} {
		if d, err := time.ParseDuration(def(name)); err != nil || d != got {
			t.Errorf("%s: configVars says the default is %q, LoadConfig uses %s", name, def(name), got)
		}
	}
	if !c.AutoMigrate || !c.PasswordLogin || c.Metrics || c.APIRate != 20 {
		t.Errorf("boolean/number defaults: auto-migrate %v, password login %v, metrics %v, api rate %v", c.AutoMigrate, c.PasswordLogin, c.Metrics, c.APIRate)
	}
}

// TestConfigUnknownVariablePanics: reading a name that is not in
// configVars is a programming error caught by any test that takes the path.
func TestConfigUnknownVariablePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("env.get of an unlisted variable did not panic")
		}
	}()
	env{envFunc(nil)}.get("KEYLEDGER_NOT_A_VARIABLE")
}
