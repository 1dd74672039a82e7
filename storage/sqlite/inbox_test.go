package sqlite_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/sqlite"
	"github.com/sandcat-im/sandcat/storage/storagetest"
)

func TestInbox(t *testing.T) {
	storagetest.Inbox(t, sqlite.OpenTest(t).Inbox())
}

// BenchmarkPull100k pulls 100,000 received messages out of an inbox of
// 200,000 (two users), page by page (InboxPullLimit per call).
func BenchmarkPull100k(b *testing.B) {
	s := sqlite.OpenTest(b)
	in := s.Inbox()
	ctx := context.Background()
	me, other := ids.New(), ids.New()
	const n = 100_000
	batch := make([]storage.InboxEntry, 0, 5000)
	for i := range 2 * n {
		to := me
		if i%2 == 1 {
			to = other
		}
		batch = append(batch, storage.InboxEntry{Msg: wire.Msg{
			SendID: ids.New(), ReceiverID: to, LocalID: ids.New(), ServerID: ids.New(),
			CreateTime: 1700000000000 + int64(i), SendTime: 1700000000000 + int64(i), Seq: int64(i/2 + 1),
			ContentType: wire.ContentText, Content: []byte(fmt.Sprintf("message number %d with some text", i)),
			Avatar: "avatar.png", Nickname: "nick",
		}})
		if len(batch) == cap(batch) {
			if err := in.Save(ctx, batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	b.ResetTimer()
	for range b.N {
		total, last := 0, int64(0)
		for last < n {
			msgs, err := in.Pull(ctx, me, 0, 0, last, n)
			if err != nil {
				b.Fatal(err)
			}
			if len(msgs) == 0 {
				b.Fatalf("empty page after seq %d", last)
			}
			total += len(msgs)
			last = msgs[len(msgs)-1].Seq
		}
		if total != n {
			b.Fatalf("pulled %d, want %d", total, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/100k")
}
