package cache_test

import (
	"context"
	"maps"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sandcat-im/sandcat/im/cache"
	"github.com/sandcat-im/sandcat/im/cache/redistest"
	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/msgserver"
)

var _ msgserver.Router = (*cache.Routes)(nil)

func locate(t *testing.T, r *cache.Routes, users ...string) map[string][]string {
	t.Helper()
	got, err := r.Locate(context.Background(), users)
	if err != nil {
		t.Fatal(err)
	}
	for u := range got {
		slices.Sort(got[u])
	}
	return got
}

func sameRoutes(t *testing.T, what string, got, want map[string][]string) {
	t.Helper()
	if !maps.EqualFunc(got, want, slices.Equal[[]string]) {
		t.Fatalf("%s: Locate = %v, want %v", what, got, want)
	}
}

func TestRoutes(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t)
	r := cache.NewRoutes(rdb, cache.RoutesOptions{Prefix: prefix})
	a, b, c := ids.New(), ids.New(), ids.New()
	const desktop, mobile = 0, 1
	tests := []struct {
		name string
		do   func() error
		want map[string][]string
	}{
		{"nobody online", func() error { return nil }, map[string][]string{}},
		{"a on gw1", func() error { return r.Add(ctx, a, desktop, "gw1") }, map[string][]string{a: {"gw1"}}},
		{"a's phone on gw2", func() error { return r.Add(ctx, a, mobile, "gw2") }, map[string][]string{a: {"gw1", "gw2"}}},
		{"b on gw1, both devices", func() error {
			if err := r.Add(ctx, b, desktop, "gw1"); err != nil {
				return err
			}
			return r.Add(ctx, b, mobile, "gw1")
		}, map[string][]string{a: {"gw1", "gw2"}, b: {"gw1"}}},
		{"a's desktop reconnects on gw3", func() error { return r.Add(ctx, a, desktop, "gw3") }, map[string][]string{a: {"gw2", "gw3"}, b: {"gw1"}}},
		{"gw1 removing a's old desktop connection changes nothing", func() error { return r.Remove(ctx, a, desktop, "gw1") },
			map[string][]string{a: {"gw2", "gw3"}, b: {"gw1"}}},
		{"a's phone leaves", func() error { return r.Remove(ctx, a, mobile, "gw2") }, map[string][]string{a: {"gw3"}, b: {"gw1"}}},
		{"a's desktop leaves", func() error { return r.Remove(ctx, a, desktop, "gw3") }, map[string][]string{b: {"gw1"}}},
		{"a platform beyond the wire's counts as desktop", func() error { return r.Add(ctx, c, 7, "gw3") }, map[string][]string{b: {"gw1"}, c: {"gw3"}}},
		{"gw1 shuts down", func() error {
			return r.RemoveAll(ctx, "gw1", []cache.RouteEntry{{b, desktop}, {b, mobile}, {c, desktop}})
		}, map[string][]string{c: {"gw3"}}},
	}
	for _, tc := range tests {
		if err := tc.do(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		// users listed twice, and unknown, change nothing
		sameRoutes(t, tc.name, locate(t, r, a, b, c, a, ids.New()), tc.want)
	}
	if got := locate(t, r); len(got) != 0 {
		t.Fatalf("Locate() = %v", got)
	}
	if v, err := rdb.Get(ctx, prefix+"route:"+c+":0").Result(); err != nil || v != "gw3" {
		t.Fatalf("key route:<user>:0 = %q, %v; want gw3", v, err)
	}
}

func TestRoutesRefresh(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t)
	const ttl = time.Minute
	r := cache.NewRoutes(rdb, cache.RoutesOptions{Prefix: prefix, TTL: ttl})
	a, b, c := ids.New(), ids.New(), ids.New()
	key := func(u string, p int) string { return prefix + "route:" + u + ":" + string(rune('0'+p)) }
	for _, e := range []cache.RouteEntry{{a, 0}, {b, 1}} {
		if err := r.Add(ctx, e.UserID, e.Platform, "gw1"); err != nil {
			t.Fatal(err)
		}
	}
	// a's route is about to expire; b moved to gw2; c's route vanished
	// (Redis restarted, or expired during a long pause)
	if err := rdb.PExpire(ctx, key(a, 0), 2*time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Add(ctx, b, 1, "gw2"); err != nil {
		t.Fatal(err)
	}
	lost, err := r.Refresh(ctx, "gw1", []cache.RouteEntry{{a, 0}, {b, 1}, {c, 0}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []cache.RouteEntry{{b, 1}}; !slices.Equal(lost, want) {
		t.Fatalf("lost = %v, want %v", lost, want)
	}
	for _, k := range []string{key(a, 0), key(c, 0)} {
		if d, err := rdb.PTTL(ctx, k).Result(); err != nil || d <= 2*time.Second || d > ttl {
			t.Fatalf("PTTL %s after Refresh = %v, %v; want the full TTL", k, d, err)
		}
	}
	sameRoutes(t, "after refresh", locate(t, r, a, b, c), map[string][]string{a: {"gw1"}, b: {"gw2"}, c: {"gw1"}})
	if lost, err := r.Refresh(ctx, "gw1", nil); err != nil || len(lost) != 0 {
		t.Fatalf("Refresh(nothing) = %v, %v", lost, err)
	}
}

// Routes not refreshed expire: a dead gateway's users become offline.
func TestRoutesExpire(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t)
	short := cache.NewRoutes(rdb, cache.RoutesOptions{Prefix: prefix, TTL: 50 * time.Millisecond})
	long := cache.NewRoutes(rdb, cache.RoutesOptions{Prefix: prefix})
	if long.TTL() != cache.DefaultRouteTTL {
		t.Fatalf("default TTL = %v", long.TTL())
	}
	dead, alive := ids.New(), ids.New()
	if err := short.Add(ctx, dead, 0, "gw-dead"); err != nil {
		t.Fatal(err)
	}
	if err := long.Add(ctx, alive, 0, "gw-alive"); err != nil {
		t.Fatal(err)
	}
	if d, err := rdb.PTTL(ctx, prefix+"route:"+alive+":0").Result(); err != nil || d <= 0 || d > cache.DefaultRouteTTL {
		t.Fatalf("PTTL = %v, %v; want in (0, %v]", d, err, cache.DefaultRouteTTL)
	}
	// wait for Redis to expire the short route (no deadline on how fast)
	for len(locate(t, long, dead)) > 0 {
		time.Sleep(20 * time.Millisecond)
	}
	sameRoutes(t, "after expiry", locate(t, long, dead, alive), map[string][]string{alive: {"gw-alive"}})
}

// trips counts the round trips of a client (a command or a pipeline each),
// leaving out the handshake of new connections.
type trips struct{ n atomic.Int64 }

func handshake(cmd redis.Cmder) bool {
	switch cmd.Name() {
	case "hello", "client", "auth", "select":
		return true
	}
	return false
}

func (c *trips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (c *trips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !handshake(cmd) {
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (c *trips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !slices.ContainsFunc(cmds, handshake) {
			c.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// Locate of a 10,000-member group is one round trip; so is Refresh of a
// gateway's 10,000 connections (plus one after a SCRIPT FLUSH).
func TestRoutesLargeGroupOneRoundTrip(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t)
	hook := &trips{}
	rdb.AddHook(hook)
	r := cache.NewRoutes(rdb, cache.RoutesOptions{Prefix: prefix})
	const n = 10_000
	users := make([]string, n)
	var gw1, gw2 []cache.RouteEntry
	want := map[string][]string{}
	for i := range users {
		users[i] = ids.New()
		switch i % 4 {
		case 0: // offline
		case 1:
			gw1 = append(gw1, cache.RouteEntry{UserID: users[i], Platform: 0})
			want[users[i]] = []string{"gw1"}
		case 2:
			gw2 = append(gw2, cache.RouteEntry{UserID: users[i], Platform: 1})
			want[users[i]] = []string{"gw2"}
		case 3:
			gw1 = append(gw1, cache.RouteEntry{UserID: users[i], Platform: 0})
			gw2 = append(gw2, cache.RouteEntry{UserID: users[i], Platform: 1})
			want[users[i]] = []string{"gw1", "gw2"}
		}
	}
	for _, g := range []struct {
		id string
		es []cache.RouteEntry
	}{{"gw1", gw1}, {"gw2", gw2}} {
		hook.n.Store(0)
		lost, err := r.Refresh(ctx, g.id, g.es)
		if err != nil || len(lost) != 0 {
			t.Fatalf("Refresh(%s) = %v, %v", g.id, lost, err)
		}
		if k := hook.n.Load(); k > 2 {
			t.Fatalf("Refresh of %d routes: %d round trips, want 1 (2 when the script was not loaded)", len(g.es), k)
		}
	}
	hook.n.Store(0)
	got := locate(t, r, users...)
	if k := hook.n.Load(); k != 1 {
		t.Fatalf("Locate of %d users: %d round trips, want 1", n, k)
	}
	sameRoutes(t, "10,000 users", got, want)
}

// Refresh and RemoveAll survive SCRIPT FLUSH (EVAL fallback in a pipeline).
func TestRoutesScriptFlush(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t)
	rdb := srv.Client(t)
	r := cache.NewRoutes(rdb, cache.RoutesOptions{Prefix: redistest.Prefix()})
	es := make([]cache.RouteEntry, 5000) // three chunks
	for i := range es {
		es[i] = cache.RouteEntry{UserID: ids.New(), Platform: int32(i % 2)}
	}
	flush := func() {
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
	}
	flush()
	if lost, err := r.Refresh(ctx, "gw1", es); err != nil || len(lost) != 0 {
		t.Fatalf("Refresh after SCRIPT FLUSH = %d lost, %v", len(lost), err)
	}
	if got := locate(t, r, es[0].UserID, es[4999].UserID); len(got) != 2 {
		t.Fatalf("Locate = %v", got)
	}
	flush()
	if err := r.RemoveAll(ctx, "gw1", es); err != nil {
		t.Fatalf("RemoveAll after SCRIPT FLUSH: %v", err)
	}
	if got := locate(t, r, es[0].UserID, es[4999].UserID); len(got) != 0 {
		t.Fatalf("Locate after RemoveAll = %v", got)
	}
}

func BenchmarkLocate10000(b *testing.B) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(b)
	r := cache.NewRoutes(rdb, cache.RoutesOptions{Prefix: prefix})
	users := make([]string, 10_000)
	var es []cache.RouteEntry
	for i := range users {
		users[i] = ids.New()
		if i%2 == 0 {
			es = append(es, cache.RouteEntry{UserID: users[i]})
		}
	}
	if _, err := r.Refresh(ctx, "gw1", es); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := r.Locate(ctx, users); err != nil {
			b.Fatal(err)
		}
	}
}
