package matrix

import (
	"context"

	"maunium.net/go/mautrix/event"

	"github.com/sandcat-im/sandcat/storage"
)

// commandEvent handles the bridge bot's invitations and the commands
// addressed to it. portal is nil outside portals. handled is true when the
// event was for the bot and needs nothing more.
func (b *Bridge) commandEvent(ctx context.Context, portal *storage.Portal, evt *event.Event) (handled bool, err error) {
	return false, nil
}
