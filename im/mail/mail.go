// Package mail sends the e-mail verification codes of POST /user/mail/send
// (sandcat-wire.md §2.1): an SMTP sender for real deployments, and a log
// sender for the embedded default with no mail server, which writes the code
// to the log instead.
package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	netmail "net/mail"
	"strings"
)

// Subject is the subject of every verification mail, as the original sent it.
const Subject = "Verify Login Code"

// ErrInvalidAddress is wrapped by SendCode errors for a recipient that is not
// a single plain e-mail address (callers answer 400 for it).
var ErrInvalidAddress = errors.New("mail: invalid e-mail address")

// ParseAddress checks that email is one plain address ("user@example.com",
// no display name, no line breaks) and returns it trimmed. Errors wrap
// ErrInvalidAddress.
func ParseAddress(email string) (string, error) {
	e := strings.TrimSpace(email)
	if e == "" || strings.ContainsAny(e, "\r\n\x00<>") {
		return "", fmt.Errorf("%w: %q", ErrInvalidAddress, email)
	}
	a, err := netmail.ParseAddress(e)
	if err != nil || a.Name != "" || a.Address != e {
		return "", fmt.Errorf("%w: %q", ErrInvalidAddress, email)
	}
	return a.Address, nil
}

// Log is the sender of the embedded default: it logs the code at WARN on one
// line (attributes email and code) and sends nothing.
type Log struct {
	log *slog.Logger
}

// NewLog returns a Log sender writing to log (slog.Default() if nil).
func NewLog(log *slog.Logger) *Log {
	if log == nil {
		log = slog.Default()
	}
	return &Log{log: log}
}

// SendCode logs the code for email and returns nil; an address that
// ParseAddress refuses is an error, as with the SMTP sender.
func (l *Log) SendCode(ctx context.Context, email, code string) error {
	addr, err := ParseAddress(email)
	if err != nil {
		return err
	}
	l.log.WarnContext(ctx, "no mail server configured: verification code logged, not sent",
		slog.String("email", addr), slog.String("code", code))
	return nil
}
