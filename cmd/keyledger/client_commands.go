package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/keyledger/keyledger"
	"github.com/keyledger/keyledger/web/wire"
	"golang.org/x/term"
)

// login checks a token against the server and saves both.
func (m *Main) login(ctx context.Context, args []string) error {
	fs := m.newFlags("login", "login --server URL   (the token is read from stdin, or prompted for on a terminal)")
	server := fs.String("server", "", "the keyledger server's URL, e.g. https://keys.example.com")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("login: unexpected argument %q; the token is read from stdin", fs.Arg(0))
	}
	saved, _, err := m.readClientConfig()
	if err != nil {
		return err
	}
	s := *server
	if s == "" {
		s = m.Getenv("KEYLEDGER_SERVER")
	}
	if s == "" {
		s = saved.Server
	}
	if s == "" {
		return usageErr("login: --server is required, e.g. keyledger login --server https://keys.example.com")
	}
	base, err := normalizeServer(s)
	if err != nil {
		return usageErr("--server: %v", err)
	}
	if plainHTTPRemote(base) {
		fmt.Fprintf(m.Stderr, "keyledger: warning: %s is plain http; the token crosses the network unencrypted\n", base)
	}
	token, err := m.readToken(base)
	if err != nil {
		return err
	}
	if !strings.HasPrefix(token, keyledger.TokenPrefix) {
		return fmt.Errorf("that is not a keyledger access token: they start with %q; create one on your profile page (%s/profile)", keyledger.TokenPrefix, base)
	}
	c := &apiClient{base: base, token: token, tokenFrom: "login", http: m.httpClient()}
	var who wire.Whoami
	if err := c.do(ctx, http.MethodGet, "/whoami", nil, nil, &who); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.status == http.StatusUnauthorized {
			return fmt.Errorf("%s does not accept this token, nothing was saved: %s", base, strings.TrimSpace(cell(ae.message)))
		}
		return err
	}
	path, err := m.writeClientConfig(clientConfig{Server: base, Token: token})
	if err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "Signed in to %s as %s\n", base, whoSummary(&who))
	fmt.Fprintf(m.Stderr, "keyledger: saved to %s\n", path)
	if env := m.Getenv("KEYLEDGER_TOKEN"); env != "" {
		fmt.Fprintln(m.Stderr, "keyledger: note: KEYLEDGER_TOKEN is set and is used instead of the saved token")
	}
	if env := m.Getenv("KEYLEDGER_SERVER"); env != "" && env != s {
		fmt.Fprintln(m.Stderr, "keyledger: note: KEYLEDGER_SERVER is set and is used instead of the saved server")
	}
	return nil
}

// readToken reads the token: prompted without echo on a terminal, else the
// first line of stdin.
func (m *Main) readToken(base string) (string, error) {
	if m.StdinIsTerminal {
		f, ok := m.Stdin.(*os.File)
		if !ok {
			return "", errors.New("cannot prompt: stdin is not a terminal")
		}
		fmt.Fprintf(m.Stderr, "Access token for %s (create one on your profile page; input is hidden): ", base)
		b, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(m.Stderr)
		if err != nil {
			return "", fmt.Errorf("read token: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	line, err := bufio.NewReader(io.LimitReader(m.Stdin, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read token from stdin: %w", err)
	}
	token := strings.TrimSpace(line)
	if token == "" {
		return "", errors.New("no token on stdin; pipe it in (keyledger login --server URL < token-file) or run in a terminal to be prompted")
	}
	return token, nil
}

func (m *Main) whoami(ctx context.Context, args []string) error {
	fs := m.newFlags("whoami", "whoami")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	c, err := m.client()
	if err != nil {
		return err
	}
	var who wire.Whoami
	if err := c.do(ctx, http.MethodGet, "/whoami", nil, nil, &who); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "Signed in to %s as %s\n", c.base, whoSummary(&who))
	return nil
}

// exportFlags are the flags env and run share.
type exportFlags struct {
	environment, project, reason string
}

func (f *exportFlags) register(fs interface {
	StringVar(*string, string, string, string)
}) {
	fs.StringVar(&f.environment, "environment", "", "the environment, e.g. development (required)")
	fs.StringVar(&f.environment, "e", "", "short for --environment")
	fs.StringVar(&f.project, "project", "", "only this project's keys")
	fs.StringVar(&f.project, "p", "", "short for --project")
	fs.StringVar(&f.reason, "reason", "", "why you need the keys (some environments ask; it is audited)")
}

// export calls POST /export and reports left-out keys on stderr.
func (m *Main) export(ctx context.Context, f exportFlags, format string) (*apiClient, wire.Export, error) {
	var out wire.Export
	c, err := m.client()
	if err != nil {
		return nil, out, err
	}
	req := wire.ExportRequest{Environment: f.environment, Project: f.project, Format: format, Reason: f.reason}
	if err := c.do(ctx, http.MethodPost, "/export", nil, req, &out); err != nil {
		return c, out, err
	}
	for _, l := range out.LeftOut {
		fmt.Fprintf(m.Stderr, "keyledger: left out %s (project %s, id %s): %s\n", cell(l.Name), cell(l.Project), cell(l.KeyID), cell(l.Reason))
	}
	if len(out.Variables) == 0 {
		where := f.environment
		if f.project != "" {
			where += " (project " + f.project + ")"
		}
		fmt.Fprintf(m.Stderr, "keyledger: no keys exported from %s\n", where)
	}
	return c, out, nil
}

// env prints an environment's keys in a shell's syntax.
func (m *Main) env(ctx context.Context, args []string) error {
	fs := m.newFlags("env", "env -e ENVIRONMENT [-p PROJECT] [--format bash|fish|powershell|dotenv|env-file|json] [--reason R]")
	var f exportFlags
	f.register(fs)
	format := fs.String("format", "bash", "bash, fish, powershell, dotenv, env-file (docker run --env-file) or json")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("env: unexpected argument %q", fs.Arg(0))
	}
	if f.environment == "" {
		return usageErr("env: --environment (-e) is required, e.g. keyledger env -e development")
	}
	if err := checkFormat(*format); err != nil {
		return err
	}
	_, out, err := m.export(ctx, f, strings.ToLower(*format))
	if err != nil {
		return err
	}
	content := out.Content
	if content != "" && !strings.HasSuffix(content, "\n") {
		content += "\n"
	}
	_, err = io.WriteString(m.Stdout, content)
	return err
}

// shownKey is a key as GET /keys/{id} gives it, and the whole object as
// received (Raw), which --json prints unchanged: a newer server's fields
// are not lost.
type shownKey struct {
	wire.KeyDetail
	Raw json.RawMessage
}

func (k *shownKey) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &k.KeyDetail); err != nil {
		return err
	}
	k.Raw = append(json.RawMessage(nil), b...)
	return nil
}

func (m *Main) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(m.Stdout, "%s\n", b)
	return err
}

func day(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02")
}

func stamp(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "never"
	}
	return t.Local().Format("2006-01-02 15:04 MST")
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// maxPages stops a server that hands out cursors forever.
const maxPages = 10000

func (m *Main) keysList(ctx context.Context, args []string) error {
	fs := m.newFlags("keys list", "keys list [-e ENVIRONMENT] [-p PROJECT] [--owner EMAIL] [--q TEXT] [--status S] [--json]")
	var env, project string
	fs.StringVar(&env, "environment", "", "only this environment")
	fs.StringVar(&env, "e", "", "short for --environment")
	fs.StringVar(&project, "project", "", "only this project")
	fs.StringVar(&project, "p", "", "short for --project")
	owner := fs.String("owner", "", "only keys owned by this email")
	q := fs.String("q", "", "search names, projects and descriptions")
	status := fs.String("status", "", "overdue, due_soon, ok, failing, never_verified, orphaned, stale or archived")
	asJSON := fs.Bool("json", false, "print the keys as a JSON array")
	if help, err := parseFlags(fs, args); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("keys list: unexpected argument %q", fs.Arg(0))
	}
	c, err := m.client()
	if err != nil {
		return err
	}
	query := url.Values{}
	for k, v := range map[string]string{"environment": env, "project": project, "owner": *owner, "q": *q, "status": *status} {
		if v != "" {
			query.Set(k, v)
		}
	}
	var keys []wire.Key
	var raw []json.RawMessage // each key as received, for --json
	seen := map[string]bool{}
	for page := 0; ; page++ {
		var body json.RawMessage
		if err := c.do(ctx, http.MethodGet, "/keys", query, nil, &body); err != nil {
			return err
		}
		var resp wire.KeyList
		var asReceived map[string]json.RawMessage
		if json.Unmarshal(body, &resp) != nil || json.Unmarshal(body, &asReceived) != nil {
			return c.notAPI(http.MethodGet, "/keys")
		}
		var rawKeys []json.RawMessage
		if json.Unmarshal(asReceived["keys"], &rawKeys) != nil || len(rawKeys) != len(resp.Keys) {
			return c.notAPI(http.MethodGet, "/keys")
		}
		keys = append(keys, resp.Keys...)
		raw = append(raw, rawKeys...)
		if resp.NextCursor == nil || *resp.NextCursor == "" {
			break
		}
		if seen[*resp.NextCursor] || page >= maxPages {
			return fmt.Errorf("the server at %s keeps handing out page cursors (after %d keys); giving up", c.base, len(keys))
		}
		seen[*resp.NextCursor] = true
		query.Set("cursor", *resp.NextCursor)
	}
	if *asJSON {
		if raw == nil {
			raw = []json.RawMessage{}
		}
		return m.printJSON(raw)
	}
	if len(keys) == 0 {
		fmt.Fprintln(m.Stderr, "keyledger: no keys match")
		return nil
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	// The id comes last: keys show and keys reveal need it, and as the
	// last field it is easy to cut out (names and statuses hold spaces).
	fmt.Fprintln(tw, "NAME\tPROJECT\tENV\tOWNER\tPROVIDER\tHINT\tROTATE-BY\tID")
	for _, k := range keys {
		owner := k.Owner.Email
		if !k.Owner.Active && owner != "" {
			owner += " (inactive)"
		}
		rotate := day(&k.RotateBy)
		switch {
		case k.ArchivedAt != nil:
			rotate = "archived"
		case k.RotationStatus != "" && k.RotationStatus != string(keyledger.RotationOK):
			rotate += " " + strings.ReplaceAll(k.RotationStatus, "_", " ")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", cell(k.Name), cell(k.Project), cell(k.Environment), cell(owner), cell(k.Provider), cell(k.MaskedHint), rotate, cell(k.ID))
	}
	return tw.Flush()
}

// cell keeps text from the server on one line and free of control
// characters (a terminal would act on escape sequences).
func cell(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
}

// keyPath is /keys/{id} with the id escaped.
func keyPath(id string) string { return "/keys/" + url.PathEscape(id) }

func (m *Main) keysShow(ctx context.Context, args []string) error {
	fs := m.newFlags("keys show", "keys show ID [--json]")
	asJSON := fs.Bool("json", false, "print the key as JSON")
	pos, help, err := parseInterspersed(fs, args)
	if help || err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("keys show: give one key ID (see keyledger keys list)")
	}
	c, err := m.client()
	if err != nil {
		return err
	}
	var k shownKey
	if err := c.do(ctx, http.MethodGet, keyPath(pos[0]), nil, nil, &k); err != nil {
		return err
	}
	if *asJSON {
		return m.printJSON(k.Raw)
	}
	tw := tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
	row := func(label, v string) { fmt.Fprintf(tw, "%s:\t%s\n", label, cell(v)) }
	row("ID", k.ID)
	row("Name", k.Name)
	row("Provider", k.Provider)
	row("Project", k.Project)
	row("Environment", k.Environment)
	owner := k.Owner.Email
	if k.Owner.Name != "" {
		owner = k.Owner.Name + " <" + k.Owner.Email + ">"
	}
	if !k.Owner.Active {
		owner += " (inactive)"
	}
	row("Owner", owner)
	if k.Description != "" {
		row("Description", k.Description)
	}
	if k.Scope != "" {
		row("Scope", k.Scope)
	}
	row("Hint", k.MaskedHint)
	row("Version", strconv.Itoa(k.CurrentVersion))
	every := fmt.Sprintf("every %d days", k.EffectiveRotationDays)
	if k.RotationDays == nil {
		every += " (the environment's default)"
	}
	rotate := day(&k.RotateBy)
	if k.RotationStatus != "" {
		rotate += " (" + strings.ReplaceAll(k.RotationStatus, "_", " ") + ")"
	}
	row("Rotation", every)
	row("Rotate by", rotate)
	row("Last rotated", stamp(&k.LastRotatedAt))
	verified := stamp(k.LastVerifiedAt)
	if k.VerifyResult != nil {
		verified += ": " + *k.VerifyResult
		if k.VerifyMessage != nil && *k.VerifyMessage != "" {
			verified += " (" + *k.VerifyMessage + ")"
		}
	}
	row("Last verified", verified)
	row("Created", stamp(&k.CreatedAt))
	row("Updated", stamp(&k.UpdatedAt))
	if k.ArchivedAt != nil {
		row("Archived", stamp(k.ArchivedAt))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(k.Versions) > 0 {
		fmt.Fprintln(m.Stdout, "\nVersions:")
		tw = tabwriter.NewWriter(m.Stdout, 0, 4, 2, ' ', 0)
		for _, v := range k.Versions {
			state := ""
			switch {
			case v.Current:
				state = "current"
			case v.DestroyedAt != nil:
				state = "destroyed " + day(v.DestroyedAt)
			case v.SupersededAt != nil && v.DestroyAfter != nil:
				state = "superseded, revealable until " + day(v.DestroyAfter)
			case v.SupersededAt != nil:
				state = "superseded"
			default:
				state = "current"
			}
			fmt.Fprintf(tw, "  v%d\t%s\t%s\t%s\t%s\n", v.Version, cell(v.MaskedHint), state, stamp(&v.CreatedAt), cell(deref(v.CreatedBy)))
		}
		return tw.Flush()
	}
	return nil
}

func (m *Main) keysReveal(ctx context.Context, args []string) error {
	fs := m.newFlags("keys reveal", "keys reveal ID [--reason R] [--version N]   (prints only the value)")
	reason := fs.String("reason", "", "why you need the value (some environments ask; it is audited)")
	version := fs.Int("version", 0, "an earlier version still in its grace period (default: the current one)")
	pos, help, err := parseInterspersed(fs, args)
	if help || err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("keys reveal: give one key ID (see keyledger keys list)")
	}
	if *version < 0 {
		return usageErr("--version: want a positive version number, got %d", *version)
	}
	c, err := m.client()
	if err != nil {
		return err
	}
	body := wire.RevealRequest{Reason: *reason}
	if *version > 0 {
		body.Version = version
	}
	var out wire.Revealed
	if err := c.do(ctx, http.MethodPost, keyPath(pos[0])+"/reveal", nil, body, &out); err != nil {
		return err
	}
	_, err = io.WriteString(m.Stdout, out.Value+"\n")
	return err
}
