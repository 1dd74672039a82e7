package gateway

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// conn is one client connection: one reader goroutine (decodes frames and
// runs the send path in order) and one writer goroutine (writes everything
// queued in one batch).
type conn struct {
	g        *Gateway
	ws       *websocket.Conn
	nc       net.Conn
	user     string
	platform int32

	mu      sync.Mutex
	pend    []byte // encoded frames waiting for the writer (nil when empty)
	closing bool   // no more frames are accepted
	final   []byte // the Close frame to write after pend, then the connection ends
	ending  bool   // a Close frame was queued: the writer ends the connection

	wake chan struct{} // capacity 1: "pend or final changed"
	done chan struct{} // closed by kill
	once sync.Once
}

func newConn(g *Gateway, user string, platform int32) *conn {
	return &conn{
		g:        g,
		user:     user,
		platform: platform,
		wake:     make(chan struct{}, 1),
		done:     make(chan struct{}),
	}
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// send queues one frame. It never blocks: when the queue would exceed the
// byte bound the client is too slow, and the connection is dropped.
func (c *conn) send(op byte, payload []byte) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	// One frame always fits an empty queue, however large.
	if len(c.pend) > 0 && len(c.pend)+frameHeaderMax+len(payload) > c.g.cfg.SendQueueBytes {
		c.closing = true
		queued := len(c.pend)
		c.mu.Unlock()
		c.g.stats.slowClosed.Add(1)
		c.g.log.Warn("gateway: slow client disconnected", "user", c.user, "platform", c.platform,
			"queued_bytes", queued)
		c.kill()
		return false
	}
	if c.pend == nil {
		c.pend = c.g.bufs.get()
	}
	c.pend = appendFrame(c.pend, op, payload)
	c.mu.Unlock()
	c.signal()
	return true
}

// closeWith queues a Close frame after what is queued; the writer ends the
// connection once it is written (or when the write deadline passes).
func (c *conn) closeWith(code int, reason string) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return
	}
	c.closing, c.ending = true, true
	c.final = closeFrame(code, reason)
	c.mu.Unlock()
	c.signal()
}

// attach gives the registered connection its socket once the handshake
// completed; false if it was killed meanwhile (the socket is then closed).
func (c *conn) attach(ws *websocket.Conn) bool {
	c.mu.Lock()
	c.ws, c.nc = ws, ws.NetConn()
	c.mu.Unlock()
	select {
	case <-c.done:
		_ = c.nc.Close()
		return false
	default:
		return true
	}
}

// kill ends the connection now: both goroutines exit.
func (c *conn) kill() {
	c.once.Do(func() {
		close(c.done)
		c.mu.Lock()
		nc := c.nc
		c.mu.Unlock()
		if nc != nil {
			_ = nc.Close()
		}
	})
}

// writeLoop writes queued frames in batches and pings the client.
func (c *conn) writeLoop() {
	defer c.kill()
	ping := time.NewTicker(c.g.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case <-c.wake:
		case <-ping.C:
			c.send(opPing, nil)
			continue // send signalled wake
		case <-c.done:
			c.drop()
			return
		}
		c.mu.Lock()
		buf, final := c.pend, c.final
		c.pend, c.final = nil, nil
		c.mu.Unlock()
		if len(buf) > 0 {
			err := c.write(buf)
			c.g.bufs.put(buf)
			if err != nil {
				return
			}
		}
		if final != nil {
			_ = c.write(final)
			return
		}
	}
}

func (c *conn) write(b []byte) error {
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.g.cfg.WriteTimeout))
	n, err := c.nc.Write(b)
	c.g.stats.bytesOut.Add(int64(n))
	return err
}

// drop releases what is still queued after the connection ended.
func (c *conn) drop() {
	c.mu.Lock()
	buf := c.pend
	c.pend, c.closing = nil, true
	c.mu.Unlock()
	if buf != nil {
		c.g.bufs.put(buf)
	}
}

// readLoop reads frames until the connection ends, handling each in order.
func (c *conn) readLoop() {
	defer func() {
		if c.g.reg.remove(c) {
			c.g.routeRemoved(c)
		}
		c.g.stats.connections.Add(-1)
		c.mu.Lock()
		flushing := c.ending // a Close frame (e.g. the echo of the client's) is being written
		c.mu.Unlock()
		if flushing {
			t := time.NewTimer(c.g.cfg.WriteTimeout)
			select {
			case <-c.done:
			case <-t.C:
			}
			t.Stop()
		}
		c.kill()
	}()
	cfg := &c.g.cfg
	c.ws.SetReadLimit(int64(cfg.MaxFrameBytes))
	extend := func() { _ = c.nc.SetReadDeadline(time.Now().Add(cfg.ReadTimeout)) }
	extend()
	// Control frames are answered through the writer goroutine: gorilla's
	// own write path is never used.
	c.ws.SetPongHandler(func(string) error { extend(); return nil })
	c.ws.SetPingHandler(func(data string) error {
		extend()
		c.send(opPong, []byte(data))
		return nil
	})
	c.ws.SetCloseHandler(func(code int, _ string) error {
		if code == websocket.CloseNoStatusReceived {
			code = closeNormal
		}
		c.closeWith(code, "")
		return nil
	})
	buf := new(bytes.Buffer)
	for {
		typ, r, err := c.ws.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.EOF) &&
				!errors.Is(err, io.ErrUnexpectedEOF) {
				c.g.log.Debug("gateway: read ended", "user", c.user, "platform", c.platform, "err", err)
			}
			return
		}
		extend()
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				c.g.log.Warn("gateway: frame over the read limit", "user", c.user, "limit", cfg.MaxFrameBytes)
			}
			return
		}
		c.g.handleFrame(c, typ, buf.Bytes())
		if buf.Cap() > bufKeepMax { // do not keep a huge buffer for an idle connection
			buf = new(bytes.Buffer)
		}
	}
}
