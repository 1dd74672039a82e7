// Package seq hands out the per-user send and recv sequence numbers
// (sandcat-wire.md §4.1, §4.2) in blocks ("number segments") reserved against
// durable ceilings (storage.SeqCeilings, table `sequence`).
//
// For each user and counter the Allocator keeps cur (the last seq handed out)
// and max (the durable ceiling it owns up to). The first use of a counter in a
// process starts AT the stored ceiling (cur = max = ceiling), so after a
// restart a counter jumps forward to its ceiling: it never repeats a value and
// never goes back. When cur reaches max the ceiling is raised by step, and
// persisted, BEFORE any seq above the old max is handed out. Both counters are
// persisted (bug B2 of the original never saved the send ceiling).
//
// A seq that was taken but whose call failed later is never reissued (a gap,
// which clients treat as an empty range). Two Allocators on one store never
// hand out the same seq either: each block (ceiling-step, ceiling] returned by
// a Raise belongs to the Raise that returned it.
package seq

import (
	"cmp"
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"slices"
	"sync"

	"github.com/sandcat-im/sandcat/storage"
)

// DefaultStep is the block size when Options.Step is 0 (the original's
// default when redis.seq_step is 0; its sample config uses 10000).
const DefaultStep = 5000

// defaultShards is the number of lock shards of the user map.
const defaultShards = 64

// Options configures an Allocator.
type Options struct {
	// Step is the block reserved per Raise (config redis.seq_step); 0 means DefaultStep.
	Step int64
	// Shards is the number of lock shards of the user map; 0 means 64.
	Shards int
	// Log receives warnings; nil means slog.Default().
	Log *slog.Logger
}

// Allocator hands out seqs. It is safe for concurrent use: the user map is
// split into shards with their own lock, and each user has its own lock, held
// across the store round-trip only when that user's block rolls over.
type Allocator struct {
	store  storage.SeqCeilings
	step   int64
	seed   maphash.Seed
	shards []shard
	log    *slog.Logger
}

type shard struct {
	mu    sync.Mutex
	users map[string]*user
	_     [48]byte // 64 bytes a shard: shards on separate cache lines
}

// user is the state of one user's two counters, guarded by mu.
type user struct {
	mu   sync.Mutex
	send counter
	recv counter
}

type counter struct {
	cur, max int64
	loaded   bool // false until the first Raise (or Current's Get) in this process
}

// New returns an Allocator over store.
func New(store storage.SeqCeilings, opts Options) (*Allocator, error) {
	if store == nil {
		return nil, fmt.Errorf("seq: nil ceilings store")
	}
	if opts.Step < 0 {
		return nil, fmt.Errorf("seq: negative step %d", opts.Step)
	}
	if opts.Step == 0 {
		opts.Step = DefaultStep
	}
	if opts.Shards < 0 {
		return nil, fmt.Errorf("seq: negative shard count %d", opts.Shards)
	}
	if opts.Shards == 0 {
		opts.Shards = defaultShards
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	a := &Allocator{store: store, step: opts.Step, seed: maphash.MakeSeed(), shards: make([]shard, opts.Shards), log: opts.Log}
	for i := range a.shards {
		a.shards[i].users = make(map[string]*user)
	}
	return a, nil
}

// Step is the block size in use.
func (a *Allocator) Step() int64 { return a.step }

// user returns the state of id, creating it (unloaded) on first sight.
func (a *Allocator) user(id string) *user {
	sh := &a.shards[maphash.String(a.seed, id)%uint64(len(a.shards))]
	sh.mu.Lock()
	u := sh.users[id]
	if u == nil {
		u = &user{}
		sh.users[id] = u
	}
	sh.mu.Unlock()
	return u
}

// take hands out the next seq of c if its block has room.
func (c *counter) take() (int64, bool) {
	if !c.loaded || c.cur >= c.max {
		return 0, false
	}
	c.cur++
	return c.cur, true
}

// apply records a Raise by `by` that returned ceiling: the block
// (ceiling-by, ceiling] is this allocator's. cur never goes back.
func (c *counter) apply(ceiling, by int64) {
	if low := ceiling - by; !c.loaded || c.cur < low {
		c.cur = low
	}
	c.max = ceiling
	c.loaded = true
}

// raiseBy is how far c's ceiling must rise for n more seqs to fit, rounded
// up to whole steps (normally one step).
func (a *Allocator) raiseBy(c *counter, n int64) int64 {
	short := n
	if c.loaded {
		short = c.cur + n - c.max
	}
	if short < 1 {
		short = 1
	}
	return (short + a.step - 1) / a.step * a.step
}

// NextSend returns the next send seq of userID.
func (a *Allocator) NextSend(ctx context.Context, userID string) (int64, error) {
	u := a.user(userID)
	u.mu.Lock()
	defer u.mu.Unlock()
	c := &u.send
	for {
		if v, ok := c.take(); ok {
			return v, nil
		}
		by := a.raiseBy(c, 1)
		got, err := a.store.Raise(ctx, storage.SeqSend, []string{userID}, by)
		if err != nil {
			return 0, fmt.Errorf("seq: next send seq of %s: %w", userID, err)
		}
		a.applyRaised(c, userID, storage.SeqSend, got[0], by)
	}
}

// applyRaised is apply with a warning when the store's ceiling was below what
// this process already handed out (a restored or edited store): the next
// round of the caller's loop raises again.
func (a *Allocator) applyRaised(c *counter, userID string, kind storage.SeqKind, ceiling, by int64) {
	if c.loaded && ceiling <= c.cur {
		a.log.Warn("seq: stored ceiling below issued seqs; raising again",
			"user", userID, "kind", kind.String(), "ceiling", ceiling, "issued", c.cur)
	}
	c.apply(ceiling, by)
}

// NextRecv returns the next recv seq of every user, in argument order: all
// members of a group message in one call, with one Raise for all the users
// whose block rolls over. A user listed k times gets k seqs.
func (a *Allocator) NextRecv(ctx context.Context, userIDs []string) ([]int64, error) {
	out := make([]int64, len(userIDs))
	if len(userIDs) == 0 {
		return out, nil
	}
	// Phase 1: users with room in their block, one lock at a time.
	var pending []int // indexes still without a seq
	for i, id := range userIDs {
		u := a.user(id)
		u.mu.Lock()
		v, ok := u.recv.take()
		u.mu.Unlock()
		if ok {
			out[i] = v
		} else {
			pending = append(pending, i)
		}
	}
	if len(pending) == 0 {
		return out, nil
	}
	if err := a.nextRecvSlow(ctx, userIDs, pending, out); err != nil {
		return nil, err
	}
	return out, nil
}

// nextRecvSlow serves the users whose block rolled over (or who are new to
// this process): their locks are taken in id order (no deadlock between
// concurrent calls), each is re-checked, and those still short are raised
// together (one Raise per distinct amount: normally one).
func (a *Allocator) nextRecvSlow(ctx context.Context, userIDs []string, pending []int, out []int64) error {
	type slot struct {
		id   string
		u    *user
		want []int // indexes of out to fill
	}
	byID := make(map[string]*slot, len(pending))
	slots := make([]*slot, 0, len(pending))
	for _, i := range pending {
		id := userIDs[i]
		s := byID[id]
		if s == nil {
			s = &slot{id: id, u: a.user(id)}
			byID[id] = s
			slots = append(slots, s)
		}
		s.want = append(s.want, i)
	}
	slices.SortFunc(slots, func(x, y *slot) int { return cmp.Compare(x.id, y.id) })
	for _, s := range slots {
		s.u.mu.Lock()
	}
	defer func() {
		for _, s := range slots {
			s.u.mu.Unlock()
		}
	}()
	for {
		short := map[int64][]*slot{} // raise amount -> users
		for _, s := range slots {
			c := &s.u.recv
			for len(s.want) > 0 {
				v, ok := c.take()
				if !ok {
					break
				}
				out[s.want[0]] = v
				s.want = s.want[1:]
			}
			if len(s.want) > 0 {
				by := a.raiseBy(c, int64(len(s.want)))
				short[by] = append(short[by], s)
			}
		}
		if len(short) == 0 {
			return nil
		}
		for by, group := range short {
			ids := make([]string, len(group))
			for i, s := range group {
				ids[i] = s.id
			}
			got, err := a.store.Raise(ctx, storage.SeqRecv, ids, by)
			if err != nil {
				return fmt.Errorf("seq: next recv seqs of %d users: %w", len(ids), err)
			}
			for i, s := range group {
				a.applyRaised(&s.u.recv, s.id, storage.SeqRecv, got[i], by)
			}
		}
	}
}

// NextSendAndRecv returns the next send seq of sender and the next recv seq
// of every receiver, in argument order (the combined allocation of the
// README TODO; redisseq does it in one Lua call). If the recv part fails the
// send seq taken is lost (a gap, never reissued).
func (a *Allocator) NextSendAndRecv(ctx context.Context, sender string, receivers []string) (send int64, recv []int64, err error) {
	if send, err = a.NextSend(ctx, sender); err != nil {
		return 0, nil, err
	}
	if recv, err = a.NextRecv(ctx, receivers); err != nil {
		return 0, nil, err
	}
	return send, recv, nil
}

// Current returns the last recv and send seqs handed out to userID: what
// GET /message/seq answers. A counter not used by this process yet reports
// its stored ceiling (every seq ever handed out is at most that, the next one
// above it); a user never seen anywhere reports 0, 0 (bug B9). The stored
// ceiling is read again on every call until this process uses the counter: a
// process that only answers Current (an API-only role) reports a value at or
// above every seq handed out elsewhere, at most one block ahead.
func (a *Allocator) Current(ctx context.Context, userID string) (recv, send int64, err error) {
	u := a.user(userID)
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.recv.loaded && u.send.loaded {
		return u.recv.cur, u.send.cur, nil
	}
	storedSend, storedRecv, err := a.store.Get(ctx, userID)
	if err != nil {
		return 0, 0, fmt.Errorf("seq: current seqs of %s: %w", userID, err)
	}
	recv, send = storedRecv, storedSend
	if u.recv.loaded {
		recv = u.recv.cur
	}
	if u.send.loaded {
		send = u.send.cur
	}
	return recv, send, nil
}
