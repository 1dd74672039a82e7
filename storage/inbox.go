package storage

import (
	"context"
	"fmt"

	"github.com/sandcat-im/sandcat/im/wire"
)

// InboxEntry is one stored copy of a message in the offline inbox (the
// original's MongoDB collection single_msg_box, sandcat-wire.md §4.4). Every
// field of the Msg is kept, including platform, avatar, nickname and
// related_msg_id (bug B10 of the original), and is_read.
//
// Layout:
//   - single message: ONE entry, serving the receiver (ReceiverID + Seq) and the
//     sender's other devices (SendID + SendSeq); see InboxSingle;
//   - group message: one sender copy (ReceiverID = group id, Seq 0, SendSeq N)
//     plus one copy per member (ReceiverID = member, Seq = member seq,
//     SendSeq 0); see InboxGroup.
//
// An entry is identified by (ServerID, ReceiverID): saving it again is a no-op.
type InboxEntry struct {
	wire.Msg
}

// InboxPullLimit caps what one Inbox.Pull returns: at most this many messages
// of the recv range (the lowest seqs) plus at most this many of the send range
// (the lowest send_seqs). A client that gets a full range asks again from the
// highest seq it received.
const InboxPullLimit = 10000

// Inbox is the offline inbox: what a user's devices pull by seq ranges.
type Inbox interface {
	// Save stores entries of any number of messages in one write. Entries
	// already stored (same ServerID and ReceiverID) are left as they are, so a
	// replay after a crash never duplicates. ServerID must not be empty.
	Save(ctx context.Context, entries []InboxEntry) error
	// Pull answers POST /message (sandcat-wire.md §2.4): the entries with
	// (receiver_id = user AND start < seq <= end) OR
	// (send_id = user AND sendStart < send_seq <= sendEnd), sorted by send_time,
	// then by send_seq for the user's own messages and by seq otherwise. Own
	// messages (send_id = user) come back with Seq 0. Capped by InboxPullLimit
	// per range. Never nil.
	Pull(ctx context.Context, userID string, sendStart, sendEnd, start, end int64) ([]wire.Msg, error)
	// Find returns every entry of a message (empty, no error, if none is stored).
	Find(ctx context.Context, serverID string) ([]InboxEntry, error)
	// DeleteBySeqs deletes the entries with receiver_id = userID and seq in seqs
	// (DELETE /message: receiver seqs, not server ids).
	DeleteBySeqs(ctx context.Context, userID string, seqs []int64) error
	// DeleteByServerID deletes every entry of a message (the *Received ACK types).
	DeleteByServerID(ctx context.Context, serverID string) error
	// MarkRead sets is_read on the entries with receiver_id = userID and seq in seqs (Read frames).
	MarkRead(ctx context.Context, userID string, seqs []int64) error
	// Clean deletes the entries with send_time < olderThanMs (unix MILLISECONDS,
	// bug B3 of the original) whose msg_type is not in exceptTypes, and returns
	// how many it deleted.
	Clean(ctx context.Context, olderThanMs int64, exceptTypes []wire.MsgType) (int64, error)
}

// InboxSingle is the inbox layout of a single (non-group) message: one entry,
// m as it is (m.Seq is the receiver's seq, m.SendSeq the sender's).
func InboxSingle(m wire.Msg) []InboxEntry {
	return []InboxEntry{{Msg: m}}
}

// InboxGroup is the inbox layout of a group message m (m.ReceiverID = group
// id, m.SendSeq = the sender's send seq): the sender copy with Seq 0, then one
// copy per member with that member's seq and SendSeq 0. members and seqs are
// parallel.
func InboxGroup(m wire.Msg, members []string, seqs []int64) ([]InboxEntry, error) {
	if len(members) != len(seqs) {
		return nil, fmt.Errorf("storage: inbox group: %d members but %d seqs", len(members), len(seqs))
	}
	out := make([]InboxEntry, 0, len(members)+1)
	sender := m
	sender.Seq = 0
	out = append(out, InboxEntry{Msg: sender})
	for i, id := range members {
		c := m
		c.ReceiverID = id
		c.Seq = seqs[i]
		c.SendSeq = 0
		out = append(out, InboxEntry{Msg: c})
	}
	return out, nil
}

// CheckPullRange validates the ranges of Inbox.Pull: no negative bound and no
// start above its end.
func CheckPullRange(sendStart, sendEnd, start, end int64) error {
	if sendStart < 0 || sendEnd < 0 || start < 0 || end < 0 {
		return fmt.Errorf("storage: pull: negative range bound")
	}
	if sendStart > sendEnd || start > end {
		return fmt.Errorf("storage: pull: range start above its end")
	}
	return nil
}
