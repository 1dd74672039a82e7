package gateway

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/sandcat-im/sandcat/im/wire"
)

func TestParsePath(t *testing.T) {
	tests := []struct {
		path, user, token string
		platform          int32
		ok                bool
	}{
		{"/ws/u1/conn/u1/0/tok", "u1", "tok", 0, true},
		{"/ws/u1/conn/u1/1/tok", "u1", "tok", 1, true},
		{"/ws/u1/conn/u1/7/tok", "u1", "tok", 0, true}, // invalid platform: Desktop
		{"/ws/u1/conn/u1/x/tok", "u1", "tok", 0, true},
		{"/prefix/ws/u1/conn/p/1/a.b.c", "u1", "a.b.c", 1, true},
		{"/ws/u1/conn/u1/0/", "", "", 0, false},
		{"/ws/u1/xxxx/u1/0/tok", "", "", 0, false},
		{"/ws/u1", "", "", 0, false},
	}
	for _, tt := range tests {
		user, platform, token, ok := parsePath(tt.path)
		if ok != tt.ok || (ok && (user != tt.user || platform != tt.platform || token != tt.token)) {
			t.Errorf("parsePath(%q) = %q %d %q %v", tt.path, user, platform, token, ok)
		}
	}
}

func TestFrameHeaders(t *testing.T) {
	for _, n := range []int{0, 1, 125, 126, 65535, 65536, 1 << 20} {
		f := appendFrame(nil, opBinary, bytes.Repeat([]byte{7}, n))
		if f[0] != 0x82 {
			t.Fatalf("n=%d: first byte %#x", n, f[0])
		}
		var hdr, got int
		switch l := int(f[1]); {
		case l <= 125:
			hdr, got = 2, l
		case l == 126:
			hdr, got = 4, int(binary.BigEndian.Uint16(f[2:]))
		default:
			hdr, got = 10, int(binary.BigEndian.Uint64(f[2:]))
		}
		if got != n || len(f) != hdr+n || hdr > frameHeaderMax {
			t.Fatalf("n=%d: header says %d, frame %d bytes", n, got, len(f))
		}
	}
	cf := closeFrame(CloseKnockOff, knockOffReason)
	if cf[0] != 0x88 || int(cf[1]) != 2+len(knockOffReason) || binary.BigEndian.Uint16(cf[2:]) != CloseKnockOff {
		t.Fatalf("close frame % x", cf)
	}
	long := closeFrame(1000, string(bytes.Repeat([]byte{'x'}, 300)))
	if int(long[1]) != maxControlPayload {
		t.Fatalf("close payload %d bytes, control frames hold at most 125", long[1])
	}
}

func TestPeekLocalID(t *testing.T) {
	m := wire.Msg{SendID: "a", ReceiverID: "b", LocalID: "the-local-id"}
	b := m.MarshalBincode()
	if got := peekLocalID(websocket.BinaryMessage, b[:len(b)-1]); got != "the-local-id" {
		t.Fatalf("bincode: %q", got)
	}
	if got := peekLocalID(websocket.BinaryMessage, b[:20]); got != "" {
		t.Fatalf("truncated before local_id: %q", got)
	}
	if got := peekLocalID(websocket.TextMessage, []byte(`{"local_id":"j","msg_type":"x"}`)); got != "j" {
		t.Fatalf("json: %q", got)
	}
	if got := peekLocalID(websocket.TextMessage, []byte(`{`)); got != "" {
		t.Fatalf("bad json: %q", got)
	}
}
