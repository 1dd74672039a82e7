package msgserver

import (
	"errors"
	"fmt"

	"github.com/sandcat-im/sandcat/im/wire"
)

// Envelope versions. Version 1: the bincode Msg, then the bincode
// Vec<String> of explicit recipients; its origin is FromConnection (what
// every record meant before origins were recorded). Version 2: one origin
// byte, then the same as version 1. Version 3: one origin byte, one flags
// byte (flagKeyed), then the same as version 1; written only when a flag is
// set, so records without flags stay readable by older binaries.
const (
	envelopeV1 = 1
	envelopeV2 = 2
	envelopeV3 = 3
)

// flagKeyed marks a message whose server_id was derived from an idempotency
// key (Producer.SendKeyed): the same message may have been published before.
const flagKeyed = 1

// Envelope is a decoded bus record.
type Envelope struct {
	Msg    wire.Msg
	To     []string // explicit recipients (nil: the group's members)
	Origin Origin
	// Keyed: the server_id was derived from an idempotency key, so a copy of
	// this message may already be stored (a sender retrying after a crash):
	// the consumer checks before storing it again.
	Keyed bool
}

// Origin is where a message entered the pipeline. It decides who gets the
// copy for the sender's own devices (the echo).
type Origin uint8

const (
	// FromConnection: a frame a client sent on a WebSocket connection. That
	// connection gets the ACK, so the echo skips the sender's connection on
	// Msg.Platform (the gateway sets Platform to the connection's).
	FromConnection Origin = 0
	// FromServer: a notice the API emitted (friend and group notices). No
	// connection of the sender sent it: every connection of the sender gets
	// the echo, whatever Msg.Platform says.
	FromServer Origin = 1
)

// ErrEnvelope is wrapped by every envelope decoding error.
var ErrEnvelope = errors.New("msgserver: bad envelope")

// AppendEnvelope appends the bus record of m, its explicit recipients and
// its origin to dst.
func AppendEnvelope(dst []byte, m *wire.Msg, to []string, origin Origin) []byte {
	return appendEnvelope(dst, m, to, origin, 0)
}

func appendEnvelope(dst []byte, m *wire.Msg, to []string, origin Origin, flags byte) []byte {
	if flags == 0 {
		dst = append(dst, envelopeV2, byte(origin))
	} else {
		dst = append(dst, envelopeV3, byte(origin), flags)
	}
	dst = wire.AppendMsg(dst, m)
	return wire.AppendStrings(dst, to)
}

// EncodeEnvelope returns the bus record of a message from a client
// connection (FromConnection) and its explicit recipients.
func EncodeEnvelope(m *wire.Msg, to []string) []byte {
	return EncodeEnvelopeFrom(m, to, FromConnection)
}

// EncodeEnvelopeFrom returns the bus record of m, its explicit recipients
// and its origin.
func EncodeEnvelopeFrom(m *wire.Msg, to []string, origin Origin) []byte {
	return encodeEnvelope(m, to, origin, 0)
}

func encodeEnvelope(m *wire.Msg, to []string, origin Origin, flags byte) []byte {
	n := 3 + m.BincodeSize() + 8
	for _, s := range to {
		n += 8 + len(s)
	}
	return appendEnvelope(make([]byte, 0, n), m, to, origin, flags)
}

// DecodeEnvelope decodes a bus record made by EncodeEnvelope; see
// DecodeEnvelopeFrom for the origin.
func DecodeEnvelope(b []byte) (wire.Msg, []string, error) {
	m, to, _, err := DecodeEnvelopeFrom(b)
	return m, to, err
}

// DecodeEnvelopeFrom decodes a bus record of any version, with its
// origin. The result does not alias b.
func DecodeEnvelopeFrom(b []byte) (wire.Msg, []string, Origin, error) {
	e, err := DecodeRecord(b)
	return e.Msg, e.To, e.Origin, err
}

// DecodeRecord decodes a bus record of any version. The result does not
// alias b.
func DecodeRecord(b []byte) (Envelope, error) {
	var e Envelope
	switch {
	case len(b) >= 1 && b[0] == envelopeV1:
		b = b[1:]
	case len(b) >= 2 && b[0] == envelopeV2:
		e.Origin = Origin(b[1])
		b = b[2:]
	case len(b) >= 3 && b[0] == envelopeV3:
		e.Origin = Origin(b[1])
		if b[2]&^flagKeyed != 0 {
			return Envelope{}, fmt.Errorf("%w: unknown flags %#x", ErrEnvelope, b[2])
		}
		e.Keyed = b[2]&flagKeyed != 0
		b = b[3:]
	default:
		return Envelope{}, fmt.Errorf("%w: unknown version", ErrEnvelope)
	}
	if e.Origin != FromConnection && e.Origin != FromServer {
		return Envelope{}, fmt.Errorf("%w: unknown origin %d", ErrEnvelope, e.Origin)
	}
	m, err := wire.DecodeMsg(b)
	if err != nil {
		return Envelope{}, fmt.Errorf("%w: %w", ErrEnvelope, err)
	}
	rest := b[m.BincodeSize():]
	to, err := wire.DecodeStrings(rest)
	if err != nil {
		return Envelope{}, fmt.Errorf("%w: recipients: %w", ErrEnvelope, err)
	}
	if len(to) == 0 {
		to = nil
	}
	e.Msg, e.To = m, to
	return e, nil
}
