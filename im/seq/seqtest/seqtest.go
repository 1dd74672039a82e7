// Package seqtest is the conformance suite of the seq allocators: the
// embedded one (im/seq) and the Redis one (im/seq/redisseq) both run it, so
// either can be plugged wherever seqs are allocated.
//
// The contract checked (sandcat-wire.md §4.1, §4.2, bug B2 fixed):
//   - a user's send and recv counters start at 1, or just above the stored
//     ceiling; Current reports 0, 0 for a user never seen;
//   - a seq is never handed out above the durable ceiling: the ceiling is
//     raised (once per step, one Raise for all the users of a call that roll
//     over, ids sorted) BEFORE the seq is returned;
//   - no seq is ever handed out twice, across allocators (processes) sharing
//     a store, across restarts and across the loss of volatile state (a
//     Redis FLUSHALL), and each caller sees a user's seqs increase;
//   - a failed Raise fails the call and loses the seqs it took (a gap).
package seqtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/storage"
)

// Allocator is the method set every seq allocator has.
type Allocator interface {
	NextSend(ctx context.Context, userID string) (int64, error)
	NextRecv(ctx context.Context, userIDs []string) ([]int64, error)
	NextSendAndRecv(ctx context.Context, sender string, receivers []string) (send int64, recv []int64, err error)
	Current(ctx context.Context, userID string) (recv, send int64, err error)
}

// Deployment makes the allocators of one test. Allocators made by one
// Deployment share their volatile state the way the processes of one
// deployment do: none for the embedded allocator, the Redis keys under one
// prefix for redisseq.
type Deployment interface {
	// New returns an allocator over store with block size step.
	New(t testing.TB, store storage.SeqCeilings, step int64) Allocator
	// Wipe loses the volatile state shared by the allocators (a Redis
	// FLUSHALL or restart without persistence); a no-op where there is none.
	// It may run while the allocators are in use.
	Wipe(t testing.TB)
}

// Harness gives the suite its stores and deployments.
type Harness struct {
	// Store returns a ceilings store for one test (it may be shared by
	// tests: the suite uses fresh user ids in every test).
	Store func(t testing.TB) storage.SeqCeilings
	// Open returns a fresh Deployment for one test.
	Open func(t testing.TB) Deployment
}

// Run runs the conformance suite.
func Run(t *testing.T, h Harness) {
	tests := []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"FreshUserStartsAtOne", testFreshUserStartsAtOne},
		{"StartsAtStoredCeiling", testStartsAtStoredCeiling},
		{"RaiseBeforeCrossing", testRaiseBeforeCrossing},
		{"NextRecvGroupBatch", testNextRecvGroupBatch},
		{"NextSendAndRecv", testNextSendAndRecv},
		{"RestartNeverReissues", testRestartNeverReissues},
		{"RaiseFailureKeepsState", testRaiseFailureKeepsState},
		{"ConcurrentUniqueAndMonotonic", testConcurrentUniqueAndMonotonic},
		{"WipeMidStreamNeverRepeats", testWipeMidStreamNeverRepeats},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

// Recorder wraps a ceilings store: it records the Raise calls and can fail them.
type Recorder struct {
	storage.SeqCeilings
	mu     sync.Mutex
	raises []RaiseCall
	fail   atomic.Bool
}

// RaiseCall is one recorded Raise.
type RaiseCall struct {
	Kind  storage.SeqKind
	Users []string
	By    int64
}

// NewRecorder wraps store.
func NewRecorder(store storage.SeqCeilings) *Recorder { return &Recorder{SeqCeilings: store} }

// Raise implements storage.SeqCeilings.
func (r *Recorder) Raise(ctx context.Context, kind storage.SeqKind, users []string, by int64) ([]int64, error) {
	if r.fail.Load() {
		return nil, errors.New("seqtest: injected failure")
	}
	r.mu.Lock()
	r.raises = append(r.raises, RaiseCall{Kind: kind, Users: slices.Clone(users), By: by})
	r.mu.Unlock()
	return r.SeqCeilings.Raise(ctx, kind, users, by)
}

// Fail makes the next Raises fail (true) or succeed (false).
func (r *Recorder) Fail(fail bool) { r.fail.Store(fail) }

// Calls returns the Raises since the last call.
func (r *Recorder) Calls() []RaiseCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.raises
	r.raises = nil
	return out
}

// names gives a test its own user ids: name("a") is "a." + a random suffix
// common to the test, so ids keep the order of their names.
func names(t testing.TB) func(string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	suffix := "." + hex.EncodeToString(b[:])
	return func(n string) string { return n + suffix }
}

func nextSend(t testing.TB, a Allocator, user string) int64 {
	t.Helper()
	v, err := a.NextSend(context.Background(), user)
	if err != nil {
		t.Fatalf("NextSend(%s): %v", user, err)
	}
	return v
}

func nextRecv(t testing.TB, a Allocator, users ...string) []int64 {
	t.Helper()
	v, err := a.NextRecv(context.Background(), users)
	if err != nil {
		t.Fatalf("NextRecv(%v): %v", users, err)
	}
	if len(v) != len(users) {
		t.Fatalf("NextRecv(%d users) returned %d seqs", len(users), len(v))
	}
	return v
}

func current(t testing.TB, a Allocator, user string) (int64, int64) {
	t.Helper()
	recv, send, err := a.Current(context.Background(), user)
	if err != nil {
		t.Fatalf("Current(%s): %v", user, err)
	}
	return recv, send
}

func ceiling(t testing.TB, store storage.SeqCeilings, kind storage.SeqKind, user string) int64 {
	t.Helper()
	send, recv, err := store.Get(context.Background(), user)
	if err != nil {
		t.Fatalf("Get(%s): %v", user, err)
	}
	if kind == storage.SeqSend {
		return send
	}
	return recv
}

func testFreshUserStartsAtOne(t *testing.T, h Harness) {
	store := h.Store(t)
	a := h.Open(t).New(t, store, 100)
	u := ids.New()
	if recv, send := current(t, a, u); recv != 0 || send != 0 {
		t.Fatalf("unknown user: Current = %d, %d; want 0, 0", recv, send)
	}
	for want := int64(1); want <= 3; want++ {
		if got := nextSend(t, a, u); got != want {
			t.Fatalf("NextSend = %d, want %d", got, want)
		}
	}
	if got := nextRecv(t, a, u); got[0] != 1 {
		t.Fatalf("NextRecv = %d, want 1", got[0])
	}
	if recv, send := current(t, a, u); recv != 1 || send != 3 {
		t.Fatalf("Current = %d, %d; want 1, 3", recv, send)
	}
	// both ceilings are persisted (bug B2: the send ceiling too)
	if send, recv, err := store.Get(context.Background(), u); err != nil || send != 100 || recv != 100 {
		t.Fatalf("stored ceilings = %d, %d, %v; want 100, 100", send, recv, err)
	}
	// another unknown user still reports 0, 0 (bug B9)
	if recv, send := current(t, a, ids.New()); recv != 0 || send != 0 {
		t.Fatalf("unknown user: Current = %d, %d; want 0, 0", recv, send)
	}
}

func testStartsAtStoredCeiling(t *testing.T, h Harness) {
	ctx := context.Background()
	store := h.Store(t)
	u := ids.New()
	if _, err := store.Raise(ctx, storage.SeqSend, []string{u}, 500); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Raise(ctx, storage.SeqRecv, []string{u}, 700); err != nil {
		t.Fatal(err)
	}
	a := h.Open(t).New(t, store, 10)
	if recv, send := current(t, a, u); recv != 700 || send != 500 {
		t.Fatalf("Current before use = %d, %d; want the ceilings 700, 500", recv, send)
	}
	if got := nextSend(t, a, u); got != 501 {
		t.Fatalf("NextSend = %d, want 501", got)
	}
	if got := nextRecv(t, a, u); got[0] != 701 {
		t.Fatalf("NextRecv = %d, want 701", got[0])
	}
	if send, recv, _ := store.Get(ctx, u); send != 510 || recv != 710 {
		t.Fatalf("ceilings = %d, %d; want 510, 710", send, recv)
	}
}

// The ceiling is raised before the first seq above it is handed out, once per step.
func testRaiseBeforeCrossing(t *testing.T, h Harness) {
	tests := []struct {
		name       string
		step       int64
		calls      int
		wantRaises int
		wantCeil   int64
	}{
		{"step 1 raises every time", 1, 5, 5, 5},
		{"step 3, 7 seqs", 3, 7, 3, 9},
		{"step 3, exactly 6", 3, 6, 2, 6},
		{"step 10, 1 seq", 10, 1, 1, 10},
		{"step 10, 10 seqs", 10, 10, 1, 10},
		{"step 10, 11 seqs", 10, 11, 2, 20},
	}
	type way struct {
		name string
		kind storage.SeqKind
		next func(a Allocator, u string) (int64, error)
	}
	ctx := context.Background()
	ways := []way{
		{"NextSend", storage.SeqSend, func(a Allocator, u string) (int64, error) { return a.NextSend(ctx, u) }},
		{"NextRecv", storage.SeqRecv, func(a Allocator, u string) (int64, error) {
			v, err := a.NextRecv(ctx, []string{u})
			if err != nil {
				return 0, err
			}
			return v[0], nil
		}},
		{"NextSendAndRecv/send", storage.SeqSend, func(a Allocator, u string) (int64, error) {
			s, _, err := a.NextSendAndRecv(ctx, u, nil)
			return s, err
		}},
		{"NextSendAndRecv/recv", storage.SeqRecv, func(a Allocator, u string) (int64, error) {
			_, r, err := a.NextSendAndRecv(ctx, ids.New(), []string{u})
			if err != nil {
				return 0, err
			}
			return r[0], nil
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, w := range ways {
				rec := NewRecorder(h.Store(t))
				a := h.Open(t).New(t, rec, tc.step)
				u := ids.New()
				for i := 1; i <= tc.calls; i++ {
					got, err := w.next(a, u)
					if err != nil {
						t.Fatalf("%s: %v", w.name, err)
					}
					if got != int64(i) {
						t.Fatalf("%s: seq %d = %d", w.name, i, got)
					}
					if ceil := ceiling(t, rec, w.kind, u); ceil < got {
						t.Fatalf("%s: seq %d handed out above the stored ceiling %d", w.name, got, ceil)
					}
				}
				n := 0
				for _, c := range rec.Calls() {
					if c.Kind == w.kind && slices.Contains(c.Users, u) {
						n++
					}
				}
				if n != tc.wantRaises {
					t.Errorf("%s: %d raises, want %d", w.name, n, tc.wantRaises)
				}
				if ceil := ceiling(t, rec, w.kind, u); ceil != tc.wantCeil {
					t.Errorf("%s: ceiling %d, want %d", w.name, ceil, tc.wantCeil)
				}
			}
		})
	}
}

func testNextRecvGroupBatch(t *testing.T, h Harness) {
	ctx := context.Background()
	tests := []struct {
		name string
		step int64
		// before: seqs to take per user before the group call
		before     map[string]int
		group      []string
		want       []int64
		wantRaises [][]string // users of each Raise during the group call
	}{
		{
			name:   "rollover of some members: one raise",
			step:   5,
			before: map[string]int{"a": 4, "b": 5, "d": 2},
			group:  []string{"a", "b", "c", "d"},
			want:   []int64{5, 6, 1, 3},
			// b is full, c is new; sorted ids
			wantRaises: [][]string{{"b", "c"}},
		},
		{
			name:       "all fit: no raise",
			step:       10,
			before:     map[string]int{"a": 1, "b": 1},
			group:      []string{"b", "a"},
			want:       []int64{2, 2},
			wantRaises: nil,
		},
		{
			name:       "duplicates get their own seqs across a rollover",
			step:       2,
			before:     map[string]int{"a": 1},
			group:      []string{"a", "b", "a", "a"},
			want:       []int64{2, 1, 3, 4},
			wantRaises: [][]string{{"a", "b"}},
		},
		{
			name:       "step 1, duplicates: one raise for several seqs",
			step:       1,
			before:     map[string]int{},
			group:      []string{"x", "x", "x"},
			want:       []int64{1, 2, 3},
			wantRaises: [][]string{{"x"}},
		},
		{
			name:       "empty group",
			step:       3,
			group:      []string{},
			want:       []int64{},
			wantRaises: nil,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := names(t)
			rec := NewRecorder(h.Store(t))
			a := h.Open(t).New(t, rec, tc.step)
			for u, n := range tc.before {
				for range n {
					nextRecv(t, a, name(u))
				}
			}
			rec.Calls()
			group := make([]string, len(tc.group))
			for i, u := range tc.group {
				group[i] = name(u)
			}
			got, err := a.NextRecv(ctx, group)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("NextRecv(%v) = %v, want %v", tc.group, got, tc.want)
			}
			var calls [][]string
			for _, c := range rec.Calls() {
				if c.Kind != storage.SeqRecv {
					t.Errorf("raise of kind %s during NextRecv", c.Kind)
				}
				calls = append(calls, c.Users)
			}
			var want [][]string
			for _, r := range tc.wantRaises {
				us := make([]string, len(r))
				for i, u := range r {
					us[i] = name(u)
				}
				want = append(want, us)
			}
			if !slices.EqualFunc(calls, want, slices.Equal[[]string]) {
				t.Fatalf("raises %v, want %v", calls, want)
			}
			for i, u := range group {
				if _, recv, _ := rec.Get(ctx, u); recv < got[i] {
					t.Fatalf("%s got %d above its ceiling %d", u, got[i], recv)
				}
			}
		})
	}
}

func testNextSendAndRecv(t *testing.T, h Harness) {
	ctx := context.Background()
	tests := []struct {
		name      string
		step      int64
		sendFirst int // sender's send seqs taken before
		recvFirst map[string]int
		receivers []string
		wantSend  int64
		wantRecv  []int64
		// wantRaises: kind -> users raised during the call
		wantRaises map[storage.SeqKind][]string
	}{
		{
			name: "fresh users", step: 10,
			receivers: []string{"b", "c"}, wantSend: 1, wantRecv: []int64{1, 1},
			wantRaises: map[storage.SeqKind][]string{storage.SeqSend: {"s"}, storage.SeqRecv: {"b", "c"}},
		},
		{
			name: "no receivers", step: 10, sendFirst: 3,
			receivers: nil, wantSend: 4, wantRecv: []int64{},
		},
		{
			name: "all fit", step: 10, sendFirst: 2, recvFirst: map[string]int{"b": 1, "c": 9},
			receivers: []string{"c", "b"}, wantSend: 3, wantRecv: []int64{10, 2},
		},
		{
			name: "send and one receiver roll over", step: 3, sendFirst: 3, recvFirst: map[string]int{"b": 3, "c": 1},
			receivers: []string{"b", "c"}, wantSend: 4, wantRecv: []int64{4, 2},
			wantRaises: map[storage.SeqKind][]string{storage.SeqSend: {"s"}, storage.SeqRecv: {"b"}},
		},
		{
			name: "sender among receivers: its two counters are independent", step: 5, sendFirst: 1, recvFirst: map[string]int{"s": 4},
			receivers: []string{"s", "s"}, wantSend: 2, wantRecv: []int64{5, 6},
			wantRaises: map[storage.SeqKind][]string{storage.SeqRecv: {"s"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			name := names(t)
			rec := NewRecorder(h.Store(t))
			a := h.Open(t).New(t, rec, tc.step)
			s := name("s")
			for range tc.sendFirst {
				nextSend(t, a, s)
			}
			for u, n := range tc.recvFirst {
				for range n {
					nextRecv(t, a, name(u))
				}
			}
			rec.Calls()
			var receivers []string
			for _, u := range tc.receivers {
				receivers = append(receivers, name(u))
			}
			send, recv, err := a.NextSendAndRecv(ctx, s, receivers)
			if err != nil {
				t.Fatal(err)
			}
			if send != tc.wantSend || !slices.Equal(recv, tc.wantRecv) {
				t.Fatalf("NextSendAndRecv = %d, %v; want %d, %v", send, recv, tc.wantSend, tc.wantRecv)
			}
			got := map[storage.SeqKind][]string{}
			for _, c := range rec.Calls() {
				got[c.Kind] = append(got[c.Kind], c.Users...)
			}
			for _, kind := range []storage.SeqKind{storage.SeqSend, storage.SeqRecv} {
				var want []string
				for _, u := range tc.wantRaises[kind] {
					want = append(want, name(u))
				}
				if !slices.Equal(got[kind], want) {
					t.Errorf("%s raises of %v, want %v", kind, got[kind], want)
				}
			}
			if ceil := ceiling(t, rec, storage.SeqSend, s); ceil < send {
				t.Fatalf("send seq %d above its ceiling %d", send, ceil)
			}
			for i, u := range receivers {
				if ceil := ceiling(t, rec, storage.SeqRecv, u); ceil < recv[i] {
					t.Fatalf("recv seq %d of %s above its ceiling %d", recv[i], u, ceil)
				}
			}
			if _, cs := current(t, a, s); cs != send {
				t.Fatalf("Current send of the sender = %d, want %d", cs, send)
			}
		})
	}
	t.Run("failure takes nothing durable", func(t *testing.T) {
		rec := NewRecorder(h.Store(t))
		a := h.Open(t).New(t, rec, 2)
		s, r := ids.New(), ids.New()
		nextSend(t, a, s)
		rec.Fail(true)
		if _, _, err := a.NextSendAndRecv(ctx, s, []string{r}); err == nil {
			t.Fatal("NextSendAndRecv of a new receiver succeeded while the store fails")
		}
		rec.Fail(false)
		send, recv, err := a.NextSendAndRecv(ctx, s, []string{r})
		if err != nil {
			t.Fatal(err)
		}
		// the failed call may have taken send seq 2 (a gap), never reused
		if send != 2 && send != 3 {
			t.Fatalf("send seq after recovery = %d, want 2 or 3", send)
		}
		if recv[0] != 1 {
			t.Fatalf("recv seq after recovery = %d, want 1", recv[0])
		}
	})
}

// A new Allocator of the same deployment (a restart), and one after the
// volatile state is lost, never reissues a seq.
func testRestartNeverReissues(t *testing.T, h Harness) {
	const step = 10
	for _, wipe := range []bool{false, true} {
		for _, n := range []int{0, 1, step - 1, step, step + 1, 3*step + 4} {
			t.Run(fmt.Sprintf("wipe %v, %d seqs before", wipe, n), func(t *testing.T) {
				store := h.Store(t)
				d := h.Open(t)
				u, g := ids.New(), ids.New()
				first := d.New(t, store, step)
				var lastSend, lastRecv int64
				for range n {
					lastSend = nextSend(t, first, u)
					lastRecv = nextRecv(t, first, u, g)[0]
				}
				if wipe {
					d.Wipe(t)
				}
				second := d.New(t, store, step)
				recv, send := current(t, second, u)
				if recv < lastRecv || send < lastSend {
					t.Fatalf("Current after restart = %d, %d; below issued %d, %d", recv, send, lastRecv, lastSend)
				}
				if v := nextSend(t, second, u); v <= lastSend {
					t.Fatalf("send seq %d reissued after restart (last %d)", v, lastSend)
				}
				if v := nextRecv(t, second, u)[0]; v <= lastRecv {
					t.Fatalf("recv seq %d reissued after restart (last %d)", v, lastRecv)
				}
				// the old allocator, still running, does not reissue either
				if v := nextSend(t, first, u); v <= lastSend {
					t.Fatalf("send seq %d reissued by the first allocator (last %d)", v, lastSend)
				}
			})
		}
	}
}

func testRaiseFailureKeepsState(t *testing.T, h Harness) {
	rec := NewRecorder(h.Store(t))
	a := h.Open(t).New(t, rec, 2)
	u, v := ids.New(), ids.New()
	nextSend(t, a, u)
	nextSend(t, a, u) // block full
	nextRecv(t, a, u)
	rec.Fail(true)
	if _, err := a.NextSend(context.Background(), u); err == nil {
		t.Fatal("NextSend succeeded while the store fails")
	}
	if _, err := a.NextRecv(context.Background(), []string{u, v}); err == nil {
		t.Fatal("NextRecv of a new user succeeded while the store fails")
	}
	rec.Fail(false)
	if got := nextSend(t, a, u); got != 3 {
		t.Fatalf("NextSend after recovery = %d, want 3", got)
	}
	// u's recv seq 2 was taken by the failed group call: a gap, never a reuse
	if got := nextRecv(t, a, u, v); got[0] != 3 || got[1] != 1 {
		t.Fatalf("NextRecv after recovery = %v, want [3 1]", got)
	}
}

// issued collects the seqs handed out, per worker.
type issued struct {
	send, recv map[string][]int64
}

func newIssued() issued {
	return issued{send: map[string][]int64{}, recv: map[string][]int64{}}
}

// check fails when a seq was handed out twice or a worker saw a user's seqs
// go back.
func check(t *testing.T, results []issued) {
	t.Helper()
	for _, kind := range []string{"send", "recv"} {
		all := map[string]map[int64]bool{}
		for w, r := range results {
			m := r.send
			if kind == "recv" {
				m = r.recv
			}
			for u, vs := range m {
				if !slices.IsSorted(vs) {
					t.Fatalf("worker %d: %s seqs of %s not increasing: %v", w, kind, u, vs)
				}
				if all[u] == nil {
					all[u] = map[int64]bool{}
				}
				for _, v := range vs {
					if v <= 0 {
						t.Fatalf("%s seq %d of %s", kind, v, u)
					}
					if all[u][v] {
						t.Fatalf("%s seq %d of %s handed out twice", kind, v, u)
					}
					all[u][v] = true
				}
			}
		}
	}
}

// worker allocates rounds times over users with a, checking after each call
// that the stored ceilings cover what it got.
// tick, if not nil, runs after each round.
func worker(ctx context.Context, a Allocator, store storage.SeqCeilings, users []string, w, rounds int, r issued, tick func()) error {
	covered := func(kind storage.SeqKind, u string, v int64) error {
		send, recv, err := store.Get(ctx, u)
		if err != nil {
			return err
		}
		c := recv
		if kind == storage.SeqSend {
			c = send
		}
		if v > c {
			return fmt.Errorf("%s seq %d of %s returned above the stored ceiling %d", kind, v, u, c)
		}
		return nil
	}
	for i := range rounds {
		u := users[(w+i)%len(users)]
		group := slices.Clone(users)
		if i%2 == 1 {
			slices.Reverse(group)
		}
		switch i % 3 {
		case 0, 1:
			v, err := a.NextSend(ctx, u)
			if err != nil {
				return err
			}
			r.send[u] = append(r.send[u], v)
			if err := covered(storage.SeqSend, u, v); err != nil {
				return err
			}
			seqs, err := a.NextRecv(ctx, group)
			if err != nil {
				return err
			}
			for j, m := range group {
				r.recv[m] = append(r.recv[m], seqs[j])
			}
			if err := covered(storage.SeqRecv, group[0], seqs[0]); err != nil {
				return err
			}
		case 2:
			v, seqs, err := a.NextSendAndRecv(ctx, u, group)
			if err != nil {
				return err
			}
			r.send[u] = append(r.send[u], v)
			for j, m := range group {
				r.recv[m] = append(r.recv[m], seqs[j])
			}
			if err := covered(storage.SeqSend, u, v); err != nil {
				return err
			}
		}
		if tick != nil {
			tick()
		}
	}
	return nil
}

// Seqs are unique and increasing per user under concurrency, also across two
// Allocators sharing one store and one deployment, and never above the
// stored ceiling when returned.
func testConcurrentUniqueAndMonotonic(t *testing.T, h Harness) {
	store := h.Store(t)
	d := h.Open(t)
	allocs := []Allocator{d.New(t, store, 7), d.New(t, store, 7)}
	users := []string{ids.New(), ids.New(), ids.New(), ids.New()}
	const workers, rounds = 8, 60
	results := make([]issued, workers)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		results[w] = newIssued()
		wg.Go(func() {
			if err := worker(context.Background(), allocs[w%2], store, users, w, rounds, results[w], nil); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	check(t, results)

	// one Allocator alone: Current is the highest seq it handed out
	a := allocs[0]
	u := ids.New()
	var wg2 sync.WaitGroup
	for range workers {
		wg2.Go(func() {
			for range rounds {
				if _, err := a.NextSend(context.Background(), u); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg2.Wait()
	if _, send := current(t, a, u); send != workers*rounds {
		t.Fatalf("Current send = %d, want %d", send, workers*rounds)
	}
}

// The volatile state is lost (several times) while two allocators hand out
// seqs, and allocators started after it continue: no seq repeats, none goes
// back, none is returned above its stored ceiling.
func testWipeMidStreamNeverRepeats(t *testing.T, h Harness) {
	store := h.Store(t)
	d := h.Open(t)
	users := []string{ids.New(), ids.New(), ids.New()}
	const workers, rounds, wipes = 6, 90, 3
	allocs := []Allocator{d.New(t, store, 5), d.New(t, store, 5)}
	results := make([]issued, workers)
	// The worker whose round crosses 1/4, 2/4, 3/4 of all rounds wipes,
	// while the others keep allocating (by rounds done, not by time).
	var progress atomic.Int64
	tick := func() {
		n := progress.Add(1)
		for i := int64(1); i <= wipes; i++ {
			if n == i*workers*rounds/(wipes+1) {
				d.Wipe(t)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		results[w] = newIssued()
		wg.Go(func() {
			if err := worker(context.Background(), allocs[w%2], store, users, w, rounds, results[w], tick); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if n := progress.Load(); n != workers*rounds {
		t.Fatalf("%d rounds done, want %d", n, workers*rounds)
	}
	// allocators started after the wipes (restarted processes) continue above
	late := d.New(t, store, 5)
	r := newIssued()
	if err := worker(context.Background(), late, store, users, 0, 20, r, nil); err != nil {
		t.Fatal(err)
	}
	for u, vs := range r.send {
		for _, res := range results {
			if old := res.send[u]; len(old) > 0 && vs[0] <= slices.Max(old) {
				t.Fatalf("send seq %d of %s after the wipes is not above the %d issued before", vs[0], u, slices.Max(old))
			}
		}
	}
	check(t, append(results, r))
}

// The benchmarks measure the steady state: every user's first block is
// taken before the timer starts.

// BenchNextSend measures NextSend in parallel over 1024 users.
func BenchNextSend(b *testing.B, a Allocator) {
	users := make([]string, 1024)
	for i := range users {
		users[i] = ids.New()
		if _, err := a.NextSend(context.Background(), users[i]); err != nil {
			b.Fatal(err)
		}
	}
	var n atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := a.NextSend(ctx, users[n.Add(1)%uint64(len(users))]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

func benchGroups(b *testing.B, a Allocator, size int) [][]string {
	groups := make([][]string, 16)
	for g := range groups {
		groups[g] = make([]string, size)
		for i := range groups[g] {
			groups[g][i] = ids.New()
		}
		if _, _, err := a.NextSendAndRecv(context.Background(), groups[g][0], groups[g]); err != nil {
			b.Fatal(err)
		}
	}
	return groups
}

// BenchNextRecv measures NextRecv in parallel, one call per group of size
// members (16 groups).
func BenchNextRecv(b *testing.B, a Allocator, size int) {
	groups := benchGroups(b, a, size)
	var n atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if _, err := a.NextRecv(ctx, groups[n.Add(1)%uint64(len(groups))]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchNextSendAndRecv measures NextSendAndRecv in parallel: the first
// member of a group of size sends to the others (16 groups).
func BenchNextSendAndRecv(b *testing.B, a Allocator, size int) {
	groups := benchGroups(b, a, size)
	var n atomic.Uint64
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			g := groups[n.Add(1)%uint64(len(groups))]
			if _, _, err := a.NextSendAndRecv(ctx, g[0], g[1:]); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
