package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/crypto"
	"github.com/keyledger/keyledger/store"
	"golang.org/x/term"
)

func isTerminal(f *os.File) bool { return term.IsTerminal(int(f.Fd())) }

func (m *Main) masterkeyGenerate() error {
	k, err := crypto.GenerateKEK()
	if err != nil {
		return err
	}
	fmt.Fprintln(m.Stdout, k)
	return nil
}

func (m *Main) migrate(ctx context.Context, cfg Config) error {
	log := m.logger(cfg)
	pool, err := connect(ctx, log, cfg.DatabaseURL, 0)
	if err != nil {
		return err
	}
	defer pool.Close()
	st, err := store.Migrate(ctx, pool)
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "database schema is at version %d\n", st.Current)
	return nil
}

// bootstrap is the first-run path of `make run` and docker compose: it
// creates what is missing and never touches what exists.
func (m *Main) bootstrap(ctx context.Context, cfg Config) error {
	log := m.logger(cfg)
	if err := probeDatabase(ctx, cfg.DatabaseURL); err != nil {
		var f *dbFailure
		var pgErr *pgconn.PgError
		if !errors.As(err, &f) || !errors.As(err, &pgErr) || pgErr.Code != "3D000" {
			return err
		}
		// The server answered and the database is missing: create it.
		if err := store.EnsureDatabase(ctx, cfg.DatabaseURL, m.Stdout); err != nil {
			return err
		}
	}
	if cfg.MasterKeys == "" && cfg.MasterKeyFile != "" {
		if _, err := os.Stat(cfg.MasterKeyFile); errors.Is(err, os.ErrNotExist) {
			if err := refuseNewKey(ctx, cfg, log); err != nil {
				return err
			}
			k, err := crypto.GenerateKEK()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(filepath.Dir(cfg.MasterKeyFile), 0o700); err != nil {
				return fmt.Errorf("KEYLEDGER_MASTER_KEY_FILE: %w", err)
			}
			// O_EXCL: never overwrite a key, even if two bootstraps race.
			f, err := os.OpenFile(cfg.MasterKeyFile, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return fmt.Errorf("KEYLEDGER_MASTER_KEY_FILE: create %s: %w", cfg.MasterKeyFile, err)
			}
			if _, err := fmt.Fprintln(f, k); err != nil {
				_ = f.Close() // the write error is the one to report
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(m.Stdout, "Generated a master key in %s. Back it up apart from the database: without it no key can be revealed.\n", cfg.MasterKeyFile)
		}
	}
	st, pool, err := m.openStore(ctx, cfg, log, 0, true)
	if err != nil {
		return err
	}
	defer pool.Close()
	n, err := st.CountUsers(ctx)
	if err != nil {
		return err
	}
	if n > 0 {
		fmt.Fprintf(m.Stdout, "keyledger is set up (%d users). Open %s\n", n, cfg.BaseURL)
		return nil
	}
	pw, err := crypto.RandomToken(18)
	if err != nil {
		return err
	}
	u, err := st.CreateUser(ctx, keyledger.SystemActor("bootstrap"), keyledger.NewUser{Email: "admin@localhost", Name: "Admin", Role: keyledger.RoleAdmin, Password: pw})
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "\nCreated the first admin. This password is shown once:\n\n  URL:      %s/login\n  Email:    %s\n  Password: %s\n\n", cfg.BaseURL, u.Email, pw)
	return nil
}

// refuseNewKey stops bootstrap from generating a master key for a database
// that already knows others: the new key could not open its values (a
// fresh clone's `make run` against a database left from an earlier try).
func refuseNewKey(ctx context.Context, cfg Config, log *slog.Logger) error {
	pool, err := connect(ctx, log, cfg.DatabaseURL, 0)
	if err != nil {
		return err
	}
	defer pool.Close()
	ids, err := store.KnownMasterKeys(ctx, pool)
	if err != nil || len(ids) == 0 {
		return err
	}
	return cfgErr("KEYLEDGER_MASTER_KEY_FILE: %s does not exist, and the database already holds values under master key id(s) %s, so a new key would be the wrong master key; none was generated. %s",
		cfg.MasterKeyFile, strings.Join(ids, ", "), leftoverDatabaseHint(pool.Config().ConnConfig))
}

// probeDatabase makes one connection to url, so that bootstrap reports a
// wrong host, port, role or password at once (as connect does) before it
// tries to create the database.
func probeDatabase(ctx context.Context, url string) error {
	cc, err := pgconn.ParseConfig(url)
	if err != nil {
		return cfgErr("KEYLEDGER_DATABASE_URL: %v", redact(err))
	}
	cc.ConnectTimeout = connectTimeout
	conn, err := pgconn.ConnectConfig(ctx, cc)
	if err != nil {
		return describeDBError(cc, err)
	}
	return conn.Close(ctx)
}

// withStore runs fn on the store. A one-shot command does not wait for
// the database: a wrong URL fails at once with the reason (connect).
func (m *Main) withStore(ctx context.Context, cfg Config, fn func(*store.Store) error) error {
	log := m.logger(cfg)
	st, pool, err := m.openStore(ctx, cfg, log, 0, false)
	if err != nil {
		return err
	}
	defer pool.Close()
	return fn(st)
}

func (m *Main) readPassword() (string, error) {
	if m.StdinIsTerminal {
		f, ok := m.Stdin.(*os.File)
		if !ok {
			return "", errors.New("cannot prompt: stdin is not a terminal")
		}
		fmt.Fprint(m.Stderr, "Password (at least 12 characters): ")
		a, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(m.Stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(m.Stderr, "Repeat password: ")
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(m.Stderr)
		if err != nil {
			return "", err
		}
		if !bytes.Equal(a, b) {
			return "", errors.New("the passwords do not match")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(io.LimitReader(m.Stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from stdin: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

func (m *Main) userCreate(ctx context.Context, cfg Config, args []string) error {
	fs := flag.NewFlagSet("user create", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	email := fs.String("email", "", "email address (sign-in name)")
	name := fs.String("name", "", "display name")
	role := fs.String("role", "member", "admin, lead or member")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2}
	}
	r, ok := keyledger.ParseRole(*role)
	if !ok {
		return &exitError{code: 2, msg: fmt.Sprintf("--role: want admin, lead or member, got %q", *role)}
	}
	pw, err := m.readPassword()
	if err != nil {
		return err
	}
	return m.withStore(ctx, cfg, func(st *store.Store) error {
		u, err := st.CreateUser(ctx, keyledger.SystemActor("cli"), keyledger.NewUser{Email: *email, Name: *name, Role: r, Password: pw})
		if err != nil {
			if f := keyledger.FieldErrors(err); len(f) > 0 {
				var parts []string
				for k, v := range f {
					parts = append(parts, "--"+k+": "+v)
				}
				return errors.New(strings.Join(parts, "; "))
			}
			return err
		}
		fmt.Fprintf(m.Stdout, "created %s (%s)\n", u.Email, u.Role)
		return nil
	})
}

func (m *Main) userList(ctx context.Context, cfg Config) error {
	return m.withStore(ctx, cfg, func(st *store.Store) error {
		users, err := st.ListUsers(ctx, keyledger.SystemActor("cli"))
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "EMAIL\tNAME\tROLE\tSTATUS\tCREATED")
		for _, u := range users {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Email, u.Name, u.Role, u.Status, u.CreatedAt.UTC().Format("2006-01-02"))
		}
		return tw.Flush()
	})
}

func (m *Main) userDeactivate(ctx context.Context, cfg Config, args []string) error {
	fs := flag.NewFlagSet("user deactivate", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	email := fs.String("email", "", "email of the user to deactivate")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2}
	}
	if *email == "" {
		return &exitError{code: 2, msg: "--email is required"}
	}
	return m.withStore(ctx, cfg, func(st *store.Store) error {
		u, err := st.DeactivateUser(ctx, keyledger.SystemActor("cli"), *email)
		if err != nil {
			return errors.New(keyledger.ErrorMessage(err))
		}
		fmt.Fprintf(m.Stdout, "deactivated %s; their sessions are revoked\n", u.Email)
		return nil
	})
}

func (m *Main) masterkeyRotate(ctx context.Context, cfg Config) error {
	return m.withStore(ctx, cfg, func(st *store.Store) error {
		report, err := st.RotateMasterKey(ctx, 500, func(p store.RotationProgress) {
			fmt.Fprintf(m.Stderr, "%s: re-wrapped %d, %d to go\n", p.Table, p.Rewrapped, p.Remaining)
		})
		// Per table, what this run did and what is left: after an error
		// too, so the operator sees how far it got.
		out := m.Stdout
		if err != nil {
			out = m.Stderr
		}
		total := 0
		for _, p := range report {
			left := strconv.Itoa(p.Remaining)
			if p.Remaining < 0 {
				left = "an unknown number (could not count)"
			}
			fmt.Fprintf(out, "%s: re-wrapped %d, %s left under older master keys\n", p.Table, p.Rewrapped, left)
			total += p.Rewrapped
		}
		if err != nil {
			return fmt.Errorf("%w (run the command again to resume)", err)
		}
		fmt.Fprintf(m.Stdout, "done: %d data keys re-wrapped under the primary master key; nothing is sealed under an older master key any more, so older keys can now be removed from the configuration\n", total)
		return nil
	})
}

// auditVerify exits 0 only when every event that had finished when it
// began is chained and the whole chain verifies (and extends the
// checkpoint, if given); 1 when the chain is broken; 2 when it could not
// tell: no database, a bad checkpoint file, or finished events that an
// old transaction keeps from being chained. The last is 2, not 1, because
// nothing is proven broken, and not 0, because those events are not yet
// protected by the chain: a script must not read it as "all verified".
func (m *Main) auditVerify(ctx context.Context, cfg Config, args []string) error {
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.SetOutput(m.Stderr)
	cpFile := fs.String("checkpoint", "", "a checkpoint file (JSON or klcp1. token) the chain must still extend")
	wait := fs.Duration("wait", 10*time.Second, "how long to wait for finished events to be chained")
	if err := fs.Parse(args); err != nil {
		return &exitError{code: 2}
	}
	notChecked := func(err error) error {
		return &exitError{code: 2, msg: "audit chain NOT CHECKED: " + err.Error()}
	}
	opts := store.VerifyOptions{Wait: max(*wait, 0)}
	if *cpFile != "" {
		b, err := os.ReadFile(*cpFile)
		if err != nil {
			return notChecked(fmt.Errorf("--checkpoint: %w", err))
		}
		cp, err := keyledger.ParseAuditCheckpoint(b)
		if err != nil {
			return notChecked(fmt.Errorf("--checkpoint %s: %w", *cpFile, err))
		}
		opts.Checkpoint = &cp
	}
	// A check run from cron or CI answers soon, with 2, rather than
	// hanging while the database is away.
	err := m.withStore(ctx, cfg, func(st *store.Store) error {
		r, err := st.VerifyAuditWith(ctx, opts)
		if err != nil {
			return notChecked(err)
		}
		if !r.OK() {
			return &exitError{code: 1, msg: "audit chain BROKEN: " + r.Problem}
		}
		if r.Pending > 0 {
			return &exitError{code: 2, msg: fmt.Sprintf("audit chain NOT FULLY CHECKED: %d links verified, but %d finished events are still not chained after %s; held back by %s",
				r.Checked, r.Pending, opts.Wait, r.Holder)}
		}
		fmt.Fprintf(m.Stdout, "audit chain OK: %d events verified", r.Checked)
		if opts.Checkpoint != nil {
			fmt.Fprintf(m.Stdout, ", extending the checkpoint of link %d (%s)", opts.Checkpoint.Seq, opts.Checkpoint.Time.UTC().Format(time.RFC3339))
		}
		if r.Unchained > 0 {
			fmt.Fprintf(m.Stdout, " (%d from transactions that finished while verifying, not yet chained)", r.Unchained)
		}
		fmt.Fprintf(m.Stdout, "\nkeyed (HMAC) from link %d; checkpoint public key %s\n", r.KeyedFrom, st.CheckpointPublicKey())
		return nil
	})
	var ee *exitError
	if err != nil && !errors.As(err, &ee) {
		// Opening the store failed (database down, wrong master key).
		return notChecked(err)
	}
	return err
}

// auditCheckpoint verifies the chain, signs its head and prints the
// checkpoint as JSON; it is also logged and posted to the webhook when one
// is set, like the scheduled ones.
func (m *Main) auditCheckpoint(ctx context.Context, cfg Config) error {
	pub, err := cfg.CheckpointPublisher()
	if err != nil {
		return err
	}
	return m.withStore(ctx, cfg, func(st *store.Store) error {
		cp, err := st.PublishCheckpoint(ctx, pub)
		if cp.Signature == "" {
			return err
		}
		b, merr := json.MarshalIndent(cp, "", "  ")
		if merr != nil {
			return merr
		}
		fmt.Fprintln(m.Stdout, string(b))
		return err
	})
}

func (m *Main) healthcheck(ctx context.Context) error {
	listen := m.Getenv("KEYLEDGER_LISTEN")
	if listen == "" {
		listen = "127.0.0.1:8080"
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return cfgErr("KEYLEDGER_LISTEN: want host:port, got %q", listen)
	}
	// Ask the address the server listens on; only "all interfaces" is
	// checked on loopback.
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+net.JoinHostPort(host, port)+"/readyz", http.NoBody)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("not ready: %w", err)
	}
	defer func() { _ = resp.Body.Close() }() // a response body: closing it loses nothing
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("not ready: %s", strings.TrimSpace(string(body)))
	}
	return nil
}

func (m *Main) jobs(ctx context.Context, cfg Config) error {
	return m.withStore(ctx, cfg, func(st *store.Store) error {
		counts, fails, err := st.JobStatus(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "JOB\tSTATE\tCOUNT\tLATEST")
		for _, c := range counts {
			last := ""
			if c.Last != nil {
				last = c.Last.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", c.Kind, c.State, c.Count, last)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if len(counts) == 0 {
			fmt.Fprintln(m.Stdout, "no jobs yet: they are scheduled by a running 'keyledger serve'")
		}
		if len(fails) > 0 {
			fmt.Fprintln(m.Stdout, "\nrecent failures:")
			for _, f := range fails {
				fmt.Fprintf(m.Stdout, "  #%d %s (%s, attempt %d): %s\n", f.ID, f.Kind, f.State, f.Attempt, f.Error)
			}
		}
		return nil
	})
}
