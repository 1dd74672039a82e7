package testsvc

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"slices"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"
)

// MatrixBot is a Matrix user on mautrix-go for the bridge's tests, as a
// bot would run: logged in with its password, syncing, and recording in
// order the timeline events of its rooms and its invitations.
type MatrixBot struct {
	Cli     *mautrix.Client
	t       testing.TB
	timeout time.Duration // of each wait

	mu  sync.Mutex
	got []*event.Event
	new chan struct{}
}

// NewMatrixBot logs localpart (registered already, with password) into the
// homeserver at hsURL and syncs until the test ends. Waits give up after
// timeout.
func NewMatrixBot(t testing.TB, hsURL, localpart, password string, timeout time.Duration) *MatrixBot {
	t.Helper()
	cli, err := mautrix.NewClient(hsURL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithTimeout(context.Background(), time.Minute)
	defer lcancel()
	if _, err := cli.Login(lctx, &mautrix.ReqLogin{
		Type:       mautrix.AuthTypePassword,
		Identifier: mautrix.UserIdentifier{Type: mautrix.IdentifierTypeUser, User: localpart},
		Password:   password, StoreCredentials: true,
	}); err != nil {
		t.Fatalf("%s logs in: %v", localpart, err)
	}
	b := &MatrixBot{Cli: cli, t: t, timeout: timeout, new: make(chan struct{}, 1)}
	cli.Syncer.(*mautrix.DefaultSyncer).OnEvent(func(_ context.Context, evt *event.Event) {
		src := evt.Mautrix.EventSource
		if src&event.SourceTimeline == 0 && src&event.SourceInvite == 0 {
			return
		}
		b.mu.Lock()
		b.got = append(b.got, evt)
		b.mu.Unlock()
		select {
		case b.new <- struct{}{}:
		default:
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = cli.SyncWithContext(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return b
}

// Events returns a copy of every event recorded so far, in order.
func (b *MatrixBot) Events() []*event.Event {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.got)
}

// Wait waits (bounded) until n recorded events match and returns all that
// match, in order.
func (b *MatrixBot) Wait(what string, n int, match func(*event.Event) bool) []*event.Event {
	b.t.Helper()
	deadline := time.After(b.timeout)
	for {
		var out []*event.Event
		for _, e := range b.Events() {
			if match(e) {
				out = append(out, e)
			}
		}
		if len(out) >= n {
			return out
		}
		select {
		case <-b.new:
		case <-deadline:
			b.t.Fatalf("matrix bot %s: %d of %d %s arrived: %s", b.Cli.UserID, len(out), n, what, bodies(out))
		}
	}
}

// Messages waits until n messages from others than the bot arrived in room
// and returns them all (more than n is for the caller to judge).
func (b *MatrixBot) Messages(room id.RoomID, n int) []*event.Event {
	b.t.Helper()
	return b.Wait("messages", n, func(e *event.Event) bool {
		return e.RoomID == room && e.Type == event.EventMessage && e.Sender != b.Cli.UserID
	})
}

// MXCBytes downloads an mxc:// URI as the bot (authenticated media).
func (b *MatrixBot) MXCBytes(ctx context.Context, uri id.ContentURIString) []byte {
	b.t.Helper()
	u, err := uri.Parse()
	if err != nil {
		b.t.Fatalf("mxc %q: %v", uri, err)
	}
	data, err := b.Cli.DownloadBytes(ctx, u)
	if err != nil {
		b.t.Fatalf("download %s: %v", uri, err)
	}
	return data
}

func bodies(evts []*event.Event) []string {
	out := make([]string, len(evts))
	for i, e := range evts {
		out[i] = fmt.Sprintf("%s %s: %q", e.Sender, e.Type.Type, e.Content.AsMessage().Body)
	}
	return out
}

// PNG is a small w×h PNG image with one pixel of colour c.
func PNG(t testing.TB, w, h int, c color.RGBA) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	img.Set(w/2, h/2, c)
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
