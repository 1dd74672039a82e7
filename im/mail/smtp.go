package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"net/smtp"
	"os"
	"strings"
	"time"
)

// TLS modes of SMTPOptions.TLS.
const (
	TLSImplicit = "tls"      // TLS from the first byte (SMTPS, port 465), the original's mode
	TLSStart    = "starttls" // plain connect, then STARTTLS, required (port 587)
	TLSNone     = "none"     // no encryption (port 25); credentials only to a loopback server
)

// DefaultTimeout bounds one SendCode when SMTPOptions.Timeout is 0.
const DefaultTimeout = 30 * time.Second

//go:embed verify_code.html
var defaultTemplate string

// SMTPOptions configure an SMTP sender.
type SMTPOptions struct {
	// Server is "host:port"; without a port, 465 (tls), 587 (starttls) or 25 (none).
	Server string
	// TLS is TLSImplicit (default when empty), TLSStart or TLSNone.
	TLS string
	// Account and Password log in with AUTH PLAIN when Account is set.
	Account  string
	Password string
	// From is the sender address (optionally "Name <addr>"); default Account.
	From string
	// TemplatePath is an HTML file (Go html/template) for the body; fields
	// .Code (the code), .Numbers (its characters, one string each) and
	// .Email (the recipient). Empty: the embedded default.
	TemplatePath string
	// Timeout bounds one SendCode, from dial to QUIT (DefaultTimeout if 0);
	// the context's deadline applies too.
	Timeout time.Duration
	// TLSConfig is used for tls and starttls (cloned; ServerName defaults to
	// the server's host). Nil: system roots.
	TLSConfig *tls.Config
	// LocalName is the name sent in EHLO (default "localhost").
	LocalName string
}

// SMTP sends verification codes through an SMTP server. One SendCode is one
// connection; it is safe for concurrent use.
type SMTP struct {
	addr, host string
	mode       string
	account    string
	password   string
	from       netmail.Address
	tmpl       *template.Template
	timeout    time.Duration
	tlsConfig  *tls.Config
	localName  string
}

// NewSMTP checks the options and parses the template; it does not connect.
func NewSMTP(o SMTPOptions) (*SMTP, error) {
	s := &SMTP{mode: o.TLS, account: o.Account, password: o.Password, timeout: o.Timeout, localName: o.LocalName}
	if s.mode == "" {
		s.mode = TLSImplicit
	}
	defaultPort := map[string]string{TLSImplicit: "465", TLSStart: "587", TLSNone: "25"}[s.mode]
	if defaultPort == "" {
		return nil, fmt.Errorf("mail: TLS mode %q is not tls, starttls or none", o.TLS)
	}
	if o.Server == "" {
		return nil, errors.New("mail: no SMTP server")
	}
	host, port, err := net.SplitHostPort(o.Server)
	if err != nil {
		host, port = strings.Trim(o.Server, "[]"), defaultPort
	}
	if host == "" || strings.ContainsAny(host, " \r\n/") {
		return nil, fmt.Errorf("mail: bad SMTP server %q", o.Server)
	}
	s.host, s.addr = host, net.JoinHostPort(host, port)
	if s.mode == TLSNone && s.account != "" && !isLoopback(host) {
		return nil, fmt.Errorf("mail: refusing to send SMTP credentials without TLS to %s (use tls or starttls)", host)
	}

	from := o.From
	if from == "" {
		from = o.Account
	}
	if from == "" {
		return nil, errors.New("mail: no sender address (set From or Account)")
	}
	fa, err := netmail.ParseAddress(from)
	if err != nil || strings.ContainsAny(from, "\r\n") {
		return nil, fmt.Errorf("mail: bad sender address %q: %v", from, err)
	}
	s.from = *fa

	text, name := defaultTemplate, "verify_code.html"
	if o.TemplatePath != "" {
		b, err := os.ReadFile(o.TemplatePath)
		if err != nil {
			return nil, fmt.Errorf("mail: template: %w", err)
		}
		text, name = string(b), o.TemplatePath
	}
	s.tmpl, err = template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, fmt.Errorf("mail: template: %w", err)
	}
	// Render once so a template that cannot run fails at start, not per mail.
	if _, err := s.render("user@example.com", "123456"); err != nil {
		return nil, err
	}

	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.localName == "" {
		s.localName = "localhost"
	}
	if o.TLSConfig != nil {
		s.tlsConfig = o.TLSConfig.Clone()
	} else {
		s.tlsConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if s.tlsConfig.ServerName == "" {
		s.tlsConfig.ServerName = host
	}
	return s, nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	// net/smtp's PlainAuth allows exactly these without TLS.
	return ip != nil && (ip.Equal(net.IPv4(127, 0, 0, 1)) || ip.Equal(net.IPv6loopback))
}

type templateData struct {
	Code    string
	Numbers []string
	Email   string
}

func (s *SMTP) render(email, code string) ([]byte, error) {
	d := templateData{Code: code, Email: email}
	for _, r := range code {
		d.Numbers = append(d.Numbers, string(r))
	}
	var buf bytes.Buffer
	if err := s.tmpl.Execute(&buf, d); err != nil {
		return nil, fmt.Errorf("mail: template: %w", err)
	}
	return buf.Bytes(), nil
}

// SendCode mails code to email with subject Subject and the HTML template.
// It returns once the server accepted the message, or with the first error;
// the context's deadline and cancellation stop it.
func (s *SMTP) SendCode(ctx context.Context, email, code string) (err error) {
	to, err := ParseAddress(email)
	if err != nil {
		return err
	}
	body, err := s.render(to, code)
	if err != nil {
		return err
	}
	msg, err := s.message(to, body, time.Now())
	if err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	defer func() {
		if err != nil {
			if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
				err = fmt.Errorf("%w: %w", cerr, err)
			}
			err = fmt.Errorf("mail: send code to %s via %s: %w", to, s.addr, err)
		}
	}()

	conn, err := s.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	// When ctx ends (deadline or cancellation), any read or write in
	// progress fails at once; ctx.Err() is set by then, so the error says why.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello(s.localName); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if s.mode == TLSStart {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("server does not offer STARTTLS")
		}
		if err := c.StartTLS(s.tlsConfig); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if s.account != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return errors.New("server does not offer AUTH")
		}
		if err := c.Auth(smtp.PlainAuth("", s.account, s.password, s.host)); err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
	}
	if err := c.Mail(s.from.Address); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	// The message is accepted; a failing QUIT changes nothing.
	_ = c.Quit()
	return nil
}

func (s *SMTP) dial(ctx context.Context) (net.Conn, error) {
	nd := &net.Dialer{}
	if s.mode == TLSImplicit {
		td := &tls.Dialer{NetDialer: nd, Config: s.tlsConfig}
		conn, err := td.DialContext(ctx, "tcp", s.addr)
		if err != nil {
			return nil, fmt.Errorf("dial tls: %w", err)
		}
		return conn, nil
	}
	conn, err := nd.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return nil, fmt.Errorf("dial: %w", err)
	}
	return conn, nil
}

// message builds the RFC 5322 message: headers, then the HTML body in
// quoted-printable, lines ending in CRLF.
func (s *SMTP) message(to string, body []byte, now time.Time) ([]byte, error) {
	var b bytes.Buffer
	from := s.from.Address
	if s.from.Name != "" {
		from = s.from.String()
	}
	header := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	header("From", from)
	header("To", to)
	header("Subject", mime.QEncoding.Encode("UTF-8", Subject))
	header("Date", now.Format(time.RFC1123Z))
	header("Message-ID", messageID(s.from.Address, now))
	header("MIME-Version", "1.0")
	header("Content-Type", "text/html; charset=UTF-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write(body); err != nil {
		return nil, fmt.Errorf("mail: encode body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("mail: encode body: %w", err)
	}
	b.WriteString("\r\n")
	return b.Bytes(), nil
}

func messageID(from string, now time.Time) string {
	domain := "localhost"
	if i := strings.LastIndexByte(from, '@'); i >= 0 && i+1 < len(from) {
		domain = from[i+1:]
	}
	var r [12]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("<%d.%s@%s>", now.UnixNano(), hex.EncodeToString(r[:]), domain)
}
