package web_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// validatorDir holds the pinned npm validator (package.json and
// package-lock.json committed, node_modules ignored).
const validatorDir = "testdata/openapi-validate"

// TestOpenAPIValidSwaggerParser validates web/openapi.json with
// @apidevtools/swagger-parser, which reads the OpenAPI 3.0 schema more
// strictly than kin-openapi (it refuses "required": [], which kin-openapi
// lets through), so the document is valid for the tools our users feed it
// to, not only for ours. KEYLEDGER_SKIP_NODE=1 skips it on a machine
// without Node; CI never sets it.
func TestOpenAPIValidSwaggerParser(t *testing.T) {
	t.Parallel()
	if os.Getenv("KEYLEDGER_SKIP_NODE") == "1" {
		t.Skip("KEYLEDGER_SKIP_NODE=1")
	}
	install := "npm ci --prefix web/" + validatorDir + " (or make test, which runs it)"
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed: install Node.js 20.19 or later, then %s; or set KEYLEDGER_SKIP_NODE=1", install)
	}
	if _, err := os.Stat(filepath.Join(validatorDir, "node_modules", "@apidevtools", "swagger-parser")); err != nil {
		t.Fatalf("the validator is not installed: run %s", install)
	}
	doc, err := filepath.Abs("openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "validate.mjs", doc)
	cmd.Dir = validatorDir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		t.Fatalf("swagger-parser refuses web/openapi.json (exit %d):\n%s", exit.ExitCode(), strings.TrimSpace(stderr.String()))
	case err != nil:
		t.Fatalf("run node: %v\n%s", err, stderr.String())
	}
	if !strings.HasPrefix(stdout.String(), "valid: ") {
		t.Fatalf("the validator said %q, want valid: …", stdout.String())
	}
}
