package app_test

// Room state, membership, edits and redactions across the bridge
// (matrix/roomstate.go, matrix/edits.go), end to end.

import (
	"bytes"
	"context"
	"image/color"
	"net/http"
	"slices"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/im/client"
	"github.com/sandcat-im/sandcat/im/testsvc"
	"github.com/sandcat-im/sandcat/im/wire"
)

func TestBridgeStateRoomProfile(t *testing.T) { testBridgeStateRoomProfile(t, startBridgeEnv(t)) }

func TestBridgeStateMembers(t *testing.T) { testBridgeStateMembers(t, startBridgeEnv(t)) }

func TestBridgeEditRedact(t *testing.T) { testBridgeEditRedact(t, startBridgeEnv(t)) }

// bridgeBot is a client acting as the bridge bot (the as_token).
func (e *bridgeEnv) bridgeBot() *mautrix.Client {
	e.t.Helper()
	cli, err := mautrix.NewClient(e.hs.URL, id.NewUserID("sandcatbot", e.hs.ServerName), e.asToken)
	if err != nil {
		e.t.Fatal(err)
	}
	return cli
}

// raisePower gives the Matrix bot power level 50 in the portal (what
// room names, topics, kicks, bans and others' redactions need), as the
// bridge bot, the room's creator.
func (g *bridgedGroup) raisePower(ctx context.Context, t *testing.T, bridgeBot *mautrix.Client) {
	t.Helper()
	var pl event.PowerLevelsEventContent
	if err := bridgeBot.StateEvent(ctx, g.room, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatalf("power levels: %v", err)
	}
	pl.SetUserLevel(g.bot.cli.UserID, 50)
	if _, err := bridgeBot.SendStateEvent(ctx, g.room, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatalf("raise the bot's power level: %v", err)
	}
}

// since returns the events the bot recorded after evtID (all of them if
// it has not seen evtID).
func (b *matrixBot) since(evtID id.EventID) []*event.Event {
	got := b.Events()
	i := slices.IndexFunc(got, func(e *event.Event) bool { return e.ID == evtID })
	return got[i+1:]
}

// replay delivers events to the bridge again as the homeserver would, in
// the transaction txn, twice.
func (e *bridgeEnv) replay(ctx context.Context, txn string, evts ...*event.Event) {
	e.t.Helper()
	hs := &client.HTTP{Base: "http://" + e.listen, Token: e.hsToken}
	for range 2 {
		if err := hs.Call(ctx, "PUT", "/_matrix/app/v1/transactions/"+txn, map[string]any{"events": evts}, nil); err != nil {
			e.t.Fatalf("replayed transaction %s: %v", txn, err)
		}
	}
}

// refetch reads an event back from the homeserver, as a transaction
// carries it.
func (g *bridgedGroup) refetch(ctx context.Context, t *testing.T, evtID id.EventID) *event.Event {
	t.Helper()
	ev, err := g.bot.cli.GetEvent(ctx, g.room, evtID)
	if err != nil {
		t.Fatalf("get %s: %v", evtID, err)
	}
	ev.RoomID = g.room
	return ev
}

// matrixBarrier sends a Matrix message and waits until every native device
// named got it: the homeserver hands the bridge its transactions in order,
// so everything the bot did before has been handled by then.
func (g *bridgedGroup) matrixBarrier(ctx context.Context, t *testing.T, text string, devs ...*dev) {
	t.Helper()
	if _, err := g.bot.cli.SendText(ctx, g.room, text); err != nil {
		t.Fatalf("bot sends: %v", err)
	}
	for _, d := range devs {
		d.until("the Matrix message "+text, func(m *wire.Msg) bool {
			return m.MsgType == wire.MsgTypeGroupMsg && m.SendID == g.botUID && string(m.Content) == text
		})
	}
}

func groupText(gid, s string) *wire.Msg {
	return &wire.Msg{ReceiverID: gid, GroupID: gid, MsgType: wire.MsgTypeGroupMsg, ContentType: wire.ContentText, Content: []byte(s)}
}

// A room's name and topic set on Matrix become the group's name and
// announcement, with GroupUpdate notices from the Matrix user; nothing
// bounces back either way, and a replayed state event changes nothing.
func testBridgeStateRoomProfile(t *testing.T, e *bridgeEnv) {
	ctx := ctxT(t)
	g := e.bridgedGroup()
	alice, aD, bD, gid, bot, room := g.alice, g.aD, g.bD, g.gid, g.bot, g.room
	bridgeBot := e.bridgeBot()
	g.raisePower(ctx, t, bridgeBot)

	nameEvt, err := bot.cli.SendStateEvent(ctx, room, event.StateRoomName, "", &event.RoomNameEventContent{Name: "Named on Matrix"})
	if err != nil {
		t.Fatalf("bot renames the room: %v", err)
	}
	if _, err := bot.cli.SendStateEvent(ctx, room, event.StateTopic, "", &event.TopicEventContent{Topic: "Topic from Matrix"}); err != nil {
		t.Fatalf("bot sets the topic: %v", err)
	}
	want := []struct{ name, announcement string }{{"Named on Matrix", ""}, {"Named on Matrix", "Topic from Matrix"}}
	for _, d := range []*dev{aD, bD} {
		var lastSeq int64
		for i, w := range want {
			n := d.until("a GroupUpdate from Matrix", func(m *wire.Msg) bool {
				return m.MsgType == wire.MsgTypeGroupUpdate && m.GroupID == gid
			})
			var info wire.GroupInfo
			if err := info.UnmarshalBincode(n.Content); err != nil {
				t.Fatalf("%s: GroupUpdate %d content: %v", d.name, i, err)
			}
			if n.SendID != g.botUID || n.ReceiverID != gid || n.Seq <= lastSeq || info.ID != gid ||
				info.Name != w.name || info.Announcement != w.announcement || info.Owner != alice.ID {
				t.Fatalf("%s: GroupUpdate %d: %s with %+v; want from %s: %+v", d.name, i, describe([]wire.Msg{n}), info, g.botUID, w)
			}
			lastSeq = n.Seq
		}
	}
	var info wire.GroupInfo
	if err := alice.api.Call(ctx, "GET", "/group/"+alice.ID+"/"+gid, nil, &info); err != nil {
		t.Fatalf("group info: %v", err)
	}
	if info.Name != "Named on Matrix" || info.Announcement != "Topic from Matrix" {
		t.Fatalf("group info %+v after the Matrix changes", info)
	}

	// Nothing bounces back to Matrix: once a later Sandcat message is in
	// the room, the bridge bot has set no name nor topic since the bot's.
	aD.sendOK(groupText(gid, "after the Matrix renames"))
	bot.wait("Alice's message", 1, func(ev *event.Event) bool {
		return ev.RoomID == room && ev.Type == event.EventMessage && ev.Content.AsMessage().Body == "after the Matrix renames"
	})
	for _, ev := range bot.since(nameEvt.EventID) {
		if ev.Type == event.StateRoomName || ev.Type == event.StateTopic {
			if ev.Sender != bot.cli.UserID {
				t.Fatalf("%s from %s after the bot's rename: the change bounced", ev.Type.Type, ev.Sender)
			}
		}
	}

	// A rename on Sandcat sets the room's name (as the bridge bot) and does
	// not bounce either: the members get Alice's notice only.
	if err := alice.api.Call(ctx, "PUT", "/group/"+alice.ID, map[string]string{"id": gid, "name": "Named on Sandcat"}, nil); err != nil {
		t.Fatalf("rename: %v", err)
	}
	bot.wait("the Sandcat name", 1, func(ev *event.Event) bool {
		return ev.RoomID == room && ev.Type == event.StateRoomName && ev.Sender == bridgeBot.UserID &&
			ev.Content.AsRoomName().Name == "Named on Sandcat"
	})
	// A replay of the Matrix rename, after that, changes nothing.
	e.replay(ctx, "replay-name", g.refetch(ctx, t, nameEvt.EventID))
	g.matrixBarrier(ctx, t, "after the Sandcat rename", aD, bD)
	got := e.quiet(aD, bD)
	for i, d := range []*dev{aD, bD} {
		var updates []wire.Msg
		for _, m := range got[i] {
			if m.MsgType == wire.MsgTypeGroupUpdate {
				updates = append(updates, m)
			}
		}
		if len(updates) != 1 || updates[0].SendID != alice.ID {
			t.Fatalf("%s: GroupUpdates after the Sandcat rename: %s; want Alice's only", d.name, describe(updates))
		}
	}
	if err := alice.api.Call(ctx, "GET", "/group/"+alice.ID+"/"+gid, nil, &info); err != nil {
		t.Fatalf("group info: %v", err)
	}
	if info.Name != "Named on Sandcat" || info.Announcement != "Topic from Matrix" {
		t.Fatalf("group info %+v after the Sandcat rename and the replay", info)
	}
}

// A Sandcat user invited into a bridged group has its puppet join the
// portal. A puppet kicked on Matrix joins again when its user speaks; a
// banned one is announced in the room and its messages are not bridged
// until the ban is lifted.
func testBridgeStateMembers(t *testing.T, e *bridgeEnv) {
	ctx := ctxT(t)
	g := e.bridgedGroup()
	alice, aD, gid, bot, room := g.alice, g.aD, g.gid, g.bot, g.room
	carol := e.newUser("Carol")
	cD := carol.dial(wire.PlatformDesktop)
	carolPuppet := e.puppet(carol.ID)
	memberOf := func(ev *event.Event, who id.UserID, ms event.Membership) bool {
		return ev.RoomID == room && ev.Type == event.StateMember && ev.GetStateKey() == who.String() &&
			ev.Content.AsMember().Membership == ms
	}

	err := alice.api.Call(ctx, "PUT", "/group/invite", map[string]any{"user_id": alice.ID, "group_id": gid, "members": []string{carol.ID}}, nil)
	if err != nil {
		t.Fatalf("Alice invites Carol: %v", err)
	}
	joins := bot.wait("Carol's puppet joining", 1, func(ev *event.Event) bool { return memberOf(ev, carolPuppet, event.MembershipJoin) })
	if dn := joins[0].Content.AsMember().Displayname; dn != "Carol" {
		t.Fatalf("Carol's puppet joined as %q", dn)
	}

	// A kick: the puppet joins again with Carol's next message, which
	// arrives.
	g.raisePower(ctx, t, e.bridgeBot())
	if _, err := bot.cli.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: carolPuppet, Reason: "testing kicks"}); err != nil {
		t.Fatalf("kick Carol's puppet: %v", err)
	}
	leave := bot.wait("Carol's puppet kicked", 1, func(ev *event.Event) bool { return memberOf(ev, carolPuppet, event.MembershipLeave) })[0]
	// Carol speaks once the bridge has seen the kick (a message racing the
	// kick is not bridged: the bridge still believes the puppet joined).
	g.matrixBarrier(ctx, t, "after the kick", aD)
	cD.sendOK(groupText(gid, "Carol is back"))
	msgs := bot.wait("Carol's message after the kick", 1, func(ev *event.Event) bool {
		return ev.RoomID == room && ev.Type == event.EventMessage && ev.Sender == carolPuppet
	})
	if len(msgs) != 1 || msgs[0].Content.AsMessage().Body != "Carol is back" {
		t.Fatalf("Carol's messages on Matrix: %d, first %+v", len(msgs), msgs[0].Content.AsMessage())
	}
	rejoined := false
	for _, ev := range bot.since(leave.ID) {
		if ev.ID == msgs[0].ID {
			break
		}
		rejoined = rejoined || memberOf(ev, carolPuppet, event.MembershipJoin)
	}
	if !rejoined {
		t.Fatal("Carol's message came before her puppet joined again")
	}

	// A ban: the room is told, Carol's messages stay out until the ban is
	// lifted (Alice's later message is bridged, Carol's is not).
	if _, err := bot.cli.BanUser(ctx, room, &mautrix.ReqBanUser{UserID: carolPuppet, Reason: "testing bans"}); err != nil {
		t.Fatalf("ban Carol's puppet: %v", err)
	}
	bridgeBotID := id.NewUserID("sandcatbot", e.hs.ServerName)
	bot.wait("the ban notice", 1, func(ev *event.Event) bool {
		mc := ev.Content.AsMessage()
		return ev.RoomID == room && ev.Sender == bridgeBotID && mc.MsgType == event.MsgNotice &&
			mc.Body == "Carol (Sandcat) is banned from this room: their messages in the Sandcat group will not be bridged here while the ban lasts."
	})
	cD.sendOK(groupText(gid, "Carol while banned"))
	aD.sendOK(groupText(gid, "Alice after the ban"))
	bot.wait("Alice's message after the ban", 1, func(ev *event.Event) bool {
		return ev.RoomID == room && ev.Type == event.EventMessage && ev.Content.AsMessage().Body == "Alice after the ban"
	})
	if n := len(bot.wait("", 0, func(ev *event.Event) bool {
		return ev.RoomID == room && ev.Type == event.EventMessage && ev.Sender == carolPuppet
	})); n != 1 {
		t.Fatalf("Carol has %d messages in the room, want only the one before the ban", n)
	}
	if _, err := bot.cli.UnbanUser(ctx, room, &mautrix.ReqUnbanUser{UserID: carolPuppet}); err != nil {
		t.Fatalf("unban: %v", err)
	}
	cD.sendOK(groupText(gid, "Carol after the unban"))
	msgs = bot.wait("Carol's message after the unban", 2, func(ev *event.Event) bool {
		return ev.RoomID == room && ev.Type == event.EventMessage && ev.Sender == carolPuppet
	})
	if len(msgs) != 2 || msgs[1].Content.AsMessage().Body != "Carol after the unban" {
		t.Fatalf("Carol's messages on Matrix: %d, last %+v", len(msgs), msgs[len(msgs)-1].Content.AsMessage())
	}
}

// A Matrix edit and a redaction of a bridged message reach native clients
// as messages of the Matrix user quoting the original; an edit of another
// user's message is ignored; replaying them changes nothing.
func testBridgeEditRedact(t *testing.T, e *bridgeEnv) {
	ctx := ctxT(t)
	g := e.bridgedGroup()
	aD, bD, gid, bot, room := g.aD, g.bD, g.gid, g.bot, g.room
	fromBot := func(m *wire.Msg) bool { return m.MsgType == wire.MsgTypeGroupMsg && m.SendID == g.botUID }
	devs := []*dev{aD, bD}

	orig, err := bot.cli.SendText(ctx, room, "helo")
	if err != nil {
		t.Fatal(err)
	}
	var origSID string
	for _, d := range devs {
		m := d.until("the original", fromBot)
		if string(m.Content) != "helo" || (origSID != "" && m.ServerID != origSID) {
			t.Fatalf("%s: %s", d.name, describe([]wire.Msg{m}))
		}
		origSID = m.ServerID
	}

	// The edit, after the bot's edit of Alice's message (not its own:
	// ignored, so the first thing the devices get is the real edit).
	aD.sendOK(groupText(gid, "Alice's words"))
	aliceEvt := bot.wait("Alice's message", 1, func(ev *event.Event) bool {
		return ev.RoomID == room && ev.Type == event.EventMessage && ev.Content.AsMessage().Body == "Alice's words"
	})[0]
	fake := &event.MessageEventContent{MsgType: event.MsgText, Body: "not Alice's words"}
	fake.SetEdit(aliceEvt.ID)
	if _, err := bot.cli.SendMessageEvent(ctx, room, event.EventMessage, fake); err != nil {
		t.Fatal(err)
	}
	edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "hello"}
	edit.SetEdit(orig.EventID)
	editEvt, err := bot.cli.SendMessageEvent(ctx, room, event.EventMessage, edit)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		m := d.until("the edit", fromBot)
		if string(m.Content) != "✎ hello" || deref(m.RelatedMsgID) != origSID || m.LocalID != editEvt.EventID.String() ||
			m.ContentType != wire.ContentText || m.GroupID != gid {
			t.Fatalf("%s: the edit: %s related %q; want ✎ hello related %s", d.name, describe([]wire.Msg{m}), deref(m.RelatedMsgID), origSID)
		}
	}

	red, err := bot.cli.RedactEvent(ctx, room, orig.EventID, mautrix.ReqRedact{Reason: "a typo"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range devs {
		m := d.until("the redaction", fromBot)
		if string(m.Content) != "🗑 Message deleted on Matrix: a typo" || deref(m.RelatedMsgID) != origSID ||
			m.LocalID != red.EventID.String() {
			t.Fatalf("%s: the redaction: %s related %q", d.name, describe([]wire.Msg{m}), deref(m.RelatedMsgID))
		}
	}

	// Replays of both change nothing: the next message from the bot is the
	// barrier, and nothing else came.
	e.replay(ctx, "replay-edit", g.refetch(ctx, t, editEvt.EventID), g.refetch(ctx, t, red.EventID))
	g.matrixBarrier(ctx, t, "after the replays", devs...)
	got := e.quiet(aD, bD)
	for i, d := range devs {
		for _, m := range got[i] {
			if fromBot(&m) {
				t.Fatalf("%s got more from Matrix: %s", d.name, describe(got[i]))
			}
		}
	}
}

func TestBridgeEditDM(t *testing.T) { testBridgeEditDM(t, startBridgeEnv(t)) }

// In a direct chat, a Matrix edit reaches the Sandcat user as a SingleMsg
// quoting the original.
func testBridgeEditDM(t *testing.T, e *bridgeEnv) {
	ctx := ctxT(t)
	g := e.bridgedGroup()
	alice, aD, bot := g.alice, g.aD, g.bot
	aD.sendOK(&wire.Msg{ReceiverID: g.botUID, MsgType: wire.MsgTypeSingleMsg, ContentType: wire.ContentText, Content: []byte("psst")})
	alicePuppet := e.puppet(alice.ID)
	invites := bot.wait("the DM invitation", 1, func(ev *event.Event) bool {
		return ev.Type == event.StateMember && ev.GetStateKey() == bot.cli.UserID.String() && ev.RoomID != g.room &&
			ev.Content.AsMember().Membership == event.MembershipInvite && ev.Sender == alicePuppet
	})
	dmRoom := invites[0].RoomID
	if _, err := bot.cli.JoinRoomByID(ctx, dmRoom); err != nil {
		t.Fatalf("bot joins the DM: %v", err)
	}
	bot.messages(dmRoom, 1)
	fromBot := func(m *wire.Msg) bool { return m.MsgType == wire.MsgTypeSingleMsg && m.SendID == g.botUID }
	orig, err := bot.cli.SendText(ctx, dmRoom, "a privte word")
	if err != nil {
		t.Fatal(err)
	}
	om := aD.until("the DM message", fromBot)
	edit := &event.MessageEventContent{MsgType: event.MsgText, Body: "a private word"}
	edit.SetEdit(orig.EventID)
	editEvt, err := bot.cli.SendMessageEvent(ctx, dmRoom, event.EventMessage, edit)
	if err != nil {
		t.Fatal(err)
	}
	m := aD.until("the DM edit", fromBot)
	if string(m.Content) != "✎ a private word" || deref(m.RelatedMsgID) != om.ServerID || m.ReceiverID != alice.ID ||
		m.GroupID != "" || m.LocalID != editEvt.EventID.String() {
		t.Fatalf("the DM edit: %s related %q, want related %s", describe([]wire.Msg{m}), deref(m.RelatedMsgID), om.ServerID)
	}
}

// A Sandcat user who changes name and avatar and stays silent: the puppet
// follows (the bridge's profile sync), with no message needed.
func TestBridgeStatePuppetProfile(t *testing.T) {
	e := startBridgeEnv(t)
	ctx := ctxT(t)
	g := e.bridgedGroup()
	bob, bot := g.bob, g.bot
	puppet := e.puppet(bob.ID)
	if dn, err := bot.cli.GetDisplayName(ctx, puppet); err != nil || dn.DisplayName != "Bob" {
		t.Fatalf("Bob's puppet before: %+v, %v (the portal's members join at its creation)", dn, err)
	}
	pic := testsvc.PNG(t, 7, 5, color.RGBA{R: 200, G: 100, A: 255})
	key, err := bob.api.UploadAvatar(ctx, "bob.png", "image/png", bytes.NewReader(pic))
	if err != nil {
		t.Fatalf("upload avatar: %v", err)
	}
	err = bob.api.Call(ctx, http.MethodPut, "/user", map[string]any{"id": bob.ID, "name": "Robert", "avatar": key,
		"gender": "", "phone": nil, "email": nil, "address": nil, "region": nil, "birthday": nil, "signature": nil}, nil)
	if err != nil {
		t.Fatalf("PUT /user: %v", err)
	}
	deadline := time.Now().Add(waitFrame)
	for {
		dn, err := bot.cli.GetDisplayName(ctx, puppet)
		if err != nil {
			t.Fatal(err)
		}
		url, err := bot.cli.GetAvatarURL(ctx, puppet)
		if err != nil {
			t.Fatal(err)
		}
		if dn.DisplayName == "Robert" && !url.IsEmpty() && bytes.Equal(bot.MXCBytes(ctx, url.CUString()), pic) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Bob's puppet after his profile change: name %q, avatar %s", dn.DisplayName, url)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
