package redisseq_test

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/sandcat-im/sandcat/im/cache/redistest"
	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/seq"
	"github.com/sandcat-im/sandcat/im/seq/redisseq"
	"github.com/sandcat-im/sandcat/im/seq/seqtest"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/postgres/pgtest"
)

// deployment is the allocators of one test: one client (process) per
// allocator, all on one Redis under one prefix.
type deployment struct {
	addr   string
	prefix string
	wipe   func(t testing.TB)
}

func (d *deployment) New(t testing.TB, store storage.SeqCeilings, step int64) seqtest.Allocator {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: d.addr})
	t.Cleanup(func() { _ = rdb.Close() })
	a, err := redisseq.New(rdb, store, redisseq.Options{Prefix: d.prefix, Step: step})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func (d *deployment) Wipe(t testing.TB) { d.wipe(t) }

// sharedDeployment uses the shared Redis under a fresh prefix; a wipe
// deletes every key under the prefix (what a FLUSHALL does to this
// deployment, without touching the keys of other tests).
func sharedDeployment(t testing.TB) *deployment {
	rdb, prefix := redistest.Client(t)
	return &deployment{addr: redistest.Addr(), prefix: prefix, wipe: func(t testing.TB) {
		if err := redistest.DeletePrefix(context.Background(), rdb, prefix); err != nil {
			t.Error(err)
		}
	}}
}

// pgStore returns one PostgreSQL ceilings store for a whole test (the suite
// uses fresh user ids in every subtest).
func pgStore(t *testing.T) func(testing.TB) storage.SeqCeilings {
	store := pgtest.Open(t).SeqCeilings()
	return func(testing.TB) storage.SeqCeilings { return store }
}

func TestConformance(t *testing.T) {
	seqtest.Run(t, seqtest.Harness{
		Store: pgStore(t),
		Open:  func(t testing.TB) seqtest.Deployment { return sharedDeployment(t) },
	})
}

// The suite on a private Redis whose wipe is a real FLUSHALL (also of the
// script cache) while the allocators run.
func TestConformanceFlushAll(t *testing.T) {
	srv := redistest.NewServer(t)
	admin := srv.Client(t)
	seqtest.Run(t, seqtest.Harness{
		Store: pgStore(t),
		Open: func(t testing.TB) seqtest.Deployment {
			return &deployment{addr: srv.Addr(), prefix: redistest.Prefix(), wipe: func(t testing.TB) {
				ctx := context.Background()
				if err := admin.FlushAll(ctx).Err(); err != nil {
					t.Error(err)
				}
				if err := admin.ScriptFlush(ctx).Err(); err != nil {
					t.Error(err)
				}
			}}
		},
	})
}

func newAlloc(t testing.TB, rdb redis.UniversalClient, store storage.SeqCeilings, prefix string, step int64) *redisseq.Allocator {
	t.Helper()
	a, err := redisseq.New(rdb, store, redisseq.Options{Prefix: prefix, Step: step})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestNewOptions(t *testing.T) {
	rdb, prefix := redistest.Client(t)
	store := pgtest.Open(t).SeqCeilings()
	if a, err := redisseq.New(rdb, store, redisseq.Options{Prefix: prefix}); err != nil || a.Step() != seq.DefaultStep {
		t.Fatalf("default step: %v, %v", a, err)
	}
	tests := []struct {
		name  string
		rdb   redis.UniversalClient
		store storage.SeqCeilings
		opts  redisseq.Options
	}{
		{"negative step", rdb, store, redisseq.Options{Step: -1}},
		{"nil client", nil, store, redisseq.Options{}},
		{"nil store", rdb, nil, redisseq.Options{}},
	}
	for _, tc := range tests {
		if _, err := redisseq.New(tc.rdb, tc.store, tc.opts); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
}

// The keys are the original's hashes {cur_seq, max_seq}, under the prefix.
func TestKeys(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t)
	store := pgtest.Open(t).SeqCeilings()
	u, v := ids.New(), ids.New()
	if _, err := store.Raise(ctx, storage.SeqRecv, []string{v}, 1000); err != nil {
		t.Fatal(err)
	}
	a := newAlloc(t, rdb, store, prefix, 10)
	if _, _, err := a.NextSendAndRecv(ctx, u, []string{v, v}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		key  string
		want map[string]string
	}{
		{prefix + "send_seq:" + u, map[string]string{"cur_seq": "1", "max_seq": "10"}},
		{prefix + "seq:" + v, map[string]string{"cur_seq": "1002", "max_seq": "1010"}},
	}
	for _, tc := range tests {
		got, err := rdb.HGetAll(ctx, tc.key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(tc.want) || got["cur_seq"] != tc.want["cur_seq"] || got["max_seq"] != tc.want["max_seq"] {
			t.Errorf("%s = %v, want %v", tc.key, got, tc.want)
		}
	}
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 {
		t.Errorf("keys %v, want the 2 above", keys)
	}
}

// SCRIPT FLUSH before every call: EVALSHA fails with NOSCRIPT and the EVAL
// fallback runs; counters continue without a gap.
func TestScriptFlush(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t) // SCRIPT FLUSH is server-wide: a private server
	rdb := srv.Client(t)
	hook := &countScripts{}
	rdb.AddHook(hook)
	a := newAlloc(t, rdb, pgtest.Open(t).SeqCeilings(), redistest.Prefix(), 3)
	u, r := ids.New(), ids.New()
	flush := func() {
		t.Helper()
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	for want := int64(1); want <= 5; want++ {
		flush()
		if got, err := a.NextSend(ctx, u); err != nil || got != want {
			t.Fatalf("NextSend after SCRIPT FLUSH = %d, %v; want %d", got, err, want)
		}
	}
	flush()
	if s, rs, err := a.NextSendAndRecv(ctx, u, []string{r}); err != nil || s != 6 || rs[0] != 1 {
		t.Fatalf("NextSendAndRecv after SCRIPT FLUSH = %d, %v, %v; want 6, [1]", s, rs, err)
	}
	flush()
	if rs, err := a.NextRecv(ctx, []string{r, r}); err != nil || !slices.Equal(rs, []int64{2, 3}) {
		t.Fatalf("NextRecv after SCRIPT FLUSH = %v, %v; want [2 3]", rs, err)
	}
	if n := hook.evals.Load(); n < 7 {
		t.Fatalf("%d EVAL fallbacks, want at least one per flush (7)", n)
	}
}

// A Redis restart (no persistence: keys and scripts lost) under a running
// allocator: the client reconnects, the script is loaded again, counters
// jump above every seq handed out before.
func TestRedisRestart(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t)
	store := pgtest.Open(t).SeqCeilings()
	a := newAlloc(t, srv.Client(t), store, redistest.Prefix(), 10)
	u, g := ids.New(), ids.New()
	var lastSend, lastRecv int64
	for range 13 {
		s, r, err := a.NextSendAndRecv(ctx, u, []string{g, u})
		if err != nil {
			t.Fatal(err)
		}
		lastSend, lastRecv = s, r[1]
	}
	srv.Restart(t)
	var s int64
	var err error
	for range 3 { // the first command may meet the closed connection
		if s, err = a.NextSend(ctx, u); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("NextSend after restart: %v", err)
	}
	if s <= lastSend {
		t.Fatalf("send seq %d after restart, not above %d", s, lastSend)
	}
	r, err := a.NextRecv(ctx, []string{u})
	if err != nil {
		t.Fatal(err)
	}
	if r[0] <= lastRecv {
		t.Fatalf("recv seq %d after restart, not above %d", r[0], lastRecv)
	}
	if recv, send, err := a.Current(ctx, u); err != nil || recv != r[0] || send != s {
		t.Fatalf("Current = %d, %d, %v; want %d, %d", recv, send, err, r[0], s)
	}
}

// A store behind Redis (restored from an old backup): the allocator raises
// it past what Redis handed out before returning a seq.
func TestStoreBehindRedis(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t)
	store := seqtest.NewRecorder(pgtest.Open(t).SeqCeilings())
	u := ids.New()
	if err := rdb.HSet(ctx, prefix+"send_seq:"+u, "cur_seq", 500, "max_seq", 500).Err(); err != nil {
		t.Fatal(err)
	}
	a := newAlloc(t, rdb, store, prefix, 10)
	got, err := a.NextSend(ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	if got != 501 {
		t.Fatalf("NextSend = %d, want 501", got)
	}
	send, _, err := store.Get(ctx, u)
	if err != nil || send < 501 {
		t.Fatalf("stored ceiling = %d, %v; want at least 501", send, err)
	}
	if n := len(store.Calls()); n != 2 {
		t.Fatalf("%d raises, want 2 (one step, then the catch-up)", n)
	}
}

// countScripts counts the script runs of a client (an EVALSHA that met
// NOSCRIPT is not a run: the EVAL after it is), and the EVALs.
type countScripts struct {
	scripts, evals atomic.Int64
}

func (c *countScripts) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *countScripts) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		switch cmd.Name() {
		case "eval":
			c.evals.Add(1)
			c.scripts.Add(1)
		case "evalsha":
			if !redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
				c.scripts.Add(1)
			}
		}
		return err
	}
}

func (c *countScripts) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// A 10,000-member group takes one script call when every block has room,
// two (and one Raise) when they all roll over.
func TestLargeGroupRoundTrips(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t)
	hook := &countScripts{}
	rdb.AddHook(hook)
	store := seqtest.NewRecorder(pgtest.Open(t).SeqCeilings())
	a := newAlloc(t, rdb, store, prefix, 2)
	group := make([]string, 10_000)
	for i := range group {
		group[i] = ids.New()
	}
	tests := []struct {
		name        string
		want        int64
		wantScripts int64
		wantRaises  int
	}{
		{"new users", 1, 2, 1},
		{"room", 2, 1, 0},
		{"all roll over", 3, 2, 1},
	}
	for _, tc := range tests {
		hook.scripts.Store(0)
		store.Calls()
		got, err := a.NextRecv(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(got, func(v int64) bool { return v != tc.want }) {
			t.Fatalf("%s: seqs %v..., want all %d", tc.name, got[:5], tc.want)
		}
		if n := hook.scripts.Load(); n != tc.wantScripts {
			t.Errorf("%s: %d script calls, want %d", tc.name, n, tc.wantScripts)
		}
		if n := len(store.Calls()); n != tc.wantRaises {
			t.Errorf("%s: %d raises, want %d", tc.name, n, tc.wantRaises)
		}
	}
}

// Many goroutines of one process on one hot user: the rollovers are raised
// once each, so the send seqs 1..n are handed out exactly once (no gaps
// without failures or wipes). (Processes racing on one rollover may each
// raise: gaps, never repeats; the conformance suite covers that.)
func TestHotUserNoGapsNoRepeats(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t)
	store := seqtest.NewRecorder(pgtest.Open(t).SeqCeilings())
	a := newAlloc(t, rdb, store, prefix, 100)
	u := ids.New()
	const workers, per = 16, 50
	var mu sync.Mutex
	var got []int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for range per {
				v, err := a.NextSend(ctx, u)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				got = append(got, v)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(got)
	for i, v := range got {
		if v != int64(i+1) {
			t.Fatalf("sorted seqs[%d] = %d, want %d (a gap or a repeat)", i, v, i+1)
		}
	}
	if n := len(store.Calls()); n != workers*per/100 {
		t.Fatalf("%d raises, want %d", n, workers*per/100)
	}
	if send, _, _ := store.Get(ctx, u); send != workers*per {
		t.Fatalf("stored ceiling %d, want %d", send, workers*per)
	}
	if _, s, err := a.Current(ctx, u); err != nil || s != workers*per {
		t.Fatalf("Current = %d, %v; want %d", s, err, workers*per)
	}
}
