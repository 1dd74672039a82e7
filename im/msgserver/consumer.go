package msgserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/sandcat-im/sandcat/im/bus"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

// Inbox is the part of storage.Inbox the consumer uses.
type Inbox interface {
	Save(ctx context.Context, entries []storage.InboxEntry) error
	Find(ctx context.Context, serverID string) ([]storage.InboxEntry, error)
	DeleteByServerID(ctx context.Context, serverID string) error
	DeleteBySeqs(ctx context.Context, userID string, seqs []int64) error
	MarkRead(ctx context.Context, userID string, seqs []int64) error
}

// History is the part of storage.History the consumer uses.
type History interface {
	Append(ctx context.Context, msgs []wire.Msg) error
}

// BatchStore writes the inbox entries and the history of a batch together
// (one transaction of the embedded store: one commit instead of two). It must
// write to the same places as the Inbox and History it replaces for Save and
// Append (sqlite.Store satisfies it when both are its own).
type BatchStore interface {
	SaveBatch(ctx context.Context, entries []storage.InboxEntry, history []wire.Msg) error
}

// RecvSeqs allocates receiver seqs (im/seq's Allocator satisfies it): one
// seq per listed user, in order.
type RecvSeqs interface {
	NextRecv(ctx context.Context, userIDs []string) ([]int64, error)
}

// GroupMembers gives a group's member ids and forgets a group whose members
// changed (MemberCache satisfies it).
type GroupMembers interface {
	Members(ctx context.Context, groupID string) ([]string, error)
	Invalidate(groupID string)
}

// Pushes delivers to live connections (Pusher satisfies it).
type Pushes interface {
	Push(ctx context.Context, ds []Delivery)
}

// ConsumerConfig wires a Consumer. Every field but Logger and Group is required.
type ConsumerConfig struct {
	Bus     bus.Consumer
	Group   string // consumer group, default "chat" (the original kafka.group)
	Inbox   Inbox
	History History
	// Batch, when set, replaces Inbox.Save + History.Append of a batch by one
	// call (optional).
	Batch   BatchStore
	Seqs    RecvSeqs
	Members GroupMembers
	Pusher  Pushes
	Logger  *slog.Logger
}

// Consumer turns bus records into stored inbox entries, history and pushes.
type Consumer struct {
	cfg ConsumerConfig
	log *slog.Logger
}

// NewConsumer checks cfg and returns a Consumer.
func NewConsumer(cfg ConsumerConfig) (*Consumer, error) {
	if cfg.Bus == nil || cfg.Inbox == nil || cfg.History == nil || cfg.Seqs == nil || cfg.Members == nil || cfg.Pusher == nil {
		return nil, errors.New("msgserver: consumer needs Bus, Inbox, History, Seqs, Members and Pusher")
	}
	if cfg.Group == "" {
		cfg.Group = "chat"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Consumer{cfg: cfg, log: cfg.Logger}, nil
}

// Run consumes until ctx ends.
func (c *Consumer) Run(ctx context.Context) error {
	return c.cfg.Bus.Consume(ctx, c.cfg.Group, c.Handle)
}

// batch is what one bus batch produces, written in bulk.
type batch struct {
	entries    []storage.InboxEntry
	history    []wire.Msg
	deliveries []Delivery
}

// Handle processes a batch of records in order: it stores every inbox entry
// of the batch in one Save, the chat history in one Append, and only then
// pushes. A nil return lets the bus commit past the batch; an error has it
// delivered again, which is safe: a message already stored (found by
// server_id) is pushed again from its stored copies, with the same seqs,
// never given new ones.
func (c *Consumer) Handle(ctx context.Context, recs []bus.Record) error {
	var b batch
	for i := range recs {
		e, err := DecodeRecord(recs[i].Value)
		if err != nil {
			// It can never succeed: retrying would block the log forever.
			c.log.ErrorContext(ctx, "msgserver: undecodable bus record dropped",
				"offset", recs[i].Offset, "key", recs[i].Key, "err", err)
			continue
		}
		if e.Keyed {
			// A copy may be stored already, maybe earlier in this batch.
			if err := c.flush(ctx, &b); err != nil {
				return err
			}
		}
		m := &e.Msg
		if err := c.process(ctx, &b, m, e.To, e.Origin, recs[i].Redelivered || e.Keyed); err != nil {
			return fmt.Errorf("msgserver: record %d (%s %s): %w", recs[i].Offset, m.MsgType, m.ServerID, err)
		}
	}
	if err := c.flush(ctx, &b); err != nil {
		return err
	}
	c.cfg.Pusher.Push(ctx, b.deliveries)
	return nil
}

// flush writes what the batch accumulated so far.
func (c *Consumer) flush(ctx context.Context, b *batch) error {
	if c.cfg.Batch != nil {
		if len(b.entries) == 0 && len(b.history) == 0 {
			return nil
		}
		if err := c.cfg.Batch.SaveBatch(ctx, b.entries, b.history); err != nil {
			return fmt.Errorf("msgserver: save inbox and history: %w", err)
		}
		b.entries, b.history = b.entries[:0], b.history[:0]
		return nil
	}
	if len(b.entries) > 0 {
		if err := c.cfg.Inbox.Save(ctx, b.entries); err != nil {
			return fmt.Errorf("msgserver: save inbox: %w", err)
		}
		b.entries = b.entries[:0]
	}
	if len(b.history) > 0 {
		if err := c.cfg.History.Append(ctx, b.history); err != nil {
			return fmt.Errorf("msgserver: append history: %w", err)
		}
		b.history = b.history[:0]
	}
	return nil
}

// process handles one record. maybeStored: the record may have been
// handled before (redelivered by the bus, or keyed by its sender).
func (c *Consumer) process(ctx context.Context, b *batch, m *wire.Msg, to []string, origin Origin, maybeStored bool) error {
	cl := Classify(m.MsgType)
	switch {
	case !cl.Valid:
		c.log.WarnContext(ctx, "msgserver: record with invalid msg_type dropped", "msg_type", int32(m.MsgType))
		return nil
	case cl.MarkRead:
		// Earlier entries of this batch may be the ones being marked.
		if err := c.flush(ctx, b); err != nil {
			return err
		}
		var r wire.MsgRead
		if err := r.UnmarshalBincode(m.Content); err != nil {
			c.log.WarnContext(ctx, "msgserver: undecodable Read content dropped", "send_id", m.SendID, "err", err)
			return nil
		}
		// A user marks only their own inbox: the sender (the gateway checked
		// it is the connection's user), not whatever user_id the content names.
		user := m.SendID
		if user == "" {
			user = r.UserID
		}
		if len(r.MsgSeq) == 0 || user == "" {
			return nil
		}
		return c.cfg.Inbox.MarkRead(ctx, user, r.MsgSeq)
	case cl.DeleteInbox:
		if err := c.flush(ctx, b); err != nil {
			return err
		}
		return c.received(ctx, m)
	}

	// Idempotency first: a record seen before may already be stored; then it
	// is pushed again from its stored copies and gets no new seqs.
	if maybeStored && cl.Inbox {
		stored, err := c.cfg.Inbox.Find(ctx, m.ServerID)
		if err != nil {
			return fmt.Errorf("find stored copies: %w", err)
		}
		if len(stored) > 0 {
			if cl.Push {
				b.deliveries = appendStoredDeliveries(b.deliveries, cl, m, stored, origin)
			}
			return nil
		}
	}

	if cl.Group {
		return c.group(ctx, b, cl, m, to, origin)
	}
	return c.single(ctx, b, cl, m, origin)
}

// received handles a *Received ACK: the acknowledging user (the sender of
// the ACK) deletes the inbox entry it received under that server_id. A single
// message has one entry, so the message's document goes (DeleteByServerID,
// as in the original). A group message has one entry per member: only the
// acknowledging member's copy goes, so one member cannot delete a message
// from the other members' inboxes. An ACK from a user who holds no copy is
// ignored.
func (c *Consumer) received(ctx context.Context, m *wire.Msg) error {
	if m.ServerID == "" || m.SendID == "" {
		return nil
	}
	stored, err := c.cfg.Inbox.Find(ctx, m.ServerID)
	if err != nil {
		return fmt.Errorf("find acknowledged message: %w", err)
	}
	for _, e := range stored {
		if e.ReceiverID != m.SendID {
			continue
		}
		if len(stored) == 1 {
			return c.cfg.Inbox.DeleteByServerID(ctx, m.ServerID)
		}
		return c.cfg.Inbox.DeleteBySeqs(ctx, m.SendID, []int64{e.Seq})
	}
	c.log.DebugContext(ctx, "msgserver: *Received from a user without that message ignored",
		"msg_type", m.MsgType, "send_id", m.SendID, "server_id", m.ServerID)
	return nil
}

func (c *Consumer) single(ctx context.Context, b *batch, cl Class, m *wire.Msg, origin Origin) error {
	if cl.RecvSeq {
		seqs, err := c.cfg.Seqs.NextRecv(ctx, []string{m.ReceiverID})
		if err != nil {
			return fmt.Errorf("recv seq of %s: %w", m.ReceiverID, err)
		}
		if len(seqs) != 1 {
			return fmt.Errorf("recv seq: %d seqs for 1 user", len(seqs))
		}
		m.Seq = seqs[0]
	}
	if cl.Inbox {
		b.entries = append(b.entries, storage.InboxSingle(*m)...)
	}
	if cl.History {
		b.history = append(b.history, *m)
	}
	if cl.Push {
		b.deliveries = appendSingleDeliveries(b.deliveries, m, origin)
	}
	return nil
}

func (c *Consumer) group(ctx context.Context, b *batch, cl Class, m *wire.Msg, to []string, origin Origin) error {
	gid := m.ReceiverID
	if cl.MembersBefore {
		c.cfg.Members.Invalidate(gid)
	}
	members := to
	if len(members) == 0 {
		var err error
		if members, err = c.cfg.Members.Members(ctx, gid); err != nil {
			return err
		}
	}
	recips := make([]string, 0, len(members))
	seen := make(map[string]struct{}, len(members))
	for _, id := range members {
		if id == "" || id == m.SendID {
			continue
		}
		if _, ok := seen[id]; ok {
			continue
		}
		seen[id] = struct{}{}
		recips = append(recips, id)
	}
	var seqs []int64
	if cl.RecvSeq && len(recips) > 0 {
		var err error
		if seqs, err = c.cfg.Seqs.NextRecv(ctx, recips); err != nil {
			return fmt.Errorf("recv seqs of %d members of %s: %w", len(recips), gid, err)
		}
		if len(seqs) != len(recips) {
			return fmt.Errorf("recv seqs: %d seqs for %d members", len(seqs), len(recips))
		}
	} else {
		seqs = make([]int64, len(recips))
	}
	if cl.Inbox {
		es, err := storage.InboxGroup(*m, recips, seqs)
		if err != nil {
			return err
		}
		b.entries = append(b.entries, es...)
	}
	if cl.History {
		h := *m
		h.Seq = 0
		b.history = append(b.history, h)
	}
	if cl.Push {
		b.deliveries = appendGroupDeliveries(b.deliveries, m, recips, seqs, origin)
	}
	if cl.MembersAfter {
		c.cfg.Members.Invalidate(gid)
	}
	return nil
}

// echo is the copy for the sender's other devices: seq 0 (the receiver's seq
// means nothing to the sender's recv counter), send_seq kept.
func echo(m *wire.Msg) *wire.Msg {
	e := *m
	e.Seq = 0
	return &e
}

// appendSingleDeliveries: the receiver's devices get m with the receiver's
// seq; the sender's devices get one echo: all of them for a notice of the
// API (FromServer), all but the sending connection's platform for a client
// frame (that connection got the ACK).
func appendSingleDeliveries(ds []Delivery, m *wire.Msg, origin Origin) []Delivery {
	rm := *m
	ds = append(ds, Delivery{UserID: m.ReceiverID, Msg: &rm})
	if m.SendID != "" && m.SendID != m.ReceiverID {
		ds = append(ds, Delivery{UserID: m.SendID, Msg: echo(m), Echo: origin == FromConnection})
	}
	return ds
}

// appendGroupDeliveries: the echo to the sender's other devices first (with
// send_seq), then each member with its own seq and send_seq 0. Every copy
// keeps receiver_id = group id.
func appendGroupDeliveries(ds []Delivery, m *wire.Msg, recips []string, seqs []int64, origin Origin) []Delivery {
	if m.SendID != "" {
		ds = append(ds, Delivery{UserID: m.SendID, Msg: echo(m), Echo: origin == FromConnection})
	}
	copies := make([]wire.Msg, len(recips)) // one allocation for the fan-out
	for i, id := range recips {
		copies[i] = *m
		copies[i].Seq = seqs[i]
		copies[i].SendSeq = 0
		ds = append(ds, Delivery{UserID: id, Msg: &copies[i]})
	}
	return ds
}

// appendStoredDeliveries rebuilds the deliveries of a message from its stored
// inbox entries (a replay), with the seqs they were stored with.
func appendStoredDeliveries(ds []Delivery, cl Class, m *wire.Msg, stored []storage.InboxEntry, origin Origin) []Delivery {
	if !cl.Group {
		s := stored[0].Msg
		return appendSingleDeliveries(ds, &s, origin)
	}
	gid := m.ReceiverID
	var recips []string
	var seqs []int64
	var sender *wire.Msg
	for i := range stored {
		e := stored[i].Msg
		if e.ReceiverID == gid {
			sender = &e
			continue
		}
		recips = append(recips, e.ReceiverID)
		seqs = append(seqs, e.Seq)
	}
	base := *m
	if sender != nil {
		base = *sender
		base.SendSeq = sender.SendSeq
	}
	base.ReceiverID = gid
	return appendGroupDeliveries(ds, &base, recips, seqs, origin)
}
