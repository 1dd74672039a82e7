package msgserver_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sandcat-im/sandcat/im/msgserver"
	"github.com/sandcat-im/sandcat/im/wire"
)

// The origin of a message decides the echo: a client frame's echo skips the
// sending device (Echo true); an API notice's copy to the actor reaches all
// its devices (Echo false). A replay keeps the origin of its record.
func TestOriginDecidesTheEcho(t *testing.T) {
	tests := []struct {
		name     string
		send     func(r *rig, m *wire.Msg) error
		wantEcho bool
	}{
		{"a client frame", func(r *rig, m *wire.Msg) error { return r.prod.Send(context.Background(), m, nil) }, true},
		{"an API notice", func(r *rig, m *wire.Msg) error { return r.prod.Notices().Send(context.Background(), m, nil) }, false},
		{"an API notice, one-argument sender", func(r *rig, m *wire.Msg) error { return r.prod.Sender().Send(context.Background(), m) }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t)
			r.groups.Set("g", "a", "b")
			msgs := []*wire.Msg{
				{SendID: "a", ReceiverID: "b", MsgType: wire.MsgTypeFriendApplyReq},
				{SendID: "a", ReceiverID: "g", GroupID: "g", MsgType: wire.MsgTypeGroupInvitation},
			}
			for _, m := range msgs {
				if err := tt.send(r, m); err != nil {
					t.Fatal(err)
				}
			}
			for _, redelivered := range []bool{false, true} {
				if redelivered { // the same records again, as after a crash
					r.consumed = 0
				}
				if err := r.consume(t, redelivered); err != nil {
					t.Fatal(err)
				}
				got := summarize(r.pushes.take())
				want := []dv{
					{"b", wire.MsgTypeFriendApplyReq, 1, 1, false, "b"},
					{"a", wire.MsgTypeFriendApplyReq, 0, 1, tt.wantEcho, "b"},
					{"a", wire.MsgTypeGroupInvitation, 0, 2, tt.wantEcho, "g"},
					{"b", wire.MsgTypeGroupInvitation, 2, 0, false, "g"},
				}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Fatalf("redelivered %v: deliveries\n got %v\nwant %v", redelivered, got, want)
				}
			}
		})
	}
}

func TestEnvelopeOrigin(t *testing.T) {
	m := wire.Msg{SendID: "a", ReceiverID: "g", GroupID: "g", MsgType: wire.MsgTypeGroupRemoveMember, Content: []byte{1}}
	for _, o := range []msgserver.Origin{msgserver.FromConnection, msgserver.FromServer} {
		b := msgserver.EncodeEnvelopeFrom(&m, []string{"x"}, o)
		got, to, origin, err := msgserver.DecodeEnvelopeFrom(b)
		if err != nil || origin != o || len(to) != 1 || to[0] != "x" || got.ReceiverID != "g" {
			t.Fatalf("origin %d: %+v %v %d %v", o, got, to, origin, err)
		}
	}
	// A version-1 record (written before origins existed) is FromConnection.
	v1 := append([]byte{1}, m.MarshalBincode()...)
	v1 = append(v1, wire.EncodeStrings(nil)...)
	if got, _, origin, err := msgserver.DecodeEnvelopeFrom(v1); err != nil || origin != msgserver.FromConnection || got.SendID != "a" {
		t.Fatalf("version 1: %+v %d %v", got, origin, err)
	}
	for _, bad := range [][]byte{{2}, {2, 7}, append([]byte{2, 9}, m.MarshalBincode()...)} {
		if _, _, _, err := msgserver.DecodeEnvelopeFrom(bad); err == nil {
			t.Errorf("DecodeEnvelopeFrom(%v) succeeded", bad[:min(2, len(bad))])
		}
	}
}
