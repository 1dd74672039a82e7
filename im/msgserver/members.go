package msgserver

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// MemberSource lists a group's member ids (storage.Groups satisfies it).
type MemberSource interface {
	GroupMemberIDs(ctx context.Context, groupID string) ([]string, error)
}

// MemberCache caches groups' member ids in memory, loading a group from the
// store on a miss. The consumer invalidates a group when it processes a
// notice that changes its members; entries also expire after a TTL, which
// bounds staleness in processes that do not run the consumer (a gateway).
// It is safe for concurrent use; groups are sharded, so lookups of different
// groups do not contend.
type MemberCache struct {
	src    MemberSource
	ttl    time.Duration
	max    int // groups per shard
	seed   maphash.Seed
	now    func() time.Time
	shards [memberShards]memberShard
}

const memberShards = 32

type memberShard struct {
	mu     sync.Mutex
	groups map[string]*memberSet
	epoch  uint64 // bumped by every invalidation in the shard
}

type memberSet struct {
	ids     []string
	set     map[string]struct{}
	expires time.Time
}

// NewMemberCache returns a cache over src. ttl <= 0 means one minute;
// maxGroups <= 0 means 100,000 groups (beyond it, arbitrary groups are
// evicted).
func NewMemberCache(src MemberSource, ttl time.Duration, maxGroups int) *MemberCache {
	if ttl <= 0 {
		ttl = time.Minute
	}
	if maxGroups <= 0 {
		maxGroups = 100_000
	}
	c := &MemberCache{src: src, ttl: ttl, max: max(1, maxGroups/memberShards), seed: maphash.MakeSeed(), now: time.Now}
	for i := range c.shards {
		c.shards[i].groups = make(map[string]*memberSet)
	}
	return c
}

func (c *MemberCache) shard(groupID string) *memberShard {
	return &c.shards[maphash.String(c.seed, groupID)%memberShards]
}

func (c *MemberCache) get(ctx context.Context, groupID string) (*memberSet, error) {
	sh := c.shard(groupID)
	now := c.now()
	sh.mu.Lock()
	if s, ok := sh.groups[groupID]; ok && now.Before(s.expires) {
		sh.mu.Unlock()
		return s, nil
	}
	epoch := sh.epoch
	sh.mu.Unlock()

	ids, err := c.src.GroupMemberIDs(ctx, groupID)
	if err != nil {
		return nil, fmt.Errorf("msgserver: members of group %s: %w", groupID, err)
	}
	s := &memberSet{ids: ids, set: make(map[string]struct{}, len(ids)), expires: now.Add(c.ttl)}
	for _, id := range ids {
		s.set[id] = struct{}{}
	}
	sh.mu.Lock()
	if sh.epoch == epoch { // no invalidation raced with the load
		if len(sh.groups) >= c.max {
			for k := range sh.groups {
				delete(sh.groups, k)
				break
			}
		}
		sh.groups[groupID] = s
	}
	sh.mu.Unlock()
	return s, nil
}

// Members returns the member ids of a group (empty for an unknown group).
// The slice is shared: do not modify it.
func (c *MemberCache) Members(ctx context.Context, groupID string) ([]string, error) {
	s, err := c.get(ctx, groupID)
	if err != nil {
		return nil, err
	}
	return s.ids, nil
}

// IsMember reports whether userID is a member of the group.
func (c *MemberCache) IsMember(ctx context.Context, groupID, userID string) (bool, error) {
	s, err := c.get(ctx, groupID)
	if err != nil {
		return false, err
	}
	_, ok := s.set[userID]
	return ok, nil
}

// Invalidate drops a group from the cache; the next lookup reloads it.
func (c *MemberCache) Invalidate(groupID string) {
	sh := c.shard(groupID)
	sh.mu.Lock()
	delete(sh.groups, groupID)
	sh.epoch++
	sh.mu.Unlock()
}
