package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// codesSuite runs the Codes contract; expire makes every stored code expire.
func codesSuite(t *testing.T, c Codes, expire func()) {
	ctx := context.Background()
	type step struct {
		op      string // put, check, take, expire
		key     string
		code    string
		wantErr error
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"missing", []step{{"check", "a@x", "123456", ErrCodeExpired}, {"take", "a@x", "123456", ErrCodeExpired}}},
		{"check does not consume, take does", []step{
			{"put", "a@x", "111111", nil},
			{"check", "a@x", "111111", nil},
			{"check", "a@x", "111111", nil},
			{"take", "a@x", "111111", nil},
			{"take", "a@x", "111111", ErrCodeExpired},
		}},
		{"wrong code keeps the right one", []step{
			{"put", "a@x", "111111", nil},
			{"take", "a@x", "222222", ErrCodeInvalid},
			{"check", "a@x", "", ErrCodeInvalid},
			{"take", "a@x", "111111", nil},
		}},
		{"one key per e-mail", []step{
			{"put", "a@x", "111111", nil},
			{"put", "b@x", "222222", nil},
			{"take", "a@x", "222222", ErrCodeInvalid},
			{"take", "b@x", "222222", nil},
			{"take", "a@x", "111111", nil},
		}},
		{"put replaces", []step{
			{"put", "a@x", "111111", nil},
			{"put", "a@x", "333333", nil},
			{"take", "a@x", "111111", ErrCodeInvalid},
			{"take", "a@x", "333333", nil},
		}},
		{"too many wrong attempts burn the code", []step{
			{"put", "a@x", "111111", nil},
			{"take", "a@x", "000001", ErrCodeInvalid},
			{"take", "a@x", "000002", ErrCodeInvalid},
			{"check", "a@x", "000003", ErrCodeInvalid},
			{"take", "a@x", "000004", ErrCodeInvalid},
			{"take", "a@x", "000005", ErrCodeInvalid},
			{"take", "a@x", "111111", ErrCodeExpired},
		}},
		{"a new code resets the attempts", []step{
			{"put", "a@x", "111111", nil},
			{"take", "a@x", "000001", ErrCodeInvalid},
			{"take", "a@x", "000002", ErrCodeInvalid},
			{"take", "a@x", "000003", ErrCodeInvalid},
			{"take", "a@x", "000004", ErrCodeInvalid},
			{"put", "a@x", "111111", nil},
			{"take", "a@x", "000005", ErrCodeInvalid},
			{"take", "a@x", "111111", nil},
		}},
		{"expired", []step{
			{"put", "a@x", "111111", nil},
			{"expire", "", "", nil},
			{"check", "a@x", "111111", ErrCodeExpired},
			{"take", "a@x", "111111", ErrCodeExpired},
		}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			suffix := "#" + strconv.Itoa(i) // keys unique per case
			for j, s := range tc.steps {
				var err error
				switch s.op {
				case "put":
					err = c.Put(ctx, s.key+suffix, s.code, 5*time.Minute)
				case "check":
					err = c.Check(ctx, s.key+suffix, s.code)
				case "take":
					err = c.Take(ctx, s.key+suffix, s.code)
				case "expire":
					expire()
				}
				if !errors.Is(err, s.wantErr) {
					t.Fatalf("step %d %s(%s, %s) = %v, want %v", j, s.op, s.key, s.code, err, s.wantErr)
				}
			}
		})
	}
	if err := c.Put(ctx, "z", "1", 0); err == nil {
		t.Fatal("Put with ttl 0 accepted")
	}
}

func TestMemoryCodes(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	c := NewMemoryCodes(func() time.Time { return now })
	codesSuite(t, c, func() { now = now.Add(5*time.Minute + time.Second) })

	// Each key has its own TTL (bug B8): a later Put does not extend an earlier one.
	ctx := context.Background()
	_ = c.Put(ctx, "first", "1", 5*time.Minute)
	now = now.Add(4 * time.Minute)
	_ = c.Put(ctx, "second", "2", 5*time.Minute)
	now = now.Add(90 * time.Second)
	if err := c.Check(ctx, "first", "1"); !errors.Is(err, ErrCodeExpired) {
		t.Fatalf("first after 5m30s: %v", err)
	}
	if err := c.Check(ctx, "second", "2"); err != nil {
		t.Fatalf("second after 1m30s: %v", err)
	}
	// Expired entries are swept from memory.
	now = now.Add(time.Hour)
	_ = c.Put(ctx, "third", "3", time.Minute)
	c.mu.Lock()
	n := len(c.codes)
	c.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d codes kept after sweep, want 1", n)
	}
}

func newRedis(t *testing.T) (*redis.Client, string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redis at 127.0.0.1:6379: %v (Redis must run for these tests)", err)
	}
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "sandcat_test_" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		ctx := context.Background()
		keys, _ := rdb.Keys(ctx, prefix+"*").Result()
		if len(keys) > 0 {
			_ = rdb.Del(ctx, keys...).Err()
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

func TestRedisCodes(t *testing.T) {
	rdb, prefix := newRedis(t)
	c := NewRedisCodes(rdb, prefix, KindRegisterCode)
	codesSuite(t, c, func() {
		ctx := context.Background()
		keys, err := rdb.Keys(ctx, prefix+"*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys { // as if the TTL had run out
			_ = rdb.Del(ctx, k).Err()
		}
	})
}

func TestRedisCodesKeysAndTTL(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := newRedis(t)
	c := NewRedisCodes(rdb, prefix, KindRegisterCode)
	if err := c.Put(ctx, "a@example.com", "123456", 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	key := prefix + "register_code:a@example.com"
	if v, err := rdb.Get(ctx, key).Result(); err != nil || v != "123456" {
		t.Fatalf("GET %s = %q, %v", key, v, err)
	}
	if ttl, err := rdb.TTL(ctx, key).Result(); err != nil || ttl <= 4*time.Minute || ttl > 5*time.Minute {
		t.Fatalf("TTL %s = %v, %v", key, ttl, err)
	}
	_ = c.Check(ctx, "a@example.com", "000000")
	tries := prefix + "register_code_tries:a@example.com"
	if ttl, err := rdb.PTTL(ctx, tries).Result(); err != nil || ttl <= 0 || ttl > 5*time.Minute {
		t.Fatalf("PTTL %s = %v, %v (the attempts counter must expire with the code)", tries, ttl, err)
	}
	// Another key does not extend this one (bug B8).
	if err := c.Put(ctx, "b@example.com", "1", time.Hour); err != nil {
		t.Fatal(err)
	}
	if ttl, _ := rdb.TTL(ctx, key).Result(); ttl > 5*time.Minute {
		t.Fatalf("TTL of a@ grew to %v", ttl)
	}
	// A really short TTL runs out in Redis itself.
	if err := c.Put(ctx, "short@example.com", "9", 20*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c.Check(ctx, "short@example.com", "9") == nil {
		if time.Now().After(deadline) {
			t.Fatal("code with a 20 ms TTL still valid after 10 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := c.Check(ctx, "short@example.com", "9"); !errors.Is(err, ErrCodeExpired) {
		t.Fatalf("after expiry: %v", err)
	}
	// OAuth states live in their own namespace.
	s := NewRedisCodes(rdb, prefix, KindOAuthState)
	if err := s.Put(ctx, "st", "github", time.Minute); err != nil {
		t.Fatal(err)
	}
	if n, _ := rdb.Exists(ctx, prefix+"oauth_state:st").Result(); n != 1 {
		t.Fatal("state key missing")
	}
}

func TestNewCode(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		c, err := NewCode()
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.Atoi(c)
		if err != nil || len(c) != 6 || n < 100000 || n > 999999 {
			t.Fatalf("code %q", c)
		}
		seen[c] = true
	}
	if len(seen) < 1900 {
		t.Fatalf("only %d distinct codes in 2000", len(seen))
	}
}
