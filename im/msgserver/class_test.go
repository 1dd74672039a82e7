package msgserver

import (
	"testing"

	"github.com/sandcat-im/sandcat/im/wire"
)

func TestClassifyEveryType(t *testing.T) {
	// Columns: valid, fromClient, group, sendSeq, newServerID, recvSeq, inbox,
	// history, push, deleteInbox, markRead, membersBefore, membersAfter.
	type row struct {
		t                                                 wire.MsgType
		valid, client, group, sendSeq, newID, recv, inbox bool
		history, push, del, read, before, after           bool
	}
	const y, n = true, false
	rows := []row{
		{wire.MsgTypeSingleMsg, y, y, n, y, y, y, y, y, y, n, n, n, n},
		{wire.MsgTypeGroupMsg, y, y, y, y, y, y, y, y, y, n, n, n, n},
		{wire.MsgTypeGroupInvitation, y, n, y, y, y, y, y, n, y, n, n, y, n},
		{wire.MsgTypeGroupInviteNew, y, n, y, y, y, y, y, n, y, n, n, y, n},
		{wire.MsgTypeGroupMemberExit, y, n, y, y, y, y, y, n, y, n, n, n, y},
		{wire.MsgTypeGroupRemoveMember, y, n, y, y, y, y, y, n, y, n, n, n, y},
		{wire.MsgTypeGroupDismiss, y, n, y, y, y, y, y, n, y, n, n, n, y},
		{wire.MsgTypeGroupDismissOrExitReceived, y, y, n, n, n, n, n, n, n, y, n, n, n},
		{wire.MsgTypeGroupInvitationReceived, y, y, n, n, n, n, n, n, n, y, n, n, n},
		{wire.MsgTypeGroupUpdate, y, n, y, y, y, y, y, n, y, n, n, n, y},
		{wire.MsgTypeFriendApplyReq, y, n, n, y, y, y, y, n, y, n, n, n, n},
		{wire.MsgTypeFriendApplyResp, y, n, n, y, y, y, y, n, y, n, n, n, n},
		{wire.MsgTypeFriendBlack, y, n, n, n, y, n, y, n, n, n, n, n, n},
		{wire.MsgTypeFriendDelete, y, n, n, n, y, y, y, n, y, n, n, n, n},
		{wire.MsgTypeSingleCallInvite, y, y, n, n, y, n, n, n, y, n, n, n, n},
		{wire.MsgTypeRejectSingleCall, y, y, n, y, y, y, y, n, y, n, n, n, n},
		{wire.MsgTypeAgreeSingleCall, y, y, n, n, y, n, n, n, y, n, n, n, n},
		{wire.MsgTypeSingleCallInviteNotAnswer, y, y, n, y, y, y, y, n, y, n, n, n, n},
		{wire.MsgTypeSingleCallInviteCancel, y, y, n, y, y, y, y, n, y, n, n, n, n},
		{wire.MsgTypeSingleCallOffer, y, y, n, n, y, n, n, n, y, n, n, n, n},
		{wire.MsgTypeHangup, y, y, n, y, y, y, y, n, y, n, n, n, n},
		{wire.MsgTypeConnectSingleCall, y, y, n, n, y, n, n, n, y, n, n, n, n},
		{wire.MsgTypeCandidate, y, y, n, n, y, n, n, n, y, n, n, n, n},
		{wire.MsgTypeRead, y, y, n, n, y, n, n, n, n, n, y, n, n},
		{wire.MsgTypeMsgRecResp, n, n, n, n, n, n, n, n, n, n, n, n, n},
		{wire.MsgTypeNotification, y, n, n, n, y, n, y, n, n, n, n, n, n},
		{wire.MsgTypeService, y, n, n, n, y, n, y, n, n, n, n, n, n},
		{wire.MsgTypeFriendshipReceived, y, y, n, n, n, n, n, n, n, y, n, n, n},
	}
	if len(rows) != 28 {
		t.Fatalf("table has %d rows, want all 28 types", len(rows))
	}
	for i, r := range rows {
		if int(r.t) != i {
			t.Fatalf("row %d is type %d", i, r.t)
		}
		t.Run(r.t.String(), func(t *testing.T) {
			got := Classify(r.t)
			want := Class{Valid: r.valid, FromClient: r.client, Group: r.group, SendSeq: r.sendSeq,
				NewServerID: r.newID, RecvSeq: r.recv, Inbox: r.inbox, History: r.history, Push: r.push,
				DeleteInbox: r.del, MarkRead: r.read, MembersBefore: r.before, MembersAfter: r.after}
			if got != want {
				t.Fatalf("Classify(%s)\n got %+v\nwant %+v", r.t, got, want)
			}
		})
	}
}

// Invariants the fixes of sandcat-wire.md §9 and §11 rely on.
func TestClassInvariants(t *testing.T) {
	for ty := wire.MsgType(-1); ty <= 30; ty++ {
		c := Classify(ty)
		if !ty.Valid() && c.Valid {
			t.Errorf("%s: valid class for an invalid type", ty)
		}
		switch ty {
		case 7, 8, 12, 23, 25, 26, 27: // the client panics on these (§9)
			if c.Push {
				t.Errorf("%s must never be pushed to a native client", ty)
			}
		}
		if c.SendSeq && (!c.Inbox || !c.RecvSeq) {
			t.Errorf("%s: consumes a send seq but is not stored with a recv seq (B15)", ty)
		}
		if c.History && ty != wire.MsgTypeSingleMsg && ty != wire.MsgTypeGroupMsg {
			t.Errorf("%s: only chat goes to history", ty)
		}
		if c.DeleteInbox && (c.NewServerID || c.Inbox || c.Push) {
			t.Errorf("%s: a *Received ack keeps its server_id and is neither stored nor pushed", ty)
		}
		if c.RecvSeq && !c.Inbox {
			t.Errorf("%s: a recv seq without an inbox entry would be a hole", ty)
		}
	}
}

func TestConversationKey(t *testing.T) {
	tests := []struct {
		m    wire.Msg
		want string
	}{
		{wire.Msg{MsgType: wire.MsgTypeSingleMsg, SendID: "a", ReceiverID: "b"}, "b"},
		{wire.Msg{MsgType: wire.MsgTypeGroupMsg, SendID: "a", ReceiverID: "g", GroupID: "g"}, "g"},
		{wire.Msg{MsgType: wire.MsgTypeGroupDismiss, SendID: "a", ReceiverID: "g"}, "g"},
		{wire.Msg{MsgType: wire.MsgTypeRead, SendID: "a", ReceiverID: "b"}, "a"},
		{wire.Msg{MsgType: wire.MsgTypeCandidate, SendID: "a", ReceiverID: "b"}, "b"},
	}
	for _, tt := range tests {
		if got := ConversationKey(&tt.m); got != tt.want {
			t.Errorf("%s: key %q, want %q", tt.m.MsgType, got, tt.want)
		}
	}
}

func TestEnvelopeRoundTrip(t *testing.T) {
	rel := "r1"
	tests := []struct {
		name string
		m    wire.Msg
		to   []string
	}{
		{"plain", wire.Msg{SendID: "a", ReceiverID: "b", LocalID: "l", ServerID: "s", Content: []byte("hi"), SendSeq: 3}, nil},
		{"recipients", wire.Msg{SendID: "a", ReceiverID: "g", GroupID: "g", MsgType: wire.MsgTypeGroupRemoveMember, RelatedMsgID: &rel}, []string{"x", "y"}},
		{"empty", wire.Msg{}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := EncodeEnvelope(&tt.m, tt.to)
			m, to, err := DecodeEnvelope(b)
			if err != nil {
				t.Fatal(err)
			}
			if string(m.MarshalBincode()) != string(tt.m.MarshalBincode()) {
				t.Fatalf("msg changed: %+v", m)
			}
			if len(to) != len(tt.to) {
				t.Fatalf("to %v, want %v", to, tt.to)
			}
			for i := range to {
				if to[i] != tt.to[i] {
					t.Fatalf("to %v, want %v", to, tt.to)
				}
			}
		})
	}
	for _, bad := range [][]byte{nil, {2}, {1}, {1, 0, 0}} {
		if _, _, err := DecodeEnvelope(bad); err == nil {
			t.Errorf("DecodeEnvelope(%v) succeeded", bad)
		}
	}
}
