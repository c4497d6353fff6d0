// Package pgcluster runs a private, throw-away Postgres cluster for tests
// that need to stop, restart or kill the database under a running
// keyledger: initdb into a temp dir, postgres on a free loopback port with
// its unix socket in the same temp dir, fsync off (commits still reach the
// OS, so they survive Kill; only a machine crash would lose them). It is
// test support only.
//
// initdb and postgres refuse to run as root, so when the test runs as root
// both run as the "postgres" OS user (SysProcAttr.Credential) and the temp
// dir is chowned to it; as any other user they run as that user. The
// binaries are found in $PGCLUSTER_BINDIR, else the newest
// /usr/lib/postgresql/*/bin, else $PATH.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Cluster is one private Postgres cluster. Its data dir and port stay the
// same across Stop/Start and Kill/Start, so URLs handed out stay valid.
type Cluster struct {
	t       testing.TB
	bindir  string
	dir     string // temp root: data/, sock/, postgres.log
	dataDir string
	sockDir string
	port    int
	cred    *syscall.Credential // nil: run as the current user

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has been waited for
	log  *syncBuffer
}

// Start creates a cluster and starts it; it is stopped and its files
// removed when the test ends. The test fails (never silently passes) when
// the cluster cannot be created; it is skipped only when running as root
// and there is no "postgres" OS user to run the server as.
func Start(t testing.TB) *Cluster {
	t.Helper()
	c := New(t)
	c.Start()
	return c
}

// New creates a cluster (initdb) without starting it.
func New(t testing.TB) *Cluster {
	t.Helper()
	bindir, err := findBindir()
	if err != nil {
		t.Fatalf("pgcluster: %v", err)
	}
	c := &Cluster{t: t, bindir: bindir, log: &syncBuffer{}}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("pgcluster: running as root and there is no 'postgres' OS user to run initdb/postgres as (they refuse root): %v", err)
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			t.Fatalf("pgcluster: postgres user has a non-numeric uid/gid %q/%q", u.Uid, u.Gid)
		}
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	// A short path: the socket path must fit in sun_path (107 bytes).
	c.dir, err = os.MkdirTemp("", "pgc-")
	if err != nil {
		t.Fatalf("pgcluster: %v", err)
	}
	t.Cleanup(c.cleanup)
	c.dataDir = filepath.Join(c.dir, "data")
	c.sockDir = filepath.Join(c.dir, "sock")
	if err := os.Mkdir(c.sockDir, 0o700); err != nil {
		t.Fatalf("pgcluster: %v", err)
	}
	if c.cred != nil {
		for _, d := range []string{c.dir, c.sockDir} {
			if err := os.Chown(d, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
				t.Fatalf("pgcluster: chown %s to the postgres user: %v", d, err)
			}
		}
		// The postgres user must be able to reach the temp dir.
		if err := checkTraversable(filepath.Dir(c.dir)); err != nil {
			t.Fatalf("pgcluster: the postgres user cannot reach %s (%v); set TMPDIR to a world-searchable directory such as /tmp", c.dir, err)
		}
	}
	c.port = freePort(t)

	start := time.Now()
	initdb := c.command(filepath.Join(bindir, "initdb"), "-D", c.dataDir, "-U", "postgres", "--auth=trust",
		"-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")
	out, err := initdb.CombinedOutput()
	if err != nil {
		hint := ""
		if c.cred != nil && errors.Is(err, syscall.EPERM) {
			hint = " (this process may not switch to the postgres user: CAP_SETUID/CAP_SETGID missing?)"
		}
		t.Fatalf("pgcluster: initdb as %s failed%s: %v\n%s", c.who(), hint, err, out)
	}
	t.Logf("pgcluster: initdb in %s (%s)", c.dataDir, time.Since(start).Round(time.Millisecond))
	return c
}

// Port is the TCP port the cluster listens on (127.0.0.1).
func (c *Cluster) Port() int { return c.port }

// Dir is the temp dir holding data/, sock/ and nothing else of value.
func (c *Cluster) Dir() string { return c.dir }

// URL is a connection string for database db as the superuser postgres
// over TCP (no password: trust auth).
func (c *Cluster) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, db)
}

// CreateDatabase creates an empty database on the running cluster and
// returns its URL.
func (c *Cluster) CreateDatabase(name string) string {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		c.t.Fatalf("pgcluster: connect: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		c.t.Fatalf("pgcluster: create database %s: %v", name, err)
	}
	return c.URL(name)
}

// Log is what postgres wrote so far, across restarts.
func (c *Cluster) Log() string { return c.log.String() }

// Running reports whether the postmaster process is alive.
func (c *Cluster) Running() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.runningLocked()
}

func (c *Cluster) runningLocked() bool {
	if c.cmd == nil {
		return false
	}
	select {
	case <-c.done:
		return false
	default:
		return true
	}
}

// Start starts postgres on the cluster's data dir and port and waits
// until it accepts connections. It is how a stopped or killed cluster is
// restarted; it fails the test if the cluster is already running.
func (c *Cluster) Start() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.runningLocked() {
		c.t.Fatalf("pgcluster: Start: already running")
	}
	start := time.Now()
	cmd := c.command(filepath.Join(c.bindir, "postgres"), "-D", c.dataDir,
		"-p", strconv.Itoa(c.port), "-k", c.sockDir,
		"-c", "listen_addresses=127.0.0.1",
		"-c", "fsync=off", "-c", "full_page_writes=off",
		"-c", "max_connections=200", "-c", "shared_buffers=32MB",
		"-c", "logging_collector=off", "-c", "log_min_messages=warning")
	// Its own process group: a ^C in the terminal goes to the test, which
	// stops the cluster itself. Should the test process die without its
	// cleanup (a timeout panic), postgres shuts down at once all the same.
	cmd.SysProcAttr.Setpgid = true
	cmd.SysProcAttr.Pdeathsig = syscall.SIGQUIT
	cmd.Stdout, cmd.Stderr = c.log, c.log
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("pgcluster: start postgres as %s: %v", c.who(), err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	c.cmd, c.done = cmd, done

	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		conn, err := pgx.Connect(ctx, c.URL("postgres"))
		if err == nil {
			err = conn.Ping(ctx)
			conn.Close(ctx)
		}
		cancel()
		if err == nil {
			break
		}
		select {
		case <-done:
			c.t.Fatalf("pgcluster: postgres exited during startup:\n%s", c.log)
		default:
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("pgcluster: postgres not accepting connections after 30s (last: %v):\n%s", err, c.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.t.Logf("pgcluster: postgres up on port %d (%s)", c.port, time.Since(start).Round(time.Millisecond))
}

// Stop shuts postgres down the way an operator's restart does (fast
// shutdown, SIGINT: sessions are terminated, open transactions roll back)
// and waits until it has exited. Stopping a stopped cluster does nothing.
func (c *Cluster) Stop() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.runningLocked() {
		return
	}
	start := time.Now()
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		c.killLocked()
		c.t.Fatalf("pgcluster: postgres did not stop within 30s after SIGINT; killed it:\n%s", c.log)
	}
	c.t.Logf("pgcluster: postgres stopped (%s)", time.Since(start).Round(time.Millisecond))
}

// Kill ends postgres and every server process at once with SIGKILL, like a
// crash or an OOM kill; the next Start runs crash recovery. It returns once
// they are all gone.
func (c *Cluster) Kill() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.runningLocked() {
		return
	}
	c.killLocked()
	c.t.Logf("pgcluster: postgres killed")
}

func (c *Cluster) killLocked() {
	pid := c.cmd.Process.Pid
	// Backends are their own session leaders (setsid), so a process-group
	// kill misses them. Freeze the postmaster so it forks nothing new, kill
	// its children, then it.
	_ = syscall.Kill(pid, syscall.SIGSTOP)
	children := childrenOf(pid)
	for _, ch := range children {
		_ = syscall.Kill(ch, syscall.SIGKILL)
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	<-c.done
	// The children were re-parented; wait until none is left holding the
	// shared memory, or the next start refuses.
	deadline := time.Now().Add(10 * time.Second)
	for _, ch := range children {
		for alive(ch) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func (c *Cluster) cleanup() {
	c.mu.Lock()
	if c.runningLocked() {
		_ = c.cmd.Process.Signal(syscall.SIGQUIT) // immediate shutdown: nothing to keep
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
			c.killLocked()
		}
	}
	c.mu.Unlock()
	if c.t.Failed() && c.log.Len() > 0 {
		c.t.Logf("pgcluster: postgres log:\n%s", tail(c.log.String(), 4000))
	}
	_ = os.RemoveAll(c.dir)
}

// command prepares one of the Postgres binaries to run as the postgres
// user, in the temp dir, with a minimal environment.
func (c *Cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LC_ALL=C", "TZ=UTC"}
	if c.cred != nil {
		cmd.Env = append(cmd.Env, "HOME="+c.dir, "USER=postgres")
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	return cmd
}

func (c *Cluster) who() string {
	if c.cred != nil {
		return "the postgres user"
	}
	return "the current user"
}

func findBindir() (string, error) {
	if d := os.Getenv("PGCLUSTER_BINDIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			return "", fmt.Errorf("PGCLUSTER_BINDIR=%s: no initdb there: %v", d, err)
		}
		return d, nil
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return versionOf(dirs[i]) > versionOf(dirs[j]) })
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("no Postgres server binaries (initdb, postgres) in /usr/lib/postgresql/*/bin or on PATH; install the postgresql package or set PGCLUSTER_BINDIR")
}

func versionOf(bindir string) int {
	n, _ := strconv.Atoi(filepath.Base(filepath.Dir(bindir)))
	return n
}

// checkTraversable fails when some directory from dir up to / is not
// searchable by others (the postgres user is not the owner).
func checkTraversable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		fi, err := os.Stat(d)
		if err != nil {
			return err
		}
		if fi.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s has mode %v", d, fi.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("pgcluster: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// childrenOf lists the processes whose parent is pid.
func childrenOf(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...; comm may hold spaces and parens.
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		if len(f) >= 2 {
			if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
				out = append(out, n)
			}
		}
	}
	return out
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) {
		return false
	}
	return s[i+2] != 'Z' && s[i+2] != 'X'
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncBuffer) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Len()
}

// Bin is the path of one of this cluster's Postgres programs (pg_dump,
// pg_restore, …), which match its server version.
func (c *Cluster) Bin(name string) string { return filepath.Join(c.bindir, name) }
