package localbus_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/bus"
	"github.com/sandcat-im/sandcat/im/bus/bustest"
	"github.com/sandcat-im/sandcat/im/bus/localbus"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func open(t testing.TB, path string, o localbus.Options) *localbus.Log {
	t.Helper()
	if o.Logger == nil {
		o.Logger = quiet()
	}
	l, err := localbus.Open(context.Background(), path, o)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return l
}

// consumer runs Consume in the background and forwards every batch.
type consumer struct {
	cancel context.CancelFunc
	done   chan error
}

func consume(t *testing.T, l *localbus.Log, group string, h bus.Handler) *consumer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &consumer{cancel: cancel, done: make(chan error, 1)}
	go func() { c.done <- l.Consume(ctx, group, h) }()
	t.Cleanup(c.stop)
	return c
}

func (c *consumer) stop() {
	c.cancel()
	<-c.done
	c.done <- context.Canceled // later stops return at once
}

func publishN(t *testing.T, l *localbus.Log, key string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := l.Publish(context.Background(), key, []byte(strconv.Itoa(i))); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
}

func recv(t *testing.T, ch <-chan bus.Record) bus.Record {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(20 * time.Second):
		t.Fatal("no record delivered")
	}
	return bus.Record{}
}

// fileBus is a Log that remembers its file, for Reopen.
type fileBus struct {
	*localbus.Log
	path string
}

func TestConformance(t *testing.T) {
	opts := localbus.Options{MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond}
	bustest.Run(t, bustest.Harness{
		Open: func(t *testing.T) bustest.Bus {
			path := filepath.Join(t.TempDir(), "bus.db")
			return fileBus{open(t, path, opts), path}
		},
		Reopen: func(t *testing.T, b bustest.Bus) bustest.Bus {
			fb := b.(fileBus)
			if err := fb.Close(); err != nil {
				t.Fatal(err)
			}
			return fileBus{open(t, fb.path, opts), fb.path}
		},
		FreshNotRedelivered: true,
	})
}

func TestHandlerErrorRedeliversSameBatch(t *testing.T) {
	l := open(t, filepath.Join(t.TempDir(), "bus.db"), localbus.Options{MaxBatch: 4, MinBackoff: time.Millisecond})
	defer l.Close()
	publishN(t, l, "k", 0, 10)
	type call struct {
		vals        []string
		redelivered bool
	}
	calls := make(chan call, 100)
	fail := 2 // the first batch fails twice
	consume(t, l, "g", func(_ context.Context, recs []bus.Record) error {
		c := call{redelivered: recs[0].Redelivered}
		for _, r := range recs {
			c.vals = append(c.vals, string(r.Value))
		}
		calls <- c
		if fail > 0 {
			fail--
			return errors.New("boom")
		}
		return nil
	})
	want := []call{
		{[]string{"0", "1", "2", "3"}, false},
		{[]string{"0", "1", "2", "3"}, true},
		{[]string{"0", "1", "2", "3"}, true},
		{[]string{"4", "5", "6", "7"}, false},
		{[]string{"8", "9"}, false},
	}
	for i, w := range want {
		var c call
		select {
		case c = <-calls:
		case <-time.After(20 * time.Second):
			t.Fatalf("call %d missing", i)
		}
		if fmt.Sprint(c.vals) != fmt.Sprint(w.vals) || c.redelivered != w.redelivered {
			t.Fatalf("call %d: got %v redelivered=%v, want %v redelivered=%v", i, c.vals, c.redelivered, w.vals, w.redelivered)
		}
	}
}

func TestRestartResumesAfterCommittedPosition(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bus.db")
	l := open(t, path, localbus.Options{MaxBatch: 3})
	publishN(t, l, "k", 0, 10)

	// Consume two batches (0..5), then fail the third: it is not committed.
	got := make(chan bus.Record, 100)
	n := 0
	c := consume(t, l, "g", func(_ context.Context, recs []bus.Record) error {
		n++
		if n > 2 {
			return errors.New("crash before commit")
		}
		for _, r := range recs {
			got <- r
		}
		return nil
	})
	for range 6 {
		recv(t, got)
	}
	c.stop()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = open(t, path, localbus.Options{MaxBatch: 100})
	defer l.Close()
	pos, err := l.Position(context.Background(), "g")
	if err != nil {
		t.Fatal(err)
	}
	publishN(t, l, "k", 10, 12)
	consume(t, l, "g", func(_ context.Context, recs []bus.Record) error {
		for _, r := range recs {
			got <- r
		}
		return nil
	})
	for i := 6; i < 12; i++ {
		r := recv(t, got)
		if string(r.Value) != strconv.Itoa(i) {
			t.Fatalf("after restart: got %q, want %d", r.Value, i)
		}
		if r.Offset <= pos {
			t.Fatalf("offset %d not after committed position %d", r.Offset, pos)
		}
		// Records that existed when the file was reopened may have been seen.
		if want := i < 10; r.Redelivered != want {
			t.Fatalf("record %d: redelivered=%v, want %v", i, r.Redelivered, want)
		}
	}
}

func TestRetentionDeletesOnlyWhatEveryGroupConsumed(t *testing.T) {
	ctx := context.Background()
	l := open(t, filepath.Join(t.TempDir(), "bus.db"), localbus.Options{RetentionInterval: -1, MaxBatch: 4, MinBackoff: time.Millisecond})
	defer l.Close()
	publishN(t, l, "k", 0, 10)
	if err := l.Retain(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := l.Len(ctx); n != 10 {
		t.Fatalf("no group yet: %d records left, want 10", n)
	}

	// Group a consumes everything; group b commits its first batch (4
	// records) and then fails forever.
	consume(t, l, "a", func(context.Context, []bus.Record) error { return nil })
	calls := 0
	stuck := make(chan struct{})
	consume(t, l, "b", func(context.Context, []bus.Record) error {
		calls++
		switch {
		case calls == 1:
			return nil
		case calls == 2:
			close(stuck)
		}
		return errors.New("stuck")
	})
	<-stuck
	for {
		pa, _ := l.Position(ctx, "a")
		pb, _ := l.Position(ctx, "b")
		if pa == l.LastOffset() && pb > 0 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := l.Retain(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := l.Len(ctx); n != 6 {
		t.Fatalf("group b consumed 4 of 10: %d records left, want 6", n)
	}
}

func TestRetentionAfterAllConsumed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "bus.db")
	l := open(t, path, localbus.Options{RetentionInterval: -1})
	publishN(t, l, "k", 0, 10)
	done := make(chan struct{})
	c := consume(t, l, "a", func(_ context.Context, recs []bus.Record) error {
		if string(recs[len(recs)-1].Value) == "9" {
			close(done)
		}
		return nil
	})
	<-done
	// The commit happens after the handler: wait for it.
	for {
		if p, _ := l.Position(ctx, "a"); p == l.LastOffset() {
			break
		}
		time.Sleep(time.Millisecond)
	}
	if err := l.Retain(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := l.Len(ctx); n != 0 {
		t.Fatalf("%d records left after retention, want 0", n)
	}
	c.stop()
	last := l.LastOffset()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Offsets never go back, even with every record deleted.
	l = open(t, path, localbus.Options{})
	defer l.Close()
	publishN(t, l, "k", 10, 11)
	if l.LastOffset() != last+1 {
		t.Fatalf("offset after reopen %d, want %d", l.LastOffset(), last+1)
	}
}

func TestOneConsumerPerGroup(t *testing.T) {
	l := open(t, filepath.Join(t.TempDir(), "bus.db"), localbus.Options{})
	defer l.Close()
	started := make(chan struct{})
	publishN(t, l, "k", 0, 1)
	once := sync.Once{}
	consume(t, l, "g", func(context.Context, []bus.Record) error {
		once.Do(func() { close(started) })
		return nil
	})
	<-started
	err := l.Consume(context.Background(), "g", func(context.Context, []bus.Record) error { return nil })
	if !errors.Is(err, localbus.ErrGroupActive) {
		t.Fatalf("second consumer: %v, want ErrGroupActive", err)
	}
}

// TestSurvivesSIGKILL runs a publisher in a child process, kills it with
// SIGKILL while it publishes, and checks that every record whose Publish had
// returned is in the file.
func TestSurvivesSIGKILL(t *testing.T) {
	if os.Getenv("LOCALBUS_CHILD") != "" {
		t.Skip("child")
	}
	path := filepath.Join(t.TempDir(), "bus.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestChildPublisher$", "-test.v")
	cmd.Env = append(os.Environ(), "LOCALBUS_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	acked := -1
	for sc.Scan() {
		var i int
		if _, err := fmt.Sscanf(sc.Text(), "acked %d", &i); err == nil {
			acked = i
			if acked >= 300 {
				break
			}
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if acked < 300 {
		t.Fatalf("child acknowledged only %d records", acked)
	}

	l := open(t, path, localbus.Options{MaxBatch: 10000})
	defer l.Close()
	got := make(chan bus.Record, 100000)
	done := make(chan struct{})
	consume(t, l, "g", func(_ context.Context, recs []bus.Record) error {
		for _, r := range recs {
			got <- r
		}
		close(done)
		return errors.New("stop") // read once
	})
	<-done
	n := len(got)
	if n < acked+1 {
		t.Fatalf("%d records in the file, but %d were acknowledged", n, acked+1)
	}
	for i := range acked + 1 {
		r := <-got
		if string(r.Value) != strconv.Itoa(i) {
			t.Fatalf("record %d: %q", i, r.Value)
		}
	}
}

// TestChildPublisher is the child of TestSurvivesSIGKILL: it publishes
// forever and prints each acknowledged record.
func TestChildPublisher(t *testing.T) {
	path := os.Getenv("LOCALBUS_CHILD")
	if path == "" {
		t.Skip("only run as the child of TestSurvivesSIGKILL")
	}
	l := open(t, path, localbus.Options{})
	for i := 0; ; i++ {
		if err := l.Publish(context.Background(), "k", []byte(strconv.Itoa(i))); err != nil {
			t.Fatal(err)
		}
		fmt.Printf("acked %d\n", i)
	}
}

func BenchmarkPublish(b *testing.B) {
	l := open(b, filepath.Join(b.TempDir(), "bus.db"), localbus.Options{RetentionInterval: -1})
	defer l.Close()
	val := make([]byte, 200)
	b.SetBytes(int64(len(val)))
	b.SetParallelism(64) // many publishers: the case group commit is for
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.Publish(context.Background(), "conversation", val); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func BenchmarkPublishSerial(b *testing.B) {
	l := open(b, filepath.Join(b.TempDir(), "bus.db"), localbus.Options{RetentionInterval: -1})
	defer l.Close()
	val := make([]byte, 200)
	b.SetBytes(int64(len(val)))
	for b.Loop() {
		if err := l.Publish(context.Background(), "conversation", val); err != nil {
			b.Fatal(err)
		}
	}
}
