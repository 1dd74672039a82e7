package mail

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"mime/quotedprintable"
	netmail "net/mail"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

const (
	user = "noreply@sandcat.test"
	pass = "s3cret pass"
	rcpt = "alice@example.org"
	code = "493027"
)

func TestSendCode(t *testing.T) {
	cert, pool := selfSigned(t)
	trust := &tls.Config{RootCAs: pool}
	tests := []struct {
		name     string
		server   serverConfig
		opts     SMTPOptions
		wantTLS  bool
		wantAuth string
	}{
		{
			name:    "implicit tls with auth",
			server:  serverConfig{implicitTLS: true, user: user, pass: pass},
			opts:    SMTPOptions{TLS: TLSImplicit, Account: user, Password: pass},
			wantTLS: true, wantAuth: user,
		},
		{
			name:    "implicit tls is the default mode",
			server:  serverConfig{implicitTLS: true},
			opts:    SMTPOptions{From: user},
			wantTLS: true,
		},
		{
			name:    "starttls with auth",
			server:  serverConfig{offerStartTLS: true, user: user, pass: pass},
			opts:    SMTPOptions{TLS: TLSStart, Account: user, Password: pass, From: "SandCat <hello@sandcat.test>"},
			wantTLS: true, wantAuth: user,
		},
		{
			name:    "starttls without auth",
			server:  serverConfig{offerStartTLS: true},
			opts:    SMTPOptions{TLS: TLSStart, From: user},
			wantTLS: true,
		},
		{
			name:   "no tls, no auth",
			server: serverConfig{},
			opts:   SMTPOptions{TLS: TLSNone, From: user},
		},
		{
			name:     "no tls, auth to loopback",
			server:   serverConfig{user: user, pass: pass},
			opts:     SMTPOptions{TLS: TLSNone, Account: user, Password: pass},
			wantAuth: user,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.server.cert = cert
			srv := startServer(t, tc.server)
			tc.opts.Server = srv.addr
			tc.opts.TLSConfig = trust
			tc.opts.LocalName = "sandcat.test"
			s, err := NewSMTP(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.SendCode(context.Background(), rcpt, code); err != nil {
				t.Fatal(err)
			}
			msgs := srv.messages()
			if len(msgs) != 1 {
				t.Fatalf("server got %d messages, want 1", len(msgs))
			}
			m := msgs[0]
			if m.tls != tc.wantTLS || m.authUser != tc.wantAuth || m.helo != "sandcat.test" {
				t.Fatalf("session %v, want tls=%v auth=%q", m, tc.wantTLS, tc.wantAuth)
			}
			wantFrom := tc.opts.From
			if wantFrom == "" {
				wantFrom = tc.opts.Account
			}
			if a, _ := netmail.ParseAddress(wantFrom); m.from != a.Address {
				t.Fatalf("MAIL FROM %q, want %q", m.from, a.Address)
			}
			if len(m.to) != 1 || m.to[0] != rcpt {
				t.Fatalf("RCPT TO %v", m.to)
			}
			if tc.wantAuth == "" {
				for _, c := range srv.commands() {
					if c == "AUTH" {
						t.Fatal("AUTH sent without an account")
					}
				}
			}
			checkMessage(t, m, code)
		})
	}
}

var messageIDRe = regexp.MustCompile(`^<[^<>@\s]+@[^<>@\s]+>$`)

// checkMessage parses a received message and checks headers and body.
func checkMessage(t *testing.T, m received, code string) string {
	t.Helper()
	if m.bareLF {
		t.Error("message has lines not ending in CRLF")
	}
	for _, l := range strings.Split(m.data, "\r\n") {
		if len(l) > 998 {
			t.Errorf("line of %d characters", len(l))
		}
	}
	for _, h := range []string{"\r\nSubject: Verify Login Code\r\n", "\r\nTo: " + rcpt + "\r\n", "\r\nMIME-Version: 1.0\r\n"} {
		if !strings.Contains("\r\n"+m.data, h) {
			t.Errorf("raw message lacks %q", h)
		}
	}
	msg, err := netmail.ReadMessage(strings.NewReader(m.data))
	if err != nil {
		t.Fatalf("parse message: %v", err)
	}
	h := msg.Header
	if h.Get("Subject") != Subject {
		t.Errorf("Subject %q", h.Get("Subject"))
	}
	if d, err := h.Date(); err != nil || time.Since(d) > time.Hour || time.Until(d) > time.Hour {
		t.Errorf("Date %q: %v", h.Get("Date"), err)
	}
	if !messageIDRe.MatchString(h.Get("Message-ID")) {
		t.Errorf("Message-ID %q", h.Get("Message-ID"))
	}
	if _, err := netmail.ParseAddress(h.Get("From")); err != nil {
		t.Errorf("From %q: %v", h.Get("From"), err)
	}
	if h.Get("Content-Type") != "text/html; charset=UTF-8" || h.Get("Content-Transfer-Encoding") != "quoted-printable" {
		t.Errorf("Content-Type %q, encoding %q", h.Get("Content-Type"), h.Get("Content-Transfer-Encoding"))
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatalf("decode body: %v", err)
	}
	if !bytes.Contains(body, []byte(code)) && !digitsInOrder(string(body), code) {
		t.Errorf("body does not carry the code %s:\n%s", code, body)
	}
	return string(body)
}

// digitsInOrder reports whether the code's characters appear, in order, each
// in its own element (the default template shows one box per digit).
func digitsInOrder(body, code string) bool {
	i := 0
	for _, r := range code {
		j := strings.Index(body[i:], ">"+string(r)+"<")
		if j < 0 {
			return false
		}
		i += j + 1
	}
	return true
}

func TestDefaultTemplateShowsEachDigit(t *testing.T) {
	srv := startServer(t, serverConfig{})
	s, err := NewSMTP(SMTPOptions{Server: srv.addr, TLS: TLSNone, From: user})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendCode(context.Background(), rcpt, "102938"); err != nil {
		t.Fatal(err)
	}
	msgs := srv.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	body := checkMessage(t, msgs[0], "102938")
	if !digitsInOrder(body, "102938") || !strings.Contains(body, rcpt) {
		t.Fatalf("default template body:\n%s", body)
	}
}

func TestCustomTemplate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "email_temp.html")
	tmpl := `<html><body><p>Code for {{.Email}}: <b>{{.Code}}</b></p>` +
		`<p>{{range .Numbers}}[{{.}}]{{end}}</p>` +
		"\n.\n.starts with a dot\n" + strings.Repeat("a long line of text ", 100) + `</body></html>`
	if err := os.WriteFile(path, []byte(tmpl), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := startServer(t, serverConfig{})
	s, err := NewSMTP(SMTPOptions{Server: srv.addr, TLS: TLSNone, From: user, TemplatePath: path})
	if err != nil {
		t.Fatal(err)
	}
	// A recipient address with characters HTML must escape.
	to := "o'brien+x@example.org"
	if err := s.SendCode(context.Background(), to, "654321"); err != nil {
		t.Fatal(err)
	}
	msgs := srv.messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	msg, err := netmail.ReadMessage(strings.NewReader(msgs[0].data))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(quotedprintable.NewReader(msg.Body))
	// Lines "." and ".starts..." survive (dot-stuffing on the wire).
	for _, want := range []string{"\r\n.\r\n.starts with a dot\r\n", "<b>654321</b>", "[6][5][4][3][2][1]", "o&#39;brien&#43;x@example.org"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	for _, l := range strings.Split(msgs[0].data, "\r\n") {
		if len(l) > 998 {
			t.Fatalf("line of %d characters", len(l))
		}
	}
}

func TestSendCodeFailures(t *testing.T) {
	cert, pool := selfSigned(t)
	trust := &tls.Config{RootCAs: pool}
	tests := []struct {
		name   string
		server serverConfig
		opts   SMTPOptions
		want   string // part of the error text
	}{
		{
			name:   "server refuses the connection",
			server: serverConfig{greeting: "554 5.3.2 no service for you"},
			opts:   SMTPOptions{TLS: TLSNone, From: user},
			want:   "554",
		},
		{
			name:   "wrong password",
			server: serverConfig{implicitTLS: true, user: user, pass: pass},
			opts:   SMTPOptions{Account: user, Password: "wrong", TLSConfig: trust},
			want:   "535",
		},
		{
			name:   "server without AUTH",
			server: serverConfig{implicitTLS: true},
			opts:   SMTPOptions{Account: user, Password: pass, TLSConfig: trust},
			want:   "does not offer AUTH",
		},
		{
			name:   "server demands auth we do not have",
			server: serverConfig{implicitTLS: true, user: user, pass: pass},
			opts:   SMTPOptions{From: user, TLSConfig: trust},
			want:   "530",
		},
		{
			name:   "starttls not offered: no downgrade",
			server: serverConfig{user: user, pass: pass},
			opts:   SMTPOptions{TLS: TLSStart, Account: user, Password: pass, TLSConfig: trust},
			want:   "does not offer STARTTLS",
		},
		{
			name:   "recipient rejected",
			server: serverConfig{},
			opts:   SMTPOptions{TLS: TLSNone, From: user},
			want:   "550",
		},
		{
			name:   "tls to a plain server",
			server: serverConfig{},
			opts:   SMTPOptions{TLS: TLSImplicit, From: user, TLSConfig: trust},
			want:   "tls",
		},
		{
			name:   "untrusted certificate",
			server: serverConfig{implicitTLS: true},
			opts:   SMTPOptions{From: user, TLSConfig: &tls.Config{RootCAs: nil, ServerName: "127.0.0.1"}},
			want:   "certificate",
		},
		{
			name:   "starttls with an untrusted certificate",
			server: serverConfig{offerStartTLS: true},
			opts:   SMTPOptions{TLS: TLSStart, From: user},
			want:   "certificate",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.server.cert = cert
			if tc.name == "recipient rejected" {
				tc.server.rejectRcpt = true
			}
			srv := startServer(t, tc.server)
			tc.opts.Server = srv.addr
			s, err := NewSMTP(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			err = s.SendCode(context.Background(), rcpt, code)
			if err == nil {
				t.Fatal("SendCode succeeded")
			}
			if !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tc.want)) {
				t.Fatalf("error %q lacks %q", err, tc.want)
			}
			if n := len(srv.messages()); n != 0 {
				t.Fatalf("server accepted %d messages", n)
			}
		})
	}
}

func TestSendCodeDeadlines(t *testing.T) {
	srv := startServer(t, serverConfig{silent: true})

	t.Run("context deadline", func(t *testing.T) {
		s, err := NewSMTP(SMTPOptions{Server: srv.addr, TLS: TLSNone, From: user})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		if err := s.SendCode(ctx, rcpt, code); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("Timeout option", func(t *testing.T) {
		s, err := NewSMTP(SMTPOptions{Server: srv.addr, TLS: TLSNone, From: user, Timeout: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.SendCode(context.Background(), rcpt, code); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("cancelled while waiting", func(t *testing.T) {
		s, err := NewSMTP(SMTPOptions{Server: srv.addr, TLS: TLSNone, From: user})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(100*time.Millisecond, cancel)
		if err := s.SendCode(ctx, rcpt, code); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
}

func TestInvalidRecipients(t *testing.T) {
	srv := startServer(t, serverConfig{})
	s, err := NewSMTP(SMTPOptions{Server: srv.addr, TLS: TLSNone, From: user})
	if err != nil {
		t.Fatal(err)
	}
	l := NewLog(slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, to := range []string{"", "   ", "not an address", "a@b\r\nBcc: x@y.z", "Alice <alice@example.org>", "a@b.c, d@e.f", "x@y\x00z"} {
		if err := s.SendCode(context.Background(), to, code); !errors.Is(err, ErrInvalidAddress) {
			t.Errorf("SMTP SendCode(%q) = %v, want ErrInvalidAddress", to, err)
		}
		if err := l.SendCode(context.Background(), to, code); !errors.Is(err, ErrInvalidAddress) {
			t.Errorf("Log SendCode(%q) = %v, want ErrInvalidAddress", to, err)
		}
	}
	if n := len(srv.messages()); n != 0 {
		t.Fatalf("%d messages sent", n)
	}
	if got, err := ParseAddress("  bob@example.org "); err != nil || got != "bob@example.org" {
		t.Fatalf("ParseAddress = %q, %v", got, err)
	}
}

func TestNewSMTPOptions(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.html")
	if err := os.WriteFile(bad, []byte("{{.Code"), 0o600); err != nil {
		t.Fatal(err)
	}
	unknownField := filepath.Join(dir, "field.html")
	if err := os.WriteFile(unknownField, []byte("{{.Nope}}"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    SMTPOptions
		addr string // want s.addr when ok
	}{
		{"tls default port", SMTPOptions{Server: "smtp.example.org", From: user}, "smtp.example.org:465"},
		{"starttls default port", SMTPOptions{Server: "smtp.example.org", TLS: TLSStart, From: user}, "smtp.example.org:587"},
		{"none default port", SMTPOptions{Server: "localhost", TLS: TLSNone, From: user}, "localhost:25"},
		{"explicit port", SMTPOptions{Server: "smtp.example.org:2525", Account: user}, "smtp.example.org:2525"},
		{"ipv6", SMTPOptions{Server: "[::1]:2525", TLS: TLSNone, Account: user, Password: "p"}, "[::1]:2525"},
		{"no server", SMTPOptions{From: user}, ""},
		{"bad mode", SMTPOptions{Server: "smtp.example.org", TLS: "ssl", From: user}, ""},
		{"no sender", SMTPOptions{Server: "smtp.example.org"}, ""},
		{"bad sender", SMTPOptions{Server: "smtp.example.org", From: "not an address"}, ""},
		{"credentials in clear to a remote host", SMTPOptions{Server: "smtp.example.org", TLS: TLSNone, Account: user, Password: "p"}, ""},
		{"missing template", SMTPOptions{Server: "smtp.example.org", From: user, TemplatePath: filepath.Join(dir, "none.html")}, ""},
		{"unparsable template", SMTPOptions{Server: "smtp.example.org", From: user, TemplatePath: bad}, ""},
		{"template with an unknown field", SMTPOptions{Server: "smtp.example.org", From: user, TemplatePath: unknownField}, ""},
	}
	for _, tc := range tests {
		s, err := NewSMTP(tc.o)
		if (err == nil) != (tc.addr != "") {
			t.Errorf("%s: err = %v", tc.name, err)
			continue
		}
		if err == nil && s.addr != tc.addr {
			t.Errorf("%s: addr %q, want %q", tc.name, s.addr, tc.addr)
		}
	}
}

func TestLogSender(t *testing.T) {
	var buf bytes.Buffer
	l := NewLog(slog.New(slog.NewTextHandler(&buf, nil)))
	if err := l.SendCode(context.Background(), rcpt, code); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d log lines:\n%s", len(lines), out)
	}
	for _, want := range []string{"level=WARN", "email=" + rcpt, "code=" + code} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("log line %q lacks %q", lines[0], want)
		}
	}
}
