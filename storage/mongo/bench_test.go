package mongo_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/testsvc"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/mongo"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

// benchInboxes runs fn against the embedded SQLite inbox and the MongoDB
// inbox on FerretDB, in the same run; with uniqueOnly also against the
// MongoDB inbox with Options.SkipQueryIndexes.
func benchInboxes(b *testing.B, uniqueOnly bool, fn func(b *testing.B, in storage.Inbox)) {
	b.Run("sqlite", func(b *testing.B) { fn(b, sqlite.OpenTest(b).Inbox()) })
	b.Run("ferretdb", func(b *testing.B) {
		fn(b, openInbox(b, testsvc.StartFerretDB(b), mongo.Options{}))
	})
	if uniqueOnly {
		b.Run("ferretdb-unique-index-only", func(b *testing.B) {
			fn(b, openInbox(b, testsvc.StartFerretDB(b), mongo.Options{SkipQueryIndexes: true}))
		})
	}
}

func benchMsg(from, to string, sendTime, seq int64) wire.Msg {
	return wire.Msg{
		SendID: from, ReceiverID: to, LocalID: ids.New(), ServerID: ids.New(),
		CreateTime: sendTime, SendTime: sendTime, Seq: seq, SendSeq: seq,
		ContentType: wire.ContentText, Content: fmt.Appendf(nil, "message number %d with some text", seq),
		Avatar: "avatar.png", Nickname: "nick",
	}
}

// BenchmarkSave256 saves batches of 256 new entries (the current period's
// partition, as in production).
func BenchmarkSave256(b *testing.B) {
	benchInboxes(b, true, func(b *testing.B, in storage.Inbox) {
		ctx := context.Background()
		now := time.Now().UnixMilli()
		batch := make([]storage.InboxEntry, 256)
		seq := int64(0)
		for b.Loop() {
			b.StopTimer()
			for i := range batch {
				seq++
				batch[i] = storage.InboxEntry{Msg: benchMsg(ids.New(), ids.New(), now+seq, seq)}
			}
			b.StartTimer()
			if err := in.Save(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.N*len(batch))/b.Elapsed().Seconds(), "entries/s")
	})
}

// BenchmarkPull100k pulls 100,000 received messages out of an inbox of
// 200,000 (two users), page by page (InboxPullLimit per call), as
// storage/sqlite's benchmark of the same name.
func BenchmarkPull100k(b *testing.B) {
	benchInboxes(b, false, func(b *testing.B, in storage.Inbox) {
		ctx := context.Background()
		me, other := ids.New(), ids.New()
		const n = 100_000
		start := time.Now().UnixMilli()
		batch := make([]storage.InboxEntry, 0, 5000)
		for i := range 2 * n {
			to := me
			if i%2 == 1 {
				to = other
			}
			batch = append(batch, storage.InboxEntry{Msg: benchMsg(ids.New(), to, start+int64(i), int64(i/2+1))})
			if len(batch) == cap(batch) {
				if err := in.Save(ctx, batch); err != nil {
					b.Fatal(err)
				}
				batch = batch[:0]
			}
		}
		for b.Loop() {
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
	})
}
