package storagetest

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"testing"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

// inboxMsg returns a message from -> to with every field set.
func inboxMsg(from, to string, sendTime, seq, sendSeq int64) wire.Msg {
	rel := "rel-" + ids.New()
	return wire.Msg{
		SendID: from, ReceiverID: to, LocalID: ids.New(), ServerID: ids.New(),
		CreateTime: sendTime - 7, SendTime: sendTime, Seq: seq, MsgType: wire.MsgTypeSingleMsg,
		ContentType: wire.ContentText, Content: []byte(fmt.Sprintf("hello %d/%d", seq, sendSeq)),
		Platform: wire.PlatformMobile, Avatar: "avatar-" + from, Nickname: "nick-" + from,
		RelatedMsgID: &rel, SendSeq: sendSeq,
	}
}

func inboxSave(t *testing.T, s storage.Inbox, msgs ...wire.Msg) {
	t.Helper()
	entries := make([]storage.InboxEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = storage.InboxEntry{Msg: m}
	}
	if err := s.Save(context.Background(), entries); err != nil {
		t.Fatalf("Save(%d entries): %v", len(entries), err)
	}
}

func inboxPull(t *testing.T, s storage.Inbox, user string, sendStart, sendEnd, start, end int64) []wire.Msg {
	t.Helper()
	got, err := s.Pull(context.Background(), user, sendStart, sendEnd, start, end)
	if err != nil {
		t.Fatalf("Pull(%s, %d, %d, %d, %d): %v", user, sendStart, sendEnd, start, end, err)
	}
	if got == nil {
		t.Fatalf("Pull returned nil")
	}
	return got
}

// inboxSameMsg compares two messages field by field (nil and empty content are equal).
func inboxSameMsg(got, want wire.Msg) error {
	if !bytes.Equal(got.Content, want.Content) {
		return fmt.Errorf("content %q, want %q", got.Content, want.Content)
	}
	got.Content, want.Content = nil, nil
	if !reflect.DeepEqual(got, want) {
		return fmt.Errorf("\n got  %s\n want %s", inboxDump(got), inboxDump(want))
	}
	return nil
}

func inboxDump(m wire.Msg) string {
	rel := "<nil>"
	if m.RelatedMsgID != nil {
		rel = *m.RelatedMsgID
	}
	return fmt.Sprintf("%+v related=%s", m, rel)
}

func inboxSameList(t *testing.T, what string, got, want []wire.Msg) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d messages, want %d:\n got  %v\n want %v", what, len(got), len(want), inboxKeys(got), inboxKeys(want))
	}
	for i := range got {
		if err := inboxSameMsg(got[i], want[i]); err != nil {
			t.Fatalf("%s: message %d: %v\n order got %v\n want %v", what, i, err, inboxKeys(got), inboxKeys(want))
		}
	}
}

// inboxKeys lists send_time/seq/send_seq of messages, to show an order.
func inboxKeys(msgs []wire.Msg) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = fmt.Sprintf("t%d/s%d/ss%d", m.SendTime, m.Seq, m.SendSeq)
	}
	return out
}

// withSeq returns m with Seq set (what Pull returns for own messages is Seq 0).
func withSeq(m wire.Msg, seq int64) wire.Msg { m.Seq = seq; return m }

// Inbox is the conformance suite of storage.Inbox; s must be empty.
func Inbox(t *testing.T, s storage.Inbox) {
	ctx := context.Background()

	t.Run("SaveFindKeepsEveryField", func(t *testing.T) {
		a, b := ids.New(), ids.New()
		m := inboxMsg(a, b, 1700000000000, 3, 9)
		m.IsRead = true
		m.GroupID = "g-" + ids.New()
		noRel := inboxMsg(a, b, 1700000000001, 4, 10)
		noRel.RelatedMsgID = nil
		noRel.Content = nil
		inboxSave(t, s, m, noRel)
		for _, want := range []wire.Msg{m, noRel} {
			got, err := s.Find(ctx, want.ServerID)
			if err != nil || len(got) != 1 {
				t.Fatalf("Find(%s) = %d entries, %v", want.ServerID, len(got), err)
			}
			if err := inboxSameMsg(got[0].Msg, want); err != nil {
				t.Fatal(err)
			}
		}
		got, err := s.Find(ctx, ids.New())
		if err != nil || got == nil || len(got) != 0 {
			t.Fatalf("Find(unknown) = %v, %v; want empty, nil", got, err)
		}
	})

	t.Run("SaveIsIdempotent", func(t *testing.T) {
		a, b := ids.New(), ids.New()
		m := inboxMsg(a, b, 1700000000000, 1, 1)
		inboxSave(t, s, m)
		replay := m
		replay.Content = []byte("replayed")
		inboxSave(t, s, replay, replay) // twice in one batch, and again
		got, err := s.Find(ctx, m.ServerID)
		if err != nil || len(got) != 1 {
			t.Fatalf("after replays Find = %d entries, %v; want 1", len(got), err)
		}
		if err := inboxSameMsg(got[0].Msg, m); err != nil {
			t.Fatalf("replay overwrote the entry: %v", err)
		}
		if n := len(inboxPull(t, s, b, 0, 0, 0, 10)); n != 1 {
			t.Fatalf("receiver pulls %d copies, want 1", n)
		}
	})

	t.Run("SaveRejectsNoServerID", func(t *testing.T) {
		m := inboxMsg(ids.New(), ids.New(), 1, 1, 1)
		m.ServerID = ""
		if err := s.Save(ctx, []storage.InboxEntry{{Msg: m}}); err == nil {
			t.Fatal("Save without server_id succeeded")
		}
		if err := s.Save(ctx, nil); err != nil {
			t.Fatalf("Save(nothing): %v", err)
		}
	})

	t.Run("SingleServesReceiverAndSender", func(t *testing.T) {
		a, b := ids.New(), ids.New()
		m := inboxMsg(a, b, 1700000000000, 5, 8)
		if err := s.Save(ctx, storage.InboxSingle(m)); err != nil {
			t.Fatal(err)
		}
		inboxSameList(t, "receiver", inboxPull(t, s, b, 0, 0, 4, 5), []wire.Msg{m})
		inboxSameList(t, "sender's devices", inboxPull(t, s, a, 7, 8, 0, 0), []wire.Msg{withSeq(m, 0)})
		inboxSameList(t, "sender's recv range", inboxPull(t, s, a, 0, 0, 0, 100), nil)
		inboxSameList(t, "receiver's send range", inboxPull(t, s, b, 0, 100, 0, 0), nil)
	})

	t.Run("RangesExclusiveStartInclusiveEnd", func(t *testing.T) {
		a, b := ids.New(), ids.New()
		var all []wire.Msg
		for i := int64(1); i <= 6; i++ {
			all = append(all, inboxMsg(a, b, 1700000000000+i, i, 100+i))
		}
		inboxSave(t, s, all...)
		tests := []struct {
			name                           string
			user                           string
			sendStart, sendEnd, start, end int64
			want                           []wire.Msg
		}{
			{"recv (2,4]", b, 0, 0, 2, 4, all[2:4]},
			{"recv (0,6]", b, 0, 0, 0, 6, all},
			{"recv (6,9]", b, 0, 0, 6, 9, nil},
			{"recv empty (3,3]", b, 0, 0, 3, 3, nil},
			{"send (101,103]", a, 101, 103, 0, 0, []wire.Msg{withSeq(all[1], 0), withSeq(all[2], 0)}},
			{"send (105,1000]", a, 105, 1000, 0, 0, []wire.Msg{withSeq(all[5], 0)}},
		}
		for _, tc := range tests {
			inboxSameList(t, tc.name, inboxPull(t, s, tc.user, tc.sendStart, tc.sendEnd, tc.start, tc.end), tc.want)
		}
	})

	t.Run("InvalidRanges", func(t *testing.T) {
		u := ids.New()
		for _, r := range [][4]int64{{-1, 0, 0, 0}, {0, -1, 0, 0}, {0, 0, -1, 0}, {0, 0, 0, -1}, {5, 4, 0, 0}, {0, 0, 5, 4}} {
			if _, err := s.Pull(ctx, u, r[0], r[1], r[2], r[3]); err == nil {
				t.Errorf("Pull%v succeeded", r)
			}
		}
	})

	t.Run("OrderBySendTimeThenSeq", func(t *testing.T) {
		me, f1, f2 := ids.New(), ids.New(), ids.New()
		// received: seq order differs from send_time order; two share a send_time
		r1 := inboxMsg(f1, me, 3000, 1, 50)
		r2 := inboxMsg(f2, me, 1000, 2, 60)
		r3 := inboxMsg(f1, me, 2000, 4, 51)
		r4 := inboxMsg(f2, me, 2000, 3, 61)
		// sent by me: sorted by send_seq, not by the receiver's seq
		s1 := inboxMsg(me, f1, 2000, 90, 7)
		s2 := inboxMsg(me, f2, 2000, 10, 8)
		s3 := inboxMsg(me, f1, 500, 91, 9)
		inboxSave(t, s, r1, r2, r3, r4, s1, s2, s3)
		want := []wire.Msg{withSeq(s3, 0), r2, r4, r3, withSeq(s1, 0), withSeq(s2, 0), r1}
		got := inboxPull(t, s, me, 0, 100, 0, 100)
		// at send_time 2000 the sort keys are r4:3, r3:4, s1:7, s2:8
		inboxSameList(t, "mixed pull", got, want)
	})

	t.Run("MessageToSelfOnce", func(t *testing.T) {
		me := ids.New()
		m := inboxMsg(me, me, 1700000000000, 4, 4)
		inboxSave(t, s, m)
		inboxSameList(t, "both ranges", inboxPull(t, s, me, 0, 10, 0, 10), []wire.Msg{withSeq(m, 0)})
		inboxSameList(t, "recv range only", inboxPull(t, s, me, 0, 0, 0, 10), []wire.Msg{withSeq(m, 0)})
	})

	t.Run("GroupLayout", func(t *testing.T) {
		sender, m1, m2, gid := ids.New(), ids.New(), ids.New(), ids.New()
		m := inboxMsg(sender, gid, 1700000000000, 0, 12)
		m.MsgType = wire.MsgTypeGroupMsg
		m.GroupID = gid
		entries, err := storage.InboxGroup(m, []string{m1, m2}, []int64{40, 7})
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 3 || entries[0].ReceiverID != gid || entries[0].Seq != 0 || entries[0].SendSeq != 12 ||
			entries[1].ReceiverID != m1 || entries[1].Seq != 40 || entries[1].SendSeq != 0 ||
			entries[2].ReceiverID != m2 || entries[2].Seq != 7 || entries[2].SendSeq != 0 {
			t.Fatalf("InboxGroup layout: %+v", entries)
		}
		if _, err := storage.InboxGroup(m, []string{m1}, nil); err == nil {
			t.Fatal("InboxGroup with mismatched seqs succeeded")
		}
		if err := s.Save(ctx, entries); err != nil {
			t.Fatal(err)
		}
		inboxSave(t, s, entries[0].Msg, entries[1].Msg, entries[2].Msg) // replay
		found, err := s.Find(ctx, m.ServerID)
		if err != nil || len(found) != 3 {
			t.Fatalf("Find(group message) = %d entries, %v; want 3", len(found), err)
		}
		senderCopy := m
		senderCopy.Seq = 0
		inboxSameList(t, "sender", inboxPull(t, s, sender, 0, 100, 0, 100), []wire.Msg{senderCopy})
		c1 := m
		c1.ReceiverID, c1.Seq, c1.SendSeq = m1, 40, 0
		inboxSameList(t, "member 1", inboxPull(t, s, m1, 0, 100, 0, 100), []wire.Msg{c1})
		c2 := m
		c2.ReceiverID, c2.Seq, c2.SendSeq = m2, 7, 0
		inboxSameList(t, "member 2", inboxPull(t, s, m2, 0, 0, 6, 7), []wire.Msg{c2})
		inboxSameList(t, "member 2 outside range", inboxPull(t, s, m2, 0, 0, 7, 100), nil)
	})

	t.Run("PullCap", func(t *testing.T) {
		a, b := ids.New(), ids.New()
		n := storage.InboxPullLimit + 5
		msgs := make([]wire.Msg, n)
		for i := range msgs {
			// send_time decreases with seq: the cap must still keep the lowest seqs
			msgs[i] = inboxMsg(a, b, int64(10_000_000-i), int64(i+1), int64(i+1))
		}
		inboxSave(t, s, msgs...)
		check := func(what string, got []wire.Msg, wantLen int, seqOf func(wire.Msg) int64, lo, hi int64) {
			t.Helper()
			if len(got) != wantLen {
				t.Fatalf("%s: %d messages, want %d", what, len(got), wantLen)
			}
			for _, m := range got {
				if v := seqOf(m); v <= lo || v > hi {
					t.Fatalf("%s: seq %d outside (%d, %d]", what, v, lo, hi)
				}
			}
		}
		limit := int64(storage.InboxPullLimit)
		recvSeq := func(m wire.Msg) int64 { return m.Seq }
		sendSeq := func(m wire.Msg) int64 { return m.SendSeq }
		check("recv first page", inboxPull(t, s, b, 0, 0, 0, int64(n)), storage.InboxPullLimit, recvSeq, 0, limit)
		check("recv next page", inboxPull(t, s, b, 0, 0, limit, int64(n)), 5, recvSeq, limit, int64(n))
		check("send first page", inboxPull(t, s, a, 0, int64(n), 0, 0), storage.InboxPullLimit, sendSeq, 0, limit)
		check("send next page", inboxPull(t, s, a, limit, int64(n), 0, 0), 5, sendSeq, limit, int64(n))
	})

	t.Run("DeleteBySeqs", func(t *testing.T) {
		a, b, c := ids.New(), ids.New(), ids.New()
		var mb, mc []wire.Msg
		for i := int64(1); i <= 4; i++ {
			mb = append(mb, inboxMsg(a, b, 1000+i, i, i))
			mc = append(mc, inboxMsg(a, c, 1000+i, i, 10+i))
		}
		inboxSave(t, s, append(mb, mc...)...)
		if err := s.DeleteBySeqs(ctx, b, []int64{2, 4, 99}); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteBySeqs(ctx, b, nil); err != nil {
			t.Fatal(err)
		}
		inboxSameList(t, "b after delete", inboxPull(t, s, b, 0, 0, 0, 10), []wire.Msg{mb[0], mb[2]})
		inboxSameList(t, "c untouched", inboxPull(t, s, c, 0, 0, 0, 10), mc)
	})

	t.Run("DeleteByServerID", func(t *testing.T) {
		sender, m1, m2, gid := ids.New(), ids.New(), ids.New(), ids.New()
		m := inboxMsg(sender, gid, 1000, 0, 3)
		entries, err := storage.InboxGroup(m, []string{m1, m2}, []int64{1, 1})
		if err != nil {
			t.Fatal(err)
		}
		keep := inboxMsg(sender, m1, 1001, 2, 4)
		if err := s.Save(ctx, append(entries, storage.InboxEntry{Msg: keep})); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteByServerID(ctx, m.ServerID); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Find(ctx, m.ServerID); err != nil || len(got) != 0 {
			t.Fatalf("after DeleteByServerID Find = %d entries, %v", len(got), err)
		}
		inboxSameList(t, "other message kept", inboxPull(t, s, m1, 0, 0, 0, 10), []wire.Msg{keep})
	})

	t.Run("MarkRead", func(t *testing.T) {
		a, b := ids.New(), ids.New()
		var msgs []wire.Msg
		for i := int64(1); i <= 3; i++ {
			msgs = append(msgs, inboxMsg(a, b, 1000+i, i, i))
		}
		other := inboxMsg(b, a, 1010, 2, 9) // a's seq 2: not b's
		inboxSave(t, s, append(msgs, other)...)
		if err := s.MarkRead(ctx, b, []int64{1, 3}); err != nil {
			t.Fatal(err)
		}
		if err := s.MarkRead(ctx, b, nil); err != nil {
			t.Fatal(err)
		}
		got := inboxPull(t, s, b, 0, 0, 0, 10)
		var read []bool
		for _, m := range got {
			read = append(read, m.IsRead)
		}
		if !slices.Equal(read, []bool{true, false, true}) {
			t.Fatalf("is_read after MarkRead = %v, want [true false true]", read)
		}
		if got := inboxPull(t, s, a, 0, 0, 0, 10); len(got) != 1 || got[0].IsRead {
			t.Fatalf("another user's entry was marked read: %+v", got)
		}
	})

	t.Run("CleanInMilliseconds", func(t *testing.T) {
		a, b := ids.New(), ids.New()
		const cutoff = int64(1_700_000_000_000) // ms
		old := inboxMsg(a, b, cutoff-1, 1, 1)
		oldKept := inboxMsg(a, b, cutoff-86_400_000, 2, 2)
		oldKept.MsgType = wire.MsgTypeFriendApplyReq
		atCutoff := inboxMsg(a, b, cutoff, 3, 3)
		fresh := inboxMsg(a, b, cutoff+1, 4, 4)
		inboxSave(t, s, old, oldKept, atCutoff, fresh)
		n, err := s.Clean(ctx, cutoff, []wire.MsgType{wire.MsgTypeFriendApplyReq, wire.MsgTypeGroupInvitation})
		if err != nil {
			t.Fatal(err)
		}
		// other subtests' messages (send_time < cutoff, SingleMsg) go too: at least the one made here
		if n < 1 {
			t.Fatalf("Clean deleted %d rows", n)
		}
		inboxSameList(t, "after clean", inboxPull(t, s, b, 0, 0, 0, 10), []wire.Msg{oldKept, atCutoff, fresh})
		n, err = s.Clean(ctx, cutoff, []wire.MsgType{wire.MsgTypeFriendApplyReq})
		if err != nil || n != 0 {
			t.Fatalf("second Clean = %d, %v; want 0", n, err)
		}
		if n, err := s.Clean(ctx, cutoff, nil); err != nil || n < 1 {
			t.Fatalf("Clean without exceptions = %d, %v; want the kept friend request gone", n, err)
		}
		inboxSameList(t, "after clean without exceptions", inboxPull(t, s, b, 0, 0, 0, 10), []wire.Msg{atCutoff, fresh})
	})
}
