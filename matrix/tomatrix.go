package matrix

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/im/bus"
	"github.com/sandcat-im/sandcat/im/msgserver"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

// TxnPrefix starts the client-server transaction id of every message the
// bridge sends for a Sandcat message: TxnPrefix + server_id, the same on
// every retry, so the homeserver never stores it twice.
const TxnPrefix = "sandcat-"

// HandleRecords is the bus handler of the bridge's consumer group: it sends
// the group messages of bridged groups into their portals. Records of the
// same room (a group's portal, a DM) are sent one after another in bus
// order; different rooms of a batch are sent at the same time (up to
// maxParallelRooms), and HandleRecords returns once all are done. Records
// of a type not tied to one room wait for every earlier record and hold
// back every later one. Messages already bridged (redelivery), from Matrix
// users (echo) or of groups without a portal are skipped. An error
// (homeserver unreachable) stops its room and makes the bus deliver the
// batch again (the messages bridged meanwhile are then skipped); a message
// the homeserver refuses for good is logged and skipped.
func (b *Bridge) HandleRecords(ctx context.Context, recs []bus.Record) error {
	msgs := make([]*wire.Msg, 0, len(recs))
	for _, r := range recs {
		m, _, _, err := msgserver.DecodeEnvelopeFrom(r.Value)
		if err != nil {
			b.log.Warn("bus record not decoded: skipped", "offset", r.Offset, "err", err)
			continue
		}
		msgs = append(msgs, &m)
	}
	for _, rooms := range splitByRoom(msgs) {
		if err := forEachRoom(ctx, rooms, maxParallelRooms, b.bridgeOne); err != nil {
			return err
		}
	}
	return nil
}

func (b *Bridge) toMatrix(ctx context.Context, m *wire.Msg) error {
	if m.ServerID == "" || m.SendID == "" {
		return nil
	}
	var portal *storage.Portal
	switch m.MsgType {
	case wire.MsgTypeGroupMsg, wire.MsgTypeGroupUpdate, wire.MsgTypeGroupMemberExit, wire.MsgTypeGroupRemoveMember,
		wire.MsgTypeGroupDismiss, wire.MsgTypeGroupInvitation, wire.MsgTypeGroupInviteNew:
		gid := m.GroupID
		if gid == "" {
			gid = m.ReceiverID
		}
		p, err := b.store.GetPortal(ctx, gid)
		if errors.Is(err, storage.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		portal = p
	case wire.MsgTypeSingleMsg:
		// Only a chat with a Matrix user is bridged: in their DM room.
		to, err := b.store.GetPuppet(ctx, m.ReceiverID)
		if errors.Is(err, storage.ErrNotFound) || (err == nil && !to.FromMatrix) {
			return nil
		}
		if err != nil {
			return err
		}
		if from, err := b.store.GetPuppet(ctx, m.SendID); err == nil && from.FromMatrix {
			return nil // between two Matrix users: Matrix has it already
		}
		if _, err := b.store.MessageByServerID(ctx, m.ServerID); err == nil {
			return nil // already bridged (the DM room may not exist yet: no portal lookup first)
		}
		if portal, err = b.ensureDM(ctx, m.SendID, to); err != nil {
			return err
		}
	default:
		return nil
	}
	if p, err := b.store.GetPuppet(ctx, m.SendID); err == nil && p.FromMatrix {
		return nil // a Matrix user's message coming back: the echo
	} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	switch m.MsgType {
	case wire.MsgTypeGroupUpdate:
		return b.syncRoomProfile(ctx, portal, m)
	case wire.MsgTypeGroupInvitation, wire.MsgTypeGroupInviteNew:
		return b.membersToMatrix(ctx, portal, m) // roomstate.go
	case wire.MsgTypeGroupMemberExit:
		b.leave(ctx, portal, m.SendID, "")
		return nil
	case wire.MsgTypeGroupDismiss:
		return b.unbridge(ctx, portal, "The Sandcat group was dismissed: this room is no longer bridged.")
	case wire.MsgTypeGroupRemoveMember:
		removed, err := wire.DecodeStrings(m.Content)
		if err != nil {
			b.log.Warn("GroupRemoveMember content not decoded", "server_id", m.ServerID, "err", err)
			return nil
		}
		for _, uid := range removed {
			b.leave(ctx, portal, uid, "removed from the Sandcat group")
		}
		return nil
	}
	if _, err := b.store.MessageByServerID(ctx, m.ServerID); err == nil {
		return nil // already bridged
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	room := id.RoomID(portal.RoomID)
	puppet, err := b.ensurePuppet(ctx, m.SendID)
	if err != nil {
		return err
	}
	cli, err := b.ensureJoined(ctx, room, puppet)
	if err != nil {
		return err
	}
	content, err := b.contentToMatrix(ctx, m)
	if err != nil {
		return err
	}
	req := mautrix.ReqSendEvent{Timestamp: m.SendTime, TransactionID: TxnPrefix + m.ServerID}
	resp, err := cli.SendMessageEvent(ctx, room, event.EventMessage, content, req)
	if errors.Is(err, mautrix.MForbidden) {
		// Kicked on Matrix before the bridge saw the kick: join again (the
		// bot invites) and send once more, with the same transaction id.
		b.forgetJoined(room, puppet)
		if cli, err = b.ensureJoined(ctx, room, puppet); err == nil {
			resp, err = cli.SendMessageEvent(ctx, room, event.EventMessage, content, req)
		}
	}
	if err != nil {
		return fmt.Errorf("matrix: send %s to %s: %w", m.ServerID, room, err)
	}
	err = b.store.AddMessage(ctx, &storage.BridgedMessage{ServerID: m.ServerID, EventID: resp.EventID.String(), RoomID: room.String()})
	if err != nil && !errors.Is(err, storage.ErrConflict) {
		return fmt.Errorf("matrix: map %s to %s: %w", m.ServerID, resp.EventID, err)
	}
	b.log.Debug("message bridged to Matrix", "server_id", m.ServerID, "event_id", resp.EventID, "room_id", room)
	return nil
}

// replyTo sets the reply relation of c when m relates to a bridged message.
func (b *Bridge) replyTo(ctx context.Context, m *wire.Msg, c *event.MessageEventContent) {
	if m.RelatedMsgID != nil && *m.RelatedMsgID != "" {
		if rel, err := b.store.MessageByServerID(ctx, *m.RelatedMsgID); err == nil {
			c.RelatesTo = (&event.RelatesTo{}).SetReplyTo(id.EventID(rel.EventID))
		}
	}
}

// syncRoomProfile sets the portal's name and topic to the group's (as the
// bot, with the Sandcat send_time as timestamp).
func (b *Bridge) syncRoomProfile(ctx context.Context, portal *storage.Portal, m *wire.Msg) error {
	g, err := b.groups.GetGroup(ctx, portal.GroupID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	room := id.RoomID(portal.RoomID)
	if _, err := b.bot.SendMassagedStateEvent(ctx, room, event.StateRoomName, "",
		&event.RoomNameEventContent{Name: g.Name}, m.SendTime); err != nil {
		return fmt.Errorf("matrix: name of %s: %w", room, err)
	}
	topic := g.Announcement
	if topic == "" {
		topic = g.Description
	}
	if topic != "" {
		if _, err := b.bot.SendMassagedStateEvent(ctx, room, event.StateTopic, "",
			&event.TopicEventContent{Topic: topic}, m.SendTime); err != nil {
			return fmt.Errorf("matrix: topic of %s: %w", room, err)
		}
	}
	return b.roomAvatarToMatrix(ctx, portal, g.Avatar, m.SendTime)
}

// leave takes a Sandcat user out of a portal: its puppet leaves, or, for a
// Matrix user, the bot kicks it. Failures (not in the room) are only logged.
func (b *Bridge) leave(ctx context.Context, portal *storage.Portal, userID, reason string) {
	p, err := b.store.GetPuppet(ctx, userID)
	if err != nil {
		return // never bridged: not in the room
	}
	room, mxid := id.RoomID(portal.RoomID), id.UserID(p.MXID)
	if p.FromMatrix {
		_, err = b.bot.KickUser(ctx, room, &mautrix.ReqKickUser{UserID: mxid, Reason: reason})
	} else {
		var cli *mautrix.Client
		if cli, err = b.client(mxid); err == nil {
			_, err = cli.LeaveRoom(ctx, room)
		}
		b.mu.Lock()
		delete(b.joined, joinKey{room, mxid})
		b.mu.Unlock()
	}
	if err != nil {
		b.log.Debug("not taken out of the portal", "mxid", mxid, "room_id", room, "err", err)
	}
}

// dmPrefix starts the Portal.GroupID of a direct chat between a Sandcat
// user and a Matrix user: "dm:<sandcat user id>:<Matrix user's Sandcat id>".
const dmPrefix = "dm:"

func dmKey(sandcatUser, matrixUser string) string {
	return dmPrefix + sandcatUser + ":" + matrixUser
}

// parseDMKey returns the two users of a DM portal key.
func parseDMKey(key string) (sandcatUser, matrixUser string, ok bool) {
	rest, ok := strings.CutPrefix(key, dmPrefix)
	if !ok {
		return "", "", false
	}
	return strings.Cut(rest, ":")
}

// ensureDM returns the DM room of a Sandcat user and a Matrix user,
// creating it the first time: the Sandcat user's puppet creates a direct
// chat and invites the Matrix user.
func (b *Bridge) ensureDM(ctx context.Context, userID string, to *storage.Puppet) (*storage.Portal, error) {
	key := dmKey(userID, to.UserID)
	if p, err := b.store.GetPortal(ctx, key); err == nil {
		return p, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	puppet, err := b.ensurePuppet(ctx, userID)
	if err != nil {
		return nil, err
	}
	cli, err := b.client(puppet)
	if err != nil {
		return nil, err
	}
	resp, err := cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Visibility: "private", Preset: "trusted_private_chat", IsDirect: true, Invite: []id.UserID{id.UserID(to.MXID)},
	})
	if err != nil {
		return nil, fmt.Errorf("matrix: create the DM of %s with %s: %w", puppet, to.MXID, err)
	}
	p := &storage.Portal{GroupID: key, RoomID: resp.RoomID.String()}
	if err := b.store.CreatePortal(ctx, p); err != nil {
		return nil, fmt.Errorf("matrix: store the DM portal %s: %w", key, err)
	}
	b.mu.Lock()
	b.joined[joinKey{resp.RoomID, puppet}] = true
	b.mu.Unlock()
	b.log.Info("DM room created", "user_id", userID, "mxid", to.MXID, "room_id", resp.RoomID)
	return p, nil
}

// unbridge tells the portal why, as the bot, empties its m.bridge state
// and forgets it: the room stays on Matrix, with no link to Sandcat any
// more. A plumbed room is left by the puppets and the bot; a room the
// bridge created keeps them (the bot stays its admin).
func (b *Bridge) unbridge(ctx context.Context, portal *storage.Portal, why string) error {
	b.notice(ctx, portal, why)
	b.clearBridgeState(ctx, portal)
	if err := b.store.DeletePortal(ctx, portal.GroupID); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("matrix: unbridge group %s: %w", portal.GroupID, err)
	}
	b.log.Info("portal unbridged", "group_id", portal.GroupID, "room_id", portal.RoomID, "plumbed", portal.Plumbed)
	if portal.Plumbed {
		b.leavePlumbed(ctx, portal)
	}
	return nil
}
