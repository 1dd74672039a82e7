package msgserver

import (
	"errors"
	"fmt"

	"github.com/sandcat-im/sandcat/im/wire"
)

// envelopeV1 starts a version-1 envelope: the bincode Msg, then the bincode
// Vec<String> of explicit recipients.
const envelopeV1 = 1

// ErrEnvelope is wrapped by every envelope decoding error.
var ErrEnvelope = errors.New("msgserver: bad envelope")

// AppendEnvelope appends the bus record of m and its explicit recipients to dst.
func AppendEnvelope(dst []byte, m *wire.Msg, to []string) []byte {
	dst = append(dst, envelopeV1)
	dst = wire.AppendMsg(dst, m)
	return wire.AppendStrings(dst, to)
}

// EncodeEnvelope returns the bus record of m and its explicit recipients.
func EncodeEnvelope(m *wire.Msg, to []string) []byte {
	n := 1 + m.BincodeSize() + 8
	for _, s := range to {
		n += 8 + len(s)
	}
	return AppendEnvelope(make([]byte, 0, n), m, to)
}

// DecodeEnvelope decodes a bus record made by EncodeEnvelope. The result does
// not alias b.
func DecodeEnvelope(b []byte) (wire.Msg, []string, error) {
	if len(b) == 0 || b[0] != envelopeV1 {
		return wire.Msg{}, nil, fmt.Errorf("%w: unknown version", ErrEnvelope)
	}
	m, err := wire.DecodeMsg(b[1:])
	if err != nil {
		return wire.Msg{}, nil, fmt.Errorf("%w: %w", ErrEnvelope, err)
	}
	rest := b[1+m.BincodeSize():]
	to, err := wire.DecodeStrings(rest)
	if err != nil {
		return wire.Msg{}, nil, fmt.Errorf("%w: recipients: %w", ErrEnvelope, err)
	}
	if len(to) == 0 {
		to = nil
	}
	return m, to, nil
}
