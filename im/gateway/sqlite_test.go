package gateway_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/bus"
	"github.com/sandcat-im/sandcat/im/msgserver"
	"github.com/sandcat-im/sandcat/im/seq"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

// TestPipelineOnSQLiteStores runs the end-to-end path on the real embedded
// stores: the SQLite inbox, history, groups and friends, and the seq
// allocator over SQLite ceilings.
func TestPipelineOnSQLiteStores(t *testing.T) {
	ctx := context.Background()
	st := sqlite.OpenTest(t)
	alloc, err := seq.New(st.SeqCeilings(), seq.Options{Step: 100})
	if err != nil {
		t.Fatal(err)
	}
	users := []string{"alice", "bob", "carol", "dave"}
	for _, id := range users {
		if err := st.CreateUser(ctx, &storage.User{ID: id, Name: id, Account: id, Avatar: "a", Gender: "x"}, 100); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := st.CreateGroup(ctx, wire.GroupInfo{ID: "g1", Owner: "alice", Name: "g"}, []string{"bob", "carol"}); err != nil {
		t.Fatal(err)
	}
	if err := st.BlockUser(ctx, "dave", "alice", time.Now().UnixMilli()); err != nil {
		t.Fatal(err)
	}
	// Seqs continue above the ceilings stored at user creation.
	recv0, send0 := map[string]int64{}, map[string]int64{}
	for _, id := range users {
		if recv0[id], send0[id], err = alloc.Current(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	r := func(id string, n int64) int64 { return recv0[id] + n }
	sd := func(id string, n int64) int64 { return send0[id] + n }
	inbox := st.Inbox()
	s := newStack(t, stackOpts{real: &stores{inbox: inbox, history: st.History(), seqs: alloc, groups: st, blocks: st}})
	alice := s.dial("alice", wire.PlatformDesktop)
	aliceMob := s.dial("alice", wire.PlatformMobile)
	bob := s.dial("bob", wire.PlatformMobile)
	carol := s.dial("carol", wire.PlatformDesktop)
	dave := s.dial("dave", wire.PlatformDesktop)

	m1 := text("alice", "bob", "hello over sqlite")
	alice.send(m1)
	ack := alice.next()
	expectAck(t, ack, m1, sd("alice", 1))
	expectMsg(t, bob.next(), m1, r("bob", 1), sd("alice", 1))
	expectMsg(t, aliceMob.next(), m1, 0, sd("alice", 1))

	m2 := groupText("alice", "g1", "group over sqlite")
	alice.send(m2)
	expectAck(t, alice.next(), m2, sd("alice", 2))
	expectMsg(t, aliceMob.next(), m2, 0, sd("alice", 2))
	expectMsg(t, bob.next(), m2, r("bob", 2), 0)
	expectMsg(t, carol.next(), m2, r("carol", 1), 0)

	blocked := text("alice", "dave", "blocked")
	alice.send(blocked)
	expectErrorAck(t, alice.next(), blocked, "blocked")
	notMember := groupText("dave", "g1", "not a member")
	dave.send(notMember)
	expectErrorAck(t, dave.next(), notMember, "not a member")

	// Bob reads seq 1; the read is applied before his next message is handled.
	read := &wire.Msg{SendID: "bob", ReceiverID: "alice", LocalID: newLocalID(), MsgType: wire.MsgTypeRead,
		Content: wire.MsgRead{MsgSeq: []int64{r("bob", 1)}, UserID: "bob"}.MarshalBincode()}
	bob.send(read)
	expectAck(t, bob.next(), read, 0)
	m3 := text("bob", "alice", "read it")
	bob.send(m3)
	expectAck(t, bob.next(), m3, sd("bob", 1))
	expectMsg(t, alice.next(), m3, r("alice", 1), sd("bob", 1))
	expectMsg(t, aliceMob.next(), m3, r("alice", 1), sd("bob", 1))

	// What the offline pull returns: bob's recv range has both messages.
	got, err := inbox.Pull(ctx, "bob", 0, 0, 0, r("bob", 10))
	if err != nil {
		t.Fatal(err)
	}
	var summary []string
	for _, m := range got {
		summary = append(summary, fmt.Sprintf("%s/%d/%v", m.Content, m.Seq, m.IsRead))
	}
	if want := fmt.Sprintf("[hello over sqlite/%d/true group over sqlite/%d/false]", r("bob", 1), r("bob", 2)); fmt.Sprint(summary) != want {
		t.Fatalf("bob pulls %v, want %s", summary, want)
	}
	stored, err := inbox.Find(ctx, ack.ServerID)
	if err != nil || len(stored) != 1 {
		t.Fatalf("Find(%s) = %d entries, %v", ack.ServerID, len(stored), err)
	}
	recv, send, err := alloc.Current(ctx, "bob")
	if err != nil || recv != r("bob", 2) || send != sd("bob", 1) {
		t.Fatalf("bob's seqs recv %d send %d, %v", recv, send, err)
	}

	// A redelivered record of a stored message: pushed again from the stored
	// copy, no new seq, nothing stored twice.
	rec := bus.Record{Offset: 1, Key: "bob", Value: msgserver.EncodeEnvelope(&stored[0].Msg, nil), Redelivered: true}
	var pushed recorder
	if err := s.consumer(&pushed).Handle(ctx, []bus.Record{rec}); err != nil {
		t.Fatal(err)
	}
	if len(pushed.ds) != 2 || pushed.ds[0].Msg.Seq != r("bob", 1) || pushed.ds[1].Msg.SendSeq != sd("alice", 1) {
		t.Fatalf("replay pushed %d deliveries", len(pushed.ds))
	}
	if again, _ := inbox.Find(ctx, ack.ServerID); len(again) != 1 {
		t.Fatalf("replay stored %d copies", len(again))
	}
	if recv, _, _ := alloc.Current(ctx, "bob"); recv != r("bob", 2) {
		t.Fatalf("replay allocated a seq: bob at %d", recv)
	}
}

type recorder struct{ ds []msgserver.Delivery }

func (r *recorder) Push(_ context.Context, ds []msgserver.Delivery) { r.ds = append(r.ds, ds...) }
