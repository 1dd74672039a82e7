package cache_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sandcat-im/sandcat/im/cache"
	"github.com/sandcat-im/sandcat/im/cache/redistest"
	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/msgserver"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

// memberCache is the method set shared by msgserver.MemberCache and
// cache.Members: either can be plugged into the consumer and the gateway.
type memberCache interface {
	Members(ctx context.Context, groupID string) ([]string, error)
	IsMember(ctx context.Context, groupID, userID string) (bool, error)
	Invalidate(groupID string)
}

var (
	_ memberCache = (*msgserver.MemberCache)(nil)
	_ memberCache = (*cache.Members)(nil)
)

// counting wraps a member source: it counts the loads and can hold one
// until released.
type counting struct {
	cache.MemberSource
	loads atomic.Int64
	mu    sync.Mutex
	hold  chan struct{} // when set, the next load waits on it
	held  chan struct{} // closed when a held load has read the store
}

func (c *counting) GroupMemberIDs(ctx context.Context, groupID string) ([]string, error) {
	c.loads.Add(1)
	ids, err := c.MemberSource.GroupMemberIDs(ctx, groupID)
	c.mu.Lock()
	hold, held := c.hold, c.held
	c.hold, c.held = nil, nil
	c.mu.Unlock()
	if hold != nil {
		close(held)
		<-hold
	}
	return ids, err
}

// holdNext makes the next load wait after reading the store: it returns a
// channel closed when the load has read, and a release function.
func (c *counting) holdNext() (held <-chan struct{}, release func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold, c.held = make(chan struct{}), make(chan struct{})
	h := c.hold
	return c.held, func() { close(h) }
}

// groupStore is a real groups store with users u0..un-1 and helpers.
type groupStore struct {
	*sqlite.Store
	users []string
}

func newGroupStore(t *testing.T, n int) *groupStore {
	t.Helper()
	s := &groupStore{Store: sqlite.OpenTest(t)}
	for i := range n {
		id := ids.New()
		u := &storage.User{ID: id, Name: fmt.Sprintf("u%d", i), Account: id, Password: "x", Salt: "x",
			Avatar: "a.png", Gender: "female"}
		if err := s.CreateUser(context.Background(), u, 0); err != nil {
			t.Fatal(err)
		}
		s.users = append(s.users, id)
	}
	return s
}

func (s *groupStore) group(t *testing.T, owner string, members ...string) string {
	t.Helper()
	gid := ids.New()
	if _, _, err := s.CreateGroup(context.Background(), wire.GroupInfo{ID: gid, Owner: owner, Name: "g", Avatar: "a.png"}, members); err != nil {
		t.Fatal(err)
	}
	return gid
}

func sorted(ids []string) []string {
	out := slices.Clone(ids)
	slices.Sort(out)
	return out
}

func newMembers(t *testing.T, rdb redis.UniversalClient, src cache.MemberSource, prefix string) *cache.Members {
	return cache.NewMembers(rdb, src, cache.MembersOptions{Prefix: prefix, TTL: time.Hour})
}

func TestMembersFollowsStore(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t)
	st := newGroupStore(t, 5)
	u := st.users
	src := &counting{MemberSource: st}
	c := newMembers(t, rdb, src, prefix)
	gid := st.group(t, u[0], u[1], u[2])

	check := func(step string, want []string, loads int64) {
		t.Helper()
		got, err := c.Members(ctx, gid)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(sorted(got), sorted(want)) {
			t.Fatalf("%s: Members = %v, want %v", step, got, want)
		}
		for _, id := range u {
			ok, err := c.IsMember(ctx, gid, id)
			if err != nil {
				t.Fatal(err)
			}
			if ok != slices.Contains(want, id) {
				t.Fatalf("%s: IsMember(%s) = %v", step, id, ok)
			}
		}
		if n := src.loads.Load(); n != loads {
			t.Fatalf("%s: %d loads from the store, want %d", step, n, loads)
		}
	}
	check("first lookups", []string{u[0], u[1], u[2]}, 1)
	if _, err := st.AddGroupMembers(ctx, gid, []string{u[3]}); err != nil {
		t.Fatal(err)
	}
	check("cached until invalidated", []string{u[0], u[1], u[2]}, 1)
	c.Invalidate(gid)
	check("after invalidation", []string{u[0], u[1], u[2], u[3]}, 2)
	if _, err := st.RemoveGroupMembers(ctx, gid, u[0], []string{u[1]}); err != nil {
		t.Fatal(err)
	}
	if err := c.InvalidateContext(ctx, gid); err != nil {
		t.Fatal(err)
	}
	check("after removal", []string{u[0], u[2], u[3]}, 3)

	// a group without members (unknown) is cached too
	unknown := ids.New()
	for range 3 {
		if got, err := c.Members(ctx, unknown); err != nil || len(got) != 0 {
			t.Fatalf("Members(unknown) = %v, %v", got, err)
		}
		if ok, err := c.IsMember(ctx, unknown, u[0]); err != nil || ok {
			t.Fatalf("IsMember(unknown) = %v, %v", ok, err)
		}
	}
	if n := src.loads.Load(); n != 4 {
		t.Fatalf("%d loads, want 4 (one for the unknown group)", n)
	}
}

// Two processes share the cache: one loads, both read it, an invalidation
// by one is seen by the other.
func TestMembersSharedByProcesses(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t)
	st := newGroupStore(t, 3)
	u := st.users
	gid := st.group(t, u[0], u[1])
	src1, src2 := &counting{MemberSource: st}, &counting{MemberSource: st}
	c1 := newMembers(t, rdb, src1, prefix)
	rdb2 := redis.NewClient(&redis.Options{Addr: redistest.Addr()})
	t.Cleanup(func() { _ = rdb2.Close() })
	c2 := newMembers(t, rdb2, src2, prefix)

	if _, err := c1.Members(ctx, gid); err != nil {
		t.Fatal(err)
	}
	if ok, err := c2.IsMember(ctx, gid, u[1]); err != nil || !ok {
		t.Fatalf("IsMember in the second process = %v, %v", ok, err)
	}
	if src2.loads.Load() != 0 {
		t.Fatal("the second process loaded a group the first had cached")
	}
	if _, err := st.AddGroupMembers(ctx, gid, []string{u[2]}); err != nil {
		t.Fatal(err)
	}
	c1.Invalidate(gid)
	if ok, err := c2.IsMember(ctx, gid, u[2]); err != nil || !ok {
		t.Fatalf("IsMember of the new member in the second process = %v, %v", ok, err)
	}
}

func TestMembersKeys(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t)
	st := newGroupStore(t, 2)
	gid := st.group(t, st.users[0], st.users[1])
	c := cache.NewMembers(rdb, st, cache.MembersOptions{Prefix: prefix, TTL: 10 * time.Minute})
	if _, err := c.Members(ctx, gid); err != nil {
		t.Fatal(err)
	}
	key := prefix + "group_members_id:" + gid
	got, err := rdb.SMembers(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := sorted([]string{"", st.users[0], st.users[1]}); !slices.Equal(sorted(got), want) {
		t.Fatalf("%s = %q, want %q (members and the loaded marker)", key, got, want)
	}
	if ttl, err := rdb.PTTL(ctx, key).Result(); err != nil || ttl <= 0 || ttl > 10*time.Minute {
		t.Fatalf("PTTL %s = %v, %v; want in (0, 10m]", key, ttl, err)
	}
	c.Invalidate(gid)
	if n, err := rdb.Exists(ctx, key).Result(); err != nil || n != 0 {
		t.Fatalf("%s exists after Invalidate: %d, %v", key, n, err)
	}
	keys, err := rdb.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{prefix + "group_members_gen:" + gid}; !slices.Equal(keys, want) {
		t.Fatalf("keys %v, want %v", keys, want)
	}
}

// A load that read the store before a change of members, and fills the
// cache after the invalidation of that change, must not put the old
// members back.
func TestMembersLoadRacingInvalidation(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t)
	st := newGroupStore(t, 3)
	u := st.users
	gid := st.group(t, u[0], u[1])
	src := &counting{MemberSource: st}
	c := newMembers(t, rdb, src, prefix)

	held, release := src.holdNext()
	type result struct {
		ids []string
		err error
	}
	done := make(chan result)
	go func() {
		ids, err := c.Members(ctx, gid)
		done <- result{ids, err}
	}()
	<-held // the load has read {u0, u1}
	if _, err := st.RemoveGroupMembers(ctx, gid, u[0], []string{u[1]}); err != nil {
		t.Fatal(err)
	}
	c.Invalidate(gid)
	release()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if ok, err := c.IsMember(ctx, gid, u[1]); err != nil || ok {
		t.Fatalf("removed member still cached: IsMember = %v, %v", ok, err)
	}
	if n := src.loads.Load(); n != 2 {
		t.Fatalf("%d loads, want 2 (the stale fill was dropped)", n)
	}
}

// bigSource is a group of n members (more than one Lua unpack can take).
type bigSource struct{ ids []string }

func (b bigSource) GroupMemberIDs(context.Context, string) ([]string, error) { return b.ids, nil }

func TestMembersLargeGroup(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t)
	src := bigSource{}
	for range 10_000 {
		src.ids = append(src.ids, ids.New())
	}
	c := newMembers(t, rdb, src, prefix)
	for range 2 { // a load, then a hit
		got, err := c.Members(ctx, "big")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(sorted(got), sorted(src.ids)) {
			t.Fatalf("Members: %d ids, want the %d of the store", len(got), len(src.ids))
		}
	}
	if n, err := rdb.SCard(ctx, prefix+"group_members_id:big").Result(); err != nil || n != 10_001 {
		t.Fatalf("SCARD = %d, %v; want 10001", n, err)
	}
	if ok, err := c.IsMember(ctx, "big", src.ids[9_999]); err != nil || !ok {
		t.Fatalf("IsMember = %v, %v", ok, err)
	}
	if ok, err := c.IsMember(ctx, "big", ""); err != nil || ok {
		t.Fatalf("IsMember(\"\") = %v, %v; the marker is no member", ok, err)
	}
}

// The fill script survives SCRIPT FLUSH (EVAL fallback).
func TestMembersScriptFlush(t *testing.T) {
	ctx := context.Background()
	srv := redistest.NewServer(t)
	rdb := srv.Client(t)
	st := newGroupStore(t, 2)
	gid := st.group(t, st.users[0], st.users[1])
	prefix := redistest.Prefix()
	c := newMembers(t, rdb, st, prefix)
	for range 2 {
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		c.Invalidate(gid)
		if _, err := c.Members(ctx, gid); err != nil {
			t.Fatal(err)
		}
		if n, err := rdb.SCard(ctx, prefix+"group_members_id:"+gid).Result(); err != nil || n != 3 {
			t.Fatalf("SCARD after a fill by EVAL = %d, %v; want 3", n, err)
		}
	}
	if ok, err := c.IsMember(ctx, gid, st.users[1]); err != nil || !ok {
		t.Fatalf("IsMember = %v, %v", ok, err)
	}
}
