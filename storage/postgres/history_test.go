package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage/postgres"
	"github.com/sandcat-im/sandcat/storage/postgres/pgtest"
	"github.com/sandcat-im/sandcat/storage/storagetest"
)

func historyRows(s *postgres.Store) storagetest.HistoryRows {
	return func(t *testing.T, serverID string) []wire.Msg {
		t.Helper()
		rows, err := s.Pool().Query(context.Background(), `SELECT send_id, receiver_id, local_id, server_id, send_time,
			msg_type, content_type, content, platform FROM messages WHERE server_id = $1`, serverID)
		if err != nil {
			t.Fatal(err)
		}
		out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (wire.Msg, error) {
			var m wire.Msg
			err := r.Scan(&m.SendID, &m.ReceiverID, &m.LocalID, &m.ServerID, &m.SendTime, &m.MsgType,
				&m.ContentType, &m.Content, &m.Platform)
			return m, err
		})
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
}

func TestHistory(t *testing.T) {
	s := pgtest.Open(t)
	storagetest.History(t, s.History(), historyRows(s))
}

func partitionCount(t *testing.T, s *postgres.Store) int {
	t.Helper()
	var n int
	if err := s.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM pg_inherits WHERE inhparent = 'messages'::regclass`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Bug B4: the original stopped accepting history 52 weeks after its migration.
func TestHistoryPartitionsAhead(t *testing.T) {
	ctx := context.Background()
	s := pgtest.Open(t)
	h := s.History()
	now := time.Now()
	far := wire.Msg{SendID: ids.New(), ReceiverID: ids.New(), LocalID: ids.New(), ServerID: ids.New(),
		SendTime: now.Add(60 * 7 * 24 * time.Hour).UnixMilli(), Content: []byte("from the future")}
	if err := h.Append(ctx, []wire.Msg{far}); err == nil {
		t.Fatal("append 60 weeks ahead succeeded without a partition")
	}
	before := partitionCount(t, s)
	// the migration made this week and the 51 after it; this week and the 62 after it add 11
	if err := h.EnsurePartitions(ctx, now, 62); err != nil {
		t.Fatal(err)
	}
	if got := partitionCount(t, s); got != before+11 {
		t.Fatalf("partitions: %d after EnsurePartitions, want %d", got, before+11)
	}
	if err := h.Append(ctx, []wire.Msg{far}); err != nil {
		t.Fatalf("append 60 weeks ahead after EnsurePartitions: %v", err)
	}
	if rows := historyRows(s)(t, far.ServerID); len(rows) != 1 {
		t.Fatalf("%d rows stored, want 1", len(rows))
	}
	// the new partitions follow the original's naming
	var name string
	if err := s.Pool().QueryRow(ctx, `SELECT tableoid::regclass::text FROM messages WHERE server_id = $1`,
		far.ServerID).Scan(&name); err != nil {
		t.Fatal(err)
	}
	y, w := time.UnixMilli(far.SendTime).UTC().ISOWeek()
	if want := fmt.Sprintf("messages_%04d_%02d", y, w); name != want {
		t.Fatalf("row stored in %s, want %s", name, want)
	}
}

// DropBefore removes whole partitions, and only those that end before the cut.
func TestHistoryDropBeforeDropsPartitions(t *testing.T) {
	ctx := context.Background()
	s := pgtest.Open(t)
	h := s.History()
	now := time.Now()
	week := 7 * 24 * time.Hour
	if err := h.EnsurePartitions(ctx, now.Add(-10*week), 10); err != nil {
		t.Fatal(err)
	}
	before := partitionCount(t, s)
	if err := h.DropBefore(ctx, now.Add(-5*week)); err != nil {
		t.Fatal(err)
	}
	// weeks -10..-6 end at or before the cut (the start of week -5 is at or before now-5w);
	// week -5 holds the cut and stays
	if dropped := before - partitionCount(t, s); dropped != 5 {
		t.Fatalf("dropped %d partitions, want 5", dropped)
	}
	var n int
	if err := s.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_class WHERE relname LIKE 'messages\_%' AND relkind = 'r'`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != partitionCount(t, s) {
		t.Fatalf("%d messages_* tables for %d attached partitions: detached ones were not dropped", n, partitionCount(t, s))
	}
}
