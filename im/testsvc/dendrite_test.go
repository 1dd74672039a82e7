package testsvc_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/im/testsvc"
)

func TestDendriteAppservice(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	asToken, hsToken := "as-"+randomText(t), "hs-"+randomText(t)
	as := newRecordingAppservice(hsToken)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: as, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	const asID = "sandcat-test"
	registration := filepath.Join(t.TempDir(), "registration.yaml")
	reg := fmt.Sprintf(`id: %s
url: http://%s
as_token: %s
hs_token: %s
sender_localpart: sandcatbot
rate_limited: false
namespaces:
  users:
    - exclusive: true
      regex: '@sandcat_.*:localhost'
  aliases:
    - exclusive: true
      regex: '#sandcat_.*:localhost'
  rooms: []
`, asID, l.Addr(), asToken, hsToken)
	if err := os.WriteFile(registration, []byte(reg), 0o644); err != nil {
		t.Fatal(err)
	}

	started := time.Now()
	d := testsvc.RunDendrite(t, testsvc.DendriteOptions{AppserviceRegistration: registration})
	t.Logf("dendrite ready in %s at %s", time.Since(started).Round(time.Millisecond), d.URL)
	if !strings.HasPrefix(d.URL, "http://127.0.0.1:") || d.ServerName != "localhost" {
		t.Fatalf("URL = %q, ServerName = %q", d.URL, d.ServerName)
	}

	// Dendrite has no appservice ping (Matrix v1.7): it answers
	// M_UNRECOGNIZED, which the bridge reads as "unsupported".
	bot, err := mautrix.NewClient(d.URL, id.NewUserID("sandcatbot", d.ServerName), asToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bot.AppservicePing(ctx, asID, "ping-1"); !errors.Is(err, mautrix.MUnrecognized) {
		t.Fatalf("appservice ping: %v, want M_UNRECOGNIZED", err)
	}

	alice, room := checkAppserviceFlow(ctx, t, as, d.URL, d.ServerName, asToken, bot, d.RegisterUser)

	// The homeserver keeps its databases across a restart on the same URL,
	// and delivers again afterwards.
	url := d.URL
	d.Restart(t)
	if d.URL != url {
		t.Fatalf("URL after restart = %q, want %q", d.URL, url)
	}
	sent, err := alice.SendText(ctx, room.RoomID, "after restart")
	if err != nil {
		t.Fatalf("send after restart: %v", err)
	}
	as.waitEvent(ctx, t, "the message sent after the restart", func(ev *event.Event) bool { return ev.ID == sent.EventID })

	as.mu.Lock()
	defer as.mu.Unlock()
	t.Logf("transaction IDs received: %q", as.txns)
	if as.badAuth != 0 {
		t.Errorf("%d requests carried a wrong hs_token", as.badAuth)
	}
}
