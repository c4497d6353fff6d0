package main

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestVersion: a plain build says "dev"; the Makefile's and the image's
// -X main.version stamp is what `keyledger version` prints.
func TestVersion(t *testing.T) {
	if r := runMain(t, nil, "", "version"); r.code != 0 || r.stdout != "keyledger dev\n" {
		t.Errorf("version: exit %d, stdout %q, stderr %q; want \"keyledger dev\"", r.code, r.stdout, r.stderr)
	}
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := filepath.Join(t.TempDir(), "keyledger")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=v1.2.3-4-gabcdef0-dirty", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "keyledger v1.2.3-4-gabcdef0-dirty" {
		t.Errorf("stamped binary: %q, %v", out, err)
	}
}
