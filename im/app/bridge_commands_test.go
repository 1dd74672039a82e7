package app_test

// The bridge bot's commands and plumbing of existing Matrix rooms, end to
// end against a real homeserver.

import (
	"context"
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

// bridgeBotID is the bridge bot's Matrix id.
func (e *bridgeEnv) bridgeBotID() id.UserID {
	return id.NewUserID("sandcatbot", e.hs.ServerName)
}

// routes is a client of the bridge's HTTP routes with a Sandcat token.
func (e *bridgeEnv) routes(token string) *client.HTTP {
	r := &client.HTTP{Base: "http://" + e.listen, Token: token}
	r.Timeout = time.Minute
	return r
}

// joined waits until user's join of room is in the bot's timeline.
func (b *matrixBot) joined(room id.RoomID, user id.UserID, membership event.Membership) {
	b.t.Helper()
	b.wait(string(user)+" "+string(membership), 1, func(ev *event.Event) bool {
		return ev.RoomID == room && ev.Type == event.StateMember && ev.GetStateKey() == user.String() &&
			ev.Content.AsMember().Membership == membership
	})
}

// answer waits for the bridge bot's notice replying to the event to and
// returns its body.
func (b *matrixBot) answer(room id.RoomID, bot id.UserID, to id.EventID) string {
	b.t.Helper()
	evts := b.wait("the answer to "+to.String(), 1, func(ev *event.Event) bool {
		if ev.RoomID != room || ev.Type != event.EventMessage || ev.Sender != bot {
			return false
		}
		mc := ev.Content.AsMessage()
		return mc.MsgType == event.MsgNotice && mc.RelatesTo.GetReplyTo() == to
	})
	if len(evts) != 1 {
		b.t.Fatalf("%d answers to %s", len(evts), to)
	}
	return evts[0].Content.AsMessage().Body
}

// command sends a text and returns the bridge bot's answer.
func (b *matrixBot) command(ctx context.Context, room id.RoomID, bot id.UserID, text string) string {
	b.t.Helper()
	r, err := b.cli.SendText(ctx, room, text)
	if err != nil {
		b.t.Fatalf("send %q: %v", text, err)
	}
	return b.answer(room, bot, r.EventID)
}

// botNotices returns the bridge bot's notices in room (up to now).
func (b *matrixBot) botNotices(room id.RoomID, bot id.UserID) []string {
	var out []string
	for _, ev := range b.Events() {
		if ev.RoomID == room && ev.Type == event.EventMessage && ev.Sender == bot {
			out = append(out, ev.Content.AsMessage().Body)
		}
	}
	return out
}

// roomWithBridgeBot creates a room as b, inviting the bridge bot (and
// others), and waits until the bridge bot joined. A direct chat when
// direct; powerBot gives the bridge bot power level 100.
func (b *matrixBot) roomWithBridgeBot(ctx context.Context, bot id.UserID, direct, powerBot bool, others ...id.UserID) id.RoomID {
	b.t.Helper()
	req := &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "Matrix side", Invite: append([]id.UserID{bot}, others...), IsDirect: direct}
	if direct {
		req.Preset = "trusted_private_chat"
	}
	if powerBot {
		req.PowerLevelOverride = &event.PowerLevelsEventContent{Users: map[id.UserID]int{b.cli.UserID: 100, bot: 100}}
	}
	r, err := b.cli.CreateRoom(ctx, req)
	if err != nil {
		b.t.Fatalf("create a room: %v", err)
	}
	b.joined(r.RoomID, bot, event.MembershipJoin)
	return r.RoomID
}

// The bot accepts a direct chat and answers help, ping and unknown
// commands there (no prefix needed); in a room with more people only
// "!sandcat " messages are commands.
func TestBridgeCommandsManagementRoom(t *testing.T) {
	testBridgeCommandsManagementRoom(t, startBridgeEnv(t))
}

func testBridgeCommandsManagementRoom(t *testing.T, e *bridgeEnv) {
	ctx := ctxT(t)
	bot := e.bridgeBotID()
	m := newMatrixBotOn(t, e.hs, "manager")
	room := m.roomWithBridgeBot(ctx, bot, true, false)
	m.wait("the welcome", 1, func(ev *event.Event) bool {
		return ev.RoomID == room && ev.Sender == bot && strings.Contains(ev.Content.AsMessage().Body, "help")
	})

	help := m.command(ctx, room, bot, "help")
	for _, want := range []string{"\nhelp — ", "\nping — ", "\nbridge <group id> — ", "\nunbridge <group id> — "} {
		if !strings.Contains(help, want) {
			t.Fatalf("help %q lacks %q", help, want)
		}
	}
	if ping := m.command(ctx, room, bot, "ping"); !strings.HasPrefix(ping, "pong") || !strings.Contains(ping, "homeserver: reachable") {
		t.Fatalf("ping answered %q", ping)
	}
	if ping := m.command(ctx, room, bot, "!sandcat PING"); !strings.HasPrefix(ping, "pong") {
		t.Fatalf("!sandcat PING answered %q", ping)
	}
	if a := m.command(ctx, room, bot, "frobnicate now"); !strings.Contains(a, `Unknown command "frobnicate"`) || !strings.Contains(a, "help") {
		t.Fatalf("unknown command answered %q", a)
	}
	if a := m.command(ctx, room, bot, "bridge"); !strings.HasPrefix(a, "Usage: bridge") {
		t.Fatalf("bridge without a group answered %q", a)
	}
	if a := m.command(ctx, room, bot, "unbridge"); !strings.Contains(a, "not bridged") {
		t.Fatalf("unbridge of a management room answered %q", a)
	}

	// A room with three people: "help" is talk, "!sandcat help" a command.
	other := newMatrixBotOn(t, e.hs, "other")
	group := m.roomWithBridgeBot(ctx, bot, false, false, other.cli.UserID)
	if _, err := other.cli.JoinRoomByID(ctx, group); err != nil {
		t.Fatal(err)
	}
	m.joined(group, other.cli.UserID, event.MembershipJoin)
	if _, err := m.cli.SendText(ctx, group, "help"); err != nil {
		t.Fatal(err)
	}
	if a := m.command(ctx, group, bot, "!sandcat help"); !strings.Contains(a, "\nping — ") {
		t.Fatalf("!sandcat help answered %q", a)
	}
	// Commands are handled in order: the answer to the second came after
	// the first was looked at.
	if n := m.botNotices(group, bot); len(n) != 1 {
		t.Fatalf("the bot said %q in the room of three, want only the help", n)
	}
	// Another bot's notices are never commands either.
	if _, err := other.cli.SendNotice(ctx, group, "!sandcat ping"); err != nil {
		t.Fatal(err)
	}
	if a := other.command(ctx, group, bot, "!sandcat frobnicate"); !strings.Contains(a, "Say !sandcat help") {
		t.Fatalf("unknown command in a room answered %q", a)
	}
	if n := other.botNotices(group, bot); len(n) != 2 {
		t.Fatalf("the bot said %q, want the help and one error", n)
	}
}

// plumbEnv is a Sandcat group of Alice (owner) and Bob, online, not
// bridged.
type plumbEnv struct {
	alice, bob *user
	aD, bD     *dev
	gid        string
}

func (e *bridgeEnv) plainGroup(name string, members ...string) *plumbEnv {
	t := e.t
	t.Helper()
	alice, bob := e.newUser("Alice"), e.newUser("Bob")
	aD, bD := alice.dial(wire.PlatformDesktop), bob.dial(wire.PlatformMobile)
	inv, err := alice.api.CreateGroup(ctxT(t), alice.ID, name, "g.png", append([]string{bob.ID}, members...))
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	e.quiet(aD, bD) // the invitations
	return &plumbEnv{alice: alice, bob: bob, aD: aD, bD: bD, gid: inv.Info.ID}
}

// bothWays checks that messages flow both ways in a bridged room: Alice's
// group message comes from her puppet, the Matrix user's reaches Alice's
// and Bob's devices (after the notice that it joined the group). It
// returns the Matrix user's Sandcat id.
func (e *bridgeEnv) bothWays(p *plumbEnv, m *matrixBot, room id.RoomID, tag string) string {
	t := e.t
	t.Helper()
	ctx := ctxT(t)
	text := "from Sandcat " + tag
	p.aD.sendOK(&wire.Msg{ReceiverID: p.gid, GroupID: p.gid, MsgType: wire.MsgTypeGroupMsg, ContentType: wire.ContentText,
		Content: []byte(text), Nickname: "Alice"})
	m.wait("Alice's message", 1, func(ev *event.Event) bool {
		return ev.RoomID == room && ev.Type == event.EventMessage && ev.Sender == e.puppet(p.alice.ID) &&
			ev.Content.AsMessage().Body == text
	})
	mtext := "from Matrix " + tag
	r, err := m.cli.SendText(ctx, room, mtext)
	if err != nil {
		t.Fatal(err)
	}
	var uid string
	for _, d := range []*dev{p.aD, p.bD} {
		got := d.until("the Matrix message "+tag, func(w *wire.Msg) bool {
			return w.MsgType == wire.MsgTypeGroupMsg && w.GroupID == p.gid && string(w.Content) == mtext
		})
		if got.LocalID != r.EventID.String() || (uid != "" && got.SendID != uid) {
			t.Fatalf("%s: %s", d.name, describe([]wire.Msg{got}))
		}
		uid = got.SendID
	}
	return uid
}

// Plumbing through the HTTP route: owner or admin only, the bot must be
// able to join, one room per group; then messages flow both ways, the
// m.bridge state is set (the bot was given the power), commands in the
// room are not bridged, and DELETE .../bridge unlinks it (the bridge
// leaves the room, its state is emptied, later messages stay on their side).
func TestBridgePlumbRoute(t *testing.T) { testBridgePlumbRoute(t, startBridgeEnv(t)) }

func testBridgePlumbRoute(t *testing.T, e *bridgeEnv) {
	ctx := ctxT(t)
	bot := e.bridgeBotID()
	p := e.plainGroup("Plumbed")
	m := newMatrixBotOn(t, e.hs, "plumber")
	room := m.roomWithBridgeBot(ctx, bot, false, true)
	path := "/matrix/group/" + p.gid + "/plumb"
	asAlice, asBob := e.routes(p.alice.Login.Token), e.routes(p.bob.Login.Token)

	err := asBob.Call(ctx, "POST", path, matrix.PlumbRequest{Room: room.String()}, nil)
	if client.StatusOf(err) != 403 || client.KindOf(err) != "Forbidden" {
		t.Fatalf("plumb by a member: %v, want 403 Forbidden", err)
	}
	err = asAlice.Call(ctx, "POST", path, matrix.PlumbRequest{Room: "not a room"}, nil)
	if client.StatusOf(err) != 400 {
		t.Fatalf("plumb of a bad room: %v, want 400", err)
	}
	closed, err := m.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: "closed"})
	if err != nil {
		t.Fatal(err)
	}
	err = asAlice.Call(ctx, "POST", path, matrix.PlumbRequest{Room: closed.RoomID.String()}, nil)
	if s := client.StatusOf(err); s < 400 || s >= 500 {
		t.Fatalf("plumb of a room the bot was not invited to: %v, want a 4xx", err)
	}
	var resp matrix.PortalResponse
	if err := asAlice.Call(ctx, "POST", path, matrix.PlumbRequest{Room: room.String()}, &resp); err != nil {
		t.Fatalf("plumb by the owner: %v", err)
	}
	if resp.GroupID != p.gid || resp.RoomID != room.String() || resp.Alias != "" {
		t.Fatalf("plumb answered %+v", resp)
	}
	err = asAlice.Call(ctx, "POST", path, matrix.PlumbRequest{Room: room.String()}, nil)
	if client.StatusOf(err) != 409 || client.KindOf(err) != "Conflict" {
		t.Fatalf("second plumb: %v, want 409 Conflict", err)
	}
	m.wait("the plumbing notice", 1, func(ev *event.Event) bool {
		return ev.RoomID == room && ev.Sender == bot && strings.Contains(ev.Content.AsMessage().Body, "now bridged")
	})
	for _, typ := range []event.Type{event.StateBridge, event.StateHalfShotBridge} {
		var info event.BridgeEventContent
		if err := m.cli.StateEvent(ctx, room, typ, matrix.BridgeStateKey(p.gid), &info); err != nil {
			t.Fatalf("%s state: %v", typ.Type, err)
		}
		if info.BridgeBot != bot || info.Protocol.ID != "sandcat" || info.Channel.ID != p.gid || info.Channel.DisplayName != "Plumbed" {
			t.Fatalf("%s state %+v", typ.Type, info)
		}
	}

	muid := e.bothWays(p, m, room, "1")
	// A command in the plumbed room is answered and never bridged: the next
	// Matrix message is the next one the devices get from that user.
	if a := m.command(ctx, room, bot, "!sandcat ping"); !strings.HasPrefix(a, "pong") {
		t.Fatalf("ping in the plumbed room answered %q", a)
	}
	e.bothWays(p, m, room, "2")
	for i, got := range e.quiet(p.aD, p.bD) {
		for _, w := range got {
			if w.SendID == muid && w.MsgType == wire.MsgTypeGroupMsg {
				t.Fatalf("device %d got more from Matrix: %s", i, describe([]wire.Msg{w}))
			}
		}
	}

	// Unbridge through the route: owner or admin only; then the room stays
	// but the bridge leaves it.
	ub := "/matrix/group/" + p.gid + "/bridge"
	if err := asBob.Call(ctx, "DELETE", ub, nil, nil); client.StatusOf(err) != 403 {
		t.Fatalf("unbridge by a member: %v, want 403", err)
	}
	resp = matrix.PortalResponse{}
	if err := asAlice.Call(ctx, "DELETE", ub, nil, &resp); err != nil || resp.RoomID != room.String() {
		t.Fatalf("unbridge by the owner: %+v, %v", resp, err)
	}
	if err := asAlice.Call(ctx, "DELETE", ub, nil, nil); client.StatusOf(err) != 404 {
		t.Fatalf("unbridge again: %v, want 404", err)
	}
	m.joined(room, bot, event.MembershipLeave)
	m.joined(room, e.puppet(p.alice.ID), event.MembershipLeave)
	for _, typ := range []event.Type{event.StateBridge, event.StateHalfShotBridge} {
		var emptied map[string]any
		if err := m.cli.StateEvent(ctx, room, typ, matrix.BridgeStateKey(p.gid), &emptied); err != nil || len(emptied) != 0 {
			t.Fatalf("%s state after unbridging: %v, %v; want {}", typ.Type, emptied, err)
		}
	}
	e.notBridgedAnyMore(p, m, room, muid)
}

// notBridgedAnyMore checks that an unbridged room and its group no longer
// exchange messages: a message each way, then the group is bridged again
// (a new portal) and a message that does flow there proves the first ones
// were looked at.
func (e *bridgeEnv) notBridgedAnyMore(p *plumbEnv, m *matrixBot, room id.RoomID, muid string) {
	t := e.t
	t.Helper()
	ctx := ctxT(t)
	if _, err := m.cli.SendText(ctx, room, "Matrix after the unbridge"); err != nil {
		t.Fatal(err)
	}
	p.aD.sendOK(&wire.Msg{ReceiverID: p.gid, GroupID: p.gid, MsgType: wire.MsgTypeGroupMsg, ContentType: wire.ContentText,
		Content: []byte("Sandcat after the unbridge")})
	var portal matrix.PortalResponse
	if err := e.routes(p.alice.Login.Token).Call(ctx, "POST", "/matrix/group/"+p.gid+"/invite",
		matrix.InviteRequest{MXID: m.cli.UserID.String()}, &portal); err != nil {
		t.Fatalf("bridge again: %v", err)
	}
	if portal.RoomID == room.String() || portal.Alias == "" {
		t.Fatalf("bridged again into %+v", portal)
	}
	newRoom := id.RoomID(portal.RoomID)
	if _, err := m.cli.JoinRoomByID(ctx, newRoom); err != nil {
		t.Fatalf("join the new portal: %v", err)
	}
	// A portal the bridge creates carries the bridge state (both types).
	for _, typ := range []event.Type{event.StateBridge, event.StateHalfShotBridge} {
		var info event.BridgeEventContent
		if err := m.cli.StateEvent(ctx, newRoom, typ, matrix.BridgeStateKey(p.gid), &info); err != nil {
			t.Fatalf("%s state of the new portal: %v", typ.Type, err)
		}
		if info.BridgeBot != e.bridgeBotID() || info.Creator != e.bridgeBotID() || info.Protocol.ID != "sandcat" || info.Channel.ID != p.gid {
			t.Fatalf("%s state of the new portal: %+v", typ.Type, info)
		}
	}
	// Sandcat → Matrix: the next Sandcat message reaches the new portal;
	// the old room never got the one before.
	p.aD.sendOK(&wire.Msg{ReceiverID: p.gid, GroupID: p.gid, MsgType: wire.MsgTypeGroupMsg, ContentType: wire.ContentText,
		Content: []byte("Sandcat in the new portal")})
	m.wait("the message in the new portal", 1, func(ev *event.Event) bool {
		return ev.RoomID == newRoom && ev.Type == event.EventMessage && ev.Content.AsMessage().Body == "Sandcat in the new portal"
	})
	hist, err := m.cli.Messages(ctx, room, "", "", mautrix.DirectionBackward, nil, 100)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range hist.Chunk {
		if ev.Type == event.EventMessage && strings.Contains(string(ev.Content.VeryRaw), "Sandcat after the unbridge") {
			t.Fatalf("the unbridged room got a Sandcat message from %s", ev.Sender)
		}
	}
	// Matrix → Sandcat: the Matrix message in the new portal arrives; the
	// one in the old room never did.
	if _, err := m.cli.SendText(ctx, newRoom, "Matrix in the new portal"); err != nil {
		t.Fatal(err)
	}
	p.aD.until("the Matrix message in the new portal", func(w *wire.Msg) bool {
		return w.MsgType == wire.MsgTypeGroupMsg && w.SendID == muid && string(w.Content) == "Matrix in the new portal"
	})
	for _, w := range p.aD.quiet() {
		if w.MsgType == wire.MsgTypeGroupMsg && w.SendID == muid {
			t.Fatalf("Alice got %s from the unbridged room", describe([]wire.Msg{w}))
		}
	}
}

// Plumbing with the command "!sandcat bridge <group id>" typed in a Matrix
// room: the user must be the owner or an admin of the Sandcat group and
// have the power to change the room's state; then "!sandcat unbridge".
// A management room's "bridge <group id>" invites its user into the portal.
func TestBridgePlumbCommand(t *testing.T) { testBridgePlumbCommand(t, startBridgeEnv(t)) }

func testBridgePlumbCommand(t *testing.T, e *bridgeEnv) {
	ctx := ctxT(t)
	bot := e.bridgeBotID()
	// bot1 becomes a Sandcat user through a bridged group, then a plain
	// member of a second group.
	g := e.bridgedGroup()
	m := g.bot
	p := e.plainGroup("By command", g.botUID)
	asAlice := e.routes(p.alice.Login.Token)

	room := m.roomWithBridgeBot(ctx, bot, false, false)
	cmd := "!sandcat bridge " + p.gid
	if a := m.command(ctx, room, bot, cmd); !strings.Contains(a, "Only the owner or an admin") {
		t.Fatalf("bridge by a plain member answered %q", a)
	}
	stranger := newMatrixBotOn(t, e.hs, "stranger")
	sroom := stranger.roomWithBridgeBot(ctx, bot, false, false, m.cli.UserID)
	if a := stranger.command(ctx, sroom, bot, cmd); !strings.Contains(a, "not a member") {
		t.Fatalf("bridge by a Matrix user outside the group answered %q", a)
	}
	if a := stranger.command(ctx, sroom, bot, "!sandcat unbridge"); !strings.Contains(a, "not bridged") {
		t.Fatalf("unbridge of a room not bridged answered %q", a)
	}

	// The owner makes bot1 an admin.
	if err := p.alice.api.Call(ctx, "PUT", "/group/member/role", map[string]any{
		"user_id": p.alice.ID, "group_id": p.gid, "member_id": g.botUID, "role": wire.RoleAdmin,
	}, nil); err != nil {
		t.Fatalf("make bot1 an admin: %v", err)
	}
	// An admin without power in the room is refused.
	if _, err := m.cli.JoinRoomByID(ctx, sroom); err != nil {
		t.Fatal(err)
	}
	if a := m.command(ctx, sroom, bot, cmd); !strings.Contains(a, "need the power") {
		t.Fatalf("bridge by an admin without power in the room answered %q", a)
	}
	// In its own room, it plumbs (the bot has no power to set m.bridge: it
	// goes on without it).
	if a := m.command(ctx, room, bot, cmd); !strings.Contains(a, "now bridged") {
		t.Fatalf("bridge by an admin answered %q", a)
	}
	if a := m.command(ctx, room, bot, cmd); !strings.Contains(a, "already bridged") {
		t.Fatalf("bridge again answered %q", a)
	}
	if a := stranger.command(ctx, sroom, bot, cmd); !strings.Contains(a, "not a member") {
		t.Fatalf("bridge of a bridged group by a stranger answered %q", a)
	}
	// The existing member joins the group as it speaks; Alice's puppet is
	// invited by the bot and joins.
	e.bothWays(p, m, room, "1")

	// A stranger in the plumbed room may not unbridge it.
	if _, err := m.cli.InviteUser(ctx, room, &mautrix.ReqInviteUser{UserID: stranger.cli.UserID}); err != nil {
		t.Fatal(err)
	}
	if _, err := stranger.cli.JoinRoomByID(ctx, room); err != nil {
		t.Fatal(err)
	}
	if a := stranger.command(ctx, room, bot, "!sandcat unbridge"); !strings.Contains(a, "Only the owner or an admin") {
		t.Fatalf("unbridge by a stranger answered %q", a)
	}
	if _, err := m.cli.SendText(ctx, room, "!sandcat unbridge"); err != nil {
		t.Fatal(err)
	}
	m.wait("the unbridge notice", 1, func(ev *event.Event) bool {
		return ev.RoomID == room && ev.Sender == bot && strings.Contains(ev.Content.AsMessage().Body, "no longer bridged")
	})
	m.joined(room, bot, event.MembershipLeave)
	var gone matrix.PortalResponse
	if err := asAlice.Call(ctx, "DELETE", "/matrix/group/"+p.gid+"/bridge", nil, &gone); client.StatusOf(err) != 404 {
		t.Fatalf("unbridge route after the command: %+v %v, want 404", gone, err)
	}
	e.notBridgedAnyMore(p, m, room, g.botUID)

	// In a management room, "bridge <group id>" of a bridged group invites
	// its admin into the portal.
	mgmt := m.roomWithBridgeBot(ctx, bot, true, false)
	a := m.command(ctx, mgmt, bot, "bridge "+g.gid)
	if !strings.Contains(a, "Only the owner or an admin") {
		t.Fatalf("management bridge by a plain member answered %q", a)
	}
	a = m.command(ctx, mgmt, bot, "bridge "+p.gid)
	if !strings.Contains(a, "#_sandcat_") || !strings.Contains(a, "in that room already") {
		t.Fatalf("management bridge by an admin in the portal answered %q", a)
	}
	// A group not bridged yet: its portal is made and the admin invited.
	third, err := p.alice.api.CreateGroup(ctx, p.alice.ID, "Third", "g.png", []string{g.botUID})
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	if err := p.alice.api.Call(ctx, "PUT", "/group/member/role", map[string]any{
		"user_id": p.alice.ID, "group_id": third.Info.ID, "member_id": g.botUID, "role": wire.RoleAdmin,
	}, nil); err != nil {
		t.Fatalf("make bot1 an admin of the third group: %v", err)
	}
	a = m.command(ctx, mgmt, bot, "bridge "+third.Info.ID)
	alias := id.NewRoomAlias("_sandcat_"+id.EncodeUserLocalpart(third.Info.ID), e.hs.ServerName)
	if !strings.Contains(a, alias.String()) || !strings.Contains(a, "you are invited") {
		t.Fatalf("management bridge of a new group answered %q, want %s", a, alias)
	}
	r, err := m.cli.ResolveAlias(ctx, alias)
	if err != nil {
		t.Fatalf("resolve %s: %v", alias, err)
	}
	m.wait("the invitation into the new portal", 1, func(ev *event.Event) bool {
		return ev.RoomID == r.RoomID && ev.Type == event.StateMember && ev.GetStateKey() == m.cli.UserID.String() &&
			ev.Content.AsMember().Membership == event.MembershipInvite
	})
	// And "unbridge <group id>" unlinks the group's portal (a room the
	// bridge made: it keeps its members, with a notice).
	if a := m.command(ctx, mgmt, bot, "unbridge "+p.gid); !strings.Contains(a, "no longer bridged") {
		t.Fatalf("management unbridge answered %q", a)
	}
	if err := asAlice.Call(ctx, "DELETE", "/matrix/group/"+p.gid+"/bridge", nil, nil); client.StatusOf(err) != 404 {
		t.Fatalf("unbridge route after the management unbridge: %v, want 404", err)
	}
}
