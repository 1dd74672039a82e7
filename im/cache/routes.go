package cache

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultRouteTTL is the lifetime of a route that is not refreshed when
// RoutesOptions.TTL is 0. Gateways refresh their routes every TTL/3.
const DefaultRouteTTL = 90 * time.Second

// routeChunk is the number of keys per command or script call: a big
// Locate or Refresh is several commands in one pipeline (one round trip),
// none of which holds Redis for long.
const routeChunk = 2048

// RoutesOptions configures Routes.
type RoutesOptions struct {
	// Prefix is put before every key (config redis.prefix).
	Prefix string
	// TTL: a route not refreshed for this long vanishes (a dead gateway's
	// users become offline); 0 means DefaultRouteTTL.
	TTL time.Duration
	// Platforms are the device slots of a user; 0 or empty means {0, 1}
	// (wire.PlatformDesktop, wire.PlatformMobile). Any other platform
	// counts as the first one, as the gateway does.
	Platforms []int32
}

// RouteEntry is one connection: a user's device slot.
type RouteEntry struct {
	UserID   string
	Platform int32
}

// Routes are the online routes: which gateway instance holds which user's
// device. `<prefix>route:<user>:<platform>` holds the gateway id, with a TTL;
// `<prefix>route_gateway:<gateway>` marks that a gateway's routes are there (Present).
// A user has one route per platform, as a gateway has one connection per
// user and platform: the newest connection wins.
//
// A gateway Adds a route when a connection is registered, Removes it when
// the connection goes (only if the route is still its own), and Refreshes
// all of its routes periodically (every TTL/3): the routes of a gateway that
// died expire. Refresh also restores routes lost by a Redis restart, and
// reports the routes another gateway took over (the gateway may then close
// those connections).
//
// Locate (msgserver.Router) reads every device slot of every user with MGET,
// in one pipeline: one round trip for a 10,000-member group.
type Routes struct {
	rdb       redis.UniversalClient
	prefix    string
	marker    string // prefix of the per-gateway marker keys (Present)
	ttl       time.Duration
	platforms []int32
	refresh   *redis.Script
	remove    *redis.Script
}

// NewRoutes returns the routes in rdb.
func NewRoutes(rdb redis.UniversalClient, opts RoutesOptions) *Routes {
	if opts.TTL <= 0 {
		opts.TTL = DefaultRouteTTL
	}
	if len(opts.Platforms) == 0 {
		opts.Platforms = []int32{0, 1}
	}
	return &Routes{rdb: rdb, prefix: opts.Prefix + "route:", marker: opts.Prefix + "route_gateway:", ttl: opts.TTL,
		platforms: slices.Clone(opts.Platforms),
		refresh:   redis.NewScript(refreshScript), remove: redis.NewScript(removeScript)}
}

// TTL is the lifetime of a route not refreshed.
func (r *Routes) TTL() time.Duration { return r.ttl }

func (r *Routes) platform(p int32) int32 {
	if slices.Contains(r.platforms, p) {
		return p
	}
	return r.platforms[0]
}

func (r *Routes) key(userID string, platform int32) string {
	return r.prefix + userID + ":" + strconv.Itoa(int(r.platform(platform)))
}

// Add records that gatewayID holds the user's connection on platform (it
// replaces the route of an older connection elsewhere).
func (r *Routes) Add(ctx context.Context, userID string, platform int32, gatewayID string) error {
	if err := r.rdb.Set(ctx, r.key(userID, platform), gatewayID, r.ttl).Err(); err != nil {
		return fmt.Errorf("cache: add route of %s: %w", userID, err)
	}
	return nil
}

// removeScript: KEYS = routes; ARGV = gateway id. Deletes the routes that
// are that gateway's. Returns how many.
const removeScript = `
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    n = n + 1
  end
end
return n
`

// Remove deletes the user's route on platform if gatewayID still holds it
// (a connection replaced on another gateway does not remove the new route).
func (r *Routes) Remove(ctx context.Context, userID string, platform int32, gatewayID string) error {
	return r.RemoveAll(ctx, gatewayID, []RouteEntry{{userID, platform}})
}

// RemoveAll is Remove for many entries (a gateway shutting down).
func (r *Routes) RemoveAll(ctx context.Context, gatewayID string, entries []RouteEntry) error {
	if _, err := r.runChunks(ctx, r.remove, r.keys(entries), gatewayID); err != nil {
		return fmt.Errorf("cache: remove routes of gateway %s: %w", gatewayID, err)
	}
	return nil
}

// refreshScript: KEYS = routes; ARGV = gateway id, ttl in ms. A route of
// the gateway gets its TTL again; a missing one (expired, or Redis
// restarted) is set again; a route of another gateway is left alone and
// reported. Returns, per key, 0 (refreshed) or 1 (another gateway's).
const refreshScript = `
local out = {}
for i = 1, #KEYS do
  local v = redis.call('GET', KEYS[i])
  if v == ARGV[1] then
    redis.call('PEXPIRE', KEYS[i], ARGV[2])
    out[i] = 0
  elseif not v then
    redis.call('SET', KEYS[i], ARGV[1], 'PX', ARGV[2])
    out[i] = 0
  else
    out[i] = 1
  end
end
return out
`

// Refresh gives the routes of the connections gatewayID holds their TTL
// again (restoring any that vanished), in one pipeline. It returns the
// entries whose route another gateway holds now: the user connected there
// since, so this connection is stale.
func (r *Routes) Refresh(ctx context.Context, gatewayID string, entries []RouteEntry) (lost []RouteEntry, err error) {
	// The marker first: should Redis lose its data between the two, Present
	// reports it and the gateway refreshes again.
	if err := r.rdb.Set(ctx, r.marker+gatewayID, "1", r.ttl).Err(); err != nil {
		return nil, fmt.Errorf("cache: refresh routes of gateway %s: %w", gatewayID, err)
	}
	keys := r.keys(entries)
	cmds, err := r.runChunks(ctx, r.refresh, keys, gatewayID, r.ttl.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("cache: refresh routes of gateway %s: %w", gatewayID, err)
	}
	for c, cmd := range cmds {
		res, err := cmd.Int64Slice()
		if err != nil {
			return nil, fmt.Errorf("cache: refresh routes of gateway %s: %w", gatewayID, err)
		}
		for j, v := range res {
			if v == 1 {
				lost = append(lost, entries[c*routeChunk+j])
			}
		}
	}
	return lost, nil
}

// Present reports whether the routes gatewayID wrote at its last Refresh
// are still in Redis, by a marker key Refresh writes with them (one EXISTS).
// False means Redis lost them (a restart without persistence, a flush, a
// failover to an empty replica) or the gateway never refreshed: the gateway
// should Refresh now rather than at its next period, or pushes to its users
// stop until then.
func (r *Routes) Present(ctx context.Context, gatewayID string) (bool, error) {
	n, err := r.rdb.Exists(ctx, r.marker+gatewayID).Result()
	if err != nil {
		return false, fmt.Errorf("cache: routes of gateway %s present: %w", gatewayID, err)
	}
	return n == 1, nil
}

// Locate returns, for each user of users that is online somewhere, the ids
// of the gateways holding its connections (msgserver.Router). Offline users
// are absent.
func (r *Routes) Locate(ctx context.Context, users []string) (map[string][]string, error) {
	out := make(map[string][]string)
	if len(users) == 0 {
		return out, nil
	}
	np := len(r.platforms)
	keys := make([]string, 0, len(users)*np)
	owners := make([]string, 0, len(users)) // user of keys[i*np:(i+1)*np]
	seen := make(map[string]struct{}, len(users))
	for _, u := range users {
		if _, ok := seen[u]; ok {
			continue
		}
		seen[u] = struct{}{}
		owners = append(owners, u)
		for _, p := range r.platforms {
			keys = append(keys, r.prefix+u+":"+strconv.Itoa(int(p)))
		}
	}
	pipe := r.rdb.Pipeline()
	var cmds []*redis.SliceCmd
	for start := 0; start < len(keys); start += routeChunk {
		cmds = append(cmds, pipe.MGet(ctx, keys[start:min(start+routeChunk, len(keys))]...))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, fmt.Errorf("cache: locate %d users: %w", len(owners), err)
	}
	i := 0
	for _, cmd := range cmds {
		for _, v := range cmd.Val() {
			if gw, ok := v.(string); ok && gw != "" {
				u := owners[i/np]
				if !slices.Contains(out[u], gw) {
					out[u] = append(out[u], gw)
				}
			}
			i++
		}
	}
	return out, nil
}

func (r *Routes) keys(entries []RouteEntry) []string {
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = r.key(e.UserID, e.Platform)
	}
	return keys
}

// runChunks runs script over keys in chunks of routeChunk, all in one
// pipeline by EVALSHA; chunks that meet NOSCRIPT (a SCRIPT FLUSH or a Redis
// restart) run again by EVAL.
func (r *Routes) runChunks(ctx context.Context, script *redis.Script, keys []string, args ...any) ([]*redis.Cmd, error) {
	var chunks [][]string
	for start := 0; start < len(keys); start += routeChunk {
		chunks = append(chunks, keys[start:min(start+routeChunk, len(keys))])
	}
	if len(chunks) == 0 {
		return nil, nil
	}
	cmds := make([]*redis.Cmd, len(chunks))
	pipe := r.rdb.Pipeline()
	for i, ks := range chunks {
		cmds[i] = script.EvalSha(ctx, pipe, ks, args...)
	}
	_, _ = pipe.Exec(ctx) // errors are read per command below
	var again []int
	for i, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			if !errors.Is(err, redis.ErrNoScript) && !redis.HasErrorPrefix(err, "NOSCRIPT") {
				return nil, err
			}
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return cmds, nil
	}
	pipe = r.rdb.Pipeline()
	for _, i := range again {
		cmds[i] = script.Eval(ctx, pipe, chunks[i], args...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	return cmds, nil
}
