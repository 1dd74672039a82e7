package seq_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/seq"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

// recorder wraps the real store: it records the Raise calls and can fail them.
type recorder struct {
	storage.SeqCeilings
	mu     sync.Mutex
	raises [][]string
	fail   atomic.Bool
}

func (r *recorder) Raise(ctx context.Context, kind storage.SeqKind, users []string, by int64) ([]int64, error) {
	if r.fail.Load() {
		return nil, errors.New("injected failure")
	}
	r.mu.Lock()
	r.raises = append(r.raises, slices.Clone(users))
	r.mu.Unlock()
	return r.SeqCeilings.Raise(ctx, kind, users, by)
}

func (r *recorder) calls() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.raises
	r.raises = nil
	return out
}

func newAlloc(t testing.TB, store storage.SeqCeilings, step int64) *seq.Allocator {
	t.Helper()
	a, err := seq.New(store, seq.Options{Step: step})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func nextSend(t testing.TB, a *seq.Allocator, user string) int64 {
	t.Helper()
	v, err := a.NextSend(context.Background(), user)
	if err != nil {
		t.Fatalf("NextSend(%s): %v", user, err)
	}
	return v
}

func nextRecv(t testing.TB, a *seq.Allocator, users ...string) []int64 {
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

func current(t testing.TB, a *seq.Allocator, user string) (int64, int64) {
	t.Helper()
	recv, send, err := a.Current(context.Background(), user)
	if err != nil {
		t.Fatalf("Current(%s): %v", user, err)
	}
	return recv, send
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

func TestFreshUserStartsAtOne(t *testing.T) {
	store := sqlite.OpenTest(t).SeqCeilings()
	a := newAlloc(t, store, 100)
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
}

func TestStartsAtStoredCeiling(t *testing.T) {
	ctx := context.Background()
	store := sqlite.OpenTest(t).SeqCeilings()
	u := ids.New()
	if _, err := store.Raise(ctx, storage.SeqSend, []string{u}, 500); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Raise(ctx, storage.SeqRecv, []string{u}, 700); err != nil {
		t.Fatal(err)
	}
	a := newAlloc(t, store, 10)
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
func TestRaiseBeforeCrossing(t *testing.T) {
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
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, kind := range []storage.SeqKind{storage.SeqSend, storage.SeqRecv} {
				rec := &recorder{SeqCeilings: sqlite.OpenTest(t).SeqCeilings()}
				a := newAlloc(t, rec, tc.step)
				u := ids.New()
				for i := 1; i <= tc.calls; i++ {
					var got int64
					if kind == storage.SeqSend {
						got = nextSend(t, a, u)
					} else {
						got = nextRecv(t, a, u)[0]
					}
					if got != int64(i) {
						t.Fatalf("%s: seq %d = %d", kind, i, got)
					}
					send, recv, err := rec.Get(context.Background(), u)
					if err != nil {
						t.Fatal(err)
					}
					if ceil := map[storage.SeqKind]int64{storage.SeqSend: send, storage.SeqRecv: recv}[kind]; ceil < got {
						t.Fatalf("%s: seq %d handed out above the stored ceiling %d", kind, got, ceil)
					}
				}
				if n := len(rec.calls()); n != tc.wantRaises {
					t.Errorf("%s: %d raises, want %d", kind, n, tc.wantRaises)
				}
				send, recv, _ := rec.Get(context.Background(), u)
				if ceil := map[storage.SeqKind]int64{storage.SeqSend: send, storage.SeqRecv: recv}[kind]; ceil != tc.wantCeil {
					t.Errorf("%s: ceiling %d, want %d", kind, ceil, tc.wantCeil)
				}
			}
		})
	}
}

func TestNextRecvGroupBatch(t *testing.T) {
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
			// b is full, c is new to the process; sorted ids
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
			rec := &recorder{SeqCeilings: sqlite.OpenTest(t).SeqCeilings()}
			a := newAlloc(t, rec, tc.step)
			for u, n := range tc.before {
				for range n {
					nextRecv(t, a, u)
				}
			}
			rec.calls()
			got, err := a.NextRecv(ctx, tc.group)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("NextRecv(%v) = %v, want %v", tc.group, got, tc.want)
			}
			if calls := rec.calls(); !slices.EqualFunc(calls, tc.wantRaises, slices.Equal[[]string]) {
				t.Fatalf("raises %v, want %v", calls, tc.wantRaises)
			}
			for i, u := range tc.group {
				if _, recv, _ := rec.Get(ctx, u); recv < got[i] {
					t.Fatalf("%s got %d above its ceiling %d", u, got[i], recv)
				}
			}
		})
	}
}

// A new Allocator on the same store (a restart) never reissues a seq.
func TestRestartNeverReissues(t *testing.T) {
	const step = 10
	for _, n := range []int{0, 1, step - 1, step, step + 1, 3*step + 4} {
		t.Run(fmt.Sprintf("%d seqs before", n), func(t *testing.T) {
			store := sqlite.OpenTest(t).SeqCeilings()
			u, g := ids.New(), ids.New()
			first := newAlloc(t, store, step)
			var lastSend, lastRecv int64
			for range n {
				lastSend = nextSend(t, first, u)
				lastRecv = nextRecv(t, first, u, g)[0]
			}
			second := newAlloc(t, store, step)
			recv, send := current(t, second, u)
			if recv < lastRecv || send < lastSend {
				t.Fatalf("Current after restart = %d, %d; below issued %d, %d", recv, send, lastRecv, lastSend)
			}
			if v := nextSend(t, second, u); v <= lastSend {
				t.Fatalf("send seq %d reissued after restart (last %d)", v, lastSend)
			} else if v != send+1 {
				t.Fatalf("send seq after restart = %d, want the ceiling %d + 1", v, send)
			}
			if v := nextRecv(t, second, u)[0]; v <= lastRecv {
				t.Fatalf("recv seq %d reissued after restart (last %d)", v, lastRecv)
			}
		})
	}
}

func TestRaiseFailureKeepsState(t *testing.T) {
	rec := &recorder{SeqCeilings: sqlite.OpenTest(t).SeqCeilings()}
	a := newAlloc(t, rec, 2)
	u, v := ids.New(), ids.New()
	nextSend(t, a, u)
	nextSend(t, a, u) // block full
	nextRecv(t, a, u)
	rec.fail.Store(true)
	if _, err := a.NextSend(context.Background(), u); err == nil {
		t.Fatal("NextSend succeeded while the store fails")
	}
	if _, err := a.NextRecv(context.Background(), []string{u, v}); err == nil {
		t.Fatal("NextRecv of a new user succeeded while the store fails")
	}
	rec.fail.Store(false)
	if got := nextSend(t, a, u); got != 3 {
		t.Fatalf("NextSend after recovery = %d, want 3", got)
	}
	// u's recv seq 2 was taken by the failed group call: a gap, never a reuse
	if got := nextRecv(t, a, u, v); got[0] != 3 || got[1] != 1 {
		t.Fatalf("NextRecv after recovery = %v, want [3 1]", got)
	}
}

// Seqs are unique and increasing per user under concurrency, also across two
// Allocators sharing one store.
func TestConcurrentUniqueAndMonotonic(t *testing.T) {
	store := sqlite.OpenTest(t).SeqCeilings()
	allocs := []*seq.Allocator{newAlloc(t, store, 7), newAlloc(t, store, 7)}
	users := []string{ids.New(), ids.New(), ids.New(), ids.New()}
	const workers, rounds = 8, 60
	type got struct {
		send, recv map[string][]int64
	}
	results := make([]got, workers)
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := allocs[w%2]
			r := got{send: map[string][]int64{}, recv: map[string][]int64{}}
			for i := range rounds {
				u := users[(w+i)%len(users)]
				v, err := a.NextSend(context.Background(), u)
				if err != nil {
					errs <- err
					return
				}
				r.send[u] = append(r.send[u], v)
				group := slices.Clone(users)
				if i%2 == 1 {
					slices.Reverse(group)
				}
				seqs, err := a.NextRecv(context.Background(), group)
				if err != nil {
					errs <- err
					return
				}
				for j, m := range group {
					r.recv[m] = append(r.recv[m], seqs[j])
				}
			}
			results[w] = r
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
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
					if all[u][v] {
						t.Fatalf("%s seq %d of %s handed out twice", kind, v, u)
					}
					all[u][v] = true
				}
			}
		}
	}
	// one Allocator alone: Current is the highest seq it handed out
	a := allocs[0]
	u := ids.New()
	var wg2 sync.WaitGroup
	for range workers {
		wg2.Add(1)
		go func() {
			defer wg2.Done()
			for range rounds {
				if _, err := a.NextSend(context.Background(), u); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg2.Wait()
	if _, send := current(t, a, u); send != workers*rounds {
		t.Fatalf("Current send = %d, want %d", send, workers*rounds)
	}
}

func BenchmarkNextSend(b *testing.B) {
	a := newAlloc(b, sqlite.OpenTest(b).SeqCeilings(), 10000)
	users := make([]string, 1024)
	for i := range users {
		users[i] = ids.New()
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

func BenchmarkNextRecvGroup100(b *testing.B) {
	a := newAlloc(b, sqlite.OpenTest(b).SeqCeilings(), 10000)
	groups := make([][]string, 16)
	for g := range groups {
		groups[g] = make([]string, 100)
		for i := range groups[g] {
			groups[g][i] = ids.New()
		}
	}
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
