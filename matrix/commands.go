package matrix

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

// The bridge bot's commands.
//
// The bot accepts every invitation from a Matrix user. A direct chat a
// Matrix user opens with the bot (an invitation with is_direct, as "start
// a chat" does in clients) is a management room while only the two are
// joined: every text message there is a command (the bot marks the room
// in its room account data, net.sandcat.management). In any other room (a
// portal, a plumbed room, a room with more people, a room the bot was
// invited to without is_direct), only text messages starting with
// "!sandcat " are commands; they are never bridged to
// Sandcat. The bot answers with m.notice replies. Commands:
//
//	help                  the commands, one line each
//	ping                  the bridge's status: homeserver and Sandcat store
//	                      reachable (with their answer times) and how long
//	                      the command took to reach the bridge
//	bridge <group id>     in a management room: bridges the group (when not
//	                      yet) and invites the user into its room; in another
//	                      room: plumbs that room into the group. The user must
//	                      be the owner or an admin of the Sandcat group and,
//	                      to plumb, have the room's state_default power.
//	unbridge              in a bridged room: unlinks it (the Sandcat owner or
//	                      an admin of the group, or a user with the room's
//	                      state_default power)
//	unbridge <group id>   in a management room: unlinks the group's room
//	                      (owner or admin of the group)

// CommandPrefix starts a command outside management rooms.
const CommandPrefix = "!sandcat"

// cmdTxnPrefix starts the transaction id of the bot's answer to a command:
// cmdTxnPrefix + the command's event id, so a command the homeserver
// delivers again is not answered twice.
const cmdTxnPrefix = "sandcat-cmd-"

// command is a parsed command: its name (lower case) and arguments.
type command struct {
	name string
	args []string
}

// parseCommand parses the body of a text message: in a management room
// every message is a command (the prefix is optional), elsewhere only one
// starting with CommandPrefix and a space ("!sandcat" alone is help).
func parseCommand(body string, management bool) (command, bool) {
	fields := strings.Fields(body)
	if len(fields) == 0 {
		return command{}, false
	}
	if strings.EqualFold(fields[0], CommandPrefix) {
		fields = fields[1:]
		if len(fields) == 0 {
			return command{name: "help"}, true
		}
	} else if !management {
		return command{}, false
	}
	return command{name: strings.ToLower(fields[0]), args: fields[1:]}, true
}

// commandEvent handles the bridge bot's invitations and the commands
// addressed to it. portal is nil outside portals. handled is true when the
// event was for the bot and needs nothing more.
func (b *Bridge) commandEvent(ctx context.Context, portal *storage.Portal, evt *event.Event) (handled bool, err error) {
	switch evt.Type {
	case event.StateMember:
		if id.UserID(evt.GetStateKey()) != b.botID {
			return false, nil
		}
		mc := evt.Content.AsMember()
		switch {
		case portal == nil && mc.Membership == event.MembershipInvite:
			return true, b.acceptInvite(ctx, evt, mc)
		case portal != nil && portal.Plumbed && (mc.Membership == event.MembershipLeave || mc.Membership == event.MembershipBan):
			return true, b.botRemoved(ctx, portal, evt)
		}
		return portal == nil, nil
	case event.EventMessage:
		return b.commandMessage(ctx, portal, evt)
	}
	return false, nil
}

// acceptInvite joins the bot to a room a Matrix user invited it to; a
// direct chat (a management room) gets a welcome.
func (b *Bridge) acceptInvite(ctx context.Context, evt *event.Event, mc *event.MemberEventContent) error {
	if _, err := b.bot.JoinRoomByID(ctx, evt.RoomID); err != nil {
		if permanent(err) {
			b.log.Warn("invitation of the bridge bot not accepted", "room_id", evt.RoomID, "inviter", evt.Sender, "err", err)
			return nil
		}
		return fmt.Errorf("matrix: the bot joins %s: %w", evt.RoomID, err)
	}
	b.log.Info("bridge bot joined a room", "room_id", evt.RoomID, "inviter", evt.Sender, "direct", mc.IsDirect)
	if mc.IsDirect {
		// Remembered on the homeserver, in the bot's account data of the
		// room: no table needed, and it survives restarts.
		if err := b.bot.SetRoomAccountData(ctx, evt.RoomID, managementDataType, &managementData{User: evt.Sender}); err != nil {
			if !permanent(err) {
				return fmt.Errorf("matrix: mark %s as a management room: %w", evt.RoomID, err)
			}
			b.log.Warn("management room not recorded: commands there need the prefix", "room_id", evt.RoomID, "err", err)
		}
		b.say(ctx, evt.RoomID, "", "Hello! I am the Sandcat bridge bot. Send help for my commands.", cmdTxnPrefix+"welcome-"+evt.ID.String())
	}
	return nil
}

// botRemoved unlinks a plumbed room the bot was kicked or banned from.
func (b *Bridge) botRemoved(ctx context.Context, portal *storage.Portal, evt *event.Event) error {
	if err := b.store.DeletePortal(ctx, portal.GroupID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("matrix: unbridge group %s: %w", portal.GroupID, err)
	}
	b.log.Info("the bot was removed from a plumbed room: unbridged", "group_id", portal.GroupID, "room_id", portal.RoomID, "by", evt.Sender)
	b.leavePlumbed(ctx, portal)
	return nil
}

// commandMessage runs the command a message holds, if any. Failures are
// told to the user in the answer (and logged), never retried: a command is
// run at most once.
func (b *Bridge) commandMessage(ctx context.Context, portal *storage.Portal, evt *event.Event) (bool, error) {
	// Outside portals a message needs nothing else: handled either way.
	notCommand := portal == nil
	mc := evt.Content.AsMessage()
	if mc.MsgType != event.MsgText || mc.RelatesTo.GetReplaceID() != "" {
		return notCommand, nil
	}
	body := mc.Body
	if mc.RelatesTo.GetReplyTo() != "" {
		body = event.TrimReplyFallbackText(body)
	}
	management := false
	if portal == nil {
		m, err := b.isManagementRoom(ctx, evt.RoomID, evt.Sender)
		if err != nil {
			// Not the bot's room (a room of a puppet only), or the
			// homeserver is failing: nobody to answer.
			b.log.Debug("message in a room that is not a portal ignored", "room_id", evt.RoomID, "err", err)
			return true, nil
		}
		management = m
	}
	cmd, ok := parseCommand(body, management)
	if !ok {
		return notCommand, nil
	}
	b.log.Info("bridge command", "command", cmd.name, "args", cmd.args, "sender", evt.Sender, "room_id", evt.RoomID, "management", management)
	var answer string
	switch cmd.name {
	case "help":
		answer = helpText(management)
	case "ping":
		answer = b.ping(ctx, evt)
	case "bridge":
		answer = b.cmdBridge(ctx, portal, evt, management, cmd.args)
	case "unbridge":
		answer = b.cmdUnbridge(ctx, portal, evt, management, cmd.args)
	default:
		answer = fmt.Sprintf("Unknown command %q. Say %s for the commands.", cmd.name, helpWord(management))
	}
	if answer != "" {
		b.say(ctx, evt.RoomID, evt.ID, answer, "")
	}
	return true, nil
}

func helpWord(management bool) string {
	if management {
		return "help"
	}
	return CommandPrefix + " help"
}

// helpText lists the commands, one line each.
func helpText(management bool) string {
	intro := "Sandcat bridge bot. Commands (in a room with more people, start them with \"" + CommandPrefix + " \"):"
	bridge := "bridge <group id> — plumb this room into a Sandcat group (you: its owner or an admin, with the power to change this room's settings)"
	unbridge := "unbridge — unlink this room from its Sandcat group"
	if management {
		intro = "Sandcat bridge bot. Commands (in other rooms, start them with \"" + CommandPrefix + " \"):"
		bridge = "bridge <group id> — bridge a Sandcat group you own or administer and invite you into its room"
		unbridge = "unbridge <group id> — unlink a Sandcat group you own or administer from its room"
	}
	return strings.Join([]string{
		intro,
		"help — this list",
		"ping — the bridge's status",
		bridge,
		unbridge,
	}, "\n")
}

// ping answers with the bridge's status.
func (b *Bridge) ping(ctx context.Context, evt *event.Event) string {
	var parts []string
	t0 := time.Now()
	_, err := b.bot.Whoami(ctx)
	if err != nil {
		parts = append(parts, fmt.Sprintf("homeserver: failing (%v)", err))
	} else {
		parts = append(parts, fmt.Sprintf("homeserver: reachable (%d ms)", time.Since(t0).Milliseconds()))
	}
	t0 = time.Now()
	_, err = b.store.GetPortal(ctx, "ping:probe")
	if err != nil && !errors.Is(err, storage.ErrNotFound) {
		parts = append(parts, "Sandcat store: failing")
		b.log.Warn("ping: the store failed", "err", err)
	} else {
		parts = append(parts, fmt.Sprintf("Sandcat store: ok (%d ms)", time.Since(t0).Milliseconds()))
	}
	lag := time.Since(time.UnixMilli(evt.Timestamp)).Milliseconds()
	return fmt.Sprintf("pong — %s; your command reached the bridge %d ms after it was sent.", strings.Join(parts, "; "), lag)
}

// sandcatRole returns the role in a Sandcat group of the Sandcat user of a
// Matrix user: storage.ErrNotFound when it is none or not a member.
func (b *Bridge) sandcatRole(ctx context.Context, mxid id.UserID, groupID string) (int32, error) {
	p, err := b.store.PuppetByMXID(ctx, mxid.String())
	if err != nil {
		return 0, err
	}
	if !p.FromMatrix {
		return 0, storage.ErrNotFound
	}
	return b.groups.GroupMemberRole(ctx, groupID, p.UserID)
}

// groupAdmin tells whether a Matrix user is the owner or an admin of a
// Sandcat group; refusal is the answer to give when not (or on failure).
func (b *Bridge) groupAdmin(ctx context.Context, mxid id.UserID, groupID, what string) (ok bool, refusal string) {
	role, err := b.sandcatRole(ctx, mxid, groupID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return false, fmt.Sprintf("You are not a member of the Sandcat group %s.", groupID)
	case err != nil:
		b.log.Warn("command: role not read", "mxid", mxid, "group_id", groupID, "err", err)
		return false, "The Sandcat store failed: try again later."
	case role != wire.RoleOwner && role != wire.RoleAdmin:
		return false, fmt.Sprintf("Only the owner or an admin of the Sandcat group %s can %s it.", groupID, what)
	}
	return true, ""
}

// cmdBridge runs `bridge <group id>`.
func (b *Bridge) cmdBridge(ctx context.Context, portal *storage.Portal, evt *event.Event, management bool, args []string) string {
	if len(args) != 1 {
		return "Usage: bridge <Sandcat group id>"
	}
	gid := args[0]
	if portal != nil {
		if portal.GroupID == gid {
			return "This room is already bridged to that Sandcat group."
		}
		return fmt.Sprintf("This room is already bridged to the Sandcat group %s: unbridge it first.", portal.GroupID)
	}
	if ok, refusal := b.groupAdmin(ctx, evt.Sender, gid, "bridge"); !ok {
		return refusal
	}
	if management {
		p, err := b.EnsurePortal(ctx, gid)
		if err != nil {
			b.log.Warn("command: portal not made", "group_id", gid, "err", err)
			return "Bridging failed (the homeserver or the store failed): try again later."
		}
		where := p.Alias
		if where == "" {
			where = p.RoomID
		}
		// Homeservers answer an invitation of a member differently
		// (Synapse 403, Dendrite another error): look first.
		if m, err := b.bot.JoinedMembers(ctx, id.RoomID(p.RoomID)); err == nil {
			if _, in := m.Joined[evt.Sender]; in {
				return fmt.Sprintf("The Sandcat group %s is bridged to %s: you are in that room already.", gid, where)
			}
		}
		if _, err := b.InviteMatrixUser(ctx, gid, evt.Sender); err != nil {
			b.log.Warn("command: invitation not sent", "group_id", gid, "mxid", evt.Sender, "err", err)
			return fmt.Sprintf("The Sandcat group %s is bridged to %s, but the invitation failed: try again later.", gid, where)
		}
		return fmt.Sprintf("The Sandcat group %s is bridged to %s: you are invited.", gid, where)
	}
	can, err := b.canChangeState(ctx, evt.RoomID, evt.Sender)
	if err != nil {
		b.log.Warn("command: power levels not read", "room_id", evt.RoomID, "err", err)
		return "The room's power levels could not be read: try again later."
	}
	if !can {
		return "You need the power to change this room's settings (state_default) to bridge it."
	}
	_, err = b.plumb(ctx, gid, evt.RoomID.String(), evt.ID)
	switch {
	case err == nil:
		return "" // plumb answered
	case errors.Is(err, ErrAlreadyBridged):
		return fmt.Sprintf("The Sandcat group %s is already bridged to a room: unbridge it first.", gid)
	default:
		b.log.Warn("command: room not plumbed", "group_id", gid, "room_id", evt.RoomID, "err", err)
		return "Bridging failed (the homeserver or the store failed): try again later."
	}
}

// cmdUnbridge runs `unbridge` (in a bridged room) or `unbridge <group id>`
// (in a management room).
func (b *Bridge) cmdUnbridge(ctx context.Context, portal *storage.Portal, evt *event.Event, management bool, args []string) string {
	if portal == nil {
		if !management || len(args) != 1 {
			return "This room is not bridged to Sandcat."
		}
		gid := args[0]
		if ok, refusal := b.groupAdmin(ctx, evt.Sender, gid, "unbridge"); !ok {
			return refusal
		}
		p, err := b.store.GetPortal(ctx, gid)
		if errors.Is(err, storage.ErrNotFound) {
			return fmt.Sprintf("The Sandcat group %s is not bridged.", gid)
		}
		if err == nil {
			err = b.unbridge(ctx, p, fmt.Sprintf("This room is no longer bridged to the Sandcat group %s (unbridged by %s).", gid, evt.Sender))
		}
		if err != nil {
			b.log.Warn("command: not unbridged", "group_id", gid, "err", err)
			return "Unbridging failed: try again later."
		}
		return fmt.Sprintf("The Sandcat group %s is no longer bridged.", gid)
	}
	if len(args) > 0 && args[0] != portal.GroupID {
		return fmt.Sprintf("This room is bridged to the Sandcat group %s, not %s.", portal.GroupID, args[0])
	}
	allowed := false
	if role, err := b.sandcatRole(ctx, evt.Sender, portal.GroupID); err == nil && (role == wire.RoleOwner || role == wire.RoleAdmin) {
		allowed = true
	} else if can, err := b.canChangeState(ctx, evt.RoomID, evt.Sender); err == nil && can {
		allowed = true
	}
	if !allowed {
		return "Only the owner or an admin of the Sandcat group, or a user with the power to change this room's settings, can unbridge it."
	}
	if err := b.unbridge(ctx, portal, fmt.Sprintf("This room is no longer bridged to the Sandcat group %s (unbridged by %s).", portal.GroupID, evt.Sender)); err != nil {
		b.log.Warn("command: not unbridged", "group_id", portal.GroupID, "err", err)
		return "Unbridging failed: try again later."
	}
	return "" // unbridge told the room
}

// managementDataType is the type of the bot's room account data that marks
// a management room: a direct chat a Matrix user opened with the bot.
const managementDataType = "net.sandcat.management"

// managementData is the content of managementDataType.
type managementData struct {
	User id.UserID `json:"user"` // the Matrix user who opened it
}

// isManagementRoom tells whether room is a management room of user: a
// direct chat user invited the bot into, whose joined members are the bot
// and user only. An error means the bot cannot read the room's members
// (it is not in the room).
func (b *Bridge) isManagementRoom(ctx context.Context, room id.RoomID, user id.UserID) (bool, error) {
	m, err := b.bot.JoinedMembers(ctx, room)
	if err != nil {
		return false, err
	}
	_, bot := m.Joined[b.botID]
	_, u := m.Joined[user]
	if len(m.Joined) != 2 || !bot || !u {
		return false, nil
	}
	var d managementData
	if err := b.bot.GetRoomAccountData(ctx, room, managementDataType, &d); err != nil {
		if !errors.Is(err, mautrix.MNotFound) {
			b.log.Debug("management mark not read", "room_id", room, "err", err)
		}
		return false, nil
	}
	return d.User == user, nil
}

// say sends a notice as the bot, replying to replyTo when set. Its
// transaction id is txnID, or derived from replyTo (one answer per
// command), or fresh. Failures are logged.
func (b *Bridge) say(ctx context.Context, room id.RoomID, replyTo id.EventID, text, txnID string) {
	c := &event.MessageEventContent{MsgType: event.MsgNotice, Body: text}
	if replyTo != "" {
		c.RelatesTo = (&event.RelatesTo{}).SetReplyTo(replyTo)
		if txnID == "" {
			txnID = cmdTxnPrefix + replyTo.String()
		}
	}
	if _, err := b.bot.SendMessageEvent(ctx, room, event.EventMessage, c, mautrix.ReqSendEvent{TransactionID: txnID}); err != nil {
		b.log.Warn("bot notice not sent", "room_id", room, "err", err)
	}
}
