package app_test

// Media and avatars across the Matrix bridge, against a real Synapse:
// files uploaded on one side arrive byte for byte on the other (Matrix
// downloads through authenticated media), and avatars of users and groups
// follow both ways.

import (
	"bytes"
	"fmt"
	"image/color"
	"net/http"
	"strings"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/im/testsvc"
	"github.com/sandcat-im/sandcat/im/wire"
)

// mediaPNG is a small PNG of w×h with one pixel of colour c.
func mediaPNG(t *testing.T, w, h int, c color.RGBA) []byte { return testsvc.PNG(t, w, h, c) }

// fromPuppet matches the room messages of a puppet.
func fromPuppet(room id.RoomID, puppet id.UserID) func(*event.Event) bool {
	return func(e *event.Event) bool {
		return e.RoomID == room && e.Type == event.EventMessage && e.Sender == puppet
	}
}

func (g *bridgedGroup) groupMsg(ct int32, content []byte) *wire.Msg {
	return &wire.Msg{ReceiverID: g.gid, GroupID: g.gid, MsgType: wire.MsgTypeGroupMsg, ContentType: ct, Content: content}
}

// Sandcat → Matrix: an image, a file and a voice note uploaded by a native
// client arrive as m.image / m.file / m.audio from the sender's puppet, with
// the same bytes behind their mxc:// URIs; a message naming a missing file
// becomes a notice, and later messages still flow.
func TestBridgeMediaSandcatToMatrix(t *testing.T) {
	testBridgeMediaSandcatToMatrix(t, startBridgeEnv(t))
}

func testBridgeMediaSandcatToMatrix(t *testing.T, e *bridgeEnv) {
	ctx := ctxT(t)
	g := e.bridgedGroup()
	alice := g.alice
	puppet := e.puppet(alice.ID)

	pic := mediaPNG(t, 12, 8, color.RGBA{R: 255, A: 255})
	picKey, err := alice.api.Upload(ctx, "cat.png", "image/png", bytes.NewReader(pic))
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	doc := []byte("%PDF-1.4\nnot really a pdf, but bytes all the same\n")
	docKey, err := alice.api.Upload(ctx, "report.pdf", "application/pdf", bytes.NewReader(doc))
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	voice := []byte("OggS\x00fake opus voice note bytes")
	voiceKey, err := alice.api.Upload(ctx, "audio.ogg", "audio/ogg", bytes.NewReader(voice))
	if err != nil {
		t.Fatalf("upload: %v", err)
	}
	g.aD.sendOK(g.groupMsg(wire.ContentImage, fmt.Appendf(nil, "%s||cat.png||%d||png", picKey, len(pic))))
	g.aD.sendOK(g.groupMsg(wire.ContentFile, fmt.Appendf(nil, "%s||report.pdf||%d||pdf", docKey, len(doc))))
	g.aD.sendOK(g.groupMsg(wire.ContentAudio, wire.EncodeAudio(7, voiceKey)))
	g.aD.sendOK(g.groupMsg(wire.ContentFile, []byte("NoSuchObject12345678.pdf||lost.pdf||3||pdf")))
	g.aD.sendOK(g.groupMsg(wire.ContentText, []byte("still flowing")))

	evts := g.bot.wait("Alice's messages", 5, fromPuppet(g.room, puppet))
	if len(evts) != 5 {
		t.Fatalf("%d messages from Alice's puppet, want 5", len(evts))
	}
	img, file, audio, lost, text := evts[0].Content.AsMessage(), evts[1].Content.AsMessage(),
		evts[2].Content.AsMessage(), evts[3].Content.AsMessage(), evts[4].Content.AsMessage()

	if img.MsgType != event.MsgImage || img.Body != "cat.png" || img.Info == nil || img.Info.MimeType != "image/png" ||
		img.Info.Size != len(pic) || img.Info.Width != 12 || img.Info.Height != 8 {
		t.Fatalf("image: %+v info %+v", img, img.Info)
	}
	if got := g.bot.MXCBytes(ctx, img.URL); !bytes.Equal(got, pic) {
		t.Fatalf("the image on Matrix is %d bytes, differs from the %d uploaded", len(got), len(pic))
	}
	if file.MsgType != event.MsgFile || file.Body != "report.pdf" || file.Info == nil ||
		file.Info.MimeType != "application/pdf" || file.Info.Size != len(doc) {
		t.Fatalf("file: %+v info %+v", file, file.Info)
	}
	if got := g.bot.MXCBytes(ctx, file.URL); !bytes.Equal(got, doc) {
		t.Fatalf("the file on Matrix: %q, want %q", got, doc)
	}
	if audio.MsgType != event.MsgAudio || audio.Info == nil || audio.Info.Duration != 7000 || audio.Info.Size != len(voice) ||
		!strings.HasPrefix(audio.Info.MimeType, "audio/ogg") {
		t.Fatalf("audio: %+v info %+v", audio, audio.Info)
	}
	if got := g.bot.MXCBytes(ctx, audio.URL); !bytes.Equal(got, voice) {
		t.Fatalf("the voice note on Matrix: %q, want %q", got, voice)
	}
	if lost.MsgType != event.MsgNotice || !strings.Contains(lost.Body, "could not be bridged") || !strings.Contains(lost.Body, "not in the store") {
		t.Fatalf("missing file: %s %q, want a notice that it could not be bridged", lost.MsgType, lost.Body)
	}
	if text.MsgType != event.MsgText || text.Body != "still flowing" {
		t.Fatalf("after the missing file: %s %q", text.MsgType, text.Body)
	}

	// The same object sent again reuses its upload.
	g.bD.sendOK(g.groupMsg(wire.ContentImage, fmt.Appendf(nil, "%s||forwarded.png||%d||png", picKey, len(pic))))
	fwd := g.bot.wait("Bob's forward", 1, fromPuppet(g.room, e.puppet(g.bob.ID)))[0].Content.AsMessage()
	if fwd.MsgType != event.MsgImage || fwd.Body != "forwarded.png" || fwd.URL != img.URL {
		t.Fatalf("forwarded image: %s %q %s, want the upload %s again", fwd.MsgType, fwd.Body, fwd.URL, img.URL)
	}
}

// Matrix → Sandcat: an image, a file and a voice note sent by a Matrix user
// arrive as Image / File ("key||name||size||ext") and Audio (duration byte
// + key) messages whose objects hold the same bytes; a file announced above
// the limit is refused with a notice in the room, and later messages flow.
func TestBridgeMediaMatrixToSandcat(t *testing.T) {
	testBridgeMediaMatrixToSandcat(t, startBridgeEnv(t))
}

func testBridgeMediaMatrixToSandcat(t *testing.T, e *bridgeEnv) {
	ctx := ctxT(t)
	g := e.bridgedGroup()
	bot := g.bot

	upload := func(data []byte, ct, name string) id.ContentURIString {
		t.Helper()
		r, err := bot.cli.UploadBytesWithName(ctx, data, ct, name)
		if err != nil {
			t.Fatalf("upload to Synapse: %v", err)
		}
		return r.ContentURI.CUString()
	}
	send := func(c *event.MessageEventContent) {
		t.Helper()
		if _, err := bot.cli.SendMessageEvent(ctx, g.room, event.EventMessage, c); err != nil {
			t.Fatalf("bot sends %s: %v", c.MsgType, err)
		}
	}
	pic := mediaPNG(t, 5, 9, color.RGBA{G: 255, A: 255})
	doc := []byte("plain notes\nfrom Matrix\n")
	voice := []byte("OggS\x00matrix voice")
	send(&event.MessageEventContent{MsgType: event.MsgImage, Body: "green.png", URL: upload(pic, "image/png", "green.png"),
		Info: &event.FileInfo{MimeType: "image/png", Size: len(pic), Width: 5, Height: 9}})
	send(&event.MessageEventContent{MsgType: event.MsgFile, Body: "notes.txt", URL: upload(doc, "text/plain", "notes.txt"),
		Info: &event.FileInfo{MimeType: "text/plain", Size: len(doc)}})
	send(&event.MessageEventContent{MsgType: event.MsgAudio, Body: "Voice message", URL: upload(voice, "audio/ogg", "voice.ogg"),
		Info: &event.FileInfo{MimeType: "audio/ogg", Size: len(voice), Duration: 3200}})

	fromBot := func(m *wire.Msg) bool { return m.MsgType == wire.MsgTypeGroupMsg && m.SendID == g.botUID }
	for _, d := range []*dev{g.aD, g.bD} {
		im := d.until("the Matrix image", fromBot)
		fm := d.until("the Matrix file", fromBot)
		am := d.until("the Matrix voice note", fromBot)
		if im.ContentType != wire.ContentImage || fm.ContentType != wire.ContentFile || am.ContentType != wire.ContentAudio {
			t.Fatalf("%s: content types %d %d %d, want image, file, audio", d.name, im.ContentType, fm.ContentType, am.ContentType)
		}
		for _, c := range []struct {
			m                wire.Msg
			name, ext        string
			data             []byte
			contentTypeShown string
		}{{im, "green.png", "png", pic, "image"}, {fm, "notes.txt", "txt", doc, "file"}} {
			parts := strings.Split(string(c.m.Content), "||")
			if len(parts) != 4 || parts[1] != c.name || parts[2] != fmt.Sprint(len(c.data)) || parts[3] != c.ext ||
				!strings.HasSuffix(parts[0], "."+c.ext) {
				t.Fatalf("%s: %s content %q, want key||%s||%d||%s", d.name, c.contentTypeShown, c.m.Content, c.name, len(c.data), c.ext)
			}
			got, _, err := g.alice.api.Download(ctx, parts[0])
			if err != nil || !bytes.Equal(got, c.data) {
				t.Fatalf("%s: GET /file/get/%s: %q, %v; want the bytes sent on Matrix", d.name, parts[0], got, err)
			}
		}
		secs, key, err := wire.ParseAudio(am.Content)
		if err != nil || secs != 3 || !strings.HasSuffix(key, ".ogg") {
			t.Fatalf("%s: audio content %q: %d %q %v", d.name, am.Content, secs, key, err)
		}
		if got, _, err := g.alice.api.Download(ctx, key); err != nil || !bytes.Equal(got, voice) {
			t.Fatalf("%s: GET /file/get/%s: %q, %v", d.name, key, got, err)
		}
	}

	// A file announced above the bridge's limit (50 MiB) is refused: the
	// bridge bot says so in the room, and the next message still comes.
	send(&event.MessageEventContent{MsgType: event.MsgFile, Body: "huge.iso", URL: upload([]byte("small really"), "application/octet-stream", "huge.iso"),
		Info: &event.FileInfo{Size: 60 << 20}})
	bridgeBot := id.NewUserID("sandcatbot", e.hs.ServerName)
	notice := bot.wait("the bridge's notice", 1, func(ev *event.Event) bool {
		return ev.RoomID == g.room && ev.Type == event.EventMessage && ev.Sender == bridgeBot &&
			strings.Contains(ev.Content.AsMessage().Body, "could not be bridged")
	})[0].Content.AsMessage()
	if notice.MsgType != event.MsgNotice || !strings.Contains(notice.Body, "could not be bridged") || !strings.Contains(notice.Body, "limit") {
		t.Fatalf("notice %s %q", notice.MsgType, notice.Body)
	}
	if _, err := bot.cli.SendText(ctx, g.room, "after the huge file"); err != nil {
		t.Fatal(err)
	}
	m := g.aD.until("the text after the refused file", fromBot)
	if m.ContentType != wire.ContentText || string(m.Content) != "after the huge file" {
		t.Fatalf("after the refused file: %s", describe([]wire.Msg{m}))
	}

	// A sticker (m.sticker: an image without msgtype) arrives as an image.
	sticker := mediaPNG(t, 3, 3, color.RGBA{R: 255, G: 255, A: 255})
	if _, err := bot.cli.SendMessageEvent(ctx, g.room, event.EventSticker, &event.MessageEventContent{Body: "wave",
		URL: upload(sticker, "image/png", "wave.png"), Info: &event.FileInfo{MimeType: "image/png", Size: len(sticker)}}); err != nil {
		t.Fatalf("bot sends a sticker: %v", err)
	}
	sm := g.aD.until("the sticker", fromBot)
	parts := strings.Split(string(sm.Content), "||")
	if sm.ContentType != wire.ContentImage || len(parts) != 4 {
		t.Fatalf("sticker: %s", describe([]wire.Msg{sm}))
	}
	if got, _, err := g.alice.api.Download(ctx, parts[0]); err != nil || !bytes.Equal(got, sticker) {
		t.Fatalf("GET /file/get/%s: %v; want the sticker's bytes", parts[0], err)
	}
	for _, f := range g.aD.quiet() {
		if fromBot(&f) {
			t.Fatalf("more from the bot: %s", describe([]wire.Msg{f}))
		}
	}
}

// Avatars both ways: a Sandcat user's avatar is its puppet's avatar_url; a
// Matrix user's avatar becomes its Sandcat user's (an object of the avatar
// bucket with the same bytes); a room avatar set on Matrix becomes the
// group's (members get a GroupUpdate from the Matrix user), and a group
// avatar set in Sandcat becomes the room's.
func TestBridgeMediaAvatars(t *testing.T) { testBridgeMediaAvatars(t, startBridgeEnv(t)) }

func testBridgeMediaAvatars(t *testing.T, e *bridgeEnv) {
	ctx := ctxT(t)
	g := e.bridgedGroup()
	alice, bot := g.alice, g.bot

	// Sandcat → Matrix: Alice's new avatar is her puppet's.
	mine := mediaPNG(t, 6, 6, color.RGBA{B: 255, A: 255})
	key, err := alice.api.UploadAvatar(ctx, "alice.png", "image/png", bytes.NewReader(mine))
	if err != nil {
		t.Fatalf("upload avatar: %v", err)
	}
	err = alice.api.Call(ctx, http.MethodPut, "/user", map[string]any{"id": alice.ID, "name": "Alice", "avatar": key,
		"gender": "", "phone": nil, "email": nil, "address": nil, "region": nil, "birthday": nil, "signature": nil}, nil)
	if err != nil {
		t.Fatalf("PUT /user: %v", err)
	}
	g.aD.sendOK(g.groupMsg(wire.ContentText, []byte("new avatar")))
	bot.wait("Alice's message", 1, fromPuppet(g.room, e.puppet(alice.ID)))
	url, err := bot.cli.GetAvatarURL(ctx, e.puppet(alice.ID))
	if err != nil || url.IsEmpty() {
		t.Fatalf("avatar of Alice's puppet: %v, %v", url, err)
	}
	if got := bot.MXCBytes(ctx, url.CUString()); !bytes.Equal(got, mine) {
		t.Fatal("the puppet's avatar differs from Alice's")
	}

	// Matrix → Sandcat: the bot's avatar becomes its Sandcat user's.
	botPic := mediaPNG(t, 4, 4, color.RGBA{R: 9, G: 99, B: 199, A: 255})
	up, err := bot.cli.UploadBytesWithName(ctx, botPic, "image/png", "bot.png")
	if err != nil {
		t.Fatal(err)
	}
	if err := bot.cli.SetAvatarURL(ctx, up.ContentURI); err != nil {
		t.Fatal(err)
	}
	botAvatar := mediaPoll(t, "the bot's avatar in Sandcat", func() (string, bool) {
		var u struct {
			Avatar string `json:"avatar"`
		}
		if err := alice.api.Call(ctx, http.MethodGet, "/friend/query/"+g.botUID, nil, &u); err != nil {
			t.Fatalf("GET /friend/query/%s: %v", g.botUID, err)
		}
		// A Matrix user starts with a default avatar until its own is copied.
		return u.Avatar, u.Avatar != "" && u.Avatar != "avatar1.png"
	})
	if got, _, err := alice.api.DownloadAvatar(ctx, botAvatar); err != nil || !bytes.Equal(got, botPic) || !strings.HasSuffix(botAvatar, ".png") {
		t.Fatalf("avatar object %s: %d bytes, %v; want the bot's %d", botAvatar, len(got), err, len(botPic))
	}

	// Matrix → Sandcat: the room's avatar becomes the group's. The bridge
	// bot (the room's creator) lets the Matrix bot change it.
	bridgeBot := id.NewUserID("sandcatbot", e.hs.ServerName)
	as, err := mautrix.NewClient(e.hs.URL, bridgeBot, e.asToken)
	if err != nil {
		t.Fatal(err)
	}
	var pl event.PowerLevelsEventContent
	if err := as.StateEvent(ctx, g.room, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatal(err)
	}
	pl.SetUserLevel(bot.cli.UserID, 50)
	if _, err := as.SendStateEvent(ctx, g.room, event.StatePowerLevels, "", &pl); err != nil {
		t.Fatalf("power levels: %v", err)
	}
	roomPic := mediaPNG(t, 10, 3, color.RGBA{R: 50, G: 50, A: 255})
	rup, err := bot.cli.UploadBytesWithName(ctx, roomPic, "image/png", "room.png")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bot.cli.SendStateEvent(ctx, g.room, event.StateRoomAvatar, "",
		&event.RoomAvatarEventContent{URL: rup.ContentURI.CUString(), Info: &event.FileInfo{MimeType: "image/png", Size: len(roomPic)}}); err != nil {
		t.Fatalf("room avatar: %v", err)
	}
	var groupAvatar string
	for _, d := range []*dev{g.aD, g.bD} {
		n := d.until("the GroupUpdate of the room avatar", func(m *wire.Msg) bool {
			return m.MsgType == wire.MsgTypeGroupUpdate && m.GroupID == g.gid
		})
		var info wire.GroupInfo
		if err := info.UnmarshalBincode(n.Content); err != nil || n.SendID != g.botUID || info.ID != g.gid || info.Avatar == "" || info.Avatar == "g.png" {
			t.Fatalf("%s: GroupUpdate %s: %+v %v; want the avatar set by the bot (%s)", d.name, describe([]wire.Msg{n}), info, err, g.botUID)
		}
		groupAvatar = info.Avatar
	}
	if got, _, err := alice.api.DownloadAvatar(ctx, groupAvatar); err != nil || !bytes.Equal(got, roomPic) {
		t.Fatalf("group avatar object %s: %d bytes, %v", groupAvatar, len(got), err)
	}

	// Sandcat → Matrix: a rename keeps the room's avatar (no echo of the
	// one from Matrix); a new group avatar becomes the room's.
	updateGroup := func(name, avatar string) {
		t.Helper()
		err := alice.api.Call(ctx, http.MethodPut, "/group/"+alice.ID, map[string]any{"id": g.gid, "name": name, "avatar": avatar,
			"description": "", "announcement": "", "update_time": time.Now().UnixMilli()}, nil)
		if err != nil {
			t.Fatalf("PUT /group: %v", err)
		}
	}
	byBridge := func(typ event.Type) func(*event.Event) bool {
		return func(ev *event.Event) bool { return ev.RoomID == g.room && ev.Type == typ && ev.Sender == bridgeBot }
	}
	updateGroup("Renamed", "")
	bot.wait("the new room name", 1, func(ev *event.Event) bool {
		return byBridge(event.StateRoomName)(ev) && ev.Content.AsRoomName().Name == "Renamed"
	})
	groupPic := mediaPNG(t, 3, 7, color.RGBA{B: 90, G: 10, A: 255})
	gkey, err := alice.api.UploadAvatar(ctx, "group.png", "image/png", bytes.NewReader(groupPic))
	if err != nil {
		t.Fatal(err)
	}
	updateGroup("Renamed", gkey+","+key)
	avatars := bot.wait("the room avatar set by the bridge", 1, byBridge(event.StateRoomAvatar))
	if len(avatars) != 1 {
		t.Fatalf("%d room avatars set by the bridge, want 1 (the rename must not set one)", len(avatars))
	}
	ra := avatars[0].Content.AsRoomAvatar()
	if got := bot.MXCBytes(ctx, ra.URL); !bytes.Equal(got, groupPic) {
		t.Fatalf("the room avatar differs from the group's first avatar")
	}
}

// mediaPoll polls get (bounded by waitFrame) until it reports done.
func mediaPoll[T any](t *testing.T, what string, get func() (T, bool)) T {
	t.Helper()
	deadline := time.Now().Add(waitFrame)
	for {
		v, ok := get()
		if ok {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never came", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
