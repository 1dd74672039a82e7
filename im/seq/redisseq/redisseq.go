// Package redisseq hands out the per-user send and recv seqs from Redis
// (sandcat-wire.md §4.2), shared by every process of a deployment, against
// the durable ceilings of storage.SeqCeilings (table `sequence`). It has the
// method set of im/seq's embedded Allocator and passes the same conformance
// suite (im/seq/seqtest).
//
// Keys (under a configurable prefix): `<prefix>seq:<user>` (recv) and
// `<prefix>send_seq:<user>` (send), hashes {cur_seq, max_seq} as in the
// original. cur_seq is the last seq handed out, max_seq the end of the block
// this deployment reserved durably.
//
// One Lua script serves every call (NextSend, NextRecv of a whole group, and
// NextSendAndRecv, the README TODO: the sender's send seq and the receivers'
// recv seqs in one call). It runs by EVALSHA with an EVAL fallback, so a
// SCRIPT FLUSH or a Redis restart does not break it.
//
// Durability (bug B2 fixed, for both counters): the script never hands out a
// seq above max_seq, and max_seq only grows to a ceiling that Raise has
// already made durable. When a counter is full the script says so (and takes
// nothing for it); the allocator raises the durable ceilings of all such
// counters of the call (one Raise per kind, ids sorted), then runs the script
// again with the raised blocks, which extends max_seq and takes the seqs. So
// every seq returned, by any process, is at most the durable ceiling, even
// while another process is in the middle of a raise or its raise failed.
//
// A missing counter (a new user, or Redis wiped by FLUSHALL or a restart
// without persistence) is treated like a full one: the raise returns a block
// (ceiling-by, ceiling] that belongs to this call alone, and the script
// creates the counter at its start if it is still absent (atomically, in
// Lua). After a wipe the counters therefore jump above every seq handed out
// before (a gap, never a repeat), and nothing needs to be preloaded.
//
// A seq taken by a call that fails later (a failed raise of another counter
// of the same call) is lost, never reissued.
//
// Within a process, rollovers are serialised per counter, so concurrent
// calls that find one counter full raise it once. Processes that find it
// full at the same moment each raise it: max_seq moves to the highest
// ceiling and the counter goes on without a gap (the durable ceiling is just
// further ahead). Only when processes create a missing counter at the same
// moment, and the one with the higher block wins, are the lower blocks
// skipped (a gap, never a reuse).
//
// Redis must not roll counters back: run it without persistence (a restart
// is then a wipe, handled above) or with AOF `appendfsync always`; restoring
// an older RDB snapshot would make it reissue seqs. The multi-key script
// needs a standalone Redis (or Sentinel), not Redis Cluster.
package redisseq

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
	"github.com/sandcat-im/sandcat/im/seq"
	"github.com/sandcat-im/sandcat/storage"
)

// Options configures an Allocator.
type Options struct {
	// Prefix is put before every key (config redis.prefix), e.g. "sandcat:".
	Prefix string
	// Step is the block reserved per raise (config redis.seq_step); 0 means seq.DefaultStep.
	Step int64
	// Log receives warnings; nil means slog.Default().
	Log *slog.Logger
}

// Allocator hands out seqs from Redis. It is safe for concurrent use, and
// any number of Allocators (processes) may share one Redis and one store.
type Allocator struct {
	// Rollovers in one process are serialised per counter (striped locks),
	// so concurrent calls of a process that find the same counter full
	// raise it once; gen counts the raises applied, to tell a caller that
	// waited for a lock whether to look again before raising.
	stripes [numStripes]sync.Mutex
	gen     atomic.Uint64
	seed    maphash.Seed

	rdb        redis.UniversalClient
	store      storage.SeqCeilings
	step       int64
	recvPrefix string
	sendPrefix string
	take       *redis.Script
	log        *slog.Logger
}

// New returns an Allocator over rdb and the durable ceilings store.
func New(rdb redis.UniversalClient, store storage.SeqCeilings, opts Options) (*Allocator, error) {
	if rdb == nil {
		return nil, fmt.Errorf("redisseq: nil redis client")
	}
	if store == nil {
		return nil, fmt.Errorf("redisseq: nil ceilings store")
	}
	if opts.Step < 0 {
		return nil, fmt.Errorf("redisseq: negative step %d", opts.Step)
	}
	if opts.Step == 0 {
		opts.Step = seq.DefaultStep
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Allocator{
		seed:       maphash.MakeSeed(),
		rdb:        rdb,
		store:      store,
		step:       opts.Step,
		recvPrefix: opts.Prefix + "seq:",
		sendPrefix: opts.Prefix + "send_seq:",
		take:       redis.NewScript(takeScript),
		log:        opts.Log,
	}, nil
}

// numStripes is the number of rollover locks.
const numStripes = 256

// Step is the block size in use.
func (a *Allocator) Step() int64 { return a.step }

// takeScript takes one seq per position.
//
// KEYS: the counter hash of each position (a key may repeat: it then gives
// consecutive seqs). ARGV: empty, or two per position, ceiling and low. A
// ceiling > 0 is a block (low, ceiling] just reserved durably for that
// counter: a missing counter is created with cur_seq = low and max_seq =
// ceiling; an existing one gets max_seq = ceiling if that is higher, and
// cur_seq = low if that is higher (never handing out seqs of a block that
// another caller reserved and may still apply).
//
// Returns one integer per position: the seq taken (> 0), 0 when the counter
// is missing, -(cur_seq + 1) when its block is full. Numbers are written from
// the argument strings or by HINCRBY, never formatted by Lua.
const takeScript = `
local out = {}
for i = 1, #KEYS do
  local k = KEYS[i]
  local v = redis.call('HMGET', k, 'cur_seq', 'max_seq')
  local cur, mx = tonumber(v[1]), tonumber(v[2])
  local ceil = tonumber(ARGV[2*i-1] or '0')
  if ceil and ceil > 0 then
    local low = tonumber(ARGV[2*i])
    if not cur or not mx then
      if not cur or cur < low then
        redis.call('HSET', k, 'cur_seq', ARGV[2*i], 'max_seq', ARGV[2*i-1])
        cur = low
      else
        redis.call('HSET', k, 'max_seq', ARGV[2*i-1])
      end
      mx = ceil
    elseif ceil > mx then
      -- Extend to our block, and start at its low: the seqs between cur and
      -- low belong to a block another caller reserved, which it may still
      -- apply (e.g. after a wipe) and hand out itself.
      if cur < low then
        redis.call('HSET', k, 'cur_seq', ARGV[2*i], 'max_seq', ARGV[2*i-1])
        cur = low
      else
        redis.call('HSET', k, 'max_seq', ARGV[2*i-1])
      end
      mx = ceil
    end
  end
  if not cur or not mx then
    out[i] = 0
  elseif cur < mx then
    out[i] = redis.call('HINCRBY', k, 'cur_seq', 1)
  else
    out[i] = -(cur + 1)
  end
end
return out
`

// counter is one of a user's two counters.
type counter struct {
	kind storage.SeqKind
	user string
}

func (a *Allocator) key(c counter) string {
	if c.kind == storage.SeqSend {
		return a.sendPrefix + c.user
	}
	return a.recvPrefix + c.user
}

// block is a range (low, ceil] reserved durably for a counter.
type block struct{ low, ceil int64 }

// short is what a call still needs of a counter.
type short struct {
	n   int64 // seqs still to take
	cur int64 // cur_seq of a full counter; -1 when missing
}

// NextSend returns the next send seq of userID.
func (a *Allocator) NextSend(ctx context.Context, userID string) (int64, error) {
	out, err := a.next(ctx, []counter{{storage.SeqSend, userID}})
	if err != nil {
		return 0, fmt.Errorf("redisseq: next send seq of %s: %w", userID, err)
	}
	return out[0], nil
}

// NextRecv returns the next recv seq of every user, in argument order: all
// members of a group message in one script call, with one Raise for all the
// users whose block rolls over. A user listed k times gets k seqs.
func (a *Allocator) NextRecv(ctx context.Context, userIDs []string) ([]int64, error) {
	if len(userIDs) == 0 {
		return []int64{}, nil
	}
	cs := make([]counter, len(userIDs))
	for i, u := range userIDs {
		cs[i] = counter{storage.SeqRecv, u}
	}
	out, err := a.next(ctx, cs)
	if err != nil {
		return nil, fmt.Errorf("redisseq: next recv seqs of %d users: %w", len(userIDs), err)
	}
	return out, nil
}

// NextSendAndRecv returns the next send seq of sender and the next recv seq
// of every receiver, in argument order, from one script call (plus one more
// when a block rolls over).
func (a *Allocator) NextSendAndRecv(ctx context.Context, sender string, receivers []string) (send int64, recv []int64, err error) {
	cs := make([]counter, 1+len(receivers))
	cs[0] = counter{storage.SeqSend, sender}
	for i, u := range receivers {
		cs[1+i] = counter{storage.SeqRecv, u}
	}
	out, err := a.next(ctx, cs)
	if err != nil {
		return 0, nil, fmt.Errorf("redisseq: next send seq of %s and recv seqs of %d users: %w", sender, len(receivers), err)
	}
	return out[0], out[1:], nil
}

// next takes one seq per position of cs.
//
// Fast path: one script run. When counters are short, their rollover locks
// are taken (in stripe order); if another call of this process raised in
// the meantime the script runs again first; then the short counters are
// raised durably and the script runs with the new blocks, until every
// position has its seq.
func (a *Allocator) next(ctx context.Context, cs []counter) ([]int64, error) {
	out := make([]int64, len(cs))
	pending := make([]int, len(cs)) // positions still without a seq
	for i := range pending {
		pending[i] = i
	}
	gen := a.gen.Load()
	var locked []int // stripes held
	defer func() {
		for _, s := range locked {
			a.stripes[s].Unlock()
		}
	}()
	var raised map[counter]block // blocks to apply at the next run
	for {
		shorts, err := a.run(ctx, cs, pending, raised, out)
		if err != nil {
			return nil, err
		}
		if raised != nil {
			a.gen.Add(1) // the blocks are in Redis now
		}
		next := pending[:0]
		for _, i := range pending {
			if out[i] == 0 {
				next = append(next, i)
			}
		}
		pending = next
		if len(pending) == 0 {
			return out, nil
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if locked == nil {
			locked = a.lock(shorts)
			if a.gen.Load() != gen {
				raised = nil
				continue // a raise of this process may have served us: look again
			}
		}
		if raised, err = a.raise(ctx, shorts); err != nil {
			return nil, err
		}
	}
}

// run runs the script for the pending positions, applying raised, fills
// out and returns the counters still short.
func (a *Allocator) run(ctx context.Context, cs []counter, pending []int, raised map[counter]block, out []int64) (map[counter]*short, error) {
	keys := make([]string, len(pending))
	var args []any
	if len(raised) > 0 {
		args = make([]any, 0, 2*len(pending))
	}
	for j, i := range pending {
		keys[j] = a.key(cs[i])
		if len(raised) == 0 {
			continue
		}
		if b, ok := raised[cs[i]]; ok {
			args = append(args, b.ceil, b.low)
			delete(raised, cs[i]) // applied once, at its first position
		} else {
			args = append(args, 0, 0)
		}
	}
	res, err := a.take.Run(ctx, a.rdb, keys, args...).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("take script: %w", err)
	}
	if len(res) != len(keys) {
		return nil, fmt.Errorf("take script: %d results for %d counters", len(res), len(keys))
	}
	var shorts map[counter]*short
	for j, i := range pending {
		if v := res[j]; v > 0 {
			out[i] = v
			continue
		}
		if shorts == nil {
			shorts = map[counter]*short{}
		}
		s := shorts[cs[i]]
		if s == nil {
			s = &short{cur: -1}
			if res[j] < 0 {
				s.cur = -res[j] - 1
			}
			shorts[cs[i]] = s
		}
		s.n++
	}
	return shorts, nil
}

// lock takes the rollover locks of the counters in stripe order (no
// deadlock between calls) and returns them.
func (a *Allocator) lock(shorts map[counter]*short) []int {
	seen := map[int]bool{}
	stripes := make([]int, 0, len(shorts))
	for c := range shorts {
		var h maphash.Hash
		h.SetSeed(a.seed)
		h.WriteByte(byte(c.kind))
		h.WriteString(c.user)
		s := int(h.Sum64() % numStripes)
		if !seen[s] {
			seen[s] = true
			stripes = append(stripes, s)
		}
	}
	slices.Sort(stripes)
	for _, s := range stripes {
		a.stripes[s].Lock()
	}
	return stripes
}

// roundUp rounds n up to whole steps.
func (a *Allocator) roundUp(n int64) int64 {
	return max(1, (n+a.step-1)/a.step) * a.step
}

// raise makes durable a block for every short counter: one Raise per kind
// and amount (normally one per kind), ids sorted.
func (a *Allocator) raise(ctx context.Context, shorts map[counter]*short) (map[counter]block, error) {
	type group struct {
		kind storage.SeqKind
		by   int64
	}
	groups := map[group][]counter{}
	for c, s := range shorts {
		g := group{c.kind, a.roundUp(s.n)}
		groups[g] = append(groups[g], c)
	}
	order := make([]group, 0, len(groups))
	for g := range groups {
		order = append(order, g)
	}
	slices.SortFunc(order, func(x, y group) int {
		return cmp.Or(cmp.Compare(x.kind, y.kind), cmp.Compare(x.by, y.by))
	})
	out := make(map[counter]block, len(shorts))
	for _, g := range order {
		cs := groups[g]
		slices.SortFunc(cs, func(x, y counter) int { return cmp.Compare(x.user, y.user) })
		users := make([]string, len(cs))
		for i, c := range cs {
			users[i] = c.user
		}
		got, err := a.store.Raise(ctx, g.kind, users, g.by)
		if err != nil {
			return nil, fmt.Errorf("raise %s ceilings of %d users: %w", g.kind, len(users), err)
		}
		if len(got) != len(users) {
			return nil, fmt.Errorf("raise %s ceilings: %d ceilings for %d users", g.kind, len(got), len(users))
		}
		for i, c := range cs {
			b := block{low: got[i] - g.by, ceil: got[i]}
			if s := shorts[c]; s.cur >= 0 && b.ceil < s.cur+s.n {
				// The store is behind what Redis handed out (a restored or
				// edited store): raise this counter past it first.
				if b, err = a.catchUp(ctx, c, s, b); err != nil {
					return nil, err
				}
			}
			out[c] = b
		}
	}
	return out, nil
}

// catchUp raises the ceiling of c, which the store has below the cur_seq
// Redis reports, until the block covers the seqs still needed.
func (a *Allocator) catchUp(ctx context.Context, c counter, s *short, b block) (block, error) {
	a.log.WarnContext(ctx, "redisseq: stored ceiling below issued seqs; raising again",
		"user", c.user, "kind", c.kind.String(), "ceiling", b.ceil, "issued", s.cur)
	by := a.roundUp(s.cur + s.n - b.ceil)
	got, err := a.store.Raise(ctx, c.kind, []string{c.user}, by)
	if err != nil {
		return block{}, fmt.Errorf("raise %s ceiling of %s: %w", c.kind, c.user, err)
	}
	if len(got) != 1 || got[0] < s.cur+s.n {
		return block{}, fmt.Errorf("raise %s ceiling of %s by %d: got %v, below %d", c.kind, c.user, by, got, s.cur+s.n)
	}
	return block{low: got[0] - by, ceil: got[0]}, nil
}

// Current returns the last recv and send seqs handed out to userID: what
// GET /message/seq answers. A counter missing in Redis reports its stored
// ceiling (every seq handed out is at most that), a user never seen 0, 0
// (bug B9).
func (a *Allocator) Current(ctx context.Context, userID string) (recv, send int64, err error) {
	pipe := a.rdb.Pipeline()
	r := pipe.HGet(ctx, a.key(counter{storage.SeqRecv, userID}), "cur_seq")
	s := pipe.HGet(ctx, a.key(counter{storage.SeqSend, userID}), "cur_seq")
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return 0, 0, fmt.Errorf("redisseq: current seqs of %s: %w", userID, err)
	}
	recv, rerr := parse(r)
	send, serr := parse(s)
	if rerr != nil || serr != nil {
		return 0, 0, fmt.Errorf("redisseq: current seqs of %s: %w", userID, cmp.Or(rerr, serr))
	}
	if recv >= 0 && send >= 0 {
		return recv, send, nil
	}
	storedSend, storedRecv, err := a.store.Get(ctx, userID)
	if err != nil {
		return 0, 0, fmt.Errorf("redisseq: current seqs of %s: %w", userID, err)
	}
	if recv < 0 {
		recv = storedRecv
	}
	if send < 0 {
		send = storedSend
	}
	return recv, send, nil
}

// parse reads a cur_seq: -1 when missing.
func parse(c *redis.StringCmd) (int64, error) {
	v, err := c.Result()
	if errors.Is(err, redis.Nil) {
		return -1, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("cur_seq %q: %w", v, err)
	}
	return n, nil
}
