package app_test

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/sandcat-im/sandcat/im/client"
	"github.com/sandcat-im/sandcat/im/wire"
)

// want is what a frame must carry. server "" means "any non-empty
// server_id"; content nil means "empty content"; local "" is not checked.
type want struct {
	typ     wire.MsgType
	ct      int32
	send    string
	recv    string
	group   string
	local   string
	server  string
	seq     int64
	sendSeq int64
	content []byte
}

func expect(t *testing.T, where string, got wire.Msg, w want) {
	t.Helper()
	var bad []string
	check := func(ok bool, f string, args ...any) {
		if !ok {
			bad = append(bad, fmt.Sprintf(f, args...))
		}
	}
	check(got.MsgType == w.typ, "msg_type %d, want %d", got.MsgType, w.typ)
	check(got.ContentType == w.ct, "content_type %d, want %d", got.ContentType, w.ct)
	check(got.SendID == w.send, "send_id %q, want %q", got.SendID, w.send)
	check(got.ReceiverID == w.recv, "receiver_id %q, want %q", got.ReceiverID, w.recv)
	check(got.GroupID == w.group, "group_id %q, want %q", got.GroupID, w.group)
	check(w.local == "" || got.LocalID == w.local, "local_id %q, want %q", got.LocalID, w.local)
	check(got.ServerID != "" && (w.server == "" || got.ServerID == w.server), "server_id %q, want %q", got.ServerID, w.server)
	check(got.SendTime > 0, "send_time %d", got.SendTime)
	check(got.Seq == w.seq, "seq %d, want %d", got.Seq, w.seq)
	check(got.SendSeq == w.sendSeq, "send_seq %d, want %d", got.SendSeq, w.sendSeq)
	check(bytes.Equal(got.Content, w.content), "content %q, want %q", trunc(got.Content), trunc(w.content))
	if len(bad) > 0 {
		t.Errorf("%s: %v\n  got %s", where, bad, describe([]wire.Msg{got}))
	}
}

func text(from *dev, to *user, s string) *wire.Msg {
	return &wire.Msg{ReceiverID: to.ID, MsgType: wire.MsgTypeSingleMsg, ContentType: wire.ContentText,
		Content: []byte(s), Platform: from.c.Platform, Avatar: from.u.Avatar, Nickname: from.u.Name}
}

// makeFriends has a request b and b agree, checking both notices: the
// request to b (b's next seq) with its echo to every device of a, and the
// answer to a (a's next seq, empty send_id, no echo). aSeq/bSeq are the
// users' recv seqs before, aSend a's send seq before.
func makeFriends(t *testing.T, a, b *user, aSeq, bSeq, aSend int64) {
	t.Helper()
	ctx := ctxT(t)
	apply, remark := "hello from "+a.Name, "my friend "+b.Name
	fs, err := a.api.RequestFriend(ctx, client.FriendRequest{UserID: a.ID, FriendID: b.ID, ApplyMsg: &apply, ReqRemark: &remark, Source: "search"})
	if err != nil {
		t.Fatalf("friend request: %v", err)
	}
	if fs.FsID == "" || fs.UserID != b.ID || fs.Name != b.Name || fs.Status != wire.FriendPending || fs.ApplyMsg != nil ||
		fs.Remark == nil || *fs.Remark != remark || fs.Source != "search" {
		t.Fatalf("friend request answer: %+v", fs)
	}
	var reqServerID string
	for i, got := range b.quiet() {
		if len(got) != 1 {
			t.Fatalf("%s got %s, want one FriendApplyReq", b.devices[i].name, describe(got))
		}
		expect(t, "FriendApplyReq to "+b.devices[i].name, got[0], want{typ: wire.MsgTypeFriendApplyReq, send: a.ID, recv: b.ID,
			server: reqServerID, seq: bSeq + 1, sendSeq: aSend + 1, content: got[0].Content})
		reqServerID = got[0].ServerID
		var fw wire.FriendshipWithUser
		if err := fw.UnmarshalBincode(got[0].Content); err != nil {
			t.Fatalf("FriendApplyReq content: %v", err)
		}
		if fw.FsID != fs.FsID || fw.UserID != a.ID || fw.Name != a.Name || fw.Avatar != a.Avatar || fw.ApplyMsg == nil ||
			*fw.ApplyMsg != apply || fw.Status != wire.FriendPending || fw.Source != "search" || fw.Account != a.ID {
			t.Errorf("FriendApplyReq content: %+v", fw)
		}
	}
	// The request came from the API, not from a connection: every device of
	// the requester gets the echo, with seq 0 and the requester's send_seq.
	for i, got := range a.quiet() {
		if len(got) != 1 {
			t.Fatalf("%s got %s, want one FriendApplyReq echo", a.devices[i].name, describe(got))
		}
		expect(t, "FriendApplyReq echo to "+a.devices[i].name, got[0], want{typ: wire.MsgTypeFriendApplyReq, send: a.ID, recv: b.ID,
			server: reqServerID, seq: 0, sendSeq: aSend + 1, content: got[0].Content})
	}

	respRemark := "my friend " + a.Name
	fr, err := b.api.AgreeFriend(ctx, fs.FsID, nil, &respRemark)
	if err != nil {
		t.Fatalf("agree: %v", err)
	}
	if fr.FsID != fs.FsID || fr.FriendID != a.ID || fr.Name != a.Name || fr.Status != wire.FriendAccepted ||
		fr.Remark == nil || *fr.Remark != respRemark {
		t.Fatalf("agree answer: %+v", fr)
	}
	for i, got := range a.quiet() {
		if len(got) != 1 {
			t.Fatalf("%s got %s, want one FriendApplyResp", a.devices[i].name, describe(got))
		}
		expect(t, "FriendApplyResp to "+a.devices[i].name, got[0], want{typ: wire.MsgTypeFriendApplyResp, send: "", recv: a.ID,
			seq: aSeq + 1, sendSeq: 0, content: got[0].Content})
		var f wire.Friend
		if err := f.UnmarshalBincode(got[0].Content); err != nil {
			t.Fatalf("FriendApplyResp content: %v", err)
		}
		if f.FsID != fs.FsID || f.FriendID != b.ID || f.Name != b.Name || f.Status != wire.FriendAccepted ||
			f.Remark == nil || *f.Remark != remark {
			t.Errorf("FriendApplyResp content: %+v", f)
		}
	}
	for i, got := range b.quiet() {
		if len(got) != 0 {
			t.Errorf("%s got %s after agreeing, want nothing (the answer has no sender)", b.devices[i].name, describe(got))
		}
	}
}

// Scenario a: register, log in, become friends through /friend with the
// notices over the WebSocket, and chat both ways.
func TestFriendsAndChat(t *testing.T) {
	friendsAndChat(t, startServer(t))
}

func friendsAndChat(t *testing.T, s *server) {
	ann, bob := s.newUser("Ann"), s.newUser("Bob")
	annD, bobD := ann.dial(wire.PlatformDesktop), bob.dial(wire.PlatformDesktop)

	makeFriends(t, ann, bob, 0, 0, 0)
	// Ann: recv seq 1 (the answer), send seq 1 (the request). Bob: recv 1
	// (the request), send 0 (the answer consumes none: it has no sender).
	if got := ann.seqs(); got != (client.Seqs{Seq: 1, SendSeq: 1}) {
		t.Fatalf("ann's seqs %+v after the friendship", got)
	}
	if got := bob.seqs(); got != (client.Seqs{Seq: 1, SendSeq: 0}) {
		t.Fatalf("bob's seqs %+v after the friendship", got)
	}

	// Interleaved chat, pipelined: every frame is sent before any ACK is
	// read; Bob sends every other frame as JSON text.
	var all []sentMsg
	for i := range 6 {
		a := text(annD, bob, fmt.Sprintf("ann→bob %d", i))
		annD.send(a)
		b := text(bobD, ann, fmt.Sprintf("bob→ann %d", i))
		if i%2 == 1 {
			b.SendID, b.LocalID, b.CreateTime = bob.ID, bobD.localID(), 1
			if err := bobD.c.SendJSON(b); err != nil {
				t.Fatal(err)
			}
		} else {
			bobD.send(b)
		}
		all = append(all, sentMsg{annD, bobD, a}, sentMsg{bobD, annD, b})
	}
	checkChat(t, all, map[*dev]int64{annD: 1, bobD: 0}, map[*dev]int64{annD: 1, bobD: 1})
	if got := ann.seqs(); got != (client.Seqs{Seq: 7, SendSeq: 7}) {
		t.Errorf("ann's seqs %+v after the chat", got)
	}
	if got := bob.seqs(); got != (client.Seqs{Seq: 7, SendSeq: 6}) {
		t.Errorf("bob's seqs %+v after the chat", got)
	}
}

type sentMsg = struct {
	from, to *dev
	m        *wire.Msg
}

// checkChat reads the ACKs of every sent message (send seqs continue from
// sendSeq per sending device's user, with no gap), then checks that each
// receiving device got exactly its messages with recv seqs continuing from
// recvSeq, in order, and nothing else (no second ACK, no echo: the users
// have one device each).
func checkChat(t *testing.T, all []sentMsg, sendSeq, recvSeq map[*dev]int64) {
	t.Helper()
	acks := make(map[*wire.Msg]wire.Msg)
	for _, x := range all {
		a := x.from.ack(x.m.LocalID)
		sendSeq[x.from]++
		if a.SendSeq != sendSeq[x.from] {
			t.Errorf("%s: ACK of %q has send_seq %d, want %d", x.from.name, x.m.Content, a.SendSeq, sendSeq[x.from])
		}
		acks[x.m] = a
	}
	got := make(map[*dev][]wire.Msg)
	for _, x := range all {
		if _, ok := got[x.to]; !ok {
			got[x.to] = x.to.quiet()
		}
	}
	for _, x := range all {
		if _, ok := got[x.from]; !ok {
			got[x.from] = x.from.quiet()
		}
	}
	for _, x := range all {
		frames := got[x.to]
		if len(frames) == 0 {
			t.Errorf("%s never got %q", x.to.name, x.m.Content)
			continue
		}
		m := frames[0]
		got[x.to] = frames[1:]
		recvSeq[x.to]++
		expect(t, x.to.name+" receiving "+string(x.m.Content), m, want{typ: x.m.MsgType, ct: x.m.ContentType, send: x.from.u.ID,
			recv: x.to.u.ID, local: x.m.LocalID, server: acks[x.m].ServerID, seq: recvSeq[x.to], sendSeq: acks[x.m].SendSeq, content: x.m.Content})
		if m.Avatar != x.m.Avatar || m.Nickname != x.m.Nickname || m.Platform != x.from.c.Platform || m.CreateTime != x.m.CreateTime {
			t.Errorf("%s: avatar %q nickname %q platform %d create_time %d, want %q %q %d %d", x.to.name, m.Avatar, m.Nickname,
				m.Platform, m.CreateTime, x.m.Avatar, x.m.Nickname, x.from.c.Platform, x.m.CreateTime)
		}
	}
	for d, rest := range got {
		if len(rest) > 0 {
			t.Errorf("%s got more than its messages: %s", d.name, describe(rest))
		}
	}
}
