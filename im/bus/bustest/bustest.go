// Package bustest is the conformance suite of the message bus: every
// implementation of bus.Publisher and bus.Consumer (localbus, kafkabus) runs
// it from its own tests with Run.
//
// The suite checks the contract of package bus: a Publish that returned is
// delivered; records of one key arrive in publish order; a batch is committed
// only after the handler returned nil and is delivered again after an error;
// a restarted bus resumes after the committed position; Redelivered is true
// for every record a handler of the group has seen before; groups are
// independent; Consume ends with its context or with Close.
package bustest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/bus"
)

// Bus is what the suite tests.
type Bus interface {
	bus.Publisher
	bus.Consumer
	Close() error
}

// Harness makes the buses of the suite.
type Harness struct {
	// Open returns a new, empty bus (a log or topic of its own). Its
	// consumers must retry a failed batch after a short backoff (tens of
	// milliseconds at most) and at least 20 times before giving up on a
	// record. The suite closes the bus; Open may register more cleanup.
	Open func(t *testing.T) Bus
	// Reopen closes b and opens the same log again, as a restart of the
	// process would.
	Reopen func(t *testing.T, b Bus) Bus
	// FreshNotRedelivered says that the bus sets Redelivered=false on a
	// record published since the bus was opened that no handler of the group
	// has seen. (Every bus must set Redelivered=true on a record a handler of
	// the group has seen.)
	FreshNotRedelivered bool
}

// Wait is how long the suite waits for something that must happen before it
// fails the test: generous, for loaded machines and consumer-group joins.
const Wait = 60 * time.Second

// Run runs the suite.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(t *testing.T, h Harness)
	}{
		{"PublishConsumeOrder", testPublishConsumeOrder},
		{"KeysAndValuesRoundTrip", testKeysAndValuesRoundTrip},
		{"HandlerErrorRedelivers", testHandlerErrorRedelivers},
		{"RestartResumesAfterCommittedPosition", testRestartResumes},
		{"ConcurrentPublishersKeepPerKeyOrder", testConcurrentPublishers},
		{"GroupsAreIndependent", testGroupsAreIndependent},
		{"CancelEndsConsume", testCancelEndsConsume},
		{"CloseEndsConsumersAndPublishers", testCloseEndsConsumersAndPublishers},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

// open opens a bus that the test closes at its end.
func open(t *testing.T, h Harness) Bus {
	t.Helper()
	b := h.Open(t)
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return b
}

// group returns a group name unique to this run.
func group(name string) string { return name + "-" + rand.Text()[:8] }

// Consumer runs Consume in the background.
type Consumer struct {
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

// Consume starts b.Consume(group, h); the test's cleanup stops it.
func Consume(t testing.TB, b bus.Consumer, group string, h bus.Handler) *Consumer {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Consumer{cancel: cancel, done: make(chan error, 1)}
	go func() { c.done <- b.Consume(ctx, group, h) }()
	t.Cleanup(func() { c.Stop() })
	return c
}

// Stop cancels the consumer and returns what Consume returned.
func (c *Consumer) Stop() error {
	c.once.Do(func() {
		c.cancel()
		c.err = <-c.done
	})
	return c.err
}

// Sink is a handler that accepts every batch and forwards its records.
type Sink chan bus.Record

// NewSink returns a sink with room for n records.
func NewSink(n int) Sink { return make(Sink, n) }

// Handle is the bus.Handler.
func (s Sink) Handle(_ context.Context, recs []bus.Record) error {
	for _, r := range recs {
		s <- r
	}
	return nil
}

// Recv returns the next record, failing the test after Wait.
func (s Sink) Recv(t testing.TB) bus.Record {
	t.Helper()
	select {
	case r := <-s:
		return r
	case <-time.After(Wait):
		t.Fatal("no record delivered")
	}
	return bus.Record{}
}

// PublishN publishes strconv.Itoa(i) for i in [from, to) under key.
func PublishN(t testing.TB, p bus.Publisher, key string, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if err := p.Publish(context.Background(), key, []byte(strconv.Itoa(i))); err != nil {
			t.Fatalf("publish %s/%d: %v", key, i, err)
		}
	}
}

// seen tracks which records a group's handlers got, by key and value, to
// check Redelivered.
type seen struct {
	mu    sync.Mutex
	fresh bool            // the bus sets Redelivered=false on fresh records
	after map[string]bool // records published since the last (re)open
	got   map[string]bool
}

func newSeen(fresh bool) *seen {
	return &seen{fresh: fresh, after: map[string]bool{}, got: map[string]bool{}}
}

func id(key string, value []byte) string { return key + "\x00" + string(value) }

func (s *seen) published(key string, from, to int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := from; i < to; i++ {
		s.after[id(key, []byte(strconv.Itoa(i)))] = true
	}
}

func (s *seen) reopened() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.after)
}

// check returns an error if a record of recs has a wrong Redelivered, and
// records them as seen.
func (s *seen) check(recs []bus.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for _, r := range recs {
		k := id(r.Key, r.Value)
		switch {
		case s.got[k] && !r.Redelivered:
			errs = append(errs, fmt.Errorf("record %s/%s (offset %d) delivered again with Redelivered=false", r.Key, r.Value, r.Offset))
		case s.fresh && !s.got[k] && s.after[k] && r.Redelivered:
			errs = append(errs, fmt.Errorf("fresh record %s/%s (offset %d) delivered with Redelivered=true", r.Key, r.Value, r.Offset))
		}
	}
	for _, r := range recs {
		s.got[id(r.Key, r.Value)] = true
	}
	return errors.Join(errs...)
}

func testPublishConsumeOrder(t *testing.T, h Harness) {
	b := open(t, h)
	sn := newSeen(h.FreshNotRedelivered)
	sn.published("k", 0, 100)
	PublishN(t, b, "k", 0, 50)
	got := NewSink(200)
	Consume(t, b, group("order"), func(ctx context.Context, recs []bus.Record) error {
		if err := sn.check(recs); err != nil {
			t.Error(err)
		}
		return got.Handle(ctx, recs)
	})
	PublishN(t, b, "k", 50, 100) // while consuming
	prev := int64(-1)
	for i := range 100 {
		r := got.Recv(t)
		if string(r.Value) != strconv.Itoa(i) {
			t.Fatalf("record %d: value %q", i, r.Value)
		}
		if r.Offset <= prev {
			t.Fatalf("offsets not increasing: %d after %d", r.Offset, prev)
		}
		if r.Key != "k" {
			t.Fatalf("record %d: key %q", i, r.Key)
		}
		prev = r.Offset
	}
}

func testKeysAndValuesRoundTrip(t *testing.T, h Harness) {
	b := open(t, h)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	big := make([]byte, 256<<10)
	_, _ = rand.Read(big)
	want := map[string][]byte{
		"":            []byte("empty key"),
		"ключ/😀 \x00": all,
		"empty value": {},
		"big":         big,
	}
	before := time.Now().Add(-time.Minute).UnixMilli()
	for k, v := range want {
		if err := b.Publish(context.Background(), k, v); err != nil {
			t.Fatalf("publish %q: %v", k, err)
		}
	}
	after := time.Now().Add(time.Minute).UnixMilli()
	got := NewSink(10)
	Consume(t, b, group("values"), got.Handle)
	for range want {
		r := got.Recv(t)
		v, ok := want[r.Key]
		if !ok {
			t.Fatalf("unexpected key %q (or delivered twice)", r.Key)
		}
		if !bytes.Equal(r.Value, v) {
			t.Fatalf("key %q: value of %d bytes differs from the %d published", r.Key, len(r.Value), len(v))
		}
		if r.Time < before || r.Time > after {
			t.Fatalf("key %q: time %d not around the publish time", r.Key, r.Time)
		}
		delete(want, r.Key)
	}
}

func testHandlerErrorRedelivers(t *testing.T, h Harness) {
	b := open(t, h)
	sn := newSeen(h.FreshNotRedelivered)
	sn.published("k", 0, 10)
	PublishN(t, b, "k", 0, 10)

	type call struct {
		vals []string
		err  error
	}
	calls := make(chan call, 100)
	var mu sync.Mutex
	fail := 2 // the first batch fails twice
	Consume(t, b, group("retry"), func(_ context.Context, recs []bus.Record) error {
		mu.Lock()
		defer mu.Unlock()
		c := call{err: sn.check(recs)}
		for _, r := range recs {
			c.vals = append(c.vals, string(r.Value))
		}
		var err error
		if fail > 0 {
			fail--
			err = errors.New("boom")
		}
		calls <- c
		return err
	})
	recv := func(i int) call {
		select {
		case c := <-calls:
			if c.err != nil {
				t.Fatalf("call %d: %v", i, c.err)
			}
			return c
		case <-time.After(Wait):
			t.Fatalf("call %d missing", i)
		}
		return call{}
	}
	var accepted []string
	for i := range 3 { // two failures, then the same batch is accepted
		c := recv(i)
		if c.vals[0] != "0" {
			t.Fatalf("call %d starts at %q, want the first batch (from 0) again", i, c.vals[0])
		}
		if i == 2 {
			accepted = c.vals
		}
	}
	// Together the accepted batches hold every record once, in order.
	for i := 3; len(accepted) < 10; i++ {
		accepted = append(accepted, recv(i).vals...)
	}
	if fmt.Sprint(accepted) != "[0 1 2 3 4 5 6 7 8 9]" {
		t.Fatalf("accepted records %v", accepted)
	}
}

func testRestartResumes(t *testing.T, h Harness) {
	b := h.Open(t)
	t.Cleanup(func() { // b is the reopened bus by then
		if err := b.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	sn := newSeen(h.FreshNotRedelivered)
	sn.published("k", 0, 10)
	PublishN(t, b, "k", 0, 5)
	g := group("restart")

	// Accept batches until at least 3 records are accepted, then fail: the
	// failed batch is not committed.
	var mu sync.Mutex
	var accepted, failed []string
	enough, failing := make(chan struct{}), make(chan struct{})
	c := Consume(t, b, g, func(_ context.Context, recs []bus.Record) error {
		mu.Lock()
		defer mu.Unlock()
		if err := sn.check(recs); err != nil {
			t.Error(err)
		}
		if len(accepted) >= 3 {
			if failed == nil {
				for _, r := range recs {
					failed = append(failed, string(r.Value))
				}
				close(failing)
			}
			return errors.New("crash before commit")
		}
		for _, r := range recs {
			accepted = append(accepted, string(r.Value))
		}
		if len(accepted) >= 3 {
			close(enough)
		}
		return nil
	})
	for _, ch := range []chan struct{}{enough, failing} {
		select {
		case <-ch:
		case <-time.After(Wait):
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("handler not called as expected; accepted %v, failed %v", accepted, failed)
		}
		if ch == enough {
			PublishN(t, b, "k", 5, 10) // so that there is a batch to fail
		}
	}
	if err := c.Stop(); !errors.Is(err, context.Canceled) {
		t.Fatalf("Consume after cancel: %v", err)
	}

	b = h.Reopen(t, b)
	sn.reopened()
	sn.published("k", 10, 12)
	PublishN(t, b, "k", 10, 12)
	got := NewSink(100)
	Consume(t, b, g, func(ctx context.Context, recs []bus.Record) error {
		if err := sn.check(recs); err != nil {
			t.Error(err)
		}
		return got.Handle(ctx, recs)
	})
	mu.Lock()
	from := len(accepted)
	mu.Unlock()
	if fmt.Sprint(accepted) != fmt.Sprint(seq(0, from)) {
		t.Fatalf("accepted before the restart: %v", accepted)
	}
	for i := from; i < 12; i++ {
		r := got.Recv(t)
		if string(r.Value) != strconv.Itoa(i) {
			t.Fatalf("after restart: got %q, want %d (first uncommitted record is %d)", r.Value, i, from)
		}
		if i < from+len(failed) && !r.Redelivered {
			t.Fatalf("record %d was in a failed batch but is not marked redelivered", i)
		}
	}
}

func seq(from, to int) []string {
	var s []string
	for i := from; i < to; i++ {
		s = append(s, strconv.Itoa(i))
	}
	return s
}

func testConcurrentPublishers(t *testing.T, h Harness) {
	b := open(t, h)
	const pubs, per = 16, 200
	got := NewSink(pubs * per)
	Consume(t, b, group("concurrent"), got.Handle)
	var wg sync.WaitGroup
	for p := range pubs {
		wg.Go(func() {
			key := "k" + strconv.Itoa(p)
			for i := range per {
				if err := b.Publish(context.Background(), key, []byte(strconv.Itoa(i))); err != nil {
					t.Errorf("publish: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	next := map[string]int{}
	for range pubs * per {
		r := got.Recv(t)
		if string(r.Value) != strconv.Itoa(next[r.Key]) {
			t.Fatalf("key %s: got %q, want %d (per-key order broken)", r.Key, r.Value, next[r.Key])
		}
		next[r.Key]++
	}
	for p := range pubs {
		if n := next["k"+strconv.Itoa(p)]; n != per {
			t.Fatalf("publisher %d: %d records", p, n)
		}
	}
}

func testGroupsAreIndependent(t *testing.T, h Harness) {
	b := open(t, h)
	PublishN(t, b, "k", 0, 20)
	a, c := NewSink(100), NewSink(100)
	Consume(t, b, group("a"), a.Handle)
	Consume(t, b, group("b"), c.Handle)
	PublishN(t, b, "k", 20, 30)
	for _, s := range []Sink{a, c} {
		for i := range 30 {
			if r := s.Recv(t); string(r.Value) != strconv.Itoa(i) {
				t.Fatalf("got %q, want %d", r.Value, i)
			}
		}
	}
}

func testCancelEndsConsume(t *testing.T, h Harness) {
	b := open(t, h)
	PublishN(t, b, "k", 0, 1)
	got := NewSink(10)
	c := Consume(t, b, group("cancel"), got.Handle)
	got.Recv(t)
	done := make(chan error, 1)
	go func() { done <- c.Stop() }()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Consume after cancel: %v, want context.Canceled", err)
		}
	case <-time.After(Wait):
		t.Fatal("Consume did not return after its context was cancelled")
	}
}

func testCloseEndsConsumersAndPublishers(t *testing.T, h Harness) {
	b := h.Open(t)
	PublishN(t, b, "k", 0, 1)
	got := NewSink(10)
	done := make(chan error, 1)
	go func() { done <- b.Consume(context.Background(), group("close"), got.Handle) }()
	got.Recv(t)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if !errors.Is(err, bus.ErrClosed) {
			t.Fatalf("Consume after Close: %v, want bus.ErrClosed", err)
		}
	case <-time.After(Wait):
		t.Fatal("Consume did not return after Close")
	}
	if err := b.Publish(context.Background(), "k", []byte("x")); !errors.Is(err, bus.ErrClosed) {
		t.Fatalf("Publish after Close: %v, want bus.ErrClosed", err)
	}
}

// BenchmarkPublish measures Publish from 64 goroutines per GOMAXPROCS, each
// publishing 200-byte values under its own key, as concurrent conversations
// do.
func BenchmarkPublish(b *testing.B, p bus.Publisher) {
	val := make([]byte, 200)
	b.SetBytes(int64(len(val)))
	var n sync.Mutex
	next := 0
	b.SetParallelism(64)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		n.Lock()
		key := "conversation-" + strconv.Itoa(next)
		next++
		n.Unlock()
		for pb.Next() {
			if err := p.Publish(context.Background(), key, val); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkPublishSerial measures one publisher waiting for each Publish:
// the latency of a durable publish.
func BenchmarkPublishSerial(b *testing.B, p bus.Publisher) {
	val := make([]byte, 200)
	b.SetBytes(int64(len(val)))
	for b.Loop() {
		if err := p.Publish(context.Background(), "conversation", val); err != nil {
			b.Fatal(err)
		}
	}
}
