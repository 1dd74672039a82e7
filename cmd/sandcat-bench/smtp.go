package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// smtpSink is a minimal SMTP server on loopback that takes the verification
// mails of POST /user/mail/send and keeps their codes by recipient. The
// server under test sends to it with mail.server = its address, mail.tls =
// none.
type smtpSink struct {
	ln    net.Listener
	mu    sync.Mutex
	codes map[string]string
	wait  map[string]chan struct{}
}

func startSMTPSink(addr string) (*smtpSink, error) {
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("smtp sink: %w", err)
	}
	if ip := ln.Addr().(*net.TCPAddr).IP; !ip.IsLoopback() {
		_ = ln.Close()
		return nil, fmt.Errorf("smtp sink: %s is not a loopback address", addr)
	}
	s := &smtpSink{ln: ln, codes: map[string]string{}, wait: map[string]chan struct{}{}}
	go s.serve()
	return s, nil
}

func (s *smtpSink) Addr() string { return s.ln.Addr().String() }
func (s *smtpSink) Close()       { _ = s.ln.Close() }

func (s *smtpSink) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		go s.session(c)
	}
}

func (s *smtpSink) session(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	r := bufio.NewReader(c)
	w := bufio.NewWriter(c)
	reply := func(line string) {
		_, _ = w.WriteString(line + "\r\n")
		_ = w.Flush()
	}
	reply("220 sandcat-bench SMTP sink")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.ToUpper(strings.TrimSpace(line))
		switch {
		case strings.HasPrefix(cmd, "EHLO"), strings.HasPrefix(cmd, "HELO"):
			reply("250 sandcat-bench")
		case strings.HasPrefix(cmd, "MAIL"), strings.HasPrefix(cmd, "RCPT"), strings.HasPrefix(cmd, "RSET"),
			strings.HasPrefix(cmd, "NOOP"):
			reply("250 ok")
		case strings.HasPrefix(cmd, "DATA"):
			reply("354 end with <CRLF>.<CRLF>")
			var msg strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" || l == ".\n" {
					break
				}
				msg.WriteString(strings.TrimPrefix(l, "."))
			}
			s.take(msg.String())
			reply("250 queued")
		case strings.HasPrefix(cmd, "QUIT"):
			reply("221 bye")
			return
		default:
			reply("502 not implemented")
		}
	}
}

// digitSpan matches one digit of the code in the default mail template
// (each digit in its own <span>), and codeText a bare 6-digit code.
var (
	digitSpan = regexp.MustCompile(`>(\d)</span>`)
	codeText  = regexp.MustCompile(`\b(\d{6})\b`)
)

func (s *smtpSink) take(raw string) {
	m, err := mail.ReadMessage(strings.NewReader(raw))
	if err != nil {
		return
	}
	to, err := mail.ParseAddress(m.Header.Get("To"))
	if err != nil {
		return
	}
	var body io.Reader = m.Body
	if strings.EqualFold(m.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	b, err := io.ReadAll(body)
	if err != nil {
		return
	}
	code := ""
	for _, d := range digitSpan.FindAllSubmatch(b, -1) {
		code += string(d[1])
	}
	if len(code) != 6 {
		if c := codeText.FindSubmatch(b); c != nil {
			code = string(c[1])
		}
	}
	if code == "" {
		return
	}
	email := strings.ToLower(to.Address)
	s.mu.Lock()
	s.codes[email] = code
	if ch := s.wait[email]; ch != nil {
		close(ch)
		delete(s.wait, email)
	}
	s.mu.Unlock()
}

// Code waits for the code mailed to email.
func (s *smtpSink) Code(ctx context.Context, email string) (string, error) {
	email = strings.ToLower(email)
	for {
		s.mu.Lock()
		if c, ok := s.codes[email]; ok {
			delete(s.codes, email)
			s.mu.Unlock()
			return c, nil
		}
		ch := s.wait[email]
		if ch == nil {
			ch = make(chan struct{})
			s.wait[email] = ch
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return "", fmt.Errorf("no verification mail for %s: %w", email, ctx.Err())
		}
	}
}

// logCodes reads verification codes from a Sandcat log: a server without a
// mail server logs each code at WARN with its e-mail address.
type logCodes struct {
	path  string
	mu    sync.Mutex
	off   int64
	codes map[string]string
}

var logCodeLine = regexp.MustCompile(`email=("?)([^\s"]+)"? code=("?)(\d{6})`)

func (l *logCodes) Code(ctx context.Context, email string) (string, error) {
	email = strings.ToLower(email)
	for {
		l.mu.Lock()
		if l.codes == nil {
			l.codes = map[string]string{}
		}
		if err := l.scan(); err != nil {
			l.mu.Unlock()
			return "", err
		}
		c, ok := l.codes[email]
		if ok {
			delete(l.codes, email)
		}
		l.mu.Unlock()
		if ok {
			return c, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no code for %s in %s: %w", email, l.path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (l *logCodes) scan() error {
	f, err := os.Open(l.path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := f.Seek(l.off, io.SeekStart); err != nil {
		return err
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return err
	}
	// Only whole lines.
	if i := strings.LastIndexByte(string(b), '\n'); i >= 0 {
		b = b[:i+1]
	} else {
		return nil
	}
	l.off += int64(len(b))
	for _, m := range logCodeLine.FindAllSubmatch(b, -1) {
		l.codes[strings.ToLower(string(m[2]))] = string(m[4])
	}
	return nil
}
