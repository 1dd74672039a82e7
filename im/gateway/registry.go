package gateway

import (
	"hash/maphash"
	"sync"

	"github.com/sandcat-im/sandcat/im/wire"
)

// numPlatforms: the wire knows Desktop (0) and Mobile (1); any other value
// means Desktop.
const numPlatforms = 2

func normPlatform(p int32) int32 {
	if p == wire.PlatformMobile {
		return wire.PlatformMobile
	}
	return wire.PlatformDesktop
}

// registry maps user → platform → connection, sharded so that connects,
// disconnects and pushes of different users rarely share a lock.
type registry struct {
	seed   maphash.Seed
	shards [registryShards]regShard
}

const registryShards = 256

type regShard struct {
	mu    sync.RWMutex
	users map[string]*[numPlatforms]*conn
}

func newRegistry() *registry {
	r := &registry{seed: maphash.MakeSeed()}
	for i := range r.shards {
		r.shards[i].users = make(map[string]*[numPlatforms]*conn)
	}
	return r
}

func (r *registry) shard(user string) *regShard {
	return &r.shards[maphash.String(r.seed, user)%registryShards]
}

// add registers c and returns the connection it replaced (nil if none).
func (r *registry) add(c *conn) (old *conn) {
	sh := r.shard(c.user)
	sh.mu.Lock()
	slots := sh.users[c.user]
	if slots == nil {
		slots = new([numPlatforms]*conn)
		sh.users[c.user] = slots
	}
	old = slots[c.platform]
	slots[c.platform] = c
	sh.mu.Unlock()
	return old
}

// remove unregisters c if it is still the registered connection of its slot
// (a knocked-off connection must not remove its replacement) and reports
// whether it did.
func (r *registry) remove(c *conn) (removed bool) {
	sh := r.shard(c.user)
	sh.mu.Lock()
	if slots := sh.users[c.user]; slots != nil && slots[c.platform] == c {
		removed = true
		slots[c.platform] = nil
		empty := true
		for _, s := range slots {
			if s != nil {
				empty = false
			}
		}
		if empty {
			delete(sh.users, c.user)
		}
	}
	sh.mu.Unlock()
	return removed
}

// get returns the user's connections by platform (nil entries are absent).
func (r *registry) get(user string) (out [numPlatforms]*conn, ok bool) {
	sh := r.shard(user)
	sh.mu.RLock()
	if slots := sh.users[user]; slots != nil {
		out, ok = *slots, true
	}
	sh.mu.RUnlock()
	return out, ok
}

// all returns every registered connection.
func (r *registry) all() []*conn {
	var out []*conn
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.RLock()
		for _, slots := range sh.users {
			for _, c := range slots {
				if c != nil {
					out = append(out, c)
				}
			}
		}
		sh.mu.RUnlock()
	}
	return out
}
