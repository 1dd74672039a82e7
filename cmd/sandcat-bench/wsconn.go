package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

// Kinds of targets the load tool speaks to.
const (
	kindSandcat    = "sandcat"    // bincode Msg frames, ACK = MsgRecResp
	kindRelay      = "relay"      // the built-in bare relay: the same frames, a fixed ACK
	kindCentrifugo = "centrifugo" // Centrifugo's JSON protocol
)

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT (linux/in.h): bind() to a
// source address without reserving a port, so that the 4-tuple, not the
// source port alone, must be unique. Tens of thousands of dials from a few
// 127.0.0.x addresses stay fast.
const ipBindAddressNoPort = 24

// netDialer dials from the source addresses in round robin.
type netDialer struct {
	src  []net.IP
	next atomic.Uint64
}

func newNetDialer(src []string) (*netDialer, error) {
	d := &netDialer{}
	for _, s := range src {
		ip := net.ParseIP(s)
		if ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("source address %q: only loopback addresses are allowed", s)
		}
		d.src = append(d.src, ip)
	}
	return d, nil
}

func (d *netDialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	nd := net.Dialer{Timeout: 30 * time.Second}
	if len(d.src) > 0 {
		ip := d.src[d.next.Add(1)%uint64(len(d.src))]
		nd.LocalAddr = &net.TCPAddr{IP: ip}
		nd.Control = func(_, _ string, c syscall.RawConn) error {
			var serr error
			if err := c.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
			}); err != nil {
				return err
			}
			return serr
		}
	}
	return nd.DialContext(ctx, network, addr)
}

// writePool is shared by every client connection: an idle one holds no
// write buffer.
var writePool = &sync.Pool{}

// readBufs holds the buffers frames are read into (per frame, not per connection).
var readBufs = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// bconn is one client connection of the load tool.
type bconn struct {
	idx  int    // index in its worker
	id   string // user id, relay id or client name
	kind string
	ws   *websocket.Conn

	wmu   sync.Mutex
	wbuf  []byte
	ids   uint64        // Centrifugo command ids
	ready chan struct{} // Centrifugo: closed when connected (and subscribed)
	rerr  atomic.Pointer[string]
	dead  atomic.Bool
}

func dialConn(ctx context.Context, nd *netDialer, url string) (*websocket.Conn, error) {
	d := websocket.Dialer{
		NetDialContext:   nd.dial,
		HandshakeTimeout: 30 * time.Second,
		ReadBufferSize:   1024,
		WriteBufferSize:  1024,
		WriteBufferPool:  writePool,
	}
	ws, resp, err := d.DialContext(ctx, url, nil)
	if resp != nil && resp.Body != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial: HTTP %d: %w", resp.StatusCode, err)
		}
		return nil, fmt.Errorf("dial: %w", err)
	}
	return ws, nil
}

// write sends one data frame (binary for Sandcat and the relay, text for Centrifugo).
func (c *bconn) write(b []byte) error {
	typ := websocket.BinaryMessage
	if c.kind == kindCentrifugo {
		typ = websocket.TextMessage
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
	return c.ws.WriteMessage(typ, b)
}

// centrifugoCommand writes {"id":N,<body>} and returns N.
func (c *bconn) centrifugoCommand(body string) (uint64, error) {
	c.wmu.Lock()
	c.ids++
	id := c.ids
	c.wbuf = append(c.wbuf[:0], `{"id":`...)
	c.wbuf = strconv.AppendUint(c.wbuf, id, 10)
	c.wbuf = append(c.wbuf, ',')
	c.wbuf = append(c.wbuf, body...)
	c.wbuf = append(c.wbuf, '}')
	_ = c.ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
	err := c.ws.WriteMessage(websocket.TextMessage, c.wbuf)
	c.wmu.Unlock()
	return id, err
}

// appendCentrifugoPublish appends the publish command body of a bench message.
func appendCentrifugoPublish(b []byte, channel string, content []byte) []byte {
	b = append(b, `"publish":{"channel":"`...)
	b = append(b, channel...)
	b = append(b, `","data":{"m":"`...)
	b = append(b, content...)
	return append(b, `"}}`...)
}

func (c *bconn) close() {
	c.wmu.Lock()
	_ = c.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.wmu.Unlock()
	_ = c.ws.Close()
}

func (c *bconn) fail(err error) {
	s := err.Error()
	c.rerr.Store(&s)
	c.dead.Store(true)
}

var errNotReady = errors.New("not ready in time")
