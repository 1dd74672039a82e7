package redisseq_test

import (
	"testing"

	"github.com/sandcat-im/sandcat/im/cache/redistest"
	"github.com/sandcat-im/sandcat/im/seq"
	"github.com/sandcat-im/sandcat/im/seq/redisseq"
	"github.com/sandcat-im/sandcat/im/seq/seqtest"
	"github.com/sandcat-im/sandcat/storage/postgres/pgtest"
)

// The Redis allocator against the embedded one, both over PostgreSQL
// ceilings with a step of 10,000 (rollovers are rare: the figures are the
// steady state, one script call per operation against in-memory counters).
func benchBoth(b *testing.B, run func(*testing.B, seqtest.Allocator)) {
	store := pgtest.Open(b).SeqCeilings()
	b.Run("embedded", func(b *testing.B) {
		a, err := seq.New(store, seq.Options{Step: 10000})
		if err != nil {
			b.Fatal(err)
		}
		run(b, a)
	})
	b.Run("redis", func(b *testing.B) {
		rdb, prefix := redistest.Client(b)
		a, err := redisseq.New(rdb, store, redisseq.Options{Prefix: prefix, Step: 10000})
		if err != nil {
			b.Fatal(err)
		}
		run(b, a)
	})
}

func BenchmarkNextSend(b *testing.B) {
	benchBoth(b, seqtest.BenchNextSend)
}

func BenchmarkNextRecvGroup100(b *testing.B) {
	benchBoth(b, func(b *testing.B, a seqtest.Allocator) { seqtest.BenchNextRecv(b, a, 100) })
}

func BenchmarkNextSendAndRecv2(b *testing.B) {
	benchBoth(b, func(b *testing.B, a seqtest.Allocator) { seqtest.BenchNextSendAndRecv(b, a, 2) })
}

func BenchmarkNextSendAndRecv100(b *testing.B) {
	benchBoth(b, func(b *testing.B, a seqtest.Allocator) { seqtest.BenchNextSendAndRecv(b, a, 100) })
}
