package notify

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// testSMTPServer is a small in-process SMTP server: enough of RFC 5321 for
// net/smtp (greeting, EHLO, STARTTLS, AUTH PLAIN/LOGIN, MAIL, RCPT, DATA,
// RSET, NOOP, QUIT). It records every session.
type testSMTPServer struct {
	t  *testing.T
	ln net.Listener

	// Configuration, set before the first connection.
	authMechs   string          // advertised after AUTH, e.g. "PLAIN LOGIN"; "" = no AUTH
	startTLS    *tls.Config     // advertise and accept STARTTLS when set
	implicitTLS bool            // the listener speaks TLS (smtps)
	refuse      map[string]bool // RCPT addresses answered with 550
	badAuth     bool            // answer AUTH with 535
	silent      bool            // accept connections, never greet

	mu       sync.Mutex
	sessions []*smtpSession
	wg       sync.WaitGroup
}

type smtpSession struct {
	Transcript []string // client lines, in order ("C: ...") and markers
	TLS        bool     // the session was encrypted when MAIL was sent
	AuthTLS    bool     // the session was encrypted when AUTH was sent
	User, Pass string
	Mech       string
	From       string
	Rcpts      []string
	Data       []byte // as sent, CRLF line endings, dot-stuffing undone
	Quit       bool
}

// newTestSMTPServer listens on 127.0.0.1. net/smtp sends PLAIN credentials
// over an unencrypted connection only to localhost, 127.0.0.1 or ::1, which
// is why plain-text tests must dial 127.0.0.1 (and why production servers
// need TLS).
func newTestSMTPServer(t *testing.T, configure func(*testSMTPServer)) *testSMTPServer {
	t.Helper()
	s := &testSMTPServer{t: t, authMechs: "PLAIN"}
	if configure != nil {
		configure(s)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if s.implicitTLS {
		ln = tls.NewListener(ln, s.startTLSOrDie())
	}
	s.ln = ln
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() {
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *testSMTPServer) startTLSOrDie() *tls.Config {
	if s.startTLS == nil {
		s.t.Fatal("implicitTLS needs startTLS (the server's tls.Config)")
	}
	return s.startTLS
}

func (s *testSMTPServer) Addr() string { return s.ln.Addr().String() }

func (s *testSMTPServer) Sessions() []*smtpSession {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*smtpSession(nil), s.sessions...)
}

// Only returns the single recorded session.
func (s *testSMTPServer) Only() *smtpSession {
	s.t.Helper()
	ss := s.Sessions()
	if len(ss) != 1 {
		s.t.Fatalf("got %d SMTP sessions, want 1", len(ss))
	}
	return ss[0]
}

func (s *testSMTPServer) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		sess := &smtpSession{}
		s.mu.Lock()
		s.sessions = append(s.sessions, sess)
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() { _ = conn.Close() }() // teardown
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			if s.silent {
				// Hold the connection open without a greeting until the
				// client gives up (or the deadline passes).
				_, _ = conn.Read(make([]byte, 1))
				return
			}
			s.session(conn, sess)
		}()
	}
}

func (s *testSMTPServer) session(conn net.Conn, sess *smtpSession) {
	_, isTLS := conn.(*tls.Conn)
	r := bufio.NewReader(conn)
	w := bufio.NewWriter(conn)
	// A failed write means the client under test hung up: it sees that
	// as its own error, which is what the test checks.
	reply := func(lines ...string) {
		for _, l := range lines {
			_, _ = w.WriteString(l + "\r\n")
		}
		_ = w.Flush()
	}
	readLine := func() (string, bool) {
		line, err := r.ReadString('\n')
		if err != nil {
			return "", false
		}
		if !strings.HasSuffix(line, "\r\n") {
			s.t.Errorf("SMTP line without CRLF: %q", line)
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		s.mu.Lock()
		sess.Transcript = append(sess.Transcript, "C: "+line)
		s.mu.Unlock()
		return line, true
	}
	record := func(f func()) {
		s.mu.Lock()
		defer s.mu.Unlock()
		f()
	}

	reply("220 localhost ESMTP test")
	for {
		line, ok := readLine()
		if !ok {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			ext := []string{"250-localhost greets " + arg, "250-8BITMIME"}
			if s.startTLS != nil && !isTLS && !s.implicitTLS {
				ext = append(ext, "250-STARTTLS")
			}
			if s.authMechs != "" {
				ext = append(ext, "250-AUTH "+s.authMechs)
			}
			ext = append(ext, "250 SMTPUTF8")
			reply(ext...)
		case "HELO":
			reply("250 localhost")
		case "STARTTLS":
			if s.startTLS == nil || isTLS {
				reply("502 not now")
				continue
			}
			reply("220 go ahead")
			tc := tls.Server(conn, s.startTLS)
			if err := tc.Handshake(); err != nil {
				record(func() { sess.Transcript = append(sess.Transcript, "S: TLS handshake failed: "+err.Error()) })
				return
			}
			conn, isTLS = tc, true
			r, w = bufio.NewReader(conn), bufio.NewWriter(conn)
			record(func() { sess.Transcript = append(sess.Transcript, "S: TLS started") })
		case "AUTH":
			mech, initial, _ := strings.Cut(arg, " ")
			mech = strings.ToUpper(mech)
			var user, pass string
			switch mech {
			case "PLAIN":
				if initial == "" {
					reply("334 ")
					if initial, ok = readLine(); !ok {
						return
					}
				}
				raw, err := base64.StdEncoding.DecodeString(initial)
				parts := strings.Split(string(raw), "\x00")
				if err != nil || len(parts) != 3 {
					reply("501 bad PLAIN response")
					continue
				}
				user, pass = parts[1], parts[2]
			case "LOGIN":
				reply("334 " + base64.StdEncoding.EncodeToString([]byte("Username:")))
				u64, ok := readLine()
				if !ok {
					return
				}
				reply("334 " + base64.StdEncoding.EncodeToString([]byte("Password:")))
				p64, ok := readLine()
				if !ok {
					return
				}
				u, err1 := base64.StdEncoding.DecodeString(u64)
				p, err2 := base64.StdEncoding.DecodeString(p64)
				if err1 != nil || err2 != nil {
					reply("501 bad LOGIN response")
					continue
				}
				user, pass = string(u), string(p)
			default:
				reply("504 unrecognized mechanism")
				continue
			}
			record(func() { sess.User, sess.Pass, sess.Mech, sess.AuthTLS = user, pass, mech, isTLS })
			if s.badAuth {
				reply("535 5.7.8 authentication failed")
				continue
			}
			reply("235 2.7.0 authenticated")
		case "MAIL":
			from, ok := angle(arg, "FROM:")
			if !ok {
				reply("501 syntax: MAIL FROM:<address>")
				continue
			}
			record(func() { sess.From, sess.TLS = from, isTLS })
			reply("250 sender ok")
		case "RCPT":
			to, ok := angle(arg, "TO:")
			if !ok {
				reply("501 syntax: RCPT TO:<address>")
				continue
			}
			if s.refuse[to] {
				reply("550 5.1.1 no such user")
				continue
			}
			record(func() { sess.Rcpts = append(sess.Rcpts, to) })
			reply("250 recipient ok")
		case "DATA":
			reply("354 end with <CRLF>.<CRLF>")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if !strings.HasSuffix(l, "\r\n") {
					s.t.Errorf("DATA line without CRLF: %q", l)
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(strings.TrimPrefix(l, ".")) // undo dot-stuffing
			}
			record(func() {
				sess.Data = []byte(data.String())
				sess.Transcript = append(sess.Transcript, "C: <message>", "C: .")
			})
			reply("250 queued")
		case "RSET", "NOOP":
			reply("250 ok")
		case "QUIT":
			record(func() { sess.Quit = true })
			reply("221 bye")
			return
		default:
			reply("502 unknown command")
		}
	}
}

// angle extracts the address from "FROM:<a@b> PARAMS".
func angle(arg, prefix string) (string, bool) {
	if len(arg) < len(prefix) || !strings.EqualFold(arg[:len(prefix)], prefix) {
		return "", false
	}
	rest := strings.TrimSpace(arg[len(prefix):])
	if !strings.HasPrefix(rest, "<") {
		return "", false
	}
	end := strings.IndexByte(rest, '>')
	if end < 0 {
		return "", false
	}
	return rest[1:end], true
}

// selfSignedTLS returns a server config with a fresh certificate for
// localhost and 127.0.0.1, and a client config that trusts it.
func selfSignedTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "keyledger test SMTP"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	server = &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
	client = &tls.Config{RootCAs: pool}
	return server, client
}
