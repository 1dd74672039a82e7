package storagetest

import (
	"context"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

// HistoryRows reads back the history rows of a server id, with the stored
// columns only (send_id, receiver_id, local_id, server_id, send_time,
// msg_type, content_type, content, platform): History has no read API, so
// each backend's test supplies it.
type HistoryRows func(t *testing.T, serverID string) []wire.Msg

// historyStored is the part of m that History keeps.
func historyStored(m wire.Msg) wire.Msg {
	return wire.Msg{SendID: m.SendID, ReceiverID: m.ReceiverID, LocalID: m.LocalID, ServerID: m.ServerID,
		SendTime: m.SendTime, MsgType: m.MsgType, ContentType: m.ContentType, Content: m.Content, Platform: m.Platform}
}

// History is the conformance suite of storage.History.
func History(t *testing.T, h storage.History, rows HistoryRows) {
	ctx := context.Background()
	now := time.Now()
	// the weeks around now must be writable on every backend
	if err := h.EnsurePartitions(ctx, now.AddDate(0, 0, -7*12), 16); err != nil {
		t.Fatalf("EnsurePartitions: %v", err)
	}
	at := func(d time.Duration) int64 { return now.Add(d).UnixMilli() }
	one := func(t *testing.T, want wire.Msg) {
		t.Helper()
		got := rows(t, want.ServerID)
		if len(got) != 1 {
			t.Fatalf("%d rows of %s, want 1", len(got), want.ServerID)
		}
		if err := inboxSameMsg(got[0], historyStored(want)); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("AppendKeepsColumns", func(t *testing.T) {
		a, b := ids.New(), ids.New()
		m := inboxMsg(a, b, at(0), 5, 6)
		m.MsgType, m.ContentType, m.Platform = wire.MsgTypeGroupMsg, wire.ContentImage, wire.PlatformMobile
		empty := inboxMsg(a, b, at(time.Second), 6, 7)
		empty.Content = nil
		if err := h.Append(ctx, []wire.Msg{m, empty}); err != nil {
			t.Fatal(err)
		}
		one(t, m)
		one(t, empty)
		if err := h.Append(ctx, nil); err != nil {
			t.Fatalf("Append(nothing): %v", err)
		}
	})

	t.Run("AppendIsIdempotent", func(t *testing.T) {
		m := inboxMsg(ids.New(), ids.New(), at(0), 1, 1)
		if err := h.Append(ctx, []wire.Msg{m}); err != nil {
			t.Fatal(err)
		}
		replay := m
		replay.Content = []byte("replayed")
		if err := h.Append(ctx, []wire.Msg{replay, replay}); err != nil {
			t.Fatalf("replay: %v", err)
		}
		one(t, m)
	})

	t.Run("AppendBatch", func(t *testing.T) {
		msgs := make([]wire.Msg, 1201)
		for i := range msgs {
			msgs[i] = inboxMsg(ids.New(), ids.New(), at(time.Duration(i)*time.Millisecond), 0, int64(i))
		}
		if err := h.Append(ctx, msgs); err != nil {
			t.Fatal(err)
		}
		for _, i := range []int{0, 499, 500, 1000, 1200} {
			one(t, msgs[i])
		}
	})

	t.Run("EnsurePartitionsTwice", func(t *testing.T) {
		for range 2 {
			if err := h.EnsurePartitions(ctx, now, 8); err != nil {
				t.Fatal(err)
			}
		}
	})

	t.Run("DropBefore", func(t *testing.T) {
		week := 7 * 24 * time.Hour
		old := inboxMsg(ids.New(), ids.New(), at(-9*week), 1, 1)
		older := inboxMsg(ids.New(), ids.New(), at(-11*week), 1, 1)
		recent := inboxMsg(ids.New(), ids.New(), at(-week), 1, 1)
		if err := h.Append(ctx, []wire.Msg{old, older, recent}); err != nil {
			t.Fatal(err)
		}
		if err := h.DropBefore(ctx, now.Add(-5*week)); err != nil {
			t.Fatal(err)
		}
		for _, m := range []wire.Msg{old, older} {
			if got := rows(t, m.ServerID); len(got) != 0 {
				t.Fatalf("row sent %s before the cut survived", time.Duration(at(0)-m.SendTime)*time.Millisecond)
			}
		}
		one(t, recent)
		if err := h.DropBefore(ctx, now.Add(-5*week)); err != nil {
			t.Fatalf("second DropBefore: %v", err)
		}
		// the dropped weeks can be written again once their partitions exist
		if err := h.EnsurePartitions(ctx, now.Add(-12*week), 2); err != nil {
			t.Fatal(err)
		}
		if err := h.Append(ctx, []wire.Msg{older}); err != nil {
			t.Fatalf("append into a recreated week: %v", err)
		}
		one(t, older)
	})
}
