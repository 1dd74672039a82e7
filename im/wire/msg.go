// Package wire holds the message frame the native Sandcat clients speak
// (Msg, its enums and content payloads) and its two encodings: bincode 1.x
// (binary WebSocket frames) and JSON (text frames, HTTP bodies, the bus).
package wire

// Msg is the frame of the Sandcat wire. Field order is the bincode order and
// must never change; JSON names are the proto snake_case names. Content is a
// JSON array of numbers on the JSON wire (see MarshalJSON).
type Msg struct {
	SendID       string  `json:"send_id"`
	ReceiverID   string  `json:"receiver_id"`
	LocalID      string  `json:"local_id"`
	ServerID     string  `json:"server_id"`
	CreateTime   int64   `json:"create_time"`
	SendTime     int64   `json:"send_time"`
	Seq          int64   `json:"seq"`
	MsgType      MsgType `json:"msg_type"`
	ContentType  int32   `json:"content_type"`
	Content      []byte  `json:"content"`
	IsRead       bool    `json:"is_read"`
	GroupID      string  `json:"group_id"`
	Platform     int32   `json:"platform"`
	Avatar       string  `json:"avatar"`
	Nickname     string  `json:"nickname"`
	RelatedMsgID *string `json:"related_msg_id"`
	SendSeq      int64   `json:"send_seq"`
}

// MsgType is the msg_type enum of the wire (sandcat-wire.md §3.3).
type MsgType int32

// Message types.
const (
	MsgTypeSingleMsg                  MsgType = 0
	MsgTypeGroupMsg                   MsgType = 1
	MsgTypeGroupInvitation            MsgType = 2
	MsgTypeGroupInviteNew             MsgType = 3
	MsgTypeGroupMemberExit            MsgType = 4
	MsgTypeGroupRemoveMember          MsgType = 5
	MsgTypeGroupDismiss               MsgType = 6
	MsgTypeGroupDismissOrExitReceived MsgType = 7
	MsgTypeGroupInvitationReceived    MsgType = 8
	MsgTypeGroupUpdate                MsgType = 9
	MsgTypeFriendApplyReq             MsgType = 10
	MsgTypeFriendApplyResp            MsgType = 11
	MsgTypeFriendBlack                MsgType = 12
	MsgTypeFriendDelete               MsgType = 13
	MsgTypeSingleCallInvite           MsgType = 14
	MsgTypeRejectSingleCall           MsgType = 15
	MsgTypeAgreeSingleCall            MsgType = 16
	MsgTypeSingleCallInviteNotAnswer  MsgType = 17
	MsgTypeSingleCallInviteCancel     MsgType = 18
	MsgTypeSingleCallOffer            MsgType = 19
	MsgTypeHangup                     MsgType = 20
	MsgTypeConnectSingleCall          MsgType = 21
	MsgTypeCandidate                  MsgType = 22
	MsgTypeRead                       MsgType = 23
	MsgTypeMsgRecResp                 MsgType = 24
	MsgTypeNotification               MsgType = 25
	MsgTypeService                    MsgType = 26
	MsgTypeFriendshipReceived         MsgType = 27
)

// Content types.
const (
	ContentDefault   int32 = 0
	ContentText      int32 = 1
	ContentImage     int32 = 2
	ContentVideo     int32 = 3
	ContentAudio     int32 = 4
	ContentFile      int32 = 5
	ContentEmoji     int32 = 6
	ContentVideoCall int32 = 7
	ContentAudioCall int32 = 8
	ContentError     int32 = 9
)

// Platforms.
const (
	PlatformDesktop int32 = 0
	PlatformMobile  int32 = 1
)

// Friendship statuses (FriendshipStatus enum).
const (
	FriendPending  int32 = 0
	FriendAccepted int32 = 1
	FriendRejected int32 = 2
	FriendBlacked  int32 = 3
	FriendDeleted  int32 = 4
)

// Group member roles (GroupMemberRole enum).
const (
	RoleOwner  int32 = 0
	RoleAdmin  int32 = 1
	RoleMember int32 = 2
)
