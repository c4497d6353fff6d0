package notify

import (
	"bytes"
	"context"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/keyledger/keyledger"
)

// The password has characters that must be percent-encoded in a URL.
const (
	testUser = "keyledger@example.com"
	testPass = "s3cret p@ss/wörd:#?"
)

func smtpURL(scheme, addr, query string) string {
	u := url.URL{Scheme: scheme, User: url.UserPassword(testUser, testPass), Host: addr, RawQuery: query}
	return u.String()
}

func mustSMTP(t *testing.T, raw string) *SMTP {
	t.Helper()
	s, err := NewSMTP(raw)
	if err != nil {
		t.Fatalf("NewSMTP: %v", err)
	}
	return s
}

func hostileNotification() keyledger.Notification {
	n := sample(keyledger.RemindOverdue)
	n.KeyName = "Zahlungs-API Schlüssel 🔑\r\nBcc: evil@example.com"
	n.Recipients = []string{"maria@example.com", "lead@example.com", "Maria@Example.com", "ops-lead@example.com"}
	return n
}

func TestSMTPDeliversWellFormedMessage(t *testing.T) {
	srv := newTestSMTPServer(t, nil)
	s := mustSMTP(t, smtpURL("smtp", srv.Addr(), "from=Keyledger+%3Ckeyledger%40example.com%3E"))
	n := hostileNotification()

	if err := s.Notify(context.Background(), n); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	sess := srv.Only()

	// Envelope and credentials.
	if sess.From != "keyledger@example.com" {
		t.Errorf("MAIL FROM = %q", sess.From)
	}
	wantRcpts := []string{"maria@example.com", "lead@example.com", "ops-lead@example.com"}
	if strings.Join(sess.Rcpts, ",") != strings.Join(wantRcpts, ",") {
		t.Errorf("RCPT TO = %q, want %q (deduplicated)", sess.Rcpts, wantRcpts)
	}
	if sess.Mech != "PLAIN" || sess.User != testUser || sess.Pass != testPass {
		t.Errorf("AUTH %s %q/%q, want PLAIN %q/%q", sess.Mech, sess.User, sess.Pass, testUser, testPass)
	}
	if !sess.Quit {
		t.Error("client did not QUIT")
	}
	t.Logf("transcript:\n%s", strings.Join(sess.Transcript, "\n"))

	// Raw form: CRLF everywhere (checked by the server), short lines, and no
	// header line the key name could have created.
	head, _, _ := bytes.Cut(sess.Data, []byte("\r\n\r\n"))
	for _, line := range strings.Split(string(sess.Data), "\r\n") {
		if len(line) > 998 {
			t.Errorf("line longer than 998 octets: %q", line)
		}
	}
	for _, line := range strings.Split(string(head), "\r\n") {
		if strings.HasPrefix(strings.ToLower(line), "bcc") {
			t.Errorf("injected header line %q in\n%s", line, head)
		}
	}

	msg, err := mail.ReadMessage(bytes.NewReader(sess.Data))
	if err != nil {
		t.Fatalf("ReadMessage: %v\n%s", err, sess.Data)
	}
	h := msg.Header
	if got := h["Bcc"]; got != nil {
		t.Errorf("Bcc header = %q", got)
	}
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 || from[0].Address != "keyledger@example.com" || from[0].Name != "Keyledger" {
		t.Errorf("From = %q (%v)", h.Get("From"), err)
	}
	to, err := h.AddressList("To")
	if err != nil {
		t.Fatalf("To %q: %v", h.Get("To"), err)
	}
	var toAddrs []string
	for _, a := range to {
		toAddrs = append(toAddrs, a.Address)
	}
	if strings.Join(toAddrs, ",") != strings.Join(wantRcpts, ",") {
		t.Errorf("To = %q, want %q", toAddrs, wantRcpts)
	}
	subject, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Fatalf("decoding Subject %q: %v", h.Get("Subject"), err)
	}
	wantSubject := `[keyledger] Key "Zahlungs-API Schlüssel 🔑 Bcc: evil@example.com" (checkout, production) is overdue for rotation`
	if subject != wantSubject || subject != Subject(n) {
		t.Errorf("Subject decodes to %q, want %q", subject, wantSubject)
	}
	if date, err := h.Date(); err != nil || time.Since(date).Abs() > time.Minute {
		t.Errorf("Date = %q (%v)", h.Get("Date"), err)
	}
	if id := h.Get("Message-ID"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@example.com>") {
		t.Errorf("Message-ID = %q", id)
	}
	if v := h.Get("MIME-Version"); v != "1.0" {
		t.Errorf("MIME-Version = %q", v)
	}
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "text/plain" || !strings.EqualFold(params["charset"], "utf-8") {
		t.Errorf("Content-Type = %q", h.Get("Content-Type"))
	}
	if cte := h.Get("Content-Transfer-Encoding"); cte != "quoted-printable" {
		t.Fatalf("Content-Transfer-Encoding = %q", cte)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(body), Text(n)) {
		t.Errorf("body does not contain Text(n)\nbody: %q\ntext: %q", body, Text(n))
	}
}

func TestSMTPStartTLS(t *testing.T) {
	serverTLS, clientTLS := selfSignedTLS(t)
	srv := newTestSMTPServer(t, func(s *testSMTPServer) { s.startTLS = serverTLS })
	s := mustSMTP(t, smtpURL("smtp", srv.Addr(), "from=keyledger@example.com&tls=required"))
	s.tlsConfig = clientTLS

	if err := s.Notify(context.Background(), sample(keyledger.RemindDueSoon)); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	sess := srv.Only()
	if !sess.AuthTLS || !sess.TLS {
		t.Errorf("AUTH over TLS: %v, MAIL over TLS: %v; transcript:\n%s", sess.AuthTLS, sess.TLS, strings.Join(sess.Transcript, "\n"))
	}
	if sess.User != testUser || sess.Pass != testPass {
		t.Errorf("credentials %q/%q", sess.User, sess.Pass)
	}
	if sess.Transcript[1] != "C: STARTTLS" {
		t.Errorf("STARTTLS not right after EHLO:\n%s", strings.Join(sess.Transcript, "\n"))
	}
}

func TestSMTPStartTLSRequiredButNotOffered(t *testing.T) {
	srv := newTestSMTPServer(t, nil)
	s := mustSMTP(t, smtpURL("smtp", srv.Addr(), "from=keyledger@example.com&tls=required"))
	err := s.Notify(context.Background(), sample(keyledger.RemindDueSoon))
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("err = %v, want a STARTTLS error", err)
	}
	sess := srv.Only()
	if sess.User != "" || sess.Pass != "" || sess.From != "" {
		t.Errorf("sent AUTH or MAIL without TLS: %+v", sess)
	}
}

func TestSMTPImplicitTLS(t *testing.T) {
	serverTLS, clientTLS := selfSignedTLS(t)
	srv := newTestSMTPServer(t, func(s *testSMTPServer) {
		s.startTLS = serverTLS
		s.implicitTLS = true
	})
	s := mustSMTP(t, smtpURL("smtps", srv.Addr(), "from=keyledger@example.com"))
	s.tlsConfig = clientTLS
	if err := s.Notify(context.Background(), sample(keyledger.RemindFailing)); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	sess := srv.Only()
	if !sess.AuthTLS || sess.User != testUser || sess.Pass != testPass {
		t.Errorf("session %+v", sess)
	}

	// Without trusting the test certificate the handshake fails.
	s.tlsConfig = nil
	err := s.Notify(context.Background(), sample(keyledger.RemindFailing))
	if err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("untrusted certificate: err = %v", err)
	}
}

func TestSMTPWithoutAuth(t *testing.T) {
	srv := newTestSMTPServer(t, func(s *testSMTPServer) { s.authMechs = "" })
	s := mustSMTP(t, "smtp://"+srv.Addr()+"?from=keyledger@example.com")
	if err := s.Notify(context.Background(), sample(keyledger.RemindOverdue)); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	sess := srv.Only()
	if sess.Mech != "" || len(sess.Rcpts) != 2 {
		t.Errorf("session %+v", sess)
	}

	// Credentials in the URL but no AUTH offered: refuse rather than send
	// unauthenticated.
	s = mustSMTP(t, smtpURL("smtp", srv.Addr(), "from=keyledger@example.com"))
	err := s.Notify(context.Background(), sample(keyledger.RemindOverdue))
	if err == nil || !strings.Contains(err.Error(), "AUTH") {
		t.Fatalf("err = %v", err)
	}
}

func TestSMTPAuthLogin(t *testing.T) {
	srv := newTestSMTPServer(t, func(s *testSMTPServer) { s.authMechs = "LOGIN XOAUTH2" })
	s := mustSMTP(t, smtpURL("smtp", srv.Addr(), "from=keyledger@example.com"))
	if err := s.Notify(context.Background(), sample(keyledger.RemindOverdue)); err != nil {
		t.Fatalf("Notify: %v", err)
	}
	sess := srv.Only()
	if sess.Mech != "LOGIN" || sess.User != testUser || sess.Pass != testPass {
		t.Errorf("AUTH %s %q/%q", sess.Mech, sess.User, sess.Pass)
	}
}

func TestSMTPAuthFailureHidesPassword(t *testing.T) {
	srv := newTestSMTPServer(t, func(s *testSMTPServer) { s.badAuth = true })
	s := mustSMTP(t, smtpURL("smtp", srv.Addr(), "from=keyledger@example.com"))
	err := s.Notify(context.Background(), sample(keyledger.RemindOverdue))
	if err == nil || !strings.Contains(err.Error(), "535") {
		t.Fatalf("err = %v, want the server's 535", err)
	}
	assertNoSecret(t, err.Error(), testPass, url.QueryEscape(testPass), url.PathEscape(testPass))
	if srv.Only().From != "" {
		t.Error("sent MAIL after failed AUTH")
	}
}

func TestSMTPRecipients(t *testing.T) {
	srv := newTestSMTPServer(t, func(s *testSMTPServer) {
		s.refuse = map[string]bool{"gone@example.com": true}
	})
	s := mustSMTP(t, smtpURL("smtp", srv.Addr(), "from=keyledger@example.com"))

	n := sample(keyledger.RemindOverdue)
	n.Recipients = []string{"gone@example.com", "not an address", "maria@example.com"}
	err := s.Notify(context.Background(), n)
	if err == nil || !strings.Contains(err.Error(), `"gone@example.com" refused`) || !strings.Contains(err.Error(), `"not an address" is not an email address`) {
		t.Fatalf("err = %v", err)
	}
	sess := srv.Only()
	if len(sess.Rcpts) != 1 || sess.Rcpts[0] != "maria@example.com" || sess.Data == nil {
		t.Fatalf("the valid recipient should still get the mail: %+v", sess)
	}
	msg, _ := mail.ReadMessage(bytes.NewReader(sess.Data))
	if to := msg.Header.Get("To"); to != "<maria@example.com>" {
		t.Errorf("To = %q, want only the accepted recipient", to)
	}

	// Nobody to send to: no connection at all.
	n.Recipients = nil
	if err := s.Notify(context.Background(), n); err == nil || !strings.Contains(err.Error(), "no recipients") {
		t.Errorf("no recipients: err = %v", err)
	}
	// Everyone refused: no DATA.
	n.Recipients = []string{"gone@example.com"}
	if err := s.Notify(context.Background(), n); err == nil || !strings.Contains(err.Error(), "refused every recipient") {
		t.Errorf("all refused: err = %v", err)
	}
	if ss := srv.Sessions(); len(ss) != 2 || ss[1].Data != nil {
		t.Errorf("sessions: %d, last %+v", len(ss), ss[len(ss)-1])
	}
}

func TestSMTPRespectsContext(t *testing.T) {
	srv := newTestSMTPServer(t, func(s *testSMTPServer) { s.silent = true })
	s := mustSMTP(t, smtpURL("smtp", srv.Addr(), "from=keyledger@example.com"))

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Notify(ctx, sample(keyledger.RemindOverdue))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("took %v", took)
	}

	// Cancellation, not only deadlines, interrupts a stalled session.
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	err = s.Notify(ctx, sample(keyledger.RemindOverdue))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want Canceled", err)
	}

	// The built-in bound applies when ctx has none.
	s.timeout = 150 * time.Millisecond
	err = s.Notify(context.Background(), sample(keyledger.RemindOverdue))
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want DeadlineExceeded from the built-in timeout", err)
	}
}

func TestSMTPConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	s := mustSMTP(t, smtpURL("smtp", addr, "from=keyledger@example.com"))
	err = s.Notify(context.Background(), sample(keyledger.RemindOverdue))
	if err == nil {
		t.Fatal("no error")
	}
	assertNoSecret(t, err.Error(), testPass, url.QueryEscape(testPass), url.PathEscape(testPass))
}

func TestNewSMTP(t *testing.T) {
	const pass = "hunter2-Secret"
	valid := []struct {
		raw                 string
		addr                string
		implicit, auth      bool
		tlsMode, from, helo string
	}{
		{"smtp://user:" + pass + "@mail.example.com:587?from=keyledger@example.com", "mail.example.com:587", false, true, "", "keyledger@example.com", "localhost"},
		{"smtp://user:" + pass + "@mail.example.com:587?from=keyledger@example.com&tls=required", "mail.example.com:587", false, true, "required", "keyledger@example.com", "localhost"},
		{"smtps://user:" + pass + "@mail.example.com?from=keyledger@example.com", "mail.example.com:465", true, true, "", "keyledger@example.com", "localhost"},
		{"smtps://mail.example.com:465?from=keyledger@example.com&tls=required", "mail.example.com:465", true, false, "required", "keyledger@example.com", "localhost"},
		{"smtp://relay:25?from=keyledger@example.com&tls=none&helo=keys.example.com", "relay:25", false, false, "none", "keyledger@example.com", "keys.example.com"},
		{"smtp://relay/?from=Keyledger%20%3Ckeyledger@example.com%3E", "relay:25", false, false, "", "keyledger@example.com", "localhost"},
		{"  smtp://[::1]:2525?from=k@example.com\n", "[::1]:2525", false, false, "", "k@example.com", "localhost"},
		{"smtp://user%40example.com:p%2Fw%3Ad@mail.example.com:587?from=k@example.com", "mail.example.com:587", false, true, "", "k@example.com", "localhost"},
	}
	for _, tc := range valid {
		s, err := NewSMTP(tc.raw)
		if err != nil {
			t.Errorf("NewSMTP(%q): %v", tc.raw, err)
			continue
		}
		if s.addr != tc.addr || s.implicit != tc.implicit || s.auth != tc.auth || s.tlsMode != tc.tlsMode || s.from.Address != tc.from || s.helo != tc.helo {
			t.Errorf("NewSMTP(%q) = %+v", tc.raw, *s)
		}
		if strings.Contains(s.String(), pass) || strings.Contains(s.GoString(), pass) {
			t.Errorf("String %q / GoString %q shows the password", s.String(), s.GoString())
		}
	}
	if s := mustSMTP(t, "smtp://user%40example.com:p%2Fw%3Ad@mail.example.com:587?from=k@example.com"); s.user != "user@example.com" || s.pass != "p/w:d" {
		t.Errorf("decoded credentials %q/%q", s.user, s.pass)
	}

	invalid := []struct{ raw, want string }{
		{"", "empty"},
		{"mail.example.com:587", "smtp://"},
		{"https://user:" + pass + "@mail.example.com", "smtp://"},
		{"smtp:mail.example.com?from=k@example.com", "host"},
		{"smtp://user:" + pass + "@?from=k@example.com", "host"},
		{"smtp://user:" + pass + "@mail.example.com:587", "from"},
		{"smtp://user:" + pass + "@mail.example.com:587?from=", "from"},
		{"smtp://user:" + pass + "@mail.example.com:587?from=not-an-address", "from"},
		{"smtp://user:" + pass + "@mail.example.com:587?from=a@example.com%0D%0ABcc:+b@example.com", "from"},
		{"smtp://user:" + pass + "@mail.example.com:587?from=%22a%0Ab%22+%3Ck@example.com%3E", "from"},
		{"smtp://user:" + pass + "@mail.example.com:587?form=k@example.com", `unknown parameter "form"`},
		{"smtp://user:" + pass + "@mail.example.com:587?from=k@example.com&from=j@example.com", "once"},
		{"smtp://user:" + pass + "@mail.example.com:587?from=k@example.com&tls=yes", "tls"},
		{"smtps://user:" + pass + "@mail.example.com?from=k@example.com&tls=none", "tls=none"},
		{"smtp://user:" + pass + "@mail.example.com:587?from=k@example.com&helo=a%20b", "helo"},
		{"smtp://user:" + pass + "@mail.example.com:99999?from=k@example.com", "port"},
		{"smtp://user:" + pass + "@mail.example.com:0?from=k@example.com", "port"},
		{"smtp://user:" + pass + "@mail.example.com:abc?from=k@example.com", "valid URL"},
		{"smtp://user:" + pass + "%zz@mail.example.com?from=k@example.com", "valid URL"},
		{"smtp://user:" + pass + "@mail.example.com/inbox?from=k@example.com", "path"},
		{"smtp://user@mail.example.com?from=k@example.com", "no password"},
		{"smtp://:" + pass + "@mail.example.com?from=k@example.com", "no user name"},
		{"smtp://user:" + pass + "@mail.example.com?from=k@example.com&x=%zz", "query"},
	}
	for _, tc := range invalid {
		_, err := NewSMTP(tc.raw)
		if err == nil {
			t.Errorf("NewSMTP(%q) = nil error", tc.raw)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("NewSMTP(%q) = %q, want it to mention %q", tc.raw, err, tc.want)
		}
		assertNoSecret(t, err.Error(), pass)
	}
}

func assertNoSecret(t *testing.T, s string, secrets ...string) {
	t.Helper()
	for _, secret := range secrets {
		if secret != "" && strings.Contains(s, secret) {
			t.Errorf("%q contains the secret %q", s, secret)
		}
	}
}
