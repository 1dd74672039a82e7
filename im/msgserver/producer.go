package msgserver

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sandcat-im/sandcat/im/bus"
	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/wire"
)

// SendSeqs allocates send seqs (im/seq's Allocator satisfies it).
type SendSeqs interface {
	NextSend(ctx context.Context, userID string) (int64, error)
}

// ErrInvalidMsg is wrapped by Send for a message the pipeline cannot take
// (unknown msg_type, MsgRecResp, missing receiver).
var ErrInvalidMsg = errors.New("msgserver: invalid message")

// Producer puts messages on the bus: the one way into the pipeline for the
// gateway (client frames) and the API (friend and group notices).
type Producer struct {
	pub  bus.Publisher
	seqs SendSeqs
	now  func() time.Time
}

// NewProducer returns a Producer publishing on pub and allocating send seqs
// from seqs.
func NewProducer(pub bus.Publisher, seqs SendSeqs) *Producer {
	return &Producer{pub: pub, seqs: seqs, now: time.Now}
}

// Send is the way in of a frame a client sent on a WebSocket connection
// (the gateway): SendFrom with FromConnection.
func (p *Producer) Send(ctx context.Context, m *wire.Msg, to []string) error {
	return p.SendFrom(ctx, m, to, FromConnection)
}

// SendFrom assigns m.ServerID (a new nanoid, except for the *Received types that
// name the message they acknowledge), m.SendTime (now, ms) and m.SendSeq (the
// sender's next send seq when the type consumes one, else 0), clears m.Seq,
// publishes {m, to, origin} keyed by conversation, and returns once it is
// durable. The origin decides which of the sender's connections get the echo
// (see Origin).
//
// to, when not empty, replaces the group's member list as the recipients of
// a group type (e.g. members just removed from the group, who are no longer
// in the store); it is ignored for single types.
func (p *Producer) SendFrom(ctx context.Context, m *wire.Msg, to []string, origin Origin) error {
	return p.send(ctx, m, to, origin, "")
}

// SendKeyed is SendFrom for a message with an idempotency key (e.g. the
// Matrix event a bridged message comes from): its server_id is derived from
// the key (ids.FromKey), and the consumer stores it only if no copy of that
// server_id is stored yet. A sender that retries after a crash (not knowing
// whether its first Send was durable) sends again with the same key: the
// message is stored once, and pushed again with its first seqs.
func (p *Producer) SendKeyed(ctx context.Context, m *wire.Msg, to []string, origin Origin, key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty idempotency key", ErrInvalidMsg)
	}
	return p.send(ctx, m, to, origin, key)
}

func (p *Producer) send(ctx context.Context, m *wire.Msg, to []string, origin Origin, key string) error {
	c := Classify(m.MsgType)
	if !c.Valid {
		return fmt.Errorf("%w: msg_type %d", ErrInvalidMsg, m.MsgType)
	}
	if m.ReceiverID == "" && !c.MarkRead {
		return fmt.Errorf("%w: %s without receiver_id", ErrInvalidMsg, m.MsgType)
	}
	if c.DeleteInbox && m.ServerID == "" {
		return fmt.Errorf("%w: %s without server_id", ErrInvalidMsg, m.MsgType)
	}
	var flags byte
	switch {
	case c.NewServerID && key != "":
		m.ServerID = ids.FromKey(key)
		flags = flagKeyed
	case c.NewServerID:
		m.ServerID = ids.New()
	}
	m.SendTime = p.now().UnixMilli()
	m.Seq = 0
	m.SendSeq = 0
	if c.SendSeq && m.SendID != "" {
		s, err := p.seqs.NextSend(ctx, m.SendID)
		if err != nil {
			return fmt.Errorf("msgserver: send seq of %s: %w", m.SendID, err)
		}
		m.SendSeq = s
	}
	if !c.Group {
		to = nil
	}
	if err := p.pub.Publish(ctx, ConversationKey(m), encodeEnvelope(m, to, origin, flags)); err != nil {
		return fmt.Errorf("msgserver: publish: %w", err)
	}
	return nil
}

// Notices is the Sender of the API (friend and group notices): SendFrom
// with FromServer, so every device of the acting user gets the echo.
func (p *Producer) Notices() NoticeSender { return NoticeSender{p: p} }

// NoticeSender is Producer.SendFrom with FromServer.
type NoticeSender struct{ p *Producer }

// Send is Producer.SendFrom(ctx, m, to, FromServer).
func (s NoticeSender) Send(ctx context.Context, m *wire.Msg, to []string) error {
	return s.p.SendFrom(ctx, m, to, FromServer)
}

// SendKeyed is Producer.SendKeyed(ctx, m, to, FromServer, key).
func (s NoticeSender) SendKeyed(ctx context.Context, m *wire.Msg, to []string, key string) error {
	return s.p.SendKeyed(ctx, m, to, FromServer, key)
}

// Sender adapts the Producer to a one-argument Sender contract
// (Send(ctx, m) error) for server-side messages: recipients come from the
// message alone, the origin is FromServer.
func (p *Producer) Sender() MsgSender { return MsgSender{p: p} }

// MsgSender is Producer.SendFrom without explicit recipients, FromServer.
type MsgSender struct{ p *Producer }

// Send is Producer.SendFrom(ctx, m, nil, FromServer).
func (s MsgSender) Send(ctx context.Context, m *wire.Msg) error {
	return s.p.SendFrom(ctx, m, nil, FromServer)
}
