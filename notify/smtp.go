package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyledger/keyledger"
)

// smtpTimeout bounds one delivery (connect, TLS, auth and transfer) when the
// caller's context allows longer.
const smtpTimeout = 30 * time.Second

// TLS modes of an smtp:// URL.
const (
	tlsOpportunistic = "" // STARTTLS when the server offers it
	tlsRequired      = "required"
	tlsNone          = "none"
)

// SMTP sends one plain-text email per notification to its recipients.
//
// Credentials are only ever sent encrypted: AUTH happens after implicit TLS
// (smtps://) or STARTTLS, and net/smtp refuses to send a password over an
// unencrypted connection except to localhost, 127.0.0.1 or ::1.
type SMTP struct {
	host       string // for TLS verification and AUTH
	addr       string // host:port
	implicit   bool   // smtps://
	tlsMode    string // for smtp://
	user, pass string
	auth       bool
	from       *mail.Address
	helo       string
	timeout    time.Duration
	// tlsConfig, when set (tests), is cloned for every TLS handshake.
	tlsConfig *tls.Config
}

// NewSMTP parses an SMTP URL:
//
//	smtp://user:pass@host:587?from=keyledger@example.com   STARTTLS when offered, then AUTH
//	smtp://user:pass@host:587?from=…&tls=required          fail unless the server offers STARTTLS
//	smtps://user:pass@host:465?from=…                      implicit TLS
//	smtp://host:25?from=…                                  no authentication
//
// Query parameters: from (required; an address, optionally with a display
// name: "Keyledger <keyledger@example.com>" URL-encoded), tls (required or
// none; none skips STARTTLS for relays without it and cannot be combined
// with smtps), helo (the name sent with EHLO; default localhost). The port
// defaults to 25 for smtp and 465 for smtps. Special characters in the user
// name or password must be percent-encoded. Errors never contain the
// password.
func NewSMTP(rawURL string) (*SMTP, error) {
	rawURL = strings.TrimSpace(rawURL)
	if rawURL == "" {
		return nil, errors.New("SMTP URL is empty")
	}
	// url.Parse errors quote the whole URL, password included.
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, errors.New("SMTP URL is not a valid URL (percent-encode special characters in the user name and password)")
	}
	s := &SMTP{timeout: smtpTimeout, helo: "localhost"}
	switch u.Scheme {
	case "smtp":
	case "smtps":
		s.implicit = true
	default:
		return nil, errors.New("SMTP URL must start with smtp:// or smtps://")
	}
	if u.Opaque != "" || u.Hostname() == "" {
		return nil, errors.New("SMTP URL must name a host, as in smtp://mail.example.com:587?from=keyledger@example.com")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, errors.New("SMTP URL must not have a path")
	}
	s.host = u.Hostname()
	port := u.Port()
	if port == "" {
		port = "25"
		if s.implicit {
			port = "465"
		}
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return nil, errors.New("SMTP URL has an invalid port")
	}
	s.addr = net.JoinHostPort(s.host, port)

	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
		if s.user == "" {
			return nil, errors.New("SMTP URL has a password but no user name")
		}
		if s.pass == "" {
			return nil, errors.New("SMTP URL has a user name but no password")
		}
		s.auth = true
	}

	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, errors.New("SMTP URL has an invalid query string")
	}
	for k, vs := range q {
		switch k {
		case "from", "tls", "helo":
			if len(vs) != 1 {
				return nil, fmt.Errorf("SMTP URL must give %q once", k)
			}
		default:
			return nil, fmt.Errorf("SMTP URL has an unknown parameter %q (known: from, tls, helo)", k)
		}
	}
	from := strings.TrimSpace(q.Get("from"))
	if from == "" {
		return nil, errors.New("SMTP URL needs a sender: add ?from=keyledger@example.com")
	}
	if s.from, err = mail.ParseAddress(from); err != nil || clean(s.from.Address) != s.from.Address || clean(s.from.Name) != s.from.Name {
		return nil, errors.New("SMTP URL's from is not an email address")
	}
	switch s.tlsMode = q.Get("tls"); s.tlsMode {
	case tlsOpportunistic, tlsRequired:
	case tlsNone:
		if s.implicit {
			return nil, errors.New("SMTP URL cannot combine smtps:// with tls=none")
		}
	default:
		return nil, errors.New(`SMTP URL's tls must be "required" or "none"`)
	}
	if h := q.Get("helo"); h != "" {
		if clean(h) != h || strings.ContainsAny(h, " <>") {
			return nil, errors.New("SMTP URL's helo must be a host name")
		}
		s.helo = h
	}
	return s, nil
}

// String describes the server without credentials, for logs.
func (s *SMTP) String() string {
	scheme := "smtp"
	if s.implicit {
		scheme = "smtps"
	}
	return scheme + "://" + s.addr
}

// GoString keeps %#v from printing the password.
func (s *SMTP) GoString() string { return "notify.SMTP{" + s.String() + "}" }

// Notify sends one email to all of n.Recipients (deduplicated). Recipients
// that are not addresses or that the server refuses are skipped and
// reported in the returned error; the mail still goes to the others. The
// whole exchange takes at most 30 seconds, less if ctx says so; cancelling
// ctx aborts it.
func (s *SMTP) Notify(ctx context.Context, n keyledger.Notification) error {
	rcpts, errs := recipients(n.Recipients)
	if len(rcpts) == 0 {
		errs = append(errs, errors.New("smtp: notification has no recipients"))
		return errors.Join(errs...)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	refused, err := s.send(ctx, n, rcpts)
	if err != nil {
		if deadline, ok := ctx.Deadline(); ok && (ctx.Err() != nil || !time.Now().Before(deadline)) {
			// The connection deadline is the context's: report it as such.
			ctxErr := ctx.Err()
			if ctxErr == nil {
				ctxErr = context.DeadlineExceeded
			}
			err = fmt.Errorf("%w (%v)", ctxErr, err)
		}
		errs = append(errs, fmt.Errorf("smtp: %s: %w", s.addr, err))
	}
	errs = append(errs, refused...)
	return errors.Join(errs...)
}

// send runs one SMTP session. It returns the errors for refused recipients
// separately: they do not stop delivery to the rest.
func (s *SMTP) send(ctx context.Context, n keyledger.Notification, rcpts []string) (refused []error, err error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			return nil, err
		}
	}
	// Cancellation (not only the deadline) interrupts blocked reads.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	if s.implicit {
		tc := tls.Client(conn, s.tlsClientConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("TLS handshake: %w", err)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Hello(s.helo); err != nil {
		return nil, err
	}
	if !s.implicit && s.tlsMode != tlsNone {
		if ok, _ := c.Extension("STARTTLS"); ok {
			if err := c.StartTLS(s.tlsClientConfig()); err != nil {
				return nil, fmt.Errorf("STARTTLS: %w", err)
			}
		} else if s.tlsMode == tlsRequired {
			return nil, errors.New("server does not offer STARTTLS, and the SMTP URL has tls=required")
		}
	}
	if s.auth {
		a, err := s.authFor(c)
		if err != nil {
			return nil, err
		}
		if err := c.Auth(a); err != nil {
			return nil, fmt.Errorf("AUTH: %w", err)
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return nil, fmt.Errorf("MAIL FROM: %w", err)
	}
	var to []string
	for _, r := range rcpts {
		if err := c.Rcpt(r); err != nil {
			refused = append(refused, fmt.Errorf("smtp: recipient %q refused: %w", r, err))
			continue
		}
		to = append(to, r)
	}
	if len(to) == 0 {
		return refused, errors.New("server refused every recipient")
	}
	msg, err := s.message(n, to)
	if err != nil {
		return refused, err
	}
	wc, err := c.Data()
	if err != nil {
		return refused, fmt.Errorf("DATA: %w", err)
	}
	if _, err := wc.Write(msg); err != nil {
		return refused, fmt.Errorf("DATA: %w", err)
	}
	if err := wc.Close(); err != nil {
		return refused, fmt.Errorf("DATA: %w", err)
	}
	// The message is accepted; a failed QUIT changes nothing.
	_ = c.Quit()
	return refused, nil
}

func (s *SMTP) tlsClientConfig() *tls.Config {
	cfg := &tls.Config{}
	if s.tlsConfig != nil {
		cfg = s.tlsConfig.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = s.host
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	return cfg
}

// authFor picks PLAIN, or LOGIN for servers that only offer that (such as
// Microsoft 365).
func (s *SMTP) authFor(c *smtp.Client) (smtp.Auth, error) {
	ok, params := c.Extension("AUTH")
	if !ok {
		return nil, errors.New("the SMTP URL has credentials but the server does not offer AUTH (does it need STARTTLS first?)")
	}
	mechs := strings.Fields(strings.ToUpper(params))
	for _, m := range mechs {
		if m == "PLAIN" {
			return smtp.PlainAuth("", s.user, s.pass, s.host), nil
		}
	}
	for _, m := range mechs {
		if m == "LOGIN" {
			return &loginAuth{user: s.user, pass: s.pass, host: s.host}, nil
		}
	}
	return nil, fmt.Errorf("server offers no supported AUTH mechanism (it offers %q; keyledger supports PLAIN and LOGIN)", clean(params))
}

// loginAuth is the AUTH LOGIN mechanism, with the same rule as
// smtp.PlainAuth: never over an unencrypted connection except to localhost.
type loginAuth struct {
	user, pass, host string
	step             int
}

func (a *loginAuth) Start(server *smtp.ServerInfo) (string, []byte, error) {
	if !server.TLS && !isLocalhost(server.Name) {
		return "", nil, errors.New("unencrypted connection")
	}
	if server.Name != a.host {
		return "", nil, errors.New("wrong host name")
	}
	a.step = 0
	return "LOGIN", nil, nil
}

func (a *loginAuth) Next(fromServer []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	a.step++
	prompt := strings.ToLower(strings.TrimSpace(string(fromServer)))
	switch {
	case strings.HasPrefix(prompt, "user"), prompt == "" && a.step == 1:
		return []byte(a.user), nil
	case strings.HasPrefix(prompt, "pass"), prompt == "" && a.step == 2:
		return []byte(a.pass), nil
	}
	return nil, errors.New("unexpected AUTH LOGIN challenge")
}

func isLocalhost(name string) bool {
	return name == "localhost" || name == "127.0.0.1" || name == "::1"
}

// recipients parses and deduplicates addresses, case-insensitively.
func recipients(in []string) (out []string, errs []error) {
	seen := make(map[string]bool, len(in))
	for _, r := range in {
		a, err := mail.ParseAddress(strings.TrimSpace(r))
		if err != nil || strings.ContainsAny(a.Address, "\r\n") {
			errs = append(errs, fmt.Errorf("smtp: recipient %q is not an email address", r))
			continue
		}
		key := strings.ToLower(a.Address)
		if seen[key] {
			continue
		}
		seen[key] = true
		out = append(out, a.Address)
	}
	return out, errs
}

// message builds the RFC 5322 message, CRLF line endings throughout. Every
// header value is either ours or passed through clean (no CR/LF) and, for
// the subject, RFC 2047 encoding.
func (s *SMTP) message(n keyledger.Notification, to []string) ([]byte, error) {
	id, err := messageID(s.from.Address)
	if err != nil {
		return nil, err
	}
	addrs := make([]string, len(to))
	for i, a := range to {
		addrs[i] = (&mail.Address{Address: a}).String()
	}
	var b bytes.Buffer
	header := func(name, value string) {
		b.WriteString(fold(name + ": " + value))
		b.WriteString("\r\n")
	}
	header("From", s.from.String())
	header("To", strings.Join(addrs, ", "))
	header("Subject", mime.QEncoding.Encode("utf-8", clean(Subject(n))))
	header("Date", time.Now().Format(time.RFC1123Z))
	header("Message-ID", id)
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")

	qp := quotedprintable.NewWriter(&b)
	footer := "keyledger sends this reminder to a key's owner and its project's leads."
	if n.Kind == keyledger.AlertAccountAttack {
		footer = "keyledger sends this warning to its admins, at most once a day per account."
	}
	body := Text(n) + "\n\n-- \n" + footer + "\n"
	if _, err := qp.Write([]byte(body)); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// fold breaks a header line at spaces so lines stay within 78 characters
// where possible (RFC 5322 section 2.2.3). line is "Name: value". It never
// breaks inside a word, and so never inside an RFC 2047 encoded-word;
// unfolding (which joins the lines with a single space) gives the line back.
func fold(line string) string {
	const limit = 78
	if len(line) <= limit {
		return line
	}
	words := strings.Split(line, " ")
	if len(words) < 3 {
		return line
	}
	var b strings.Builder
	// The header name and the value's first word stay together.
	cur, words := words[0]+" "+words[1], words[2:]
	for _, w := range words {
		if len(cur)+1+len(w) > limit && strings.TrimSpace(cur) != "" && w != "" {
			b.WriteString(cur)
			b.WriteString("\r\n")
			cur = " " + w // a continuation line starts with white space
			continue
		}
		cur += " " + w
	}
	b.WriteString(cur)
	return b.String()
}

func messageID(from string) (string, error) {
	var r [16]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", err
	}
	domain := "keyledger.invalid"
	if at := strings.LastIndexByte(from, '@'); at >= 0 && at < len(from)-1 {
		if d := from[at+1:]; !strings.ContainsAny(d, " <>\"\\") {
			domain = d
		}
	}
	return "<" + hex.EncodeToString(r[:]) + "@" + domain + ">", nil
}
