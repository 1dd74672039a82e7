package app_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/im/client"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/matrix"
)

func TestBridgeTextBothWays(t *testing.T) { testBridgeTextBothWays(t, startBridgeEnv(t)) }

func testBridgeTextBothWays(t *testing.T, e *bridgeEnv) {
	ctx := ctxT(t)
	g := e.bridgedGroup()
	alice, bob, aD, bD, gid, bot, room, botUID := g.alice, g.bob, g.aD, g.bD, g.gid, g.bot, g.room, g.botUID

	// The alias of a group not bridged yet resolves: the homeserver asks
	// the bridge, which creates the portal; the bridge route then answers
	// that portal. An alias of no group does not resolve.
	inv2, err := alice.api.CreateGroup(ctx, alice.ID, "Second", "g.png", []string{bob.ID})
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	alias2 := id.NewRoomAlias("_sandcat_"+id.EncodeUserLocalpart(inv2.Info.ID), e.hs.ServerName)
	r2, err := bot.cli.ResolveAlias(ctx, alias2)
	if err != nil {
		t.Fatalf("resolve %s: %v", alias2, err)
	}
	var p2 matrix.PortalResponse
	routes := &client.HTTP{Base: "http://" + e.listen, Token: alice.Login.Token}
	if err := routes.Call(ctx, "POST", "/matrix/group/"+inv2.Info.ID+"/bridge", nil, &p2); err != nil {
		t.Fatalf("bridge route: %v", err)
	}
	if p2.RoomID != r2.RoomID.String() || p2.Alias != alias2.String() || p2.RoomID == room.String() {
		t.Fatalf("bridge route %+v, alias resolved to %s", p2, r2.RoomID)
	}
	noGroup := id.NewRoomAlias("_sandcat_nosuchgroup", e.hs.ServerName)
	if _, err := bot.cli.ResolveAlias(ctx, noGroup); !errors.Is(err, mautrix.MNotFound) {
		t.Fatalf("resolve %s: %v, want M_NOT_FOUND", noGroup, err)
	}
	// Native clients list it like any member, named from Matrix.
	var ms struct {
		Members []wire.GroupMember `json:"members"`
	}
	if err := alice.api.Call(ctx, "GET", "/group/member/"+alice.ID+"/"+gid, nil, &ms); err != nil {
		t.Fatalf("group members: %v", err)
	}
	var botMember *wire.GroupMember
	for i := range ms.Members {
		if ms.Members[i].UserID == botUID {
			botMember = &ms.Members[i]
		}
	}
	if len(ms.Members) != 3 || botMember == nil || botMember.GroupName != "bot1" || botMember.Role != wire.RoleMember {
		t.Fatalf("group members %+v: want Alice, Bob and bot1 (%s)", ms.Members, botUID)
	}

	// Sandcat → Matrix: three messages from two senders, in order, sent by
	// their puppets, with Sandcat's send_time as origin_server_ts.
	type sent struct {
		d    *dev
		text string
		ack  wire.Msg
	}
	out := []*sent{{d: aD, text: "hello Matrix"}, {d: bD, text: "hi from Bob"}, {d: aD, text: "second from Alice"}}
	for _, s := range out {
		s.ack = s.d.sendOK(&wire.Msg{ReceiverID: gid, GroupID: gid, MsgType: wire.MsgTypeGroupMsg,
			ContentType: wire.ContentText, Content: []byte(s.text), Nickname: s.d.u.Name})
	}
	evts := bot.messages(room, len(out))
	for i, s := range out {
		ev := evts[i]
		mc := ev.Content.AsMessage()
		if ev.Sender != e.puppet(s.d.u.ID) || mc.Body != s.text || mc.MsgType != event.MsgText ||
			ev.Timestamp != s.ack.SendTime {
			t.Fatalf("matrix event %d: sender %s body %q type %s ts %d; want %s %q m.text %d",
				i, ev.Sender, mc.Body, mc.MsgType, ev.Timestamp, e.puppet(s.d.u.ID), s.text, s.ack.SendTime)
		}
	}
	if dn, err := bot.cli.GetDisplayName(ctx, e.puppet(alice.ID)); err != nil || dn.DisplayName != "Alice" {
		t.Fatalf("display name of Alice's puppet: %+v, %v", dn, err)
	}

	// Matrix → Sandcat: two messages and a reply to Alice's first.
	var mxEvents []id.EventID
	for _, text := range []string{"hello Sandcat", "second from Matrix"} {
		r, err := bot.cli.SendText(ctx, room, text)
		if err != nil {
			t.Fatalf("bot sends: %v", err)
		}
		mxEvents = append(mxEvents, r.EventID)
	}
	reply := &event.MessageEventContent{MsgType: event.MsgText, Body: "a reply to Alice"}
	reply.RelatesTo = (&event.RelatesTo{}).SetReplyTo(evts[0].ID)
	r, err := bot.cli.SendMessageEvent(ctx, room, event.EventMessage, reply)
	if err != nil {
		t.Fatalf("bot replies: %v", err)
	}
	mxEvents = append(mxEvents, r.EventID)
	texts := []string{"hello Sandcat", "second from Matrix", "a reply to Alice"}
	var fromMatrix []wire.Msg // as Alice's desktop got them
	for _, d := range []*dev{aD, bD} {
		var lastSeq int64
		for i, text := range texts {
			m := d.until("Matrix message "+text, func(m *wire.Msg) bool {
				return m.MsgType == wire.MsgTypeGroupMsg && m.SendID == botUID
			})
			ev, err := bot.cli.GetEvent(ctx, room, mxEvents[i])
			if err != nil {
				t.Fatal(err)
			}
			if string(m.Content) != text || m.ContentType != wire.ContentText || m.GroupID != gid || m.ReceiverID != gid ||
				m.CreateTime != ev.Timestamp || m.SendTime < m.CreateTime || m.Seq <= lastSeq || m.Nickname != "bot1" {
				t.Fatalf("%s: Matrix message %d: %s; want %q created at %d", d.name, i, describe([]wire.Msg{m}), text, ev.Timestamp)
			}
			lastSeq = m.Seq
			wantRel := ""
			if i == 2 {
				wantRel = out[0].ack.ServerID
			}
			if gotRel := deref(m.RelatedMsgID); gotRel != wantRel {
				t.Fatalf("%s: Matrix message %d: related_msg_id %q, want %q", d.name, i, gotRel, wantRel)
			}
			if d == aD {
				fromMatrix = append(fromMatrix, m)
			}
		}
	}

	// The homeserver delivering a handled event again, in a new transaction
	// and then in the same one again, changes nothing.
	first, err := bot.cli.GetEvent(ctx, room, mxEvents[0])
	if err != nil {
		t.Fatal(err)
	}
	first.RoomID = room
	hs := &client.HTTP{Base: "http://" + e.listen, Token: e.hsToken}
	for range 2 {
		if err := hs.Call(ctx, "PUT", "/_matrix/app/v1/transactions/replay-1", map[string]any{"events": []*event.Event{first}}, nil); err != nil {
			t.Fatalf("replayed transaction: %v", err)
		}
	}

	// A Sandcat reply to the bot's first message becomes a Matrix reply; it
	// is also the last message: nothing else (no echo, no duplicate) may
	// have come before it on either side.
	ack := aD.sendOK(&wire.Msg{ReceiverID: gid, GroupID: gid, MsgType: wire.MsgTypeGroupMsg, ContentType: wire.ContentText,
		Content: []byte("Alice answers"), RelatedMsgID: &fromMatrix[0].ServerID})
	evts = bot.messages(room, len(out)+1)
	last := evts[len(evts)-1]
	if len(evts) != len(out)+1 || last.Sender != e.puppet(alice.ID) || last.Timestamp != ack.SendTime ||
		last.Content.AsMessage().RelatesTo.GetReplyTo() != mxEvents[0] {
		t.Fatalf("%d Matrix messages; the last: sender %s ts %d content %+v; want the reply to %s",
			len(evts), last.Sender, last.Timestamp, last.Content.AsMessage(), mxEvents[0])
	}
	got := e.quiet(aD, bD)
	for i, d := range []*dev{aD, bD} {
		var rest []wire.Msg
		for _, m := range got[i] {
			if m.SendID == botUID {
				rest = append(rest, m)
			}
		}
		if len(rest) != 0 {
			t.Fatalf("%s got more from Matrix: %s", d.name, describe(rest))
		}
	}
	// Bob's device has the Sandcat messages of the others, once each.
	var bobGot []string
	for _, m := range got[1] {
		if m.MsgType == wire.MsgTypeGroupMsg {
			bobGot = append(bobGot, string(m.Content))
		}
	}
	if fmt.Sprint(bobGot) != fmt.Sprint([]string{"hello Matrix", "second from Alice", "Alice answers"}) {
		t.Fatalf("Bob's device got %q", bobGot)
	}

	// Alice's chat with the Matrix user becomes a direct chat on Matrix: her
	// puppet creates it and invites the bot; the answer comes back to her.
	dmAck := aD.sendOK(&wire.Msg{ReceiverID: botUID, MsgType: wire.MsgTypeSingleMsg, ContentType: wire.ContentText,
		Content: []byte("a private word")})
	alicePuppet := e.puppet(alice.ID)
	invites := bot.wait("DM invitations", 1, func(ev *event.Event) bool {
		return ev.Type == event.StateMember && ev.GetStateKey() == bot.cli.UserID.String() && ev.RoomID != room &&
			ev.Content.AsMember().Membership == event.MembershipInvite && ev.Sender == alicePuppet
	})
	dmRoom := invites[0].RoomID
	if _, err := bot.cli.JoinRoomByID(ctx, dmRoom); err != nil {
		t.Fatalf("bot joins the DM: %v", err)
	}
	dm := bot.messages(dmRoom, 1)
	if len(dm) != 1 || dm[0].Sender != alicePuppet || dm[0].Content.AsMessage().Body != "a private word" ||
		dm[0].Timestamp != dmAck.SendTime {
		t.Fatalf("DM on Matrix: %d messages, first from %s: %+v at %d", len(dm), dm[0].Sender, dm[0].Content.AsMessage(), dm[0].Timestamp)
	}
	dmReply, err := bot.cli.SendText(ctx, dmRoom, "a private answer")
	if err != nil {
		t.Fatalf("bot answers the DM: %v", err)
	}
	answer := aD.until("the DM answer", func(m *wire.Msg) bool {
		return m.MsgType == wire.MsgTypeSingleMsg && m.SendID == botUID
	})
	if string(answer.Content) != "a private answer" || answer.ReceiverID != alice.ID || answer.GroupID != "" ||
		answer.Seq == 0 || answer.LocalID != dmReply.EventID.String() {
		t.Fatalf("DM answer in Sandcat: %s", describe([]wire.Msg{answer}))
	}

	// A new display name on Matrix renames the Sandcat user.
	if err := bot.cli.SetDisplayName(ctx, "Bot One"); err != nil {
		t.Fatalf("bot renames itself: %v", err)
	}
	deadline := time.Now().Add(waitFrame)
	for {
		if err := alice.api.Call(ctx, "GET", "/group/member/"+alice.ID+"/"+gid, nil, &ms); err != nil {
			t.Fatalf("group members: %v", err)
		}
		i := slices.IndexFunc(ms.Members, func(m wire.GroupMember) bool { return m.UserID == botUID })
		if i >= 0 && ms.Members[i].GroupName == "Bot One" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the bot's Sandcat name did not follow: %+v", ms.Members)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// The group's new name becomes the room's.
	if err := alice.api.Call(ctx, "PUT", "/group/"+alice.ID, map[string]string{"id": gid, "name": "Renamed"}, nil); err != nil {
		t.Fatalf("rename: %v", err)
	}
	bot.wait("room names", 1, func(ev *event.Event) bool {
		return ev.RoomID == room && ev.Type == event.StateRoomName && ev.Content.AsRoomName().Name == "Renamed"
	})

	// Bob leaves the Sandcat group: his puppet leaves the room.
	if err := bob.api.Call(ctx, "DELETE", "/group", map[string]any{"user_id": bob.ID, "group_id": gid, "is_dismiss": false}, nil); err != nil {
		t.Fatalf("Bob exits: %v", err)
	}
	bobPuppet := e.puppet(bob.ID).String()
	bot.wait("Bob's puppet leaving", 1, func(ev *event.Event) bool {
		return ev.RoomID == room && ev.Type == event.StateMember && ev.GetStateKey() == bobPuppet &&
			ev.Content.AsMember().Membership == event.MembershipLeave
	})

	// The bot leaves the room: it leaves the Sandcat group.
	if _, err := bot.cli.LeaveRoom(ctx, room); err != nil {
		t.Fatalf("bot leaves: %v", err)
	}
	exit := aD.until("the Matrix member's exit", func(m *wire.Msg) bool {
		return m.MsgType == wire.MsgTypeGroupMemberExit && m.SendID == botUID
	})
	if exit.GroupID != gid {
		t.Fatalf("exit notice %s", describe([]wire.Msg{exit}))
	}
	if err := alice.api.Call(ctx, "GET", "/group/member/"+alice.ID+"/"+gid, nil, &ms); err != nil {
		t.Fatalf("group members: %v", err)
	}
	if len(ms.Members) != 1 || ms.Members[0].UserID != alice.ID {
		t.Fatalf("group members after the exits: %+v", ms.Members)
	}

	// Dismissing the group unbridges the room, with a notice from the
	// bridge bot.
	if err := alice.api.Call(ctx, "DELETE", "/group", map[string]any{"user_id": alice.ID, "group_id": gid, "is_dismiss": true}, nil); err != nil {
		t.Fatalf("dismiss: %v", err)
	}
	// The Matrix bot left the room: read it as the bridge bot.
	bridgeBot, err := mautrix.NewClient(e.hs.URL, id.NewUserID("sandcatbot", e.hs.ServerName), e.asToken)
	if err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(waitFrame)
	for {
		resp, err := bridgeBot.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 5)
		if err != nil {
			t.Fatalf("room history: %v", err)
		}
		// The last message (the bridge then clears its m.bridge state).
		i := slices.IndexFunc(resp.Chunk, func(ev *event.Event) bool { return ev.Type == event.EventMessage })
		if i >= 0 && resp.Chunk[i].Sender == bridgeBot.UserID &&
			strings.Contains(string(resp.Chunk[i].Content.VeryRaw), "group was dismissed") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no dismissal notice in the room")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
