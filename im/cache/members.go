// Package cache holds the Redis-backed caches shared by the processes of a
// deployment (sandcat-wire.md §6), every key under a configurable prefix:
//
//   - Members: group member ids, `<prefix>group_members_id:<gid>` (a set),
//     the same method set as msgserver.MemberCache, so either can be plugged;
//   - Routes: the online routes, which gateway holds which user's device,
//     `<prefix>route:<user>:<platform>` (the msgserver.Router contract);
//   - Revocations: a cache of the per-user token revocation mark in front of
//     the users store (the auth.Revocations contract).
package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// MemberSource lists a group's member ids (storage.Groups satisfies it).
type MemberSource interface {
	GroupMemberIDs(ctx context.Context, groupID string) ([]string, error)
}

// DefaultMembersTTL is the lifetime of a cached group when
// MembersOptions.TTL is 0.
const DefaultMembersTTL = time.Hour

// MembersOptions configures Members.
type MembersOptions struct {
	// Prefix is put before every key (config redis.prefix).
	Prefix string
	// TTL bounds how long a group stays cached without an invalidation
	// (a safety net: the consumer invalidates a group whose members
	// change); 0 means DefaultMembersTTL, < 0 means no expiry.
	TTL time.Duration
	// InvalidateTimeout bounds Invalidate's Redis call; 0 means 5 s.
	InvalidateTimeout time.Duration
	// Log receives the errors of Invalidate; nil means slog.Default().
	Log *slog.Logger
}

// Members caches groups' member ids in Redis, shared by every process:
// `<prefix>group_members_id:<gid>` is the set of member ids (plus the empty
// string, a marker that the set is loaded, so that a group without members
// is cached too). A miss loads the group from the store and fills the set.
//
// An invalidation bumps `<prefix>group_members_gen:<gid>` and deletes the
// set; a fill only happens if the generation is still the one read before
// the store was queried, so a load that raced with a change of members never
// puts the old members back.
type Members struct {
	rdb     redis.UniversalClient
	src     MemberSource
	prefix  string
	ttl     time.Duration
	genTTL  time.Duration
	timeout time.Duration
	log     *slog.Logger
	fill    *redis.Script
}

// loadedMarker is the set member that marks a loaded set; user ids are never empty.
const loadedMarker = ""

// NewMembers returns a Redis member cache over src.
func NewMembers(rdb redis.UniversalClient, src MemberSource, opts MembersOptions) *Members {
	if opts.TTL == 0 {
		opts.TTL = DefaultMembersTTL
	}
	if opts.InvalidateTimeout <= 0 {
		opts.InvalidateTimeout = 5 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	// A generation outlives every load that may have read it.
	genTTL := max(opts.TTL, 0) + 24*time.Hour
	return &Members{rdb: rdb, src: src, prefix: opts.Prefix, ttl: opts.TTL, genTTL: genTTL,
		timeout: opts.InvalidateTimeout, log: opts.Log, fill: redis.NewScript(fillScript)}
}

func (c *Members) setKey(groupID string) string { return c.prefix + "group_members_id:" + groupID }
func (c *Members) genKey(groupID string) string { return c.prefix + "group_members_gen:" + groupID }

// fillScript: KEYS = set, generation; ARGV = the generation read before the
// load ("" when absent), ttl in ms (0: none), then the members. Fills the set
// (with the loaded marker) unless the generation moved. Returns 1 if filled.
const fillScript = `
local g = redis.call('GET', KEYS[2]) or ''
if g ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SADD', KEYS[1], '')
for i = 3, #ARGV, 1000 do
  redis.call('SADD', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
end
if tonumber(ARGV[2]) > 0 then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1
`

// Members returns the member ids of a group (empty for an unknown group or
// one without members).
func (c *Members) Members(ctx context.Context, groupID string) ([]string, error) {
	ids, err := c.rdb.SMembers(ctx, c.setKey(groupID)).Result()
	if err != nil {
		return nil, fmt.Errorf("cache: members of group %s: %w", groupID, err)
	}
	for i, id := range ids {
		if id == loadedMarker {
			ids[i] = ids[len(ids)-1]
			return ids[:len(ids)-1], nil
		}
	}
	return c.load(ctx, groupID)
}

// IsMember reports whether userID is a member of the group.
func (c *Members) IsMember(ctx context.Context, groupID, userID string) (bool, error) {
	if userID == loadedMarker {
		return false, nil
	}
	r, err := c.rdb.SMIsMember(ctx, c.setKey(groupID), loadedMarker, userID).Result()
	if err != nil {
		return false, fmt.Errorf("cache: membership in group %s: %w", groupID, err)
	}
	if len(r) == 2 && r[0] {
		return r[1], nil
	}
	ids, err := c.load(ctx, groupID)
	if err != nil {
		return false, err
	}
	for _, id := range ids {
		if id == userID {
			return true, nil
		}
	}
	return false, nil
}

// load reads the group from the store and fills the cache, unless an
// invalidation happened since the generation was read.
func (c *Members) load(ctx context.Context, groupID string) ([]string, error) {
	gen, err := c.rdb.Get(ctx, c.genKey(groupID)).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("cache: members of group %s: %w", groupID, err)
	}
	ids, err := c.src.GroupMemberIDs(ctx, groupID)
	if err != nil {
		return nil, fmt.Errorf("cache: members of group %s: %w", groupID, err)
	}
	args := make([]any, 0, 2+len(ids))
	args = append(args, gen, strconv.FormatInt(c.ttl.Milliseconds(), 10))
	members := make([]string, 0, len(ids))
	for _, id := range ids {
		if id != loadedMarker {
			args = append(args, id)
			members = append(members, id)
		}
	}
	if err := c.fill.Run(ctx, c.rdb, []string{c.setKey(groupID), c.genKey(groupID)}, args...).Err(); err != nil {
		// the answer is right; only the cache stays empty
		c.log.WarnContext(ctx, "cache: fill group members", "group", groupID, "err", err)
	}
	return members, nil
}

// Invalidate drops a group from the cache of every process; the next lookup
// reloads it. An error is logged (the group stays cached until its TTL);
// InvalidateContext returns it.
func (c *Members) Invalidate(groupID string) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	if err := c.InvalidateContext(ctx, groupID); err != nil {
		c.log.Error("cache: invalidate group members", "group", groupID, "err", err)
	}
}

// InvalidateContext is Invalidate with a context and an error.
func (c *Members) InvalidateContext(ctx context.Context, groupID string) error {
	_, err := c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Incr(ctx, c.genKey(groupID))
		p.PExpire(ctx, c.genKey(groupID), c.genTTL)
		p.Del(ctx, c.setKey(groupID))
		return nil
	})
	if err != nil {
		return fmt.Errorf("cache: invalidate group %s: %w", groupID, err)
	}
	return nil
}
