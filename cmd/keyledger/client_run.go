package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"

	"github.com/keyledger/keyledger"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// forwardedSignals reach the command `run` started: every signal a program
// is told things with. SIGQUIT is among them so that it reaches the command
// instead of killing keyledger with a goroutine dump and orphaning it.
var forwardedSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT,
	syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGWINCH}

// runCommand exports an environment's keys and runs a command with them in
// its environment. The values go from the server's answer straight into
// the child's environment: no file, no output.
func (m *Main) runCommand(ctx context.Context, args []string) error {
	fs := m.newFlags("run", "run -e ENVIRONMENT [-p PROJECT] [--override] [--reason R] -- COMMAND [ARGS...]")
	var f exportFlags
	f.register(fs)
	override := fs.Bool("override", false, "let the keys replace variables already set in your environment")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 {
		return usageErr("run: give the command to run after --, e.g. keyledger run -e development -- npm start")
	}
	if f.environment == "" {
		return usageErr("run: --environment (-e) is required, e.g. keyledger run -e development -- %s", argv[0])
	}
	// Before anything is revealed (and audited): is there such a command?
	path, err := exec.LookPath(argv[0])
	switch {
	case errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist):
		return &exitError{code: 127, msg: fmt.Sprintf("run: %s: command not found", argv[0])}
	case err != nil:
		return &exitError{code: 126, msg: fmt.Sprintf("run: %v", err)}
	}
	_, out, err := m.export(ctx, f, string(keyledger.FormatJSON))
	if err != nil {
		return err
	}
	vars := map[string]string{}
	if err := json.Unmarshal([]byte(out.Content), &vars); err != nil {
		return errors.New("run: the server's export is not a JSON object of variables")
	}
	environ := os.Environ
	if m.Environ != nil {
		environ = m.Environ
	}
	env, kept, skipped := mergeEnv(environ(), vars, *override)
	if len(kept) > 0 {
		fmt.Fprintf(m.Stderr, "keyledger: kept %s from your environment (--override replaces them)\n", cell(strings.Join(kept, ", ")))
	}
	if len(skipped) > 0 {
		fmt.Fprintf(m.Stderr, "keyledger: left out %s: not usable as environment variable names\n", strings.Join(skipped, ", "))
	}
	clear(vars)

	cmd := exec.Command(path, argv[1:]...)
	cmd.Args[0] = argv[0]
	cmd.Env = env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = m.Stdin, m.Stdout, m.Stderr
	// The command gets a process group of its own, so that a signal meant
	// for a whole group (Ctrl-C at a terminal, kill -INT -PGID) reaches it
	// exactly once: at a terminal the command's group is put in the
	// foreground, and the terminal signals it directly; anything sent to
	// keyledger is forwarded. Pdeathsig tells the command when keyledger
	// dies without a chance to forward (SIGKILL); Linux ties it to the
	// thread that started the command, hence the locked thread.
	tty, foreground := foregroundTerminal(m.Stdin)
	// Job control (below) waits for the command itself, which exec.Cmd
	// allows only when it copies no output for us.
	_, outFile := m.Stdout.(*os.File)
	_, errFile := m.Stderr.(*os.File)
	foreground = foreground && outFile && errFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if foreground {
		cmd.SysProcAttr.Foreground = true
		cmd.SysProcAttr.Ctty = 0 // the child's stdin, which is tty
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// Catch the signals before the child exists, so none can stop us
	// without reaching it; main's context already catches SIGINT and
	// SIGTERM, but its cancellation must not kill the child: forwarding
	// does, the child decides.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, forwardedSignals...)
	defer signal.Stop(sigs)
	if err := cmd.Start(); err != nil {
		code := 126
		if errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist) {
			code = 127
		}
		return &exitError{code: code, msg: fmt.Sprintf("run: %v", err)}
	}
	done := make(chan struct{})
	forwarded := make(chan struct{})
	go func() {
		defer close(forwarded)
		forwardSignals(cmd.Process, sigs, done)
	}()
	var code int
	if foreground {
		code, err = waitForeground(cmd.Process.Pid, tty)
		_ = cmd.Process.Release()
	} else {
		code, err = exitStatus(cmd.Wait())
	}
	close(done)
	<-forwarded
	if err != nil {
		return fmt.Errorf("run: %w", err)
	}
	if code != 0 {
		return &exitError{code: code}
	}
	return nil
}

// foregroundTerminal reports whether stdin is a terminal whose foreground
// process group is keyledger's: only then may the command take it over.
func foregroundTerminal(stdin io.Reader) (*os.File, bool) {
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, false
	}
	fg, err := unix.IoctlGetInt(int(f.Fd()), unix.TIOCGPGRP)
	return f, err == nil && fg == unix.Getpgrp()
}

// takeForeground gives the terminal back to keyledger's process group once
// the command has ended, as a shell does, so that the shell that started
// keyledger finds its job in the foreground. keyledger is a background
// group at that moment, and the terminal would stop it (SIGTTOU) for
// asking, so that signal is ignored meanwhile.
func takeForeground(tty *os.File) { giveForeground(tty, unix.Getpgrp()) }

// waitForeground waits for a command that holds the terminal, and does a
// shell's part of job control: when Ctrl-Z stops the command, keyledger
// takes the terminal back and stops itself, so the shell that started it
// sees its job stopped; when the shell continues keyledger (fg or bg), the
// command is continued too, in the foreground only if keyledger is.
func waitForeground(pid int, tty *os.File) (int, error) {
	defer takeForeground(tty)
	for {
		var ws unix.WaitStatus
		if _, err := unix.Wait4(pid, &ws, unix.WUNTRACED, nil); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return 1, fmt.Errorf("wait for the command: %w", err)
		}
		switch {
		case ws.Exited():
			return ws.ExitStatus(), nil
		case ws.Signaled():
			return 128 + int(ws.Signal()), nil
		case ws.Stopped():
			takeForeground(tty)
			_ = unix.Kill(unix.Getpid(), unix.SIGSTOP)
			// Continued by the shell.
			if fg, err := unix.IoctlGetInt(int(tty.Fd()), unix.TIOCGPGRP); err == nil && fg == unix.Getpgrp() {
				giveForeground(tty, pid)
			}
			_ = unix.Kill(-pid, unix.SIGCONT)
		}
	}
}

// giveForeground hands the terminal to the command's process group (its
// pid: it leads the group).
func giveForeground(tty *os.File, pgid int) {
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	_ = unix.IoctlSetPointerInt(int(tty.Fd()), unix.TIOCSPGRP, pgid)
}

// signaler is the part of *os.Process forwardSignals uses.
type signaler interface {
	Signal(os.Signal) error
}

// forwardSignals passes each signal from sigs on to p until done closes.
func forwardSignals(p signaler, sigs <-chan os.Signal, done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case s := <-sigs:
			// The child may have just exited; then there is no one to tell.
			_ = p.Signal(s)
		}
	}
}

// exitStatus is the exit code for a child's end: its own code, or 128 plus
// the signal that killed it, as shells report it.
func exitStatus(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal()), nil
		}
		return ee.ExitCode(), nil
	}
	return 1, err
}

// mergeEnv adds vars to base. A variable already in base keeps its value
// unless override; kept lists those, skipped the names no environment can
// hold.
func mergeEnv(base []string, vars map[string]string, override bool) (env, kept, skipped []string) {
	index := make(map[string]int, len(base))
	env = append(make([]string, 0, len(base)+len(vars)), base...)
	for i, kv := range env {
		// Windows has entries like "=C:=C:\\"; the name starts after a
		// leading '='.
		if j := strings.IndexByte(kv[min(1, len(kv)):], '='); j >= 0 {
			// With duplicates the last one counts, as in exec.Cmd.
			index[kv[:j+min(1, len(kv))]] = i
		}
	}
	names := make([]string, 0, len(vars))
	for name := range vars {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if name == "" || strings.ContainsAny(name, "=\x00") || strings.ContainsRune(vars[name], 0) {
			skipped = append(skipped, fmt.Sprintf("%q", name))
			continue
		}
		i, exists := index[name]
		switch {
		case !exists:
			env = append(env, name+"="+vars[name])
		case override:
			env[i] = name + "=" + vars[name]
		default:
			kept = append(kept, name)
		}
	}
	return env, kept, skipped
}
