package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
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

// TestRestoreDrill is the backup-and-restore drill of docs/operations.md,
// performed by CI: bootstrap an installation, register keys, take a
// `pg_dump -Fc`, drop the original, `pg_restore` into a new empty database
// and bring keyledger up on it with the master key that was kept apart.
// Every key must reveal its original value and the audit chain must
// verify; a different master key must be refused at startup; and the dump
// must not hold any key value.
func TestRestoreDrill(t *testing.T) {
	if testing.Short() {
		t.Skip("restore drill: runs pg_dump and pg_restore against Postgres")
	}
	t.Parallel()
	ctx := context.Background()

	// 1. A fresh installation, set up exactly as `make run` and compose do:
	// bootstrap creates the database and writes the master key file.
	srcName, srcURL := newDatabaseName(t)
	keyFile := filepath.Join(t.TempDir(), "keys", "master.key")
	mustRun(t, map[string]string{"KEYLEDGER_DATABASE_URL": srcURL, "KEYLEDGER_MASTER_KEY_FILE": keyFile}, "", "bootstrap")
	keyBytes, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatalf("bootstrap wrote no master key: %v", err)
	}
	masterKey := strings.TrimSpace(string(keyBytes))
	if _, err := crypto.ParseKEK(masterKey); err != nil {
		t.Fatalf("the master key file holds no valid key: %v", err)
	}

	// 2. Keys in every environment, one of them rotated so that a
	// superseded version (still in its grace period) is in the backup too.
	opts := store.Options{PasswordParams: storetest.FastPasswords()}
	src, srcPool := openStore(t, srcURL, masterKey, opts)
	lead, err := src.CreateUser(ctx, keyledger.SystemActor("test"), keyledger.NewUser{Email: "lead@example.com", Name: "Lead", Role: keyledger.RoleLead, Password: cliPassword})
	if err != nil {
		t.Fatal(err)
	}
	actor := keyledger.Actor{User: lead, IP: "192.0.2.10", UserAgent: "restore-drill", StepUpAt: time.Now()}
	secret := func(prefix string) string { return prefix + hex.EncodeToString(randBytes(t, 24)) }
	type version struct {
		id      string
		version int
		value   string
	}
	var versions []version // every revealable version and its value
	var names []string
	for _, in := range []keyledger.KeyInput{
		{Name: "drill-dev", Project: "drill", Environment: "development", Value: secret("drill_dev_")},
		{Name: "drill-staging", Project: "drill", Environment: "staging", Value: secret("drill_stg_")},
		{Name: "drill-production", Project: "drill", Environment: "production", Value: secret("drill_prd_")},
		{Name: "drill-quotes", Project: "other", Environment: "development", Value: "it's \"quoted\" $HOME \\ back\tslash\nline two " + secret("ünï-")},
	} {
		in.OwnerEmail = lead.Email
		res, err := src.CreateKey(ctx, actor, in)
		if err != nil {
			t.Fatalf("register %s: %v", in.Name, err)
		}
		versions = append(versions, version{res.Key.ID, 1, in.Value})
		names = append(names, in.Name)
	}
	rotated := secret("drill_dev_v2_")
	k, err := src.RotateKey(ctx, actor, versions[0].id, keyledger.RotateInput{Value: rotated, GraceDays: "7"})
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	versions = append(versions, version{k.ID, 2, rotated})
	for _, v := range versions {
		got, err := src.RevealVersion(ctx, actor, v.id, v.version, "before the backup")
		if err != nil || got.Value != v.value {
			t.Fatalf("reveal %s v%d before the backup: %v", v.id, v.version, err)
		}
	}
	sourceEvents := waitChained(t, map[string]string{"KEYLEDGER_DATABASE_URL": srcURL, "KEYLEDGER_MASTER_KEY_FILE": keyFile}, 0)

	// 3. The backup: pg_dump in custom format, with the pg_dump matching
	// the server's major version.
	dir := t.TempDir()
	dumpFile := filepath.Join(dir, "keyledger.dump")
	pgRun(t, pgTool(t, srcPool, "pg_dump"), "--format=custom", "--no-password", "--dbname", srcURL, "--file", dumpFile)
	dump, err := os.ReadFile(dumpFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(dump, []byte("PGDMP")) {
		t.Fatalf("%s is not a custom-format dump (%d bytes)", dumpFile, len(dump))
	}
	// What an operator runs to check a backup file is readable.
	pgRun(t, pgTool(t, srcPool, "pg_restore"), "--list", dumpFile)

	// The dump holds no key value, neither in the file as written
	// (compressed table data) nor in its decompressed SQL rendering.
	sql := pgRun(t, pgTool(t, srcPool, "pg_restore"), "--file=-", dumpFile)
	for _, want := range append([]string{"COPY public.key_versions", "COPY public.audit_events", "COPY public.keyring_check", lead.Email, "before the backup"}, names...) {
		if !strings.Contains(sql, want) {
			t.Fatalf("the dump's SQL (%d bytes) lacks %q: the scan below would prove nothing", len(sql), want)
		}
	}
	for _, v := range versions {
		for form, needle := range valueForms(v.value) {
			if bytes.Contains(dump, []byte(needle)) || strings.Contains(strings.ToLower(sql), strings.ToLower(needle)) {
				t.Errorf("the dump holds the %s of %s version %d", form, v.id, v.version)
			}
		}
	}
	if bytes.Contains(dump, []byte(masterKey)) || strings.Contains(sql, masterKey) {
		t.Error("the dump holds the master key")
	}

	// 4. Disaster: the original database is gone.
	srcPool.Close()
	dropDatabase(t, srcName)

	// 5. Restore into a new, empty database.
	dstURL := emptyDatabase(t)
	pgRun(t, pgTool(t, poolFor(t, dstURL), "pg_restore"), "--no-owner", "--exit-on-error", "--no-password", "--dbname", dstURL, dumpFile)
	env := map[string]string{"KEYLEDGER_DATABASE_URL": dstURL, "KEYLEDGER_MASTER_KEY_FILE": keyFile}

	// The schema came back current: migrate has nothing to do.
	if r := mustRun(t, env, "", "migrate"); !strings.HasPrefix(r.stdout, "database schema is at version ") {
		t.Errorf("migrate on the restored database: %q", r.stdout)
	}
	// The audit chain verifies, with every event the original had.
	r := mustRun(t, env, "", "audit", "verify")
	if want := fmt.Sprintf("audit chain OK: %d events verified\n", sourceEvents); !strings.HasPrefix(r.stdout, want) {
		t.Errorf("audit verify on the restored database: %q, want %q", r.stdout, want)
	}

	// The readiness check: store.New opens the canary and the instance
	// secrets with the kept master key, and every version reveals.
	dst, _ := openStore(t, dstURL, masterKey, opts)
	for _, v := range versions {
		got, err := dst.RevealVersion(ctx, actor, v.id, v.version, "restore drill")
		if err != nil {
			t.Errorf("reveal %s v%d after the restore: %v", v.id, v.version, err)
			continue
		}
		if got.Value != v.value {
			t.Errorf("reveal %s v%d after the restore: got a different value", v.id, v.version)
		}
	}
	// The password hashes came back too.
	if _, err := dst.Authenticate(ctx, keyledger.Actor{IP: "192.0.2.10"}, lead.Email, cliPassword); err != nil {
		t.Errorf("sign in after the restore: %v", err)
	}

	// serve on the restored database answers /readyz with 200, and the
	// container health check agrees; then it stops cleanly.
	addr := freeAddr(t)
	serveEnv := map[string]string{"KEYLEDGER_LISTEN": addr, "KEYLEDGER_LOG_LEVEL": "warn"}
	for k, v := range env {
		serveEnv[k] = v
	}
	// Keys of no known provider: the verification job started by serve
	// calls nobody. The stubs below make sure of it.
	for _, p := range []string{"OPENAI", "ANTHROPIC", "GITHUB", "STRIPE"} {
		serveEnv["KEYLEDGER_"+p+"_BASE_URL"] = "http://127.0.0.1:9"
	}
	serveCtx, stopServe := context.WithTimeout(ctx, 2*time.Minute)
	defer stopServe()
	served := make(chan result, 1)
	go func() { served <- runMainCtx(serveCtx, t, serveEnv, "", "serve") }()
	waitReadyz(t, "http://"+addr, served)
	if hc := runMain(t, map[string]string{"KEYLEDGER_LISTEN": addr}, "", "healthcheck"); hc.code != 0 {
		t.Errorf("healthcheck on the restored server: exit %d: %s", hc.code, hc.stderr)
	}
	stopServe()
	if s := <-served; s.code != 0 {
		t.Errorf("serve on the restored database: exit %d\n%s", s.code, s.stderr)
	}

	// The reveals made after the restore chain onto the restored chain.
	waitChained(t, env, sourceEvents+int64(len(versions)))

	// 6. With any other master key the restored database refuses to start,
	// and says why.
	wrongKey := newKEK(t)
	wrongEnv := map[string]string{"KEYLEDGER_DATABASE_URL": dstURL, "KEYLEDGER_MASTER_KEY": wrongKey, "KEYLEDGER_LISTEN": "127.0.0.1:0"}
	for _, args := range [][]string{{"serve"}, {"audit", "verify"}} {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		r := runMainCtx(cctx, t, wrongEnv, "", args...)
		cancel()
		// audit verify could not check anything: 2, not 1 ("broken").
		if want := map[bool]int{true: 2, false: 1}[args[0] == "audit"]; r.code != want {
			t.Errorf("%v with a different master key: exit %d, want %d\nstderr:\n%s", args, r.code, want, r.stderr)
			continue
		}
		last := strings.TrimSuffix(r.stderr, "\n")
		last = last[strings.LastIndex(last, "\n")+1:]
		checkOneLine(t, last, []string{"master key", kekID(t, masterKey), kekID(t, wrongKey)}, []string{masterKey, wrongKey})
	}
	kr, err := (&Config{MasterKeys: wrongKey, MasterKeySrc: "KEYLEDGER_MASTER_KEY"}).Keyring()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.New(ctx, poolFor(t, dstURL), kr, opts); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Errorf("store.New with a different master key: %v, want a refusal naming the master key", err)
	}
	// The refusals changed nothing: the kept key still opens everything.
	if r := mustRun(t, env, "", "audit", "verify"); !strings.HasPrefix(r.stdout, "audit chain OK: ") {
		t.Errorf("audit verify after the refusals: %q", r.stdout)
	}
}

// valueForms are the ways a value could sit in a dump: as is, escaped as
// COPY writes text, and in the encodings Postgres and JSON use for bytes.
func valueForms(v string) map[string]string {
	return map[string]string{
		"plain value":        v,
		"COPY-escaped value": strings.NewReplacer(`\`, `\\`, "\n", `\n`, "\r", `\r`, "\t", `\t`).Replace(v),
		"hex encoding":       hex.EncodeToString([]byte(v)),
		"base64":             base64.StdEncoding.EncodeToString([]byte(v)),
		"base64url":          base64.RawURLEncoding.EncodeToString([]byte(v)),
	}
}

// waitChained runs `audit verify` until no event is waiting for the
// chainer (a transaction running anywhere on the server holds it back for
// a moment) and returns how many events it verified, at least atLeast.
func waitChained(t *testing.T, env map[string]string, atLeast int64) int64 {
	t.Helper()
	re := regexp.MustCompile(`^audit chain OK: (\d+) events verified`)
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := mustRun(t, env, "", "audit", "verify")
		m := re.FindStringSubmatch(r.stdout)
		if m == nil {
			t.Fatalf("audit verify: %q", r.stdout)
		}
		var n int64
		if _, err := fmt.Sscan(m[1], &n); err != nil {
			t.Fatalf("audit verify count %q: %v", m[1], err)
		}
		if !strings.Contains(r.stdout, "not yet chained") && n >= atLeast {
			return n
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit chain not complete after 30s (want at least %d events): %q", atLeast, r.stdout)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pgTool finds the Postgres client program (pg_dump, pg_restore) whose
// major version matches the server's: an older pg_dump refuses a newer
// server, and a newer one writes archives an older pg_restore cannot read.
func pgTool(t *testing.T, pool *pgxpool.Pool, name string) string {
	t.Helper()
	var major string
	if err := pool.QueryRow(context.Background(), "SELECT (current_setting('server_version_num')::int / 10000)::text").Scan(&major); err != nil {
		t.Fatal(err)
	}
	candidates := []string{"/usr/lib/postgresql/" + major + "/bin/" + name}
	if p, err := exec.LookPath(name); err == nil {
		candidates = append([]string{p}, candidates...)
	}
	re := regexp.MustCompile(`\) (\d+)`)
	for _, c := range candidates {
		if _, err := os.Stat(c); err != nil {
			continue
		}
		out, err := exec.Command(c, "--version").Output()
		if m := re.FindSubmatch(out); err == nil && m != nil && string(m[1]) == major {
			return c
		}
	}
	t.Fatalf("no %s for PostgreSQL %s among %v: install postgresql-client-%s", name, major, candidates, major)
	return ""
}

// pgRun runs a Postgres client program and returns its standard output.
func pgRun(t *testing.T, prog string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10")
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(prog), strings.Join(args, " "), err, stderr.String())
	}
	t.Logf("%s: %d bytes of output in %s", filepath.Base(prog), stdout.Len(), time.Since(start).Round(time.Millisecond))
	return stdout.String()
}

// poolFor opens a pool on url, closed when the test ends.
func poolFor(t *testing.T, url string) *pgxpool.Pool {
	t.Helper()
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	return pool
}

func dropDatabase(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, storetest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "DROP DATABASE "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		t.Fatalf("drop the original database: %v", err)
	}
}

// waitReadyz polls base/readyz until it answers 200, failing the test if
// serve exits first or 30 seconds pass.
func waitReadyz(t *testing.T, base string, served <-chan result) {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case r := <-served:
			t.Fatalf("serve exited early (code %d):\n%s", r.code, r.stderr)
		default:
		}
		resp, err := client.Get(base + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 after 30s (last: %v)", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
