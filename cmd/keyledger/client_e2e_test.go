package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

// runIO runs the built binary with env (added to this process's, without
// KEYLEDGER_* variables) and stdin, and returns its exit code and outputs.
func runIO(t testing.TB, env map[string]string, stdin, name string, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = processEnv(env)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code, err := exitStatus(err)
	if err != nil {
		t.Fatalf("%s %v: %v", name, args, err)
	}
	t.Logf("%s %s: exit %d\nstdout: %s\nstderr: %s", filepath.Base(name), strings.Join(args, " "), code, stdout.String(), stderr.String())
	return code, stdout.String(), stderr.String()
}

// waitReady waits for a started server's /readyz.
func waitReady(t testing.TB, srv *process, base string) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if srv.exited() {
			t.Fatalf("serve exited early (code %d):\n%s", srv.wait(t, time.Second), srv.output)
		}
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 after 30s (last: %v); output:\n%s", err, srv.output)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

var printedToken = regexp.MustCompile(`(?m)^(klt_\S+)$`)

// TestClientEndToEnd drives the client against a real server: a token
// minted with `token create`, `login` with it, then `run`, `env` and
// `keys`. It needs the server's JSON API (web/api*.go).
func TestClientEndToEnd(t *testing.T) {
	bin := keyledgerBinary(t)
	url := storetest.NewDatabase(t)
	key := newKEK(t)
	env := dbEnv(url, key)
	ctx := context.Background()

	// A user and a development key, through the store.
	mustRun(t, env, cliPassword+"\n", "user", "create", "--email", "dev@example.com", "--name", "Dev", "--role", "member")
	st, _ := openStore(t, url, key, store.Options{PasswordParams: storetest.FastPasswords()})
	u, err := st.UserByEmail(ctx, "dev@example.com")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 12)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	value := "sk-proj-e2e" + hex.EncodeToString(b)
	res, err := st.CreateKey(ctx, keyledger.Actor{User: u, StepUpAt: time.Now()}, keyledger.KeyInput{
		Name: "OpenAI checkout", Project: "checkout", Environment: "development", OwnerEmail: u.Email, Value: value})
	if err != nil {
		t.Fatal(err)
	}
	keyID := res.Key.ID

	// A token, minted by the admin command.
	code, stdout, stderr := runIO(t, env, "", bin, "token", "create", "--email", "dev@example.com", "--scopes", "read,reveal", "--expires", "1d")
	m := printedToken.FindStringSubmatch(stdout)
	if code != 0 || m == nil {
		t.Fatalf("token create: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	token := m[1]

	addr := freeAddr(t)
	senv := dbEnv(url, key)
	senv["KEYLEDGER_LISTEN"] = addr
	srv := start(t, senv, "serve")
	base := "http://" + addr
	waitReady(t, srv, base)

	// The client's configuration goes to a fresh home.
	home := t.TempDir()
	cenv := map[string]string{"HOME": home, "XDG_CONFIG_HOME": filepath.Join(home, ".config")}
	code, stdout, stderr = runIO(t, cenv, token+"\n", bin, "login", "--server", base)
	if code != 0 || !strings.HasPrefix(stdout, "Signed in to "+base+" as dev@example.com (scopes read, reveal; expires ") {
		t.Fatalf("login: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	cfgDir, err := os.UserConfigDir()
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS == "linux" {
		cfgDir = filepath.Join(home, ".config")
	} else {
		cfgDir = strings.Replace(cfgDir, os.Getenv("HOME"), home, 1)
	}
	fi, err := os.Stat(filepath.Join(cfgDir, "keyledger", "config.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("config.json: %v, mode %v", err, fi)
	}

	// run: the key is in the command's environment.
	code, _, stderr = runIO(t, cenv, "", bin, "run", "-e", "development", "--", "sh", "-c", `test "$OPENAI_API_KEY" = "`+value+`"`)
	if code != 0 {
		t.Errorf("run with the right value: exit %d, stderr %q", code, stderr)
	}
	code, stdout, stderr = runIO(t, cenv, "", bin, "run", "-e", "development", "--", "sh", "-c", `test "$OPENAI_API_KEY" = wrong`)
	if code != 1 {
		t.Errorf("run with a wrong value: exit %d, want 1", code)
	}
	if strings.Contains(stdout+stderr, value) {
		t.Error("run printed the value")
	}

	// env, evaluated by bash.
	code, stdout, stderr = runIO(t, map[string]string{"HOME": home, "XDG_CONFIG_HOME": cenv["XDG_CONFIG_HOME"], "KL": bin}, "",
		"bash", "-c", `set -e; eval "$("$KL" env -e development)"; printf '%s' "$OPENAI_API_KEY"`)
	if code != 0 || stdout != value {
		t.Errorf("env evaluated by bash: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	// keys list, show, reveal.
	code, stdout, _ = runIO(t, cenv, "", bin, "keys", "list")
	if code != 0 || !regexp.MustCompile(`(?m)^OpenAI checkout\s+checkout\s+development\s+dev@example.com\s+openai\s+.*\s`+keyID+`$`).MatchString(stdout) {
		t.Errorf("keys list: exit %d\n%s", code, stdout)
	}
	if strings.Contains(stdout, value) {
		t.Error("keys list printed the value")
	}
	code, stdout, _ = runIO(t, cenv, "", bin, "keys", "list", "--json", "-e", "development")
	var keys []map[string]any
	if err := json.Unmarshal([]byte(stdout), &keys); code != 0 || err != nil || len(keys) != 1 || keys[0]["id"] != keyID {
		t.Errorf("keys list --json: exit %d, %v\n%s", code, err, stdout)
	}
	code, stdout, _ = runIO(t, cenv, "", bin, "keys", "show", keyID)
	if code != 0 || !strings.Contains(stdout, "OpenAI checkout") || !strings.Contains(stdout, "v1") {
		t.Errorf("keys show: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runIO(t, cenv, "", bin, "keys", "reveal", keyID, "--reason", "e2e")
	if code != 0 || stdout != value+"\n" {
		t.Errorf("keys reveal: exit %d, stdout %q", code, stdout)
	}

	// One key whose stored value is damaged (a bit flipped in Postgres):
	// env exports the rest and says on stderr what it left out, and why.
	dmg, err := st.CreateKey(ctx, keyledger.Actor{User: u, StepUpAt: time.Now()}, keyledger.KeyInput{
		Name: "Anthropic damaged", Project: "checkout", Environment: "development", OwnerEmail: u.Email, Value: "sk-ant-api03-" + hex.EncodeToString(b) + "AA"})
	if err != nil {
		t.Fatal(err)
	}
	superExec(t, url, `UPDATE key_versions SET ciphertext = set_byte(ciphertext, 0, get_byte(ciphertext, 0) # 1) WHERE key_id = $1`, dmg.Key.ID)
	code, stdout, stderr = runIO(t, cenv, "", bin, "env", "-e", "development")
	if code != 0 || !strings.Contains(stdout, value) || strings.Contains(stdout, "sk-ant-") {
		t.Errorf("env with a damaged key: exit %d, want the other key exported", code)
	}
	if !strings.Contains(stderr, "left out Anthropic damaged (project checkout, id "+dmg.Key.ID+"): could not be decrypted: the stored value is damaged") {
		t.Errorf("env with a damaged key: stderr %q", stderr)
	}

	// A value the format cannot carry (issue 12, item 4): env exports the
	// rest and names the key and the reason on stderr, never the value.
	pem := "-----BEGIN KEY-----\n$PEMBODY" + hex.EncodeToString(b) + "\n-----END KEY-----"
	multi, err := st.CreateKey(ctx, keyledger.Actor{User: u, StepUpAt: time.Now()}, keyledger.KeyInput{
		Name: "PEM key", Project: "checkout", Environment: "development", OwnerEmail: u.Email, Value: pem})
	if err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = runIO(t, cenv, "", bin, "env", "-e", "development", "--format", "dotenv")
	if code != 0 || !strings.Contains(stdout, value) || strings.Contains(stdout+stderr, "PEMBODY") {
		t.Errorf("env --format dotenv with a multi-line value: exit %d, want the other key exported", code)
	}
	if !strings.Contains(stderr, "left out PEM key (project checkout, id "+multi.Key.ID+"): cannot be written as a .env line: contains a line break") {
		t.Errorf("env --format dotenv with a multi-line value: stderr %q", stderr)
	}

	// A revoked-looking token: the server's 401 becomes the login hint.
	code, _, stderr = runIO(t, map[string]string{"HOME": home, "XDG_CONFIG_HOME": cenv["XDG_CONFIG_HOME"], "KEYLEDGER_TOKEN": "klt_not-a-real-token"}, "", bin, "keys", "list")
	if code != 1 || !strings.Contains(stderr, "rejected the token") {
		t.Errorf("bad token: exit %d, stderr %q", code, stderr)
	}
	// Nothing was written besides config.json.
	entries, _ := os.ReadDir(filepath.Join(cfgDir, "keyledger"))
	if len(entries) != 1 {
		t.Errorf("config dir holds %v", entries)
	}
}
