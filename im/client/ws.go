package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sandcat-im/sandcat/im/wire"
)

// Close codes the server uses (sandcat-wire.md §3.1).
const (
	CloseKnockOff = 4001 // a newer connection of the same user and platform replaced this one
	CloseBadToken = 4002 // the token is invalid or another user's
)

// ErrClosed is wrapped by Recv and Send errors once the connection ended;
// CloseCode tells how.
var ErrClosed = errors.New("client: connection closed")

// Dialer opens WebSocket connections. The zero value is usable.
type Dialer struct {
	// OnMessage, when set, is called on the connection's reader goroutine
	// for every frame, in order, and Recv is not used. The *Msg is reused
	// after the call returns; its strings and Content are not, and may be
	// kept.
	OnMessage func(*wire.Msg)
	// OnClose, when set, is called once on the reader goroutine when the
	// connection ends, with the close code (0 without a Close frame) and the
	// error that ended it.
	OnClose func(code int, err error)
	// Queue is the capacity of Recv's queue (default 64). When it is full
	// the reader stops reading (TCP backpressure: a server drops a client
	// that does not keep up).
	Queue int
	// HandshakeTimeout bounds the upgrade (default 10 s).
	HandshakeTimeout time.Duration
	// WriteTimeout bounds one Send (default 10 s).
	WriteTimeout time.Duration
	// ReadBufferSize is the per-connection read buffer (default 1 KiB).
	ReadBufferSize int
	// NetDial, when set, opens the TCP connection (e.g. to pick a source address).
	NetDial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// writeBuffers is shared by every connection: an idle connection holds no
// write buffer.
var writeBuffers = &sync.Pool{}

// Dial connects userID on platform (0 desktop, 1 mobile) with an access
// token, with the default Dialer. wsAddr is the login answer's ws_addr
// ("ws://host:port/ws"), or just "host:port".
func Dial(ctx context.Context, wsAddr, userID string, platform int32, token string) (*Conn, error) {
	var d Dialer
	return d.Dial(ctx, wsAddr, userID, platform, token)
}

// URL builds the connection URL {ws_addr}/{user_id}/conn/{user_id}/{platform}/{token},
// as the clients do (pointer_id is the user id).
func URL(wsAddr, userID string, platform int32, token string) (string, error) {
	base := strings.TrimSuffix(wsAddr, "/")
	switch {
	case strings.HasPrefix(base, "ws://"), strings.HasPrefix(base, "wss://"):
	case strings.HasPrefix(base, "http://"):
		base = "ws://" + strings.TrimPrefix(base, "http://")
	case strings.HasPrefix(base, "https://"):
		base = "wss://" + strings.TrimPrefix(base, "https://")
	case strings.Contains(base, "://"):
		return "", fmt.Errorf("client: ws address %q: unknown scheme", wsAddr)
	default:
		base = "ws://" + base + "/ws"
	}
	if _, err := url.Parse(base); err != nil {
		return "", fmt.Errorf("client: ws address %q: %w", wsAddr, err)
	}
	esc := url.PathEscape(userID)
	return base + "/" + esc + "/conn/" + esc + "/" + strconv.Itoa(int(platform)) + "/" + url.PathEscape(token), nil
}

// Dial connects userID on platform with token (see the package Dial).
func (d *Dialer) Dial(ctx context.Context, wsAddr, userID string, platform int32, token string) (*Conn, error) {
	u, err := URL(wsAddr, userID, platform, token)
	if err != nil {
		return nil, err
	}
	wd := websocket.Dialer{
		HandshakeTimeout: d.HandshakeTimeout,
		ReadBufferSize:   d.ReadBufferSize,
		WriteBufferSize:  1024,
		WriteBufferPool:  writeBuffers,
		NetDialContext:   d.NetDial,
		Proxy:            nil,
	}
	if wd.HandshakeTimeout <= 0 {
		wd.HandshakeTimeout = 10 * time.Second
	}
	if wd.ReadBufferSize <= 0 {
		wd.ReadBufferSize = 1024
	}
	ws, resp, err := wd.DialContext(ctx, u, nil)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			e := errorOf(http.MethodGet, "/ws/"+userID+"/conn/…", resp)
			_ = resp.Body.Close()
			return nil, e
		}
		return nil, fmt.Errorf("client: dial %s: %w", redact(u, token), err)
	}
	c := &Conn{
		UserID:   userID,
		Platform: platform,
		ws:       ws,
		onMsg:    d.OnMessage,
		onClose:  d.OnClose,
		wtimeout: d.WriteTimeout,
		done:     make(chan struct{}),
		quit:     make(chan struct{}),
	}
	if c.wtimeout <= 0 {
		c.wtimeout = 10 * time.Second
	}
	if c.onMsg == nil {
		q := d.Queue
		if q <= 0 {
			q = 64
		}
		c.in = make(chan wire.Msg, q)
	}
	go c.readLoop()
	return c, nil
}

func redact(u, token string) string {
	if token == "" {
		return u
	}
	return strings.Replace(u, url.PathEscape(token), "<token>", 1)
}

// Conn is one WebSocket connection. Send and SendJSON may be called from
// several goroutines; Recv from one.
type Conn struct {
	UserID   string
	Platform int32

	ws       *websocket.Conn
	onMsg    func(*wire.Msg)
	onClose  func(int, error)
	in       chan wire.Msg // nil with OnMessage
	wtimeout time.Duration

	wmu  sync.Mutex
	wbuf []byte

	done      chan struct{} // closed when the reader has ended
	quit      chan struct{} // closed by Close and Abort
	quitOnce  sync.Once
	err       error // why it ended; set before done is closed
	closeCode int   // the peer's close code, 0 if none
	closeText string
	cur       wire.Msg // OnMessage's reused Msg
	decodeErr int64    // frames that did not decode (reader goroutine only until done)
}

// readLoop reads frames until the connection ends.
func (c *Conn) readLoop() {
	var buf bytes.Buffer
	for {
		typ, r, err := c.ws.NextReader()
		if err != nil {
			c.end(err)
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			c.end(err)
			return
		}
		var m wire.Msg
		switch typ {
		case websocket.BinaryMessage:
			m, err = wire.DecodeMsg(buf.Bytes())
		case websocket.TextMessage:
			m, err = wire.DecodeJSONMsg(buf.Bytes())
		default:
			continue
		}
		if err != nil {
			c.decodeErr++
			continue
		}
		if c.onMsg != nil {
			c.cur = m
			c.onMsg(&c.cur)
			continue
		}
		select {
		case c.in <- m:
		case <-c.quit: // Close or Abort while Recv's queue is full
			c.end(ErrClosed)
			return
		}
	}
}

func (c *Conn) end(err error) {
	var ce *websocket.CloseError
	if errors.As(err, &ce) {
		c.closeCode, c.closeText = ce.Code, ce.Text
	}
	c.err = fmt.Errorf("%w: %w", ErrClosed, err)
	_ = c.ws.Close()
	close(c.done)
	if c.in != nil {
		close(c.in)
	}
	if c.onClose != nil {
		c.onClose(c.closeCode, err)
	}
}

// Send writes m as a binary frame (bincode), as the web client does.
func (c *Conn) Send(m *wire.Msg) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = wire.AppendMsg(c.wbuf[:0], m)
	return c.write(websocket.BinaryMessage, c.wbuf)
}

// SendJSON writes m as a text frame (JSON, content as a number array).
func (c *Conn) SendJSON(m *wire.Msg) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wbuf = m.AppendJSON(c.wbuf[:0])
	return c.write(websocket.TextMessage, c.wbuf)
}

// SendRaw writes one frame as it is (websocket.BinaryMessage or TextMessage).
func (c *Conn) SendRaw(frameType int, data []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.write(frameType, data)
}

func (c *Conn) write(typ int, b []byte) error {
	select {
	case <-c.done:
		return c.err
	default:
	}
	_ = c.ws.SetWriteDeadline(time.Now().Add(c.wtimeout))
	if err := c.ws.WriteMessage(typ, b); err != nil {
		return fmt.Errorf("client: send: %w", err)
	}
	if cap(c.wbuf) > 64<<10 {
		c.wbuf = nil
	}
	return nil
}

// Recv returns the next frame the server sent. Once the connection ended
// and every queued frame was returned, it returns an error wrapping
// ErrClosed. It is not used with Dialer.OnMessage.
func (c *Conn) Recv(ctx context.Context) (wire.Msg, error) {
	if c.in == nil {
		return wire.Msg{}, errors.New("client: Recv on a connection with OnMessage")
	}
	select {
	case m, ok := <-c.in:
		if !ok {
			return wire.Msg{}, c.err
		}
		return m, nil
	case <-ctx.Done():
		return wire.Msg{}, ctx.Err()
	}
}

// Done is closed when the connection has ended (see Err and CloseCode).
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err is why the connection ended (nil while it is open).
func (c *Conn) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// CloseCode is the code of the server's Close frame (4001 knocked off, 4002
// bad token, 1001 going away...), or 0 while the connection is open or when
// it ended without a Close frame.
func (c *Conn) CloseCode() int {
	select {
	case <-c.done:
		return c.closeCode
	default:
		return 0
	}
}

// CloseText is the reason of the server's Close frame ("" if none).
func (c *Conn) CloseText() string {
	select {
	case <-c.done:
		return c.closeText
	default:
		return ""
	}
}

// DecodeErrors is the number of frames that did not decode, once the
// connection has ended (0 before).
func (c *Conn) DecodeErrors() int64 {
	select {
	case <-c.done:
		return c.decodeErr
	default:
		return 0
	}
}

// Close sends a normal Close frame and waits (at most a second) for the
// server to close, then closes the socket. Queued frames stay readable by
// Recv.
func (c *Conn) Close() error {
	c.quitOnce.Do(func() { close(c.quit) })
	c.wmu.Lock()
	_ = c.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.wmu.Unlock()
	t := time.NewTimer(time.Second)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		_ = c.ws.NetConn().Close()
		<-c.done
	}
	return nil
}

// Abort closes the socket without a Close frame (a client that vanishes).
func (c *Conn) Abort() {
	c.quitOnce.Do(func() { close(c.quit) })
	_ = c.ws.NetConn().Close()
	<-c.done
}
