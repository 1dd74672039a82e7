package seq_test

import (
	"testing"

	"github.com/sandcat-im/sandcat/im/seq"
	"github.com/sandcat-im/sandcat/im/seq/seqtest"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

// embedded is the seqtest deployment of the embedded allocator: allocators
// share nothing but the store, so a wipe is a no-op (a new Allocator is
// already a process that lost its state).
type embedded struct{}

func (embedded) New(t testing.TB, store storage.SeqCeilings, step int64) seqtest.Allocator {
	t.Helper()
	a, err := seq.New(store, seq.Options{Step: step})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (embedded) Wipe(testing.TB) {}

func TestConformance(t *testing.T) {
	seqtest.Run(t, seqtest.Harness{
		Store: func(t testing.TB) storage.SeqCeilings { return sqlite.OpenTest(t).SeqCeilings() },
		Open:  func(testing.TB) seqtest.Deployment { return embedded{} },
	})
}

func TestNewOptions(t *testing.T) {
	store := sqlite.OpenTest(t).SeqCeilings()
	if a, err := seq.New(store, seq.Options{}); err != nil || a.Step() != seq.DefaultStep {
		t.Fatalf("default step: %v, %v", a, err)
	}
	for _, o := range []seq.Options{{Step: -1}, {Shards: -1}} {
		if _, err := seq.New(store, o); err == nil {
			t.Errorf("New(%+v) succeeded", o)
		}
	}
	if _, err := seq.New(nil, seq.Options{}); err == nil {
		t.Error("New(nil store) succeeded")
	}
}

func newBench(b *testing.B) *seq.Allocator {
	a, err := seq.New(sqlite.OpenTest(b).SeqCeilings(), seq.Options{Step: 10000})
	if err != nil {
		b.Fatal(err)
	}
	return a
}

func BenchmarkNextSend(b *testing.B)         { seqtest.BenchNextSend(b, newBench(b)) }
func BenchmarkNextRecvGroup100(b *testing.B) { seqtest.BenchNextRecv(b, newBench(b), 100) }
func BenchmarkNextSendAndRecv2(b *testing.B) { seqtest.BenchNextSendAndRecv(b, newBench(b), 2) }
