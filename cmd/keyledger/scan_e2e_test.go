package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

// gitRepo makes a git repository in a fresh directory.
func gitRepo(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	git(t, dir, "init", "-q", "-b", "main")
	git(t, dir, "config", "user.email", "scan@example.com")
	git(t, dir, "config", "user.name", "Scan")
	git(t, dir, "config", "commit.gpgsign", "false")
	return dir
}

func git(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

func gitOut(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
	return strings.TrimSpace(string(out))
}

func writeRepoFile(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestScanEndToEnd runs `keyledger scan` (the built binary) against a real
// server over real git repositories: registered values (current and old)
// are reported by file:line and key and make it exit 1; a look-alike that
// is not registered is reported as such and exits 0; ignored and binary
// files are not read; --staged reads the index, not the working tree; a
// rejected token exits 2. No output ever carries a value.
func TestScanEndToEnd(t *testing.T) {
	bin := keyledgerBinary(t)
	url := storetest.NewDatabase(t)
	key := newKEK(t)
	env := dbEnv(url, key)
	ctx := context.Background()

	mustRun(t, env, cliPassword+"\n", "user", "create", "--email", "dev@example.com", "--name", "Dev", "--role", "member")
	st, _ := openStore(t, url, key, store.Options{PasswordParams: storetest.FastPasswords()})
	u, err := st.UserByEmail(ctx, "dev@example.com")
	if err != nil {
		t.Fatal(err)
	}
	actor := keyledger.Actor{User: u, StepUpAt: time.Now()}
	oldValue := "sk-proj-" + randHex(t, 24)
	res, err := st.CreateKey(ctx, actor, keyledger.KeyInput{
		Name: "OpenAI checkout", Project: "checkout", Environment: "development", OwnerEmail: u.Email, Value: oldValue})
	if err != nil {
		t.Fatal(err)
	}
	// The current value has no provider prefix: found as a high-entropy
	// assignment.
	curValue := "Zq8" + randHex(t, 20) + "xY"
	if _, err := st.RotateKey(ctx, actor, res.Key.ID, keyledger.RotateInput{Value: curValue, GraceDays: "7"}); err != nil {
		t.Fatal(err)
	}
	lookalike := "sk-ant-api03-" + randHex(t, 24)
	values := []string{oldValue, curValue, lookalike}

	code, stdout, stderr := runIO(t, env, "", bin, "token", "create", "--email", "dev@example.com", "--scopes", "read", "--expires", "1d")
	m := printedToken.FindStringSubmatch(stdout)
	if code != 0 || m == nil {
		t.Fatalf("token create: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	addr := freeAddr(t)
	senv := dbEnv(url, key)
	senv["KEYLEDGER_LISTEN"] = addr
	srv := start(t, senv, "serve")
	base := "http://" + addr
	waitReady(t, srv, base)
	home := t.TempDir()
	cenv := map[string]string{"HOME": home, "XDG_CONFIG_HOME": filepath.Join(home, ".config"), "KEYLEDGER_SERVER": base, "KEYLEDGER_TOKEN": m[1]}

	scan := func(dir string, args ...string) (int, string, string) {
		t.Helper()
		code, stdout, stderr := runIOIn(t, dir, cenv, bin, append([]string{"scan"}, args...)...)
		for _, v := range values {
			if strings.Contains(stdout+stderr, v) || strings.Contains(stdout+stderr, v[len(v)-12:]) {
				t.Errorf("scan %v printed a value (or its end)", args)
			}
		}
		return code, stdout, stderr
	}

	repo := gitRepo(t)
	writeRepoFile(t, repo, "README.md", "# app\nnothing to see\n")
	writeRepoFile(t, repo, ".gitignore", "secret.env\n")
	writeRepoFile(t, repo, "secret.env", "OPENAI_API_KEY="+oldValue+"\n")
	writeRepoFile(t, repo, "blob.bin", "\x00\x01OPENAI_API_KEY="+oldValue+"\n")
	writeRepoFile(t, repo, "docs/notes.md", "line one\nanthropic: "+lookalike+"\n")
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-q", "-m", "clean")

	// Clean as far as keyledger goes: the look-alike is reported, exit 0.
	code, stdout, _ = scan(repo)
	if code != 0 {
		t.Errorf("clean repo: exit %d, want 0", code)
	}
	if !strings.Contains(stdout, "docs/notes.md:2: looks like an Anthropic key, not in keyledger") {
		t.Errorf("look-alike not reported:\n%s", stdout)
	}
	if strings.Contains(stdout, "secret.env") || strings.Contains(stdout, "blob.bin") || strings.Contains(stdout, "registered") {
		t.Errorf("ignored or binary file reported, or a false hit:\n%s", stdout)
	}

	// Registered values in tracked and untracked files: exit 1.
	writeRepoFile(t, repo, "src/config.py", "import os\n\nclient = make(\n    api_key = \""+curValue+"\",\n)\n")
	writeRepoFile(t, repo, "deploy/old.sh", "export OPENAI_API_KEY="+oldValue+"\n")
	code, stdout, _ = scan(repo)
	if code != 1 {
		t.Errorf("repo with keys: exit %d, want 1", code)
	}
	for _, want := range []string{
		`src/config.py:4: OpenAI checkout (development, project checkout, owner dev@example.com), current version v2`,
		`deploy/old.sh:1: OpenAI checkout (development, project checkout, owner dev@example.com), old version v1`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("missing %q in:\n%s", want, stdout)
		}
	}
	// A path argument narrows the scan.
	code, stdout, _ = scan(repo, "docs")
	if code != 0 || strings.Contains(stdout, "config.py") || !strings.Contains(stdout, "docs/notes.md:2:") {
		t.Errorf("scan docs: exit %d\n%s", code, stdout)
	}

	// --staged reads the index: a staged key whose working copy was
	// cleaned is still found, and an unstaged one is not.
	staged := gitRepo(t)
	writeRepoFile(t, staged, "app.env", "OPENAI_API_KEY="+oldValue+"\n")
	git(t, staged, "add", "app.env")
	writeRepoFile(t, staged, "app.env", "OPENAI_API_KEY=\n")
	writeRepoFile(t, staged, "later.env", "OPENAI_API_KEY="+oldValue+"\n")
	code, stdout, _ = scan(staged, "--staged")
	if code != 1 || !strings.Contains(stdout, "app.env:1: OpenAI checkout") || strings.Contains(stdout, "later.env") {
		t.Errorf("--staged: exit %d\n%s", code, stdout)
	}
	code, _, _ = scan(staged, "--staged", "--git-history")
	if code != 2 {
		t.Errorf("--staged with --git-history: exit %d, want 2 (usage)", code)
	}

	// --git-history finds a value committed once and removed since, in
	// the commit that added it; a clean tree with a clean history exits 0.
	hist := gitRepo(t)
	writeRepoFile(t, hist, "README.md", "# hist\n")
	git(t, hist, "add", "-A")
	git(t, hist, "commit", "-q", "-m", "first")
	writeRepoFile(t, hist, "deploy/leak.sh", "#!/bin/sh\nexport OPENAI_API_KEY="+oldValue+"\n")
	git(t, hist, "add", "-A")
	git(t, hist, "commit", "-q", "-m", "leak")
	leakCommit := gitOut(t, hist, "rev-parse", "--short=7", "HEAD")
	git(t, hist, "rm", "-q", "deploy/leak.sh")
	git(t, hist, "commit", "-q", "-m", "unleak")
	if code, _, _ := scan(hist); code != 0 {
		t.Errorf("cleaned tree: exit %d, want 0", code)
	}
	code, stdout, _ = scan(hist, "--git-history")
	if code != 1 || !regexp.MustCompile(`(?m)^`+leakCommit+`[0-9a-f]*:deploy/leak\.sh:2: OpenAI checkout \(development`).MatchString(stdout) {
		t.Errorf("--git-history: exit %d, want 1 and the commit %s\n%s", code, leakCommit, stdout)
	}

	// Outside a git repository the tree is walked.
	plain := t.TempDir()
	writeRepoFile(t, plain, "a/b.txt", "x\ntoken = "+oldValue+"\n")
	code, stdout, _ = scan(plain)
	if code != 1 || !regexp.MustCompile(`(?m)^a/b\.txt:2: OpenAI checkout`).MatchString(stdout) {
		t.Errorf("plain dir: exit %d\n%s", code, stdout)
	}

	// A rejected token is an error: exit 2, not "clean".
	bad := map[string]string{"HOME": home, "XDG_CONFIG_HOME": cenv["XDG_CONFIG_HOME"], "KEYLEDGER_SERVER": base, "KEYLEDGER_TOKEN": "klt_not-a-real-token"}
	code, _, stderr = runIOIn(t, repo, bad, bin, "scan")
	if code != 2 || !strings.Contains(stderr, "rejected the token") {
		t.Errorf("bad token: exit %d, stderr %q", code, stderr)
	}
}

// runIOIn is runIO in directory dir, without stdin.
func runIOIn(t *testing.T, dir string, env map[string]string, name string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = processEnv(env)
	cmd.Dir = dir
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code, err := exitStatus(cmd.Run())
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	t.Logf("%s %s (in %s): exit %d\nstdout: %s\nstderr: %s", filepath.Base(name), strings.Join(args, " "), dir, code, stdout.String(), stderr.String())
	return code, stdout.String(), stderr.String()
}
