//go:generate go test -count=1 -run ^TestConfigDocsTable$ . -update-docs

// Command keyledger runs the keyledger server and its administration
// commands. Configuration comes from KEYLEDGER_* environment variables,
// read once here and passed down.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
)

const usageCommands = `keyledger: a team's API keys, encrypted, audited, rotated.

Usage:
  keyledger [serve]                 run the web server (applies migrations first)
  keyledger bootstrap               first run: create the database, master key file and an admin
  keyledger migrate                 apply database migrations and exit
  keyledger user create --email E --name N --role admin|lead|member
                                    (password from stdin, or prompted on a terminal)
  keyledger user list
  keyledger user deactivate --email E
  keyledger masterkey generate      print a new random master key (base64)
  keyledger masterkey rotate        re-wrap every data key under the first master key
  keyledger audit verify [--checkpoint FILE] [--wait 10s]
                                    check the audit log's chain (and that it still extends
                                    a checkpoint); exit 0 ok, 1 broken, 2 could not check
  keyledger audit checkpoint        sign the chain's head and print the checkpoint (JSON)
  keyledger jobs                    show background jobs (verification, reminders, clean-up) by state
  keyledger healthcheck             exit 0 when the local server is ready
  keyledger version                 print the version this binary was built from
  keyledger token create --email E --scopes read,reveal [--expires 30d] [--name N]
                                    mint a personal access token (printed once)

Client (talks to a keyledger server's API with a personal access token):
  keyledger login --server URL      save the server and a token (from stdin, or prompted)
  keyledger whoami                  show who the saved token belongs to
  keyledger env -e ENV [-p PROJECT] [--format bash|fish|powershell|dotenv|env-file|json] [--reason R]
                                    print an environment's keys as shell code:
                                    eval "$(keyledger env -e development)"
  keyledger run -e ENV [-p PROJECT] [--override] [--reason R] -- COMMAND [ARGS...]
                                    run COMMAND with the keys in its environment
  keyledger keys list [-e ENV] [-p PROJECT] [--owner EMAIL] [--q TEXT] [--status S] [--json]
  keyledger keys show ID [--json]
  keyledger keys reveal ID [--reason R] [--version N]
                                    print one value (and a newline), for scripts
  keyledger scan [--staged | --git-history] [PATH...]
                                    find registered key values in files (never printed);
                                    exit 0 clean, 1 a registered key found, 2 could not scan

`

// usage is the help text: the commands, then every variable in configVars.
func usage() string { return usageCommands + helpVariables() }

// version is set at build time: -ldflags "-X main.version=..." from `git
// describe --always --dirty` (Makefile) or the image's VERSION build arg.
var version = "dev"

// Main is the program with its inputs and outputs, so tests can run it.
type Main struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// StdinIsTerminal decides whether passwords are prompted for.
	StdinIsTerminal bool

	// The client commands' dependencies; zero values are the defaults.

	// ConfigDir holds the client's config.json; empty means
	// os.UserConfigDir()/keyledger.
	ConfigDir string
	// HTTPClient talks to the server; nil means one with a timeout.
	HTTPClient *http.Client
	// Environ is the environment `run` starts from; nil means os.Environ.
	Environ func() []string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	m := &Main{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv, StdinIsTerminal: isTerminal(os.Stdin)}
	code := m.Run(ctx, os.Args[1:])
	stop() // os.Exit skips deferred calls
	os.Exit(code)
}

// exitError carries an exit code other than 1.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// Run executes one command and returns the process exit code.
func (m *Main) Run(ctx context.Context, args []string) int {
	err := m.run(ctx, args)
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(m.Stderr, "keyledger:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(m.Stderr, "keyledger:", err)
	return 1
}

func (m *Main) run(ctx context.Context, args []string) error {
	cmd := "serve"
	if len(args) > 0 {
		cmd, args = args[0], args[1:]
	}
	sub := ""
	if len(args) > 0 && (cmd == "user" || cmd == "masterkey" || cmd == "audit" || cmd == "keys" || cmd == "token") {
		sub, args = args[0], args[1:]
	}
	switch cmd + " " + sub {
	case "help ", "-h ", "--help ":
		fmt.Fprint(m.Stdout, usage())
		return nil
	case "version ", "--version ":
		fmt.Fprintln(m.Stdout, "keyledger", version)
		return nil
	case "masterkey generate":
		return m.masterkeyGenerate()
	case "healthcheck ":
		return m.healthcheck(ctx)
	// The client commands run where there is no server configuration.
	case "login ":
		return m.login(ctx, args)
	case "scan ":
		return m.scan(ctx, args)
	case "whoami ":
		return m.whoami(ctx, args)
	case "env ":
		return m.env(ctx, args)
	case "run ":
		return m.runCommand(ctx, args)
	case "keys list":
		return m.keysList(ctx, args)
	case "keys show":
		return m.keysShow(ctx, args)
	case "keys reveal":
		return m.keysReveal(ctx, args)
	}
	cfg, err := LoadConfig(m.Getenv)
	if err != nil {
		if cmd+" "+sub == "audit verify" {
			// Nothing was checked: exit 2, never 1 (which says "broken").
			return &exitError{code: 2, msg: "audit chain NOT CHECKED: " + err.Error()}
		}
		return err
	}
	if cmd != "migrate" { // the only server command that needs no master key
		if err := useDevKey(&cfg, m.Stderr); err != nil {
			if cmd+" "+sub == "audit verify" {
				return &exitError{code: 2, msg: "audit chain NOT CHECKED: " + err.Error()}
			}
			return err
		}
	}
	switch cmd + " " + sub {
	case "serve ":
		return m.serve(ctx, cfg)
	case "bootstrap ":
		return m.bootstrap(ctx, cfg)
	case "migrate ":
		return m.migrate(ctx, cfg)
	case "user create":
		return m.userCreate(ctx, cfg, args)
	case "user list":
		return m.userList(ctx, cfg)
	case "user deactivate":
		return m.userDeactivate(ctx, cfg, args)
	case "masterkey rotate":
		return m.masterkeyRotate(ctx, cfg)
	case "audit verify":
		return m.auditVerify(ctx, cfg, args)
	case "audit checkpoint":
		return m.auditCheckpoint(ctx, cfg)
	case "jobs ":
		return m.jobs(ctx, cfg)
	case "token create":
		return m.tokenCreate(ctx, cfg, args)
	}
	fmt.Fprint(m.Stderr, usage())
	return &exitError{code: 2, msg: fmt.Sprintf("unknown command %q", (cmd + " " + sub))}
}

func (m *Main) logger(cfg Config) *slog.Logger {
	level := slog.LevelInfo
	switch cfg.LogLevel {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	}
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(m.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(m.Stderr, opts))
}
