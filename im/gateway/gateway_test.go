package gateway_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sandcat-im/sandcat/im/bus"
	"github.com/sandcat-im/sandcat/im/gateway"
	"github.com/sandcat-im/sandcat/im/msgserver"
	"github.com/sandcat-im/sandcat/im/wire"
)

func expectAck(t *testing.T, got wire.Msg, sent *wire.Msg, sendSeq int64) {
	t.Helper()
	if got.MsgType != wire.MsgTypeMsgRecResp || got.ContentType == wire.ContentError {
		t.Fatalf("want an ACK of %s, got type %d content_type %d content %q", sent.LocalID, got.MsgType, got.ContentType, got.Content)
	}
	if got.LocalID != sent.LocalID || got.ReceiverID != sent.ReceiverID || got.GroupID != sent.GroupID {
		t.Fatalf("ACK ids: local %q receiver %q group %q, sent %q %q %q", got.LocalID, got.ReceiverID, got.GroupID,
			sent.LocalID, sent.ReceiverID, sent.GroupID)
	}
	if len(got.ServerID) != 21 || got.SendTime == 0 || len(got.Content) != 0 || got.SendSeq != sendSeq {
		t.Fatalf("ACK: server_id %q send_time %d content %q send_seq %d (want %d)", got.ServerID, got.SendTime,
			got.Content, got.SendSeq, sendSeq)
	}
}

func expectErrorAck(t *testing.T, got wire.Msg, sent *wire.Msg, reason string) {
	t.Helper()
	if got.MsgType != wire.MsgTypeMsgRecResp || got.ContentType != wire.ContentError {
		t.Fatalf("want an Error ACK, got type %d content_type %d content %q", got.MsgType, got.ContentType, got.Content)
	}
	if got.LocalID != sent.LocalID || !strings.Contains(string(got.Content), reason) || got.ServerID != "" {
		t.Fatalf("Error ACK: local %q (sent %q) content %q (want %q) server_id %q", got.LocalID, sent.LocalID,
			got.Content, reason, got.ServerID)
	}
}

func expectMsg(t *testing.T, got wire.Msg, sent *wire.Msg, seq, sendSeq int64) {
	t.Helper()
	if got.MsgType != sent.MsgType || got.LocalID != sent.LocalID || !bytes.Equal(got.Content, sent.Content) {
		t.Fatalf("want %s %q %q, got %s %q %q", sent.MsgType, sent.LocalID, sent.Content, got.MsgType, got.LocalID, got.Content)
	}
	if got.Seq != seq || got.SendSeq != sendSeq || len(got.ServerID) != 21 {
		t.Fatalf("%q: seq %d send_seq %d server_id %q, want seq %d send_seq %d", sent.Content, got.Seq, got.SendSeq,
			got.ServerID, seq, sendSeq)
	}
}

func TestSingleMessage(t *testing.T) {
	s := newStack(t, stackOpts{})
	aDesk := s.dial("alice", wire.PlatformDesktop)
	aMob := s.dial("alice", wire.PlatformMobile)
	bob := s.dial("bob", wire.PlatformDesktop)

	m1 := text("alice", "bob", "hello bob")
	aDesk.send(m1)

	ack := aDesk.next()
	expectAck(t, ack, m1, 1)
	got := bob.next()
	expectMsg(t, got, m1, 1, 1)
	if got.ServerID != ack.ServerID || got.Platform != wire.PlatformDesktop {
		t.Fatalf("bob got server_id %q platform %d, ack %q", got.ServerID, got.Platform, ack.ServerID)
	}
	echo := aMob.next()
	expectMsg(t, echo, m1, 0, 1) // the echo carries alice's send_seq, not bob's seq

	// Barrier: bob answers. Everything about m1 was queued before this reply
	// is processed, so the next frame of each connection must be the reply
	// (or its ACK): a duplicate ACK or echo would show up first.
	m2 := text("bob", "alice", "hi alice")
	bob.send(m2)
	expectAck(t, bob.next(), m2, 1)
	expectMsg(t, aDesk.next(), m2, 1, 1)
	expectMsg(t, aMob.next(), m2, 1, 1)

	// Stored once, archived (B1), seqs and send seqs as the client saw them.
	es := s.inbox.All()
	if len(es) != 2 || es[0].ServerID != ack.ServerID || es[0].Seq != 1 || es[0].SendSeq != 1 {
		t.Fatalf("inbox %+v", es)
	}
	if h := s.history.All(); len(h) != 2 {
		t.Fatalf("history has %d messages, want 2", len(h))
	}
}

func TestJSONTextFrame(t *testing.T) {
	s := newStack(t, stackOpts{})
	a := s.dial("alice", wire.PlatformDesktop)
	b := s.dial("bob", wire.PlatformMobile)
	m := text("alice", "bob", "json")
	a.sendRaw(websocket.TextMessage, m.AppendJSON(nil))
	expectAck(t, a.next(), m, 1)
	expectMsg(t, b.next(), m, 1, 1)
}

func TestGroupFanOut50(t *testing.T) {
	s := newStack(t, stackOpts{})
	const n = 50
	ids := []string{"owner"}
	for i := range n {
		ids = append(ids, fmt.Sprintf("m%02d", i))
	}
	s.groups.Set("g1", ids...)
	// Members already have different recv seqs: each must get its own.
	for i := range n {
		if i%3 == 0 {
			_, _ = s.seqs.NextRecv(context.Background(), []string{ids[1+i]})
		}
	}
	owner := s.dial("owner", wire.PlatformDesktop)
	ownerMob := s.dial("owner", wire.PlatformMobile)
	members := make([]*client, n)
	for i := range members {
		members[i] = s.dial(ids[1+i], int32(i%2))
	}
	for round := int64(1); round <= 2; round++ {
		m := groupText("owner", "g1", fmt.Sprintf("round %d", round))
		owner.send(m)
		expectAck(t, owner.next(), m, round)
		expectMsg(t, ownerMob.next(), m, 0, round)
		for i, c := range members {
			want := round
			if i%3 == 0 {
				want++
			}
			got := c.next()
			expectMsg(t, got, m, want, 0)
			if got.GroupID != "g1" || got.ReceiverID != "g1" {
				t.Fatalf("member copy has group_id %q receiver_id %q", got.GroupID, got.ReceiverID)
			}
		}
	}
	if got := len(s.inbox.All()); got != 2*(1+n) {
		t.Fatalf("inbox has %d entries, want %d", got, 2*(1+n))
	}
}

func TestRefusedFrames(t *testing.T) {
	s := newStack(t, stackOpts{})
	s.groups.Set("g1", "bob", "carol")
	s.blocks.Block("carol", "alice")
	alice := s.dial("alice", wire.PlatformDesktop)
	bob := s.dial("bob", wire.PlatformDesktop)
	carol := s.dial("carol", wire.PlatformDesktop)

	forged := text("bob", "carol", "forged sender")
	alice.send(forged)
	expectErrorAck(t, alice.next(), forged, "send_id")

	notMember := groupText("alice", "g1", "let me in")
	alice.send(notMember)
	expectErrorAck(t, alice.next(), notMember, "not a member")

	blocked := text("alice", "carol", "blocked")
	alice.send(blocked)
	expectErrorAck(t, alice.next(), blocked, "blocked")

	blockedCall := &wire.Msg{SendID: "alice", ReceiverID: "carol", LocalID: newLocalID(), MsgType: wire.MsgTypeSingleCallInvite,
		ContentType: wire.ContentVideoCall}
	alice.send(blockedCall)
	expectErrorAck(t, alice.next(), blockedCall, "blocked")

	notice := &wire.Msg{SendID: "alice", ReceiverID: "g1", GroupID: "g1", LocalID: newLocalID(), MsgType: wire.MsgTypeGroupDismiss}
	alice.send(notice)
	expectErrorAck(t, alice.next(), notice, "not accepted from a client")

	// A frame that does not decode, but whose local_id can be read.
	bad := text("alice", "bob", "x").MarshalBincode()
	alice.sendRaw(websocket.BinaryMessage, bad[:len(bad)-3])
	got := alice.next()
	if got.ContentType != wire.ContentError || got.MsgType != wire.MsgTypeMsgRecResp || !strings.HasPrefix(got.LocalID, "local-") {
		t.Fatalf("malformed frame: got %+v", got)
	}
	alice.sendRaw(websocket.BinaryMessage, []byte{1, 2, 3}) // nothing readable: skipped silently

	// Barrier: the first thing bob and carol receive is a legitimate message,
	// so nothing refused reached them. Nothing was stored or consumed a seq.
	ok := text("alice", "bob", "legit")
	alice.send(ok)
	expectAck(t, alice.next(), ok, 1)
	expectMsg(t, bob.next(), ok, 1, 1)
	ok2 := groupText("bob", "g1", "legit group")
	bob.send(ok2)
	expectAck(t, bob.next(), ok2, 1)
	expectMsg(t, carol.next(), ok2, 1, 0)
	if st := s.gw.Stats(); st.Refused != 5 || st.DecodeErrors != 2 {
		t.Fatalf("stats %v", st)
	}
}

func TestSignallingGetsAckWithoutSendSeq(t *testing.T) {
	s := newStack(t, stackOpts{})
	a := s.dial("alice", wire.PlatformDesktop)
	b := s.dial("bob", wire.PlatformDesktop)
	cand := &wire.Msg{SendID: "alice", ReceiverID: "bob", LocalID: newLocalID(), MsgType: wire.MsgTypeCandidate,
		Content: wire.CandidateData{Candidate: "candidate:1"}.MarshalBincode()}
	a.send(cand)
	expectAck(t, a.next(), cand, 0)
	expectMsg(t, b.next(), cand, 0, 0)
	hangup := &wire.Msg{SendID: "alice", ReceiverID: "bob", LocalID: newLocalID(), MsgType: wire.MsgTypeHangup,
		Content: wire.EncodeHangup(61000)}
	a.send(hangup)
	expectAck(t, a.next(), hangup, 1) // a call-log entry: stored, seqs
	expectMsg(t, b.next(), hangup, 1, 1)
	read := &wire.Msg{SendID: "bob", ReceiverID: "alice", LocalID: newLocalID(), MsgType: wire.MsgTypeRead,
		Content: wire.MsgRead{MsgSeq: []int64{1}, UserID: "bob"}.MarshalBincode()}
	b.send(read)
	expectAck(t, b.next(), read, 0)
	// Barrier for the Read: it is never pushed to alice.
	m := text("bob", "alice", "after read")
	b.send(m)
	expectAck(t, b.next(), m, 1)
	expectMsg(t, a.next(), m, 1, 1)
	for _, e := range s.inbox.All() {
		if e.ReceiverID == "bob" && e.Seq == 1 && !e.IsRead {
			t.Fatal("Read did not mark bob's entry")
		}
	}
}

func TestKnockOff(t *testing.T) {
	s := newStack(t, stackOpts{})
	first := s.dial("alice", wire.PlatformMobile)
	other := s.dial("alice", wire.PlatformDesktop) // another platform is not knocked off
	second := s.dial("alice", wire.PlatformMobile)
	err := first.closed()
	if closeCode(err) != gateway.CloseKnockOff || !strings.Contains(err.Error(), "knock off") {
		t.Fatalf("first connection ended with %v, want 4001 knock off", err)
	}
	bob := s.dial("bob", wire.PlatformDesktop)
	m := text("bob", "alice", "to the new one")
	bob.send(m)
	expectAck(t, bob.next(), m, 1)
	expectMsg(t, second.next(), m, 1, 1)
	expectMsg(t, other.next(), m, 1, 1)
	// The knocked-off connection's reader ends asynchronously after its
	// Close frame: wait (bounded) for the count to settle.
	st := s.gw.Stats()
	for i := 0; i < 500 && st.Connections != 3; i++ {
		time.Sleep(10 * time.Millisecond)
		st = s.gw.Stats()
	}
	if st.KnockedOff != 1 || st.Connections != 3 {
		t.Fatalf("stats %v", st)
	}
}

func TestBadToken(t *testing.T) {
	s := newStack(t, stackOpts{})
	for _, tok := range []string{"garbage", "tok-mallory"} {
		c, err := s.tryDial("alice", 0, tok, false)
		if err != nil {
			t.Fatalf("token %q: the upgrade must succeed, then close: %v", tok, err)
		}
		go c.readLoop()
		err = c.closed()
		if closeCode(err) != gateway.CloseBadToken || !strings.Contains(err.Error(), "knock off") {
			t.Fatalf("token %q: %v, want close 4002 knock off", tok, err)
		}
	}
	if s.gw.Online("alice") {
		t.Fatal("refused connection registered")
	}
}

func TestSlowClientIsDisconnectedWithoutStallingOthers(t *testing.T) {
	s := newStack(t, stackOpts{cfg: gateway.Config{SendQueueBytes: 64 << 10}})
	slow, err := s.tryDial("slow", 0, "tok-slow", false) // never reads
	if err != nil {
		t.Fatal(err)
	}
	s.waitOnline("slow", 0)
	fast := s.dial("fast", 0)
	big := &wire.Msg{SendID: "x", ReceiverID: "slow", MsgType: wire.MsgTypeSingleMsg, Content: make([]byte, 16<<10)}
	// Both clients get the same traffic; the fast one reads each message
	// before the next is pushed, the slow one reads nothing. Once the kernel
	// buffers of the slow connection are full (a few MiB), its queue fills up
	// and the gateway drops it; Push never blocks, so this loop ends.
	pushed := 0
	for s.gw.Stats().SlowClosed == 0 {
		if pushed > 20000 {
			t.Fatal("the slow client was never disconnected")
		}
		s.gw.Push("slow", msgserver.Delivery{Msg: big})
		s.gw.Push("fast", msgserver.Delivery{Msg: big})
		if got := fast.next(); len(got.Content) != len(big.Content) {
			t.Fatalf("fast client got %d bytes", len(got.Content))
		}
		pushed++
	}
	t.Logf("slow client dropped after %d pushes of %d bytes", pushed, len(big.Content))
	if !s.gw.Online("fast") || s.gw.Stats().SlowClosed != 1 {
		t.Fatalf("the fast client was dropped too: %v", s.gw.Stats())
	}
	m := text("fast", "fast2", "still here")
	fast.send(m)
	expectAck(t, fast.next(), m, 1)
	// The slow connection is gone: reading now ends in an error.
	go slow.readLoop()
	for {
		select {
		case <-slow.in:
			continue
		case <-slow.done:
		}
		break
	}
	if s.gw.Online("slow") {
		// The reader unregisters right after the close; wait for it.
		deadline := time.Now().Add(20 * time.Second)
		for s.gw.Online("slow") && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if s.gw.Online("slow") {
			t.Fatal("slow client still registered")
		}
	}
}

func TestDeadConnectionDropsAndLiveOneAnswersPings(t *testing.T) {
	s := newStack(t, stackOpts{cfg: gateway.Config{PingInterval: 20 * time.Millisecond, ReadTimeout: 100 * time.Millisecond}})
	dead, err := s.tryDial("dead", 0, "tok-dead", false) // reads nothing, so never answers pings
	if err != nil {
		t.Fatal(err)
	}
	_ = dead
	s.waitOnline("dead", 0)
	live := s.dial("live", 0)
	deadline := time.Now().Add(20 * time.Second)
	for s.gw.Online("dead") {
		if time.Now().After(deadline) {
			t.Fatal("a connection that never answers was not dropped")
		}
		time.Sleep(5 * time.Millisecond)
	}
	for live.pings.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("no server pings")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !s.gw.Online("live") {
		t.Fatal("a connection answering pings was dropped")
	}
	m := text("live", "live2", "still works")
	live.send(m)
	expectAck(t, live.next(), m, 1)
}

// crashPusher drops deliveries: the process "dies" after storing and before
// pushing.
type crashPusher struct{}

func (crashPusher) Push(context.Context, []msgserver.Delivery) {}

var errCrash = errors.New("simulated crash before commit")

func TestReplayAfterCrashStoresAndDeliversOnce(t *testing.T) {
	s := newStack(t, stackOpts{noConsumer: true})
	alice := s.dial("alice", wire.PlatformDesktop)
	bob := s.dial("bob", wire.PlatformDesktop)
	s.groups.Set("g1", "alice", "bob", "carol")
	carol := s.dial("carol", wire.PlatformDesktop)

	m1 := text("alice", "bob", "survives the crash")
	alice.send(m1)
	expectAck(t, alice.next(), m1, 1) // durable on the bus
	m2 := groupText("alice", "g1", "group survives")
	alice.send(m2)
	expectAck(t, alice.next(), m2, 2)

	// First life: the consumer stores the batch (both records) and dies
	// before pushing and before committing its position.
	stored := make(chan struct{})
	var once sync.Once
	first := s.consumer(crashPusher{})
	s.runConsumer(func(ctx context.Context) error {
		return s.bus.Consume(ctx, "chat", func(ctx context.Context, recs []bus.Record) error {
			if err := first.Handle(ctx, recs); err != nil {
				return err
			}
			if len(s.inbox.All()) == 1+3 {
				once.Do(func() { close(stored) })
			}
			return errCrash
		})
	})
	<-stored
	s.stop()
	if err := s.bus.Close(); err != nil {
		t.Fatal(err)
	}

	// Second life: a new bus handle on the same file and a normal consumer.
	s.openBus()
	s.startConsumer(s.pusher)
	expectMsg(t, bob.next(), m1, 1, 1)
	expectMsg(t, bob.next(), m2, 2, 0)
	expectMsg(t, carol.next(), m2, 1, 0)

	// Barrier: the next message reaches bob with the next seq, and nothing
	// was delivered twice before it.
	m3 := text("alice", "bob", "after restart")
	alice.send(m3)
	expectAck(t, alice.next(), m3, 3)
	expectMsg(t, bob.next(), m3, 3, 3)
	if n := len(s.inbox.All()); n != 1+3+1 {
		t.Fatalf("inbox has %d entries, want 5 (stored once)", n)
	}
	if s.seqs.Recv("bob") != 3 || s.seqs.Recv("carol") != 1 {
		t.Fatalf("replay allocated new seqs: bob %d carol %d", s.seqs.Recv("bob"), s.seqs.Recv("carol"))
	}
}

func TestPathAndUpgradeErrors(t *testing.T) {
	s := newStack(t, stackOpts{})
	for _, p := range []string{"/ws/alice", "/ws/alice/x/alice/0/tok-alice"} {
		resp, err := s.srv.Client().Get(s.srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != 404 {
			t.Errorf("%s: status %d", p, resp.StatusCode)
		}
	}
	// A plain GET on the right path is not a WebSocket handshake.
	resp, err := s.srv.Client().Get(s.srv.URL + "/ws/alice/conn/alice/0/tok-alice")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("plain GET: status %d", resp.StatusCode)
	}
}

func TestGatewayClose(t *testing.T) {
	s := newStack(t, stackOpts{})
	c := s.dial("alice", 0)
	s.gw.Close()
	if err := c.closed(); closeCode(err) != gateway.CloseGoingAway {
		t.Fatalf("close: %v", err)
	}
	_, err := s.tryDial("alice", 0, "tok-alice", false)
	if err == nil {
		t.Fatal("dial after Close succeeded")
	}
	var ne net.Error
	_ = errors.As(err, &ne)
}

// A client that sends a message again under the same local_id (its ACK was
// lost, it reconnected) gets the first ACK again; the message is stored
// and delivered once.
func TestResentFrameIsAnsweredNotStoredTwice(t *testing.T) {
	s := newStack(t, stackOpts{})
	alice := s.dial("alice", wire.PlatformDesktop)
	bob := s.dial("bob", wire.PlatformDesktop)

	m1 := text("alice", "bob", "only once")
	alice.send(m1)
	ack := alice.next()
	expectAck(t, ack, m1, 1)
	expectMsg(t, bob.next(), m1, 1, 1)

	// The same frame on the same connection, then on a new one.
	alice.send(m1)
	if again := alice.next(); again.ServerID != ack.ServerID || again.SendSeq != ack.SendSeq || again.SendTime != ack.SendTime {
		t.Fatalf("ACK of the resent frame: %+v, want the first %+v", again, ack)
	}
	alice2 := s.dial("alice", wire.PlatformDesktop) // knocks the first off
	alice2.send(m1)
	if again := alice2.next(); again.MsgType != wire.MsgTypeMsgRecResp || again.ServerID != ack.ServerID {
		t.Fatalf("ACK on the new connection: %+v, want server_id %s", again, ack.ServerID)
	}

	// Barrier: the next message is bob's next frame, with the next seq.
	m2 := text("alice", "bob", "the next one")
	alice2.send(m2)
	expectAck(t, alice2.next(), m2, 2)
	expectMsg(t, bob.next(), m2, 2, 2)
	if n := len(s.inbox.All()); n != 2 {
		t.Fatalf("inbox has %d entries, want 2 (each message once)", n)
	}
	if st := s.gw.Stats(); st.Resends != 2 {
		t.Fatalf("resends %d, want 2", st.Resends)
	}
}
