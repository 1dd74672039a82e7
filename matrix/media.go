package matrix

// Media and avatars, both ways.
//
// Sandcat → Matrix. A text message becomes m.text (Sandcat has no markup:
// the body is sent as plain text). An image, video or file message (content
// "key||name||size||ext", the object in the Files bucket) is read from the
// blob store, uploaded to the homeserver's media repository by the bridge
// bot and sent as m.image / m.video / m.file (body = file name; info =
// mimetype, size and, for PNG, JPEG and GIF images, width and height). A
// voice note (byte 0 = duration in seconds, then the key) becomes m.audio
// with info.duration and the MSC3245 voice flag. A Sandcat emoji (the
// client's sticker path, e.g. "/images/emoji/sun.gif") becomes the matching
// Unicode emoji as m.text. Calls and anything else become an m.notice
// saying what was sent. A message whose object is missing, malformed or
// larger than max_file_size is sent as an m.notice by the sender's puppet
// saying that it could not be bridged, and why: the room sees the gap, the
// message keeps its place and its event mapping, and nothing is retried.
// Uploads are remembered in memory (an LRU of mediaCacheSize objects keyed
// by bucket and object name; object names are never reused for other
// bytes), so a file forwarded again, or a message retried after its upload,
// reuses its mxc:// URI; after a restart an object is uploaded again.
//
// Matrix → Sandcat. m.text and m.notice bridge as their plain body (Sandcat
// clients show plain text; the formatted_body is not used), m.emote as
// "* body", m.location as "Location: body (geo URI)". m.image, m.video,
// m.file and m.audio are downloaded through authenticated media
// (/_matrix/client/v1/media/download, with the as_token) within
// downloadTimeout, refused above max_file_size (the announced size first,
// then a bounded read), stored in the Files bucket as <nanoid>.<ext> (the
// extension of the file name, else of the mimetype) and sent as Image,
// Video, File ("key||name||size||ext") or Audio (duration byte, capped at
// 255 s, then the key). A caption (body different from filename) is not
// carried. Encrypted files (the bridge is not in encrypted rooms) and other
// message types are not bridged: the room gets an m.notice from the bridge
// bot saying so.
//
// Avatars. A Sandcat user's avatar (an object of the Avatars bucket) is
// uploaded once and set as its puppet's avatar_url (ensurePuppet, whenever
// the user's avatar differs from the one last synced). A Matrix user's
// avatar (on its join or profile change in a portal) is downloaded into the
// Avatars bucket and becomes its Sandcat user's avatar. A group's avatar (a
// comma-joined list; the first that exists in the store is used) is set as
// the portal's m.room.avatar by the bot when the portal is created and on
// every GroupUpdate; a Matrix user's m.room.avatar becomes the group's
// avatar and the members get a GroupUpdate notice from that user. Objects
// copied from Matrix avatars are named after their mxc:// URI (avatarName),
// so the same avatar is never copied twice and a group avatar that came from
// the room is not sent back to it.

import (
	"bufio"
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // image.DecodeConfig of GIF avatars and images
	_ "image/jpeg"
	_ "image/png"
	"io"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/im/file"
	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/blob"
)

// errNotBridgeable is wrapped by content conversions that can never
// succeed: the message is skipped with a notice instead of being retried.
var errNotBridgeable = errors.New("not bridgeable")

// reasonError is a not-bridgeable error with the reason shown to users.
type reasonError struct{ reason string }

func (e *reasonError) Error() string        { return "not bridgeable: " + e.reason }
func (e *reasonError) Is(target error) bool { return target == errNotBridgeable }

// notBridgeable returns an error wrapping errNotBridgeable whose reason
// (userReason) is the formatted text.
func notBridgeable(format string, args ...any) error {
	return &reasonError{reason: fmt.Sprintf(format, args...)}
}

// userReason is the short reason shown in a room's notice.
func userReason(err error) string {
	var re *reasonError
	if errors.As(err, &re) {
		return re.reason
	}
	var he mautrix.HTTPError
	if errors.As(err, &he) && he.RespError != nil {
		return "the homeserver answered " + he.RespError.ErrCode + ": " + he.RespError.Err
	}
	if errors.As(err, &he) && he.Response != nil {
		return "the homeserver answered HTTP " + strconv.Itoa(he.Response.StatusCode)
	}
	if errors.Is(err, storage.ErrNotFound) {
		return "something it refers to no longer exists"
	}
	return err.Error()
}

// downloadTimeout bounds one download from the homeserver (the transaction
// that carries the event is answered only once it is handled).
const downloadTimeout = 30 * time.Second

// mediaCacheSize is the number of uploads remembered by mediaCache.
const mediaCacheSize = 1024

// ---------------------------------------------------------------------------
// Content formats (sandcat-wire.md §3.4, §7).

// fileContent is the content of an Image, Video or File message:
// "key||name||size||ext". Older clients send the key alone.
type fileContent struct {
	Key  string
	Name string
	Size int64 // 0 = unknown
	Ext  string
}

const fileSep = "||"

// parseFileContent parses "key||name||size||ext" (or a shorter prefix of
// it; a name holding "||" is kept whole). The key must be a valid object
// name.
func parseFileContent(b []byte) (fileContent, error) {
	parts := strings.Split(string(b), fileSep)
	fc := fileContent{Key: strings.TrimSpace(parts[0])}
	switch n := len(parts); {
	case n >= 4:
		fc.Name = strings.Join(parts[1:n-2], fileSep)
		fc.Size, _ = strconv.ParseInt(strings.TrimSpace(parts[n-2]), 10, 64)
		fc.Ext = strings.TrimPrefix(strings.TrimSpace(parts[n-1]), ".")
	case n == 3:
		fc.Name = parts[1]
		fc.Size, _ = strconv.ParseInt(strings.TrimSpace(parts[2]), 10, 64)
	case n == 2:
		fc.Name = parts[1]
	}
	if err := blob.ValidName(fc.Key); err != nil {
		return fileContent{}, notBridgeable("the message does not name a stored file (%q)", trimTo(fc.Key, 40))
	}
	if fc.Size < 0 {
		fc.Size = 0
	}
	if fc.Name == "" {
		fc.Name = fc.Key
	}
	if fc.Ext == "" {
		fc.Ext = extension(fc.Name)
	}
	if fc.Ext == "" {
		fc.Ext = extension(fc.Key)
	}
	return fc, nil
}

// bytes formats the content; a "||" inside the name becomes "|" so that
// the four fields stay apart.
func (fc fileContent) bytes() []byte {
	name := strings.ReplaceAll(fc.Name, fileSep, "|")
	return []byte(fc.Key + fileSep + name + fileSep + strconv.FormatInt(fc.Size, 10) + fileSep + fc.Ext)
}

// extension is file.Extension: the extension of a file name without the
// dot, as POST /file/upload keeps it, so the object name passes
// blob.ValidName.
func extension(filename string) string { return file.Extension(filename) }

// knownTypes maps the usual chat media types to one extension each, both
// ways (the system's mime tables differ between machines).
var knownTypes = []struct{ mime, ext string }{
	{"image/png", "png"}, {"image/jpeg", "jpg"}, {"image/gif", "gif"}, {"image/webp", "webp"},
	{"image/svg+xml", "svg"}, {"image/bmp", "bmp"},
	{"video/mp4", "mp4"}, {"video/webm", "webm"}, {"video/quicktime", "mov"},
	{"audio/ogg", "ogg"}, {"audio/webm", "webm"}, {"audio/mpeg", "mp3"}, {"audio/mp4", "m4a"},
	{"audio/wav", "wav"}, {"audio/aac", "aac"},
	{"application/pdf", "pdf"}, {"application/zip", "zip"}, {"text/plain", "txt"},
	{"application/json", "json"},
}

// extFromMime is the extension of a media type ("" when unknown or
// application/octet-stream).
func extFromMime(ct string) string {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt == blob.DefaultContentType {
		return ""
	}
	for _, k := range knownTypes {
		if k.mime == mt {
			return k.ext
		}
	}
	if exts, _ := mime.ExtensionsByType(mt); len(exts) > 0 {
		return extension(exts[0])
	}
	return ""
}

// mimeFromExt is the media type of an extension ("" when unknown).
func mimeFromExt(ext string) string {
	ext = strings.ToLower(strings.TrimPrefix(ext, "."))
	if ext == "" {
		return ""
	}
	if ext == "jpeg" {
		ext = "jpg"
	}
	for _, k := range knownTypes {
		if k.ext == ext && !(ext == "webm" && strings.HasPrefix(k.mime, "audio/")) {
			return k.mime
		}
	}
	return mime.TypeByExtension("." + ext)
}

// mediaType is the type to announce for an object: the stored one when it
// is specific, else the extension's, else one sniffed from the first bytes.
func mediaType(stored, ext string, head []byte) string {
	if mt, _, err := mime.ParseMediaType(stored); err == nil && mt != blob.DefaultContentType && mt != "" {
		return stored
	}
	if ct := mimeFromExt(ext); ct != "" {
		return ct
	}
	if len(head) > 0 {
		return http.DetectContentType(head)
	}
	return blob.DefaultContentType
}

// audioSeconds is the Audio duration byte of a Matrix duration in ms:
// rounded, capped at 255.
func audioSeconds(ms int) uint8 {
	if ms <= 0 {
		return 0
	}
	s := (ms + 500) / 1000
	if s > 255 {
		return 255
	}
	return uint8(s)
}

// sandcatEmoji maps the Sandcat client's built-in emoji (content = the
// path of its GIF, "/images/emoji/<name>.gif") to Unicode.
var sandcatEmoji = map[string]string{
	"sun": "☀️", "poop": "💩", "thumbup": "👍", "se": "😍", "smile": "😊", "fist": "👊",
	"xieyan": "😏", "ghost": "👻", "angry": "😠", "thumbdown": "👎",
}

// emojiText is the Matrix text of a Sandcat Emoji message.
func emojiText(content string) string {
	name := strings.TrimSuffix(path.Base(strings.TrimSpace(content)), path.Ext(content))
	if e, ok := sandcatEmoji[name]; ok {
		return e
	}
	if name == "" || name == "." || name == "/" {
		return "(an emoji)"
	}
	return ":" + name + ":"
}

// humanSize formats a byte count for notices.
func humanSize(n int64) string {
	switch {
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MiB"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 1, 64) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " bytes"
}

func trimTo(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// avatarNames splits a Sandcat avatar list (a group's avatar is the
// comma-joined avatars of its members) into its valid object names.
func avatarNames(list string) []string {
	var out []string
	for _, n := range strings.Split(list, ",") {
		if n = strings.TrimSpace(n); blob.ValidName(n) == nil {
			out = append(out, n)
		}
	}
	return out
}

// avatarBase is the object name stem of a Matrix avatar copied into the
// Avatars bucket: derived from its mxc:// URI, so copying it again finds
// the same object and the bridge recognises it on its way back.
func avatarBase(mxc string) string {
	sum := sha256.Sum256([]byte("mxc-avatar:" + mxc))
	return "mx" + base64.RawURLEncoding.EncodeToString(sum[:])[:21]
}

// avatarName is avatarBase with the extension, if any.
func avatarName(mxc, ext string) string {
	if ext == "" {
		return avatarBase(mxc)
	}
	return avatarBase(mxc) + "." + ext
}

// fromAvatar tells whether an object name is the copy of the avatar mxc.
func fromAvatar(name, mxc string) bool {
	if mxc == "" {
		return false
	}
	stem, _, _ := strings.Cut(name, ".")
	return stem == avatarBase(mxc)
}

// ---------------------------------------------------------------------------
// Uploads (Sandcat objects → the homeserver's media repository).

// uploaded is an object uploaded to the media repository.
type uploaded struct {
	MXC           id.ContentURI
	MimeType      string
	Size          int64
	Width, Height int // images only; 0 = unknown
}

// mediaCache remembers uploads by bucket and object name (an LRU). The
// zero value is ready to use.
type mediaCache struct {
	mu  sync.Mutex
	max int
	ll  *list.List
	m   map[string]*list.Element
}

type cacheEntry struct {
	key string
	up  uploaded
}

func (c *mediaCache) get(key string) (uploaded, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[key]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*cacheEntry).up, true
	}
	return uploaded{}, false
}

func (c *mediaCache) put(key string, up uploaded) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]*list.Element)
		c.ll = list.New()
	}
	if c.max <= 0 {
		c.max = mediaCacheSize
	}
	if e, ok := c.m[key]; ok {
		e.Value.(*cacheEntry).up = up
		c.ll.MoveToFront(e)
		return
	}
	c.m[key] = c.ll.PushFront(&cacheEntry{key: key, up: up})
	for c.ll.Len() > c.max {
		last := c.ll.Back()
		c.ll.Remove(last)
		delete(c.m, last.Value.(*cacheEntry).key)
	}
}

// uploadObject uploads an object of the blob store (as the bot) and
// returns its mxc:// URI, once per object (mediaCache). A missing object or
// one above MaxFileSize is not bridgeable.
func (b *Bridge) uploadObject(ctx context.Context, bucket blob.Bucket, name string) (uploaded, error) {
	ck := string(bucket) + "/" + name
	if up, ok := b.media.get(ck); ok {
		return up, nil
	}
	data, ct, err := b.readObject(ctx, bucket, name)
	if err != nil {
		return uploaded{}, err
	}
	up := uploaded{MimeType: mediaType(ct, extension(name), data), Size: int64(len(data))}
	if strings.HasPrefix(up.MimeType, "image/") {
		if cfg, _, err := image.DecodeConfig(bytes.NewReader(data)); err == nil {
			up.Width, up.Height = cfg.Width, cfg.Height
		}
	}
	resp, err := b.bot.UploadMedia(ctx, mautrix.ReqUploadMedia{ContentBytes: data, ContentType: up.MimeType, FileName: name})
	if err != nil {
		return uploaded{}, fmt.Errorf("matrix: upload %s/%s: %w", bucket, name, err)
	}
	up.MXC = resp.ContentURI
	b.media.put(ck, up)
	b.log.Debug("media uploaded", "bucket", string(bucket), "name", name, "mxc", up.MXC, "size", up.Size)
	return up, nil
}

// readObject reads a whole object, refusing one above MaxFileSize.
func (b *Bridge) readObject(ctx context.Context, bucket blob.Bucket, name string) ([]byte, string, error) {
	rc, info, err := b.blobs.Get(ctx, bucket, name)
	if errors.Is(err, storage.ErrNotFound) || errors.Is(err, blob.ErrInvalidName) {
		return nil, "", notBridgeable("the file %s is not in the store", name)
	}
	if err != nil {
		return nil, "", fmt.Errorf("matrix: read %s/%s: %w", bucket, name, err)
	}
	defer rc.Close()
	if info.Size > b.cfg.MaxFileSize {
		return nil, "", notBridgeable("the file is %s, above the bridge's limit of %s", humanSize(info.Size), humanSize(b.cfg.MaxFileSize))
	}
	data, err := io.ReadAll(io.LimitReader(rc, b.cfg.MaxFileSize+1))
	if err != nil {
		return nil, "", fmt.Errorf("matrix: read %s/%s: %w", bucket, name, err)
	}
	if int64(len(data)) > b.cfg.MaxFileSize {
		return nil, "", notBridgeable("the file is above the bridge's limit of %s", humanSize(b.cfg.MaxFileSize))
	}
	return data, info.ContentType, nil
}

// ---------------------------------------------------------------------------
// Sandcat → Matrix messages.

// contentToMatrix is the Matrix content of a Sandcat message. A message
// that cannot be bridged (missing or oversized file, malformed content)
// becomes an m.notice saying so.
func (b *Bridge) contentToMatrix(ctx context.Context, m *wire.Msg) (*event.MessageEventContent, error) {
	c, err := b.sandcatContent(ctx, m)
	if err != nil {
		if !errors.Is(err, errNotBridgeable) {
			return nil, err
		}
		b.log.Warn("Sandcat message not bridged to Matrix", "server_id", m.ServerID, "group_id", m.GroupID, "err", err)
		c = &event.MessageEventContent{MsgType: event.MsgNotice,
			Body: "(" + kindOf(m.ContentType) + " that could not be bridged to Matrix: " + userReason(err) + ")"}
	}
	b.replyTo(ctx, m, c)
	return c, nil
}

// kindOf names a content type for notices ("a file", "an image", ...).
func kindOf(ct int32) string {
	switch ct {
	case wire.ContentImage:
		return "an image"
	case wire.ContentVideo:
		return "a video"
	case wire.ContentAudio:
		return "a voice message"
	case wire.ContentFile:
		return "a file"
	case wire.ContentEmoji:
		return "an emoji"
	case wire.ContentVideoCall:
		return "a video call"
	case wire.ContentAudioCall:
		return "an audio call"
	}
	return "a message"
}

func (b *Bridge) sandcatContent(ctx context.Context, m *wire.Msg) (*event.MessageEventContent, error) {
	switch m.ContentType {
	case wire.ContentText, wire.ContentDefault:
		return &event.MessageEventContent{MsgType: event.MsgText, Body: string(m.Content)}, nil
	case wire.ContentEmoji:
		return &event.MessageEventContent{MsgType: event.MsgText, Body: emojiText(string(m.Content))}, nil
	case wire.ContentImage, wire.ContentVideo, wire.ContentFile:
		fc, err := parseFileContent(m.Content)
		if err != nil {
			return nil, err
		}
		up, err := b.uploadObject(ctx, blob.Files, fc.Key)
		if err != nil {
			return nil, err
		}
		c := &event.MessageEventContent{MsgType: event.MsgFile, Body: fc.Name, URL: up.MXC.CUString(),
			Info: &event.FileInfo{MimeType: up.MimeType, Size: int(up.Size)}}
		switch m.ContentType {
		case wire.ContentImage:
			c.MsgType = event.MsgImage
			c.Info.Width, c.Info.Height = up.Width, up.Height
		case wire.ContentVideo:
			c.MsgType = event.MsgVideo
		}
		return c, nil
	case wire.ContentAudio:
		secs, key, err := wire.ParseAudio(m.Content)
		if err != nil || blob.ValidName(key) != nil {
			return nil, notBridgeable("the voice message does not name a stored file")
		}
		up, err := b.uploadObject(ctx, blob.Files, key)
		if err != nil {
			return nil, err
		}
		body := "Voice message"
		if ext := extension(key); ext != "" {
			body += "." + ext
		}
		ms := int(secs) * 1000
		return &event.MessageEventContent{MsgType: event.MsgAudio, Body: body, URL: up.MXC.CUString(),
			Info:         &event.FileInfo{MimeType: up.MimeType, Size: int(up.Size), Duration: ms},
			MSC1767Audio: &event.MSC1767Audio{Duration: ms}, MSC3245Voice: &event.MSC3245Voice{}}, nil
	case wire.ContentVideoCall, wire.ContentAudioCall:
		return &event.MessageEventContent{MsgType: event.MsgNotice,
			Body: "(" + kindOf(m.ContentType) + " in Sandcat: calls are not bridged)"}, nil
	}
	return &event.MessageEventContent{MsgType: event.MsgNotice,
		Body: fmt.Sprintf("(a message of content type %d that Matrix cannot show)", m.ContentType)}, nil
}

// ---------------------------------------------------------------------------
// Matrix → Sandcat messages.

// contentFromMatrix is the Sandcat content type and content of a Matrix
// message (its reply fallback removed). Media are copied into the Files
// bucket.
func (b *Bridge) contentFromMatrix(ctx context.Context, mc *event.MessageEventContent) (int32, []byte, error) {
	switch mc.MsgType {
	case event.MsgText, event.MsgNotice:
		return wire.ContentText, []byte(mc.Body), nil
	case event.MsgEmote:
		return wire.ContentText, []byte("* " + mc.Body), nil
	case event.MsgLocation:
		text := "Location: " + mc.Body
		if mc.GeoURI != "" && mc.GeoURI != mc.Body {
			text += " (" + mc.GeoURI + ")"
		}
		return wire.ContentText, []byte(text), nil
	case event.MsgImage, event.MsgVideo, event.MsgFile, event.MsgAudio:
		return b.mediaFromMatrix(ctx, mc)
	}
	return 0, nil, notBridgeable("Sandcat has no %s messages", mc.MsgType)
}

func (b *Bridge) mediaFromMatrix(ctx context.Context, mc *event.MessageEventContent) (int32, []byte, error) {
	if mc.File != nil {
		return 0, nil, notBridgeable("the file is encrypted")
	}
	uri, err := mc.URL.Parse()
	if err != nil || uri.IsEmpty() {
		return 0, nil, notBridgeable("the message has no valid file URL")
	}
	declared := ""
	if mc.Info != nil {
		if int64(mc.Info.Size) > b.cfg.MaxFileSize {
			return 0, nil, notBridgeable("the file is %s, above the bridge's limit of %s",
				humanSize(int64(mc.Info.Size)), humanSize(b.cfg.MaxFileSize))
		}
		declared = mc.Info.MimeType
	}
	name := mc.GetFileName()
	ext := extension(name)
	key, _, size, err := b.fetchMedia(ctx, uri, blob.Files, declared, func(ct string) string {
		if ext == "" {
			ext = extFromMime(ct)
		}
		if ext == "" {
			return ids.New()
		}
		return ids.New() + "." + ext
	})
	if err != nil {
		return 0, nil, err
	}
	if mc.MsgType == event.MsgAudio {
		ms := 0
		if mc.Info != nil {
			ms = mc.Info.Duration
		}
		if ms == 0 && mc.MSC1767Audio != nil {
			ms = mc.MSC1767Audio.Duration
		}
		return wire.ContentAudio, wire.EncodeAudio(audioSeconds(ms), key), nil
	}
	if name == "" {
		name = key
	}
	ct := wire.ContentFile
	switch mc.MsgType {
	case event.MsgImage:
		ct = wire.ContentImage
	case event.MsgVideo:
		ct = wire.ContentVideo
	}
	return ct, fileContent{Key: key, Name: name, Size: size, Ext: ext}.bytes(), nil
}

// errTooLarge ends a read past MaxFileSize.
var errTooLarge = errors.New("matrix: the file is above the size limit")

// boundedReader yields at most left bytes, then errTooLarge if there are more.
type boundedReader struct {
	r        io.Reader
	left     int64
	n        int64
	tooLarge bool
}

func (l *boundedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			l.tooLarge = true
			return 0, errTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	l.n += int64(n)
	return n, err
}

// fetchMedia downloads an mxc:// URI (authenticated media, as the bot,
// within downloadTimeout) into bucket, under the name given by nameFor (from
// the content type), and returns the name, content type and size. Above
// MaxFileSize, or too slow, it is not bridgeable; nothing is left behind.
func (b *Bridge) fetchMedia(ctx context.Context, uri id.ContentURI, bucket blob.Bucket, declared string,
	nameFor func(ct string) string) (string, string, int64, error) {
	dctx, cancel := context.WithTimeout(ctx, downloadTimeout)
	defer cancel()
	timedOut := func() bool { return ctx.Err() == nil && errors.Is(dctx.Err(), context.DeadlineExceeded) }
	resp, err := b.bot.Download(dctx, uri)
	if err != nil {
		if timedOut() {
			return "", "", 0, notBridgeable("the download took longer than %s", downloadTimeout)
		}
		return "", "", 0, fmt.Errorf("matrix: download %s: %w", uri, err)
	}
	defer resp.Body.Close()
	if resp.ContentLength > b.cfg.MaxFileSize {
		return "", "", 0, notBridgeable("the file is %s, above the bridge's limit of %s",
			humanSize(resp.ContentLength), humanSize(b.cfg.MaxFileSize))
	}
	src := &boundedReader{r: resp.Body, left: b.cfg.MaxFileSize}
	br := bufio.NewReaderSize(src, 512)
	head, err := br.Peek(512)
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		switch {
		case src.tooLarge:
			return "", "", 0, notBridgeable("the file is above the bridge's limit of %s", humanSize(b.cfg.MaxFileSize))
		case timedOut():
			return "", "", 0, notBridgeable("the download took longer than %s", downloadTimeout)
		}
		return "", "", 0, fmt.Errorf("matrix: download %s: %w", uri, err)
	}
	ct := declared
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt == blob.DefaultContentType {
		ct = resp.Header.Get("Content-Type")
	}
	if mt, _, err := mime.ParseMediaType(ct); err != nil || mt == blob.DefaultContentType {
		ct = http.DetectContentType(head)
	}
	name := nameFor(ct)
	if err := b.blobs.Put(dctx, bucket, name, ct, br, -1); err != nil {
		switch {
		case src.tooLarge:
			return "", "", 0, notBridgeable("the file is above the bridge's limit of %s", humanSize(b.cfg.MaxFileSize))
		case timedOut():
			return "", "", 0, notBridgeable("the download took longer than %s", downloadTimeout)
		}
		return "", "", 0, fmt.Errorf("matrix: store %s as %s/%s: %w", uri, bucket, name, err)
	}
	b.log.Debug("media copied from Matrix", "mxc", uri, "bucket", string(bucket), "name", name, "size", src.n)
	return name, ct, src.n, nil
}

// ---------------------------------------------------------------------------
// Avatars.

// puppetAvatar sets the avatar of a Sandcat user's puppet to the user's
// avatar (an object of the Avatars bucket) and records it in p (the caller
// stores p). An avatar that cannot be copied (missing, too large) is logged
// and recorded as synced, without an avatar on Matrix, so it is not tried
// on every message.
func (b *Bridge) puppetAvatar(ctx context.Context, mxid id.UserID, p *storage.Puppet, avatar string) error {
	var mxc id.ContentURI
	if avatar != "" {
		up, err := b.uploadObject(ctx, blob.Avatars, avatar)
		switch {
		case errors.Is(err, errNotBridgeable) || permanent(err):
			// Usually an avatar name the client made up (never uploaded).
			b.log.Info("avatar not copied to Matrix", "user_id", p.UserID, "avatar", avatar, "err", err)
			p.Avatar, p.AvatarMXC = avatar, ""
			return nil
		case err != nil:
			return err
		}
		mxc = up.MXC
	}
	cli, err := b.client(mxid)
	if err != nil {
		return err
	}
	if err := cli.SetAvatarURL(ctx, mxc); err != nil {
		return fmt.Errorf("matrix: avatar of %s: %w", mxid, err)
	}
	p.Avatar, p.AvatarMXC = avatar, mxc.String()
	return nil
}

// matrixAvatar copies a Matrix user's avatar into Sandcat: the image is
// downloaded into the Avatars bucket and becomes its Sandcat user's avatar,
// when it differs from the one copied last (Puppet.Avatar holds its mxc://
// URI). An avatar removed on Matrix leaves the Sandcat one as it is.
func (b *Bridge) matrixAvatar(ctx context.Context, mxid id.UserID, avatar id.ContentURIString) error {
	p, err := b.store.PuppetByMXID(ctx, mxid.String())
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if !p.FromMatrix || string(avatar) == p.Avatar {
		return nil
	}
	if avatar == "" {
		p.Avatar, p.AvatarMXC = "", ""
		return b.store.PutPuppet(ctx, p)
	}
	uri, err := avatar.Parse()
	if err != nil || uri.IsEmpty() {
		return notBridgeable("the avatar %q is not an mxc:// URI", trimTo(string(avatar), 60))
	}
	name, err := b.copyAvatar(ctx, uri, "")
	if err != nil {
		return err
	}
	if _, err := b.users.UpdateUser(ctx, &storage.UserUpdate{ID: p.UserID, Avatar: name}, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("matrix: avatar of the Sandcat user of %s: %w", mxid, err)
	}
	p.Avatar, p.AvatarMXC = string(avatar), string(avatar)
	if err := b.store.PutPuppet(ctx, p); err != nil {
		return fmt.Errorf("matrix: store the puppet of %s: %w", mxid, err)
	}
	b.log.Info("Matrix avatar copied", "mxid", mxid, "user_id", p.UserID, "avatar", name)
	return nil
}

// syncMatrixAvatar reads a Matrix user's profile avatar and copies it
// (matrixAvatar): for a Matrix user first seen through a message rather
// than a member event. Failures are only logged.
func (b *Bridge) syncMatrixAvatar(ctx context.Context, mxid id.UserID) {
	url, err := b.bot.GetAvatarURL(ctx, mxid)
	if err == nil {
		err = b.matrixAvatar(ctx, mxid, url.CUString())
	}
	if err != nil {
		b.log.Warn("Matrix avatar not copied", "mxid", mxid, "err", err)
	}
}

// copyAvatar downloads a Matrix avatar into the Avatars bucket, under a
// name derived from its URI (avatarName), and returns the object name.
func (b *Bridge) copyAvatar(ctx context.Context, uri id.ContentURI, declared string) (string, error) {
	name, _, _, err := b.fetchMedia(ctx, uri, blob.Avatars, declared, func(ct string) string {
		return avatarName(uri.String(), extFromMime(ct))
	})
	return name, err
}

// roomAvatarState is m.room.avatar as the bridge sets it: with the Sandcat
// object it came from, so the next GroupUpdate does not upload it again.
type roomAvatarState struct {
	URL    id.ContentURIString `json:"url,omitempty"`
	Info   *event.FileInfo     `json:"info,omitempty"`
	Object string              `json:"net.sandcat.avatar,omitempty"`
}

// roomAvatarToMatrix sets the portal's m.room.avatar (as the bot, at ts
// when not 0) to the first avatar of a group's avatar list that exists in
// the store, unless the room shows it already (set by the bridge from that
// object, or the object is the copy of the room's avatar). A list naming
// no stored object changes nothing.
func (b *Bridge) roomAvatarToMatrix(ctx context.Context, portal *storage.Portal, avatars string, ts int64) error {
	chosen := ""
	for _, n := range avatarNames(avatars) {
		rc, _, err := b.blobs.Get(ctx, blob.Avatars, n)
		if err == nil {
			_ = rc.Close()
			chosen = n
			break
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return fmt.Errorf("matrix: look up the group avatar %s: %w", n, err)
		}
	}
	if chosen == "" {
		b.log.Debug("group avatar not in the store: room avatar unchanged", "group_id", portal.GroupID, "avatar", avatars)
		return nil
	}
	room := id.RoomID(portal.RoomID)
	var cur roomAvatarState
	if err := b.bot.StateEvent(ctx, room, event.StateRoomAvatar, "", &cur); err != nil && !errors.Is(err, mautrix.MNotFound) {
		return fmt.Errorf("matrix: avatar of %s: %w", room, err)
	}
	if cur.Object == chosen || fromAvatar(chosen, string(cur.URL)) {
		return nil
	}
	up, err := b.uploadObject(ctx, blob.Avatars, chosen)
	if errors.Is(err, errNotBridgeable) {
		b.log.Warn("group avatar not copied to Matrix", "group_id", portal.GroupID, "avatar", chosen, "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	content := &roomAvatarState{URL: up.MXC.CUString(), Object: chosen,
		Info: &event.FileInfo{MimeType: up.MimeType, Size: int(up.Size), Width: up.Width, Height: up.Height}}
	if _, err := b.bot.SendStateEvent(ctx, room, event.StateRoomAvatar, "", content, mautrix.ReqSendEvent{Timestamp: ts}); err != nil {
		return fmt.Errorf("matrix: set the avatar of %s: %w", room, err)
	}
	b.log.Debug("room avatar set", "room_id", room, "avatar", chosen, "mxc", up.MXC)
	return nil
}

// portalAvatar is roomAvatarToMatrix for a new portal, best effort.
func (b *Bridge) portalAvatar(ctx context.Context, portal *storage.Portal, avatars string) {
	if err := b.roomAvatarToMatrix(ctx, portal, avatars, 0); err != nil {
		b.log.Warn("avatar of the new portal not set", "group_id", portal.GroupID, "room_id", portal.RoomID, "err", err)
	}
}

// roomAvatarFromMatrix sets the group's avatar from the portal's: the image
// is copied into the Avatars bucket, becomes the group's avatar, and the
// members get a GroupUpdate notice from the Matrix user who set it (the
// bridge skips it on its way back: its sender is a Matrix user). The notice
// is keyed by the event (Sender.SendKeyed), so handling the event again
// after a failure between the update and the notice stores it once. A
// removed room avatar leaves the group's as it is.
func (b *Bridge) roomAvatarFromMatrix(ctx context.Context, portal *storage.Portal, evt *event.Event) error {
	if evt.GetStateKey() != "" {
		return nil
	}
	ac := evt.Content.AsRoomAvatar()
	if ac.URL == "" {
		return nil
	}
	if ac.MSC3414File != nil {
		return notBridgeable("the room avatar is encrypted")
	}
	uri, err := ac.URL.Parse()
	if err != nil || uri.IsEmpty() {
		return notBridgeable("the room avatar %q is not an mxc:// URI", trimTo(string(ac.URL), 60))
	}
	if ac.Info != nil && int64(ac.Info.Size) > b.cfg.MaxFileSize {
		return notBridgeable("the room avatar is %s, above the bridge's limit of %s", humanSize(int64(ac.Info.Size)), humanSize(b.cfg.MaxFileSize))
	}
	info, err := b.groups.GetGroup(ctx, portal.GroupID)
	if err != nil {
		return err
	}
	name := ""
	if names := avatarNames(info.Avatar); len(names) == 1 && fromAvatar(names[0], uri.String()) {
		name = names[0] // the group shows it already (this event handled before, up to its notice)
	} else {
		declared := ""
		if ac.Info != nil {
			declared = ac.Info.MimeType
		}
		if name, err = b.copyAvatar(ctx, uri, declared); err != nil {
			return err
		}
		if info, _, err = b.groups.UpdateGroup(ctx, storage.GroupUpdate{ID: portal.GroupID, Avatar: name}); err != nil {
			return fmt.Errorf("matrix: avatar of group %s: %w", portal.GroupID, err)
		}
	}
	uid, err := b.matrixUser(ctx, evt.Sender, "")
	if err != nil {
		return err
	}
	if _, err := b.groupUpdateNotice(ctx, portal, uid, evt, info); err != nil {
		return err
	}
	b.log.Info("group avatar set from Matrix", "group_id", portal.GroupID, "mxid", evt.Sender, "avatar", name)
	return nil
}
