package web_test

import (
	"bytes"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// renamedMetrics are the series renamed to one convention (issue 12,
// item 7), old name to new; docs/operations.md lists them for dashboards.
var renamedMetrics = map[string]string{
	"keyledger_key_reveals_total":       "keyledger_reveals_total",
	"keyledger_key_exports_total":       "keyledger_exports_total",
	"keyledger_key_verifications_total": "keyledger_verifications_total",
}

// checkMetricsNaming holds every keyledger_ family of a scrape to one
// convention: a counter of operations is keyledger_<operation>s_total
// (reveals, exports, verifications, db_batches), a counter of the things
// they carry names them by what happened to them
// (exported_keys, db_batched_calls), every counter ends in _total and
// nothing else does; no old name is served; and each family is listed in
// docs/operations.md "Metrics series". promtool's lint checks the rest of
// Prometheus's rules when it is installed.
func checkMetricsNaming(t *testing.T, body string) {
	t.Helper()
	types := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^# TYPE (keyledger_\S+) (\S+)$`).FindAllStringSubmatch(body, -1) {
		types[m[1]] = m[2]
	}
	if len(types) == 0 {
		t.Fatal("no keyledger_ metric families in the scrape")
	}
	doc, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(doc)
	if i := strings.Index(section, "## Metrics series"); i >= 0 {
		section = section[i:]
		if j := strings.Index(section[3:], "\n## "); j >= 0 {
			section = section[:j+3]
		}
	} else {
		t.Fatal(`docs/operations.md has no "Metrics series" section`)
	}
	documented := regexp.MustCompile("`(keyledger_[a-z0-9_]+\\*?)").FindAllStringSubmatch(section, -1)
	isDocumented := func(name string) bool {
		for _, d := range documented {
			if d[1] == name || strings.HasSuffix(d[1], "*") && strings.HasPrefix(name, strings.TrimSuffix(d[1], "*")) {
				return true
			}
		}
		return false
	}
	for name, typ := range types {
		if !regexp.MustCompile(`^keyledger_[a-z][a-z0-9_]*[a-z0-9]$`).MatchString(name) {
			t.Errorf("%s: not keyledger_ and lower-case words", name)
		}
		if (typ == "counter") != strings.HasSuffix(name, "_total") {
			t.Errorf("%s is a %s: counters, and only counters, end in _total", name, typ)
		}
		if strings.HasPrefix(name, "keyledger_key_") {
			t.Errorf("%s: name an operation by itself (keyledger_<operation>s_total), not keyledger_key_…", name)
		}
		if _, old := renamedMetrics[name]; old {
			t.Errorf("%s is still served under its old name", name)
		}
		if !isDocumented(name) {
			t.Errorf("%s is not listed in docs/operations.md \"Metrics series\"", name)
		}
	}
	for old, renamed := range renamedMetrics {
		if !strings.Contains(section, "`"+old+"`") || !strings.Contains(section, "`"+renamed+"`") {
			t.Errorf("docs/operations.md \"Metrics series\" does not list the rename %s → %s", old, renamed)
		}
	}

	t.Run("promtool check metrics", func(t *testing.T) {
		path, err := exec.LookPath("promtool")
		if err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("promtool is not installed; .ci/run installs Debian's prometheus package")
			}
			t.Skip("promtool not installed (apt-get install prometheus)")
		}
		cmd := exec.Command(path, "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			t.Errorf("promtool check metrics: %v\n%s", err, out.String())
		}
	})
}
