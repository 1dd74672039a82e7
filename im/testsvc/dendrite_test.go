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

	aliceID, aliceToken := d.RegisterUser(t, "alice", "alice-password")
	if aliceID != "@alice:localhost" {
		t.Fatalf("user id = %q, want @alice:localhost", aliceID)
	}
	alice, err := mautrix.NewClient(d.URL, id.UserID(aliceID), aliceToken)
	if err != nil {
		t.Fatal(err)
	}

	// The appservice registers a puppet in its exclusive namespace...
	puppetID := id.NewUserID("sandcat_bob", d.ServerName)
	if _, _, err := bot.Register(ctx, &mautrix.ReqRegister[any]{
		Username: "sandcat_bob", Type: mautrix.AuthTypeAppservice, InhibitLogin: true,
	}); err != nil {
		t.Fatalf("register puppet: %v", err)
	}
	// ...that a plain user cannot take.
	anon, err := mautrix.NewClient(d.URL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = anon.Register(ctx, &mautrix.ReqRegister[any]{Username: "sandcat_eve", Password: "eve-password"})
	if !errors.Is(err, mautrix.MExclusive) {
		t.Fatalf("plain registration in the appservice's exclusive namespace: err = %v, want M_EXCLUSIVE", err)
	}

	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Name: "bridge test", Preset: "private_chat", Invite: []id.UserID{puppetID},
	})
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	as.waitEvent(ctx, t, "the puppet's invite", func(ev *event.Event) bool {
		return ev.Type == event.StateMember && ev.RoomID == room.RoomID && ev.GetStateKey() == puppetID.String()
	})

	// The appservice joins as the puppet (masquerading with its as_token).
	puppet, err := mautrix.NewClient(d.URL, puppetID, asToken)
	if err != nil {
		t.Fatal(err)
	}
	puppet.SetAppServiceUserID = true
	if _, err := puppet.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatalf("puppet join: %v", err)
	}

	sent, err := alice.SendText(ctx, room.RoomID, "hello, bridge")
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	ev := as.waitEvent(ctx, t, "alice's message", func(ev *event.Event) bool { return ev.ID == sent.EventID })
	if ev.Sender.String() != aliceID || ev.Type != event.EventMessage {
		t.Fatalf("event = %s from %s, want m.room.message from %s", ev.Type.Type, ev.Sender, aliceID)
	}

	// The homeserver keeps its databases across a restart on the same URL,
	// and delivers again afterwards.
	url := d.URL
	d.Restart(t)
	if d.URL != url {
		t.Fatalf("URL after restart = %q, want %q", d.URL, url)
	}
	sent, err = alice.SendText(ctx, room.RoomID, "after restart")
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
