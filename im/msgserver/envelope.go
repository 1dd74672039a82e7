package msgserver

import (
	"errors"
	"fmt"

	"github.com/sandcat-im/sandcat/im/wire"
)

// Envelope versions. Version 1: the bincode Msg, then the bincode
// Vec<String> of explicit recipients; its origin is FromConnection (what
// every record meant before origins were recorded). Version 2: one origin
// byte, then the same as version 1.
const (
	envelopeV1 = 1
	envelopeV2 = 2
)

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
	dst = append(dst, envelopeV2, byte(origin))
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
	n := 2 + m.BincodeSize() + 8
	for _, s := range to {
		n += 8 + len(s)
	}
	return AppendEnvelope(make([]byte, 0, n), m, to, origin)
}

// DecodeEnvelope decodes a bus record made by EncodeEnvelope; see
// DecodeEnvelopeFrom for the origin.
func DecodeEnvelope(b []byte) (wire.Msg, []string, error) {
	m, to, _, err := DecodeEnvelopeFrom(b)
	return m, to, err
}

// DecodeEnvelopeFrom decodes a bus record of either version, with its
// origin. The result does not alias b.
func DecodeEnvelopeFrom(b []byte) (wire.Msg, []string, Origin, error) {
	origin := FromConnection
	switch {
	case len(b) >= 1 && b[0] == envelopeV1:
		b = b[1:]
	case len(b) >= 2 && b[0] == envelopeV2:
		origin = Origin(b[1])
		if origin != FromConnection && origin != FromServer {
			return wire.Msg{}, nil, 0, fmt.Errorf("%w: unknown origin %d", ErrEnvelope, b[1])
		}
		b = b[2:]
	default:
		return wire.Msg{}, nil, 0, fmt.Errorf("%w: unknown version", ErrEnvelope)
	}
	m, err := wire.DecodeMsg(b)
	if err != nil {
		return wire.Msg{}, nil, 0, fmt.Errorf("%w: %w", ErrEnvelope, err)
	}
	rest := b[m.BincodeSize():]
	to, err := wire.DecodeStrings(rest)
	if err != nil {
		return wire.Msg{}, nil, 0, fmt.Errorf("%w: recipients: %w", ErrEnvelope, err)
	}
	if len(to) == 0 {
		to = nil
	}
	return m, to, origin, nil
}
