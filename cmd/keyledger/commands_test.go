package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
	"github.com/keyledger/keyledger/store"
	"github.com/keyledger/keyledger/store/storetest"
)

const cliPassword = "correct horse battery staple"

type result struct {
	code           int
	stdout, stderr string
}

// runMain runs the program in-process with env as its whole environment.
func runMain(t testing.TB, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return runMainCtx(ctx, t, env, stdin, args...)
}

func runMainCtx(ctx context.Context, t testing.TB, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	m := &Main{Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr, Getenv: envFunc(env)}
	start := time.Now()
	code := m.Run(ctx, args)
	t.Logf("keyledger %s: exit %d in %s", strings.Join(args, " "), code, time.Since(start).Round(time.Millisecond))
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// mustRun runs the program and fails unless it exits 0.
func mustRun(t testing.TB, env map[string]string, stdin string, args ...string) result {
	t.Helper()
	r := runMain(t, env, stdin, args...)
	if r.code != 0 {
		t.Fatalf("keyledger %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

// newDatabaseName reserves a database name on the test server that does not
// exist yet, and drops it (if it came to exist) when the test ends.
func newDatabaseName(t testing.TB) (name, url string) {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name = "keyledger_cmdtest_" + hex.EncodeToString(b)
	url, err := storetest.WithDatabase(storetest.AdminURL(), name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, storetest.AdminURL())
		if err != nil {
			t.Logf("drop %s: %v", name, err)
			return
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Logf("drop %s: %v", name, err)
		}
	})
	return name, url
}

// emptyDatabase creates a database with no schema.
func emptyDatabase(t testing.TB) string {
	t.Helper()
	name, url := newDatabaseName(t)
	ctx := context.Background()
	c, err := pgx.Connect(ctx, storetest.AdminURL())
	if err != nil {
		t.Fatalf("connect to Postgres at %s: %v", storetest.AdminURL(), err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	return url
}

func databaseExists(t testing.TB, name string) bool {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, storetest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var ok bool
	if err := c.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// openStore opens a store on url with the given master keys (as
// KEYLEDGER_MASTER_KEY would hold them), closing it when the test ends.
func openStore(t testing.TB, url, keys string, opts store.Options) (*store.Store, *pgxpool.Pool) {
	t.Helper()
	cfg := Config{MasterKeys: keys, MasterKeySrc: "KEYLEDGER_MASTER_KEY"}
	kr, err := cfg.Keyring()
	if err != nil {
		t.Fatal(err)
	}
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	st, err := store.New(context.Background(), pool, kr, opts)
	if err != nil {
		t.Fatalf("store.New: %v", err)
	}
	return st, pool
}

func dbEnv(url, key string) map[string]string {
	return map[string]string{"KEYLEDGER_DATABASE_URL": url, "KEYLEDGER_MASTER_KEY": key}
}

func TestHelpAndUnknownCommand(t *testing.T) {
	for _, arg := range []string{"help", "-h", "--help"} {
		r := runMain(t, nil, "", arg)
		if r.code != 0 || !strings.Contains(r.stdout, "keyledger masterkey rotate") || r.stderr != "" {
			t.Errorf("%s: exit %d, stdout %q, stderr %q", arg, r.code, r.stdout, r.stderr)
		}
	}
	for _, args := range [][]string{{"frobnicate"}, {"user"}, {"user", "delete"}, {"masterkey", "show"}} {
		r := runMain(t, map[string]string{"KEYLEDGER_MASTER_KEY": newKEK(t)}, "", args...)
		if r.code != 2 {
			t.Errorf("%v: exit %d, want 2", args, r.code)
		}
		if !strings.Contains(r.stderr, "unknown command") || !strings.Contains(r.stderr, "Usage:") {
			t.Errorf("%v: stderr %q", args, r.stderr)
		}
	}
}

func TestMasterkeyGenerate(t *testing.T) {
	seen := map[string]bool{}
	for range 3 {
		// Works even when the configured key is broken: that is when the
		// error messages send people here.
		r := runMain(t, map[string]string{"KEYLEDGER_MASTER_KEY": "broken", "KEYLEDGER_DATABASE_URL": "postgres://x:hunter2@127.0.0.1:1/x"}, "", "masterkey", "generate")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		if r.stderr != "" {
			t.Errorf("stderr: %q", r.stderr)
		}
		if !strings.HasSuffix(r.stdout, "\n") || strings.Count(r.stdout, "\n") != 1 {
			t.Fatalf("want one line, got %q", r.stdout)
		}
		k := strings.TrimSuffix(r.stdout, "\n")
		if len(k) != 44 {
			t.Errorf("key %q is %d characters, want 44", k, len(k))
		}
		if _, err := crypto.ParseKEK(k); err != nil {
			t.Errorf("ParseKEK(%q): %v", k, err)
		}
		if seen[k] {
			t.Errorf("generated %q twice", k)
		}
		seen[k] = true
	}
}

var printedPassword = regexp.MustCompile(`(?m)^\s*Password:\s+(\S+)\s*$`)

func TestBootstrap(t *testing.T) {
	t.Parallel()
	name, url := newDatabaseName(t)
	keyFile := filepath.Join(t.TempDir(), "secrets", "master.key")
	env := map[string]string{"KEYLEDGER_DATABASE_URL": url, "KEYLEDGER_MASTER_KEY_FILE": keyFile}

	r := mustRun(t, env, "", "bootstrap")
	t.Logf("first bootstrap stdout:\n%s", r.stdout)
	if !databaseExists(t, name) {
		t.Fatalf("database %s was not created", name)
	}
	if !strings.Contains(r.stdout, fmt.Sprintf("Created database %q", name)) {
		t.Errorf("stdout does not report the new database:\n%s", r.stdout)
	}
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatalf("key file: %v", err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %o, want 600", perm)
	}
	if di, err := os.Stat(filepath.Dir(keyFile)); err != nil || di.Mode().Perm()&0o077 != 0 {
		t.Errorf("key directory: %v, mode %v", err, di.Mode())
	}
	keyBytes, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(keyBytes))
	if _, err := crypto.ParseKEK(key); err != nil {
		t.Fatalf("key file holds no valid key: %v", err)
	}
	if strings.Contains(r.stdout+r.stderr, key) {
		t.Error("bootstrap printed the master key")
	}
	if !strings.Contains(r.stdout, keyFile) {
		t.Errorf("stdout does not say where the key is:\n%s", r.stdout)
	}
	m := printedPassword.FindAllStringSubmatch(r.stdout, -1)
	if len(m) != 1 {
		t.Fatalf("want the password printed once, found %d times in:\n%s", len(m), r.stdout)
	}
	password := m[0][1]
	if len(password) < keyledger.MinPasswordLength {
		t.Errorf("password %q is shorter than %d", password, keyledger.MinPasswordLength)
	}
	if strings.Count(r.stdout, password) != 1 {
		t.Errorf("password appears %d times on stdout", strings.Count(r.stdout, password))
	}
	if strings.Contains(r.stderr, password) {
		t.Error("password leaked to stderr (logs)")
	}
	if !strings.Contains(r.stdout, "admin@localhost") || !strings.Contains(r.stdout, "http://127.0.0.1:8080/login") {
		t.Errorf("stdout lacks email or URL:\n%s", r.stdout)
	}

	// Again: nothing new, no password, key file untouched.
	before := fi.ModTime()
	r2 := mustRun(t, env, "", "bootstrap")
	t.Logf("second bootstrap stdout:\n%s", r2.stdout)
	if printedPassword.MatchString(r2.stdout) || strings.Contains(r2.stdout, password) {
		t.Errorf("second bootstrap printed a password:\n%s", r2.stdout)
	}
	if strings.Contains(r2.stdout, "Created") || strings.Contains(r2.stdout, "Generated") {
		t.Errorf("second bootstrap created something:\n%s", r2.stdout)
	}
	if !strings.Contains(r2.stdout, "set up (1 users)") {
		t.Errorf("second bootstrap stdout:\n%s", r2.stdout)
	}
	after, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after, keyBytes) {
		t.Error("second bootstrap changed the key file")
	}
	if fi2, _ := os.Stat(keyFile); !fi2.ModTime().Equal(before) || fi2.Mode().Perm() != 0o600 {
		t.Errorf("key file touched: mtime %v -> %v, mode %v", before, fi2.ModTime(), fi2.Mode())
	}

	// The printed password signs in, with the key from the file.
	st, _ := openStore(t, url, key, store.Options{})
	ctx := context.Background()
	meta := keyledger.Actor{IP: "127.0.0.1", UserAgent: "cmd-test"}
	u, err := st.Authenticate(ctx, meta, "admin@localhost", password)
	if err != nil {
		t.Fatalf("sign in with the printed password: %v", err)
	}
	if u.Role != keyledger.RoleAdmin || !u.Active() {
		t.Errorf("bootstrap user is %s/%s, want an active admin", u.Role, u.Status)
	}
	if _, err := st.Authenticate(ctx, meta, "admin@localhost", password+"x"); err == nil {
		t.Error("a wrong password signed in")
	}

	// Other commands accept the generated file.
	r3 := mustRun(t, env, "", "user", "list")
	if !strings.Contains(r3.stdout, "admin@localhost") {
		t.Errorf("user list:\n%s", r3.stdout)
	}
}

// A key given in KEYLEDGER_MASTER_KEY is used as is; bootstrap writes no
// file and works on a database that already exists.
func TestBootstrapWithKeyInEnvironment(t *testing.T) {
	t.Parallel()
	url := storetest.NewDatabase(t)
	dir := t.TempDir()
	env := dbEnv(url, newKEK(t))
	env["KEYLEDGER_BASE_URL"] = "https://keys.example.com/"
	r := mustRun(t, env, "", "bootstrap")
	if strings.Contains(r.stdout, "Created database") || strings.Contains(r.stdout, "Generated") {
		t.Errorf("stdout:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "https://keys.example.com/login") {
		t.Errorf("bootstrap does not point at KEYLEDGER_BASE_URL:\n%s", r.stdout)
	}
	if len(printedPassword.FindAllString(r.stdout, -1)) != 1 {
		t.Errorf("want one password:\n%s", r.stdout)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("files written: %v", entries)
	}
}

func TestMigrate(t *testing.T) {
	t.Parallel()
	url := emptyDatabase(t)
	env := dbEnv(url, newKEK(t))

	// Before migrating, commands that need the schema say what to do.
	r := runMain(t, env, "", "user", "list")
	if r.code != 1 || !strings.Contains(r.stderr, "keyledger migrate") {
		t.Errorf("user list on an empty database: exit %d, stderr %q", r.code, r.stderr)
	}

	first := mustRun(t, env, "", "migrate")
	second := mustRun(t, env, "", "migrate")
	if !strings.HasPrefix(first.stdout, "database schema is at version ") {
		t.Errorf("first migrate: %q", first.stdout)
	}
	if first.stdout != second.stdout {
		t.Errorf("migrate twice: %q then %q", first.stdout, second.stdout)
	}
	mustRun(t, env, "", "user", "list")
}

func TestMigrateRedactsUnparsableURL(t *testing.T) {
	// Passes url.Parse, fails pgx's parser: the message must still name
	// the variable and not echo the password.
	for _, u := range []string{
		"postgres://keyledger:hunter2@127.0.0.1:5432/keyledger?sslmode=sometimes",
		"postgres://keyledger:hunter2@127.0.0.1:5432/keyledger?connect_timeout=soon",
	} {
		r := runMain(t, map[string]string{"KEYLEDGER_DATABASE_URL": u}, "", "migrate")
		if r.code != 1 {
			t.Errorf("%s: exit %d", u, r.code)
		}
		checkOneLine(t, strings.TrimSuffix(r.stderr, "\n"), []string{"KEYLEDGER_DATABASE_URL", "postgres://user:password@host"}, []string{"hunter2", "sometimes", "soon"})
	}
}

func TestUserCommands(t *testing.T) {
	t.Parallel()
	url := storetest.NewDatabase(t)
	key := newKEK(t)
	env := dbEnv(url, key)

	r := mustRun(t, env, cliPassword+"\n", "user", "create", "--email", "x@example.com", "--name", "X", "--role", "lead")
	if r.stdout != "created x@example.com (lead)\n" {
		t.Errorf("stdout %q", r.stdout)
	}
	// A CRLF from a Windows-made file is not part of the password.
	mustRun(t, env, cliPassword+" 2\r\n", "user", "create", "--email", "Y@Example.com", "--name", "Y Why", "--role", "member")
	// Default role, no trailing newline.
	mustRun(t, env, cliPassword+" 3", "user", "create", "--email", "z@example.com", "--name", "Z")
	for _, out := range []string{r.stdout, r.stderr} {
		if strings.Contains(out, cliPassword) {
			t.Errorf("password echoed: %q", out)
		}
	}

	t.Run("bad role", func(t *testing.T) {
		r := runMain(t, env, cliPassword+"\n", "user", "create", "--email", "boss@example.com", "--name", "Boss", "--role", "owner")
		if r.code != 2 {
			t.Errorf("exit %d, want 2", r.code)
		}
		checkOneLine(t, strings.TrimSuffix(r.stderr, "\n"), []string{"--role", "admin, lead or member", `"owner"`}, nil)
	})
	t.Run("unknown flag", func(t *testing.T) {
		r := runMain(t, env, cliPassword+"\n", "user", "create", "--email", "q@example.com", "--admin")
		if r.code != 2 {
			t.Errorf("exit %d, want 2; stderr %q", r.code, r.stderr)
		}
	})
	t.Run("short password", func(t *testing.T) {
		r := runMain(t, env, "hunter2\n", "user", "create", "--email", "short@example.com", "--name", "Short", "--role", "member")
		if r.code == 0 {
			t.Fatal("short password accepted")
		}
		checkOneLine(t, strings.TrimSuffix(r.stderr, "\n"), []string{"password", "at least 12 characters"}, []string{"hunter2"})
	})
	t.Run("empty stdin", func(t *testing.T) {
		r := runMain(t, env, "", "user", "create", "--email", "empty@example.com", "--name", "Empty")
		if r.code == 0 || !strings.Contains(r.stderr, "at least 12 characters") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
	t.Run("duplicate email", func(t *testing.T) {
		r := runMain(t, env, cliPassword+"\n", "user", "create", "--email", "X@example.com", "--name", "X again", "--role", "member")
		if r.code != 1 {
			t.Errorf("exit %d, want 1", r.code)
		}
		checkOneLine(t, strings.TrimSuffix(r.stderr, "\n"), []string{"--email"}, []string{cliPassword})
	})
	t.Run("prompt needs a terminal", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		m := &Main{Stdin: strings.NewReader(cliPassword + "\n"), Stdout: &stdout, Stderr: &stderr, Getenv: envFunc(env), StdinIsTerminal: true}
		code := m.Run(context.Background(), []string{"user", "create", "--email", "tty@example.com", "--name", "T"})
		if code != 1 || !strings.Contains(stderr.String(), "terminal") {
			t.Errorf("exit %d, stderr %q", code, stderr.String())
		}
	})

	list := mustRun(t, env, "", "user", "list")
	t.Logf("user list:\n%s", list.stdout)
	lines := strings.Split(strings.TrimSpace(list.stdout), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "EMAIL") {
		t.Fatalf("want a header and 3 users:\n%s", list.stdout)
	}
	wantRow := map[string][]string{
		"x@example.com": {"X", "lead", "active"},
		"y@example.com": {"Y Why", "member", "active"},
		"z@example.com": {"Z", "member", "active"},
	}
	for email, fields := range wantRow {
		row := lineWith(lines, email)
		if row == "" {
			t.Errorf("%s missing from list", email)
			continue
		}
		for _, f := range fields {
			if !strings.Contains(row, f) {
				t.Errorf("row %q lacks %q", row, f)
			}
		}
	}

	// The passwords given on stdin sign in (the CR was stripped).
	st, _ := openStore(t, url, key, store.Options{})
	meta := keyledger.Actor{IP: "127.0.0.1"}
	if _, err := st.Authenticate(context.Background(), meta, "x@example.com", cliPassword); err != nil {
		t.Errorf("x signs in: %v", err)
	}
	if _, err := st.Authenticate(context.Background(), meta, "y@example.com", cliPassword+" 2"); err != nil {
		t.Errorf("y signs in with the password without CR: %v", err)
	}

	// Deactivate.
	d := mustRun(t, env, "", "user", "deactivate", "--email", "X@Example.COM")
	if !strings.Contains(d.stdout, "deactivated x@example.com") {
		t.Errorf("deactivate stdout %q", d.stdout)
	}
	list = mustRun(t, env, "", "user", "list")
	if row := lineWith(strings.Split(list.stdout, "\n"), "x@example.com"); !strings.Contains(row, "deactivated") {
		t.Errorf("x after deactivation: %q", row)
	}
	if _, err := st.Authenticate(context.Background(), meta, "x@example.com", cliPassword); err == nil {
		t.Error("deactivated user still signs in")
	}

	t.Run("deactivate unknown email", func(t *testing.T) {
		r := runMain(t, env, "", "user", "deactivate", "--email", "nobody@example.com")
		if r.code != 1 {
			t.Errorf("exit %d, want 1", r.code)
		}
		checkOneLine(t, strings.TrimSuffix(r.stderr, "\n"), []string{"not found"}, nil)
		if r.stdout != "" {
			t.Errorf("stdout %q", r.stdout)
		}
	})
	t.Run("deactivate without email", func(t *testing.T) {
		r := runMain(t, env, "", "user", "deactivate")
		if r.code != 2 || !strings.Contains(r.stderr, "--email") {
			t.Errorf("exit %d, stderr %q", r.code, r.stderr)
		}
	})
}

func lineWith(lines []string, s string) string {
	for _, l := range lines {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

func TestAuditVerify(t *testing.T) {
	t.Parallel()
	url := storetest.NewDatabase(t)
	env := dbEnv(url, newKEK(t))
	mustRun(t, env, "", "bootstrap")
	mustRun(t, env, cliPassword+"\n", "user", "create", "--email", "a@example.com", "--name", "A", "--role", "admin")
	mustRun(t, env, "", "user", "deactivate", "--email", "a@example.com")

	// Verify until every event is chained: a transaction running anywhere
	// on the server holds the chainer back for a moment.
	deadline := time.Now().Add(20 * time.Second)
	var r result
	for {
		r = mustRun(t, env, "", "audit", "verify")
		if !strings.HasPrefix(r.stdout, "audit chain OK: ") {
			t.Fatalf("stdout %q", r.stdout)
		}
		if !strings.Contains(r.stdout, "not yet chained") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("events still unchained after 20s: %q", r.stdout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(r.stdout, "OK: 3 events verified") {
		t.Errorf("want 3 events (bootstrap admin, create, deactivate): %q", r.stdout)
	}

	// Edit the first event the way a superuser could.
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "SET session_replication_role = replica"); err != nil {
		t.Fatal(err)
	}
	tag, err := conn.Exec(ctx, "UPDATE audit_events SET reason = 'x' WHERE id = (SELECT min(id) FROM audit_events)")
	if err != nil {
		t.Fatal(err)
	}
	if tag.RowsAffected() != 1 {
		t.Fatalf("tampered with %d rows", tag.RowsAffected())
	}

	bad := runMain(t, env, "", "audit", "verify")
	if bad.code != 1 {
		t.Errorf("exit %d after tampering, want 1", bad.code)
	}
	checkOneLine(t, strings.TrimSuffix(bad.stderr, "\n"), []string{"BROKEN", "does not match its hash"}, nil)
	if strings.Contains(bad.stdout, "OK") {
		t.Errorf("stdout says OK: %q", bad.stdout)
	}
}

func TestWrongMasterKey(t *testing.T) {
	t.Parallel()
	url := storetest.NewDatabase(t)
	keyA, keyB := newKEK(t), newKEK(t)
	mustRun(t, dbEnv(url, keyA), "", "bootstrap")

	for _, args := range [][]string{{"user", "list"}, {"audit", "verify"}, {"masterkey", "rotate"}, {"serve"}, {"bootstrap"}} {
		env := dbEnv(url, keyB)
		env["KEYLEDGER_LISTEN"] = "127.0.0.1:0"
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		r := runMainCtx(ctx, t, env, "", args...)
		cancel()
		// audit verify could not check anything: 2, not 1 ("broken").
		if want := map[bool]int{true: 2, false: 1}[args[0] == "audit"]; r.code != want {
			t.Errorf("%v with the wrong key: exit %d, want %d\nstdout:%s\nstderr:%s", args, r.code, want, r.stdout, r.stderr)
			continue
		}
		msg := r.stderr[strings.LastIndex(strings.TrimSuffix(r.stderr, "\n"), "\n")+1:]
		checkOneLine(t, strings.TrimSuffix(msg, "\n"), []string{"master key", kekID(t, keyA), kekID(t, keyB)}, []string{keyA, keyB})
		if strings.Contains(r.stdout+r.stderr, keyA) || strings.Contains(r.stdout+r.stderr, keyB) {
			t.Errorf("%v: key material in output", args)
		}
		if printedPassword.MatchString(r.stdout) {
			t.Errorf("%v: printed a password:\n%s", args, r.stdout)
		}
	}
	// The failed attempts broke nothing for the right key.
	r := mustRun(t, dbEnv(url, keyA), "", "user", "list")
	if !strings.Contains(r.stdout, "admin@localhost") {
		t.Errorf("user list:\n%s", r.stdout)
	}
}

func TestMasterkeyRotate(t *testing.T) {
	t.Parallel()
	url := storetest.NewDatabase(t)
	keyA, keyB := newKEK(t), newKEK(t)
	idA, idB := kekID(t, keyA), kekID(t, keyB)
	ctx := context.Background()

	// Register keys under A.
	st, pool := openStore(t, url, keyA, store.Options{PasswordParams: storetest.FastPasswords()})
	lead, err := st.CreateUser(ctx, keyledger.SystemActor("test"), keyledger.NewUser{Email: "lead@example.com", Name: "Lead", Role: keyledger.RoleLead, Password: cliPassword})
	if err != nil {
		t.Fatal(err)
	}
	actor := keyledger.Actor{User: lead, IP: "192.0.2.1", StepUpAt: time.Now()}
	values := map[string]string{}
	for _, in := range []keyledger.KeyInput{
		{Name: "payments-dev", Project: "billing", Environment: "development", OwnerEmail: lead.Email, Value: "sk_test_" + hex.EncodeToString(randBytes(t, 20))},
		{Name: "payments-staging", Project: "billing", Environment: "staging", OwnerEmail: lead.Email, Value: "sk_test_" + hex.EncodeToString(randBytes(t, 20))},
		{Name: "search", Project: "web", Environment: "production", OwnerEmail: lead.Email, Value: "srch_" + hex.EncodeToString(randBytes(t, 24))},
	} {
		res, err := st.CreateKey(ctx, actor, in)
		if err != nil {
			t.Fatalf("create key %s: %v", in.Name, err)
		}
		values[res.Key.ID] = in.Value
	}
	countUnder := func(id string) int {
		t.Helper()
		var n int
		if err := pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM key_versions WHERE kek_id = $1) + (SELECT count(*) FROM instance_secrets WHERE kek_id = $1)`, id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	underA := countUnder(idA)
	if underA < 3 {
		t.Fatalf("only %d values under key A", underA)
	}

	// Rotate with B primary, A still loaded.
	r := mustRun(t, dbEnv(url, keyB+","+keyA), "", "masterkey", "rotate")
	t.Logf("rotate: stdout %q stderr %q", r.stdout, r.stderr)
	for _, want := range []string{
		"key_versions: re-wrapped 3, 0 left under older master keys\n",
		fmt.Sprintf("instance_secrets: re-wrapped %d, 0 left under older master keys\n", underA-3),
		"users.totp: re-wrapped 0, 0 left under older master keys\n",
		fmt.Sprintf("done: %d data keys re-wrapped", underA),
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("rotate does not say %q:\n%s", want, r.stdout)
		}
	}
	if n := countUnder(idA); n != 0 {
		t.Errorf("%d values still under key A after rotation", n)
	}
	if n := countUnder(idB); n < 3 {
		t.Errorf("only %d values under key B", n)
	}
	// Rotating again has nothing to do.
	r = mustRun(t, dbEnv(url, keyB+"\n"+keyA), "", "masterkey", "rotate")
	if !strings.Contains(r.stdout, "done: 0 data keys") {
		t.Errorf("second rotate: %q", r.stdout)
	}

	// Only B: everything opens.
	r = mustRun(t, dbEnv(url, keyB), "", "user", "list")
	if !strings.Contains(r.stdout, "lead@example.com") {
		t.Errorf("user list with B:\n%s", r.stdout)
	}
	stB, _ := openStore(t, url, keyB, store.Options{PasswordParams: storetest.FastPasswords()})
	for id, want := range values {
		got, err := stB.Reveal(ctx, actor, id, "checking the master key rotation")
		if err != nil {
			t.Errorf("reveal %s with only B: %v", id, err)
			continue
		}
		if got.Value != want {
			t.Errorf("reveal %s: got a different value", id)
		}
	}

	// Only A: refused at startup.
	r = runMain(t, dbEnv(url, keyA), "", "user", "list")
	if r.code != 1 {
		t.Errorf("user list with only the old key: exit %d", r.code)
	}
	checkOneLine(t, strings.TrimSuffix(r.stderr, "\n"), []string{"master key", idB}, []string{keyA, keyB})
}

func randBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
