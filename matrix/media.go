package matrix

import (
	"context"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

// errNotBridgeable is wrapped by content conversions that can never
// succeed: the message is skipped with a notice instead of being retried.
var errNotBridgeable = errors.New("not bridgeable")

// userReason is the short reason shown in a room's notice.
func userReason(err error) string {
	return err.Error()
}

// contentFromMatrix is the Sandcat content type and content of a Matrix
// message (its reply fallback removed).
func (b *Bridge) contentFromMatrix(ctx context.Context, mc *event.MessageEventContent) (int32, []byte, error) {
	switch mc.MsgType {
	case event.MsgText, event.MsgNotice:
		return wire.ContentText, []byte(mc.Body), nil
	case event.MsgEmote:
		return wire.ContentText, []byte("* " + mc.Body), nil
	}
	return 0, nil, fmt.Errorf("%w: a %s message", errNotBridgeable, mc.MsgType)
}

// contentToMatrix is the Matrix content of a Sandcat message.
func (b *Bridge) contentToMatrix(ctx context.Context, m *wire.Msg) (*event.MessageEventContent, error) {
	c := &event.MessageEventContent{MsgType: event.MsgText, Body: string(m.Content)}
	if m.ContentType != wire.ContentText {
		c = &event.MessageEventContent{MsgType: event.MsgNotice,
			Body: fmt.Sprintf("(a message of content type %d that the bridge cannot show on Matrix yet)", m.ContentType)}
	}
	b.replyTo(ctx, m, c)
	return c, nil
}

// matrixAvatar copies a Matrix user's avatar into Sandcat.
func (b *Bridge) matrixAvatar(ctx context.Context, mxid id.UserID, avatar id.ContentURIString) error {
	return nil
}

// roomAvatarFromMatrix sets the group's avatar from the portal's.
func (b *Bridge) roomAvatarFromMatrix(ctx context.Context, portal *storage.Portal, evt *event.Event) error {
	return nil
}
