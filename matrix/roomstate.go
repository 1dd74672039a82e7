package matrix

// Room state and membership between a portal and its group.
//
// Name and topic, Matrix → Sandcat: an m.room.name or m.room.topic event
// of a portal sets the group's name or announcement (storage UpdateGroup)
// and the members get a GroupUpdate notice (content = the group's
// GroupInfo) in the name of the Matrix user who made the change (who
// becomes a member of the group, as when speaking). The notice is keyed by
// the event (Sender.SendKeyed), so a retry after a crash between the update
// and the notice still sends it, once; a name or topic set on Matrix to
// the value the group already has sends it too. Who may do it is decided
// by the room's power levels, which the homeserver enforced before the
// event existed: on a portal the bridge created (preset private_chat) only
// the bridge bot has power 100 and state events need 50, so Matrix users
// rename the group only once a room admin raised them; in a plumbed room,
// whoever the room allows. A name or topic removed on Matrix (empty)
// leaves the group's as it is: a Sandcat group always has a name, and an
// update never clears an announcement. The Matrix event is mapped to its
// notice (BridgedMessages), so a replayed event changes nothing, even
// after later changes.
//
// Sandcat → Matrix (syncRoomProfile): a GroupUpdate of a Sandcat user sets
// the room's name and topic as the bridge bot. There is no loop either way:
// the bot's state events come back to the bridge as its own echoes and are
// ignored, and the GroupUpdate made for a Matrix change has a Matrix user
// as sender, which the Sandcat → Matrix direction skips.
//
// Membership, Sandcat → Matrix: when Sandcat users join a bridged group
// (GroupInviteNew, or GroupInvitation for a portal created right after the
// group) their puppets join the portal, the first maxJoinsAtOnce of one
// notice; joinMembers does the same for a portal just created. The others
// join lazily, when they first speak (every message's puppet is joined
// before it sends): this avoids a join storm in big groups. Matrix users
// who are group members are never joined by the bridge: they are in the
// room already. Leaving and removal make the puppets leave (leave in
// tomatrix.go).
//
// Membership done on Matrix to the bridge's own users (puppetMembership):
//   - a Matrix user (a room moderator) kicking a puppet: the puppet is out of
//     the room, the Sandcat user stays in the group; the next message of
//     that user joins the puppet again (the bridge bot invites it). To keep
//     a Sandcat user's messages out of a room, ban its puppet;
//   - a ban of a puppet: the room gets a notice, once, that the user's
//     Sandcat messages will not be bridged while the ban lasts; they are
//     skipped (logged) until a moderator lifts the ban, after which the
//     next message joins the puppet again;
//   - a kick or ban of the bridge bot from a portal the bridge created:
//     logged as a warning (the bridge can then neither invite puppets nor
//     post notices in the room); inviting the bot back makes it join again.
//     (It hardly happens: the bot created the room with power 100, which
//     nobody can kick. A plumbed room the bot is kicked or banned from is
//     unbridged: commands.go.);
//   - an invitation of a puppet into a portal by a Matrix user: ignored (a
//     Sandcat user joins a group on Sandcat).

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

// maxJoinsAtOnce bounds the puppets joined to a portal for one creation or
// one invitation notice; the other members' puppets join when they speak.
// Each join costs a few homeserver requests (register, display name,
// invite, join) and a membership event in the room.
const maxJoinsAtOnce = 100

// roomProfileFromMatrix applies a portal's new name or topic to its group:
// the group's name or announcement, with a GroupUpdate notice to the
// members in the name of the Matrix sender, keyed by the event.
func (b *Bridge) roomProfileFromMatrix(ctx context.Context, portal *storage.Portal, evt *event.Event) error {
	if _, err := b.store.MessageByEventID(ctx, evt.ID.String()); err == nil {
		return nil // applied before
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	u, ok := profileUpdate(portal.GroupID, evt)
	if !ok {
		b.log.Debug("room name or topic removed on Matrix: the group keeps its own", "room_id", evt.RoomID, "event_id", evt.ID)
		return nil
	}
	uid, err := b.matrixMember(ctx, portal, evt.Sender, "", evt.ID, false)
	if err != nil {
		return err
	}
	// Not changed: the group has that value already, maybe from this very
	// event handled up to its notice before a crash. The notice is sent
	// anyway, keyed by the event: the pipeline stores it once.
	info, _, err := b.groups.UpdateGroup(ctx, u)
	if err != nil {
		return fmt.Errorf("matrix: update group %s from %s: %w", portal.GroupID, evt.ID, err)
	}
	n, err := b.groupUpdateNotice(ctx, portal, uid, evt, info)
	if err != nil {
		return err
	}
	err = b.store.AddMessage(ctx, &storage.BridgedMessage{ServerID: n.ServerID, EventID: evt.ID.String(), RoomID: portal.RoomID})
	if err != nil && !errors.Is(err, storage.ErrConflict) {
		return fmt.Errorf("matrix: map %s to %s: %w", evt.ID, n.ServerID, err)
	}
	b.log.Info("group profile changed on Matrix", "group_id", portal.GroupID, "mxid", evt.Sender, "type", evt.Type.Type)
	return nil
}

// profileUpdate is the group update of an m.room.name or m.room.topic
// event; false when it sets nothing (an empty name or topic).
func profileUpdate(groupID string, evt *event.Event) (storage.GroupUpdate, bool) {
	u := storage.GroupUpdate{ID: groupID}
	switch evt.Type {
	case event.StateRoomName:
		u.Name = evt.Content.AsRoomName().Name
	case event.StateTopic:
		u.Announcement = evt.Content.AsTopic().Topic
	}
	return u, u.Name != "" || u.Announcement != ""
}

// puppetMembership handles a membership event of one of the bridge's own
// users sent by someone else (a Matrix user kicking or banning a puppet or
// the bot, or inviting one). See the file comment.
func (b *Bridge) puppetMembership(ctx context.Context, portal *storage.Portal, evt *event.Event) error {
	target := id.UserID(evt.GetStateKey())
	membership := evt.Content.AsMember().Membership
	reason := evt.Content.AsMember().Reason
	room := id.RoomID(portal.RoomID)
	if target == b.botID {
		switch membership {
		case event.MembershipLeave, event.MembershipBan:
			b.log.Warn("the bridge bot was taken out of a portal: puppets cannot be invited nor notices posted there until it is invited back",
				"room_id", room, "group_id", portal.GroupID, "by", evt.Sender, "membership", membership, "reason", reason)
		case event.MembershipInvite:
			if _, err := b.bot.JoinRoomByID(ctx, room); err != nil {
				return fmt.Errorf("matrix: the bot joins %s again: %w", room, err)
			}
			b.log.Info("the bridge bot joined a portal again", "room_id", room, "group_id", portal.GroupID, "by", evt.Sender)
		}
		return nil
	}
	switch membership {
	case event.MembershipLeave, event.MembershipBan:
	default:
		return nil // an invitation by a Matrix user: a Sandcat user joins a group on Sandcat
	}
	b.forgetJoined(room, target)
	uid, _ := b.puppetUserID(target)
	if membership == event.MembershipLeave {
		what := "kicked"
		if prevMembership(evt) == event.MembershipBan {
			what = "unbanned"
		}
		b.log.Info("puppet "+what+" on Matrix: it joins again with its next message",
			"room_id", room, "puppet", target, "user_id", uid, "by", evt.Sender, "reason", reason)
		return nil
	}
	b.log.Info("puppet banned on Matrix: its messages are not bridged to this room while the ban lasts",
		"room_id", room, "puppet", target, "user_id", uid, "by", evt.Sender, "reason", reason)
	name := target.String()
	if u, err := b.users.GetUser(ctx, uid); err == nil && u.Name != "" {
		name = u.Name
	}
	b.notice(ctx, portal, fmt.Sprintf("%s (Sandcat) is banned from this room: their messages in the Sandcat group will not be bridged here while the ban lasts.", name))
	return nil
}

// prevMembership is the membership an event replaced ("" if unknown).
func prevMembership(evt *event.Event) event.Membership {
	if evt.Unsigned.PrevContent == nil {
		return ""
	}
	var prev struct {
		Membership event.Membership `json:"membership"`
	}
	if err := json.Unmarshal(evt.Unsigned.PrevContent.VeryRaw, &prev); err != nil {
		return ""
	}
	return prev.Membership
}

// forgetJoined drops a puppet's joined mark of a room: its next message
// joins it again.
func (b *Bridge) forgetJoined(room id.RoomID, user id.UserID) {
	b.mu.Lock()
	delete(b.joined, joinKey{room, user})
	b.mu.Unlock()
}

// joinMembers joins the puppets of a group's Sandcat members to its portal
// (the first maxJoinsAtOnce; the others join when they speak). Call it when
// a portal is created. Failures that retries cannot cure are logged and
// skipped; the error is a transient one (the homeserver unreachable).
func (b *Bridge) joinMembers(ctx context.Context, portal *storage.Portal) error {
	members, err := b.groups.GroupMemberIDs(ctx, portal.GroupID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return b.joinPuppets(ctx, portal, members)
}

// membersToMatrix handles a GroupInvitation (a group just created: all its
// members) or a GroupInviteNew (the new members in the content) of a
// bridged group: the new members' puppets join the portal.
func (b *Bridge) membersToMatrix(ctx context.Context, portal *storage.Portal, m *wire.Msg) error {
	if m.MsgType == wire.MsgTypeGroupInvitation {
		return b.joinMembers(ctx, portal)
	}
	added, err := wire.DecodeStrings(m.Content)
	if err != nil {
		b.log.Warn("GroupInviteNew content not decoded", "server_id", m.ServerID, "err", err)
		return nil
	}
	return b.joinPuppets(ctx, portal, added)
}

// joinPuppets joins the puppets of Sandcat users to a portal, at most
// maxJoinsAtOnce of them; Matrix users are skipped.
func (b *Bridge) joinPuppets(ctx context.Context, portal *storage.Portal, userIDs []string) error {
	room := id.RoomID(portal.RoomID)
	joined := 0
	for _, uid := range storage.DistinctMemberIDs(userIDs) {
		if joined >= maxJoinsAtOnce {
			b.log.Info("more members than joined at once: the others' puppets join when they speak",
				"group_id", portal.GroupID, "members", len(userIDs), "joined", joined)
			return nil
		}
		if p, err := b.store.GetPuppet(ctx, uid); err == nil && p.FromMatrix {
			continue // a Matrix user: in the room on its own
		} else if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		err := b.joinPuppet(ctx, room, uid)
		if err != nil && (ctx.Err() != nil || !permanent(err)) {
			return err
		}
		if err != nil {
			b.log.Warn("puppet not joined to the portal", "group_id", portal.GroupID, "user_id", uid, "err", err)
			continue
		}
		joined++
	}
	return nil
}

func (b *Bridge) joinPuppet(ctx context.Context, room id.RoomID, uid string) error {
	puppet, err := b.ensurePuppet(ctx, uid)
	if err != nil {
		return err
	}
	_, err = b.ensureJoined(ctx, room, puppet)
	return err
}

// groupUpdateNotice tells the group's members (but uid) its new info, in
// the name of uid, the Sandcat user of the Matrix user whose event changed
// it, keyed by that event (a replay stores nothing twice).
func (b *Bridge) groupUpdateNotice(ctx context.Context, portal *storage.Portal, uid string, evt *event.Event, info wire.GroupInfo) (*wire.Msg, error) {
	members, err := b.groups.GroupMemberIDs(ctx, portal.GroupID)
	if err != nil {
		return nil, err
	}
	to := make([]string, 0, len(members))
	for _, m := range storage.DistinctMemberIDs(members) {
		if m != uid {
			to = append(to, m)
		}
	}
	n := &wire.Msg{
		SendID: uid, ReceiverID: portal.GroupID, GroupID: portal.GroupID, LocalID: evt.ID.String(), CreateTime: evt.Timestamp,
		MsgType: wire.MsgTypeGroupUpdate, ContentType: wire.ContentDefault, Content: info.MarshalBincode(),
	}
	if err := b.sender.SendKeyed(ctx, n, to, eventKey(evt.ID)); err != nil {
		return nil, fmt.Errorf("matrix: GroupUpdate notice of %s: %w", evt.ID, err)
	}
	return n, nil
}

// SyncProfiles keeps puppets' display names and avatars equal to their
// Sandcat users' until ctx ends: every interval, the users updated since
// their puppet was last written (storage.Puppets.StalePuppets) are synced
// (ensurePuppet) and their puppet rows touched. A puppet is otherwise synced
// whenever its user speaks; this catches the users who changed their
// profile and stay silent.
func (b *Bridge) SyncProfiles(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := b.syncStaleProfiles(ctx); err != nil && ctx.Err() == nil {
			b.log.Warn("puppet profiles not synced; next try later", "err", err)
		}
	}
}

// syncStaleProfiles syncs the puppets of the users updated since their
// puppet was written, 100 at a time, at most 1,000 a call (a clock of the
// API ahead of this process's could keep rows stale: never loop forever).
func (b *Bridge) syncStaleProfiles(ctx context.Context) error {
	for range 10 {
		stale, err := b.store.StalePuppets(ctx, 100)
		if err != nil || len(stale) == 0 {
			return err
		}
		for _, uid := range stale {
			_, err := b.syncPuppet(ctx, uid, true) // writes the row: synced as of now
			if err == nil {
				continue
			}
			if !permanent(err) {
				return err
			}
			b.log.Info("puppet profile not synced", "user_id", uid, "err", err)
			// Not syncable (the user is gone, the homeserver refuses): mark
			// the row as of now all the same, so it is not tried every time.
			p, err := b.store.GetPuppet(ctx, uid)
			if err != nil {
				return err
			}
			if err := b.store.PutPuppet(ctx, p); err != nil {
				return err
			}
		}
		if len(stale) < 100 {
			return nil
		}
	}
	return nil
}
