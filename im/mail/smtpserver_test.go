package mail

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// testServer is a small SMTP server on 127.0.0.1 speaking the protocol over
// a real socket: greeting, EHLO/HELO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA
// (with dot-unstuffing), RSET, NOOP, QUIT. It records accepted messages.
type testServer struct {
	cfg  serverConfig
	addr string

	mu   sync.Mutex
	msgs []received
	log  []string // commands received, for assertions
}

type serverConfig struct {
	implicitTLS   bool   // TLS from the first byte
	offerStartTLS bool   // advertise and accept STARTTLS on a plain connection
	user, pass    string // when user is set: advertise AUTH PLAIN, demand it before MAIL
	greeting      string // when set: send it instead of 220 and hang up
	rejectRcpt    bool
	silent        bool // accept the connection and never answer
	cert          tls.Certificate
}

type received struct {
	from     string
	to       []string
	data     string // as received, CRLF kept, dot-unstuffed, without the final "."
	bareLF   bool   // a line of DATA ended in "\n" without "\r"
	authUser string
	tls      bool
	helo     string
}

func startServer(t *testing.T, cfg serverConfig) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.implicitTLS {
		ln = tls.NewListener(ln, &tls.Config{Certificates: []tls.Certificate{cfg.cert}})
	}
	s := &testServer{cfg: cfg, addr: ln.Addr().String()}
	var wg sync.WaitGroup
	done := make(chan struct{})
	t.Cleanup(func() {
		close(done)
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				go func() { <-done; c.Close() }()
				s.serve(c)
			})
		}
	})
	return s
}

func (s *testServer) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.msgs...)
}

func (s *testServer) commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

type session struct {
	conn   net.Conn
	r      *bufio.Reader
	w      *bufio.Writer
	isTLS  bool
	helo   string
	authed string
	from   string
	to     []string
}

func (ss *session) reply(lines ...string) error {
	for _, l := range lines {
		if _, err := ss.w.WriteString(l + "\r\n"); err != nil {
			return err
		}
	}
	return ss.w.Flush()
}

func (ss *session) readLine() (string, error) {
	l, err := ss.r.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimRight(l, "\r\n"), nil
}

func (s *testServer) serve(c net.Conn) {
	if s.cfg.silent {
		_, _ = io.Copy(io.Discard, c)
		return
	}
	ss := &session{conn: c, r: bufio.NewReader(c), w: bufio.NewWriter(c), isTLS: s.cfg.implicitTLS}
	if s.cfg.greeting != "" {
		_ = ss.reply(s.cfg.greeting)
		return
	}
	if ss.reply("220 test.invalid ESMTP ready") != nil {
		return
	}
	for {
		line, err := ss.readLine()
		if err != nil {
			return
		}
		verb, arg, _ := strings.Cut(line, " ")
		verb = strings.ToUpper(verb)
		s.mu.Lock()
		if verb == "AUTH" {
			s.log = append(s.log, "AUTH") // keep credentials out of the log
		} else {
			s.log = append(s.log, line)
		}
		s.mu.Unlock()
		var rerr error
		switch verb {
		case "EHLO", "HELO":
			ss.helo, ss.authed, ss.from, ss.to = arg, "", "", nil
			lines := []string{"test.invalid greets " + arg, "8BITMIME"}
			if s.cfg.offerStartTLS && !ss.isTLS {
				lines = append(lines, "STARTTLS")
			}
			if s.cfg.user != "" {
				lines = append(lines, "AUTH PLAIN")
			}
			if verb == "HELO" {
				lines = lines[:1]
			}
			for i := range lines {
				sep := "-"
				if i == len(lines)-1 {
					sep = " "
				}
				lines[i] = "250" + sep + lines[i]
			}
			rerr = ss.reply(lines...)
		case "STARTTLS":
			if !s.cfg.offerStartTLS || ss.isTLS {
				rerr = ss.reply("502 5.5.1 STARTTLS not available")
				break
			}
			if err := ss.reply("220 2.0.0 go ahead"); err != nil {
				return
			}
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{s.cfg.cert}})
			if err := tc.Handshake(); err != nil {
				return
			}
			ss.conn, ss.r, ss.w, ss.isTLS = tc, bufio.NewReader(tc), bufio.NewWriter(tc), true
			ss.helo, ss.authed, ss.from, ss.to = "", "", "", nil
		case "AUTH":
			rerr = s.auth(ss, arg)
		case "MAIL":
			addr, ok := pathArg(arg, "FROM:")
			switch {
			case ss.helo == "":
				rerr = ss.reply("503 5.5.1 EHLO first")
			case s.cfg.user != "" && ss.authed == "":
				rerr = ss.reply("530 5.7.0 authentication required")
			case !ok:
				rerr = ss.reply("501 5.5.4 bad MAIL syntax")
			default:
				ss.from, ss.to = addr, nil
				rerr = ss.reply("250 2.1.0 OK")
			}
		case "RCPT":
			addr, ok := pathArg(arg, "TO:")
			switch {
			case ss.from == "":
				rerr = ss.reply("503 5.5.1 MAIL first")
			case !ok:
				rerr = ss.reply("501 5.5.4 bad RCPT syntax")
			case s.cfg.rejectRcpt:
				rerr = ss.reply("550 5.1.1 no such mailbox")
			default:
				ss.to = append(ss.to, addr)
				rerr = ss.reply("250 2.1.5 OK")
			}
		case "DATA":
			if len(ss.to) == 0 {
				rerr = ss.reply("503 5.5.1 RCPT first")
				break
			}
			if err := ss.reply("354 end data with <CR><LF>.<CR><LF>"); err != nil {
				return
			}
			msg, err := readData(ss.r)
			if err != nil {
				return
			}
			msg.from, msg.to, msg.authUser, msg.tls, msg.helo = ss.from, ss.to, ss.authed, ss.isTLS, ss.helo
			s.mu.Lock()
			s.msgs = append(s.msgs, msg)
			s.mu.Unlock()
			ss.from, ss.to = "", nil
			rerr = ss.reply("250 2.0.0 queued")
		case "RSET":
			ss.from, ss.to = "", nil
			rerr = ss.reply("250 2.0.0 OK")
		case "NOOP":
			rerr = ss.reply("250 2.0.0 OK")
		case "QUIT":
			_ = ss.reply("221 2.0.0 bye")
			return
		default:
			rerr = ss.reply("502 5.5.2 unknown command")
		}
		if rerr != nil {
			return
		}
	}
}

func (s *testServer) auth(ss *session, arg string) error {
	mech, ir, _ := strings.Cut(arg, " ")
	switch {
	case s.cfg.user == "":
		return ss.reply("502 5.5.1 AUTH not available")
	case ss.helo == "":
		return ss.reply("503 5.5.1 EHLO first")
	case ss.authed != "":
		return ss.reply("503 5.5.1 already authenticated")
	case !strings.EqualFold(mech, "PLAIN"):
		return ss.reply("504 5.5.4 mechanism not supported")
	}
	if ir == "" {
		if err := ss.reply("334 "); err != nil {
			return err
		}
		l, err := ss.readLine()
		if err != nil {
			return err
		}
		ir = l
	}
	raw, err := base64.StdEncoding.DecodeString(ir)
	if err != nil {
		return ss.reply("501 5.5.2 bad base64")
	}
	parts := strings.Split(string(raw), "\x00")
	if len(parts) != 3 || parts[1] != s.cfg.user || parts[2] != s.cfg.pass {
		return ss.reply("535 5.7.8 authentication credentials invalid")
	}
	ss.authed = parts[1]
	return ss.reply("235 2.7.0 authentication successful")
}

// pathArg parses "FROM:<addr> [params]" or "TO:<addr> [params]".
func pathArg(arg, prefix string) (string, bool) {
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

// readData reads DATA lines up to the lone ".", undoing dot-stuffing.
func readData(r *bufio.Reader) (received, error) {
	var b strings.Builder
	var msg received
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			return msg, err
		}
		if !strings.HasSuffix(l, "\r\n") {
			msg.bareLF = true
		}
		if l == ".\r\n" || l == ".\n" {
			msg.data = b.String()
			return msg, nil
		}
		if strings.HasPrefix(l, ".") {
			l = l[1:]
		}
		b.WriteString(l)
	}
}

// selfSigned makes a certificate for 127.0.0.1 and localhost, and a pool
// that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "sandcat test smtp"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
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
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

func (r received) String() string {
	return fmt.Sprintf("from=%s to=%v auth=%q tls=%v helo=%q %d bytes", r.from, r.to, r.authUser, r.tls, r.helo, len(r.data))
}
