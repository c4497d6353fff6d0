package main

// "The first hour" (issue 12): what a newcomer meets on a fresh clone, run
// through the real binary. No timing assertions: 30 s is only a guard
// against a hang; the measured times are logged.

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/keyledger/keyledger/store/storetest"
)

// runIn runs the binary in dir with env (and no other KEYLEDGER_
// variable) and returns its exit code, its output and how long it took;
// it fails the test when it runs past 30 s.
func runIn(t *testing.T, dir string, env map[string]string, args ...string) (int, string, time.Duration) {
	t.Helper()
	cmd := exec.Command(keyledgerBinary(t), args...)
	cmd.Env = processEnv(env)
	cmd.Dir = dir
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	started := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, output: out, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if !p.exited() {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	code := p.wait(t, 30*time.Second)
	took := time.Since(started)
	t.Logf("keyledger %s: exit %d in %s", strings.Join(args, " "), code, took.Round(time.Millisecond))
	return code, out.String(), took
}

// lastLine is the output's last non-empty line.
func lastLine(out string) string {
	out = strings.TrimRight(out, "\n")
	return out[strings.LastIndex(out, "\n")+1:]
}

// closedPort is a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	_, port, err := net.SplitHostPort(freeAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// TestOneShotBadDatabaseFailsFast: a wrong database URL (closed port, a
// host that does not exist, a role that does not exist) makes every
// one-shot command fail at once with one line naming the host and the
// cause, instead of minutes of silence.
func TestOneShotBadDatabaseFailsFast(t *testing.T) {
	keyledgerBinary(t)
	key := newKEK(t)
	port := closedPort(t)
	admin, err := pgx.ParseConfig(storetest.AdminURL())
	if err != nil {
		t.Fatal(err)
	}
	pgHost := net.JoinHostPort(admin.Host, strconv.Itoa(int(admin.Port)))
	noRole := "postgres://nosuchrole_kl:hunter2@" + pgHost + "/keyledger?sslmode=disable"
	cases := []struct {
		name, url string
		want      []string
	}{
		{"closed port", "postgres://keyledger:hunter2@127.0.0.1:" + port + "/keyledger?sslmode=disable", []string{"127.0.0.1:" + port, "connection refused"}},
		{"no such host", "postgres://keyledger:hunter2@no-such-host.invalid:5432/keyledger?sslmode=disable", []string{"no-such-host.invalid:5432", "no such host"}},
		{"no such role", noRole, []string{pgHost, `role "nosuchrole_kl" does not exist`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			commands := [][]string{{"bootstrap"}, {"migrate"}, {"user", "list"}, {"token", "create", "--email", "a@example.com", "--scopes", "read"},
				{"masterkey", "rotate"}, {"audit", "verify"}}
			if tc.name != "closed port" {
				commands = commands[:2] // the others share the path; one each is enough
			}
			for _, args := range commands {
				code, out, took := runIn(t, t.TempDir(), map[string]string{"KEYLEDGER_DATABASE_URL": tc.url, "KEYLEDGER_MASTER_KEY": key}, args...)
				if code == 0 {
					t.Errorf("%v: exit 0 with a bad database URL:\n%s", args, out)
					continue
				}
				msg := lastLine(out)
				checkOneLine(t, msg, tc.want, []string{"hunter2", key})
				if n := strings.Count(strings.TrimSpace(out), "\n"); n > 0 && args[0] != "bootstrap" {
					t.Errorf("%v: %d lines of output, want one:\n%s", args, n+1, out)
				}
				t.Logf("%v failed after %s", args, took.Round(time.Millisecond))
			}
		})
	}
}

// TestUnknownDatabaseSaysBootstrap: a database that does not exist is
// named, with the command that creates it; serve keeps retrying but logs
// the reason at ERROR each time.
func TestUnknownDatabaseSaysBootstrap(t *testing.T) {
	keyledgerBinary(t)
	name, url := newDatabaseName(t)
	env := map[string]string{"KEYLEDGER_DATABASE_URL": url, "KEYLEDGER_MASTER_KEY": newKEK(t)}
	for _, args := range [][]string{{"user", "list"}, {"migrate"}} {
		code, out, _ := runIn(t, t.TempDir(), env, args...)
		if code == 0 {
			t.Fatalf("%v: exit 0 on a missing database:\n%s", args, out)
		}
		checkOneLine(t, lastLine(out), []string{`database "` + name + `" does not exist`, "keyledger bootstrap"}, nil)
	}

	srv, _ := serveAt(t, env)
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(srv.output.String(), "keyledger bootstrap") {
		if srv.exited() || time.Now().After(deadline) {
			t.Fatalf("serve did not log the missing database with the fix:\n%s", srv.output)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond)
	var retries int
	for _, line := range strings.Split(srv.output.String(), "\n") {
		if strings.Contains(line, "retrying") {
			retries++
			if !strings.Contains(line, `"level":"ERROR"`) || !strings.Contains(line, "does not exist") {
				t.Errorf("retry not logged at ERROR with the reason: %s", line)
			}
		}
	}
	if retries < 2 || srv.exited() {
		t.Errorf("serve: %d retries logged, exited %v; want it to keep retrying:\n%s", retries, srv.exited(), srv.output)
	}
	_ = srv.cmd.Process.Signal(syscall.SIGTERM)
	srv.wait(t, 10*time.Second)
}

// TestLeftoverDatabaseOtherKey: a fresh clone's `make run` makes a new
// development key, but a keyledger database from an earlier try holds
// values under another one. The refusal names both ways out.
func TestLeftoverDatabaseOtherKey(t *testing.T) {
	keyledgerBinary(t)
	_, url := newDatabaseName(t)
	old := filepath.Join(t.TempDir(), "old.key")
	if code, out, _ := runIn(t, t.TempDir(), map[string]string{"KEYLEDGER_DATABASE_URL": url, "KEYLEDGER_MASTER_KEY_FILE": old}, "bootstrap"); code != 0 {
		t.Fatalf("first bootstrap: exit %d\n%s", code, out)
	}
	// The fresh clone: no key file yet, so bootstrap makes one.
	fresh := filepath.Join(t.TempDir(), ".keyledger", "master.key")
	code, out, _ := runIn(t, t.TempDir(), map[string]string{"KEYLEDGER_DATABASE_URL": url, "KEYLEDGER_MASTER_KEY_FILE": fresh}, "bootstrap")
	if code == 0 {
		t.Fatalf("bootstrap with another key: exit 0\n%s", out)
	}
	checkOneLine(t, lastLine(out), []string{"wrong master key", "KEYLEDGER_DATABASE_URL", "new database", "drop", "holds nothing of value"}, []string{"postgres:postgres"})
	// No stray key left behind to be mistaken for the right one.
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Errorf("bootstrap generated %s for a database that holds values under another key (stat: %v)", fresh, err)
	}
	// With a key that exists but is not the one: the same ways out.
	code, out, _ = runIn(t, t.TempDir(), map[string]string{"KEYLEDGER_DATABASE_URL": url, "KEYLEDGER_MASTER_KEY": newKEK(t)}, "user", "list")
	if code == 0 {
		t.Fatalf("user list with another key: exit 0\n%s", out)
	}
	checkOneLine(t, lastLine(out), []string{"wrong master key", "KEYLEDGER_DATABASE_URL", "new database", "drop", "holds nothing of value"}, nil)
}

// TestServeEmptyDatabaseSaysBootstrap: serve on a database with no users
// says how to get the first admin.
func TestServeEmptyDatabaseSaysBootstrap(t *testing.T) {
	keyledgerBinary(t)
	url := storetest.NewDatabase(t)
	srv, _ := serveAt(t, dbEnv(url, newKEK(t)))
	started := time.Now()
	deadline := started.Add(30 * time.Second)
	for !strings.Contains(srv.output.String(), "no users yet") {
		if srv.exited() || time.Now().After(deadline) {
			t.Fatalf("serve on an empty database did not say how to create the first admin:\n%s", srv.output)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("told after %s", time.Since(started).Round(time.Millisecond))
	for _, line := range strings.Split(srv.output.String(), "\n") {
		if strings.Contains(line, "no users yet") {
			for _, want := range []string{"keyledger bootstrap", "keyledger user create", "--role admin"} {
				if !strings.Contains(line, want) {
					t.Errorf("the message lacks %q: %s", want, line)
				}
			}
		}
	}
	_ = srv.cmd.Process.Signal(syscall.SIGTERM)
	srv.wait(t, 30*time.Second)
}

// TestDevelopmentKeyFound: in the directory where `make run` made
// .keyledger/master.key, server commands use it when no master key is
// configured, and say so in one line; a key file others may read is
// refused; without it, "not set" says where make run keeps the key and
// offers `masterkey generate` only for a new installation.
func TestDevelopmentKeyFound(t *testing.T) {
	keyledgerBinary(t)
	_, url := newDatabaseName(t)
	dir := t.TempDir()
	keyFile := filepath.Join(dir, ".keyledger", "master.key")
	// What make run does.
	if code, out, _ := runIn(t, dir, map[string]string{"KEYLEDGER_DATABASE_URL": url, "KEYLEDGER_MASTER_KEY_FILE": keyFile}, "bootstrap"); code != 0 {
		t.Fatalf("bootstrap: exit %d\n%s", code, out)
	}
	env := map[string]string{"KEYLEDGER_DATABASE_URL": url}
	code, out, _ := runIn(t, dir, env, "user", "list")
	if code != 0 || !strings.Contains(out, "admin@localhost") {
		t.Fatalf("user list in the make run directory: exit %d\n%s", code, out)
	}
	var notes []string
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, ".keyledger/master.key") {
			notes = append(notes, line)
		}
	}
	if len(notes) != 1 || !strings.Contains(notes[0], "KEYLEDGER_MASTER_KEY_FILE") {
		t.Errorf("want one line saying the development key is used, got %q", notes)
	}

	if err := os.Chmod(keyFile, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ = runIn(t, dir, env, "user", "list")
	if code == 0 {
		t.Fatalf("a world-readable development key was used:\n%s", out)
	}
	checkOneLine(t, lastLine(out), []string{".keyledger/master.key", "chmod 600"}, nil)

	// Elsewhere: not set, and where to find the key.
	code, out, _ = runIn(t, t.TempDir(), env, "user", "list")
	if code == 0 {
		t.Fatalf("user list without a key: exit 0\n%s", out)
	}
	checkOneLine(t, lastLine(out), []string{"KEYLEDGER_MASTER_KEY: not set", ".keyledger/master.key", "make run", "new installation", "masterkey generate"}, nil)
}
