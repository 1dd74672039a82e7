// Package msgserver is the message pipeline behind the gateway and the API:
//
//   - Producer (Send): assigns server_id, send_time and the sender's send_seq,
//     publishes an envelope {msg, to} on the bus keyed by conversation, and
//     returns once the record is durable;
//   - Consumer: reads the bus in order, allocates receiver seqs, stores the
//     inbox entries and the history of a whole batch, then pushes; its bus
//     position commits only after all of that succeeded;
//   - Pusher: sends each delivery only to the gateways that hold the
//     recipient's connections (Router + GatewayClient; im/discovery has the
//     in-process implementation).
//
// What happens to each msg_type is decided in one place, Classify.
package msgserver

import "github.com/sandcat-im/sandcat/im/wire"

// Class is how the pipeline treats one msg_type (sandcat-wire.md §3.4, with
// the fixes of §11).
type Class struct {
	// Valid is false for values outside the enum and for MsgRecResp (24),
	// which only the gateway sends, as the ACK.
	Valid bool
	// FromClient: a client may send it over the WebSocket. Notices that the
	// API produces (2–6, 9–13) and the reserved 24–26 are refused from a
	// client, so a client cannot forge them.
	FromClient bool
	// Group: fanned out to a group's members; receiver_id is the group id.
	Group bool
	// SendSeq: the producer allocates a send_seq of the sender. Only types
	// stored in the inbox with a recv seq and a user sender: a send_seq lets
	// the sender's other devices pull what they sent, which is pointless for
	// what is not stored (B15 fixed: signalling 14, 16, 19, 21, 22, Read 23
	// and the *Received ACKs consume none). FriendDelete (13) consumes none,
	// as in the original (§4.1).
	SendSeq bool
	// NewServerID: the producer assigns a fresh server_id. The *Received
	// types (7, 8, 27) carry the server_id of the message they acknowledge.
	NewServerID bool
	// RecvSeq: the consumer allocates a receiver seq per recipient.
	RecvSeq bool
	// Inbox: stored in the offline inbox.
	Inbox bool
	// History: appended to the long-term history (chat only: 0 and 1; bug B1
	// fixed: single chat is archived, signalling is not).
	History bool
	// Push: delivered to the native clients' live connections. Never 7, 8,
	// 12, 23, 25, 26 or 27: the client panics on them (§9).
	Push bool
	// DeleteInbox: deletes the acknowledging user's inbox entry of its
	// server_id (7, 8, 27); see Consumer.
	DeleteInbox bool
	// MarkRead: marks the sender's inbox entries read (23); nothing else.
	MarkRead bool
	// MembersBefore / MembersAfter: a group notice that changes the member
	// set; the member cache of the group is invalidated before the fan-out
	// (2 create, 3 invite: the new members must get it) or after it (4 exit,
	// 5 remove, 6 dismiss, 9 update: the members being removed still get it
	// while the cache holds them; the API should pass them in `to`).
	MembersBefore, MembersAfter bool
}

// classes is indexed by msg_type.
var classes = [...]Class{
	wire.MsgTypeSingleMsg:                  {Valid: true, FromClient: true, SendSeq: true, NewServerID: true, RecvSeq: true, Inbox: true, History: true, Push: true},
	wire.MsgTypeGroupMsg:                   {Valid: true, FromClient: true, Group: true, SendSeq: true, NewServerID: true, RecvSeq: true, Inbox: true, History: true, Push: true},
	wire.MsgTypeGroupInvitation:            {Valid: true, Group: true, SendSeq: true, NewServerID: true, RecvSeq: true, Inbox: true, Push: true, MembersBefore: true},
	wire.MsgTypeGroupInviteNew:             {Valid: true, Group: true, SendSeq: true, NewServerID: true, RecvSeq: true, Inbox: true, Push: true, MembersBefore: true},
	wire.MsgTypeGroupMemberExit:            {Valid: true, Group: true, SendSeq: true, NewServerID: true, RecvSeq: true, Inbox: true, Push: true, MembersAfter: true},
	wire.MsgTypeGroupRemoveMember:          {Valid: true, Group: true, SendSeq: true, NewServerID: true, RecvSeq: true, Inbox: true, Push: true, MembersAfter: true},
	wire.MsgTypeGroupDismiss:               {Valid: true, Group: true, SendSeq: true, NewServerID: true, RecvSeq: true, Inbox: true, Push: true, MembersAfter: true},
	wire.MsgTypeGroupDismissOrExitReceived: {Valid: true, FromClient: true, DeleteInbox: true},
	wire.MsgTypeGroupInvitationReceived:    {Valid: true, FromClient: true, DeleteInbox: true},
	wire.MsgTypeGroupUpdate:                {Valid: true, Group: true, SendSeq: true, NewServerID: true, RecvSeq: true, Inbox: true, Push: true, MembersAfter: true},
	wire.MsgTypeFriendApplyReq:             {Valid: true, SendSeq: true, NewServerID: true, RecvSeq: true, Inbox: true, Push: true},
	wire.MsgTypeFriendApplyResp:            {Valid: true, SendSeq: true, NewServerID: true, RecvSeq: true, Inbox: true, Push: true},
	wire.MsgTypeFriendBlack:                {Valid: true, NewServerID: true, Inbox: true},
	wire.MsgTypeFriendDelete:               {Valid: true, NewServerID: true, RecvSeq: true, Inbox: true, Push: true},
	wire.MsgTypeSingleCallInvite:           {Valid: true, FromClient: true, NewServerID: true, Push: true},
	wire.MsgTypeRejectSingleCall:           {Valid: true, FromClient: true, SendSeq: true, NewServerID: true, RecvSeq: true, Inbox: true, Push: true},
	wire.MsgTypeAgreeSingleCall:            {Valid: true, FromClient: true, NewServerID: true, Push: true},
	wire.MsgTypeSingleCallInviteNotAnswer:  {Valid: true, FromClient: true, SendSeq: true, NewServerID: true, RecvSeq: true, Inbox: true, Push: true},
	wire.MsgTypeSingleCallInviteCancel:     {Valid: true, FromClient: true, SendSeq: true, NewServerID: true, RecvSeq: true, Inbox: true, Push: true},
	wire.MsgTypeSingleCallOffer:            {Valid: true, FromClient: true, NewServerID: true, Push: true},
	wire.MsgTypeHangup:                     {Valid: true, FromClient: true, SendSeq: true, NewServerID: true, RecvSeq: true, Inbox: true, Push: true},
	wire.MsgTypeConnectSingleCall:          {Valid: true, FromClient: true, NewServerID: true, Push: true},
	wire.MsgTypeCandidate:                  {Valid: true, FromClient: true, NewServerID: true, Push: true},
	wire.MsgTypeRead:                       {Valid: true, FromClient: true, NewServerID: true, MarkRead: true},
	wire.MsgTypeMsgRecResp:                 {},
	wire.MsgTypeNotification:               {Valid: true, NewServerID: true, Inbox: true},
	wire.MsgTypeService:                    {Valid: true, NewServerID: true, Inbox: true},
	wire.MsgTypeFriendshipReceived:         {Valid: true, FromClient: true, DeleteInbox: true},
}

// Classify returns the class of t; the zero Class (Valid false) for unknown
// values.
func Classify(t wire.MsgType) Class {
	if t < 0 || int(t) >= len(classes) {
		return Class{}
	}
	return classes[t]
}

// ConversationKey is the bus key of m: per-conversation order holds for
// records with the same key. Group types use the group id, Read its sender
// (it concerns only the sender's own inbox), everything else the receiver.
func ConversationKey(m *wire.Msg) string {
	c := Classify(m.MsgType)
	switch {
	case c.Group:
		return m.ReceiverID
	case c.MarkRead:
		return m.SendID
	}
	return m.ReceiverID
}
