package app_test

import (
	"fmt"
	"testing"

	"github.com/sandcat-im/sandcat/im/client"
	"github.com/sandcat-im/sandcat/im/wire"
)

// Scenario b: messages to a user who is offline are pulled after the
// reconnect, by the ranges GET /message/seq gives, with every field kept.
func TestOfflinePull(t *testing.T) {
	s := startServer(t)
	carl, dana := s.newUser("Carl"), s.newUser("Dana")
	carlD := carl.dial(wire.PlatformDesktop)

	// Dana was online once, then went away.
	danaD := dana.dial(wire.PlatformMobile)
	if err := danaD.c.Close(); err != nil {
		t.Fatal(err)
	}
	dana.devices = nil

	const n = 7
	var sent []*wire.Msg
	var acks []wire.Msg
	for i := range n {
		m := text(carlD, dana, fmt.Sprintf("while you were out %d", i))
		if i > 0 {
			rel := acks[i-1].ServerID // a reply to the previous one
			m.RelatedMsgID = &rel
		}
		if i == 3 {
			m.ContentType = wire.ContentEmoji
		}
		acks = append(acks, carlD.sendOK(m))
		sent = append(sent, m)
	}

	// Once Carl's barrier arrived, the pipeline has processed every message
	// above (one ordered log): Dana was offline for all of them.
	if got := carlD.quiet(); len(got) != 0 {
		t.Fatalf("carl got %s, want nothing (one device: no echo, one ACK each)", describe(got))
	}
	danaD = dana.dial(wire.PlatformDesktop)
	// Nothing is pushed on connect: the client pulls.
	if got := danaD.quiet(); len(got) != 0 {
		t.Fatalf("dana got %s on reconnect, want nothing", describe(got))
	}
	sq := dana.seqs()
	if sq != (client.Seqs{Seq: n, SendSeq: 0}) {
		t.Fatalf("dana's seqs %+v, want {%d 0}", sq, n)
	}

	tests := []struct {
		name       string
		start, end int64
	}{
		{"everything", 0, sq.Seq},
		{"a gap in the middle", 2, 5},
		{"the last one", n - 1, n},
		{"nothing new", n, n},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := dana.pull(0, sq.SendSeq, tt.start, tt.end)
			if len(got) != int(tt.end-tt.start) {
				t.Fatalf("pulled %d messages, want %d: %s", len(got), tt.end-tt.start, describe(got))
			}
			for i, m := range got {
				k := int(tt.start) + i
				expect(t, fmt.Sprintf("pulled #%d", k+1), m, want{typ: wire.MsgTypeSingleMsg, ct: sent[k].ContentType, send: carl.ID,
					recv: dana.ID, local: sent[k].LocalID, server: acks[k].ServerID, seq: int64(k + 1), sendSeq: acks[k].SendSeq,
					content: sent[k].Content})
				if m.Avatar != carl.Avatar || m.Nickname != carl.Name || m.Platform != wire.PlatformDesktop ||
					m.CreateTime != sent[k].CreateTime {
					t.Errorf("pulled #%d: avatar %q nickname %q platform %d create_time %d", k+1, m.Avatar, m.Nickname, m.Platform, m.CreateTime)
				}
				switch {
				case k == 0 && m.RelatedMsgID != nil:
					t.Errorf("pulled #1: related_msg_id %q, want null", *m.RelatedMsgID)
				case k > 0 && (m.RelatedMsgID == nil || *m.RelatedMsgID != acks[k-1].ServerID):
					t.Errorf("pulled #%d: related_msg_id %v, want %q", k+1, m.RelatedMsgID, acks[k-1].ServerID)
				}
			}
		})
	}

	// The sender's own messages come back by send_seq, with seq 0.
	cs := carl.seqs()
	if cs != (client.Seqs{Seq: 0, SendSeq: n}) {
		t.Fatalf("carl's seqs %+v", cs)
	}
	own := carl.pull(0, cs.SendSeq, 0, cs.Seq)
	if len(own) != n {
		t.Fatalf("carl pulled %d own messages, want %d", len(own), n)
	}
	for i, m := range own {
		expect(t, fmt.Sprintf("carl's own #%d", i+1), m, want{typ: wire.MsgTypeSingleMsg, ct: sent[i].ContentType, send: carl.ID,
			recv: dana.ID, local: sent[i].LocalID, server: acks[i].ServerID, seq: 0, sendSeq: int64(i + 1), content: sent[i].Content})
	}

	// Another user's token cannot pull Dana's inbox.
	if _, err := carl.api.Pull(ctxT(t), client.PullRequest{UserID: dana.ID, End: n}); client.StatusOf(err) != 403 {
		t.Errorf("carl pulling dana's inbox: %v, want 403", err)
	}
}

// Scenario c: a user on desktop and mobile sees each message it sends from
// one device on the other (one echo copy, no ACK there), and can pull them
// by send_seq range.
func TestMultiDeviceEcho(t *testing.T) {
	s := startServer(t)
	eve, fred := s.newUser("Eve"), s.newUser("Fred")
	eveD, eveM := eve.dial(wire.PlatformDesktop), eve.dial(wire.PlatformMobile)
	fredD := fred.dial(wire.PlatformDesktop)

	var sent []sentMsg
	var acks []wire.Msg
	for i := range 6 {
		from := eveD
		if i%2 == 1 {
			from = eveM
		}
		m := text(from, fred, fmt.Sprintf("from %s %d", from.name, i))
		acks = append(acks, from.sendOK(m))
		sent = append(sent, sentMsg{from, fredD, m})
	}
	got := eve.quiet(eveD, eveM)
	fredGot := fredD.quiet()
	byDev := map[*dev][]wire.Msg{eveD: got[0], eveM: got[1]}
	for i, x := range sent {
		other := eveM
		if x.from == eveM {
			other = eveD
		}
		if acks[i].SendSeq != int64(i+1) {
			t.Errorf("ACK #%d: send_seq %d, want %d", i+1, acks[i].SendSeq, i+1)
		}
		frames := byDev[other]
		if len(frames) == 0 {
			t.Fatalf("%s never got the echo of %q", other.name, x.m.Content)
		}
		expect(t, other.name+" echo of "+string(x.m.Content), frames[0], want{typ: wire.MsgTypeSingleMsg, ct: wire.ContentText,
			send: eve.ID, recv: fred.ID, local: x.m.LocalID, server: acks[i].ServerID, seq: 0, sendSeq: int64(i + 1), content: x.m.Content})
		if frames[0].Platform != x.from.c.Platform {
			t.Errorf("echo platform %d, want %d", frames[0].Platform, x.from.c.Platform)
		}
		byDev[other] = frames[1:]
		if len(fredGot) == 0 {
			t.Fatalf("fred never got %q", x.m.Content)
		}
		expect(t, "fred receiving "+string(x.m.Content), fredGot[0], want{typ: wire.MsgTypeSingleMsg, ct: wire.ContentText,
			send: eve.ID, recv: fred.ID, local: x.m.LocalID, server: acks[i].ServerID, seq: int64(i + 1), sendSeq: int64(i + 1), content: x.m.Content})
		fredGot = fredGot[1:]
	}
	for d, rest := range byDev {
		if len(rest) > 0 {
			t.Errorf("%s got more than one copy per message (a second ACK or echo?): %s", d.name, describe(rest))
		}
	}
	if len(fredGot) > 0 {
		t.Errorf("fred got more: %s", describe(fredGot))
	}

	// The other device catches up by send_seq range.
	sq := eve.seqs()
	if sq != (client.Seqs{Seq: 0, SendSeq: 6}) {
		t.Fatalf("eve's seqs %+v", sq)
	}
	for _, r := range []struct{ start, end int64 }{{0, 6}, {3, 6}, {0, 1}} {
		own := eve.pull(r.start, r.end, 0, 0)
		if len(own) != int(r.end-r.start) {
			t.Fatalf("send range (%d, %d]: %d messages: %s", r.start, r.end, len(own), describe(own))
		}
		for i, m := range own {
			k := int(r.start) + i
			expect(t, fmt.Sprintf("eve's own #%d", k+1), m, want{typ: wire.MsgTypeSingleMsg, ct: wire.ContentText, send: eve.ID,
				recv: fred.ID, local: sent[k].m.LocalID, server: acks[k].ServerID, seq: 0, sendSeq: int64(k + 1), content: sent[k].m.Content})
		}
	}
}
