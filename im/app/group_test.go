package app_test

import (
	"fmt"
	"testing"

	"github.com/sandcat-im/sandcat/im/client"
	"github.com/sandcat-im/sandcat/im/wire"
)

// Scenario d: a 50-member group. The invitation and each group message reach
// every online member exactly once with the member's own seq and send_seq
// 0; offline members pull them; the creator's devices all get the echo of
// the invitation (it came from the API, not from one of them), and a
// sender's other device gets the echo of a group message.
func TestGroupOf50(t *testing.T) {
	s := startServer(t)
	gus := s.newUser("Gus")
	gusD, gusM := gus.dial(wire.PlatformDesktop), gus.dial(wire.PlatformMobile)
	const online, offline = 30, 19
	var members, on, off []*user
	for i := range online + offline {
		u := s.newUser(fmt.Sprintf("Member%02d", i))
		members = append(members, u)
		if i < online {
			u.dial(wire.PlatformDesktop)
			on = append(on, u)
		} else {
			off = append(off, u)
		}
	}
	ids := make([]string, len(members))
	for i, u := range members {
		ids[i] = u.ID
	}

	inv, err := gus.api.CreateGroup(ctxT(t), gus.ID, "Fifty", "avatar1.png,avatar2.png", ids)
	if err != nil {
		t.Fatalf("create group: %v", err)
	}
	if inv.Info == nil || inv.Info.ID == "" || inv.Info.Owner != gus.ID || inv.Info.Name != "Fifty" || len(inv.Members) != 50 {
		t.Fatalf("create group answer: info %+v, %d members", inv.Info, len(inv.Members))
	}
	gid := inv.Info.ID
	roles := map[string]int32{}
	for _, m := range inv.Members {
		roles[m.UserID] = m.Role
	}
	if roles[gus.ID] != wire.RoleOwner || len(roles) != 50 {
		t.Fatalf("roles %v", roles)
	}

	checkInvitation := func(where string, m wire.Msg, seq, sendSeq int64, server string) string {
		t.Helper()
		expect(t, where, m, want{typ: wire.MsgTypeGroupInvitation, send: gus.ID, recv: gid, group: gid, server: server,
			seq: seq, sendSeq: sendSeq, content: m.Content})
		var gi wire.GroupInvitation
		if err := gi.UnmarshalBincode(m.Content); err != nil {
			t.Fatalf("%s: content: %v", where, err)
		}
		if gi.Info == nil || gi.Info.ID != gid || len(gi.Members) != 50 {
			t.Fatalf("%s: content info %+v, %d members", where, gi.Info, len(gi.Members))
		}
		return m.ServerID
	}

	// The invitation: one copy per online member (seq 1, its first), and
	// one echo on each of the creator's two devices.
	all := []*dev{gusD, gusM}
	for _, u := range on {
		all = append(all, u.devices[0])
	}
	got := s.quiet(all...)
	var invID string
	for i, d := range all {
		if len(got[i]) != 1 {
			t.Fatalf("%s got %s, want one GroupInvitation", d.name, describe(got[i]))
		}
		if d.u == gus {
			invID = checkInvitation("invitation echo to "+d.name, got[i][0], 0, 1, invID)
		} else {
			invID = checkInvitation("invitation to "+d.name, got[i][0], 1, 0, invID)
		}
	}

	// A member's message, then the creator's from his desktop.
	m0 := on[0].devices[0]
	g1 := &wire.Msg{ReceiverID: gid, GroupID: gid, MsgType: wire.MsgTypeGroupMsg, ContentType: wire.ContentText,
		Content: []byte("hello group"), Avatar: on[0].Avatar, Nickname: on[0].Name}
	ack1 := m0.sendOK(g1)
	g2 := &wire.Msg{ReceiverID: gid, GroupID: gid, MsgType: wire.MsgTypeGroupMsg, ContentType: wire.ContentText,
		Content: []byte("welcome, all"), Avatar: gus.Avatar, Nickname: gus.Name}
	ack2 := gusD.sendOK(g2)
	if ack1.SendSeq != 1 || ack2.SendSeq != 2 || ack1.GroupID != gid || ack2.GroupID != gid {
		t.Fatalf("ACKs: %s", describe([]wire.Msg{ack1, ack2}))
	}
	got = s.quiet(all...)
	for i, d := range all {
		frames := got[i]
		switch {
		case d == gusD: // member copy of g1 (Gus's recv seq 1); only the ACK of g2
			if len(frames) != 1 {
				t.Fatalf("%s got %s, want g1 only", d.name, describe(frames))
			}
			expect(t, "g1 to "+d.name, frames[0], want{typ: wire.MsgTypeGroupMsg, ct: wire.ContentText, send: on[0].ID, recv: gid,
				group: gid, local: g1.LocalID, server: ack1.ServerID, seq: 1, sendSeq: 0, content: g1.Content})
		case d == gusM: // g1, and the echo of g2 with Gus's send_seq
			if len(frames) != 2 {
				t.Fatalf("%s got %s, want g1 and the echo of g2", d.name, describe(frames))
			}
			expect(t, "g1 to "+d.name, frames[0], want{typ: wire.MsgTypeGroupMsg, ct: wire.ContentText, send: on[0].ID, recv: gid,
				group: gid, local: g1.LocalID, server: ack1.ServerID, seq: 1, sendSeq: 0, content: g1.Content})
			expect(t, "g2 echo to "+d.name, frames[1], want{typ: wire.MsgTypeGroupMsg, ct: wire.ContentText, send: gus.ID, recv: gid,
				group: gid, local: g2.LocalID, server: ack2.ServerID, seq: 0, sendSeq: 2, content: g2.Content})
		case d == m0: // its own message: the ACK only (read above); then g2
			if len(frames) != 1 {
				t.Fatalf("%s got %s, want g2 only", d.name, describe(frames))
			}
			expect(t, "g2 to "+d.name, frames[0], want{typ: wire.MsgTypeGroupMsg, ct: wire.ContentText, send: gus.ID, recv: gid,
				group: gid, local: g2.LocalID, server: ack2.ServerID, seq: 2, sendSeq: 0, content: g2.Content})
		default:
			if len(frames) != 2 {
				t.Fatalf("%s got %s, want g1 and g2", d.name, describe(frames))
			}
			expect(t, "g1 to "+d.name, frames[0], want{typ: wire.MsgTypeGroupMsg, ct: wire.ContentText, send: on[0].ID, recv: gid,
				group: gid, local: g1.LocalID, server: ack1.ServerID, seq: 2, sendSeq: 0, content: g1.Content})
			expect(t, "g2 to "+d.name, frames[1], want{typ: wire.MsgTypeGroupMsg, ct: wire.ContentText, send: gus.ID, recv: gid,
				group: gid, local: g2.LocalID, server: ack2.ServerID, seq: 3, sendSeq: 0, content: g2.Content})
			if frames[0].Avatar != on[0].Avatar || frames[0].Nickname != on[0].Name {
				t.Errorf("g1 to %s: avatar %q nickname %q", d.name, frames[0].Avatar, frames[0].Nickname)
			}
		}
	}

	// Offline members pull the invitation and both messages: their own
	// copies (receiver_id = the member, as in the original inbox).
	for _, u := range off {
		sq := u.seqs()
		if sq != (client.Seqs{Seq: 3, SendSeq: 0}) {
			t.Fatalf("%s's seqs %+v", u.Name, sq)
		}
		ms := u.pull(0, sq.SendSeq, 0, sq.Seq)
		if len(ms) != 3 {
			t.Fatalf("%s pulled %s", u.Name, describe(ms))
		}
		expect(t, u.Name+" pulling the invitation", ms[0], want{typ: wire.MsgTypeGroupInvitation, send: gus.ID, recv: u.ID, group: gid,
			server: invID, seq: 1, sendSeq: 0, content: ms[0].Content})
		expect(t, u.Name+" pulling g1", ms[1], want{typ: wire.MsgTypeGroupMsg, ct: wire.ContentText, send: on[0].ID, recv: u.ID,
			group: gid, local: g1.LocalID, server: ack1.ServerID, seq: 2, content: g1.Content})
		expect(t, u.Name+" pulling g2", ms[2], want{typ: wire.MsgTypeGroupMsg, ct: wire.ContentText, send: gus.ID, recv: u.ID,
			group: gid, local: g2.LocalID, server: ack2.ServerID, seq: 3, content: g2.Content})
		if ms[1].Avatar != on[0].Avatar || ms[1].Nickname != on[0].Name {
			t.Errorf("%s pulling g1: avatar %q nickname %q", u.Name, ms[1].Avatar, ms[1].Nickname)
		}
	}
	// The senders pull their own by send_seq: the sender copy (receiver_id
	// = the group, seq 0).
	own := gus.pull(0, 2, 0, 0)
	if len(own) != 2 {
		t.Fatalf("gus pulled %s", describe(own))
	}
	checkInvitation("gus pulling his invitation", own[0], 0, 1, invID)
	expect(t, "gus pulling g2", own[1], want{typ: wire.MsgTypeGroupMsg, ct: wire.ContentText, send: gus.ID, recv: gid, group: gid,
		local: g2.LocalID, server: ack2.ServerID, seq: 0, sendSeq: 2, content: g2.Content})
	if sq := gus.seqs(); sq != (client.Seqs{Seq: 1, SendSeq: 2}) {
		t.Errorf("gus's seqs %+v", sq)
	}
}
