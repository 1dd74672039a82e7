package wire

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
)

// Content payloads carried in Msg.Content (sandcat-wire.md §3.4) and served
// as HTTP JSON (§2.2, §2.3). Field order is the bincode order (the proto
// declaration order) and must never change. Option fields are pointers: nil
// is bincode None and JSON null.
//
// Each type has AppendBincode/MarshalBincode (value receivers) and
// UnmarshalBincode (pointer receiver; trailing bytes are ignored, errors wrap
// ErrMalformed, the receiver is unchanged on error).

// GroupInfo is a group's profile (content of GroupUpdate; GroupInvitation.Info).
type GroupInfo struct {
	ID           string `json:"id"`
	Owner        string `json:"owner"`
	Name         string `json:"name"`
	Avatar       string `json:"avatar"`
	Description  string `json:"description"`
	Announcement string `json:"announcement"`
	CreateTime   int64  `json:"create_time"`
	UpdateTime   int64  `json:"update_time"`
}

// GroupMember is one member of a group. GroupName is the member's user name.
type GroupMember struct {
	Age       int32   `json:"age"`
	GroupID   string  `json:"group_id"`
	UserID    string  `json:"user_id"`
	GroupName string  `json:"group_name"`
	Avatar    string  `json:"avatar"`
	JoinedAt  int64   `json:"joined_at"`
	Region    *string `json:"region"`
	Gender    string  `json:"gender"`
	Remark    *string `json:"remark"`
	Signature string  `json:"signature"`
	Role      int32   `json:"role"`
}

// GroupInvitation is the content of GroupInvitation (and the body of
// POST /group/:user_id). Members is JSON [] when empty, never null.
type GroupInvitation struct {
	Info    *GroupInfo    `json:"info"`
	Members []GroupMember `json:"members"`
}

// Friend is a friend entry (content of FriendApplyResp; friend sync).
type Friend struct {
	FsID       string  `json:"fs_id"`
	FriendID   string  `json:"friend_id"`
	Account    string  `json:"account"`
	Name       string  `json:"name"`
	Avatar     string  `json:"avatar"`
	Gender     string  `json:"gender"`
	Age        int32   `json:"age"`
	Region     *string `json:"region"`
	Status     int32   `json:"status"`
	Remark     *string `json:"remark"`
	Email      *string `json:"email"`
	Source     string  `json:"source"`
	Signature  string  `json:"signature"`
	CreateTime int64   `json:"create_time"`
	UpdateTime int64   `json:"update_time"`
}

// FriendshipWithUser is a friend request with the other user's profile
// (content of FriendApplyReq; friend sync).
type FriendshipWithUser struct {
	FsID       string  `json:"fs_id"`
	UserID     string  `json:"user_id"`
	Name       string  `json:"name"`
	Avatar     string  `json:"avatar"`
	Gender     string  `json:"gender"`
	Age        int32   `json:"age"`
	Region     *string `json:"region"`
	Status     int32   `json:"status"`
	ApplyMsg   *string `json:"apply_msg"`
	Source     string  `json:"source"`
	CreateTime int64   `json:"create_time"`
	Account    string  `json:"account"`
	Remark     *string `json:"remark"`
	Email      *string `json:"email"`
}

// MsgRead is the content of a Read frame: the receiver seqs marked read.
// MsgSeq is JSON [] when empty, never null.
type MsgRead struct {
	MsgSeq []int64 `json:"msg_seq"`
	UserID string  `json:"user_id"`
}

// CandidateData is the content of a Candidate frame (WebRTC ICE candidate).
// SdpMIndex is a u16 on the wire (the proto's int32 is not what is sent).
type CandidateData struct {
	Candidate string  `json:"candidate"`
	SdpMid    *string `json:"sdp_mid"`
	SdpMIndex *uint16 `json:"sdp_m_index"`
}

// Minimum encoded sizes, used to bound Vec element counts before allocating.
const (
	groupInfoMinSize   = 6*8 + 2*8
	groupMemberMinSize = 4 + 4*8 + 8 + 1 + 8 + 1 + 8 + 4
)

// ---------------------------------------------------------------------------
// GroupInfo

// AppendBincode appends the bincode encoding of g to dst.
func (g GroupInfo) AppendBincode(dst []byte) []byte {
	b := appendString(dst, g.ID)
	b = appendString(b, g.Owner)
	b = appendString(b, g.Name)
	b = appendString(b, g.Avatar)
	b = appendString(b, g.Description)
	b = appendString(b, g.Announcement)
	b = appendI64(b, g.CreateTime)
	return appendI64(b, g.UpdateTime)
}

// MarshalBincode returns the bincode encoding of g.
func (g GroupInfo) MarshalBincode() []byte { return g.AppendBincode(nil) }

// UnmarshalBincode decodes a bincode GroupInfo.
func (g *GroupInfo) UnmarshalBincode(b []byte) error {
	return unmarshalWith(b, "GroupInfo", g, decodeGroupInfo)
}

func decodeGroupInfo(d *decoder) (g GroupInfo) {
	g.ID = d.str("id")
	g.Owner = d.str("owner")
	g.Name = d.str("name")
	g.Avatar = d.str("avatar")
	g.Description = d.str("description")
	g.Announcement = d.str("announcement")
	g.CreateTime = d.i64("create_time")
	g.UpdateTime = d.i64("update_time")
	return g
}

// ---------------------------------------------------------------------------
// GroupMember

// AppendBincode appends the bincode encoding of gm to dst.
func (gm GroupMember) AppendBincode(dst []byte) []byte {
	b := appendI32(dst, gm.Age)
	b = appendString(b, gm.GroupID)
	b = appendString(b, gm.UserID)
	b = appendString(b, gm.GroupName)
	b = appendString(b, gm.Avatar)
	b = appendI64(b, gm.JoinedAt)
	b = appendOptString(b, gm.Region)
	b = appendString(b, gm.Gender)
	b = appendOptString(b, gm.Remark)
	b = appendString(b, gm.Signature)
	return appendI32(b, gm.Role)
}

// MarshalBincode returns the bincode encoding of gm.
func (gm GroupMember) MarshalBincode() []byte { return gm.AppendBincode(nil) }

// UnmarshalBincode decodes a bincode GroupMember.
func (gm *GroupMember) UnmarshalBincode(b []byte) error {
	return unmarshalWith(b, "GroupMember", gm, decodeGroupMember)
}

func decodeGroupMember(d *decoder) (gm GroupMember) {
	gm.Age = d.i32("age")
	gm.GroupID = d.str("group_id")
	gm.UserID = d.str("user_id")
	gm.GroupName = d.str("group_name")
	gm.Avatar = d.str("avatar")
	gm.JoinedAt = d.i64("joined_at")
	gm.Region = d.optString("region")
	gm.Gender = d.str("gender")
	gm.Remark = d.optString("remark")
	gm.Signature = d.str("signature")
	gm.Role = d.i32("role")
	return gm
}

// ---------------------------------------------------------------------------
// GroupInvitation

// AppendBincode appends the bincode encoding of gi to dst:
// Option<GroupInfo> then Vec<GroupMember>.
func (gi GroupInvitation) AppendBincode(dst []byte) []byte {
	b := dst
	if gi.Info == nil {
		b = append(b, 0)
	} else {
		b = append(b, 1)
		b = gi.Info.AppendBincode(b)
	}
	b = appendLen(b, len(gi.Members))
	for i := range gi.Members {
		b = gi.Members[i].AppendBincode(b)
	}
	return b
}

// MarshalBincode returns the bincode encoding of gi.
func (gi GroupInvitation) MarshalBincode() []byte { return gi.AppendBincode(nil) }

// UnmarshalBincode decodes a bincode GroupInvitation.
func (gi *GroupInvitation) UnmarshalBincode(b []byte) error {
	return unmarshalWith(b, "GroupInvitation", gi, decodeGroupInvitation)
}

func decodeGroupInvitation(d *decoder) (gi GroupInvitation) {
	if d.some("info") {
		d.typ = "GroupInfo"
		info := decodeGroupInfo(d)
		d.typ = "GroupInvitation"
		if d.err != nil {
			return GroupInvitation{}
		}
		gi.Info = &info
	}
	n := d.length("members", groupMemberMinSize)
	if d.err != nil {
		return GroupInvitation{}
	}
	gi.Members = make([]GroupMember, n)
	d.typ = "GroupMember"
	for i := range gi.Members {
		gi.Members[i] = decodeGroupMember(d)
		if d.err != nil {
			return GroupInvitation{}
		}
	}
	d.typ = "GroupInvitation"
	return gi
}

// MarshalJSON encodes gi with members as [] (never null) when empty.
func (gi GroupInvitation) MarshalJSON() ([]byte, error) {
	type plain GroupInvitation
	if gi.Members == nil {
		gi.Members = []GroupMember{}
	}
	return json.Marshal(plain(gi))
}

// ---------------------------------------------------------------------------
// Friend

// AppendBincode appends the bincode encoding of f to dst.
func (f Friend) AppendBincode(dst []byte) []byte {
	b := appendString(dst, f.FsID)
	b = appendString(b, f.FriendID)
	b = appendString(b, f.Account)
	b = appendString(b, f.Name)
	b = appendString(b, f.Avatar)
	b = appendString(b, f.Gender)
	b = appendI32(b, f.Age)
	b = appendOptString(b, f.Region)
	b = appendI32(b, f.Status)
	b = appendOptString(b, f.Remark)
	b = appendOptString(b, f.Email)
	b = appendString(b, f.Source)
	b = appendString(b, f.Signature)
	b = appendI64(b, f.CreateTime)
	return appendI64(b, f.UpdateTime)
}

// MarshalBincode returns the bincode encoding of f.
func (f Friend) MarshalBincode() []byte { return f.AppendBincode(nil) }

// UnmarshalBincode decodes a bincode Friend.
func (f *Friend) UnmarshalBincode(b []byte) error {
	return unmarshalWith(b, "Friend", f, decodeFriend)
}

func decodeFriend(d *decoder) (f Friend) {
	f.FsID = d.str("fs_id")
	f.FriendID = d.str("friend_id")
	f.Account = d.str("account")
	f.Name = d.str("name")
	f.Avatar = d.str("avatar")
	f.Gender = d.str("gender")
	f.Age = d.i32("age")
	f.Region = d.optString("region")
	f.Status = d.i32("status")
	f.Remark = d.optString("remark")
	f.Email = d.optString("email")
	f.Source = d.str("source")
	f.Signature = d.str("signature")
	f.CreateTime = d.i64("create_time")
	f.UpdateTime = d.i64("update_time")
	return f
}

// ---------------------------------------------------------------------------
// FriendshipWithUser

// AppendBincode appends the bincode encoding of f to dst.
func (f FriendshipWithUser) AppendBincode(dst []byte) []byte {
	b := appendString(dst, f.FsID)
	b = appendString(b, f.UserID)
	b = appendString(b, f.Name)
	b = appendString(b, f.Avatar)
	b = appendString(b, f.Gender)
	b = appendI32(b, f.Age)
	b = appendOptString(b, f.Region)
	b = appendI32(b, f.Status)
	b = appendOptString(b, f.ApplyMsg)
	b = appendString(b, f.Source)
	b = appendI64(b, f.CreateTime)
	b = appendString(b, f.Account)
	b = appendOptString(b, f.Remark)
	return appendOptString(b, f.Email)
}

// MarshalBincode returns the bincode encoding of f.
func (f FriendshipWithUser) MarshalBincode() []byte { return f.AppendBincode(nil) }

// UnmarshalBincode decodes a bincode FriendshipWithUser.
func (f *FriendshipWithUser) UnmarshalBincode(b []byte) error {
	return unmarshalWith(b, "FriendshipWithUser", f, decodeFriendshipWithUser)
}

func decodeFriendshipWithUser(d *decoder) (f FriendshipWithUser) {
	f.FsID = d.str("fs_id")
	f.UserID = d.str("user_id")
	f.Name = d.str("name")
	f.Avatar = d.str("avatar")
	f.Gender = d.str("gender")
	f.Age = d.i32("age")
	f.Region = d.optString("region")
	f.Status = d.i32("status")
	f.ApplyMsg = d.optString("apply_msg")
	f.Source = d.str("source")
	f.CreateTime = d.i64("create_time")
	f.Account = d.str("account")
	f.Remark = d.optString("remark")
	f.Email = d.optString("email")
	return f
}

// ---------------------------------------------------------------------------
// MsgRead

// AppendBincode appends the bincode encoding of r to dst.
func (r MsgRead) AppendBincode(dst []byte) []byte {
	b := appendLen(dst, len(r.MsgSeq))
	for _, s := range r.MsgSeq {
		b = appendI64(b, s)
	}
	return appendString(b, r.UserID)
}

// MarshalBincode returns the bincode encoding of r.
func (r MsgRead) MarshalBincode() []byte { return r.AppendBincode(nil) }

// UnmarshalBincode decodes a bincode MsgRead.
func (r *MsgRead) UnmarshalBincode(b []byte) error {
	return unmarshalWith(b, "MsgRead", r, decodeMsgRead)
}

func decodeMsgRead(d *decoder) (r MsgRead) {
	r.MsgSeq = d.i64s("msg_seq")
	r.UserID = d.str("user_id")
	return r
}

// MarshalJSON encodes r with msg_seq as [] (never null) when empty.
func (r MsgRead) MarshalJSON() ([]byte, error) {
	type plain MsgRead
	if r.MsgSeq == nil {
		r.MsgSeq = []int64{}
	}
	return json.Marshal(plain(r))
}

// ---------------------------------------------------------------------------
// CandidateData

// AppendBincode appends the bincode encoding of c to dst.
func (c CandidateData) AppendBincode(dst []byte) []byte {
	b := appendString(dst, c.Candidate)
	b = appendOptString(b, c.SdpMid)
	if c.SdpMIndex == nil {
		return append(b, 0)
	}
	b = append(b, 1)
	return appendU16(b, *c.SdpMIndex)
}

// MarshalBincode returns the bincode encoding of c.
func (c CandidateData) MarshalBincode() []byte { return c.AppendBincode(nil) }

// UnmarshalBincode decodes a bincode CandidateData.
func (c *CandidateData) UnmarshalBincode(b []byte) error {
	return unmarshalWith(b, "CandidateData", c, decodeCandidateData)
}

func decodeCandidateData(d *decoder) (c CandidateData) {
	c.Candidate = d.str("candidate")
	c.SdpMid = d.optString("sdp_mid")
	c.SdpMIndex = d.optU16("sdp_m_index")
	return c
}

// ---------------------------------------------------------------------------
// Vec<String> (GroupInviteNew, GroupRemoveMember)

// EncodeStrings returns the bincode encoding of a Vec<String>.
func EncodeStrings(ss []string) []byte { return appendStrings(nil, ss) }

// AppendStrings appends the bincode encoding of a Vec<String> to dst.
func AppendStrings(dst []byte, ss []string) []byte { return appendStrings(dst, ss) }

// DecodeStrings decodes a bincode Vec<String>. The result is non-nil on
// success (empty, not nil, for a zero-length list).
func DecodeStrings(b []byte) ([]string, error) {
	d := decoder{b: b, typ: "[]string"}
	ss := d.strings("items")
	if d.err != nil {
		return nil, d.err
	}
	return ss, nil
}

// ---------------------------------------------------------------------------
// Non-bincode contents

// EncodeHangup returns the content of a Hangup frame: the call duration in
// milliseconds as an 8-byte big-endian i64 (not bincode).
func EncodeHangup(durationMs int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(durationMs))
}

// HangupDuration parses the content of a Hangup frame (exactly 8 bytes,
// big-endian i64 milliseconds).
func HangupDuration(content []byte) (int64, error) {
	if len(content) != 8 {
		return 0, fmt.Errorf("%w: hangup content is %d bytes, want 8", ErrMalformed, len(content))
	}
	return int64(binary.BigEndian.Uint64(content)), nil
}

// EncodeAudio returns the content of an Audio message: byte 0 is the
// duration in seconds, then the object name.
func EncodeAudio(seconds uint8, objectName string) []byte {
	b := make([]byte, 0, 1+len(objectName))
	b = append(b, seconds)
	return append(b, objectName...)
}

// ParseAudio splits the content of an Audio message into its duration in
// seconds and object name.
func ParseAudio(content []byte) (seconds uint8, objectName string, err error) {
	if len(content) == 0 {
		return 0, "", fmt.Errorf("%w: empty audio content", ErrMalformed)
	}
	return content[0], string(content[1:]), nil
}

// unmarshalWith runs decode over b and stores the result in *dst on success.
func unmarshalWith[T any](b []byte, typ string, dst *T, decode func(*decoder) T) error {
	d := decoder{b: b, typ: typ}
	v := decode(&d)
	if d.err != nil {
		return d.err
	}
	*dst = v
	return nil
}
