package matrix

import (
	"context"
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

// HandleEvents is the appservice.Handler method: the homeserver's events,
// in order. In portals, a Matrix user's join makes it a member of the group
// and its text messages go into the Sandcat pipeline. The bridge's own
// users' events (echoes) and rooms that are not portals are ignored.
func (b *Bridge) HandleEvents(ctx context.Context, evts []*event.Event) error {
	for _, evt := range evts {
		if err := b.handleEvent(ctx, evt); err != nil {
			if ctx.Err() != nil || !permanent(err) {
				return err
			}
			b.log.Warn("event not bridged to Sandcat", "event_id", evt.ID, "room_id", evt.RoomID, "err", err)
		}
	}
	return nil
}

// handleEvent handles one event of HandleEvents.
func (b *Bridge) handleEvent(ctx context.Context, evt *event.Event) error {
	if b.ours(evt.Sender) {
		return nil
	}
	portal, err := b.store.PortalByRoom(ctx, evt.RoomID.String())
	if errors.Is(err, storage.ErrNotFound) {
		// Not a portal: an invitation (of a puppet into a DM, of the bot
		// into a management room or a room to plumb) or a command.
		if handled, err := b.commandEvent(ctx, nil, evt); handled || err != nil {
			return err
		}
		return b.maybeDMInvite(ctx, evt)
	}
	if err != nil {
		return err
	}
	if sc, mx, ok := parseDMKey(portal.GroupID); ok {
		switch evt.Type {
		case event.EventMessage, event.EventSticker:
			return b.fromMatrixDM(ctx, portal, sc, mx, evt)
		case event.EventRedaction:
			return b.redactionFromMatrix(ctx, portal, evt)
		}
		return nil
	}
	if handled, err := b.commandEvent(ctx, portal, evt); handled || err != nil {
		return err
	}
	switch evt.Type {
	case event.StateMember:
		mc := evt.Content.AsMember()
		target := id.UserID(evt.GetStateKey())
		switch {
		case b.ours(target):
			return b.puppetMembership(ctx, portal, evt)
		case mc.Membership == event.MembershipJoin && target == evt.Sender:
			if _, err := b.matrixMember(ctx, portal, evt.Sender, mc.Displayname, evt.ID, prevMembership(evt) != event.MembershipJoin); err != nil {
				return err
			}
			return b.matrixAvatar(ctx, evt.Sender, mc.AvatarURL)
		case mc.Membership == event.MembershipLeave || mc.Membership == event.MembershipBan:
			return b.matrixLeft(ctx, portal, target, evt.ID)
		}
	case event.StateRoomName, event.StateTopic:
		return b.roomProfileFromMatrix(ctx, portal, evt)
	case event.StateRoomAvatar:
		return b.roomAvatarFromMatrix(ctx, portal, evt)
	case event.EventRedaction:
		return b.redactionFromMatrix(ctx, portal, evt)
	case event.EventMessage, event.EventSticker:
		return b.fromMatrix(ctx, portal, evt)
	}
	return nil
}

// matrixMember returns the Sandcat user of a Matrix user, creating it (and
// its puppet row) the first time, and makes it a member of the portal's
// group, telling the members with a GroupInviteNew notice from the owner,
// keyed by cause (the event that brought the user in). The notice follows
// the membership change, so a client that reads the members on it finds the
// new one. announce (cause is a real join): the notice is sent even when the
// user is a member already, so a crash between the change and the notice is
// repaired by the homeserver's retry (the keyed notice is stored once).
func (b *Bridge) matrixMember(ctx context.Context, portal *storage.Portal, mxid id.UserID, name string, cause id.EventID, announce bool) (string, error) {
	uid, err := b.matrixUser(ctx, mxid, name)
	if err != nil {
		return "", err
	}
	_, err = b.groups.GroupMemberRole(ctx, portal.GroupID, uid)
	member := err == nil
	switch {
	case err != nil && !errors.Is(err, storage.ErrNotFound):
		return "", err
	case member && !announce:
		return uid, nil
	case !member:
		if _, err := b.groups.AddGroupMembers(ctx, portal.GroupID, []string{uid}); err != nil {
			return "", fmt.Errorf("matrix: add %s to group %s: %w", mxid, portal.GroupID, err)
		}
		if b.members != nil {
			b.members.Invalidate(portal.GroupID)
		}
	}
	g, err := b.groups.GetGroup(ctx, portal.GroupID)
	if err != nil {
		return "", err
	}
	to, err := b.groups.GroupMemberIDs(ctx, portal.GroupID)
	if err != nil {
		return "", err
	}
	recipients := make([]string, 0, len(to))
	for _, m := range to {
		if m != g.Owner {
			recipients = append(recipients, m)
		}
	}
	n := &wire.Msg{
		SendID: g.Owner, ReceiverID: g.ID, GroupID: g.ID, LocalID: cause.String(),
		MsgType: wire.MsgTypeGroupInviteNew, ContentType: wire.ContentDefault, Content: wire.EncodeStrings([]string{uid}),
	}
	if err := b.sender.SendKeyed(ctx, n, recipients, "join:"+portal.GroupID+":"+cause.String()); err != nil {
		return "", fmt.Errorf("matrix: notice of the new member %s: %w", mxid, err)
	}
	b.log.Info("Matrix user joined a bridged group", "mxid", mxid, "user_id", uid, "group_id", g.ID)
	return uid, nil
}

// matrixLeft takes a Matrix user who left (or was kicked from) a portal
// out of the group, telling the members with a GroupMemberExit notice in
// its name.
func (b *Bridge) matrixLeft(ctx context.Context, portal *storage.Portal, mxid id.UserID, cause id.EventID) error {
	p, err := b.store.PuppetByMXID(ctx, mxid.String())
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	before, err := b.groups.GroupMemberIDs(ctx, portal.GroupID)
	if err != nil {
		return err
	}
	err = b.groups.ExitGroup(ctx, portal.GroupID, p.UserID)
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrGroupOwner) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("matrix: %s leaves group %s: %w", mxid, portal.GroupID, err)
	}
	if b.members != nil {
		b.members.Invalidate(portal.GroupID)
	}
	recipients := make([]string, 0, len(before))
	for _, m := range before {
		if m != p.UserID {
			recipients = append(recipients, m)
		}
	}
	// After the exit, so a client reading the members on the notice finds
	// the user gone; keyed by the leave event.
	n := &wire.Msg{
		SendID: p.UserID, ReceiverID: portal.GroupID, GroupID: portal.GroupID, LocalID: cause.String(),
		MsgType: wire.MsgTypeGroupMemberExit, ContentType: wire.ContentDefault,
	}
	if err := b.sender.SendKeyed(ctx, n, recipients, "leave:"+portal.GroupID+":"+cause.String()); err != nil {
		return fmt.Errorf("matrix: notice of %s leaving: %w", mxid, err)
	}
	b.log.Info("Matrix user left a bridged group", "mxid", mxid, "user_id", p.UserID, "group_id", portal.GroupID)
	return nil
}

// matrixUser returns the Sandcat user of a Matrix user, creating it with
// the name given (or its Matrix display name) the first time, and renaming
// it when a later name is given.
func (b *Bridge) matrixUser(ctx context.Context, mxid id.UserID, name string) (string, error) {
	if p, err := b.store.PuppetByMXID(ctx, mxid.String()); err == nil {
		if name != "" && name != p.Name && p.FromMatrix {
			// A new display name on Matrix: the Sandcat user follows.
			if _, err := b.users.UpdateUser(ctx, &storage.UserUpdate{ID: p.UserID, Name: name}, time.Now().UnixMilli()); err != nil {
				return "", fmt.Errorf("matrix: rename the Sandcat user of %s: %w", mxid, err)
			}
			p.Name = name
			if err := b.store.PutPuppet(ctx, p); err != nil {
				return "", err
			}
		}
		return p.UserID, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return "", err
	}
	if name == "" {
		if resp, err := b.bot.GetDisplayName(ctx, mxid); err == nil {
			name = resp.DisplayName
		}
	}
	if name == "" {
		name, _, _ = mxid.Parse()
	}
	uid := matrixUserID(mxid)
	if _, err := b.users.GetUser(ctx, uid); errors.Is(err, storage.ErrNotFound) {
		// No password: a Matrix user cannot log into Sandcat. Its account is
		// its Matrix id, which clients show.
		// Its avatar is a default one until the Matrix avatar is copied.
		u := &storage.User{ID: uid, Name: name, Account: mxid.String(), Signature: "Matrix user " + mxid.String(),
			Avatar: defaultAvatar}
		if err := b.users.CreateUser(ctx, u, b.cfg.SeqStep); err != nil {
			return "", fmt.Errorf("matrix: create the Sandcat user of %s: %w", mxid, err)
		}
	} else if err != nil {
		return "", err
	}
	err := b.store.PutPuppet(ctx, &storage.Puppet{UserID: uid, MXID: mxid.String(), FromMatrix: true, Registered: true, Name: name})
	if err != nil {
		return "", fmt.Errorf("matrix: store the puppet of %s: %w", mxid, err)
	}
	// A first message may come before any member event: copy its avatar
	// now (best effort; a later member event retries).
	b.syncMatrixAvatar(ctx, mxid)
	return uid, nil
}

// fromMatrix puts a Matrix message of a portal into the Sandcat pipeline as
// a GroupMsg of its sender.
func (b *Bridge) fromMatrix(ctx context.Context, portal *storage.Portal, evt *event.Event) error {
	if _, err := b.store.MessageByEventID(ctx, evt.ID.String()); err == nil {
		return nil // handled before (a repeat the transaction dedup let through)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	mc := evt.Content.AsMessage()
	if mc.RelatesTo != nil && mc.RelatesTo.GetReplaceID() != "" {
		return b.editFromMatrix(ctx, portal, evt) // edits.go
	}
	uid, err := b.matrixMember(ctx, portal, evt.Sender, "", evt.ID, false)
	if err != nil {
		return err
	}
	m := &wire.Msg{ReceiverID: portal.GroupID, GroupID: portal.GroupID, MsgType: wire.MsgTypeGroupMsg}
	return b.sendFromMatrix(ctx, portal, uid, evt, m)
}

// fromMatrixDM puts a message of a DM room into the Sandcat pipeline as a
// SingleMsg from the Matrix user to the Sandcat user.
func (b *Bridge) fromMatrixDM(ctx context.Context, portal *storage.Portal, sandcatUser, matrixUser string, evt *event.Event) error {
	if _, err := b.store.MessageByEventID(ctx, evt.ID.String()); err == nil {
		return nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	p, err := b.store.PuppetByMXID(ctx, evt.Sender.String())
	if errors.Is(err, storage.ErrNotFound) || (err == nil && p.UserID != matrixUser) {
		return nil // someone else in the DM room: not part of the Sandcat chat
	}
	if err != nil {
		return err
	}
	if evt.Content.AsMessage().RelatesTo.GetReplaceID() != "" {
		return b.editFromMatrixDM(ctx, portal, sandcatUser, matrixUser, evt) // edits.go
	}
	m := &wire.Msg{ReceiverID: sandcatUser, MsgType: wire.MsgTypeSingleMsg}
	return b.sendFromMatrix(ctx, portal, matrixUser, evt, m)
}

// sendFromMatrix fills m (its type and receiver set) from a Matrix message
// of uid and puts it into the pipeline, mapping the event to its server_id.
func (b *Bridge) sendFromMatrix(ctx context.Context, portal *storage.Portal, uid string, evt *event.Event, m *wire.Msg) error {
	mc := evt.Content.AsMessage()
	mc.RemoveReplyFallback()
	if evt.Type == event.EventSticker {
		mc.MsgType = event.MsgImage // a sticker is an image without msgtype
	}
	ct, content, err := b.contentFromMatrix(ctx, mc)
	if err != nil {
		if ctx.Err() != nil || !permanent(err) {
			return err
		}
		b.log.Warn("Matrix message not bridged to Sandcat", "event_id", evt.ID, "room_id", evt.RoomID, "err", err)
		b.notice(ctx, portal, "This message could not be bridged to Sandcat: "+userReason(err))
		return nil
	}
	u, err := b.users.GetUser(ctx, uid)
	if err != nil {
		return err
	}
	m.SendID, m.LocalID, m.CreateTime = uid, evt.ID.String(), evt.Timestamp
	m.ContentType, m.Content, m.Nickname, m.Avatar = ct, content, u.Name, u.Avatar
	if reply := mc.RelatesTo.GetReplyTo(); reply != "" {
		if rel, err := b.store.MessageByEventID(ctx, reply.String()); err == nil {
			sid := rel.ServerID
			m.RelatedMsgID = &sid
		}
	}
	if err := b.sender.SendKeyed(ctx, m, nil, eventKey(evt.ID)); err != nil {
		return fmt.Errorf("matrix: put %s into the pipeline: %w", evt.ID, err)
	}
	err = b.store.AddMessage(ctx, &storage.BridgedMessage{ServerID: m.ServerID, EventID: evt.ID.String(), RoomID: portal.RoomID})
	if err != nil && !errors.Is(err, storage.ErrConflict) {
		return fmt.Errorf("matrix: map %s to %s: %w", evt.ID, m.ServerID, err)
	}
	b.log.Debug("message bridged to Sandcat", "event_id", evt.ID, "server_id", m.ServerID, "portal", portal.GroupID)
	return nil
}

// maybeDMInvite accepts, as the puppet, a Matrix user's invitation of a
// puppet into a direct chat, and records the room as the DM portal of the
// two (replacing an older one).
func (b *Bridge) maybeDMInvite(ctx context.Context, evt *event.Event) error {
	if evt.Type != event.StateMember || b.ours(evt.Sender) {
		return nil
	}
	mc := evt.Content.AsMember()
	target := id.UserID(evt.GetStateKey())
	sandcatUser, ok := b.puppetUserID(target)
	if mc.Membership != event.MembershipInvite || !mc.IsDirect || !ok {
		return nil
	}
	if _, err := b.users.GetUser(ctx, sandcatUser); errors.Is(err, storage.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if _, err := b.ensurePuppet(ctx, sandcatUser); err != nil {
		return err
	}
	matrixUser, err := b.matrixUser(ctx, evt.Sender, "")
	if err != nil {
		return err
	}
	if _, err := b.ensureJoined(ctx, evt.RoomID, target); err != nil {
		if permanent(err) {
			b.log.Warn("DM invitation not accepted", "room_id", evt.RoomID, "puppet", target, "err", err)
			return nil
		}
		return err
	}
	key := dmKey(sandcatUser, matrixUser)
	if err := b.store.DeletePortal(ctx, key); err != nil && !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	if err := b.store.CreatePortal(ctx, &storage.Portal{GroupID: key, RoomID: evt.RoomID.String()}); err != nil {
		return fmt.Errorf("matrix: store the DM portal %s: %w", key, err)
	}
	b.log.Info("DM room accepted", "user_id", sandcatUser, "mxid", evt.Sender, "room_id", evt.RoomID)
	return nil
}

// notice tells a portal, as the bot, that something was not bridged.
func (b *Bridge) notice(ctx context.Context, portal *storage.Portal, text string) {
	_, err := b.bot.SendMessageEvent(ctx, id.RoomID(portal.RoomID), event.EventMessage,
		&event.MessageEventContent{MsgType: event.MsgNotice, Body: text})
	if err != nil {
		b.log.Warn("notice not sent to the portal", "room_id", portal.RoomID, "err", err)
	}
}

// QueryUser is the appservice.Handler method: a puppet of an existing
// Sandcat user exists (it is registered now).
func (b *Bridge) QueryUser(ctx context.Context, mxid id.UserID) (bool, error) {
	uid, ok := b.puppetUserID(mxid)
	if !ok {
		return false, nil
	}
	if _, err := b.users.GetUser(ctx, uid); errors.Is(err, storage.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if _, err := b.ensurePuppet(ctx, uid); err != nil {
		return false, err
	}
	return true, nil
}

// QueryAlias is the appservice.Handler method: the alias of an existing
// Sandcat group exists (its portal is created now).
func (b *Bridge) QueryAlias(ctx context.Context, alias id.RoomAlias) (bool, error) {
	gid, ok := b.aliasGroupID(alias)
	if !ok {
		return false, nil
	}
	if _, err := b.groups.GetGroup(ctx, gid); errors.Is(err, storage.ErrNotFound) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	p, err := b.EnsurePortal(ctx, gid)
	if err != nil {
		return false, err
	}
	return p.Alias == alias.String(), nil
}

// defaultAvatar is the avatar of a new Matrix user in Sandcat (one of the
// default avatars every blob store holds) until its Matrix avatar is copied.
const defaultAvatar = "avatar1.png"

// eventKey is the idempotency key of the Sandcat message made from a Matrix
// event: the same event always becomes the same server_id.
func eventKey(evt id.EventID) string { return "matrix:" + evt.String() }
