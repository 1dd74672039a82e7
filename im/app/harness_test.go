package app_test

// The end-to-end harness: the whole embedded server (SQLite, embedded bus,
// local files) started through app.Start on 127.0.0.1:0, driven only through
// im/client over real HTTP and real WebSocket bincode frames.
//
// Waiting: no assertion is timed. Every wait for a frame is bounded by a
// generous guard (waitFrame) that fails the test only when the server never
// answers. "Nothing else arrived" is checked without sleeping: a probe user
// sends a SingleCallInvite (pushed, never stored, no seq) to the user under
// test after everything else was made durable; the bus is one ordered log
// and every connection's frames are written in order, so once the probe's
// frame arrives on a connection, every earlier delivery to it has arrived.

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/app"
	"github.com/sandcat-im/sandcat/im/client"
	"github.com/sandcat-im/sandcat/im/config"
	"github.com/sandcat-im/sandcat/im/wire"
)

// waitFrame bounds every wait for a frame: the server is far faster; the
// bound only turns a hang into a failure.
const waitFrame = 30 * time.Second

// ---------------------------------------------------------------------------
// Log capture: verification codes and errors.

// logSink is shared by a handler and its WithAttrs/WithGroup children.
type logSink struct {
	mu     sync.Mutex
	codes  map[string]string // e-mail → latest code
	errors []string
	echo   slog.Handler // SANDCAT_TEST_LOG=1 writes everything to stderr
}

type captureHandler struct {
	sink  *logSink
	attrs []slog.Attr
	echo  slog.Handler
}

func newCapture() *captureHandler {
	s := &logSink{codes: map[string]string{}}
	h := &captureHandler{sink: s}
	if os.Getenv("SANDCAT_TEST_LOG") != "" {
		h.echo = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
	}
	return h
}

func (h *captureHandler) Enabled(_ context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || h.echo != nil
}

func (h *captureHandler) Handle(ctx context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "verification code") {
		var email, code string
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "email":
				email = a.Value.String()
			case "code":
				code = a.Value.String()
			}
			return true
		})
		h.sink.mu.Lock()
		h.sink.codes[email] = code
		h.sink.mu.Unlock()
	}
	if r.Level >= slog.LevelError {
		var b strings.Builder
		b.WriteString(r.Message)
		for _, a := range h.attrs {
			fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		}
		r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
		h.sink.mu.Lock()
		h.sink.errors = append(h.sink.errors, b.String())
		h.sink.mu.Unlock()
	}
	if h.echo != nil {
		return h.echo.Handle(ctx, r)
	}
	return nil
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	c := &captureHandler{sink: h.sink, attrs: append(slices.Clone(h.attrs), as...)}
	if h.echo != nil {
		c.echo = h.echo.WithAttrs(as)
	}
	return c
}

func (h *captureHandler) WithGroup(name string) slog.Handler {
	c := &captureHandler{sink: h.sink, attrs: h.attrs}
	if h.echo != nil {
		c.echo = h.echo.WithGroup(name)
	}
	return c
}

func (s *logSink) code(email string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.codes[email]
	return c, ok
}

func (s *logSink) errorLines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.errors)
}

// ---------------------------------------------------------------------------
// The server.

type server struct {
	t       *testing.T
	app     *app.App
	logs    *logSink
	api     *client.HTTP // no token
	base    string       // http://127.0.0.1:port
	ws      string       // 127.0.0.1:port
	probe   *user
	probeD  *dev
	barrier atomic.Int64
	users   atomic.Int64
}

// startServer runs the embedded default in a fresh data directory. ERROR
// log records fail the test (unless allowErrors).
func startServer(t *testing.T) *server {
	t.Helper()
	return startServerIn(t, t.TempDir(), false)
}

func startServerIn(t *testing.T, dataDir string, allowErrors bool) *server {
	t.Helper()
	return startServerWith(t, dataDir, "", allowErrors)
}

// startServerWith runs the server with extra YAML (backend sections) added
// to the embedded default's configuration.
func startServerWith(t *testing.T, dataDir, extraYAML string, allowErrors bool) *server {
	t.Helper()
	cfg, err := config.Parse([]byte("data_dir: "+dataDir+"\nlog:\n  level: debug\n"+extraYAML), nil)
	if err != nil {
		t.Fatal(err)
	}
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := newCapture()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, err := app.Start(ctx, cfg, slog.New(h), app.Listeners{API: apiLn, WebSocket: wsLn})
	if err != nil {
		t.Fatalf("app.Start: %v", err)
	}
	s := &server{t: t, app: a, logs: h.sink, base: "http://" + a.APIAddr(), ws: a.WSAddr()}
	s.api = &client.HTTP{Base: s.base}
	s.api.Timeout = time.Minute
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 30*time.Second)
		defer c()
		if err := a.Shutdown(sctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if errs := s.logs.errorLines(); len(errs) > 0 && !allowErrors {
			t.Errorf("the server logged %d error(s):\n%s", len(errs), strings.Join(errs, "\n"))
		}
	})
	return s
}

// ---------------------------------------------------------------------------
// Users and devices.

type user struct {
	ID      string
	Name    string
	Email   string
	Avatar  string
	Login   *client.LoginResponse
	api     *client.HTTP // with the access token
	s       *server
	devices []*dev
}

// newUser registers and logs in a user, reading the verification code from
// the server's WARN log line.
func (s *server) newUser(name string) *user {
	t := s.t
	t.Helper()
	ctx := context.Background()
	n := s.users.Add(1)
	email := fmt.Sprintf("%s.%d@example.com", strings.ToLower(name), n)
	if err := s.api.SendCode(ctx, email); err != nil {
		t.Fatalf("send code: %v", err)
	}
	code, ok := s.logs.code(email)
	if !ok {
		t.Fatalf("no verification code logged for %s", email)
	}
	avatar := fmt.Sprintf("avatar%d.png", n%5+1)
	const password = "s3cret!pass"
	u, err := s.api.Register(ctx, client.RegisterRequest{Avatar: avatar, Name: name, Password: password, Email: email, Code: code})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	if u.ID == "" || u.Account != u.ID || u.Name != name || u.Email == nil || *u.Email != email || u.Avatar != avatar {
		t.Fatalf("register %s: user %+v", name, u)
	}
	lr, err := s.api.Login(ctx, email, password)
	if err != nil {
		t.Fatalf("login %s: %v", name, err)
	}
	if lr.User.ID != u.ID || lr.Token == "" || lr.RefreshToken == "" || lr.WSAddr != "ws://"+s.ws+"/ws" {
		t.Fatalf("login %s: %+v (ws %s)", name, lr, s.ws)
	}
	return &user{ID: u.ID, Name: name, Email: email, Avatar: avatar, Login: lr, api: s.api.WithToken(lr.Token), s: s}
}

// dial connects the user on a platform with the login's ws_addr.
func (u *user) dial(platform int32) *dev {
	t := u.s.t
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFrame)
	defer cancel()
	c, err := client.Dial(ctx, u.Login.WSAddr, u.ID, platform, u.Login.Token)
	if err != nil {
		t.Fatalf("dial %s/%d: %v", u.Name, platform, err)
	}
	d := &dev{t: t, name: fmt.Sprintf("%s/%d", u.Name, platform), u: u, c: c}
	u.devices = append(u.devices, d)
	t.Cleanup(func() { _ = c.Close() })
	return d
}

// dev is one connection of a user, with the frames read but not yet
// consumed by the test.
type dev struct {
	t       *testing.T
	name    string
	u       *user
	c       *client.Conn
	backlog []wire.Msg
	local   atomic.Int64
}

// until reads until a frame matches; the frames before it stay in the backlog.
func (d *dev) until(what string, match func(*wire.Msg) bool) wire.Msg {
	d.t.Helper()
	var skipped []wire.Msg
	for i := 0; ; i++ {
		var m wire.Msg
		if i < len(d.backlog) {
			m = d.backlog[i]
			if match(&m) {
				d.backlog = append(d.backlog[:i:i], d.backlog[i+1:]...)
				return m
			}
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitFrame)
		m, err := d.c.Recv(ctx)
		cancel()
		if err != nil {
			d.t.Fatalf("%s: waiting for %s: %v (close code %d); skipped %s", d.name, what, err, d.c.CloseCode(), describe(skipped))
		}
		if match(&m) {
			d.backlog = append(d.backlog, skipped...)
			return m
		}
		skipped = append(skipped, m)
	}
}

// localID returns a fresh local_id for this device.
func (d *dev) localID() string {
	return fmt.Sprintf("%s-%s-%d", d.u.ID[:6], d.name, d.local.Add(1))
}

// send writes m (binary) after filling send_id, local_id and create_time
// when empty.
func (d *dev) send(m *wire.Msg) {
	d.t.Helper()
	if m.SendID == "" {
		m.SendID = d.u.ID
	}
	if m.LocalID == "" {
		m.LocalID = d.localID()
	}
	if m.CreateTime == 0 {
		m.CreateTime = time.Now().UnixMilli()
	}
	if err := d.c.Send(m); err != nil {
		d.t.Fatalf("%s: send: %v", d.name, err)
	}
}

// ack waits for the ACK of localID (other frames stay in the backlog).
func (d *dev) ack(localID string) wire.Msg {
	d.t.Helper()
	return d.until("the ACK of "+localID, func(m *wire.Msg) bool {
		return m.MsgType == wire.MsgTypeMsgRecResp && m.LocalID == localID
	})
}

// sendOK sends m and checks its successful ACK: msg_type 24, same local_id,
// a server_id, a send_time, no content, content_type kept.
func (d *dev) sendOK(m *wire.Msg) wire.Msg {
	d.t.Helper()
	d.send(m)
	a := d.ack(m.LocalID)
	if a.ContentType == wire.ContentError {
		d.t.Fatalf("%s: %s refused: %q", d.name, m.MsgType, a.Content)
	}
	if a.ServerID == "" || a.SendTime == 0 || len(a.Content) != 0 || a.ContentType != m.ContentType ||
		a.SendID != m.SendID || a.ReceiverID != m.ReceiverID || a.Seq != 0 {
		d.t.Fatalf("%s: ACK of %s: %s", d.name, m.MsgType, describe([]wire.Msg{a}))
	}
	return a
}

// quiet returns every frame the user's devices (all of them when devs is
// empty) received up to now, and nothing after: see the file comment. It
// empties the backlogs.
func (u *user) quiet(devs ...*dev) [][]wire.Msg {
	u.s.t.Helper()
	if len(devs) == 0 {
		devs = u.devices
	}
	return u.s.quiet(devs...)
}

// quiet is user.quiet for devices of any users: one barrier per user, all
// sent before any is awaited.
func (s *server) quiet(devs ...*dev) [][]wire.Msg {
	t := s.t
	t.Helper()
	if s.probe == nil {
		s.probe = s.newUser("Probe")
		s.probeD = s.probe.dial(wire.PlatformDesktop)
	}
	barriers := make(map[*user]string)
	for _, d := range devs {
		if _, ok := barriers[d.u]; ok {
			continue
		}
		id := fmt.Sprintf("barrier-%d", s.barrier.Add(1))
		barriers[d.u] = id
		s.probeD.send(&wire.Msg{ReceiverID: d.u.ID, LocalID: id, MsgType: wire.MsgTypeSingleCallInvite, ContentType: wire.ContentAudioCall})
	}
	for _, id := range barriers {
		s.probeD.ack(id)
	}
	s.probeD.backlog = nil
	out := make([][]wire.Msg, len(devs))
	for i, d := range devs {
		id := barriers[d.u]
		d.until("the barrier "+id, func(m *wire.Msg) bool {
			return m.MsgType == wire.MsgTypeSingleCallInvite && m.LocalID == id && m.SendID == s.probe.ID
		})
		// Barriers of earlier calls that named other devices of the user
		// are not frames under test.
		for _, m := range d.backlog {
			if !(m.MsgType == wire.MsgTypeSingleCallInvite && m.SendID == s.probe.ID) {
				out[i] = append(out[i], m)
			}
		}
		d.backlog = nil
	}
	return out
}

// quiet is user.quiet for one device.
func (d *dev) quiet() []wire.Msg {
	d.t.Helper()
	return d.u.quiet(d)[0]
}

func describe(ms []wire.Msg) string {
	if len(ms) == 0 {
		return "nothing"
	}
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "\n  {type %d ct %d send %.8s recv %.8s local %s server %s seq %d send_seq %d group %.8s content %q}",
			m.MsgType, m.ContentType, m.SendID, m.ReceiverID, m.LocalID, m.ServerID, m.Seq, m.SendSeq, m.GroupID, trunc(m.Content))
	}
	return b.String()
}

func trunc(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// seqsOf reads GET /message/seq of the user.
func (u *user) seqs() client.Seqs {
	u.s.t.Helper()
	sq, err := u.api.Seq(ctxT(u.s.t), u.ID)
	if err != nil {
		u.s.t.Fatalf("seq of %s: %v", u.Name, err)
	}
	return sq
}

// pull is POST /message for the user.
func (u *user) pull(sendStart, sendEnd, start, end int64) []wire.Msg {
	u.s.t.Helper()
	ms, err := u.api.Pull(ctxT(u.s.t), client.PullRequest{UserID: u.ID, SendStart: sendStart, SendEnd: sendEnd, Start: start, End: end})
	if err != nil {
		u.s.t.Fatalf("pull of %s: %v", u.Name, err)
	}
	return ms
}
