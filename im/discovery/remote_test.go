package discovery_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/hashicorp/consul/api"
	"github.com/sandcat-im/sandcat/im/discovery"
	"github.com/sandcat-im/sandcat/im/gateway"
	"github.com/sandcat-im/sandcat/im/msgserver"
	"github.com/sandcat-im/sandcat/im/msgserver/msgtest"
	"github.com/sandcat-im/sandcat/im/wire"
)

const pushSecret = "0123456789abcdef0123456789abcdef"

// remoteGW is a gateway as its own process would run it: a gateway.Gateway
// behind a client-facing WebSocket server and an internal push server,
// registered in Consul as sandcat-gateway and sandcat-gateway-push.
type remoteGW struct {
	t        *testing.T
	id       string
	gw       *gateway.Gateway
	ws       *httptest.Server
	internal *httptest.Server
	dereg    func(context.Context) error
	fail     atomic.Bool // answer 503 (as a gateway shutting down would)

	mu      sync.Mutex
	users   []string // the recipients of every batch received, in order
	batches [][2]int // deliveries and messages' bytes of every batch received
}

type nopSender struct{}

func (nopSender) Send(context.Context, *wire.Msg, []string) error { return nil }

func startGateway(t *testing.T, c *api.Client) *remoteGW {
	t.Helper()
	r := newRegistrar(t, c, discovery.RegistrarOptions{Version: "test"})
	g := &remoteGW{t: t, id: r.Instance()}
	gw, err := gateway.New(gateway.Config{Verifier: msgtest.Tokens{}, Sender: nopSender{},
		Members: msgserver.NewMemberCache(msgtest.NewGroups(), time.Minute, 0), Blocks: &msgtest.Blocks{},
		Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	g.gw = gw
	mux := http.NewServeMux()
	mux.Handle(gateway.Route, gw)
	g.ws = httptest.NewServer(mux)
	ph, err := gateway.NewPushHandler(gw, gateway.PushHandlerOptions{GatewayID: g.id, Secret: pushSecret})
	if err != nil {
		t.Fatal(err)
	}
	// A spy in front of the real handler records what reaches this gateway.
	g.internal = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if g.fail.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		body, _ := io.ReadAll(req.Body)
		if ds, err := gateway.DecodePushBatch(body); err == nil {
			g.mu.Lock()
			size := 0
			for _, d := range ds {
				g.users = append(g.users, d.UserID)
				size += d.Msg.BincodeSize()
			}
			g.batches = append(g.batches, [2]int{len(ds), size})
			g.mu.Unlock()
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		ph.ServeHTTP(w, req)
	}))
	wsHost := strings.TrimPrefix(g.ws.URL, "http://")
	register(t, r, discovery.Registration{Service: discovery.ServiceGateway, Address: wsHost,
		Meta: map[string]string{discovery.MetaGatewayID: g.id, discovery.MetaWSAddr: "ws://" + wsHost + "/ws"}})
	g.dereg = register(t, r, discovery.Registration{Service: discovery.ServiceGatewayPush,
		Address: g.internal.Listener.Addr().String(), Meta: map[string]string{discovery.MetaGatewayID: g.id}})
	t.Cleanup(func() {
		gw.Close()
		g.ws.Close()
		g.internal.Close()
	})
	return g
}

func (g *remoteGW) received() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.users)
}

// wsClient is a native-client stand-in connected to one gateway.
type wsClient struct {
	t    *testing.T
	name string
	in   chan wire.Msg
	done chan struct{}
}

func (g *remoteGW) dial(user string, platform int32) *wsClient {
	g.t.Helper()
	url := "ws" + strings.TrimPrefix(g.ws.URL, "http") + fmt.Sprintf("/ws/%s/conn/%s/%d/tok-%s", user, user, platform, user)
	ws, resp, err := (&websocket.Dialer{HandshakeTimeout: 10 * time.Second}).Dial(url, nil)
	if err != nil {
		g.t.Fatalf("dial %s: %v", user, err)
	}
	_ = resp.Body.Close()
	c := &wsClient{t: g.t, name: fmt.Sprintf("%s/%d@%s", user, platform, g.id), in: make(chan wire.Msg, 1024), done: make(chan struct{})}
	go func() {
		defer close(c.done)
		for {
			_, data, err := ws.ReadMessage()
			if err != nil {
				return
			}
			if m, err := wire.DecodeMsg(data); err == nil {
				c.in <- m
			}
		}
	}()
	g.t.Cleanup(func() { _ = ws.Close(); <-c.done })
	waitFor(g.t, c.name+" to be registered", func() bool {
		return slices.Contains(g.gw.Connections(), gateway.ConnInfo{UserID: user, Platform: platform})
	})
	return c
}

// next returns the next message the client received.
func (c *wsClient) next() wire.Msg {
	c.t.Helper()
	select {
	case m := <-c.in:
		return m
	case <-time.After(30 * time.Second):
		c.t.Fatalf("%s: nothing received", c.name)
	}
	return wire.Msg{}
}

// expect checks that the next messages are exactly these contents, in order.
func (c *wsClient) expect(contents ...string) {
	c.t.Helper()
	for _, want := range contents {
		if got := c.next(); string(got.Content) != want {
			c.t.Fatalf("%s: got %q, want %q", c.name, got.Content, want)
		}
	}
}

// routes stands in for the online routes (im/cache.Routes in production):
// which gateways hold which user.
type routes map[string][]string

func (r routes) Locate(_ context.Context, users []string) (map[string][]string, error) {
	out := map[string][]string{}
	for _, u := range users {
		if gws := r[u]; len(gws) > 0 {
			out[u] = gws
		}
	}
	return out, nil
}

func msgTo(user, content string) msgserver.Delivery {
	return msgserver.Delivery{UserID: user, Msg: &wire.Msg{SendID: "sys", ReceiverID: user, MsgType: wire.MsgTypeSingleMsg,
		ContentType: wire.ContentText, Content: []byte(content), ServerID: "srv-" + content}}
}

func newRemote(t *testing.T, w *discovery.Watcher, o discovery.RemoteOptions) *discovery.Remote {
	t.Helper()
	o.Gateways = w
	if o.Secret == "" {
		o.Secret = pushSecret
	}
	o.Logger = testLogger()
	r, err := discovery.NewRemote(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// The pusher, over the Remote client, delivers each message to the gateways
// that hold the recipient's connections, and only to those.
func TestRemotePushesOnlyToTheHoldingGateways(t *testing.T) {
	t.Parallel()
	c := startConsul(t)
	a, b := startGateway(t, c), startGateway(t, c)
	alice := a.dial("alice", wire.PlatformDesktop)
	bob := b.dial("bob", wire.PlatformDesktop)
	carolDesk := a.dial("carol", wire.PlatformDesktop)
	carolMob := b.dial("carol", wire.PlatformMobile)

	w := watch(t, c, discovery.ServiceGatewayPush)
	waitFor(t, "both push endpoints", func() bool { return len(w.Instances()) == 2 })
	remote := newRemote(t, w, discovery.RemoteOptions{})
	rt := routes{"alice": {a.id}, "bob": {b.id}, "carol": {a.id, b.id}}
	p := msgserver.NewPusher(rt, remote, testLogger())

	ctx := context.Background()
	p.Push(ctx, []msgserver.Delivery{msgTo("alice", "m1"), msgTo("bob", "m2"), msgTo("carol", "m3"), msgTo("dave", "m4")})
	alice.expect("m1")
	bob.expect("m2")
	carolDesk.expect("m3")
	carolMob.expect("m3")

	// A group message: one copy per member, each with its own seq.
	var ds []msgserver.Delivery
	members := []string{"alice", "bob", "carol"}
	for i, u := range members {
		m := &wire.Msg{SendID: "owner", ReceiverID: "g1", GroupID: "g1", MsgType: wire.MsgTypeGroupMsg,
			Content: []byte("group"), ServerID: "srv-group", Seq: int64(10 + i)}
		ds = append(ds, msgserver.Delivery{UserID: u, Msg: m})
	}
	p.Push(ctx, ds)
	for i, cl := range []*wsClient{alice, bob, carolDesk, carolMob} {
		want := int64(10 + min(i, 2))
		if got := cl.next(); string(got.Content) != "group" || got.Seq != want || got.GroupID != "g1" {
			t.Fatalf("%s got %q seq %d group %q, want seq %d", cl.name, got.Content, got.Seq, got.GroupID, want)
		}
	}

	// Each gateway got exactly the deliveries of the users it holds.
	if got, want := a.received(), []string{"alice", "carol", "alice", "carol"}; !slices.Equal(got, want) {
		t.Fatalf("gateway a received deliveries for %v, want %v", got, want)
	}
	if got, want := b.received(), []string{"bob", "carol", "bob", "carol"}; !slices.Equal(got, want) {
		t.Fatalf("gateway b received deliveries for %v, want %v", got, want)
	}
	// The counters move when the gateway has answered, after the clients
	// may already have the messages.
	waitFor(t, "the counters", func() bool { return remote.Stats().Delivered == 8 })
	if s := remote.Stats(); s.Dropped != 0 || s.Failures != 0 || s.Batches > 4 {
		t.Fatalf("stats %+v", s)
	}
}

// A dead gateway (still registered, nobody listening) and a hung one
// (accepts, never answers) cost the others nothing; pushes to them fail
// with clear errors, and a gateway that leaves Consul is "gone".
func TestRemoteDeadGatewayDoesNotBlockOthers(t *testing.T) {
	t.Parallel()
	c := startConsul(t)
	live, dead := startGateway(t, c), startGateway(t, c)
	alice := live.dial("alice", wire.PlatformDesktop)
	dead.internal.Close() // the process died; its registration has not lapsed yet

	// A hung gateway: its listener accepts and never answers.
	hung, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			conn, err := hung.Accept()
			if err != nil {
				return
			}
			accepted <- conn
		}
	}()
	t.Cleanup(func() {
		_ = hung.Close()
		for len(accepted) > 0 {
			_ = (<-accepted).Close()
		}
	})
	hr := newRegistrar(t, c, discovery.RegistrarOptions{})
	register(t, hr, discovery.Registration{Service: discovery.ServiceGatewayPush, Address: hung.Addr().String(),
		Meta: map[string]string{discovery.MetaGatewayID: "gw-hung"}})

	w := watch(t, c, discovery.ServiceGatewayPush)
	waitFor(t, "three push endpoints", func() bool { return len(w.Instances()) == 3 })
	// A timeout far beyond the test: the hung request stays in flight.
	remote := newRemote(t, w, discovery.RemoteOptions{Timeout: 10 * time.Minute})
	ctx := context.Background()

	if err := remote.Push(ctx, "gw-hung", []msgserver.Delivery{msgTo("x", "to the hung gateway")}); err != nil {
		t.Fatalf("push to the hung gateway: %v", err)
	}
	var hungConn net.Conn
	select {
	case hungConn = <-accepted:
		accepted <- hungConn // for the cleanup
	case <-time.After(30 * time.Second):
		t.Fatal("the push to the hung gateway never connected")
	}

	// Pushes to the dead gateway fail once the first request has failed;
	// meanwhile the live gateway gets every message at once.
	var deadErr error
	for i := 0; ; i++ {
		content := fmt.Sprintf("live-%d", i)
		if err := remote.Push(ctx, live.id, []msgserver.Delivery{msgTo("alice", content)}); err != nil {
			t.Fatalf("push to the live gateway: %v", err)
		}
		alice.expect(content)
		deadErr = remote.Push(ctx, dead.id, []msgserver.Delivery{msgTo("bob", content)})
		if deadErr != nil {
			break
		}
		if i == 1000 {
			t.Fatal("pushes to a dead gateway keep succeeding")
		}
	}
	if !errors.Is(deadErr, discovery.ErrGatewayDown) || !strings.Contains(deadErr.Error(), "connection refused") {
		t.Fatalf("push to the dead gateway: %v, want ErrGatewayDown (connection refused)", deadErr)
	}
	if s := remote.Stats(); s.Failures == 0 || s.Dropped == 0 {
		t.Fatalf("stats %+v: the failure is not counted", s)
	}

	// An id nobody registered: gone, at once.
	if err := remote.Push(ctx, "gw-nobody", []msgserver.Delivery{msgTo("x", "y")}); !errors.Is(err, discovery.ErrGatewayGone) {
		t.Fatalf("push to an unknown gateway: %v, want ErrGatewayGone", err)
	}
	// The dead gateway's registration goes (deregistered, or reaped after
	// its TTL): gone.
	if err := dead.dereg(ctx); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the dead gateway to be gone", func() bool {
		return errors.Is(remote.Push(ctx, dead.id, []msgserver.Delivery{msgTo("bob", "z")}), discovery.ErrGatewayGone)
	})

	// All the while the hung request is still in flight, and the live
	// gateway still gets its messages.
	if err := remote.Push(ctx, live.id, []msgserver.Delivery{msgTo("alice", "still")}); err != nil {
		t.Fatal(err)
	}
	alice.expect("still")
	remote.Close() // cancels the hung request
	if err := remote.Push(ctx, live.id, []msgserver.Delivery{msgTo("alice", "after")}); !errors.Is(err, discovery.ErrRemoteClosed) {
		t.Fatalf("push after Close: %v", err)
	}
}

// An address that answers as another gateway (the registered one is gone
// and another process took its port), and a push secret that differs: the
// deliveries are refused, nobody gets them, and the errors say why.
func TestRemoteRefusedPushes(t *testing.T) {
	t.Parallel()
	c := startConsul(t)
	g := startGateway(t, c)
	alice := g.dial("alice", wire.PlatformDesktop)
	r := newRegistrar(t, c, discovery.RegistrarOptions{})
	register(t, r, discovery.Registration{Service: discovery.ServiceGatewayPush, Address: g.internal.Listener.Addr().String(),
		Meta: map[string]string{discovery.MetaGatewayID: "gw-previous-owner"}})
	w := watch(t, c, discovery.ServiceGatewayPush)
	waitFor(t, "two push endpoints", func() bool { return len(w.Instances()) == 2 })
	ctx := context.Background()

	tests := []struct {
		name, gatewayID, secret, reason string
		is                              error
	}{
		{"misdirected", "gw-previous-owner", pushSecret, "another gateway", discovery.ErrGatewayGone},
		{"wrong secret", g.id, "not-the-secret", "push secrets", discovery.ErrGatewayDown},
	}
	for _, tt := range tests {
		remote := newRemote(t, w, discovery.RemoteOptions{Secret: tt.secret})
		var err error
		waitFor(t, tt.name+" to be reported", func() bool {
			err = remote.Push(ctx, tt.gatewayID, []msgserver.Delivery{msgTo("alice", tt.name)})
			return err != nil
		})
		if !errors.Is(err, discovery.ErrGatewayDown) || !errors.Is(err, tt.is) || !strings.Contains(err.Error(), tt.reason) {
			t.Errorf("%s: %v, want ErrGatewayDown, %v, %q", tt.name, err, tt.is, tt.reason)
		}
	}
	// Barrier: none of the refused messages reached alice.
	good := newRemote(t, w, discovery.RemoteOptions{})
	if err := good.Push(ctx, g.id, []msgserver.Delivery{msgTo("alice", "barrier")}); err != nil {
		t.Fatal(err)
	}
	alice.expect("barrier")
}

// A gateway that failed is retried after a delay and then served again.
func TestRemoteRecovers(t *testing.T) {
	t.Parallel()
	c := startConsul(t)
	g := startGateway(t, c)
	alice := g.dial("alice", wire.PlatformDesktop)
	w := watch(t, c, discovery.ServiceGatewayPush)
	waitFor(t, "the push endpoint", func() bool { return len(w.Instances()) == 1 })
	remote := newRemote(t, w, discovery.RemoteOptions{})
	ctx := context.Background()

	g.fail.Store(true)
	var err error
	waitFor(t, "the failure to be reported", func() bool {
		err = remote.Push(ctx, g.id, []msgserver.Delivery{msgTo("alice", "lost")})
		return err != nil
	})
	if !errors.Is(err, discovery.ErrGatewayDown) || !strings.Contains(err.Error(), "503") {
		t.Fatalf("push to a failing gateway: %v", err)
	}
	g.fail.Store(false)
	waitFor(t, "pushes to be accepted again", func() bool {
		return remote.Push(ctx, g.id, []msgserver.Delivery{msgTo("alice", "back")}) == nil
	})
	alice.expect("back") // the lost ones were dropped, not replayed
}

// Big backlogs go out in bounded batches, in order.
func TestRemoteSplitsBatches(t *testing.T) {
	t.Parallel()
	c := startConsul(t)
	g := startGateway(t, c)
	alice := g.dial("alice", wire.PlatformDesktop)
	w := watch(t, c, discovery.ServiceGatewayPush)
	waitFor(t, "the push endpoint", func() bool { return len(w.Instances()) == 1 })
	const maxBatch, maxBytes = 7, 1500
	remote := newRemote(t, w, discovery.RemoteOptions{MaxBatch: maxBatch, MaxBatchBytes: maxBytes})
	ctx := context.Background()
	// One backlog: 50 small messages (cut by the count bound), then 50
	// alternating small and big ones (cut by the byte bound).
	var want []string
	var ds []msgserver.Delivery
	for i := range 100 {
		content := fmt.Sprintf("%03d", i)
		if i >= 50 && i%2 == 1 {
			content += strings.Repeat("x", 300)
		}
		want = append(want, content)
		ds = append(ds, msgTo("alice", content))
	}
	if err := remote.Push(ctx, g.id, ds); err != nil {
		t.Fatal(err)
	}
	alice.expect(want...)
	waitFor(t, "the counters", func() bool { return remote.Stats().Delivered == 100 })
	if s := remote.Stats(); s.Dropped != 0 {
		t.Fatalf("stats %+v", s)
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	byCount, byBytes := false, false
	for i, b := range g.batches {
		if b[0] > maxBatch || b[1] > maxBytes {
			t.Fatalf("a batch of %d deliveries and %d bytes (bounds %d, %d)", b[0], b[1], maxBatch, maxBytes)
		}
		byCount = byCount || b[0] == maxBatch
		byBytes = byBytes || (b[0] < maxBatch && i < len(g.batches)-1)
	}
	if !byCount || !byBytes {
		t.Fatalf("batches %v: want some cut by the count bound and some by the byte bound", g.batches)
	}
}

func TestNewRemoteChecks(t *testing.T) {
	if _, err := discovery.NewRemote(discovery.RemoteOptions{Secret: "x"}); err == nil {
		t.Fatal("NewRemote without a watcher accepted")
	}
}
