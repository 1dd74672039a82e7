package gateway

import (
	"encoding/binary"
	"sync"
)

// Server-to-client WebSocket frames (RFC 6455 §5.2) are written by the
// connection's writer goroutine itself: unmasked, unfragmented, FIN set. All
// frames queued for a connection are appended to one buffer and written with
// one Write (one syscall per batch, not per message). gorilla/websocket
// still does the upgrade and all reading; its write path is never used, so
// it never holds a write buffer (the Upgrader has a WriteBufferPool).
const (
	opText   = 0x1
	opBinary = 0x2
	opClose  = 0x8
	opPing   = 0x9
	opPong   = 0xA
)

// Close codes of the wire (sandcat-wire.md §3.1) and RFC 6455.
const (
	CloseKnockOff     = 4001 // a newer connection of the same user and platform replaced this one
	CloseBadToken     = 4002 // the token is invalid or not the path's user: the client logs out
	CloseGoingAway    = 1001
	closeNormal       = 1000
	knockOffReason    = "knock off"
	maxControlPayload = 125
)

// frameHeaderMax is the largest header of an unmasked frame.
const frameHeaderMax = 10

func appendFrameHeader(b []byte, op byte, n int) []byte {
	b = append(b, 0x80|op)
	switch {
	case n <= 125:
		return append(b, byte(n))
	case n <= 0xFFFF:
		return append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		return binary.BigEndian.AppendUint64(b, uint64(n))
	}
}

func appendFrame(b []byte, op byte, payload []byte) []byte {
	return append(appendFrameHeader(b, op, len(payload)), payload...)
}

// closeFrame returns a whole Close frame with a code and a reason (the reason
// is cut to fit a control frame).
func closeFrame(code int, reason string) []byte {
	if len(reason) > maxControlPayload-2 {
		reason = reason[:maxControlPayload-2]
	}
	p := make([]byte, 0, 2+len(reason))
	p = binary.BigEndian.AppendUint16(p, uint16(code))
	p = append(p, reason...)
	return appendFrame(make([]byte, 0, 2+len(p)), opClose, p)
}

// bufPool holds the per-connection batch buffers between writes, so an idle
// connection holds none.
type bufPool struct{ p sync.Pool }

const (
	bufInitial = 4 << 10
	bufKeepMax = 256 << 10 // larger buffers are left to the GC
)

func (bp *bufPool) get() []byte {
	if b, ok := bp.p.Get().(*[]byte); ok {
		return (*b)[:0]
	}
	return make([]byte, 0, bufInitial)
}

func (bp *bufPool) put(b []byte) {
	if cap(b) > bufKeepMax {
		return
	}
	b = b[:0]
	bp.p.Put(&b)
}
