package app_test

// The Matrix bridge end to end: a real Synapse (testsvc.RunSynapse, with the
// registration the bridge writes), the whole embedded Sandcat with an
// appservice section (app.Start), native clients on WebSocket (im/client)
// and a Matrix bot on mautrix-go logged into Synapse.

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/appservice"
	"github.com/sandcat-im/sandcat/im/app"
	"github.com/sandcat-im/sandcat/im/client"
	"github.com/sandcat-im/sandcat/im/config"
	"github.com/sandcat-im/sandcat/im/testsvc"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/matrix"
)

// bridgeEnv is a homeserver (Synapse, or Dendrite: startBridgeEnvOn) plus
// Sandcat with the bridge.
type bridgeEnv struct {
	*server
	syn     *testsvc.Synapse // nil on Dendrite
	hs      *homeserver      // Synapse or Dendrite
	cfg     *config.Config
	capture *captureHandler
	listen  string // the appservice listener (bridge routes)
	prefix  string // user_prefix
	hsToken string // what the homeserver presents to the bridge
	asToken string // what the bridge presents to the homeserver
}

// homeserver is the Matrix homeserver of a bridgeEnv: what the tests need
// of a *testsvc.Synapse or a *testsvc.Dendrite (Stop, Start, Restart and
// Dir come from the embedded testsvc.Server).
type homeserver struct {
	*testsvc.Server
	Kind            string // onSynapse or onDendrite
	URL, ServerName string
	register        func(t testing.TB, localpart, password string) (userID, accessToken string)
}

// The homeservers a bridgeEnv can run on.
const (
	onSynapse  = "synapse"
	onDendrite = "dendrite"
)

// RegisterUser registers a local user and returns its ID and an access token.
func (h *homeserver) RegisterUser(t testing.TB, localpart, password string) (userID, accessToken string) {
	t.Helper()
	return h.register(t, localpart, password)
}

func synapseHomeserver(s *testsvc.Synapse) *homeserver {
	return &homeserver{Server: s.Server, Kind: onSynapse, URL: s.URL, ServerName: s.ServerName, register: s.RegisterUser}
}

func dendriteHomeserver(d *testsvc.Dendrite) *homeserver {
	return &homeserver{Server: d.Server, Kind: onDendrite, URL: d.URL, ServerName: d.ServerName, register: d.RegisterUser}
}

// startBridgeEnv starts Synapse and Sandcat with the bridge.
func startBridgeEnv(t *testing.T) *bridgeEnv {
	t.Helper()
	return startBridgeEnvOn(t, onSynapse)
}

// startBridgeEnvOn starts the homeserver kind (onSynapse or onDendrite)
// and Sandcat with the bridge.
func startBridgeEnvOn(t *testing.T, kind string) *bridgeEnv {
	t.Helper()
	// The registration names the bridge's URL before Sandcat starts: take a
	// free port and give it back.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := l.Addr().String()
	_ = l.Close()
	opts := appservice.RegistrationOptions{
		ID: "sandcat", URL: "http://" + listen, ServerName: "localhost",
		SenderLocalpart: "sandcatbot", UserPrefix: "_sandcat_", AliasPrefix: "_sandcat_",
	}
	reg, err := appservice.NewRegistration(opts)
	if err != nil {
		t.Fatal(err)
	}
	regYAML, err := appservice.MarshalRegistration(reg)
	if err != nil {
		t.Fatal(err)
	}
	regPath := filepath.Join(t.TempDir(), "registration.yaml")
	if err := os.WriteFile(regPath, regYAML, 0o600); err != nil {
		t.Fatal(err)
	}
	var syn *testsvc.Synapse
	var hs *homeserver
	switch kind {
	case onSynapse:
		syn = testsvc.RunSynapse(t, testsvc.SynapseOptions{AppserviceRegistration: regPath})
		hs = synapseHomeserver(syn)
	case onDendrite:
		hs = dendriteHomeserver(testsvc.RunDendrite(t, testsvc.DendriteOptions{AppserviceRegistration: regPath}))
	default:
		t.Fatalf("no homeserver %q", kind)
	}

	section, err := appservice.MarshalConfigSection(appservice.NewConfigSection(reg, opts, hs.URL))
	if err != nil {
		t.Fatal(err)
	}
	yml := "data_dir: " + t.TempDir() + "\nlog:\n  level: debug\n" + string(section)
	cfg, err := config.Parse([]byte(yml), nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Appservice == nil || cfg.Appservice.Listen != listen {
		t.Fatalf("appservice section %+v, want listen %s", cfg.Appservice, listen)
	}
	cfg.Appservice.ProfileSyncSeconds = 1 // puppets follow profile changes within a second
	e := &bridgeEnv{syn: syn, hs: hs, cfg: cfg, capture: newCapture(), listen: listen, prefix: opts.UserPrefix, hsToken: reg.ServerToken, asToken: reg.AppToken}
	e.server = &server{t: t, logs: e.capture.sink}
	e.start("127.0.0.1:0", "127.0.0.1:0")
	t.Cleanup(func() {
		e.stop()
		if errs := e.logs.errorLines(); len(errs) > 0 {
			t.Errorf("the server logged %d error(s):\n%s", len(errs), strings.Join(errs, "\n"))
		}
	})
	return e
}

// start runs Sandcat (with the bridge) on the API and WebSocket addresses.
func (e *bridgeEnv) start(apiAddr, wsAddr string) {
	t := e.t
	t.Helper()
	apiLn, err := net.Listen("tcp", apiAddr)
	if err != nil {
		t.Fatal(err)
	}
	wsLn, err := net.Listen("tcp", wsAddr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	a, err := app.Start(ctx, e.cfg, slog.New(e.capture), app.Listeners{API: apiLn, WebSocket: wsLn})
	if err != nil {
		t.Fatalf("app.Start: %v", err)
	}
	e.app, e.base, e.ws = a, "http://"+a.APIAddr(), a.WSAddr()
	e.api = &client.HTTP{Base: e.base}
	e.api.Timeout = time.Minute
}

// stop shuts Sandcat down (no-op when it is not running).
func (e *bridgeEnv) stop() {
	if e.app == nil {
		return
	}
	sctx, c := context.WithTimeout(context.Background(), 30*time.Second)
	defer c()
	if err := e.app.Shutdown(sctx); err != nil {
		e.t.Errorf("shutdown: %v", err)
	}
	e.app = nil
}

// restart stops Sandcat and starts it again on the same addresses and data.
func (e *bridgeEnv) restart() {
	e.t.Helper()
	api, ws := e.app.APIAddr(), e.app.WSAddr()
	e.stop()
	e.start(api, ws)
}

// puppet is the Matrix id of a Sandcat user's puppet.
func (e *bridgeEnv) puppet(userID string) id.UserID {
	return id.NewUserID(e.prefix+id.EncodeUserLocalpart(userID), e.hs.ServerName)
}

// matrixBot is a Matrix user on mautrix-go (testsvc.MatrixBot) that
// records the timeline events of the rooms it is in, and its invitations,
// in order; cli is its client.
type matrixBot struct {
	*testsvc.MatrixBot
	cli *mautrix.Client
	t   *testing.T
}

func newMatrixBot(t *testing.T, syn *testsvc.Synapse, localpart string) *matrixBot {
	t.Helper()
	return newMatrixBotOn(t, synapseHomeserver(syn), localpart)
}

// newMatrixBotOn is newMatrixBot on either homeserver: registered by the
// homeserver's admin API, then logged in with its password, as a bot on
// mautrix-go does.
func newMatrixBotOn(t *testing.T, hs *homeserver, localpart string) *matrixBot {
	t.Helper()
	password := "pw-" + localpart + "-secret"
	uid, _ := hs.RegisterUser(t, localpart, password)
	mb := testsvc.NewMatrixBot(t, hs.URL, localpart, password, waitFrame)
	if mb.Cli.UserID != id.UserID(uid) {
		t.Fatalf("logged in as %s, registered %s", mb.Cli.UserID, uid)
	}
	return &matrixBot{MatrixBot: mb, cli: mb.Cli, t: t}
}

// wait waits until n recorded events match and returns all that match.
func (b *matrixBot) wait(what string, n int, match func(*event.Event) bool) []*event.Event {
	return b.Wait(what, n, match)
}

// messages waits until n messages from others than the bot arrived in
// room and returns them all (more than n is a failure later).
func (b *matrixBot) messages(room id.RoomID, n int) []*event.Event {
	return b.Messages(room, n)
}

// bridgedGroup is a Sandcat group of Alice (owner) and Bob, online, bridged
// through the invite route, with a Matrix bot that joined its portal.
type bridgedGroup struct {
	alice, bob *user
	aD, bD     *dev
	gid        string
	bot        *matrixBot
	room       id.RoomID
	botUID     string // the bot as a Sandcat user
}

func (e *bridgeEnv) bridgedGroup() *bridgedGroup {
	t := e.t
	t.Helper()
	ctx := ctxT(t)
	alice, bob := e.newUser("Alice"), e.newUser("Bob")
	aD, bD := alice.dial(wire.PlatformDesktop), bob.dial(wire.PlatformMobile)
	inv, err := alice.api.CreateGroup(ctx, alice.ID, "Bridged", "g.png", []string{bob.ID})
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	gid := inv.Info.ID
	e.quiet(aD, bD) // the invitations

	bot := newMatrixBotOn(t, e.hs, "bot1")
	routes := &client.HTTP{Base: "http://" + e.listen}
	routes.Timeout = time.Minute
	path := "/matrix/group/" + gid + "/invite"
	body := matrix.InviteRequest{MXID: bot.cli.UserID.String()}

	// Only the owner or an admin may bridge.
	err = routes.WithToken(bob.Login.Token).Call(ctx, "POST", path, body, nil)
	if client.StatusOf(err) != 403 || client.KindOf(err) != "Forbidden" {
		t.Fatalf("invite by a member: %v, want 403 Forbidden", err)
	}
	var portal matrix.PortalResponse
	if err := routes.WithToken(alice.Login.Token).Call(ctx, "POST", path, body, &portal); err != nil {
		t.Fatalf("invite by the owner: %v", err)
	}
	wantAlias := id.NewRoomAlias("_sandcat_"+id.EncodeUserLocalpart(gid), e.hs.ServerName)
	if portal.GroupID != gid || portal.RoomID == "" || portal.Alias != wantAlias.String() {
		t.Fatalf("portal %+v, want alias %s", portal, wantAlias)
	}
	room := id.RoomID(portal.RoomID)
	if r, err := bot.cli.ResolveAlias(ctx, wantAlias); err != nil || r.RoomID != room {
		t.Fatalf("alias %s resolves to %v (%v), want %s", wantAlias, r, err, room)
	}
	if _, err := bot.cli.JoinRoomByID(ctx, room); err != nil {
		t.Fatalf("bot joins the portal: %v", err)
	}

	// The bot's join makes it a member: the members are told (the owner's
	// devices get the echo of the notice made in the owner's name).
	var botUID string
	for _, d := range []*dev{aD, bD} {
		n := d.until("the new Matrix member", func(m *wire.Msg) bool {
			return m.MsgType == wire.MsgTypeGroupInviteNew && m.GroupID == gid
		})
		added, err := wire.DecodeStrings(n.Content)
		if err != nil || len(added) != 1 || n.SendID != alice.ID {
			t.Fatalf("%s: GroupInviteNew %s: %v %v", d.name, describe([]wire.Msg{n}), added, err)
		}
		if botUID != "" && added[0] != botUID {
			t.Fatalf("two ids for the bot: %s, %s", botUID, added[0])
		}
		botUID = added[0]
	}
	return &bridgedGroup{alice: alice, bob: bob, aD: aD, bD: bD, gid: gid, bot: bot, room: room, botUID: botUID}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// A bridge stopped mid-conversation misses and duplicates nothing: the
// Matrix messages sent while it is down arrive once each, in order, once it
// is back (Synapse resends its transactions after the bridge's startup
// ping; Dendrite, which has no ping, when its retry backoff ends), and
// nothing bridged before is bridged again either way.
func TestBridgeRestart(t *testing.T) { testBridgeRestart(t, startBridgeEnv(t)) }

func testBridgeRestart(t *testing.T, e *bridgeEnv) {
	ctx := ctxT(t)
	g := e.bridgedGroup()
	text := func(s string) *wire.Msg {
		return &wire.Msg{ReceiverID: g.gid, GroupID: g.gid, MsgType: wire.MsgTypeGroupMsg, ContentType: wire.ContentText, Content: []byte(s)}
	}
	fromBot := func(m *wire.Msg) bool { return m.MsgType == wire.MsgTypeGroupMsg && m.SendID == g.botUID }

	g.aD.sendOK(text("before the restart"))
	g.bot.messages(g.room, 1)
	if _, err := g.bot.cli.SendText(ctx, g.room, "Matrix before"); err != nil {
		t.Fatal(err)
	}
	g.aD.until("the Matrix message before the restart", fromBot)
	g.aD.quiet()
	before := g.alice.seqs().Seq

	api, ws := e.app.APIAddr(), e.app.WSAddr()
	e.stop()
	down := []string{"while down 1", "while down 2"}
	var downIDs []string
	for _, s := range down {
		r, err := g.bot.cli.SendText(ctx, g.room, s)
		if err != nil {
			t.Fatalf("bot sends while the bridge is down: %v", err)
		}
		downIDs = append(downIDs, r.EventID.String())
	}
	e.start(api, ws)

	// Alice is offline until she pulls: wait (bounded) for the messages.
	// (Seqs may jump after a restart: they are allocated in blocks.)
	pullBot := func() []wire.Msg {
		var out []wire.Msg
		for _, m := range g.alice.pull(0, 0, before, g.alice.seqs().Seq) {
			if fromBot(&m) {
				out = append(out, m)
			}
		}
		return out
	}
	deadline := time.Now().Add(waitFrame * 2)
	got := pullBot()
	for len(got) < len(down) {
		if time.Now().After(deadline) {
			t.Fatalf("the messages sent while the bridge was down never came: %s", describe(got))
		}
		time.Sleep(50 * time.Millisecond)
		got = pullBot()
	}
	var lastSeq int64
	for i, m := range got {
		if i >= len(down) || string(m.Content) != down[i] || m.LocalID != downIDs[i] || m.Seq <= lastSeq {
			t.Fatalf("pulled %s, want %q once each, in order", describe(got), down)
		}
		lastSeq = m.Seq
	}

	// Live again both ways, with no repeat in between: after the next
	// Matrix message, Alice's inbox holds three from the bot since the
	// restart, and the room each Sandcat message once.
	aD := g.alice.dial(wire.PlatformDesktop)
	if _, err := g.bot.cli.SendText(ctx, g.room, "Matrix after"); err != nil {
		t.Fatal(err)
	}
	m := aD.until("the Matrix message after the restart", fromBot)
	if string(m.Content) != "Matrix after" || m.Seq <= lastSeq {
		t.Fatalf("after the restart: %s, want a seq above %d", describe([]wire.Msg{m}), lastSeq)
	}
	if all := pullBot(); len(all) != len(down)+1 {
		t.Fatalf("Alice's inbox since the restart: %s, want the %d messages once each", describe(all), len(down)+1)
	}
	ack := aD.sendOK(text("Sandcat after"))
	evts := g.bot.messages(g.room, 2)
	if len(evts) != 2 || evts[0].Content.AsMessage().Body != "before the restart" ||
		evts[1].Content.AsMessage().Body != "Sandcat after" || evts[1].Timestamp != ack.SendTime {
		var bodies []string
		for _, ev := range evts {
			bodies = append(bodies, ev.Content.AsMessage().Body)
		}
		t.Fatalf("the room holds %q, want [before the restart, Sandcat after]", bodies)
	}
}
