package auth

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Key kinds of RedisCodes.
const (
	KindRegisterCode = "register_code" // e-mail verification codes (sandcat-wire.md §6)
	KindOAuthState   = "oauth_state"   // OAuth2 state values
)

// RedisCodes is Codes in Redis: the code of key lives at `<prefix><kind>:<key>`
// (SET ... EX ttl), the count of wrong attempts at `<prefix><kind>_tries:<key>`
// with the same expiry.
type RedisCodes struct {
	rdb         redis.UniversalClient
	prefix      string // <prefix><kind>
	maxAttempts int
	verify      *redis.Script
}

var _ Codes = (*RedisCodes)(nil)

// NewRedisCodes returns Codes stored under prefix+kind (kind is KindRegisterCode or KindOAuthState).
func NewRedisCodes(rdb redis.UniversalClient, prefix, kind string) *RedisCodes {
	return &RedisCodes{rdb: rdb, prefix: prefix + kind, maxAttempts: DefaultMaxAttempts, verify: redis.NewScript(verifyScript)}
}

func (c *RedisCodes) codeKey(key string) string  { return c.prefix + ":" + key }
func (c *RedisCodes) triesKey(key string) string { return c.prefix + "_tries:" + key }

// Put implements Codes.
func (c *RedisCodes) Put(ctx context.Context, key, code string, ttl time.Duration) error {
	if ttl <= 0 {
		return fmt.Errorf("auth: put code: ttl %v", ttl)
	}
	_, err := c.rdb.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Set(ctx, c.codeKey(key), code, ttl)
		p.Del(ctx, c.triesKey(key))
		return nil
	})
	if err != nil {
		return fmt.Errorf("auth: put code: %w", err)
	}
	return nil
}

// verifyScript: KEYS = code key, tries key; ARGV = code, take (1|0), max attempts.
// Returns 1 on a match, 0 when no code is stored, -1 on a wrong code.
const verifyScript = `
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if v == ARGV[1] then
  if ARGV[2] == '1' then redis.call('DEL', KEYS[1], KEYS[2]) end
  return 1
end
local n = redis.call('INCR', KEYS[2])
if n == 1 then
  local ttl = redis.call('PTTL', KEYS[1])
  if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
end
if n >= tonumber(ARGV[3]) then redis.call('DEL', KEYS[1], KEYS[2]) end
return -1
`

// Check implements Codes.
func (c *RedisCodes) Check(ctx context.Context, key, code string) error {
	return c.run(ctx, key, code, false)
}

// Take implements Codes.
func (c *RedisCodes) Take(ctx context.Context, key, code string) error {
	return c.run(ctx, key, code, true)
}

func (c *RedisCodes) run(ctx context.Context, key, code string, take bool) error {
	t := "0"
	if take {
		t = "1"
	}
	r, err := c.verify.Run(ctx, c.rdb, []string{c.codeKey(key), c.triesKey(key)},
		code, t, strconv.Itoa(c.maxAttempts)).Int()
	if err != nil {
		return fmt.Errorf("auth: verify code: %w", err)
	}
	switch r {
	case 1:
		return nil
	case 0:
		return ErrCodeExpired
	default:
		return ErrCodeInvalid
	}
}
