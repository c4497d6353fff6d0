package notify

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyledger/keyledger"
	gomail "github.com/wneessen/go-mail"
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
// (smtps://) or STARTTLS, and go-mail's PLAIN and LOGIN refuse to send a
// password over an unencrypted connection except to localhost, 127.0.0.1 or
// ::1. The client, TLS, AUTH and the message format are go-mail's; the URL
// format and the per-recipient envelope are ours.
type SMTP struct {
	host       string // for TLS verification and AUTH
	addr       string // host:port
	port       string
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
	s.addr, s.port = net.JoinHostPort(s.host, port), port

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

// send runs one SMTP session. go-mail makes the connection, TLS (implicit or
// STARTTLS per the URL) and AUTH, and builds the message; the envelope is
// ours, because one refused recipient must not stop delivery to the rest
// (go-mail's Send drops the whole message then). It returns the errors for
// refused recipients separately.
func (s *SMTP) send(ctx context.Context, n keyledger.Notification, rcpts []string) (refused []error, err error) {
	c, err := s.client(ctx)
	if err != nil {
		return nil, err
	}
	sc, err := c.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return nil, err
	}
	// Closes the connection on every path; by then the message was
	// accepted (wc.Close below) or its error returned.
	defer func() { _ = sc.Close() }()
	// go-mail's low-level client takes the address in angle brackets.
	if err := sc.Mail("<" + s.from.Address + ">"); err != nil {
		return nil, fmt.Errorf("MAIL FROM: %w", err)
	}
	var to []string
	for _, r := range rcpts {
		if err := sc.Rcpt("<" + r + ">"); err != nil {
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
	wc, err := sc.Data()
	if err != nil {
		return refused, fmt.Errorf("DATA: %w", err)
	}
	if _, err := msg.WriteTo(wc); err != nil {
		return refused, fmt.Errorf("DATA: %w", err)
	}
	if err := wc.Close(); err != nil {
		return refused, fmt.Errorf("DATA: %w", err)
	}
	// The message is accepted; a failed QUIT changes nothing.
	_ = sc.Quit()
	return refused, nil
}

// client configures go-mail for one delivery. The dialer is ours so that
// cancelling ctx (not only its deadline) closes a stalled connection, and so
// that implicit TLS is a *tls.Conn the SMTP client recognises as encrypted.
func (s *SMTP) client(ctx context.Context) (*gomail.Client, error) {
	timeout := s.timeout
	if deadline, ok := ctx.Deadline(); ok {
		timeout = min(timeout, time.Until(deadline))
	}
	port, _ := strconv.Atoi(s.port)
	opts := []gomail.Option{
		gomail.WithPort(port),
		gomail.WithTimeout(max(timeout, time.Millisecond)),
		gomail.WithHELO(s.helo),
		gomail.WithTLSConfig(s.tlsClientConfig()),
		gomail.WithDialContextFunc(func(dialCtx context.Context, network, addr string) (net.Conn, error) {
			var d net.Dialer
			raw, err := d.DialContext(dialCtx, network, addr)
			if err != nil {
				return nil, err
			}
			context.AfterFunc(ctx, func() { _ = raw.Close() })
			if !s.implicit {
				return raw, nil
			}
			tc := tls.Client(raw, s.tlsClientConfig())
			if err := tc.HandshakeContext(dialCtx); err != nil {
				_ = raw.Close()
				return nil, fmt.Errorf("TLS handshake: %w", err)
			}
			return tc, nil
		}),
	}
	switch {
	case s.implicit:
		// The dialer did the TLS; no STARTTLS inside it.
		opts = append(opts, gomail.WithTLSPortPolicy(gomail.NoTLS))
	case s.tlsMode == tlsRequired:
		opts = append(opts, gomail.WithTLSPortPolicy(gomail.TLSMandatory))
	case s.tlsMode == tlsNone:
		opts = append(opts, gomail.WithTLSPortPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPortPolicy(gomail.TLSOpportunistic))
	}
	if s.auth {
		// PLAIN, or LOGIN for servers that only offer that (such as
		// Microsoft 365). Both refuse to send the password over an
		// unencrypted connection except to localhost.
		opts = append(opts, gomail.WithOpportunisticSMTPAuth(gomail.SMTPAuthPlain, gomail.SMTPAuthLogin),
			gomail.WithUsername(s.user), gomail.WithPassword(s.pass))
	} else {
		opts = append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthNoAuth))
	}
	c, err := gomail.NewClient(s.host, opts...)
	if err != nil {
		return nil, fmt.Errorf("configure SMTP client: %w", err)
	}
	return c, nil
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

// message builds the message with go-mail: quoted-printable UTF-8 text,
// RFC 2047 subject, folded headers. The subject is cleaned of CR/LF first,
// so a key name cannot add a header line.
func (s *SMTP) message(n keyledger.Notification, to []string) (*gomail.Msg, error) {
	m := gomail.NewMsg(gomail.WithNoDefaultUserAgent())
	if err := m.FromFormat(s.from.Name, s.from.Address); err != nil {
		return nil, fmt.Errorf("message sender: %w", err)
	}
	if err := m.To(to...); err != nil {
		return nil, fmt.Errorf("message recipients: %w", err)
	}
	m.Subject(clean(Subject(n)))
	m.SetDate()
	id, err := messageID(s.from.Address)
	if err != nil {
		return nil, err
	}
	m.SetMessageIDWithValue(id)
	m.SetGenHeader("Auto-Submitted", "auto-generated")
	footer := "keyledger sends this reminder to a key's owner and its project's leads."
	switch n.Kind {
	case keyledger.AlertAccountAttack:
		footer = "keyledger sends this warning to its admins, at most once a day per account."
	case keyledger.NoticeTOTPReset:
		footer = "keyledger tells you whenever an admin changes how you sign in."
	}
	m.SetBodyString(gomail.TypeTextPlain, Text(n)+"\n\n-- \n"+footer+"\n")
	return m, nil
}

// messageID is the id part of a Message-ID under the sender's domain, so
// replies and bounces thread under it.
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
	return hex.EncodeToString(r[:]) + "@" + domain, nil
}
