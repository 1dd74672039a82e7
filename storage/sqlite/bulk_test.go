package sqlite_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

func countRows(t *testing.T, s *sqlite.Store, table string) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRow(`SELECT count(*) FROM ` + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Every batch size is written whole, through the prepared INSERTs of 1 to
// 256 rows, and a batch written again adds nothing.
func TestSaveBatchSizes(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{1, 3, 16, 255, 256, 257, 700} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			s := sqlite.OpenTest(t)
			entries := make([]storage.InboxEntry, n)
			msgs := make([]wire.Msg, n)
			for i := range n {
				m := wire.Msg{SendID: "a", ReceiverID: "b", LocalID: ids.New(), ServerID: ids.New(),
					SendTime: int64(1000 + i), Seq: int64(i + 1), ContentType: wire.ContentText,
					Content: []byte(fmt.Sprint(i))}
				entries[i].Msg, msgs[i] = m, m
			}
			for range 2 {
				if err := s.SaveBatch(ctx, entries, msgs); err != nil {
					t.Fatal(err)
				}
			}
			if got := countRows(t, s, "inbox"); got != n {
				t.Errorf("inbox has %d rows, want %d", got, n)
			}
			if got := countRows(t, s, "messages"); got != n {
				t.Errorf("messages has %d rows, want %d", got, n)
			}
			pulled, err := s.Inbox().Pull(ctx, "b", 0, 0, 0, int64(n))
			if err != nil {
				t.Fatal(err)
			}
			if len(pulled) != n || pulled[n-1].Seq != int64(n) || string(pulled[n-1].Content) != fmt.Sprint(n-1) {
				t.Fatalf("pulled %d messages, the last %+v", len(pulled), pulled[len(pulled)-1])
			}
		})
	}
}

// A batch with an entry without server_id is refused whole.
func TestSaveBatchRefusesMissingServerID(t *testing.T) {
	s := sqlite.OpenTest(t)
	es := []storage.InboxEntry{{Msg: wire.Msg{ServerID: "x", ReceiverID: "b"}}, {Msg: wire.Msg{ReceiverID: "b"}}}
	if err := s.SaveBatch(context.Background(), es, []wire.Msg{es[0].Msg}); err == nil {
		t.Fatal("SaveBatch accepted an entry without server_id")
	}
	if got := countRows(t, s, "inbox") + countRows(t, s, "messages"); got != 0 {
		t.Fatalf("%d rows written by a refused batch", got)
	}
}
