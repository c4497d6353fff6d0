package main

import (
	"bufio"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// signalLogger is a child for `keyledger run` that appends the name of
// every signal it gets to the file $1, says "ready", and exits when $1.stop
// appears (or on TERM, after logging it).
const signalLogger = `F=$1
for s in INT HUP QUIT USR1 USR2 WINCH; do trap "echo $s >> $F" $s; done
trap 'echo TERM >> $F; exit 0' TERM
echo ready $$
while [ ! -e "$F.stop" ]; do sleep 0.05; done`

type runUnderTest struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	log  string
	out  *bufio.Reader
	errs *syncBuffer
	// child is the command's pid, as it said; keyledger its parent.
	child, keyledger int
}

// startRun starts `keyledger run` in a process group of its own (so that the
// test can signal the group without signalling itself), with signalLogger
// as the command, and waits for the child to be ready.
func startRun(t *testing.T, wrap func(args []string) []string) *runUnderTest {
	return startRunScript(t, signalLogger, wrap)
}

// sleeper is a child that says ready and then is sleep(1) itself: no
// process is started while it runs, so it is never caught between fork
// and exec (state D on a loaded machine) when a stop signal arrives.
const sleeper = `echo ready $$; exec sleep 600`

func startRunScript(t *testing.T, script string, wrap func(args []string) []string) *runUnderTest {
	t.Helper()
	bin := keyledgerBinary(t)
	api := newFakeAPI(t)
	dir := t.TempDir()
	r := &runUnderTest{log: filepath.Join(dir, "signals"), errs: &syncBuffer{}}
	args := []string{bin, "run", "-e", "development", "--", "sh", "-c", script, "sh", r.log}
	if wrap != nil {
		args = wrap(args)
	}
	r.cmd = exec.Command(args[0], args[1:]...)
	r.cmd.Env = processEnv(map[string]string{"KEYLEDGER_SERVER": api.URL(), "KEYLEDGER_TOKEN": testToken, "XDG_CONFIG_HOME": t.TempDir()})
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	r.cmd.Stderr = r.errs
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	r.out = bufio.NewReader(out)
	// Held open: script(1) ends the session when its input ends.
	if r.in, err = r.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Under script(1) keyledger and the command run in a session of
		// their own, out of reach of a signal to the test's group.
		if r.keyledger != 0 {
			_ = syscall.Kill(r.keyledger, syscall.SIGKILL)
		}
		if r.child != 0 {
			_ = syscall.Kill(r.child, syscall.SIGKILL)
		}
		_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
		_ = r.cmd.Wait()
	})
	for {
		line, err := r.out.ReadString('\n')
		if err != nil {
			t.Fatalf("child never said ready: %v; stderr %s", err, r.errs.String())
		}
		if f := strings.Fields(line); len(f) == 2 && f[0] == "ready" {
			if r.child, err = strconv.Atoi(f[1]); err != nil {
				t.Fatalf("ready line %q", line)
			}
			r.keyledger = parentOf(t, r.child)
			return r
		}
	}
}

// waitLog waits until the child has logged want lines (or 15 s), lets any
// duplicate arrive, and returns what it logged.
func (r *runUnderTest) waitLog(t *testing.T, want int) []string {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var lines []string
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(r.log)
		lines = strings.Fields(string(b))
		if len(lines) >= want {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A second, duplicate delivery would land within the child's 50 ms
	// polling; give it several times that.
	time.Sleep(300 * time.Millisecond)
	b, _ := os.ReadFile(r.log)
	return strings.Fields(string(b))
}

func (r *runUnderTest) finish(t *testing.T) int {
	t.Helper()
	if err := os.WriteFile(r.log+".stop", nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, r.out)
	code, err := exitStatus(r.cmd.Wait())
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// A signal sent to keyledger reaches the command exactly once, for every
// signal a program may be told with; keyledger itself neither dies of it nor
// dumps its goroutines (SIGQUIT).
func TestRunForwardsEverySignalOnce(t *testing.T) {
	r := startRun(t, nil)
	sigs := []syscall.Signal{syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}
	var want []string
	for _, sig := range sigs {
		if err := r.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		want = append(want, strings.TrimPrefix(signalName(sig), "SIG"))
		if got := r.waitLog(t, len(want)); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Fatalf("after %v the command got %q, want %q; stderr %s", sig, got, want, r.errs.String())
		}
	}
	if code := r.finish(t); code != 0 {
		t.Errorf("exit %d, want the command's 0; stderr %s", code, r.errs.String())
	}
	if s := r.errs.String(); strings.Contains(s, "goroutine") {
		t.Errorf("keyledger dumped its goroutines on SIGQUIT:\n%s", s)
	}
}

// A signal to keyledger's whole process group, as `kill -INT -PGID` or a
// supervisor sends it, reaches the command once, not once directly and
// once forwarded.
func TestRunGroupSignalReachesCommandOnce(t *testing.T) {
	r := startRun(t, nil)
	// Two SIGINTs a microsecond apart merge into one pending signal, so
	// counting cannot show the double delivery reliably; the process groups
	// show whether it can happen.
	if pgrp, _ := procStat(t, r.child); pgrp == r.cmd.Process.Pid {
		t.Errorf("the command runs in keyledger's process group %d, so a signal to the group reaches it twice", pgrp)
	}
	if err := syscall.Kill(-r.cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if got := r.waitLog(t, 1); strings.Join(got, " ") != "INT" {
		t.Errorf("the command got %q, want exactly one INT", got)
	}
	r.finish(t)
}

// Ctrl-C typed at a terminal reaches the command once. script(1) gives
// keyledger a real pseudo-terminal; the ^C byte written to it makes the
// terminal driver signal the foreground process group.
func TestRunTerminalInterruptReachesCommandOnce(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script(1) (util-linux) is not installed")
	}
	r := startRun(t, underScript)
	// The terminal signals its foreground process group: that must be the
	// command's alone, not keyledger's too (which would forward it again).
	pgrp, tpgid := procStat(t, r.child)
	if kpgrp, _ := procStat(t, parentOf(t, r.child)); pgrp != tpgid || kpgrp == tpgid {
		t.Errorf("command group %d, keyledger group %d, terminal foreground group %d: want the command alone in the foreground", pgrp, kpgrp, tpgid)
	}
	// script types what it reads on its stdin into the terminal: ^C.
	if _, err := r.in.Write([]byte{3}); err != nil {
		t.Fatal(err)
	}
	if got := r.waitLog(t, 1); strings.Join(got, " ") != "INT" {
		t.Errorf("the command got %q, want exactly one INT", got)
	}
}

// Ctrl-Z at a terminal stops the command and keyledger with it (so the
// shell gets its job back); continuing keyledger continues the command,
// which gets the terminal back.
func TestRunTerminalStopAndContinue(t *testing.T) {
	if _, err := exec.LookPath("script"); err != nil {
		t.Skip("script(1) (util-linux) is not installed")
	}
	r := startRunScript(t, sleeper, underScript)
	kl := parentOf(t, r.child)
	// ^Z: the terminal sends SIGTSTP to its foreground process group,
	// which is the command's. Sent directly, so that the test does not
	// depend on when script(1) gets round to reading its input.
	pgrp, tpgid := procStat(t, r.child)
	if pgrp != tpgid {
		t.Fatalf("the command (group %d) is not in the terminal's foreground (%d)", pgrp, tpgid)
	}
	if err := syscall.Kill(-pgrp, syscall.SIGTSTP); err != nil {
		t.Fatal(err)
	}
	if !waitState(t, r.child, 'T') || !waitState(t, kl, 'T') {
		t.Fatalf("after ^Z: command %c, keyledger %c; want both stopped", procState(t, r.child), procState(t, kl))
	}
	// script(1) plays the shell: it stopped itself with its job. Continue
	// both, as a shell's fg does.
	for _, pid := range []int{r.cmd.Process.Pid, kl} {
		if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
	}
	if !waitNotState(t, r.child, 'T') {
		t.Fatalf("after SIGCONT to keyledger the command is still stopped")
	}
	if pgrp, tpgid := procStat(t, r.child); pgrp != tpgid {
		t.Errorf("after fg the terminal's foreground group is %d, not the command's %d", tpgid, pgrp)
	}
	// The command ends by SIGTERM; keyledger exits as the shell would
	// report it, 128+15.
	if err := syscall.Kill(r.child, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if !waitState(t, kl, 0) && procState(t, kl) != 'Z' {
		t.Errorf("keyledger still running (%c) after the command ended", procState(t, kl))
	}
}

func procState(t *testing.T, pid int) byte {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	return strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))[0][0]
}

func waitState(t *testing.T, pid int, want byte) bool {
	return waitStateFor(t, pid, want, 5*time.Second)
}

func waitStateFor(t *testing.T, pid int, want byte, d time.Duration) bool {
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if procState(t, pid) == want {
			return true
		}
	}
	return false
}

func waitNotState(t *testing.T, pid int, not byte) bool {
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if st := procState(t, pid); st != not && st != 0 {
			return true
		}
	}
	return false
}

// underScript runs `keyledger run` on the pseudo-terminal of script(1).
func underScript(args []string) []string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return []string{"script", "-qfec", strings.Join(quoted, " "), "/dev/null"}
}

// When keyledger is killed outright (SIGKILL cannot be forwarded), the
// command is told with SIGTERM instead of living on unnoticed.
func TestRunCommandDoesNotOutliveKeyledger(t *testing.T) {
	r := startRun(t, nil)
	if err := r.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	// Linux may repeat the parent-death signal when the orphan is
	// reparented; what matters is that the command is told.
	if got := r.waitLog(t, 1); len(got) == 0 || strings.Trim(strings.Join(got, " "), "TERM ") != "" {
		t.Errorf("after keyledger was killed the command got %q, want TERM", got)
	}
}

func parentOf(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	ppid, _ := strconv.Atoi(strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))[1])
	return ppid
}

// procStat returns a process's group and its terminal's foreground group
// (0 without a terminal), from /proc/PID/stat.
func procStat(t *testing.T, pid int) (pgrp, tpgid int) {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// pid (comm) state ppid pgrp session tty_nr tpgid ...; comm may hold
	// spaces, so count from its closing parenthesis.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	pgrp, _ = strconv.Atoi(f[2])
	tpgid, _ = strconv.Atoi(f[5])
	return pgrp, tpgid
}

func signalName(s syscall.Signal) string {
	return map[syscall.Signal]string{syscall.SIGINT: "SIGINT", syscall.SIGHUP: "SIGHUP", syscall.SIGQUIT: "SIGQUIT",
		syscall.SIGUSR1: "SIGUSR1", syscall.SIGUSR2: "SIGUSR2", syscall.SIGWINCH: "SIGWINCH", syscall.SIGTERM: "SIGTERM"}[s]
}
