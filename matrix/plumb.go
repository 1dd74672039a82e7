package matrix

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/storage"
)

// Plumbing links an existing Matrix room (not created by the bridge) to an
// existing Sandcat group. The room keeps its members, name and power
// levels; the bridge bot joins it, Matrix users who speak or join become
// members of the group, and the puppets of Sandcat members join when they
// speak (invited by the bot when the room is invite only, so the bot needs
// the invite power: by default every member has it).

// BridgeStateKey is the state_key of the m.bridge (MSC2346) and
// uk.half-shot.bridge state events the bridge sets in the room of a group.
func BridgeStateKey(groupID string) string {
	return "sandcat://sandcat/" + groupID
}

// bridgeStateTypes are the state event types of the bridge info: MSC2346's
// and the legacy one older clients read.
var bridgeStateTypes = []event.Type{event.StateBridge, event.StateHalfShotBridge}

// Errors of Plumb.
var (
	// ErrAlreadyBridged: the group already has a room, or the room is
	// already linked to a group (or is a direct chat of the bridge).
	ErrAlreadyBridged = errors.New("matrix: already bridged")
	// ErrCannotJoin: the homeserver refused the bridge bot's join (not
	// invited to a private room, unknown room or alias, banned).
	ErrCannotJoin = errors.New("matrix: the bridge bot cannot join the room")
)

// Plumb links an existing Matrix room (a room id !x:server or an alias
// #x:server) to a Sandcat group that has no room yet: the bot joins the
// room (it must have been invited, or the room must be public), the link
// is stored (Portal.Plumbed, no alias), the m.bridge state is set when the
// bot may, and a notice tells the room. The caller checks that the
// requester may do it. Errors: storage.ErrNotFound (no such group),
// ErrAlreadyBridged, ErrCannotJoin, others (homeserver or store failure).
func (b *Bridge) Plumb(ctx context.Context, groupID, room string) (*storage.Portal, error) {
	return b.plumb(ctx, groupID, room, "")
}

// plumb is Plumb; its notice answers replyTo when set.
func (b *Bridge) plumb(ctx context.Context, groupID, room string, replyTo id.EventID) (*storage.Portal, error) {
	g, err := b.groups.GetGroup(ctx, groupID)
	if err != nil {
		return nil, fmt.Errorf("matrix: plumb group %s: %w", groupID, err)
	}
	if p, err := b.store.GetPortal(ctx, groupID); err == nil {
		return nil, fmt.Errorf("%w: group %s is bridged to %s", ErrAlreadyBridged, groupID, p.RoomID)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	resp, err := b.bot.JoinRoom(ctx, room, nil)
	if err != nil {
		if permanent(err) {
			return nil, fmt.Errorf("%w %s: %w", ErrCannotJoin, room, err)
		}
		return nil, fmt.Errorf("matrix: the bot joins %s: %w", room, err)
	}
	roomID := resp.RoomID

	b.portalMu.Lock()
	defer b.portalMu.Unlock()
	if p, err := b.store.PortalByRoom(ctx, roomID.String()); err == nil {
		return nil, fmt.Errorf("%w: room %s is linked to %s", ErrAlreadyBridged, roomID, p.GroupID)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return nil, err
	}
	p := &storage.Portal{GroupID: groupID, RoomID: roomID.String(), Plumbed: true}
	if err := b.store.CreatePortal(ctx, p); errors.Is(err, storage.ErrConflict) {
		return nil, fmt.Errorf("%w: group %s or room %s", ErrAlreadyBridged, groupID, roomID)
	} else if err != nil {
		return nil, fmt.Errorf("matrix: store the plumbed room of group %s: %w", groupID, err)
	}
	b.log.Info("room plumbed", "group_id", groupID, "room_id", roomID)
	b.setBridgeState(ctx, p, g.Name)
	b.say(ctx, roomID, replyTo, fmt.Sprintf("This room is now bridged to the Sandcat group %q (%s).", g.Name, groupID), "")
	return p, nil
}

// setBridgeState sets the m.bridge (and uk.half-shot.bridge) state of a
// group's room, best effort: the bot of a plumbed room may lack the power,
// which is logged and otherwise ignored.
func (b *Bridge) setBridgeState(ctx context.Context, p *storage.Portal, groupName string) {
	content := &event.BridgeEventContent{
		BridgeBot: b.botID,
		Creator:   b.botID,
		Protocol:  event.BridgeInfoSection{ID: "sandcat", DisplayName: "Sandcat"},
		Channel:   event.BridgeInfoSection{ID: p.GroupID, DisplayName: groupName},
	}
	b.putBridgeState(ctx, p, content)
}

// clearBridgeState empties the bridge state of a group's room (best
// effort), as MSC2346 asks of a bridge that leaves a room.
func (b *Bridge) clearBridgeState(ctx context.Context, p *storage.Portal) {
	b.putBridgeState(ctx, p, struct{}{})
}

func (b *Bridge) putBridgeState(ctx context.Context, p *storage.Portal, content any) {
	for _, t := range bridgeStateTypes {
		if _, err := b.bot.SendStateEvent(ctx, id.RoomID(p.RoomID), t, BridgeStateKey(p.GroupID), content); err != nil {
			b.log.Info("bridge state not set", "type", t.Type, "room_id", p.RoomID, "group_id", p.GroupID, "err", err)
			return
		}
	}
}

// leavePlumbed takes the bridge out of an unbridged plumbed room: every
// puppet of a Sandcat user leaves, then the bot. Failures are logged.
func (b *Bridge) leavePlumbed(ctx context.Context, p *storage.Portal) {
	room := id.RoomID(p.RoomID)
	puppets := make(map[id.UserID]bool)
	b.mu.Lock()
	for k := range b.joined {
		if k.room == room {
			puppets[k.user] = true
			delete(b.joined, k)
		}
	}
	b.mu.Unlock()
	if members, err := b.bot.JoinedMembers(ctx, room); err == nil {
		for mxid := range members.Joined {
			puppets[mxid] = true
		}
	} else {
		b.log.Info("members of the unbridged room not read", "room_id", room, "err", err)
	}
	for mxid := range puppets {
		if mxid == b.botID || !b.ours(mxid) {
			continue
		}
		cli, err := b.client(mxid)
		if err == nil {
			_, err = cli.LeaveRoom(ctx, room)
		}
		if err != nil {
			b.log.Info("puppet did not leave the unbridged room", "mxid", mxid, "room_id", room, "err", err)
		}
	}
	if _, err := b.bot.LeaveRoom(ctx, room); err != nil {
		b.log.Info("bot did not leave the unbridged room", "room_id", room, "err", err)
	}
}

// canChangeState tells whether a Matrix user has the power to send state
// events that need state_default in a room (what changing the room's
// bridge needs).
func (b *Bridge) canChangeState(ctx context.Context, room id.RoomID, user id.UserID) (bool, error) {
	state, err := b.bot.State(ctx, room)
	if err != nil {
		return false, fmt.Errorf("matrix: state of %s: %w", room, err)
	}
	return mayChangeState(state, user), nil
}

// mayChangeState is canChangeState on a room's state. Room versions where
// the creators have unlimited power are handled.
func mayChangeState(state map[event.Type]map[string]*event.Event, user id.UserID) bool {
	create := state[event.StateCreate][""]
	plEvt := state[event.StatePowerLevels][""]
	if plEvt == nil {
		// No power levels: only the creator has power (100; everyone
		// else 0).
		return create != nil && create.Sender == user
	}
	pl := plEvt.Content.AsPowerLevels()
	pl.CreateEvent = create
	return pl.GetUserLevel(user) >= pl.StateDefault()
}

// roomArg checks a room given to plumb: a room id (!opaque:server, or
// !opaque in room versions 12+) or an alias (#local:server).
func roomArg(s string) bool {
	if len(s) < 2 || strings.ContainsAny(s, " \t\r\n/") {
		return false
	}
	switch s[0] {
	case '!':
		return true
	case '#':
		i := strings.IndexByte(s, ':')
		return i > 1 && i < len(s)-1
	}
	return false
}
