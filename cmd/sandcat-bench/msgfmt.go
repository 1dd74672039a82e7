package main

import (
	"encoding/binary"
	"strconv"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/wire"
)

// A bench message carries its send time and its flow (the sender's index in
// the run) in its content, as text: 'B', 16 hex digits of the send time in
// unix nanoseconds, 8 hex digits of the flow, then 'x' up to the message size.
// The receiver computes the end-to-end latency from it; the flow tells which
// sender's window a receipt frees.
const (
	benchMark      = 'B'
	benchHeaderLen = 1 + 16 + 8
)

// appendBenchContent appends the content of a bench message of size bytes.
func appendBenchContent(b []byte, sentNs int64, flow uint32, size int) []byte {
	start := len(b)
	b = append(b, benchMark)
	b = appendHex(b, uint64(sentNs), 16)
	b = appendHex(b, uint64(flow), 8)
	for len(b)-start < size {
		b = append(b, 'x')
	}
	return b
}

func appendHex(b []byte, v uint64, digits int) []byte {
	const hexd = "0123456789abcdef"
	for i := digits - 1; i >= 0; i-- {
		b = append(b, hexd[(v>>(4*uint(i)))&0xf])
	}
	return b
}

func parseHex(b []byte) (uint64, bool) {
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}

// parseBenchContent returns the send time and the flow of a bench content.
func parseBenchContent(c []byte) (sentNs int64, flow uint32, ok bool) {
	if len(c) < benchHeaderLen || c[0] != benchMark {
		return 0, 0, false
	}
	t, ok1 := parseHex(c[1:17])
	f, ok2 := parseHex(c[17:25])
	if !ok1 || !ok2 {
		return 0, 0, false
	}
	return int64(t), uint32(f), true
}

// frameInfo is what the load tool reads of a server frame, without decoding
// the whole Msg (no allocation).
type frameInfo struct {
	msgType     wire.MsgType
	contentType int32
	content     []byte // aliases the frame
}

// peekFrame reads msg_type, content_type and content of a bincode Msg: four
// strings, three i64, two i32, then the content bytes (sandcat-wire.md §3.2).
func peekFrame(b []byte) (frameInfo, bool) {
	for range 4 {
		var ok bool
		if _, b, ok = nextBytes(b); !ok {
			return frameInfo{}, false
		}
	}
	if len(b) < 24+8 {
		return frameInfo{}, false
	}
	b = b[24:]
	fi := frameInfo{
		msgType:     wire.MsgType(int32(binary.LittleEndian.Uint32(b))),
		contentType: int32(binary.LittleEndian.Uint32(b[4:])),
	}
	c, _, ok := nextBytes(b[8:])
	if !ok {
		return frameInfo{}, false
	}
	fi.content = c
	return fi, true
}

// peekReceiver returns receiver_id (the second string) of a bincode Msg.
func peekReceiver(b []byte) ([]byte, bool) {
	_, rest, ok := nextBytes(b)
	if !ok {
		return nil, false
	}
	r, _, ok := nextBytes(rest)
	return r, ok
}

// nextBytes reads one bincode u64-length-prefixed byte string.
func nextBytes(b []byte) (s, rest []byte, ok bool) {
	if len(b) < 8 {
		return nil, nil, false
	}
	n := binary.LittleEndian.Uint64(b)
	b = b[8:]
	if n > uint64(len(b)) {
		return nil, nil, false
	}
	return b[:n], b[n:], true
}

// msgBuilder encodes the frames of one sender, reusing its buffers.
type msgBuilder struct {
	m       wire.Msg
	content []byte
	buf     []byte
	seq     uint64
	prefix  string
	local   []byte
}

func newMsgBuilder(from, to string, group bool) *msgBuilder {
	mb := &msgBuilder{m: wire.Msg{SendID: from, ReceiverID: to, MsgType: wire.MsgTypeSingleMsg, ContentType: wire.ContentText}}
	// local_id is the client's idempotency key (the gateway answers a frame
	// sent again under a local_id with the first ACK): unique per message,
	// across the builders of one user, as a client's nanoids are.
	mb.prefix = ids.New()[:10] + "-"
	if group {
		mb.m.MsgType = wire.MsgTypeGroupMsg
		mb.m.GroupID = to
	}
	return mb
}

// frame returns the bincode frame of the next message (valid until the next call).
func (mb *msgBuilder) frame(sentNs int64, flow uint32, size int) []byte {
	mb.seq++
	mb.local = strconv.AppendUint(append(mb.local[:0], mb.prefix...), mb.seq, 36)
	mb.m.LocalID = string(mb.local)
	mb.m.CreateTime = sentNs / 1e6
	mb.content = appendBenchContent(mb.content[:0], sentNs, flow, size)
	mb.m.Content = mb.content
	mb.buf = wire.AppendMsg(mb.buf[:0], &mb.m)
	return mb.buf
}
