package wire

import "strconv"

// msgTypeCount is the number of defined message types (0..msgTypeCount-1).
const msgTypeCount = 28

// String returns the proto name of t (e.g. "MsgTypeSingleMsg", as used by the
// config's except_types), or "MsgType(N)" for values outside the enum.
func (t MsgType) String() string {
	switch t {
	case MsgTypeSingleMsg:
		return "MsgTypeSingleMsg"
	case MsgTypeGroupMsg:
		return "MsgTypeGroupMsg"
	case MsgTypeGroupInvitation:
		return "MsgTypeGroupInvitation"
	case MsgTypeGroupInviteNew:
		return "MsgTypeGroupInviteNew"
	case MsgTypeGroupMemberExit:
		return "MsgTypeGroupMemberExit"
	case MsgTypeGroupRemoveMember:
		return "MsgTypeGroupRemoveMember"
	case MsgTypeGroupDismiss:
		return "MsgTypeGroupDismiss"
	case MsgTypeGroupDismissOrExitReceived:
		return "MsgTypeGroupDismissOrExitReceived"
	case MsgTypeGroupInvitationReceived:
		return "MsgTypeGroupInvitationReceived"
	case MsgTypeGroupUpdate:
		return "MsgTypeGroupUpdate"
	case MsgTypeFriendApplyReq:
		return "MsgTypeFriendApplyReq"
	case MsgTypeFriendApplyResp:
		return "MsgTypeFriendApplyResp"
	case MsgTypeFriendBlack:
		return "MsgTypeFriendBlack"
	case MsgTypeFriendDelete:
		return "MsgTypeFriendDelete"
	case MsgTypeSingleCallInvite:
		return "MsgTypeSingleCallInvite"
	case MsgTypeRejectSingleCall:
		return "MsgTypeRejectSingleCall"
	case MsgTypeAgreeSingleCall:
		return "MsgTypeAgreeSingleCall"
	case MsgTypeSingleCallInviteNotAnswer:
		return "MsgTypeSingleCallInviteNotAnswer"
	case MsgTypeSingleCallInviteCancel:
		return "MsgTypeSingleCallInviteCancel"
	case MsgTypeSingleCallOffer:
		return "MsgTypeSingleCallOffer"
	case MsgTypeHangup:
		return "MsgTypeHangup"
	case MsgTypeConnectSingleCall:
		return "MsgTypeConnectSingleCall"
	case MsgTypeCandidate:
		return "MsgTypeCandidate"
	case MsgTypeRead:
		return "MsgTypeRead"
	case MsgTypeMsgRecResp:
		return "MsgTypeMsgRecResp"
	case MsgTypeNotification:
		return "MsgTypeNotification"
	case MsgTypeService:
		return "MsgTypeService"
	case MsgTypeFriendshipReceived:
		return "MsgTypeFriendshipReceived"
	}
	return "MsgType(" + strconv.Itoa(int(t)) + ")"
}

// Valid reports whether t is a defined message type.
func (t MsgType) Valid() bool { return t >= 0 && t < msgTypeCount }

// ParseMsgType returns the MsgType with the given proto name
// (e.g. "MsgTypeGroupMsg").
func ParseMsgType(name string) (MsgType, bool) {
	for t := MsgType(0); t < msgTypeCount; t++ {
		if t.String() == name {
			return t, true
		}
	}
	return 0, false
}
