// Package msgtest has small in-memory doubles of the stores the message
// pipeline uses (inbox, history, seqs, group members, blocks, tokens), for
// unit tests of msgserver and gateway logic. They are not storage
// implementations: the conformance suites in storage/storagetest test those.
package msgtest

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

// Inbox keeps entries in memory, keyed by (server_id, receiver_id) like the
// real stores. Fail, when set, makes Save fail (to simulate crashes).
type Inbox struct {
	mu      sync.Mutex
	entries []storage.InboxEntry
	keys    map[[2]string]int
	Saves   int // number of Save calls
	Finds   int // number of Find calls
	Fail    func(entries []storage.InboxEntry) error
}

// NewInbox returns an empty Inbox.
func NewInbox() *Inbox { return &Inbox{keys: map[[2]string]int{}} }

// Save stores entries not stored yet.
func (b *Inbox) Save(_ context.Context, es []storage.InboxEntry) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.Fail != nil {
		if err := b.Fail(es); err != nil {
			return err
		}
	}
	b.Saves++
	for _, e := range es {
		if e.ServerID == "" {
			return errors.New("msgtest: empty server_id")
		}
		k := [2]string{e.ServerID, e.ReceiverID}
		if _, ok := b.keys[k]; ok {
			continue
		}
		b.keys[k] = len(b.entries)
		e.Msg = e.Msg.Clone()
		b.entries = append(b.entries, e)
	}
	return nil
}

// Find returns the entries of a message.
func (b *Inbox) Find(_ context.Context, serverID string) ([]storage.InboxEntry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.Finds++
	var out []storage.InboxEntry
	for _, e := range b.entries {
		if e.ServerID == serverID {
			out = append(out, e)
		}
	}
	return out, nil
}

// DeleteByServerID deletes every entry of a message.
func (b *Inbox) DeleteByServerID(_ context.Context, serverID string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.entries = slices.DeleteFunc(b.entries, func(e storage.InboxEntry) bool { return e.ServerID == serverID })
	b.reindex()
	return nil
}

func (b *Inbox) reindex() {
	clear(b.keys)
	for i, e := range b.entries {
		b.keys[[2]string{e.ServerID, e.ReceiverID}] = i
	}
}

// DeleteBySeqs deletes the user's entries with those seqs.
func (b *Inbox) DeleteBySeqs(_ context.Context, userID string, seqs []int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.entries = slices.DeleteFunc(b.entries, func(e storage.InboxEntry) bool {
		return e.ReceiverID == userID && slices.Contains(seqs, e.Seq)
	})
	b.reindex()
	return nil
}

// MarkRead sets is_read on the user's entries with those seqs.
func (b *Inbox) MarkRead(_ context.Context, userID string, seqs []int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i := range b.entries {
		if b.entries[i].ReceiverID == userID && slices.Contains(seqs, b.entries[i].Seq) {
			b.entries[i].IsRead = true
		}
	}
	return nil
}

// All returns a copy of every entry, in save order.
func (b *Inbox) All() []storage.InboxEntry {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.entries)
}

// History keeps appended messages.
type History struct {
	mu   sync.Mutex
	msgs []wire.Msg
	seen map[string]bool
}

// Append stores msgs not stored yet (by send_id and server_id).
func (h *History) Append(_ context.Context, msgs []wire.Msg) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.seen == nil {
		h.seen = map[string]bool{}
	}
	for _, m := range msgs {
		k := m.SendID + "\x00" + m.ServerID
		if !h.seen[k] {
			h.seen[k] = true
			h.msgs = append(h.msgs, m.Clone())
		}
	}
	return nil
}

// All returns a copy of the history.
func (h *History) All() []wire.Msg {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.msgs)
}

// Seqs hands out per-user send and recv seqs from 1.
type Seqs struct {
	mu   sync.Mutex
	send map[string]int64
	recv map[string]int64
}

// NewSeqs returns counters at 0.
func NewSeqs() *Seqs { return &Seqs{send: map[string]int64{}, recv: map[string]int64{}} }

// NextSend returns the user's next send seq.
func (s *Seqs) NextSend(_ context.Context, user string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.send[user]++
	return s.send[user], nil
}

// NextRecv returns the next recv seq of each user, in order.
func (s *Seqs) NextRecv(_ context.Context, users []string) ([]int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]int64, len(users))
	for i, u := range users {
		s.recv[u]++
		out[i] = s.recv[u]
	}
	return out, nil
}

// Recv returns the last recv seq handed to the user.
func (s *Seqs) Recv(user string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.recv[user]
}

// Groups holds member lists.
type Groups struct {
	mu      sync.Mutex
	members map[string][]string
	Loads   int
}

// NewGroups returns an empty member store.
func NewGroups() *Groups { return &Groups{members: map[string][]string{}} }

// Set replaces a group's members.
func (g *Groups) Set(groupID string, members ...string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.members[groupID] = slices.Clone(members)
}

// GroupMemberIDs returns a group's members.
func (g *Groups) GroupMemberIDs(_ context.Context, groupID string) ([]string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.Loads++
	return slices.Clone(g.members[groupID]), nil
}

// Blocks holds who blocked whom.
type Blocks struct {
	mu sync.Mutex
	m  map[[2]string]bool
}

// Block records that by blocked whom.
func (b *Blocks) Block(by, whom string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil {
		b.m = map[[2]string]bool{}
	}
	b.m[[2]string{by, whom}] = true
}

// IsBlocked reports whether by blocked whom.
func (b *Blocks) IsBlocked(_ context.Context, by, whom string) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.m[[2]string{by, whom}], nil
}

// Tokens verifies tokens of the form "tok-<user id>".
type Tokens struct{}

// Verify returns the user of a "tok-<user>" token.
func (Tokens) Verify(_ context.Context, token string) (string, error) {
	u, ok := strings.CutPrefix(token, "tok-")
	if !ok || u == "" {
		return "", errors.New("msgtest: bad token")
	}
	return u, nil
}
