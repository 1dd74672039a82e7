// Package gateway is the WebSocket gateway the native clients connect to:
// GET /ws/{user_id}/conn/{pointer_id}/{platform}/{token} (sandcat-wire.md §3).
//
// Each connection has one reader goroutine, which decodes frames (binary =
// bincode Msg, text = JSON Msg) and runs the send path for them in order,
// and one writer goroutine, which writes everything queued for the
// connection in one batch. Connections of different users never wait for
// each other (no global loop, bug B13 fixed). The send queue of a connection
// is bounded in bytes; a client that does not keep up is disconnected, never
// blocking the pusher or other users.
//
// Send path of a frame: the sender must be the connection's user; a group
// type needs the sender to be a member; a single type delivered to a receiver
// is refused when the receiver blocked the sender; then Sender.Send makes it
// durable, and only then the ACK (MsgRecResp) is written, to the sending
// connection only (bug B7 fixed). A refused or failed frame gets an Error ACK
// (content_type 9, the reason in content) and reaches nobody.
//
// Every accepted frame gets an ACK, as in the original, including signalling
// and Read frames that consume no send seq (B15): their ACK carries send_seq
// 0, which the client's gap detection ignores (it only pulls when an ACK's
// send_seq is above its own). The client needs the ACK to mark the frame sent.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/im/msgserver"
	"github.com/sandcat-im/sandcat/im/wire"
)

// TokenVerifier checks an access token and returns its user id (im/auth).
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (userID string, err error)
}

// Sender makes a message durable in the pipeline (msgserver.Producer): it
// sets ServerID, SendTime and SendSeq on m.
type Sender interface {
	Send(ctx context.Context, m *wire.Msg, to []string) error
}

// Membership answers group membership (msgserver.MemberCache).
type Membership interface {
	IsMember(ctx context.Context, groupID, userID string) (bool, error)
}

// BlockChecker answers whether a user blocked another (storage.Friends).
type BlockChecker interface {
	IsBlocked(ctx context.Context, by, whom string) (bool, error)
}

// Config wires a Gateway. Verifier, Sender, Members and Blocks are required;
// zero durations and sizes take the defaults.
type Config struct {
	Verifier TokenVerifier
	Sender   Sender
	Members  Membership
	Blocks   BlockChecker
	Logger   *slog.Logger

	// PingInterval: the server pings every connection this often (default 30 s).
	PingInterval time.Duration
	// ReadTimeout: a connection that sends nothing (not even a pong) for
	// this long is dropped (default 2 × PingInterval).
	ReadTimeout time.Duration
	// WriteTimeout bounds one batch write (default 10 s).
	WriteTimeout time.Duration
	// SendTimeout bounds Sender.Send for one frame (default 10 s).
	SendTimeout time.Duration
	// SendQueueBytes bounds what may wait for a slow client (default 1 MiB).
	SendQueueBytes int
	// MaxFrameBytes is the largest frame accepted from a client (default 1 MiB).
	MaxFrameBytes int
	// ReadBufferSize is gorilla's per-connection read buffer (default 1 KiB).
	ReadBufferSize int
	// ID names this gateway instance in the online routes (and in the push
	// link's addressing); required with Routes.
	ID string
	// Routes, when set, records which gateway holds which connection (the
	// Redis online routes of a multi-process deployment).
	Routes RouteTable
	// CheckOrigin filters the Origin header; nil accepts every origin (the
	// web client is served from another origin, and the token in the path
	// authenticates).
	CheckOrigin func(r *http.Request) bool
}

func (c *Config) defaults() {
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 30 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 2 * c.PingInterval
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 10 * time.Second
	}
	if c.SendQueueBytes <= 0 {
		c.SendQueueBytes = 1 << 20
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = 1 << 20
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = 1 << 10
	}
	if c.CheckOrigin == nil {
		c.CheckOrigin = func(*http.Request) bool { return true }
	}
}

// Gateway holds the connections of one gateway instance.
type Gateway struct {
	cfg      Config
	log      *slog.Logger
	upgrader websocket.Upgrader
	reg      *registry
	bufs     bufPool
	stats    counters
	closed   atomic.Bool
	base     context.Context // of Sender.Send calls: not cancelled by a disconnect
	scratch  sync.Pool       // *[]byte for encoding a delivery once
	recent   *recentSends    // ACKs by (user, local_id): retried frames are not stored twice
}

// New returns a Gateway.
func New(cfg Config) (*Gateway, error) {
	if cfg.Verifier == nil || cfg.Sender == nil || cfg.Members == nil || cfg.Blocks == nil {
		return nil, errors.New("gateway: Verifier, Sender, Members and Blocks are required")
	}
	if cfg.Routes != nil && cfg.ID == "" {
		return nil, errors.New("gateway: ID is required with Routes")
	}
	cfg.defaults()
	g := &Gateway{cfg: cfg, log: cfg.Logger, reg: newRegistry(), base: context.Background(),
		recent: newRecentSends(2*time.Minute, 100_000)}
	g.upgrader = websocket.Upgrader{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   cfg.ReadBufferSize,
		WriteBufferSize:  256, // never used for writing (see frame.go); the handshake has its own buffer
		WriteBufferPool:  &sync.Pool{},
		CheckOrigin:      cfg.CheckOrigin,
	}
	return g, nil
}

// Route is the path pattern to mount ServeHTTP on (net/http ServeMux syntax).
const Route = "GET /ws/{user_id}/conn/{pointer_id}/{platform}/{token}"

// ServeHTTP upgrades GET /ws/{user_id}/conn/{pointer_id}/{platform}/{token}.
// The path is parsed from its last five segments, so any router (and any
// prefix) works. A bad token, or a token of another user, gets Close 4002
// "knock off" right after the upgrade.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, platform, token, ok := parsePath(r.URL.Path)
	if !ok {
		httpx.WriteError(w, r, g.log, httpx.Errorf(http.StatusNotFound, httpx.KindPathParsing,
			"expected /ws/{user_id}/conn/{pointer_id}/{platform}/{token}"))
		return
	}
	if g.closed.Load() {
		httpx.WriteError(w, r, g.log, httpx.Errorf(http.StatusServiceUnavailable, httpx.KindServiceNotFound,
			"gateway is shutting down"))
		return
	}
	tokenUser, verr := g.cfg.Verifier.Verify(r.Context(), token)
	var c *conn
	if verr == nil && tokenUser == user {
		// Registered before the handshake completes: once the client sees
		// the 101 it may act (send a request whose notice is pushed at
		// once), and that push must find this connection. Frames queue
		// until the writer starts.
		c = newConn(g, user, platform)
		g.stats.connections.Add(1)
		if old := g.reg.add(c); old != nil {
			g.stats.knockedOff.Add(1)
			old.closeWith(CloseKnockOff, knockOffReason)
		}
	}
	ws, err := g.upgrader.Upgrade(w, r, nil)
	if err != nil {
		if c != nil {
			g.reg.remove(c)
			g.stats.connections.Add(-1)
		}
		return // the upgrader answered the HTTP error
	}
	if c == nil {
		g.stats.rejected.Add(1)
		g.log.Info("gateway: connection refused", "user", user, "token_user", tokenUser, "err", verr)
		nc := ws.NetConn()
		_ = nc.SetWriteDeadline(time.Now().Add(g.cfg.WriteTimeout))
		_, _ = nc.Write(closeFrame(CloseBadToken, knockOffReason))
		_ = nc.Close()
		return
	}
	if !c.attach(ws) { // ended (e.g. knocked off) before the handshake completed
		g.reg.remove(c)
		g.stats.connections.Add(-1)
		return
	}
	g.stats.accepted.Add(1)
	g.routeAdded(c)
	if g.closed.Load() { // Close ran while we registered
		c.closeWith(CloseGoingAway, "server shutting down")
	}
	go c.writeLoop()
	go c.readLoop()
	// Return now: net/http's per-request buffers become garbage.
}

// parsePath takes {user_id}/conn/{pointer_id}/{platform}/{token} from the end
// of the path. Invalid platforms mean Desktop.
func parsePath(p string) (user string, platform int32, token string, ok bool) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	if len(parts) < 5 {
		return "", 0, "", false
	}
	parts = parts[len(parts)-5:]
	if parts[1] != "conn" || parts[0] == "" || parts[4] == "" {
		return "", 0, "", false
	}
	n, err := strconv.ParseInt(parts[3], 10, 32)
	if err != nil {
		n = int64(wire.PlatformDesktop)
	}
	return parts[0], normPlatform(int32(n)), parts[4], true
}

// Online reports whether the user has a connection on this gateway.
func (g *Gateway) Online(userID string) bool {
	_, ok := g.reg.get(userID)
	return ok
}

// Push writes one delivery to the user's connections (the echo copy skips
// the connection on d.Msg.Platform). It never blocks.
func (g *Gateway) Push(userID string, d msgserver.Delivery) {
	d.UserID = userID
	g.Deliver([]msgserver.Delivery{d})
}

// Deliver writes deliveries to their users' connections, in order. Each
// message is encoded once for all of a user's devices. It never blocks.
func (g *Gateway) Deliver(ds []msgserver.Delivery) {
	var bp *[]byte
	for i := range ds {
		d := &ds[i]
		if d.Msg == nil {
			continue
		}
		conns, ok := g.reg.get(d.UserID)
		if !ok {
			// Routed here, but the user has no connection (any more): the
			// message stays pullable. A steady count means wrong routes.
			g.stats.unrouted.Add(1)
			continue
		}
		if bp == nil {
			bp = g.getScratch()
		}
		*bp = wire.AppendMsg((*bp)[:0], d.Msg)
		for _, c := range conns {
			if c == nil || (d.Echo && c.platform == normPlatform(d.Msg.Platform)) {
				continue
			}
			if c.send(opBinary, *bp) {
				g.stats.deliveries.Add(1)
			}
		}
	}
	if bp != nil {
		g.scratch.Put(bp)
	}
}

func (g *Gateway) getScratch() *[]byte {
	if bp, ok := g.scratch.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, 1024)
	return &b
}

// writeMsg queues m on one connection.
func (g *Gateway) writeMsg(c *conn, m *wire.Msg) {
	bp := g.getScratch()
	*bp = wire.AppendMsg((*bp)[:0], m)
	c.send(opBinary, *bp)
	g.scratch.Put(bp)
}

// Close refuses new connections and closes every connection with 1001.
// Frames being sent finish (bounded by SendTimeout).
func (g *Gateway) Close() {
	if g.closed.Swap(true) {
		return
	}
	for _, c := range g.reg.all() {
		c.closeWith(CloseGoingAway, "server shutting down")
	}
}

// Drain waits, after Close, until every connection has ended and its
// route was removed from Config.Routes. A process stopping calls it before it
// closes what the route table uses (Redis): otherwise the removals fail and
// the routes of a gateway that is gone linger until they expire. It returns
// an error wrapping ctx's when connections remain as ctx ends.
func (g *Gateway) Drain(ctx context.Context) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		n := g.stats.connections.Load()
		if n <= 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("gateway: %d connections still open: %w", n, ctx.Err())
		case <-t.C:
		}
	}
}

// ConnInfo describes a live connection (for debugging).
type ConnInfo struct {
	UserID   string `json:"user_id"`
	Platform int32  `json:"platform"`
}

// Connections lists the live connections.
func (g *Gateway) Connections() []ConnInfo {
	cs := g.reg.all()
	out := make([]ConnInfo, len(cs))
	for i, c := range cs {
		out[i] = ConnInfo{UserID: c.user, Platform: c.platform}
	}
	return out
}

// Stats is a snapshot of the gateway's counters (for metrics).
type Stats struct {
	Connections  int64 // open now
	Accepted     int64 // connections accepted
	Rejected     int64 // closed with 4002 (bad token)
	KnockedOff   int64 // closed with 4001 (replaced)
	SlowClosed   int64 // dropped because the send queue was full
	FramesIn     int64 // frames read
	DecodeErrors int64 // frames that did not decode
	Refused      int64 // frames refused by the send path (Error ACK)
	SendErrors   int64 // frames whose Sender.Send failed (Error ACK)
	Acks         int64 // successful ACKs
	Deliveries   int64 // pushed frames queued on connections
	BytesOut     int64 // bytes written to sockets
	Pushed       int64 // deliveries received from message servers through the push API
	Unrouted     int64 // deliveries for a user without a connection on this gateway
	Resends      int64 // frames sent again under a local_id already sent: answered, not stored again
}

type counters struct {
	connections, accepted, rejected, knockedOff, slowClosed, framesIn, decodeErrors,
	refused, sendErrors, acks, deliveries, bytesOut, pushed, unrouted, resends atomic.Int64
}

// Stats returns the counters.
func (g *Gateway) Stats() Stats {
	s := &g.stats
	return Stats{
		Connections: s.connections.Load(), Accepted: s.accepted.Load(), Rejected: s.rejected.Load(),
		KnockedOff: s.knockedOff.Load(), SlowClosed: s.slowClosed.Load(), FramesIn: s.framesIn.Load(),
		DecodeErrors: s.decodeErrors.Load(), Refused: s.refused.Load(), SendErrors: s.sendErrors.Load(),
		Acks: s.acks.Load(), Deliveries: s.deliveries.Load(), BytesOut: s.bytesOut.Load(),
		Pushed: s.pushed.Load(), Unrouted: s.unrouted.Load(), Resends: s.resends.Load(),
	}
}

// String renders the counters (for logs).
func (s Stats) String() string {
	return fmt.Sprintf("conns=%d accepted=%d rejected=%d knocked_off=%d slow=%d in=%d bad=%d refused=%d send_err=%d acks=%d deliveries=%d bytes_out=%d pushed=%d unrouted=%d",
		s.Connections, s.Accepted, s.Rejected, s.KnockedOff, s.SlowClosed, s.FramesIn, s.DecodeErrors,
		s.Refused, s.SendErrors, s.Acks, s.Deliveries, s.BytesOut, s.Pushed, s.Unrouted)
}
