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

// RevocationStore keeps the durable per-user token revocation mark
// (storage.Users implements it; it is auth.Revocations).
type RevocationStore interface {
	RevokeTokens(ctx context.Context, userID string, at int64) error
	TokensRevokedAt(ctx context.Context, userID string) (int64, error)
}

// DefaultRevocationTTL is the lifetime of a cached mark when
// RevocationsOptions.TTL is 0.
const DefaultRevocationTTL = 5 * time.Minute

// RevocationsOptions configures Revocations.
type RevocationsOptions struct {
	// Prefix is put before every key (config redis.prefix).
	Prefix string
	// TTL is the lifetime of a cached mark; 0 means DefaultRevocationTTL.
	TTL time.Duration
	// Log receives the Redis errors a lookup falls back from; nil means slog.Default().
	Log *slog.Logger
}

// Revocations caches the token revocation mark of users in Redis, in front
// of the store, so that verifying a token costs no database query:
// `<prefix>revoked_at:<user>` holds the mark (unix seconds, "0" for none)
// with a TTL. It satisfies auth.Revocations.
//
// The cached mark only moves forward (a Lua max), and RevokeTokens raises
// it in Redis BEFORE the store: the cache is never less strict than the
// store, and a lookup that loaded an older mark from the store cannot put it
// back. Every revocation must go through Revocations (a mark written to the
// store directly shows after at most TTL). When Redis fails, a lookup reads
// the store.
type Revocations struct {
	rdb    redis.UniversalClient
	store  RevocationStore
	prefix string
	ttl    time.Duration
	log    *slog.Logger
	raise  *redis.Script
}

// NewRevocations returns the cache over store.
func NewRevocations(rdb redis.UniversalClient, store RevocationStore, opts RevocationsOptions) *Revocations {
	if opts.TTL <= 0 {
		opts.TTL = DefaultRevocationTTL
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	return &Revocations{rdb: rdb, store: store, prefix: opts.Prefix + "revoked_at:", ttl: opts.TTL,
		log: opts.Log, raise: redis.NewScript(raiseScript)}
}

// raiseScript: KEYS = mark; ARGV = mark, ttl ms, force (1: a revocation).
// Sets the mark if absent or lower; a revocation also renews the TTL.
const raiseScript = `
local v = tonumber(redis.call('GET', KEYS[1]))
local n = tonumber(ARGV[1])
if not v or n > v or (ARGV[3] == '1' and n == v) then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
`

// TokensRevokedAt returns the user's revocation mark (unix seconds), 0 if none.
func (r *Revocations) TokensRevokedAt(ctx context.Context, userID string) (int64, error) {
	v, err := r.rdb.Get(ctx, r.prefix+userID).Result()
	if err == nil {
		n, perr := strconv.ParseInt(v, 10, 64)
		if perr == nil {
			return n, nil
		}
		err = fmt.Errorf("bad mark %q: %w", v, perr)
	}
	if !errors.Is(err, redis.Nil) {
		r.log.WarnContext(ctx, "cache: revocation mark from Redis; reading the store", "user", userID, "err", err)
	}
	at, serr := r.store.TokensRevokedAt(ctx, userID)
	if serr != nil {
		return 0, fmt.Errorf("cache: revocation mark of %s: %w", userID, serr)
	}
	if errors.Is(err, redis.Nil) {
		if ferr := r.set(ctx, userID, at, false); ferr != nil {
			r.log.WarnContext(ctx, "cache: fill revocation mark", "user", userID, "err", ferr)
		}
	}
	return at, nil
}

// RevokeTokens marks every token of the user issued at or before at (unix
// seconds) as revoked: in Redis first, then in the store.
func (r *Revocations) RevokeTokens(ctx context.Context, userID string, at int64) error {
	if err := r.set(ctx, userID, at, true); err != nil {
		return fmt.Errorf("cache: revoke tokens of %s: %w", userID, err)
	}
	if err := r.store.RevokeTokens(ctx, userID, at); err != nil {
		return fmt.Errorf("cache: revoke tokens of %s: %w", userID, err)
	}
	return nil
}

func (r *Revocations) set(ctx context.Context, userID string, at int64, force bool) error {
	f := "0"
	if force {
		f = "1"
	}
	return r.raise.Run(ctx, r.rdb, []string{r.prefix + userID},
		strconv.FormatInt(at, 10), strconv.FormatInt(r.ttl.Milliseconds(), 10), f).Err()
}
