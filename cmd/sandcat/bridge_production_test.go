package main

import (
	"bytes"
	"context"
	"fmt"
	"image/color"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/im/client"
	"github.com/sandcat-im/sandcat/im/testsvc"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/matrix"
)

// TestProductionBridge runs the Matrix bridge in the production deployment:
// the real binary as separate api, gateway, msgserver and appservice
// processes over PostgreSQL, Redis, FerretDB, kfake, MinIO and Consul, with
// a real Synapse whose appservice registration was written by `sandcat
// appservice registration`. Two native users (WebSocket) in a group bridge
// it through the appservice listener; a Matrix bot joins the portal; texts
// go both ways with their senders, order and timestamps, and images and a
// Matrix avatar go through MinIO (the appservice process reads and writes
// the blob store the api process serves). The appservice
// process is then SIGKILLed mid-conversation, both sides keep talking while
// it is down, and once it is started again every message arrives exactly
// once on each side, in order: the bridge's consumer group commits its Kafka
// offsets only after the Matrix sends (which carry stable transaction ids),
// and Synapse resends its transactions to the restarted bridge.
//
// One appservice process only: the homeserver sends its transactions to
// the one URL of the registration. (A second process would join the same
// consumer group and share the Sandcat → Matrix direction by partition, but
// never see a Matrix event; not a supported deployment, not tested.)
func TestProductionBridge(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Synapse, FerretDB, kfake, MinIO, Consul and four sandcat processes")
	}
	const partitions = 2
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	testsvc.SynapseRoot(t) // fail fast, with the command that builds it
	began := time.Now()

	d := startBackends(t, partitions)

	// The operator's steps: the registration for the homeserver and the
	// appservice section for config.yml, by the binary. The homeserver's
	// port is known only once it runs: its URL comes from the environment
	// (SANDCAT_APPSERVICE_HOMESERVER_URL), as a container would get it.
	asURL := fmt.Sprintf("http://127.0.0.1:%d", freePort(t))
	regPath, section := bridgeRegistration(t, asURL, "localhost", "http://127.0.0.1:8008")
	if want := "listen: " + strings.TrimPrefix(asURL, "http://"); !strings.Contains(section, want) {
		t.Fatalf("the appservice section lacks %q:\n%s", want, section)
	}
	synStarted := time.Now()
	syn := testsvc.RunSynapse(t, testsvc.SynapseOptions{AppserviceRegistration: regPath})
	t.Logf("synapse up in %v", time.Since(synStarted).Round(time.Millisecond))
	if syn.ServerName != "localhost" {
		t.Fatalf("synapse server name %q", syn.ServerName)
	}

	d.start(1, 1)
	as := d.newBridgeNode("appservice", section, syn.URL)
	up := d.startBridgeProc(as, asURL)
	t.Logf("deployment up %v after the start (appservice serving %v after its spawn)",
		time.Since(began).Round(time.Millisecond), up.Round(time.Millisecond))

	// ---- Two native users in a group.
	aliceA, bobA := d.api.p.register(ctx, "Alice"), d.api.p.register(ctx, "Bob")
	alice := connect(ctx, t, aliceA, "Alice", aliceA.Login.WSAddr)
	bob := connect(ctx, t, bobA, "Bob", bobA.Login.WSAddr)
	inv, err := alice.API.CreateGroup(ctx, alice.ID, "Bridged", "g.png", []string{bob.ID})
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	gid := inv.Info.ID
	bob.waitFrame(t, "the group invitation", func(m *wire.Msg) bool { return m.MsgType == wire.MsgTypeGroupInvitation })

	// ---- Bridged by the owner on the appservice listener; a Matrix bot joins.
	bot := newMXBot(t, syn, "bot1")
	routes := &client.HTTP{Base: asURL}
	routes.Timeout = time.Minute
	path := "/matrix/group/" + gid + "/invite"
	body := matrix.InviteRequest{MXID: bot.cli.UserID.String()}
	err = routes.WithToken(bob.Login.Token).Call(ctx, "POST", path, body, nil)
	if client.StatusOf(err) != 403 || client.KindOf(err) != "Forbidden" {
		t.Fatalf("invite by a member: %v, want 403 Forbidden", err)
	}
	var portal matrix.PortalResponse
	if err := routes.WithToken(alice.Login.Token).Call(ctx, "POST", path, body, &portal); err != nil {
		t.Fatalf("invite by the owner: %v", err)
	}
	wantAlias := id.NewRoomAlias("sandcat_"+id.EncodeUserLocalpart(gid), syn.ServerName)
	if portal.GroupID != gid || portal.RoomID == "" || portal.Alias != wantAlias.String() {
		t.Fatalf("portal %+v, want alias %s", portal, wantAlias)
	}
	room := id.RoomID(portal.RoomID)
	if r, err := bot.cli.ResolveAlias(ctx, wantAlias); err != nil || r.RoomID != room {
		t.Fatalf("alias %s resolves to %v (%v), want %s", wantAlias, r, err, room)
	}
	// The bot has an avatar: the appservice copies it into the blob store
	// (MinIO), where the api process serves it.
	botPic := testPNG(t, 4, 4, color.RGBA{R: 9, G: 99, B: 199, A: 255})
	up0, err := bot.cli.UploadBytesWithName(ctx, botPic, "image/png", "bot.png")
	if err != nil {
		t.Fatal(err)
	}
	if err := bot.cli.SetAvatarURL(ctx, up0.ContentURI); err != nil {
		t.Fatal(err)
	}
	if _, err := bot.cli.JoinRoomByID(ctx, room); err != nil {
		t.Fatalf("bot joins the portal: %v", err)
	}
	var botUID string
	for _, p := range []*peer{alice, bob} {
		n := p.waitFrame(t, "the new Matrix member", func(m *wire.Msg) bool {
			return m.MsgType == wire.MsgTypeGroupInviteNew && m.GroupID == gid
		})
		added, err := wire.DecodeStrings(n.Content)
		if err != nil || len(added) != 1 || n.SendID != alice.ID || (botUID != "" && added[0] != botUID) {
			t.Fatalf("%s: GroupInviteNew from %s adding %v (%v)", p.name, n.SendID, added, err)
		}
		botUID = added[0]
	}
	fromBot := func(m *wire.Msg) bool {
		return m.MsgType == wire.MsgTypeGroupMsg && m.GroupID == gid && m.SendID == botUID
	}
	puppet := func(userID string) id.UserID {
		return id.NewUserID("sandcat_"+id.EncodeUserLocalpart(userID), syn.ServerName)
	}

	// What each side must end up with, in order.
	type toMX struct {
		from  *peer
		text  string // the text, or the file name of an image
		ack   wire.Msg
		image bool
	}
	type fromMX struct {
		text  string // the text, or the file name of an image
		evt   id.EventID
		image bool
	}
	var toMatrix []toMX
	var fromMatrix []fromMX
	say := func(p *peer, text string) {
		t.Helper()
		toMatrix = append(toMatrix, toMX{from: p, text: text, ack: p.send(t, groupMsg(p.ID, gid, text))})
	}
	botSays := func(text string) {
		t.Helper()
		fromMatrix = append(fromMatrix, fromMX{text: text, evt: bot.sendText(ctx, room, text)})
	}
	// Images: uploaded by the native client into MinIO (api), by the bot
	// into Synapse's media repository.
	sayImage := func(p *peer, name string, data []byte) {
		t.Helper()
		key, err := p.API.Upload(ctx, name, "image/png", bytes.NewReader(data))
		if err != nil {
			t.Fatalf("upload: %v", err)
		}
		m := groupMsg(p.ID, gid, "")
		m.ContentType, m.Content = wire.ContentImage, fmt.Appendf(nil, "%s||%s||%d||png", key, name, len(data))
		toMatrix = append(toMatrix, toMX{from: p, text: name, ack: p.send(t, m), image: true})
	}
	botSaysImage := func(name string, data []byte) {
		t.Helper()
		up, err := bot.cli.UploadBytesWithName(ctx, data, "image/png", name)
		if err != nil {
			t.Fatalf("upload to Synapse: %v", err)
		}
		r, err := bot.cli.SendMessageEvent(ctx, room, event.EventMessage, &event.MessageEventContent{
			MsgType: event.MsgImage, Body: name, URL: up.ContentURI.CUString(),
			Info: &event.FileInfo{MimeType: "image/png", Size: len(data)}})
		if err != nil {
			t.Fatalf("bot sends an image: %v", err)
		}
		fromMatrix = append(fromMatrix, fromMX{text: name, evt: r.EventID, image: true})
	}

	// checkMatrix: the room holds the Sandcat messages once each, in order,
	// sent by their puppets with Sandcat's send_time as origin_server_ts.
	checkMatrix := func(when string, evts []*event.Event) {
		t.Helper()
		if len(evts) != len(toMatrix) {
			t.Fatalf("%s: the room holds %d messages, want %d: %s", when, len(evts), len(toMatrix), bodies(evts))
		}
		for i, s := range toMatrix {
			ev, mc := evts[i], evts[i].Content.AsMessage()
			want := event.MsgText
			if s.image {
				want = event.MsgImage
			}
			if ev.Sender != puppet(s.from.ID) || mc.Body != s.text || mc.MsgType != want || ev.Timestamp != s.ack.SendTime {
				t.Fatalf("%s: matrix message %d: %s %q %s ts %d; want %s %q %s ts %d (the room: %s)", when, i,
					ev.Sender, mc.Body, mc.MsgType, ev.Timestamp, puppet(s.from.ID), s.text, want, s.ack.SendTime, bodies(evts))
			}
		}
	}
	// checkSandcat: each member got the Matrix messages once each, in
	// order, from the bot's Sandcat user, created at the event's time.
	stamps := map[id.EventID]int64{}
	checkSandcat := func(when string, p *peer, got []wire.Msg) {
		t.Helper()
		if len(got) != len(fromMatrix) {
			t.Fatalf("%s: %s got %d Matrix messages, want %d: %s", when, p.name, len(got), len(fromMatrix), texts(got))
		}
		var lastSeq int64
		for i, want := range fromMatrix {
			ts, ok := stamps[want.evt]
			if !ok {
				ev, err := bot.cli.GetEvent(ctx, room, want.evt)
				if err != nil {
					t.Fatalf("get event %s: %v", want.evt, err)
				}
				ts, stamps[want.evt] = ev.Timestamp, ev.Timestamp
			}
			m := got[i]
			body, ct := string(m.Content), wire.ContentText
			if want.image {
				ct = wire.ContentImage
				if parts := strings.Split(body, "||"); len(parts) == 4 {
					body = parts[1]
				}
			}
			if body != want.text || m.ContentType != ct || m.LocalID != want.evt.String() ||
				m.CreateTime != ts || m.Seq <= lastSeq || m.Nickname != "bot1" {
				t.Fatalf("%s: %s: Matrix message %d: %+v; want %q (%s) created at %d (all: %s)",
					when, p.name, i, m, want.text, want.evt, ts, texts(got))
			}
			lastSeq = m.Seq
		}
	}

	// ---- Text both ways, live.
	say(alice, "hello Matrix")
	say(bob, "hi from Bob")
	say(alice, "second from Alice")
	checkMatrix("live", bot.messages(room, len(toMatrix)))
	if dn, err := bot.cli.GetDisplayName(ctx, puppet(alice.ID)); err != nil || dn.DisplayName != "Alice" {
		t.Fatalf("display name of Alice's puppet: %+v, %v", dn, err)
	}
	botSays("hello Sandcat")
	botSays("second from Matrix")
	for _, p := range []*peer{alice, bob} {
		checkSandcat("live", p, p.waitN(t, "Matrix messages", len(fromMatrix), fromBot))
	}

	// ---- Media through MinIO: the appservice process reads the native
	// client's upload and writes the Matrix user's avatar and image, which
	// the api process serves.
	alicePic, botImg := testPNG(t, 12, 8, color.RGBA{R: 255, A: 255}), testPNG(t, 5, 9, color.RGBA{G: 255, A: 255})
	sayImage(alice, "cat.png", alicePic)
	evts := bot.messages(room, len(toMatrix))
	checkMatrix("an image", evts)
	if got := bot.MXCBytes(ctx, evts[len(evts)-1].Content.AsMessage().URL); !bytes.Equal(got, alicePic) {
		t.Fatalf("the image on Matrix is %d bytes, differs from the %d uploaded", len(got), len(alicePic))
	}
	botSaysImage("green.png", botImg)
	for _, p := range []*peer{alice, bob} {
		got := p.waitN(t, "Matrix messages", len(fromMatrix), fromBot)
		checkSandcat("an image", p, got)
		key, _, _ := strings.Cut(string(got[len(got)-1].Content), "||")
		if data, _, err := p.API.Download(ctx, key); err != nil || !bytes.Equal(data, botImg) {
			t.Fatalf("%s: GET /file/get/%s: %d bytes, %v; want the %d sent on Matrix", p.name, key, len(data), err, len(botImg))
		}
	}
	var botAvatar string
	d.waitUntil(as.p, "the bot's avatar in Sandcat", func() error {
		var u struct {
			Avatar string `json:"avatar"`
		}
		if err := alice.API.Call(ctx, "GET", "/friend/query/"+botUID, nil, &u); err != nil {
			return err
		}
		if botAvatar = u.Avatar; botAvatar == "" {
			return fmt.Errorf("no avatar yet")
		}
		return nil
	})
	if got, _, err := alice.API.DownloadAvatar(ctx, botAvatar); err != nil || !bytes.Equal(got, botPic) {
		t.Fatalf("the bot's avatar %s: %d bytes, %v; want its %d", botAvatar, len(got), err, len(botPic))
	}

	// ---- SIGKILL the appservice mid-conversation: a burst from both
	// native users, killed once the first of it is in the room (the bridge
	// is then sending the rest, its Kafka batch not committed) and right
	// after a Matrix message (its transaction in flight), more of both
	// while it is down.
	burstFrom := len(toMatrix)
	for i := range 6 {
		say([]*peer{alice, bob}[i%2], fmt.Sprintf("burst %d", i))
	}
	bot.messages(room, burstFrom+1)
	botSays("in flight from Matrix")
	killed := time.Now()
	first := as.p
	as.p.kill()
	inFlight := fromMatrix[len(fromMatrix)-1].evt
	say(alice, "while down 1")
	botSays("while down from Matrix 1")
	say(bob, "while down 2")
	botSays("while down from Matrix 2")
	say(alice, "while down 3")
	// Down past Synapse's first retry (2 s after the failed transaction):
	// its recoverer is in backoff, and the restarted bridge's ping is what
	// makes it resend at once. (Scenario shaping, not a timing assertion.)
	time.Sleep(3 * time.Second)
	inRoom := map[string]bool{} // burst messages the killed process put in the room
	for _, ev := range bot.messages(room, burstFrom+1)[burstFrom:] {
		for _, s := range toMatrix[burstFrom:] {
			if ev.Content.AsMessage().Body == s.text {
				inRoom[s.ack.ServerID] = true
			}
		}
	}
	restarted := time.Now()
	up = d.startBridgeProc(as, asURL)
	t.Logf("appservice SIGKILLed, down %v, serving again %v after its spawn (consumer group rejoined, homeserver pinged)",
		restarted.Sub(killed).Round(time.Millisecond), up.Round(time.Millisecond))

	// ---- Everything arrives once, in order, on both sides; then live again.
	say(bob, "after the restart from Bob")
	botSays("after the restart from Matrix")
	checkMatrix("after the restart", bot.messages(room, len(toMatrix)))
	for _, p := range []*peer{alice, bob} {
		checkSandcat("after the restart", p, p.waitN(t, "Matrix messages", len(fromMatrix), fromBot))
	}
	t.Logf("every message both ways delivered once, in order, %v after the restart began", time.Since(restarted).Round(time.Millisecond))
	// What the kill interrupted, from the processes' debug lines.
	before, after := bridgedBy(first), bridgedBy(as.p)
	var killedMapped, resent, later int
	for _, s := range toMatrix[burstFrom : burstFrom+6] {
		k := "Matrix " + s.ack.ServerID
		switch {
		case before[k] && after[k]:
			t.Errorf("burst message %s was bridged by both processes", s.ack.ServerID)
		case inRoom[s.ack.ServerID] && after[k]:
			resent++ // in the room, not recorded: sent again with its txn id
		case after[k]:
			later++
		case before[k] || inRoom[s.ack.ServerID]:
			killedMapped++ // recorded before the kill (logged or not): skipped when redelivered
		}
	}
	t.Logf("the burst of 6 at the kill: %d bridged and recorded, %d in the room but not recorded (sent again after the restart with the same transaction id; Synapse answered the same event), %d bridged after the restart",
		killedMapped, resent, later)
	t.Logf("the Matrix message in flight at the kill: handled before it %v, after the restart %v",
		before["Sandcat "+inFlight.String()], after["Sandcat "+inFlight.String()])

	// The inboxes agree: each Matrix event stored once per member (by its
	// local_id, the event id), no server_id or seq twice.
	for _, u := range []*account{aliceA, bobA} {
		pl := pullAll(ctx, t, u)
		checkPulled(t, u.Email, pl)
		n := 0
		for _, m := range pl.recv {
			if fromBot(&m) {
				n++
			}
		}
		if n != len(fromMatrix) {
			t.Errorf("%s's inbox holds %d Matrix messages, want %d", u.Email, n, len(fromMatrix))
		}
	}
	// Nothing came late either: one last round trip, then the same counts.
	say(alice, "the last word")
	botSays("the last word from Matrix")
	checkMatrix("at the end", bot.messages(room, len(toMatrix)))
	for _, p := range []*peer{alice, bob} {
		checkSandcat("at the end", p, p.waitN(t, "Matrix messages", len(fromMatrix), fromBot))
	}
	// The restarted process's bus counters (its listener serves /metrics):
	// records consumed and committed by its group, none dead-lettered.
	if m := scrape(t, asURL+"/metrics"); m["sandcat_bus_consumed_total"] == 0 || m["sandcat_bus_dead_lettered_total"] != 0 {
		t.Errorf("appservice metrics: %v consumed, %v dead-lettered; want some and none",
			m["sandcat_bus_consumed_total"], m["sandcat_bus_dead_lettered_total"])
	}
	for _, p := range []*proc{first, as.p} {
		if errs := errorLines(p); len(errs) > 0 {
			t.Errorf("the appservice (pid %d) logged %d error(s):\n%s", p.cmd.Process.Pid, len(errs), strings.Join(errs, "\n"))
		}
	}
	// SIGTERM: the appservice stops gracefully (commits, leaves its group).
	as.p.signal(syscall.SIGTERM)
	if code := as.p.wait(waitEvent); code != 0 {
		t.Errorf("appservice: exit status %d after SIGTERM\n%s", code, as.p.log.tail(20))
	}
	t.Logf("%d messages Sandcat → Matrix, %d Matrix → Sandcat, in %v", len(toMatrix), len(fromMatrix), time.Since(began).Round(time.Millisecond))
}

var errorLevel = regexp.MustCompile(`\blevel=ERROR\b`)

// errorLines are the ERROR lines a process logged.
func errorLines(p *proc) []string {
	var out []string
	for _, l := range strings.Split(p.log.all(), "\n") {
		if errorLevel.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}
