package matrix

// Edits and redactions, Matrix → Sandcat, as best the wire allows.
//
// The Sandcat wire has no edit and no delete message (sandcat-wire.md §3.3):
// a message, once delivered, stays as it is on the devices. So the bridge
// shows Matrix edits and redactions as new messages that quote the
// original, the way a person would correct themselves:
//
//   - an edit (m.relates_to rel_type m.replace) of a bridged message becomes
//     a new message of the same Matrix user (GroupMsg in a group, SingleMsg
//     in a direct chat) whose text is editMarker + the new body
//     (m.new_content; an emote gets "* ", a media caption edit shows its
//     new caption or file name as text) and whose related_msg_id is the
//     original's server_id, so native clients show it as a reply to the
//     message it corrects. Matrix edits always point at the original, so
//     every edit of a message quotes that message. An edit by another user
//     than the original's sender is ignored (Matrix clients ignore it too),
//     as is an edit of an edit;
//   - a redaction of a bridged message (whichever side it came from) becomes
//     a message of the redacting Matrix user with redactionText (plus the
//     reason given, if any) and related_msg_id = the original's server_id.
//     The original stays on the devices that received it and in the offline
//     inbox (the bridge has no way to take it back);
//   - edits and redactions of events the bridge never bridged (unknown
//     events, state events, messages of other rooms) are ignored.
//
// Each edit or redaction is mapped to the message it produced, like any
// bridged event, and that message's server_id is derived from the event
// (Sender.SendKeyed), so a replayed or duplicated event changes nothing,
// even after a crash between the send and the mapping.
//
// Sandcat → Matrix there is nothing to do: a Sandcat client cannot edit or
// delete a message for the others (DELETE /message only deletes the
// user's own inbox copies).

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"

	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

const (
	// editMarker starts the text of a Sandcat message made for a Matrix edit.
	editMarker = "✎ "
	// redactionText is the text of a Sandcat message made for a Matrix
	// redaction.
	redactionText = "🗑 Message deleted on Matrix"
)

// editFromMatrix bridges a Matrix edit in a group's portal as a GroupMsg of
// its sender quoting the original.
func (b *Bridge) editFromMatrix(ctx context.Context, portal *storage.Portal, evt *event.Event) error {
	orig, err := b.editTarget(ctx, portal, evt)
	if orig == "" || err != nil {
		return err
	}
	uid, err := b.matrixMember(ctx, portal, evt.Sender, "", evt.ID, false)
	if err != nil {
		return err
	}
	m := &wire.Msg{ReceiverID: portal.GroupID, GroupID: portal.GroupID, MsgType: wire.MsgTypeGroupMsg}
	return b.sendDerived(ctx, portal, uid, evt, m, editText(evt.Content.AsMessage()), orig)
}

// editFromMatrixDM bridges a Matrix edit in a DM room as a SingleMsg of the
// Matrix user to the Sandcat user, quoting the original.
func (b *Bridge) editFromMatrixDM(ctx context.Context, portal *storage.Portal, sandcatUser, matrixUser string, evt *event.Event) error {
	orig, err := b.editTarget(ctx, portal, evt)
	if orig == "" || err != nil {
		return err
	}
	m := &wire.Msg{ReceiverID: sandcatUser, MsgType: wire.MsgTypeSingleMsg}
	return b.sendDerived(ctx, portal, matrixUser, evt, m, editText(evt.Content.AsMessage()), orig)
}

// editTarget returns the server_id of the message an edit replaces, or ""
// when the edit is not to be bridged: the original unknown (never bridged,
// or in another room), sent by someone else, or itself an edit.
func (b *Bridge) editTarget(ctx context.Context, portal *storage.Portal, evt *event.Event) (string, error) {
	replaced := evt.Content.AsMessage().RelatesTo.GetReplaceID()
	rel, err := b.store.MessageByEventID(ctx, replaced.String())
	if errors.Is(err, storage.ErrNotFound) || (err == nil && rel.RoomID != portal.RoomID) {
		b.log.Debug("edit of an unbridged event ignored", "event_id", evt.ID, "replaces", replaced)
		return "", nil
	}
	if err != nil {
		return "", err
	}
	cli, err := b.readerClient(portal)
	if err != nil {
		return "", err
	}
	orig, err := cli.GetEvent(ctx, evt.RoomID, replaced)
	if err != nil {
		if ctx.Err() != nil || !permanent(err) {
			return "", fmt.Errorf("matrix: read %s, replaced by %s: %w", replaced, evt.ID, err)
		}
		b.log.Debug("edit of an unreadable event ignored", "event_id", evt.ID, "replaces", replaced, "err", err)
		return "", nil
	}
	if orig.Sender != evt.Sender {
		b.log.Info("edit of another user's message ignored", "event_id", evt.ID, "sender", evt.Sender, "original_sender", orig.Sender)
		return "", nil
	}
	if isEdit(orig) {
		b.log.Debug("edit of an edit ignored", "event_id", evt.ID, "replaces", replaced)
		return "", nil
	}
	return rel.ServerID, nil
}

// isEdit tells whether an event (as read from the homeserver, content not
// parsed) replaces another.
func isEdit(evt *event.Event) bool {
	if evt.Content.Parsed == nil {
		if err := evt.Content.ParseRaw(evt.Type); err != nil {
			return false
		}
	}
	return evt.Content.AsMessage().RelatesTo.GetReplaceID() != ""
}

// editText is the Sandcat text of a Matrix edit.
func editText(mc *event.MessageEventContent) string {
	nc := mc.NewContent
	if nc == nil {
		// No m.new_content: the fallback body, "* new text".
		return editMarker + strings.TrimPrefix(mc.Body, "* ")
	}
	body := nc.Body
	if nc.MsgType == event.MsgEmote {
		body = "* " + body
	}
	return editMarker + body
}

// redactionFromMatrix shows a Matrix redaction of a bridged message in
// Sandcat: a message of the redacting user quoting the original (see the
// file comment). It serves group portals and DM rooms.
func (b *Bridge) redactionFromMatrix(ctx context.Context, portal *storage.Portal, evt *event.Event) error {
	if _, err := b.store.MessageByEventID(ctx, evt.ID.String()); err == nil {
		return nil // handled before
	} else if !errors.Is(err, storage.ErrNotFound) {
		return err
	}
	rc := evt.Content.AsRedaction()
	target := evt.Redacts
	if target == "" {
		target = rc.Redacts
	}
	rel, err := b.store.MessageByEventID(ctx, target.String())
	if errors.Is(err, storage.ErrNotFound) || (err == nil && rel.RoomID != portal.RoomID) {
		return nil // not a bridged message
	}
	if err != nil {
		return err
	}
	text := redactionText
	if r := strings.TrimSpace(rc.Reason); r != "" {
		text += ": " + r
	}
	if sc, mx, ok := parseDMKey(portal.GroupID); ok {
		p, err := b.store.PuppetByMXID(ctx, evt.Sender.String())
		if errors.Is(err, storage.ErrNotFound) || (err == nil && p.UserID != mx) {
			return nil // someone else in the DM room
		}
		if err != nil {
			return err
		}
		m := &wire.Msg{ReceiverID: sc, MsgType: wire.MsgTypeSingleMsg}
		return b.sendDerived(ctx, portal, mx, evt, m, text, rel.ServerID)
	}
	uid, err := b.matrixMember(ctx, portal, evt.Sender, "", evt.ID, false)
	if err != nil {
		return err
	}
	m := &wire.Msg{ReceiverID: portal.GroupID, GroupID: portal.GroupID, MsgType: wire.MsgTypeGroupMsg}
	return b.sendDerived(ctx, portal, uid, evt, m, text, rel.ServerID)
}

// sendDerived puts into the pipeline a text message of uid made for a
// Matrix event (an edit or a redaction), quoting relatedServerID, and maps
// the event to it.
func (b *Bridge) sendDerived(ctx context.Context, portal *storage.Portal, uid string, evt *event.Event, m *wire.Msg, text, relatedServerID string) error {
	u, err := b.users.GetUser(ctx, uid)
	if err != nil {
		return err
	}
	m.SendID, m.LocalID, m.CreateTime = uid, evt.ID.String(), evt.Timestamp
	m.ContentType, m.Content, m.Nickname, m.Avatar = wire.ContentText, []byte(text), u.Name, u.Avatar
	m.RelatedMsgID = &relatedServerID
	if err := b.sender.SendKeyed(ctx, m, nil, eventKey(evt.ID)); err != nil {
		return fmt.Errorf("matrix: put %s into the pipeline: %w", evt.ID, err)
	}
	err = b.store.AddMessage(ctx, &storage.BridgedMessage{ServerID: m.ServerID, EventID: evt.ID.String(), RoomID: portal.RoomID})
	if err != nil && !errors.Is(err, storage.ErrConflict) {
		return fmt.Errorf("matrix: map %s to %s: %w", evt.ID, m.ServerID, err)
	}
	b.log.Debug("edit or redaction bridged to Sandcat", "event_id", evt.ID, "server_id", m.ServerID, "related", relatedServerID)
	return nil
}

// readerClient is the client that reads a portal's events: the bridge bot in
// a group's portal, the Sandcat user's puppet in a DM room (the bot is not
// in those).
func (b *Bridge) readerClient(portal *storage.Portal) (*mautrix.Client, error) {
	if sc, _, ok := parseDMKey(portal.GroupID); ok {
		return b.client(b.PuppetID(sc))
	}
	return b.bot, nil
}
