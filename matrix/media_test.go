package matrix

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/blob"
	"github.com/sandcat-im/sandcat/storage/blob/local"
)

func TestParseFileContent(t *testing.T) {
	tests := []struct {
		in      string
		want    fileContent
		wantErr bool
	}{
		{in: "abc.png||cat.png||1234||png", want: fileContent{Key: "abc.png", Name: "cat.png", Size: 1234, Ext: "png"}},
		{in: "abc||notes||7||", want: fileContent{Key: "abc", Name: "notes", Size: 7}},
		{in: "abc.pdf||a||b.pdf||99||.pdf", want: fileContent{Key: "abc.pdf", Name: "a||b.pdf", Size: 99, Ext: "pdf"}},
		{in: "abc.mp4", want: fileContent{Key: "abc.mp4", Name: "abc.mp4", Ext: "mp4"}},
		{in: "abc.mp4||clip.mp4", want: fileContent{Key: "abc.mp4", Name: "clip.mp4", Ext: "mp4"}},
		{in: "abc.bin||x.tar.gz||-5", want: fileContent{Key: "abc.bin", Name: "x.tar.gz", Ext: "gz"}},
		{in: "abc||||x||zip", want: fileContent{Key: "abc", Name: "abc", Ext: "zip"}},
		{in: "k||n||notanumber||txt", want: fileContent{Key: "k", Name: "n", Ext: "txt"}},
		{in: "", wantErr: true},
		{in: "||name||1||png", wantErr: true},
		{in: "../etc/passwd||x||1||", wantErr: true},
		{in: "a/b.png||x||1||png", wantErr: true},
	}
	for _, tt := range tests {
		got, err := parseFileContent([]byte(tt.in))
		if tt.wantErr {
			if !errors.Is(err, errNotBridgeable) {
				t.Errorf("parse %q: %+v, %v; want a not-bridgeable error", tt.in, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parse %q: %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestFileContentBytes(t *testing.T) {
	tests := []struct {
		fc   fileContent
		want string
	}{
		{fileContent{Key: "k.png", Name: "cat.png", Size: 10, Ext: "png"}, "k.png||cat.png||10||png"},
		{fileContent{Key: "k", Name: "a||b", Size: 0}, "k||a|b||0||"},
	}
	for _, tt := range tests {
		if got := string(tt.fc.bytes()); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.fc, got, tt.want)
		}
		back, err := parseFileContent(tt.fc.bytes())
		if err != nil || back.Key != tt.fc.Key || back.Size != tt.fc.Size {
			t.Errorf("%+v does not parse back: %+v, %v", tt.fc, back, err)
		}
	}
}

func TestExtensionsAndTypes(t *testing.T) {
	exts := []struct{ name, want string }{
		{"cat.png", "png"}, {"archive.tar.gz", "gz"}, {"noext", ""}, {"weird.p-g", ""}, {".", ""},
		{"x." + strings.Repeat("a", 17), ""}, {"x." + strings.Repeat("a", 16), strings.Repeat("a", 16)}, {"Photo.JPG", "JPG"},
	}
	for _, tt := range exts {
		if got := extension(tt.name); got != tt.want {
			t.Errorf("extension(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
	fromMime := []struct{ ct, want string }{
		{"image/png", "png"}, {"image/jpeg", "jpg"}, {"audio/ogg; codecs=opus", "ogg"}, {"video/mp4", "mp4"},
		{"", ""}, {"not a type", ""}, {"application/x-sandcat-unknown", ""},
	}
	for _, tt := range fromMime {
		if got := extFromMime(tt.ct); got != tt.want {
			t.Errorf("extFromMime(%q) = %q, want %q", tt.ct, got, tt.want)
		}
	}
	toMime := []struct{ ext, want string }{
		{"png", "image/png"}, {"JPEG", "image/jpeg"}, {".jpg", "image/jpeg"}, {"webm", "video/webm"}, {"", ""},
	}
	for _, tt := range toMime {
		if got := mimeFromExt(tt.ext); got != tt.want {
			t.Errorf("mimeFromExt(%q) = %q, want %q", tt.ext, got, tt.want)
		}
	}
	pngHead := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
	types := []struct {
		stored, ext string
		head        []byte
		want        string
	}{
		{"image/png", "bin", nil, "image/png"},
		{"application/octet-stream", "jpg", nil, "image/jpeg"},
		{"", "", pngHead, "image/png"},
		{"application/octet-stream", "", nil, "application/octet-stream"},
	}
	for _, tt := range types {
		if got := mediaType(tt.stored, tt.ext, tt.head); got != tt.want {
			t.Errorf("mediaType(%q, %q) = %q, want %q", tt.stored, tt.ext, got, tt.want)
		}
	}
}

func TestAudioSecondsAndEmoji(t *testing.T) {
	for _, tt := range []struct {
		ms   int
		want uint8
	}{{0, 0}, {-3, 0}, {400, 0}, {500, 1}, {1499, 1}, {61_000, 61}, {255_000, 255}, {3_600_000, 255}} {
		if got := audioSeconds(tt.ms); got != tt.want {
			t.Errorf("audioSeconds(%d) = %d, want %d", tt.ms, got, tt.want)
		}
	}
	for _, tt := range []struct{ in, want string }{
		{"/images/emoji/thumbup.gif", "👍"}, {"/images/emoji/sun.gif", "☀️"}, {"/images/emoji/party.gif", ":party:"}, {"", "(an emoji)"},
	} {
		if got := emojiText(tt.in); got != tt.want {
			t.Errorf("emojiText(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestAvatarNames(t *testing.T) {
	if got := avatarNames(" avatar1.png, ,b.jpg,../x,avatar1.png"); strings.Join(got, "|") != "avatar1.png|b.jpg|avatar1.png" {
		t.Errorf("avatarNames: %q", got)
	}
	mxc := "mxc://example.org/abcDEF"
	n := avatarName(mxc, "png")
	if err := blob.ValidName(n); err != nil || !strings.HasSuffix(n, ".png") {
		t.Fatalf("avatarName %q: %v", n, err)
	}
	if avatarName(mxc, "png") != n || avatarName(mxc, "") != strings.TrimSuffix(n, ".png") {
		t.Errorf("avatarName is not stable: %q", n)
	}
	if !fromAvatar(n, mxc) || !fromAvatar(avatarName(mxc, ""), mxc) || fromAvatar(n, "mxc://example.org/other") ||
		fromAvatar(n, "") || fromAvatar("avatar1.png", mxc) {
		t.Errorf("fromAvatar does not tell the copy of %s (%s)", mxc, n)
	}
}

func TestMediaCacheLRU(t *testing.T) {
	var c mediaCache
	c.max = 2
	up := func(s string) uploaded { return uploaded{MXC: id.ContentURI{Homeserver: "hs", FileID: s}} }
	c.put("a", up("a"))
	c.put("b", up("b"))
	if _, ok := c.get("a"); !ok { // a is now the most recent
		t.Fatal("a missing")
	}
	c.put("c", up("c")) // evicts b
	if _, ok := c.get("b"); ok {
		t.Error("b kept beyond the capacity")
	}
	for _, k := range []string{"a", "c"} {
		if got, ok := c.get(k); !ok || got.MXC.FileID != k {
			t.Errorf("%s: %+v, %v", k, got, ok)
		}
	}
}

func TestNotBridgeableIsPermanent(t *testing.T) {
	err := fmt.Errorf("wrapped: %w", notBridgeable("the file is %s", "big"))
	if !errors.Is(err, errNotBridgeable) || !permanent(err) || userReason(err) != "the file is big" {
		t.Errorf("%v: is %v, permanent %v, reason %q", err, errors.Is(err, errNotBridgeable), permanent(err), userReason(err))
	}
	if permanent(errors.New("connection refused")) {
		t.Error("a plain error is permanent")
	}
}

// fakeHS is the part of a homeserver's media repository the media code
// uses: uploads, and authenticated downloads of what was uploaded or of
// the files given.
type fakeHS struct {
	mu         sync.Mutex
	files      map[string][]byte // media id -> bytes
	types      map[string]string
	uploads    int
	lieSize    bool // omit Content-Length on downloads
	requests   []string
	roomAvatar []byte // m.room.avatar content (nil = none)
}

func (f *fakeHS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	if r.Header.Get("Authorization") != "Bearer as" {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/_matrix/media/v3/upload":
		data, _ := io.ReadAll(r.Body)
		f.uploads++
		mid := fmt.Sprintf("m%d", f.uploads)
		f.files[mid], f.types[mid] = data, r.Header.Get("Content-Type")
		_ = json.NewEncoder(w).Encode(map[string]string{"content_uri": "mxc://example.org/" + mid})
	case r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/_matrix/client/v1/media/download/example.org/"):
		mid := strings.TrimPrefix(r.URL.Path, "/_matrix/client/v1/media/download/example.org/")
		data, ok := f.files[mid]
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errcode":"M_NOT_FOUND","error":"Not found"}`))
			return
		}
		w.Header().Set("Content-Type", f.types[mid])
		if f.lieSize {
			w.(http.Flusher).Flush() // chunked: no Content-Length
		}
		_, _ = w.Write(data)
	case strings.HasSuffix(r.URL.Path, "/state/m.room.avatar/") || strings.HasSuffix(r.URL.Path, "/state/m.room.avatar"):
		if r.Method == http.MethodPut {
			f.roomAvatar, _ = io.ReadAll(r.Body)
			_, _ = w.Write([]byte(`{"event_id":"$e"}`))
			return
		}
		if f.roomAvatar == nil {
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"errcode":"M_NOT_FOUND","error":"no avatar"}`))
			return
		}
		_, _ = w.Write(f.roomAvatar)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte(`{"errcode":"M_UNRECOGNIZED","error":"?"}`))
	}
}

type mediaDeps struct{ Store }

func (mediaDeps) GetUser(context.Context, string) (*storage.User, error) {
	return nil, storage.ErrNotFound
}
func (mediaDeps) UpdateUser(context.Context, *storage.UserUpdate, int64) (*storage.User, error) {
	return nil, storage.ErrNotFound
}
func (mediaDeps) CreateUser(context.Context, *storage.User, int64) error { return nil }
func (mediaDeps) GetGroup(context.Context, string) (wire.GroupInfo, error) {
	return wire.GroupInfo{}, storage.ErrNotFound
}
func (mediaDeps) GroupMemberIDs(context.Context, string) ([]string, error)       { return nil, nil }
func (mediaDeps) GroupMemberRole(context.Context, string, string) (int32, error) { return 0, nil }
func (mediaDeps) AddGroupMembers(context.Context, string, []string) ([]string, error) {
	return nil, nil
}
func (mediaDeps) ExitGroup(context.Context, string, string) error { return nil }
func (mediaDeps) UpdateGroup(context.Context, storage.GroupUpdate) (wire.GroupInfo, bool, error) {
	return wire.GroupInfo{}, false, storage.ErrNotFound
}
func (mediaDeps) Send(context.Context, *wire.Msg, []string) error { return nil }
func (mediaDeps) SendKeyed(context.Context, *wire.Msg, []string, string) error {
	return nil
}

func newMediaBridge(t *testing.T, maxSize int64) (*Bridge, *fakeHS, blob.Store) {
	t.Helper()
	hs := &fakeHS{files: map[string][]byte{}, types: map[string]string{}}
	srv := httptest.NewServer(hs)
	t.Cleanup(srv.Close)
	blobs, err := local.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	d := mediaDeps{}
	b, err := New(Options{
		Config: Config{HomeserverURL: srv.URL, ServerName: "example.org", ASToken: "as", MaxFileSize: maxSize,
			BotLocalpart: "sandcatbot", UserPrefix: "_sandcat_", AliasPrefix: "_sandcat_"},
		Store: d, Users: d, Groups: d, Sender: d, Blobs: blobs,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b, hs, blobs
}

func testPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	img.Set(1, 1, color.RGBA{R: 200, A: 255})
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestContentToMatrixMedia(t *testing.T) {
	ctx := context.Background()
	b, hs, blobs := newMediaBridge(t, 1000)
	pic := testPNG(t, 7, 5)
	put := func(name, ct string, data []byte) {
		if err := blobs.Put(ctx, blob.Files, name, ct, bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	put("pic1.png", "image/png", pic)
	put("doc1.pdf", "application/octet-stream", []byte("%PDF-1.4 tiny"))
	put("voice1.webm", "audio/webm", []byte("opus"))
	put("big1.bin", "", bytes.Repeat([]byte{1}, 1001))

	tests := []struct {
		name     string
		ct       int32
		content  []byte
		wantType event.MessageType
		check    func(*event.MessageEventContent) string
	}{
		{"text", wire.ContentText, []byte("hi *there*"), event.MsgText, func(c *event.MessageEventContent) string {
			if c.Body != "hi *there*" || c.FormattedBody != "" {
				return "body " + c.Body
			}
			return ""
		}},
		{"image", wire.ContentImage, []byte("pic1.png||cat.png||" + fmt.Sprint(len(pic)) + "||png"), event.MsgImage,
			func(c *event.MessageEventContent) string {
				if c.Body != "cat.png" || c.Info == nil || c.Info.MimeType != "image/png" || c.Info.Size != len(pic) ||
					c.Info.Width != 7 || c.Info.Height != 5 || !strings.HasPrefix(string(c.URL), "mxc://example.org/") {
					return fmt.Sprintf("%+v %+v", c, c.Info)
				}
				return ""
			}},
		{"file", wire.ContentFile, []byte("doc1.pdf||report.pdf||13||pdf"), event.MsgFile, func(c *event.MessageEventContent) string {
			if c.Body != "report.pdf" || c.Info.MimeType != "application/pdf" || c.Info.Size != 13 {
				return fmt.Sprintf("%+v %+v", c, c.Info)
			}
			return ""
		}},
		{"audio", wire.ContentAudio, wire.EncodeAudio(12, "voice1.webm"), event.MsgAudio, func(c *event.MessageEventContent) string {
			if c.Info.Duration != 12000 || c.Info.MimeType != "audio/webm" || c.MSC3245Voice == nil {
				return fmt.Sprintf("%+v %+v", c, c.Info)
			}
			return ""
		}},
		{"emoji", wire.ContentEmoji, []byte("/images/emoji/ghost.gif"), event.MsgText, func(c *event.MessageEventContent) string {
			if c.Body != "👻" {
				return c.Body
			}
			return ""
		}},
		{"call", wire.ContentVideoCall, nil, event.MsgNotice, func(c *event.MessageEventContent) string {
			if !strings.Contains(c.Body, "video call") {
				return c.Body
			}
			return ""
		}},
		{"missing", wire.ContentImage, []byte("gone.png||gone.png||3||png"), event.MsgNotice, func(c *event.MessageEventContent) string {
			if !strings.Contains(c.Body, "could not be bridged") || !strings.Contains(c.Body, "not in the store") {
				return c.Body
			}
			return ""
		}},
		{"too large", wire.ContentFile, []byte("big1.bin||big.bin||1001||bin"), event.MsgNotice, func(c *event.MessageEventContent) string {
			if !strings.Contains(c.Body, "above the bridge's limit") {
				return c.Body
			}
			return ""
		}},
		{"malformed audio", wire.ContentAudio, nil, event.MsgNotice, func(c *event.MessageEventContent) string { return "" }},
	}
	for _, tt := range tests {
		c, err := b.contentToMatrix(ctx, &wire.Msg{ServerID: "s-" + tt.name, ContentType: tt.ct, Content: tt.content})
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if c.MsgType != tt.wantType {
			t.Errorf("%s: msgtype %s (%q), want %s", tt.name, c.MsgType, c.Body, tt.wantType)
			continue
		}
		if msg := tt.check(c); msg != "" {
			t.Errorf("%s: %s", tt.name, msg)
		}
	}
	// The uploads are the objects' bytes, and a second message naming the
	// same object reuses the upload.
	before := hs.uploads
	c, err := b.contentToMatrix(ctx, &wire.Msg{ContentType: wire.ContentImage, Content: []byte("pic1.png||again.png||1||png")})
	if err != nil || hs.uploads != before || c.Body != "again.png" {
		t.Fatalf("second send of pic1.png: %+v, %v; %d uploads, want %d", c, err, hs.uploads, before)
	}
	uri, _ := c.URL.Parse()
	if !bytes.Equal(hs.files[uri.FileID], pic) {
		t.Error("the uploaded image differs from the stored one")
	}
}

func TestContentFromMatrixMedia(t *testing.T) {
	ctx := context.Background()
	b, hs, blobs := newMediaBridge(t, 1000)
	pic := testPNG(t, 3, 3)
	hs.files["pic"], hs.types["pic"] = pic, "image/png"
	hs.files["voice"], hs.types["voice"] = []byte("OggS voice"), "audio/ogg"
	hs.files["blob"], hs.types["blob"] = []byte("\x00\x01binary\xff\xfe"), "application/octet-stream"
	hs.files["big"], hs.types["big"] = bytes.Repeat([]byte{2}, 1001), "application/octet-stream"

	stored := func(key string) []byte {
		rc, _, err := blobs.Get(ctx, blob.Files, key)
		if err != nil {
			t.Fatalf("object %s: %v", key, err)
		}
		defer rc.Close()
		data, _ := io.ReadAll(rc)
		return data
	}
	tests := []struct {
		name    string
		mc      event.MessageEventContent
		wantCT  int32
		wantErr string // a not-bridgeable reason containing this
		check   func(content []byte) string
	}{
		{name: "text", mc: event.MessageEventContent{MsgType: event.MsgText, Body: "plain", FormattedBody: "<b>plain</b>"},
			wantCT: wire.ContentText, check: func(c []byte) string {
				if string(c) != "plain" {
					return string(c)
				}
				return ""
			}},
		{name: "image", mc: event.MessageEventContent{MsgType: event.MsgImage, Body: "cat.png", URL: "mxc://example.org/pic",
			Info: &event.FileInfo{MimeType: "image/png", Size: len(pic)}}, wantCT: wire.ContentImage, check: func(c []byte) string {
			fc, err := parseFileContent(c)
			if err != nil || fc.Name != "cat.png" || fc.Size != int64(len(pic)) || fc.Ext != "png" ||
				!strings.HasSuffix(fc.Key, ".png") || !bytes.Equal(stored(fc.Key), pic) {
				return fmt.Sprintf("%q %+v %v", c, fc, err)
			}
			return ""
		}},
		{name: "file without extension", mc: event.MessageEventContent{MsgType: event.MsgFile, Body: "README", URL: "mxc://example.org/blob"},
			wantCT: wire.ContentFile, check: func(c []byte) string {
				fc, err := parseFileContent(c)
				if err != nil || fc.Name != "README" || fc.Size != 10 || strings.Contains(fc.Key, ".") || string(stored(fc.Key)) != "\x00\x01binary\xff\xfe" {
					return fmt.Sprintf("%q %+v %v", c, fc, err)
				}
				return ""
			}},
		{name: "audio", mc: event.MessageEventContent{MsgType: event.MsgAudio, Body: "Voice message", URL: "mxc://example.org/voice",
			Info: &event.FileInfo{MimeType: "audio/ogg", Duration: 4400}}, wantCT: wire.ContentAudio, check: func(c []byte) string {
			secs, key, err := wire.ParseAudio(c)
			if err != nil || secs != 4 || !strings.HasSuffix(key, ".ogg") || string(stored(key)) != "OggS voice" {
				return fmt.Sprintf("%q %d %s %v", c, secs, key, err)
			}
			return ""
		}},
		{name: "announced too large", mc: event.MessageEventContent{MsgType: event.MsgFile, Body: "x", URL: "mxc://example.org/nosuch",
			Info: &event.FileInfo{Size: 5000}}, wantErr: "above the bridge's limit"},
		{name: "read too large", mc: event.MessageEventContent{MsgType: event.MsgVideo, Body: "v.mp4", URL: "mxc://example.org/big"},
			wantErr: "above the bridge's limit"},
		{name: "encrypted", mc: event.MessageEventContent{MsgType: event.MsgImage, Body: "x", File: &event.EncryptedFileInfo{}},
			wantErr: "encrypted"},
		{name: "no url", mc: event.MessageEventContent{MsgType: event.MsgImage, Body: "x"}, wantErr: "no valid file URL"},
		{name: "poll", mc: event.MessageEventContent{MsgType: "org.example.poll", Body: "x"}, wantErr: "Sandcat has no"},
	}
	for _, lie := range []bool{false, true} {
		hs.lieSize = lie
		for _, tt := range tests {
			ct, content, err := b.contentFromMatrix(ctx, &tt.mc)
			if tt.wantErr != "" {
				if !errors.Is(err, errNotBridgeable) || !strings.Contains(userReason(err), tt.wantErr) {
					t.Errorf("%s (no length %v): %d %q %v; want not bridgeable: %s", tt.name, lie, ct, content, err, tt.wantErr)
				}
				continue
			}
			if err != nil || ct != tt.wantCT {
				t.Errorf("%s (no length %v): %d, %v; want %d", tt.name, lie, ct, err, tt.wantCT)
				continue
			}
			if msg := tt.check(content); msg != "" {
				t.Errorf("%s (no length %v): %s", tt.name, lie, msg)
			}
		}
	}
	// A missing file is a 404: permanent (a notice, no retry).
	_, _, err := b.contentFromMatrix(ctx, &event.MessageEventContent{MsgType: event.MsgFile, Body: "x", URL: "mxc://example.org/nosuch"})
	var he mautrix.HTTPError
	if !permanent(err) || !errors.As(err, &he) {
		t.Errorf("missing media: %v, want a permanent HTTP error", err)
	}
	// Nothing above the limit was left in the store: only the accepted
	// files (3 per round) are there.
	n := 0
	if err := blobs.List(ctx, blob.Files, func(blob.Info) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n != 6 {
		t.Errorf("%d objects stored, want 6", n)
	}
}

func TestRoomAvatarToMatrix(t *testing.T) {
	ctx := context.Background()
	b, hs, blobs := newMediaBridge(t, 1000)
	pic := testPNG(t, 2, 4)
	for _, n := range []string{"a1.png", "a2.png"} {
		if err := blobs.Put(ctx, blob.Avatars, n, "image/png", bytes.NewReader(pic), int64(len(pic))); err != nil {
			t.Fatal(err)
		}
	}
	fromMX := avatarName("mxc://example.org/roompic", "png")
	if err := blobs.Put(ctx, blob.Avatars, fromMX, "image/png", bytes.NewReader(pic), int64(len(pic))); err != nil {
		t.Fatal(err)
	}
	portal := &storage.Portal{GroupID: "g1", RoomID: "!room:example.org"}
	current := func() roomAvatarState {
		var st roomAvatarState
		if hs.roomAvatar != nil {
			if err := json.Unmarshal(hs.roomAvatar, &st); err != nil {
				t.Fatal(err)
			}
		}
		return st
	}
	steps := []struct {
		name      string
		room      string // the room's avatar before: "" none, else its JSON
		avatars   string
		wantSet   bool
		wantObj   string
		wantWidth int
	}{
		{name: "no stored object", avatars: "missing.png, g.png", wantSet: false},
		{name: "first stored one", avatars: "missing.png,a2.png,a1.png", wantSet: true, wantObj: "a2.png", wantWidth: 2},
		{name: "unchanged", room: "keep", avatars: "a2.png", wantSet: false},
		{name: "changed", room: "keep", avatars: "a1.png", wantSet: true, wantObj: "a1.png", wantWidth: 2},
		{name: "the copy of the room's own avatar", room: `{"url":"mxc://example.org/roompic"}`, avatars: fromMX, wantSet: false},
		{name: "set from Matrix, then changed in Sandcat", room: `{"url":"mxc://example.org/roompic"}`, avatars: "a1.png", wantSet: true, wantObj: "a1.png", wantWidth: 2},
	}
	for _, st := range steps {
		switch st.room {
		case "":
			hs.roomAvatar = nil
		case "keep":
		default:
			hs.roomAvatar = []byte(st.room)
		}
		before := string(hs.roomAvatar)
		if err := b.roomAvatarToMatrix(ctx, portal, st.avatars, 0); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		set := string(hs.roomAvatar) != before
		if set != st.wantSet {
			t.Fatalf("%s: set %v (%s), want %v", st.name, set, hs.roomAvatar, st.wantSet)
		}
		if !set {
			continue
		}
		cur := current()
		uri, _ := cur.URL.Parse()
		if cur.Object != st.wantObj || cur.Info == nil || cur.Info.Width != st.wantWidth || !bytes.Equal(hs.files[uri.FileID], pic) {
			t.Fatalf("%s: room avatar %s", st.name, hs.roomAvatar)
		}
	}
}
