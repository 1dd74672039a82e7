package app

import (
	"context"
	"sync"
	"time"

	"github.com/sandcat-im/sandcat/storage"
)

// blockCacheTTL bounds how long an answer of IsBlocked is reused. A block or
// unblock through this process's API drops the cached answer at once; one
// made by another process (another api replica) reaches this process's
// gateway within this window.
const blockCacheTTL = 2 * time.Second

// blockCacheMax bounds the cached pairs: past it the cache starts afresh.
const blockCacheMax = 1 << 16

// blockCache is storage.Friends with IsBlocked answered from memory for
// blockCacheTTL (the gateway asks once per single-chat frame). BlockUser and
// UnblockUser go to the store, then forget the pair.
type blockCache struct {
	storage.Friends
	ttl time.Duration
	now func() time.Time

	mu      sync.Mutex
	entries map[blockPair]blockAnswer
	gen     uint64 // bumped by every BlockUser and UnblockUser
}

type blockPair struct{ by, whom string }

type blockAnswer struct {
	blocked bool
	until   time.Time
}

func newBlockCache(f storage.Friends, ttl time.Duration, now func() time.Time) *blockCache {
	if now == nil {
		now = time.Now
	}
	return &blockCache{Friends: f, ttl: ttl, now: now, entries: make(map[blockPair]blockAnswer)}
}

// IsBlocked implements storage.Friends, from the cache when it is fresh.
func (c *blockCache) IsBlocked(ctx context.Context, by, whom string) (bool, error) {
	k := blockPair{by, whom}
	c.mu.Lock()
	a, ok := c.entries[k]
	gen := c.gen
	c.mu.Unlock()
	if ok && c.now().Before(a.until) {
		return a.blocked, nil
	}
	blocked, err := c.Friends.IsBlocked(ctx, by, whom)
	if err != nil {
		return false, err
	}
	c.mu.Lock()
	// A block or unblock that ran during the query may have made its answer
	// stale: then it is returned but not kept.
	if c.gen == gen {
		if len(c.entries) >= blockCacheMax {
			clear(c.entries)
		}
		c.entries[k] = blockAnswer{blocked: blocked, until: c.now().Add(c.ttl)}
	}
	c.mu.Unlock()
	return blocked, nil
}

// BlockUser implements storage.Friends and forgets the pair.
func (c *blockCache) BlockUser(ctx context.Context, by, whom string, now int64) error {
	defer c.forget(by, whom)
	return c.Friends.BlockUser(ctx, by, whom, now)
}

// UnblockUser implements storage.Friends and forgets the pair.
func (c *blockCache) UnblockUser(ctx context.Context, by, whom string, now int64) error {
	defer c.forget(by, whom)
	return c.Friends.UnblockUser(ctx, by, whom, now)
}

func (c *blockCache) forget(by, whom string) {
	c.mu.Lock()
	delete(c.entries, blockPair{by, whom})
	c.gen++
	c.mu.Unlock()
}
