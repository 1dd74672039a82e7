package matrix

import (
	"context"

	"maunium.net/go/mautrix/event"

	"github.com/sandcat-im/sandcat/storage"
)

// roomProfileFromMatrix applies a portal's new name or topic to its group.
func (b *Bridge) roomProfileFromMatrix(ctx context.Context, portal *storage.Portal, evt *event.Event) error {
	return nil
}

// puppetMembership handles a membership event of one of the bridge's own
// users sent by someone else (a Matrix user kicking or banning a puppet).
func (b *Bridge) puppetMembership(ctx context.Context, portal *storage.Portal, evt *event.Event) error {
	return nil
}

// redactionFromMatrix shows a Matrix redaction of a bridged message in Sandcat.
func (b *Bridge) redactionFromMatrix(ctx context.Context, portal *storage.Portal, evt *event.Event) error {
	return nil
}
