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
	var who whoamiResponse
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
	fmt.Fprintf(m.Stdout, "Signed in to %s as %s\n", base, who.summary())
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
	var who whoamiResponse
	if err := c.do(ctx, http.MethodGet, "/whoami", nil, nil, &who); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "Signed in to %s as %s\n", c.base, who.summary())
	return nil
}

// exportRequest and exportResponse are POST /export.
type exportRequest struct {
	Environment string `json:"environment"`
	Project     string `json:"project,omitempty"`
	Format      string `json:"format"`
	Reason      string `json:"reason,omitempty"`
}

type exportResponse struct {
	Environment string `json:"environment"`
	Format      string `json:"format"`
	Content     string `json:"content"`
	Variables   []struct {
		Name    string `json:"name"`
		KeyID   string `json:"key_id"`
		KeyName string `json:"key_name"`
		Project string `json:"project"`
	} `json:"variables"`
	LeftOut []struct {
		KeyID   string `json:"key_id"`
		Name    string `json:"name"`
		Project string `json:"project"`
		Reason  string `json:"reason"`
	} `json:"left_out"`
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
func (m *Main) export(ctx context.Context, f exportFlags, format string) (*apiClient, exportResponse, error) {
	var out exportResponse
	c, err := m.client()
	if err != nil {
		return nil, out, err
	}
	req := exportRequest{Environment: f.environment, Project: f.project, Format: format, Reason: f.reason}
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
	fs := m.newFlags("env", "env -e ENVIRONMENT [-p PROJECT] [--format bash|fish|powershell|dotenv|json] [--reason R]")
	var f exportFlags
	f.register(fs)
	format := fs.String("format", "bash", "bash, fish, powershell, dotenv or json")
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

// apiKey is the part of a key the client shows; Raw is the whole object
// for --json.
type apiKey struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Provider    string `json:"provider"`
	Project     string `json:"project"`
	Environment string `json:"environment"`
	Owner       struct {
		Email  string `json:"email"`
		Name   string `json:"name"`
		Active bool   `json:"active"`
	} `json:"owner"`
	Description           string     `json:"description"`
	Scope                 string     `json:"scope"`
	MaskedHint            string     `json:"masked_hint"`
	CurrentVersion        int        `json:"current_version"`
	RotationDays          int        `json:"rotation_days"`
	EffectiveRotationDays int        `json:"effective_rotation_days"`
	RotateBy              *time.Time `json:"rotate_by"`
	RotationStatus        string     `json:"rotation_status"`
	LastRotatedAt         *time.Time `json:"last_rotated_at"`
	LastVerifiedAt        *time.Time `json:"last_verified_at"`
	VerifyResult          string     `json:"verify_result"`
	VerifyMessage         string     `json:"verify_message"`
	CreatedAt             *time.Time `json:"created_at"`
	UpdatedAt             *time.Time `json:"updated_at"`
	ArchivedAt            *time.Time `json:"archived_at"`
	Versions              []struct {
		Version      int        `json:"version"`
		CreatedAt    *time.Time `json:"created_at"`
		CreatedBy    string     `json:"created_by"`
		SupersededAt *time.Time `json:"superseded_at"`
		DestroyAfter *time.Time `json:"destroy_after"`
		DestroyedAt  *time.Time `json:"destroyed_at"`
		MaskedHint   string     `json:"masked_hint"`
		Current      bool       `json:"current"`
	} `json:"versions"`
	Raw json.RawMessage `json:"-"`
}

func (k *apiKey) UnmarshalJSON(b []byte) error {
	type plain apiKey
	if err := json.Unmarshal(b, (*plain)(k)); err != nil {
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
	var keys []apiKey
	seen := map[string]bool{}
	for page := 0; ; page++ {
		var resp struct {
			Keys       []apiKey `json:"keys"`
			NextCursor *string  `json:"next_cursor"`
		}
		if err := c.do(ctx, http.MethodGet, "/keys", query, nil, &resp); err != nil {
			return err
		}
		keys = append(keys, resp.Keys...)
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
		raw := make([]json.RawMessage, len(keys))
		for i, k := range keys {
			raw[i] = k.Raw
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
		rotate := day(k.RotateBy)
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
	var k apiKey
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
	if k.RotationDays == 0 {
		every += " (the environment's default)"
	}
	rotate := day(k.RotateBy)
	if k.RotationStatus != "" {
		rotate += " (" + strings.ReplaceAll(k.RotationStatus, "_", " ") + ")"
	}
	row("Rotation", every)
	row("Rotate by", rotate)
	row("Last rotated", stamp(k.LastRotatedAt))
	verified := stamp(k.LastVerifiedAt)
	if k.VerifyResult != "" {
		verified += ": " + k.VerifyResult
		if k.VerifyMessage != "" {
			verified += " (" + k.VerifyMessage + ")"
		}
	}
	row("Last verified", verified)
	row("Created", stamp(k.CreatedAt))
	row("Updated", stamp(k.UpdatedAt))
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
			fmt.Fprintf(tw, "  v%d\t%s\t%s\t%s\t%s\n", v.Version, cell(v.MaskedHint), state, stamp(v.CreatedAt), cell(v.CreatedBy))
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
	body := struct {
		Reason  string `json:"reason"`
		Version int    `json:"version,omitempty"`
	}{*reason, *version}
	var out struct {
		Value string `json:"value"`
	}
	if err := c.do(ctx, http.MethodPost, keyPath(pos[0])+"/reveal", nil, body, &out); err != nil {
		return err
	}
	_, err = io.WriteString(m.Stdout, out.Value+"\n")
	return err
}
