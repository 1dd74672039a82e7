package wire

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"reflect"
	"testing"
)

// payload is what every content type implements; used to table-drive tests.
type payload interface {
	AppendBincode([]byte) []byte
	MarshalBincode() []byte
}

// decodeInto decodes b into a new value of the same type as p.
func decodeInto(p payload, b []byte) (payload, error) {
	switch p.(type) {
	case GroupInfo:
		var v GroupInfo
		err := v.UnmarshalBincode(b)
		return v, err
	case GroupMember:
		var v GroupMember
		err := v.UnmarshalBincode(b)
		return v, err
	case GroupInvitation:
		var v GroupInvitation
		err := v.UnmarshalBincode(b)
		return v, err
	case Friend:
		var v Friend
		err := v.UnmarshalBincode(b)
		return v, err
	case FriendshipWithUser:
		var v FriendshipWithUser
		err := v.UnmarshalBincode(b)
		return v, err
	case MsgRead:
		var v MsgRead
		err := v.UnmarshalBincode(b)
		return v, err
	case CandidateData:
		var v CandidateData
		err := v.UnmarshalBincode(b)
		return v, err
	}
	panic("unknown payload type")
}

func le16(v uint16) []byte { return binary.LittleEndian.AppendUint16(nil, v) }

func sampleGroupInfo() GroupInfo {
	return GroupInfo{ID: "gid", Owner: "u1", Name: "团队", Avatar: "a.png,b.png", Description: "d",
		Announcement: "ann", CreateTime: 1700000000000, UpdateTime: 1700000000001}
}

func sampleMember(uid string) GroupMember {
	return GroupMember{Age: 30, GroupID: "gid", UserID: uid, GroupName: "name-" + uid, Avatar: "av",
		JoinedAt: 1700000000002, Region: ptr("内网IP"), Gender: "male", Remark: nil, Signature: "sig", Role: RoleMember}
}

func TestPayloadHandWritten(t *testing.T) {
	gi := sampleGroupInfo()
	giBytes := cat(lstr("gid"), lstr("u1"), lstr("团队"), lstr("a.png,b.png"), lstr("d"), lstr("ann"),
		le64(1700000000000), le64(1700000000001))
	gm := sampleMember("u2")
	gmBytes := cat(le32(30), lstr("gid"), lstr("u2"), lstr("name-u2"), lstr("av"), le64(1700000000002),
		[]byte{1}, lstr("内网IP"), lstr("male"), []byte{0}, lstr("sig"), le32(2))

	tests := []struct {
		name string
		v    payload
		enc  []byte
	}{
		{"GroupInfo", gi, giBytes},
		{"GroupMember", gm, gmBytes},
		{"GroupMember all none", GroupMember{Role: RoleOwner},
			cat(le32(0), lstr(""), lstr(""), lstr(""), lstr(""), le64(0), []byte{0}, lstr(""), []byte{0}, lstr(""), le32(0))},
		{"GroupInvitation none info no members", GroupInvitation{Members: []GroupMember{}},
			[]byte{0, 0, 0, 0, 0, 0, 0, 0, 0}},
		{"GroupInvitation none info one member", GroupInvitation{Members: []GroupMember{gm}},
			cat([]byte{0}, le64(1), gmBytes)},
		{"GroupInvitation some info two members", GroupInvitation{Info: &gi, Members: []GroupMember{gm, gm}},
			cat([]byte{1}, giBytes, le64(2), gmBytes, gmBytes)},
		{"Friend", Friend{FsID: "fs", FriendID: "f", Account: "acc", Name: "n", Avatar: "a", Gender: "g", Age: 20,
			Region: ptr("r"), Status: FriendAccepted, Remark: nil, Email: ptr("e@x"), Source: "s", Signature: "sig",
			CreateTime: 5, UpdateTime: 6},
			cat(lstr("fs"), lstr("f"), lstr("acc"), lstr("n"), lstr("a"), lstr("g"), le32(20), []byte{1}, lstr("r"),
				le32(1), []byte{0}, []byte{1}, lstr("e@x"), lstr("s"), lstr("sig"), le64(5), le64(6))},
		{"FriendshipWithUser", FriendshipWithUser{FsID: "fs", UserID: "u", Name: "n", Avatar: "a", Gender: "g", Age: -1,
			Region: nil, Status: FriendPending, ApplyMsg: ptr("hi"), Source: "search", CreateTime: 9, Account: "acc",
			Remark: ptr("rm"), Email: nil},
			cat(lstr("fs"), lstr("u"), lstr("n"), lstr("a"), lstr("g"), le32(0xffffffff), []byte{0}, le32(0),
				[]byte{1}, lstr("hi"), lstr("search"), le64(9), lstr("acc"), []byte{1}, lstr("rm"), []byte{0})},
		{"MsgRead", MsgRead{MsgSeq: []int64{1, 2, -3}, UserID: "u"},
			cat(le64(3), le64(1), le64(2), le64(^uint64(2)), lstr("u"))},
		{"MsgRead empty", MsgRead{MsgSeq: []int64{}, UserID: ""}, make([]byte, 16)},
		{"CandidateData none none", CandidateData{Candidate: "c"},
			[]byte{1, 0, 0, 0, 0, 0, 0, 0, 'c', 0, 0}},
		{"CandidateData some some (u16)", CandidateData{Candidate: "c", SdpMid: ptr("0"), SdpMIndex: ptr(uint16(258))},
			[]byte{1, 0, 0, 0, 0, 0, 0, 0, 'c', 1, 1, 0, 0, 0, 0, 0, 0, 0, '0', 1, 0x02, 0x01}},
		{"CandidateData none mid, max index", CandidateData{Candidate: "", SdpMIndex: ptr(uint16(65535))},
			cat(lstr(""), []byte{0}, []byte{1}, le16(0xffff))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.v.MarshalBincode(); !bytes.Equal(got, tt.enc) {
				t.Errorf("MarshalBincode:\n got %v\nwant %v", got, tt.enc)
			}
			if got := tt.v.AppendBincode([]byte{9}); !bytes.Equal(got, cat([]byte{9}, tt.enc)) {
				t.Errorf("AppendBincode does not append: %v", got)
			}
			got, err := decodeInto(tt.v, tt.enc)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if !reflect.DeepEqual(got, tt.v) {
				t.Errorf("decode:\n got %+v\nwant %+v", got, tt.v)
			}
			// Trailing bytes are allowed.
			if got, err := decodeInto(tt.v, cat(tt.enc, []byte{1, 2, 3})); err != nil || !reflect.DeepEqual(got, tt.v) {
				t.Errorf("decode with trailing bytes = %+v, %v", got, err)
			}
			// Every strict prefix is an error wrapping ErrMalformed.
			for cut := range len(tt.enc) {
				if _, err := decodeInto(tt.v, tt.enc[:cut]); !errors.Is(err, ErrMalformed) {
					t.Fatalf("decode of %d/%d bytes: err = %v", cut, len(tt.enc), err)
				}
			}
		})
	}
}

func TestPayloadInvalid(t *testing.T) {
	gm := sampleMember("u")
	gmBytes := gm.MarshalBincode()
	tests := []struct {
		name  string
		v     payload
		in    []byte
		typ   string
		field string
	}{
		{"invitation bad info tag", GroupInvitation{}, []byte{2, 0, 0, 0, 0, 0, 0, 0, 0}, "GroupInvitation", "info"},
		{"invitation huge member count", GroupInvitation{}, cat([]byte{0}, le64(1<<60), gmBytes), "GroupInvitation", "members"},
		{"invitation count > fit", GroupInvitation{}, cat([]byte{0}, le64(2), gmBytes), "GroupInvitation", "members"},
		{"invitation second member short", GroupInvitation{},
			cat([]byte{0}, le64(2), gmBytes, gmBytes[:len(gmBytes)-1]), "GroupMember", "role"},
		{"invitation bad info string", GroupInvitation{}, cat([]byte{1}, lstr("\xff")), "GroupInfo", "id"},
		{"msgread huge count", MsgRead{}, cat(le64(1<<61), le64(1), lstr("u")), "MsgRead", "msg_seq"},
		{"msgread count just too big", MsgRead{}, cat(le64(2), le64(1), le64(0)), "MsgRead", "user_id"},
		{"candidate bad index tag", CandidateData{}, cat(lstr("c"), []byte{0}, []byte{3}), "CandidateData", "sdp_m_index"},
		{"candidate truncated u16", CandidateData{}, cat(lstr("c"), []byte{0}, []byte{1, 5}), "CandidateData", "sdp_m_index"},
		{"friend invalid utf8", Friend{}, lstr("\xc0\x80"), "Friend", "fs_id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := decodeInto(tt.v, tt.in)
			var de *DecodeError
			if !errors.As(err, &de) {
				t.Fatalf("err = %v, want *DecodeError", err)
			}
			if de.Type != tt.typ || de.Field != tt.field {
				t.Fatalf("err = %v, want %s.%s", err, tt.typ, tt.field)
			}
		})
	}
}

func TestMemberBadRegionTag(t *testing.T) {
	gm := sampleMember("u")
	b := gm.MarshalBincode()
	off := 4 + len(lstr("gid")) + len(lstr("u")) + len(lstr("name-u")) + len(lstr("av")) + 8
	if b[off] != 1 {
		t.Fatalf("offset arithmetic wrong: %v", b)
	}
	b[off] = 2
	var v GroupMember
	err := v.UnmarshalBincode(b)
	var de *DecodeError
	if !errors.As(err, &de) || de.Field != "region" || de.Offset != off {
		t.Fatalf("err = %v, want region at offset %d", err, off)
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	gi := sampleGroupInfo()
	members := make([]GroupMember, 50)
	for i := range members {
		members[i] = sampleMember(string(rune('a' + i%26)))
		if i%3 == 0 {
			members[i].Remark = ptr("r")
			members[i].Region = nil
		}
	}
	tests := []payload{
		GroupInfo{},
		gi,
		GroupMember{},
		GroupInvitation{Info: &gi, Members: members},
		GroupInvitation{Info: &GroupInfo{}, Members: []GroupMember{}},
		Friend{},
		Friend{Region: ptr(""), Remark: ptr(""), Email: ptr("")},
		FriendshipWithUser{},
		FriendshipWithUser{ApplyMsg: ptr("please"), Remark: ptr("x"), Email: ptr("y"), Region: ptr("z")},
		MsgRead{MsgSeq: []int64{}},
		MsgRead{MsgSeq: []int64{1 << 62, -1 << 63}, UserID: "u"},
		CandidateData{},
		CandidateData{Candidate: "candidate:1 1 udp 2122260223 192.168.1.2 54321 typ host", SdpMid: ptr("0"), SdpMIndex: ptr(uint16(0))},
	}
	for _, v := range tests {
		enc := v.MarshalBincode()
		got, err := decodeInto(v, enc)
		if err != nil {
			t.Fatalf("%T: %v", v, err)
		}
		if !reflect.DeepEqual(got, v) {
			t.Fatalf("%T round trip:\n got %+v\nwant %+v", v, got, v)
		}
	}
}

func TestStrings(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		enc  []byte
	}{
		{"empty", []string{}, le64(0)},
		{"two", []string{"ab", ""}, cat(le64(2), le64(2), []byte("ab"), le64(0))},
		{"unicode", []string{"世界"}, cat(le64(1), lstr("世界"))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := EncodeStrings(tt.in); !bytes.Equal(got, tt.enc) {
				t.Errorf("EncodeStrings = %v, want %v", got, tt.enc)
			}
			if got := AppendStrings([]byte{7}, tt.in); !bytes.Equal(got, cat([]byte{7}, tt.enc)) {
				t.Errorf("AppendStrings = %v", got)
			}
			got, err := DecodeStrings(tt.enc)
			if err != nil || got == nil || !reflect.DeepEqual(got, tt.in) {
				t.Errorf("DecodeStrings = %#v, %v", got, err)
			}
			for cut := range len(tt.enc) {
				if _, err := DecodeStrings(tt.enc[:cut]); !errors.Is(err, ErrMalformed) {
					t.Errorf("DecodeStrings(%d bytes) err = %v", cut, err)
				}
			}
		})
	}
	if got := EncodeStrings(nil); !bytes.Equal(got, le64(0)) {
		t.Errorf("EncodeStrings(nil) = %v", got)
	}
	huge := cat(le64(1<<62), lstr("a"))
	n := bytesAllocated(100, func() {
		if _, err := DecodeStrings(huge); !errors.Is(err, ErrMalformed) {
			t.Fatalf("huge count: err = %v", err)
		}
	})
	if n > 512 {
		t.Fatalf("huge count allocated %d bytes", n)
	}
	if _, err := DecodeStrings(cat(le64(1), lstr("\xff"))); !errors.Is(err, ErrMalformed) {
		t.Fatalf("invalid UTF-8 accepted: %v", err)
	}
}

func TestHangupAndAudio(t *testing.T) {
	enc := EncodeHangup(0x0102030405060708)
	if want := []byte{1, 2, 3, 4, 5, 6, 7, 8}; !bytes.Equal(enc, want) {
		t.Fatalf("EncodeHangup = %v, want big-endian %v", enc, want)
	}
	tests := []struct {
		name    string
		in      []byte
		want    int64
		wantErr bool
	}{
		{"big-endian", []byte{0, 0, 0, 0, 0, 0, 0x30, 0x39}, 12345, false},
		{"negative", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe}, -2, false},
		{"short", []byte{1, 2, 3}, 0, true},
		{"long", make([]byte, 9), 0, true},
		{"empty", nil, 0, true},
	}
	for _, tt := range tests {
		got, err := HangupDuration(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("%s: HangupDuration = %d, %v", tt.name, got, err)
		}
		if err != nil && !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: error does not wrap ErrMalformed", tt.name)
		}
	}

	a := EncodeAudio(12, "obj.webm")
	if !bytes.Equal(a, append([]byte{12}, "obj.webm"...)) {
		t.Fatalf("EncodeAudio = %v", a)
	}
	sec, name, err := ParseAudio(a)
	if err != nil || sec != 12 || name != "obj.webm" {
		t.Fatalf("ParseAudio = %d, %q, %v", sec, name, err)
	}
	if _, _, err := ParseAudio(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("ParseAudio(nil) err = %v", err)
	}
}

func TestPayloadJSON(t *testing.T) {
	gi := sampleGroupInfo()
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"GroupInfo", gi,
			`{"id":"gid","owner":"u1","name":"团队","avatar":"a.png,b.png","description":"d","announcement":"ann","create_time":1700000000000,"update_time":1700000000001}`},
		{"GroupMember", sampleMember("u2"),
			`{"age":30,"group_id":"gid","user_id":"u2","group_name":"name-u2","avatar":"av","joined_at":1700000000002,"region":"内网IP","gender":"male","remark":null,"signature":"sig","role":2}`},
		{"GroupInvitation nil", GroupInvitation{}, `{"info":null,"members":[]}`},
		{"GroupInvitation ptr", &GroupInvitation{Info: &GroupInfo{}}, `{"info":{"id":"","owner":"","name":"","avatar":"","description":"","announcement":"","create_time":0,"update_time":0},"members":[]}`},
		{"Friend", Friend{Age: 1, Status: FriendDeleted},
			`{"fs_id":"","friend_id":"","account":"","name":"","avatar":"","gender":"","age":1,"region":null,"status":4,"remark":null,"email":null,"source":"","signature":"","create_time":0,"update_time":0}`},
		{"FriendshipWithUser", FriendshipWithUser{ApplyMsg: ptr("hi")},
			`{"fs_id":"","user_id":"","name":"","avatar":"","gender":"","age":0,"region":null,"status":0,"apply_msg":"hi","source":"","create_time":0,"account":"","remark":null,"email":null}`},
		{"MsgRead nil", MsgRead{UserID: "u"}, `{"msg_seq":[],"user_id":"u"}`},
		{"MsgRead", MsgRead{MsgSeq: []int64{1, 2}}, `{"msg_seq":[1,2],"user_id":""}`},
		{"CandidateData", CandidateData{Candidate: "c", SdpMIndex: ptr(uint16(3))}, `{"candidate":"c","sdp_mid":null,"sdp_m_index":3}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := json.Marshal(tt.v)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Fatalf("json:\n got %s\nwant %s", got, tt.want)
			}
		})
	}
	// Decoding the JSON back gives the same value.
	var inv GroupInvitation
	if err := json.Unmarshal([]byte(`{"info":null,"members":[{"age":1,"region":null,"role":0}]}`), &inv); err != nil {
		t.Fatal(err)
	}
	if inv.Info != nil || len(inv.Members) != 1 || inv.Members[0].Age != 1 {
		t.Fatalf("GroupInvitation from JSON = %+v", inv)
	}
}
