package cache_test

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/sandcat-im/sandcat/im/auth"
	"github.com/sandcat-im/sandcat/im/cache"
	"github.com/sandcat-im/sandcat/im/cache/redistest"
	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

var _ auth.Revocations = (*cache.Revocations)(nil)

// revStore wraps the real users store: it counts reads and can hold one.
type revStore struct {
	cache.RevocationStore
	reads atomic.Int64
	mu    sync.Mutex
	hold  chan struct{}
	held  chan struct{}
}

func (s *revStore) TokensRevokedAt(ctx context.Context, userID string) (int64, error) {
	s.reads.Add(1)
	at, err := s.RevocationStore.TokensRevokedAt(ctx, userID)
	s.mu.Lock()
	hold, held := s.hold, s.held
	s.hold, s.held = nil, nil
	s.mu.Unlock()
	if hold != nil {
		close(held)
		<-hold
	}
	return at, err
}

func newUser(t *testing.T, st *sqlite.Store) string {
	t.Helper()
	id := ids.New()
	if err := st.CreateUser(context.Background(), &storage.User{ID: id, Name: "n", Account: id, Password: "x", Salt: "x", Avatar: "a.png", Gender: "male"}, 0); err != nil {
		t.Fatal(err)
	}
	return id
}

func revokedAt(t *testing.T, r auth.Revocations, u string) int64 {
	t.Helper()
	at, err := r.TokensRevokedAt(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	return at
}

func TestRevocations(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t)
	st := sqlite.OpenTest(t)
	src := &revStore{RevocationStore: st}
	r := cache.NewRevocations(rdb, src, cache.RevocationsOptions{Prefix: prefix, TTL: time.Hour})
	u := newUser(t, st)
	tests := []struct {
		name      string
		do        func() error
		want      int64
		wantReads int64
	}{
		{"never revoked: read once", func() error { return nil }, 0, 1},
		{"cached", func() error { return nil }, 0, 1},
		{"revoked", func() error { return r.RevokeTokens(ctx, u, 100) }, 100, 1},
		{"revoked again", func() error { return r.RevokeTokens(ctx, u, 200) }, 200, 1},
		{"cache lost: read again", func() error { return rdb.Del(ctx, prefix+"revoked_at:"+u).Err() }, 200, 2},
	}
	for _, tc := range tests {
		if err := tc.do(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got := revokedAt(t, r, u); got != tc.want {
			t.Fatalf("%s: TokensRevokedAt = %d, want %d", tc.name, got, tc.want)
		}
		if got := revokedAt(t, st, u); got != tc.want {
			t.Fatalf("%s: stored mark = %d, want %d", tc.name, got, tc.want)
		}
		if n := src.reads.Load(); n != tc.wantReads {
			t.Fatalf("%s: %d store reads, want %d", tc.name, n, tc.wantReads)
		}
	}
	// another process sees the cached mark
	other := cache.NewRevocations(rdb, src, cache.RevocationsOptions{Prefix: prefix})
	if got := revokedAt(t, other, u); got != 200 || src.reads.Load() != 2 {
		t.Fatalf("other process: %d (%d reads), want 200 from the cache", got, src.reads.Load())
	}
	if d, err := rdb.PTTL(ctx, prefix+"revoked_at:"+u).Result(); err != nil || d <= 0 || d > time.Hour {
		t.Fatalf("PTTL = %v, %v", d, err)
	}
}

// A lookup that read the store before a revocation cannot put the older
// mark back into the cache.
func TestRevocationsLookupRacingRevoke(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t)
	st := sqlite.OpenTest(t)
	src := &revStore{RevocationStore: st}
	r := cache.NewRevocations(rdb, src, cache.RevocationsOptions{Prefix: prefix})
	u := newUser(t, st)
	src.mu.Lock()
	src.hold, src.held = make(chan struct{}), make(chan struct{})
	hold, held := src.hold, src.held
	src.mu.Unlock()
	done := make(chan int64)
	go func() {
		at, _ := r.TokensRevokedAt(ctx, u)
		done <- at
	}()
	<-held // the lookup read 0
	if err := r.RevokeTokens(ctx, u, 300); err != nil {
		t.Fatal(err)
	}
	close(hold)
	<-done
	if got := revokedAt(t, r, u); got != 300 {
		t.Fatalf("TokensRevokedAt after the race = %d, want 300", got)
	}
}

// Redis down: lookups read the store; a revocation fails before the store
// is written (the cache must never be less strict than the store).
func TestRevocationsRedisDown(t *testing.T) {
	ctx := context.Background()
	st := sqlite.OpenTest(t)
	u := newUser(t, st)
	if err := st.RevokeTokens(ctx, u, 50); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	rdb := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})
	t.Cleanup(func() { _ = rdb.Close() })
	r := cache.NewRevocations(rdb, st, cache.RevocationsOptions{Prefix: redistest.Prefix()})
	if got := revokedAt(t, r, u); got != 50 {
		t.Fatalf("TokensRevokedAt with Redis down = %d, want 50 from the store", got)
	}
	if err := r.RevokeTokens(ctx, u, 60); err == nil {
		t.Fatal("RevokeTokens succeeded with Redis down")
	}
	if got := revokedAt(t, st, u); got != 50 {
		t.Fatalf("stored mark = %d, want 50 (untouched)", got)
	}
}

// With auth.Tokens: a logout revokes the tokens in every process at once.
func TestRevocationsWithTokens(t *testing.T) {
	ctx := context.Background()
	rdb, prefix := redistest.Client(t)
	st := sqlite.OpenTest(t)
	u := newUser(t, st)
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	api, err := auth.NewTokens([]byte("secret"), cache.NewRevocations(rdb, st, cache.RevocationsOptions{Prefix: prefix}), clock)
	if err != nil {
		t.Fatal(err)
	}
	gateway, err := auth.NewTokens([]byte("secret"), cache.NewRevocations(rdb, st, cache.RevocationsOptions{Prefix: prefix}), clock)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := api.Issue(ctx, u, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := gateway.Verify(ctx, tok); err != nil || got != u {
		t.Fatalf("Verify = %q, %v", got, err)
	}
	if err := api.Revoke(ctx, u); err != nil {
		t.Fatal(err)
	}
	if _, err := gateway.Verify(ctx, tok); !errors.Is(err, auth.ErrRevoked) {
		t.Fatalf("Verify after logout: %v, want ErrRevoked", err)
	}
	fresh, err := api.Issue(ctx, u, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gateway.Verify(ctx, fresh); err != nil {
		t.Fatalf("Verify of a token issued after the logout: %v", err)
	}
}
