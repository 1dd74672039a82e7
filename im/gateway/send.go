package gateway

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/gorilla/websocket"
	"github.com/sandcat-im/sandcat/im/msgserver"
	"github.com/sandcat-im/sandcat/im/wire"
)

// refusal is a send-path rejection whose text goes back in the Error ACK.
type refusal struct{ reason string }

func (r *refusal) Error() string { return r.reason }

func refuse(format string, args ...any) error { return &refusal{fmt.Sprintf(format, args...)} }

// handleFrame decodes one client frame and runs the send path for it. It runs
// on the connection's reader goroutine: frames of one connection are handled
// in order, frames of different connections concurrently.
func (g *Gateway) handleFrame(c *conn, typ int, data []byte) {
	g.stats.framesIn.Add(1)
	var (
		m   wire.Msg
		err error
	)
	switch typ {
	case websocket.BinaryMessage:
		m, err = wire.DecodeMsg(data)
	case websocket.TextMessage:
		m, err = wire.DecodeJSONMsg(data)
	default:
		return
	}
	if err != nil {
		g.stats.decodeErrors.Add(1)
		g.log.Debug("gateway: undecodable frame skipped", "user", c.user, "bytes", len(data), "err", err)
		if localID := peekLocalID(typ, data); localID != "" {
			ack := wire.Msg{SendID: c.user, LocalID: localID, MsgType: wire.MsgTypeMsgRecResp,
				ContentType: wire.ContentError, Content: []byte("malformed frame"), Platform: c.platform}
			g.writeMsg(c, &ack)
		}
		return
	}
	g.handleMsg(c, &m)
}

// handleMsg is the send path of one decoded frame.
func (g *Gateway) handleMsg(c *conn, m *wire.Msg) {
	ctx, cancel := context.WithTimeout(g.base, g.cfg.SendTimeout)
	defer cancel()
	if err := g.check(ctx, c, m); err != nil {
		var r *refusal
		if errors.As(err, &r) {
			g.stats.refused.Add(1)
			g.log.Info("gateway: frame refused", "user", c.user, "msg_type", int32(m.MsgType), "reason", r.reason)
			g.errorAck(c, m, r.reason)
			return
		}
		g.stats.sendErrors.Add(1)
		g.log.Error("gateway: send check failed", "user", c.user, "msg_type", int32(m.MsgType), "err", err)
		g.errorAck(c, m, "internal error")
		return
	}
	// A stored message sent again under the same local_id (the client
	// retrying): the first send's ACK (once it is durable), nothing stored
	// twice.
	var key string
	if cl := msgserver.Classify(m.MsgType); cl.Inbox && cl.NewServerID && m.LocalID != "" {
		key = sendKey(c.user, m.LocalID)
		if !g.recent.begin(key) {
			g.stats.resends.Add(1)
			g.answerResend(ctx, c, m, key)
			return
		}
	}
	if err := g.cfg.Sender.Send(ctx, m, nil); err != nil {
		if key != "" {
			g.recent.end(key, false, "", 0, 0)
		}
		g.stats.sendErrors.Add(1)
		reason := "send failed"
		if errors.Is(err, msgserver.ErrInvalidMsg) {
			reason = err.Error()
		}
		g.log.Error("gateway: send failed", "user", c.user, "msg_type", int32(m.MsgType), "err", err)
		g.errorAck(c, m, reason)
		return
	}
	// Durable: ACK the sending connection only.
	ack := ackOf(m)
	if key != "" {
		g.recent.end(key, true, m.ServerID, m.SendTime, m.SendSeq)
	}
	g.stats.acks.Add(1)
	g.writeMsg(c, &ack)
}

// answerResend answers a frame sent again under a local_id already sent:
// the ACK of the first send once it is durable, or an Error ACK when it
// failed or is still running when ctx ends (the client may retry).
func (g *Gateway) answerResend(ctx context.Context, c *conn, m *wire.Msg, key string) {
	first, ok := g.recent.wait(ctx, key)
	if !ok {
		g.errorAck(c, m, "send failed")
		return
	}
	ack := ackOf(m)
	ack.Seq = 0 // as the producer clears it on the first send
	ack.ServerID, ack.SendTime, ack.SendSeq = first.serverID, first.sendTime, first.sendSeq
	g.writeMsg(c, &ack)
}

// ackOf is the ACK (MsgRecResp) of a message that entered the pipeline: the
// message with its server fields, without its content.
func ackOf(m *wire.Msg) wire.Msg {
	ack := *m
	ack.MsgType = wire.MsgTypeMsgRecResp
	ack.Content = nil
	return ack
}

// check validates a frame before it enters the pipeline: a refusal, or an
// error when a lookup failed. It normalizes m.Platform to the connection's
// platform (the pusher identifies the originating device by it) and fills the
// group ids of group types.
func (g *Gateway) check(ctx context.Context, c *conn, m *wire.Msg) error {
	cl := msgserver.Classify(m.MsgType)
	if !cl.Valid || !cl.FromClient {
		return refuse("msg_type %d is not accepted from a client", int32(m.MsgType))
	}
	if m.SendID != c.user {
		return refuse("send_id does not match the connection's user")
	}
	m.Platform = c.platform
	switch {
	case cl.Group:
		if m.ReceiverID == "" {
			m.ReceiverID = m.GroupID
		}
		if m.GroupID == "" {
			m.GroupID = m.ReceiverID
		}
		if m.ReceiverID == "" || m.GroupID != m.ReceiverID {
			return refuse("group message needs receiver_id = group_id")
		}
		ok, err := g.cfg.Members.IsMember(ctx, m.ReceiverID, c.user)
		if err != nil {
			return fmt.Errorf("membership of %s in %s: %w", c.user, m.ReceiverID, err)
		}
		if !ok {
			return refuse("not a member of the group")
		}
	case cl.Push: // a single type delivered to a receiver
		if m.ReceiverID == "" {
			return refuse("receiver_id is required")
		}
		blocked, err := g.cfg.Blocks.IsBlocked(ctx, m.ReceiverID, c.user)
		if err != nil {
			return fmt.Errorf("block check %s→%s: %w", m.ReceiverID, c.user, err)
		}
		if blocked {
			return refuse("blocked by the receiver")
		}
	case cl.DeleteInbox:
		if m.ServerID == "" {
			return refuse("server_id is required")
		}
	}
	return nil
}

// errorAck answers a frame that did not enter the pipeline: MsgRecResp with
// content_type Error and the reason as content; local_id, receiver_id and
// group_id kept so the client finds the message.
func (g *Gateway) errorAck(c *conn, m *wire.Msg, reason string) {
	ack := *m
	ack.MsgType = wire.MsgTypeMsgRecResp
	ack.ContentType = wire.ContentError
	ack.Content = []byte(reason)
	ack.ServerID = ""
	ack.Seq = 0
	ack.SendSeq = 0
	g.writeMsg(c, &ack)
}

// peekLocalID reads local_id from a frame that failed to decode, when the
// frame gets that far: bincode's third string, or the JSON field.
func peekLocalID(typ int, data []byte) string {
	if typ == websocket.TextMessage {
		var v struct {
			LocalID string `json:"local_id"`
		}
		if json.Unmarshal(data, &v) != nil {
			return ""
		}
		return v.LocalID
	}
	b := data
	for i := 0; ; i++ {
		if len(b) < 8 {
			return ""
		}
		n := binary.LittleEndian.Uint64(b)
		b = b[8:]
		if n > uint64(len(b)) || n > 256 {
			return ""
		}
		if i == 2 {
			return string(b[:n])
		}
		b = b[n:]
	}
}
