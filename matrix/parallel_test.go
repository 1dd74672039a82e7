package matrix

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/wire"
)

func TestRoomKey(t *testing.T) {
	tests := []struct {
		name string
		m    wire.Msg
		want string
	}{
		{"group message", wire.Msg{MsgType: wire.MsgTypeGroupMsg, GroupID: "g1", ReceiverID: "g1", SendID: "u"}, "g:g1"},
		{"group update without group_id", wire.Msg{MsgType: wire.MsgTypeGroupUpdate, ReceiverID: "g2"}, "g:g2"},
		{"any type with a group_id", wire.Msg{MsgType: wire.MsgTypeGroupInviteNew, GroupID: "g3"}, "g:g3"},
		{"single, one way", wire.Msg{MsgType: wire.MsgTypeSingleMsg, SendID: "a", ReceiverID: "b"}, "d:a\x00b"},
		{"single, the other way", wire.Msg{MsgType: wire.MsgTypeSingleMsg, SendID: "b", ReceiverID: "a"}, "d:a\x00b"},
		{"not tied to a room", wire.Msg{MsgType: wire.MsgTypeFriendApplyReq, SendID: "a", ReceiverID: "b"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := roomKey(&tt.m); got != tt.want {
				t.Fatalf("roomKey = %q, want %q", got, tt.want)
			}
		})
	}
}

func gmsg(group, id string) *wire.Msg {
	return &wire.Msg{MsgType: wire.MsgTypeGroupMsg, GroupID: group, ReceiverID: group, ServerID: id, SendID: "u"}
}

func describeSegments(segs [][]roomBatch) string {
	var parts []string
	for _, seg := range segs {
		var rooms []string
		for _, r := range seg {
			var ids []string
			for _, m := range r.msgs {
				ids = append(ids, m.ServerID)
			}
			rooms = append(rooms, r.key+"="+strings.Join(ids, ","))
		}
		parts = append(parts, "["+strings.Join(rooms, " ")+"]")
	}
	return strings.Join(parts, " ")
}

func TestSplitByRoom(t *testing.T) {
	barrier := &wire.Msg{MsgType: wire.MsgTypeFriendApplyReq, ServerID: "x", SendID: "a", ReceiverID: "b"}
	tests := []struct {
		name string
		msgs []*wire.Msg
		want string
	}{
		{"empty", nil, ""},
		{"rooms in order of first appearance, records in bus order",
			[]*wire.Msg{gmsg("A", "1"), gmsg("B", "2"), gmsg("A", "3"), gmsg("C", "4"), gmsg("B", "5")},
			"[g:A=1,3 g:B=2,5 g:C=4]"},
		{"a barrier cuts the batch",
			[]*wire.Msg{gmsg("A", "1"), gmsg("B", "2"), barrier, gmsg("A", "3")},
			"[g:A=1 g:B=2] [=x] [g:A=3]"},
		{"barriers only", []*wire.Msg{barrier, barrier}, "[=x] [=x]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describeSegments(splitByRoom(tt.msgs)); got != tt.want {
				t.Fatalf("segments %s, want %s", got, tt.want)
			}
		})
	}
}

// The rooms of a segment run at the same time, each in order, and
// forEachRoom returns only once all are done.
func TestForEachRoomParallelAcrossRoomsOrderedWithin(t *testing.T) {
	const rooms, per = 5, 20
	var msgs []*wire.Msg
	for i := range per {
		for r := range rooms {
			msgs = append(msgs, gmsg(fmt.Sprint("R", r), fmt.Sprintf("%d-%03d", r, i)))
		}
	}
	segs := splitByRoom(msgs)
	if len(segs) != 1 || len(segs[0]) != rooms {
		t.Fatalf("segments %s", describeSegments(segs))
	}
	// Every room's first record waits until all rooms have started one:
	// run one room at a time, this never happens (bounded wait, then fail).
	var (
		mu      sync.Mutex
		got     = map[string][]string{}
		started = make(chan struct{}, rooms)
		all     = make(chan struct{})
		once    sync.Once
		stuck   bool
	)
	go func() {
		for range rooms {
			<-started
		}
		once.Do(func() { close(all) })
	}()
	err := forEachRoom(context.Background(), segs[0], rooms, func(_ context.Context, m *wire.Msg) error {
		if strings.HasSuffix(m.ServerID, "-000") {
			started <- struct{}{}
			select {
			case <-all:
			case <-time.After(30 * time.Second):
				mu.Lock()
				stuck = true
				mu.Unlock()
			}
		}
		mu.Lock()
		got[m.GroupID] = append(got[m.GroupID], m.ServerID)
		mu.Unlock()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if stuck {
		t.Fatal("the rooms did not run at the same time")
	}
	for r := range rooms {
		ids := got[fmt.Sprint("R", r)]
		if len(ids) != per || !slices.IsSorted(ids) {
			t.Fatalf("room R%d handled %v, want its %d records in order", r, ids, per)
		}
	}
}

// A failing record stops its room (later records of that room are not
// handled) but not the others; the error is returned.
func TestForEachRoomErrorStopsItsRoomOnly(t *testing.T) {
	boom := errors.New("homeserver down")
	msgs := []*wire.Msg{gmsg("A", "a1"), gmsg("B", "b1"), gmsg("A", "a2"), gmsg("B", "b2"), gmsg("A", "a3")}
	for _, limit := range []int{1, 4} {
		t.Run(fmt.Sprint("limit ", limit), func(t *testing.T) {
			var mu sync.Mutex
			var handled []string
			err := forEachRoom(context.Background(), splitByRoom(msgs)[0], limit, func(_ context.Context, m *wire.Msg) error {
				mu.Lock()
				handled = append(handled, m.ServerID)
				mu.Unlock()
				if m.ServerID == "a2" {
					return boom
				}
				return nil
			})
			if !errors.Is(err, boom) {
				t.Fatalf("error %v, want %v", err, boom)
			}
			slices.Sort(handled)
			if want := []string{"a1", "a2", "b1", "b2"}; !slices.Equal(handled, want) {
				t.Fatalf("handled %v, want %v (a3 must wait for the redelivery)", handled, want)
			}
		})
	}
}
