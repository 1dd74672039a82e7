package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sandcat-im/sandcat/im/wire"
)

// relay is the bare baseline of scenario (b): gorilla/websocket, no storage,
// no seq, no auth. A client connects to /relay/{id} and sends the same
// bincode Msg frames as to Sandcat; the relay forwards each frame as it is to
// the connection whose id is the frame's receiver_id, then writes a fixed
// ACK to the sender. It is built the way the baselines found cheapest: 1 KiB
// buffers, a shared write buffer pool, and the HTTP handler returns right
// after the upgrade (a new goroutine reads).
type relay struct {
	up    websocket.Upgrader
	ack   []byte
	mu    sync.RWMutex
	conns map[string]*relayConn
}

type relayConn struct {
	mu sync.Mutex
	ws *websocket.Conn
}

func newRelay() *relay {
	return &relay{
		up: websocket.Upgrader{
			ReadBufferSize:  1024,
			WriteBufferSize: 1024,
			WriteBufferPool: &sync.Pool{},
			CheckOrigin:     func(*http.Request) bool { return true },
		},
		ack:   wire.AppendMsg(nil, &wire.Msg{MsgType: wire.MsgTypeMsgRecResp}),
		conns: map[string]*relayConn{},
	}
}

func (rl *relay) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id, ok := strings.CutPrefix(r.URL.Path, "/relay/")
	if !ok || id == "" {
		http.NotFound(w, r)
		return
	}
	ws, err := rl.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	c := &relayConn{ws: ws}
	rl.mu.Lock()
	rl.conns[id] = c
	rl.mu.Unlock()
	go rl.read(id, c)
}

func (rl *relay) read(id string, c *relayConn) {
	defer func() {
		rl.mu.Lock()
		if rl.conns[id] == c {
			delete(rl.conns, id)
		}
		rl.mu.Unlock()
		_ = c.ws.Close()
	}()
	for {
		typ, r, err := c.ws.NextReader()
		if err != nil {
			return
		}
		buf := readBufs.Get().(*bytes.Buffer)
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return
		}
		if typ == websocket.BinaryMessage {
			if to, ok := peekReceiver(buf.Bytes()); ok {
				rl.mu.RLock()
				dst := rl.conns[string(to)]
				rl.mu.RUnlock()
				if dst != nil {
					dst.write(buf.Bytes())
				}
			}
			c.write(rl.ack)
		}
		readBufs.Put(buf)
	}
}

func (c *relayConn) write(b []byte) {
	c.mu.Lock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	_ = c.ws.WriteMessage(websocket.BinaryMessage, b)
	c.mu.Unlock()
}

// serveRelay runs the relay on ln until ctx ends.
func serveRelay(ctx context.Context, ln net.Listener, log *slog.Logger) error {
	srv := &http.Server{Handler: newRelay(), ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	log.Info("relay listening", "addr", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
