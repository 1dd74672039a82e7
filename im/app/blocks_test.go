package app

import (
	"context"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/storage"
)

// fakeFriends counts IsBlocked queries over a set of blocked pairs.
type fakeFriends struct {
	storage.Friends
	blocked map[blockPair]bool
	queries int
	during  func() // runs inside IsBlocked, after the answer is read
}

func (f *fakeFriends) IsBlocked(_ context.Context, by, whom string) (bool, error) {
	f.queries++
	b := f.blocked[blockPair{by, whom}]
	if f.during != nil {
		f.during()
	}
	return b, nil
}

func (f *fakeFriends) BlockUser(_ context.Context, by, whom string, _ int64) error {
	f.blocked[blockPair{by, whom}] = true
	return nil
}

func (f *fakeFriends) UnblockUser(_ context.Context, by, whom string, _ int64) error {
	delete(f.blocked, blockPair{by, whom})
	return nil
}

func TestBlockCache(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name        string
		steps       func(c *blockCache, f *fakeFriends, clock *time.Time)
		wantBlocked bool
		wantQueries int
	}{
		{"second ask within the TTL is cached", func(c *blockCache, _ *fakeFriends, _ *time.Time) {
			_, _ = c.IsBlocked(ctx, "a", "b")
		}, false, 1},
		{"asked again after the TTL", func(c *blockCache, _ *fakeFriends, clock *time.Time) {
			_, _ = c.IsBlocked(ctx, "a", "b")
			*clock = clock.Add(3 * time.Second)
		}, false, 2},
		{"block through the cache is seen at once", func(c *blockCache, _ *fakeFriends, _ *time.Time) {
			_, _ = c.IsBlocked(ctx, "a", "b")
			_ = c.BlockUser(ctx, "a", "b", 0)
		}, true, 2},
		{"unblock through the cache is seen at once", func(c *blockCache, f *fakeFriends, _ *time.Time) {
			f.blocked[blockPair{"a", "b"}] = true
			_, _ = c.IsBlocked(ctx, "a", "b")
			_ = c.UnblockUser(ctx, "a", "b", 0)
		}, false, 2},
		{"block during a query: the stale answer is not kept", func(c *blockCache, f *fakeFriends, _ *time.Time) {
			f.during = func() { f.during = nil; _ = c.BlockUser(ctx, "a", "b", 0) }
			if got, _ := c.IsBlocked(ctx, "a", "b"); got {
				t.Errorf("the racing query should answer from before the block")
			}
		}, true, 2},
		{"another pair is not cached by this one", func(c *blockCache, _ *fakeFriends, _ *time.Time) {
			_, _ = c.IsBlocked(ctx, "b", "a")
		}, false, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeFriends{blocked: map[blockPair]bool{}}
			clock := time.Unix(1000, 0)
			c := newBlockCache(f, 2*time.Second, func() time.Time { return clock })
			tt.steps(c, f, &clock)
			got, err := c.IsBlocked(ctx, "a", "b")
			if err != nil || got != tt.wantBlocked {
				t.Fatalf("IsBlocked = %v, %v; want %v", got, err, tt.wantBlocked)
			}
			if f.queries != tt.wantQueries {
				t.Errorf("queries = %d, want %d", f.queries, tt.wantQueries)
			}
		})
	}
}
