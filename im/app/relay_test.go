package app_test

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/sandcat-im/sandcat/im/client"
	"github.com/sandcat-im/sandcat/im/wire"
)

// Scenario e: the call signalling 14 → 16 → 19 → 21 → 22 → 20 is relayed;
// the signalling frames take no seq and are not stored; the hangup is a
// call-log entry with seqs, pullable.
func TestCallSignalling(t *testing.T) {
	s := startServer(t)
	ann, bob := s.newUser("Ann"), s.newUser("Bob")
	annD, bobD := ann.dial(wire.PlatformDesktop), bob.dial(wire.PlatformMobile)
	mid, idx := "0", uint16(0)
	cand := wire.CandidateData{Candidate: "candidate:1 1 udp 2122260223 192.0.2.1 54400 typ host", SdpMid: &mid, SdpMIndex: &idx}
	steps := []struct {
		from, to *dev
		typ      wire.MsgType
		content  []byte
		stored   bool
	}{
		{annD, bobD, wire.MsgTypeSingleCallInvite, nil, false},
		{bobD, annD, wire.MsgTypeAgreeSingleCall, nil, false},
		{annD, bobD, wire.MsgTypeSingleCallOffer, []byte("v=0 o=- offer"), false},
		{bobD, annD, wire.MsgTypeConnectSingleCall, []byte("v=0 o=- answer"), false},
		{annD, bobD, wire.MsgTypeCandidate, cand.MarshalBincode(), false},
		{bobD, annD, wire.MsgTypeCandidate, cand.MarshalBincode(), false},
		{annD, bobD, wire.MsgTypeHangup, wire.EncodeHangup(61_000), true},
	}
	var hangup, hangupAck wire.Msg
	for _, st := range steps {
		m := &wire.Msg{ReceiverID: st.to.u.ID, MsgType: st.typ, ContentType: wire.ContentAudioCall, Content: st.content}
		ack := st.from.sendOK(m)
		wantSend, wantSeq := int64(0), int64(0)
		if st.stored {
			wantSend, wantSeq = 1, 1
		}
		if ack.SendSeq != wantSend {
			t.Errorf("%s: ACK send_seq %d, want %d", st.typ, ack.SendSeq, wantSend)
		}
		got := st.to.quiet()
		if len(got) != 1 {
			t.Fatalf("%s: %s got %s", st.typ, st.to.name, describe(got))
		}
		expect(t, st.typ.String()+" to "+st.to.name, got[0], want{typ: st.typ, ct: wire.ContentAudioCall, send: st.from.u.ID,
			recv: st.to.u.ID, local: m.LocalID, server: ack.ServerID, seq: wantSeq, sendSeq: wantSend, content: st.content})
		if rest := st.from.quiet(); len(rest) != 0 {
			t.Errorf("%s: %s got %s besides its ACK", st.typ, st.from.name, describe(rest))
		}
		if st.stored {
			hangup, hangupAck = got[0], ack
		}
	}
	if d, err := wire.HangupDuration(hangup.Content); err != nil || d != 61_000 {
		t.Errorf("hangup duration %d, %v", d, err)
	}
	if sq := bob.seqs(); sq != (client.Seqs{Seq: 1, SendSeq: 0}) {
		t.Errorf("bob's seqs %+v: only the hangup takes a seq", sq)
	}
	if sq := ann.seqs(); sq != (client.Seqs{Seq: 0, SendSeq: 1}) {
		t.Errorf("ann's seqs %+v: only the hangup takes a send seq", sq)
	}
	// Only the hangup is stored: everything both can pull.
	for _, u := range []*user{ann, bob} {
		ms := u.pull(0, 10, 0, 10)
		if len(ms) != 1 {
			t.Fatalf("%s pulled %s, want the hangup only", u.Name, describe(ms))
		}
		seq := int64(1)
		if u == ann {
			seq = 0 // own message
		}
		expect(t, u.Name+" pulling the hangup", ms[0], want{typ: wire.MsgTypeHangup, ct: wire.ContentAudioCall, send: ann.ID, recv: bob.ID,
			local: hangup.LocalID, server: hangupAck.ServerID, seq: seq, sendSeq: 1, content: hangup.Content})
	}
}

// Scenario f: a file message. The file goes up through /file/upload, the
// message carries "name||original||size||ext", the receiver downloads the
// same bytes with the same content type.
func TestFileMessage(t *testing.T) {
	s := startServer(t)
	ann, bob := s.newUser("Ann"), s.newUser("Bob")
	annD, bobD := ann.dial(wire.PlatformDesktop), bob.dial(wire.PlatformDesktop)

	random := make([]byte, 300<<10)
	_, _ = rand.Read(random)
	png := append([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"), random[:2000]...)
	tests := []struct {
		name, filename, declared, wantType, ext string
		ct                                      int32
		data                                    []byte
	}{
		{"a declared type", "report.pdf", "application/pdf", "application/pdf", "pdf", wire.ContentFile, random},
		{"a sniffed type", "photo.png", "", "image/png", "png", wire.ContentImage, png},
		{"no extension", "README", "text/plain; charset=utf-8", "text/plain; charset=utf-8", "", wire.ContentFile, []byte("hello\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := ctxT(t)
			name, err := ann.api.Upload(ctx, tt.filename, tt.declared, bytes.NewReader(tt.data))
			if err != nil {
				t.Fatalf("upload: %v", err)
			}
			if len(name) < 21 || (tt.ext != "" && !strings.HasSuffix(name, "."+tt.ext)) || (tt.ext == "" && strings.Contains(name, ".")) {
				t.Fatalf("stored as %q", name)
			}
			content := []byte(fmt.Sprintf("%s||%s||%d||%s", name, tt.filename, len(tt.data), tt.ext))
			m := &wire.Msg{ReceiverID: bob.ID, MsgType: wire.MsgTypeSingleMsg, ContentType: tt.ct, Content: content}
			ack := annD.sendOK(m)
			got := bobD.quiet()
			if len(got) != 1 {
				t.Fatalf("bob got %s", describe(got))
			}
			expect(t, "the file message", got[0], want{typ: wire.MsgTypeSingleMsg, ct: tt.ct, send: ann.ID, recv: bob.ID,
				local: m.LocalID, server: ack.ServerID, seq: got[0].Seq, sendSeq: ack.SendSeq, content: content})
			parts := strings.Split(string(got[0].Content), "||")
			if len(parts) != 4 || parts[1] != tt.filename || parts[2] != strconv.Itoa(len(tt.data)) || parts[3] != tt.ext {
				t.Fatalf("content parts %q", parts)
			}
			data, ctype, err := bob.api.Download(ctx, parts[0])
			if err != nil {
				t.Fatalf("download: %v", err)
			}
			if !bytes.Equal(data, tt.data) {
				t.Errorf("downloaded %d bytes, not the %d uploaded", len(data), len(tt.data))
			}
			if ctype != tt.wantType {
				t.Errorf("content type %q, want %q", ctype, tt.wantType)
			}
		})
	}
	if _, _, err := bob.api.Download(ctxT(t), "AAAAAAAAAAAAAAAAAAAAA.pdf"); client.StatusOf(err) != 404 {
		t.Errorf("a missing file: %v, want 404", err)
	}
	if _, err := s.api.Upload(ctxT(t), "x.txt", "text/plain", strings.NewReader("x")); client.StatusOf(err) != 401 {
		t.Errorf("an upload without a token: %v, want 401", err)
	}
}

// Scenario g: frames the send path refuses get an Error ACK (content_type 9,
// the reason as content, no server_id, no seqs) and reach nobody, nor take
// any seq.
func TestRefusedFrames(t *testing.T) {
	s := startServer(t)
	ann, bob, carl := s.newUser("Ann"), s.newUser("Bob"), s.newUser("Carl")
	annD, bobD, carlD := ann.dial(wire.PlatformDesktop), bob.dial(wire.PlatformDesktop), carl.dial(wire.PlatformDesktop)

	inv, err := bob.api.CreateGroup(ctxT(t), bob.ID, "Bob and Carl", "", []string{carl.ID})
	if err != nil {
		t.Fatal(err)
	}
	gid := inv.Info.ID
	if err := carl.api.BlockUser(ctxT(t), carl.ID, ann.ID); err != nil {
		t.Fatalf("block: %v", err)
	}
	s.quiet(annD, bobD, carlD) // the invitation and its echo
	before := map[*user]client.Seqs{ann: ann.seqs(), bob: bob.seqs(), carl: carl.seqs()}

	tests := []struct {
		name   string
		m      wire.Msg
		reason string
	}{
		{"another user's send_id", wire.Msg{SendID: bob.ID, ReceiverID: carl.ID, MsgType: wire.MsgTypeSingleMsg, ContentType: wire.ContentText,
			Content: []byte("I am Bob")}, "send_id"},
		{"a group message from a non-member", wire.Msg{ReceiverID: gid, GroupID: gid, MsgType: wire.MsgTypeGroupMsg,
			ContentType: wire.ContentText, Content: []byte("let me in")}, "member"},
		{"a message to a user who blocked the sender", wire.Msg{ReceiverID: carl.ID, MsgType: wire.MsgTypeSingleMsg,
			ContentType: wire.ContentText, Content: []byte("hi carl")}, "blocked"},
		{"a call to a user who blocked the sender", wire.Msg{ReceiverID: carl.ID, MsgType: wire.MsgTypeSingleCallInvite,
			ContentType: wire.ContentVideoCall}, "blocked"},
		{"a notice type only the API sends", wire.Msg{ReceiverID: bob.ID, MsgType: wire.MsgTypeFriendApplyReq}, "not accepted"},
		{"an ACK", wire.Msg{ReceiverID: bob.ID, MsgType: wire.MsgTypeMsgRecResp}, "not accepted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := tt.m
			annD.send(&m)
			ack := annD.ack(m.LocalID)
			if ack.ContentType != wire.ContentError || !strings.Contains(string(ack.Content), tt.reason) || ack.ServerID != "" ||
				ack.Seq != 0 || ack.SendSeq != 0 || ack.ReceiverID != m.ReceiverID {
				t.Errorf("Error ACK %s, want content_type 9 and a reason about %q", describe([]wire.Msg{ack}), tt.reason)
			}
			got := s.quiet(annD, bobD, carlD)
			for i, d := range []*dev{annD, bobD, carlD} {
				if len(got[i]) != 0 {
					t.Errorf("%s got %s", d.name, describe(got[i]))
				}
			}
		})
	}
	for u, sq := range before {
		if got := u.seqs(); got != sq {
			t.Errorf("%s's seqs went from %+v to %+v", u.Name, sq, got)
		}
	}
	// Carl lifts nothing; Bob still talks to Carl: the refusals were
	// specific, not a broken pipeline.
	ok := &wire.Msg{ReceiverID: carl.ID, MsgType: wire.MsgTypeSingleMsg, ContentType: wire.ContentText, Content: []byte("still here")}
	ack := bobD.sendOK(ok)
	if got := carlD.quiet(); len(got) != 1 || got[0].ServerID != ack.ServerID {
		t.Errorf("carl got %s", describe(got))
	}
}
