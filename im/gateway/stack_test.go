package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sandcat-im/sandcat/im/bus"
	"github.com/sandcat-im/sandcat/im/bus/localbus"
	"github.com/sandcat-im/sandcat/im/discovery"
	"github.com/sandcat-im/sandcat/im/gateway"
	"github.com/sandcat-im/sandcat/im/msgserver"
	"github.com/sandcat-im/sandcat/im/msgserver/msgtest"
	"github.com/sandcat-im/sandcat/im/wire"
)

// The stack is the whole single-process pipeline: a real HTTP server with the
// gateway, the embedded bus in a temporary file, the producer, the consumer
// and the pusher over the static discovery. Only the stores are in-memory
// doubles.
type stack struct {
	t       testing.TB
	dir     string
	srv     *httptest.Server
	gw      *gateway.Gateway
	pub     *swapPublisher
	bus     *localbus.Log
	inbox   *msgtest.Inbox
	history *msgtest.History
	seqs    *msgtest.Seqs
	groups  *msgtest.Groups
	blocks  *msgtest.Blocks
	members *msgserver.MemberCache
	pusher  *msgserver.Pusher
	log     *slog.Logger
	use     stores // what the pipeline is wired to (the doubles above unless stackOpts.real)

	stopConsumer context.CancelFunc
	consumerDone chan error
}

// swapPublisher lets a test replace the bus under the producer (a restart).
type swapPublisher struct{ p atomic.Pointer[localbus.Log] }

func (s *swapPublisher) Publish(ctx context.Context, key string, v []byte) error {
	return s.p.Load().Publish(ctx, key, v)
}

type stackOpts struct {
	cfg        gateway.Config
	noConsumer bool
	real       *stores // real stores instead of the in-memory doubles
}

// stores are what the pipeline keeps data in.
type stores struct {
	inbox   msgserver.Inbox
	history msgserver.History
	seqs    interface {
		msgserver.SendSeqs
		msgserver.RecvSeqs
	}
	groups msgserver.MemberSource
	blocks gateway.BlockChecker
}

func testLogger() *slog.Logger {
	if os.Getenv("SANDCAT_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newStack(t testing.TB, o stackOpts) *stack {
	t.Helper()
	s := &stack{t: t, dir: t.TempDir(), inbox: msgtest.NewInbox(), history: &msgtest.History{}, seqs: msgtest.NewSeqs(),
		groups: msgtest.NewGroups(), blocks: &msgtest.Blocks{}, pub: &swapPublisher{}, log: testLogger()}
	s.use = stores{inbox: s.inbox, history: s.history, seqs: s.seqs, groups: s.groups, blocks: s.blocks}
	if o.real != nil {
		s.use = *o.real
	}
	s.openBus()
	s.members = msgserver.NewMemberCache(s.use.groups, time.Minute, 0)
	cfg := o.cfg
	cfg.Verifier = msgtest.Tokens{}
	cfg.Sender = msgserver.NewProducer(s.pub, s.use.seqs)
	cfg.Members = s.members
	cfg.Blocks = s.use.blocks
	cfg.Logger = s.log
	gw, err := gateway.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.gw = gw
	static := discovery.NewStatic("gw-1", gw)
	s.pusher = msgserver.NewPusher(static, static, s.log)
	mux := http.NewServeMux()
	mux.Handle(gateway.Route, gw)
	s.srv = httptest.NewServer(mux)
	if !o.noConsumer {
		s.startConsumer(s.pusher)
	}
	t.Cleanup(func() {
		gw.Close()
		s.srv.Close()
		s.stop()
		_ = s.bus.Close()
	})
	return s
}

func (s *stack) openBus() {
	l, err := localbus.Open(context.Background(), filepath.Join(s.dir, "bus.db"),
		localbus.Options{Logger: s.log, MinBackoff: time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		s.t.Fatal(err)
	}
	s.bus = l
	s.pub.p.Store(l)
}

func (s *stack) consumer(p msgserver.Pushes) *msgserver.Consumer {
	c, err := msgserver.NewConsumer(msgserver.ConsumerConfig{Bus: s.bus, Inbox: s.use.inbox, History: s.use.history,
		Seqs: s.use.seqs, Members: s.members, Pusher: p, Logger: s.log})
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

func (s *stack) startConsumer(p msgserver.Pushes) {
	s.runConsumer(func(ctx context.Context) error { return s.consumer(p).Run(ctx) })
}

func (s *stack) runConsumer(run func(ctx context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	s.stopConsumer = cancel
	s.consumerDone = make(chan error, 1)
	go func() { s.consumerDone <- run(ctx) }()
}

func (s *stack) stop() {
	if s.stopConsumer != nil {
		s.stopConsumer()
		<-s.consumerDone
		s.stopConsumer = nil
	}
}

func (s *stack) url(user string, platform int32, token string) string {
	return "ws" + strings.TrimPrefix(s.srv.URL, "http") + fmt.Sprintf("/ws/%s/conn/%s/%d/%s", user, user, platform, token)
}

// client is a native-client stand-in: gorilla/websocket exchanging bincode.
type client struct {
	t        testing.TB
	ws       *websocket.Conn
	user     string
	platform int32
	in       chan wire.Msg
	done     chan struct{}
	err      error // why the read loop ended (after done)
	pings    atomic.Int64
	wmu      sync.Mutex
	drop     bool         // count received frames instead of queueing them
	received atomic.Int64 // frames received while drop is set
}

func (s *stack) dial(user string, platform int32) *client {
	s.t.Helper()
	return s.dialOpt(user, platform, false)
}

func (s *stack) dialOpt(user string, platform int32, drop bool) *client {
	s.t.Helper()
	c, err := s.tryDial(user, platform, "tok-"+user, true, drop)
	if err != nil {
		s.t.Fatalf("dial %s/%d: %v", user, platform, err)
	}
	return c
}

func (s *stack) tryDial(user string, platform int32, token string, read bool, drop ...bool) (*client, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	ws, resp, err := d.Dial(s.url(user, platform, token), nil)
	if err != nil {
		return nil, err
	}
	_ = resp.Body.Close()
	c := &client{t: s.t, ws: ws, user: user, platform: platform, in: make(chan wire.Msg, 4096), done: make(chan struct{})}
	c.drop = len(drop) > 0 && drop[0]
	ws.SetPingHandler(func(data string) error {
		c.pings.Add(1)
		c.wmu.Lock()
		defer c.wmu.Unlock()
		return ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(5*time.Second))
	})
	s.t.Cleanup(func() { _ = ws.Close() })
	if read {
		go c.readLoop()
	}
	// The connection is registered before the handler returns, but the client
	// may see the 101 first: wait until the gateway lists it.
	if read {
		s.waitOnline(user, platform)
	}
	return c, nil
}

func (s *stack) waitOnline(user string, platform int32) {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		for _, ci := range s.gw.Connections() {
			if ci.UserID == user && ci.Platform == platform {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	s.t.Fatalf("%s/%d never registered", user, platform)
}

func (c *client) readLoop() {
	defer close(c.done)
	for {
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			c.err = err
			return
		}
		if typ != websocket.BinaryMessage {
			c.err = fmt.Errorf("server sent frame type %d", typ)
			return
		}
		m, err := wire.DecodeMsg(data)
		if err != nil {
			c.err = err
			return
		}
		if c.drop {
			c.received.Add(1)
			continue
		}
		c.in <- m
	}
}

func (c *client) send(m *wire.Msg) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(websocket.BinaryMessage, m.MarshalBincode()); err != nil {
		c.t.Fatalf("%s: write: %v", c.user, err)
	}
}

func (c *client) sendRaw(typ int, data []byte) {
	c.t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.ws.WriteMessage(typ, data); err != nil {
		c.t.Fatalf("%s: write: %v", c.user, err)
	}
}

// next returns the next frame the client received.
func (c *client) next() wire.Msg {
	c.t.Helper()
	select {
	case m := <-c.in:
		return m
	case <-c.done:
		select {
		case m := <-c.in:
			return m
		default:
		}
		c.t.Fatalf("%s/%d: connection ended: %v", c.user, c.platform, c.err)
	case <-time.After(20 * time.Second):
		c.t.Fatalf("%s/%d: nothing received", c.user, c.platform)
	}
	return wire.Msg{}
}

// closed waits for the connection to end and returns the close error.
func (c *client) closed() error {
	c.t.Helper()
	select {
	case <-c.done:
		return c.err
	case <-time.After(20 * time.Second):
		c.t.Fatalf("%s/%d: connection did not end", c.user, c.platform)
	}
	return nil
}

func closeCode(err error) int {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		return ce.Code
	}
	return -1
}

var localIDs atomic.Int64

func newLocalID() string { return fmt.Sprintf("local-%d", localIDs.Add(1)) }

func text(from, to, s string) *wire.Msg {
	return &wire.Msg{SendID: from, ReceiverID: to, LocalID: newLocalID(), MsgType: wire.MsgTypeSingleMsg,
		ContentType: wire.ContentText, Content: []byte(s), CreateTime: time.Now().UnixMilli()}
}

func groupText(from, gid, s string) *wire.Msg {
	return &wire.Msg{SendID: from, ReceiverID: gid, GroupID: gid, LocalID: newLocalID(), MsgType: wire.MsgTypeGroupMsg,
		ContentType: wire.ContentText, Content: []byte(s), CreateTime: time.Now().UnixMilli()}
}

// Compile-time checks that the real pieces fit the interfaces of the others.
var (
	_ gateway.Sender         = (*msgserver.Producer)(nil)
	_ gateway.Membership     = (*msgserver.MemberCache)(nil)
	_ discovery.LocalGateway = (*gateway.Gateway)(nil)
	_ bus.Publisher          = (*localbus.Log)(nil)
)
