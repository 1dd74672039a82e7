package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

// Helpers to write expected encodings from the layout.
func le64(v uint64) []byte { return binary.LittleEndian.AppendUint64(nil, v) }
func le32(v uint32) []byte { return binary.LittleEndian.AppendUint32(nil, v) }
func lstr(s string) []byte { return append(le64(uint64(len(s))), s...) }
func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

// msgEqual compares Msgs treating nil and empty Content as equal.
func msgEqual(a, b Msg) bool {
	if len(a.Content) == 0 && len(b.Content) == 0 {
		a.Content, b.Content = nil, nil
	}
	return reflect.DeepEqual(a, b)
}

func fullMsg() Msg {
	return Msg{
		SendID:       "V1StGXR8_Z5jdHi6B-myT",
		ReceiverID:   "xq3Bd9PLsOe8MPsGNRbjd",
		LocalID:      "local-1",
		ServerID:     "server-1",
		CreateTime:   1718000000123,
		SendTime:     1718000000456,
		Seq:          42,
		MsgType:      MsgTypeGroupMsg,
		ContentType:  ContentText,
		Content:      []byte("héllo, 世界"),
		IsRead:       true,
		GroupID:      "group-1",
		Platform:     PlatformMobile,
		Avatar:       "avatar1.png",
		Nickname:     "nick",
		RelatedMsgID: ptr("rel-1"),
		SendSeq:      7,
	}
}

func TestMsgBincodeHandWritten(t *testing.T) {
	small := Msg{
		SendID: "a", ReceiverID: "bc", CreateTime: 1, SendTime: 2, Seq: 3,
		MsgType: MsgTypeGroupMsg, ContentType: ContentText, Content: []byte("hi"),
		IsRead: true, GroupID: "g", Platform: PlatformMobile, Nickname: "n", SendSeq: -1,
	}
	smallBytes := []byte{
		1, 0, 0, 0, 0, 0, 0, 0, 'a', // send_id
		2, 0, 0, 0, 0, 0, 0, 0, 'b', 'c', // receiver_id
		0, 0, 0, 0, 0, 0, 0, 0, // local_id ""
		0, 0, 0, 0, 0, 0, 0, 0, // server_id ""
		1, 0, 0, 0, 0, 0, 0, 0, // create_time
		2, 0, 0, 0, 0, 0, 0, 0, // send_time
		3, 0, 0, 0, 0, 0, 0, 0, // seq
		1, 0, 0, 0, // msg_type GroupMsg
		1, 0, 0, 0, // content_type Text
		2, 0, 0, 0, 0, 0, 0, 0, 'h', 'i', // content
		1,                           // is_read
		1, 0, 0, 0, 0, 0, 0, 0, 'g', // group_id
		1, 0, 0, 0, // platform Mobile
		0, 0, 0, 0, 0, 0, 0, 0, // avatar ""
		1, 0, 0, 0, 0, 0, 0, 0, 'n', // nickname
		0,                                              // related_msg_id None
		0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // send_seq -1
	}
	withRelated := small
	withRelated.RelatedMsgID = ptr("r")
	withRelatedBytes := cat(smallBytes[:len(smallBytes)-9], []byte{1}, lstr("r"), le64(^uint64(0)))
	withEmptyRelated := small
	withEmptyRelated.RelatedMsgID = ptr("")
	withEmptyRelatedBytes := cat(smallBytes[:len(smallBytes)-9], []byte{1}, lstr(""), le64(^uint64(0)))
	zeroBytes := make([]byte, msgFixedSize) // all lengths 0, all numbers 0, false, None

	tests := []struct {
		name string
		msg  Msg
		enc  []byte
	}{
		{"small", small, smallBytes},
		{"related some", withRelated, withRelatedBytes},
		{"related some empty", withEmptyRelated, withEmptyRelatedBytes},
		{"zero", Msg{}, zeroBytes},
		{"full", fullMsg(), cat(
			lstr("V1StGXR8_Z5jdHi6B-myT"), lstr("xq3Bd9PLsOe8MPsGNRbjd"), lstr("local-1"), lstr("server-1"),
			le64(1718000000123), le64(1718000000456), le64(42), le32(1), le32(1),
			lstr("héllo, 世界"), []byte{1}, lstr("group-1"), le32(1), lstr("avatar1.png"), lstr("nick"),
			[]byte{1}, lstr("rel-1"), le64(7),
		)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.msg.MarshalBincode(); !bytes.Equal(got, tt.enc) {
				t.Errorf("MarshalBincode:\n got %v\nwant %v", got, tt.enc)
			}
			if got := tt.msg.BincodeSize(); got != len(tt.enc) {
				t.Errorf("BincodeSize = %d, want %d", got, len(tt.enc))
			}
			if got := AppendMsg([]byte("prefix"), &tt.msg); !bytes.Equal(got, cat([]byte("prefix"), tt.enc)) {
				t.Errorf("AppendMsg did not append after the prefix: %v", got)
			}
			got, err := DecodeMsg(tt.enc)
			if err != nil {
				t.Fatalf("DecodeMsg: %v", err)
			}
			if !msgEqual(got, tt.msg) {
				t.Errorf("DecodeMsg:\n got %+v\nwant %+v", got, tt.msg)
			}
			var m Msg
			if err := m.UnmarshalBincode(tt.enc); err != nil || !msgEqual(m, tt.msg) {
				t.Errorf("UnmarshalBincode = %+v, %v", m, err)
			}
		})
	}
}

func TestMsgBincodeRoundTrip(t *testing.T) {
	big := fullMsg()
	big.Content = bytes.Repeat([]byte{0, 1, 2, 255}, 10000)
	neg := Msg{CreateTime: -1 << 63, SendTime: 1<<63 - 1, Seq: -5, MsgType: -1, ContentType: -2, Platform: -3, SendSeq: -7}
	tests := []struct {
		name string
		msg  Msg
	}{
		{"zero", Msg{}},
		{"full", fullMsg()},
		{"big content", big},
		{"extreme numbers", neg},
		{"unicode", Msg{SendID: "😀", Nickname: "名字", Avatar: "ä", RelatedMsgID: ptr("ü")}},
		{"binary content", Msg{MsgType: MsgTypeHangup, Content: EncodeHangup(123456)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := tt.msg.MarshalBincode()
			got, err := DecodeMsg(enc)
			if err != nil {
				t.Fatalf("DecodeMsg: %v", err)
			}
			if !msgEqual(got, tt.msg) {
				t.Fatalf("round trip mismatch:\n got %+v\nwant %+v", got, tt.msg)
			}
			if again := got.MarshalBincode(); !bytes.Equal(again, enc) {
				t.Fatal("re-encoding differs")
			}
		})
	}
}

func TestDecodeMsgTrailingBytesAllowed(t *testing.T) {
	m := fullMsg()
	enc := append(m.MarshalBincode(), 0xde, 0xad, 0xbe, 0xef)
	got, err := DecodeMsg(enc)
	if err != nil {
		t.Fatalf("DecodeMsg: %v", err)
	}
	if !msgEqual(got, m) {
		t.Fatalf("got %+v", got)
	}
}

func TestDecodeMsgDoesNotAliasInput(t *testing.T) {
	m := fullMsg()
	enc := m.MarshalBincode()
	got, err := DecodeMsg(enc)
	if err != nil {
		t.Fatal(err)
	}
	for i := range enc {
		enc[i] = 'X'
	}
	if !msgEqual(got, m) {
		t.Fatalf("decoded Msg changed when the input was overwritten: %+v", got)
	}
	// Appending to Content must not clobber the strings sharing its buffer.
	got.Content = append(got.Content, "more"...)
	if !msgEqual(Msg{SendID: got.SendID, Nickname: got.Nickname, RelatedMsgID: got.RelatedMsgID},
		Msg{SendID: m.SendID, Nickname: m.Nickname, RelatedMsgID: m.RelatedMsgID}) {
		t.Fatal("appending to Content clobbered strings")
	}
}

// msgFields returns the encoding of m split per field, in wire order.
func msgFields(m Msg) []struct {
	name string
	enc  []byte
} {
	opt := []byte{0}
	if m.RelatedMsgID != nil {
		opt = cat([]byte{1}, lstr(*m.RelatedMsgID))
	}
	isRead := []byte{0}
	if m.IsRead {
		isRead = []byte{1}
	}
	return []struct {
		name string
		enc  []byte
	}{
		{"send_id", lstr(m.SendID)},
		{"receiver_id", lstr(m.ReceiverID)},
		{"local_id", lstr(m.LocalID)},
		{"server_id", lstr(m.ServerID)},
		{"create_time", le64(uint64(m.CreateTime))},
		{"send_time", le64(uint64(m.SendTime))},
		{"seq", le64(uint64(m.Seq))},
		{"msg_type", le32(uint32(m.MsgType))},
		{"content_type", le32(uint32(m.ContentType))},
		{"content", cat(le64(uint64(len(m.Content))), m.Content)},
		{"is_read", isRead},
		{"group_id", lstr(m.GroupID)},
		{"platform", le32(uint32(m.Platform))},
		{"avatar", lstr(m.Avatar)},
		{"nickname", lstr(m.Nickname)},
		{"related_msg_id", opt},
		{"send_seq", le64(uint64(m.SendSeq))},
	}
}

func TestDecodeMsgTruncatedAtEveryField(t *testing.T) {
	m := fullMsg()
	fields := msgFields(m)
	full := m.MarshalBincode()
	off := 0
	for _, f := range fields {
		for cut := off; cut < off+len(f.enc); cut++ {
			_, err := DecodeMsg(full[:cut])
			var de *DecodeError
			if !errors.As(err, &de) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("cut at %d (in %s): err = %v, want *DecodeError wrapping ErrMalformed", cut, f.name, err)
			}
			if de.Type != "Msg" || de.Field != f.name {
				t.Fatalf("cut at %d: error names %s.%s, want Msg.%s (%v)", cut, de.Type, de.Field, f.name, err)
			}
			if !strings.Contains(de.Reason, "truncated") && !strings.Contains(de.Reason, "exceeds remaining") {
				t.Fatalf("cut at %d: unexpected reason %q", cut, de.Reason)
			}
		}
		off += len(f.enc)
	}
	if off != len(full) {
		t.Fatalf("field table covers %d bytes, encoding has %d", off, len(full))
	}
	if _, err := DecodeMsg(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("DecodeMsg(nil) = %v", err)
	}
}

func TestDecodeMsgInvalid(t *testing.T) {
	m := Msg{SendID: "ab", RelatedMsgID: ptr("r")}
	valid := m.MarshalBincode()
	// Offsets in valid: send_id len at 0, bytes at 8..10; is_read after content.
	isReadOff := 4*8 + 2 + 3*8 + 2*4 + 8
	relTagOff := isReadOff + 1 + 8 + 4 + 8 + 8
	patch := func(off int, bs ...byte) []byte {
		b := bytes.Clone(valid)
		copy(b[off:], bs)
		return b
	}
	if valid[isReadOff] != 0 || valid[relTagOff] != 1 {
		t.Fatalf("offset arithmetic is wrong: %v", valid)
	}
	tests := []struct {
		name   string
		in     []byte
		field  string
		reason string
	}{
		{"bool 2", patch(isReadOff, 2), "is_read", "invalid bool"},
		{"bool 0xff", patch(isReadOff, 0xff), "is_read", "invalid bool"},
		{"option tag 2", patch(relTagOff, 2), "related_msg_id", "invalid option tag"},
		{"invalid utf8 send_id", patch(8, 0xff), "send_id", "invalid UTF-8"},
		{"surrogate in send_id", cat(lstr("\xed\xa0\x80"), valid[8+2:]), "send_id", "invalid UTF-8"},
		{"invalid utf8 related", patch(relTagOff+1+8, 0xc3), "related_msg_id", "invalid UTF-8"},
		{"send_id len = remaining+1", patch(0, byte(len(valid)-8+1)), "send_id", "exceeds remaining"},
		{"send_id len 2^63", patch(0, 0, 0, 0, 0, 0, 0, 0, 0x80), "send_id", "exceeds remaining"},
		{"send_id len 2^64-1", patch(0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff), "send_id", "exceeds remaining"},
		{"content len 2^40", patch(4*8+2+3*8+2*4, 0, 0, 0, 0, 0, 1), "content", "exceeds remaining"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeMsg(tt.in)
			var de *DecodeError
			if !errors.As(err, &de) || !errors.Is(err, ErrMalformed) {
				t.Fatalf("err = %v, want *DecodeError wrapping ErrMalformed", err)
			}
			if de.Field != tt.field || !strings.Contains(de.Reason, tt.reason) {
				t.Fatalf("err = %v, want field %s reason %q", err, tt.field, tt.reason)
			}
			var m Msg
			m.SendID = "keep"
			if err := m.UnmarshalBincode(tt.in); err == nil || m.SendID != "keep" {
				t.Fatalf("UnmarshalBincode modified the receiver on error: %+v, %v", m, err)
			}
		})
	}
}

// bytesAllocated returns the average number of heap bytes f allocates.
func bytesAllocated(runs int, f func()) uint64 {
	f() // warm up
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for range runs {
		f()
	}
	runtime.ReadMemStats(&after)
	return (after.TotalAlloc - before.TotalAlloc) / uint64(runs)
}

func TestDecodeMsgHugeLengthDoesNotAllocate(t *testing.T) {
	inputs := map[string][]byte{
		"send_id 2^62": cat(le64(1<<62), []byte("abc")),
		"content 2^40": cat(make([]byte, 4*8+3*8+2*4), le64(1<<40), []byte("xyz")),
	}
	for name, in := range inputs {
		t.Run(name, func(t *testing.T) {
			n := bytesAllocated(100, func() {
				if _, err := DecodeMsg(in); err == nil {
					t.Fatal("no error")
				}
			})
			// Only the error value itself may be allocated.
			if n > 512 {
				t.Fatalf("decoding a %d-byte input allocated %d bytes per call", len(in), n)
			}
		})
	}
}

func TestDecodeMsgAllocatesAtMostInputSize(t *testing.T) {
	m := fullMsg()
	m.Content = bytes.Repeat([]byte("x"), 1<<16)
	enc := m.MarshalBincode()
	n := bytesAllocated(50, func() {
		if _, err := DecodeMsg(enc); err != nil {
			t.Fatal(err)
		}
	})
	// The runtime rounds large allocations up to whole pages (8 KiB), so allow
	// that much on top of the input size.
	if n > uint64(len(enc))+8192 {
		t.Fatalf("decoding %d bytes allocated %d bytes per call", len(enc), n)
	}
	// Allocation count: one shared buffer plus the related_msg_id pointer.
	if a := testing.AllocsPerRun(50, func() { _, _ = DecodeMsg(enc) }); a > 2 {
		t.Fatalf("DecodeMsg made %v allocations, want <= 2", a)
	}
}

func TestAppendMsgNoAllocWithCapacity(t *testing.T) {
	m := fullMsg()
	buf := make([]byte, 0, m.BincodeSize())
	allocs := testing.AllocsPerRun(100, func() {
		buf = AppendMsg(buf[:0], &m)
	})
	if allocs != 0 {
		t.Fatalf("AppendMsg allocated %v times with enough capacity", allocs)
	}
	if a := testing.AllocsPerRun(100, func() { _ = m.MarshalBincode() }); a != 1 {
		t.Fatalf("MarshalBincode made %v allocations, want 1", a)
	}
}

func TestMsgClone(t *testing.T) {
	tests := []struct {
		name string
		msg  Msg
	}{
		{"full", fullMsg()},
		{"zero", Msg{}},
		{"empty non-nil content", Msg{Content: []byte{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			orig := tt.msg
			c := orig.Clone()
			if !reflect.DeepEqual(c, orig) {
				t.Fatalf("clone differs: %+v vs %+v", c, orig)
			}
			if len(orig.Content) > 0 {
				c.Content[0] ^= 0xff
				if orig.Content[0] == c.Content[0] {
					t.Fatal("Content shared")
				}
			}
			if orig.RelatedMsgID != nil {
				*c.RelatedMsgID = "changed"
				if *orig.RelatedMsgID == "changed" {
					t.Fatal("RelatedMsgID shared")
				}
			}
		})
	}
}

func TestMsgTypeNames(t *testing.T) {
	tests := []struct {
		t    MsgType
		name string
	}{
		{MsgTypeSingleMsg, "MsgTypeSingleMsg"},
		{MsgTypeGroupDismissOrExitReceived, "MsgTypeGroupDismissOrExitReceived"},
		{MsgTypeFriendshipReceived, "MsgTypeFriendshipReceived"},
		{MsgType(28), "MsgType(28)"},
		{MsgType(-1), "MsgType(-1)"},
	}
	for _, tt := range tests {
		if got := tt.t.String(); got != tt.name {
			t.Errorf("%d.String() = %q, want %q", int32(tt.t), got, tt.name)
		}
		got, ok := ParseMsgType(tt.name)
		if want := tt.t.Valid(); ok != want || (ok && got != tt.t) {
			t.Errorf("ParseMsgType(%q) = %v, %v", tt.name, got, ok)
		}
	}
	for v := MsgTypeSingleMsg; v <= MsgTypeFriendshipReceived; v++ {
		if p, ok := ParseMsgType(v.String()); !ok || p != v {
			t.Errorf("ParseMsgType(%q) = %v, %v", v.String(), p, ok)
		}
	}
}

func TestDecodeErrorMessage(t *testing.T) {
	_, err := DecodeMsg(cat(lstr("ab"), le64(1<<40)))
	want := "wire: malformed Msg.receiver_id at offset 10: length 1099511627776 exceeds remaining 0 bytes"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v, want %q", err, want)
	}
}
