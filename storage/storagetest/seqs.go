package storagetest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/storage"
)

// SeqCeilings is the conformance suite of storage.SeqCeilings. The store must
// not hold rows of the ids the suite makes up (fresh nanoids).
func SeqCeilings(t *testing.T, s storage.SeqCeilings) {
	ctx := context.Background()
	get := func(t *testing.T, id string) (int64, int64) {
		t.Helper()
		send, recv, err := s.Get(ctx, id)
		if err != nil {
			t.Fatalf("Get(%s): %v", id, err)
		}
		return send, recv
	}
	raise := func(t *testing.T, kind storage.SeqKind, users []string, by int64) []int64 {
		t.Helper()
		got, err := s.Raise(ctx, kind, users, by)
		if err != nil {
			t.Fatalf("Raise(%s, %d users, %d): %v", kind, len(users), by, err)
		}
		if len(got) != len(users) {
			t.Fatalf("Raise(%s, %d users): %d ceilings", kind, len(users), len(got))
		}
		return got
	}

	t.Run("UnknownUserIsZero", func(t *testing.T) {
		if send, recv := get(t, ids.New()); send != 0 || recv != 0 {
			t.Fatalf("unknown user: send=%d recv=%d, want 0 0", send, recv)
		}
	})

	t.Run("RaiseCreatesAndAdds", func(t *testing.T) {
		a, b := ids.New(), ids.New()
		tests := []struct {
			kind  storage.SeqKind
			users []string
			by    int64
			want  []int64
		}{
			{storage.SeqSend, []string{a}, 10, []int64{10}},
			{storage.SeqRecv, []string{a, b}, 5, []int64{5, 5}},
			{storage.SeqRecv, []string{b, a}, 7, []int64{12, 12}},
			{storage.SeqSend, []string{b, a}, 3, []int64{3, 13}},
			{storage.SeqRecv, []string{b}, 1, []int64{13}},
		}
		for i, tc := range tests {
			if got := raise(t, tc.kind, tc.users, tc.by); !slices.Equal(got, tc.want) {
				t.Fatalf("step %d: Raise(%s, %v, %d) = %v, want %v", i, tc.kind, tc.users, tc.by, got, tc.want)
			}
		}
		if send, recv := get(t, a); send != 13 || recv != 12 {
			t.Fatalf("a: send=%d recv=%d, want 13 12", send, recv)
		}
		if send, recv := get(t, b); send != 3 || recv != 13 {
			t.Fatalf("b: send=%d recv=%d, want 3 13", send, recv)
		}
	})

	t.Run("ManyUsersInArgumentOrder", func(t *testing.T) {
		users := make([]string, 1203)
		for i := range users {
			users[i] = ids.New()
		}
		// every third user already has a ceiling of 100 + its index
		for i := 0; i < len(users); i += 3 {
			raise(t, storage.SeqRecv, []string{users[i]}, int64(100+i))
		}
		got := raise(t, storage.SeqRecv, users, 50)
		for i, v := range got {
			want := int64(50)
			if i%3 == 0 {
				want += int64(100 + i)
			}
			if v != want {
				t.Fatalf("user %d: ceiling %d, want %d", i, v, want)
			}
		}
		if send, recv := get(t, users[len(users)-1]); send != 0 || recv != 50 {
			t.Fatalf("last user: send=%d recv=%d, want 0 50", send, recv)
		}
	})

	t.Run("DuplicateRaisedOnce", func(t *testing.T) {
		a, b := ids.New(), ids.New()
		got := raise(t, storage.SeqSend, []string{a, b, a}, 4)
		if !slices.Equal(got, []int64{4, 4, 4}) {
			t.Fatalf("Raise with a duplicate = %v, want [4 4 4]", got)
		}
		if send, _ := get(t, a); send != 4 {
			t.Fatalf("duplicate raised twice: send=%d", send)
		}
	})

	t.Run("EmptyAndInvalid", func(t *testing.T) {
		got, err := s.Raise(ctx, storage.SeqRecv, nil, 5)
		if err != nil || len(got) != 0 {
			t.Fatalf("Raise(no users) = %v, %v; want empty, nil", got, err)
		}
		a := ids.New()
		bad := []struct {
			name string
			kind storage.SeqKind
			by   int64
		}{
			{"zero by", storage.SeqRecv, 0},
			{"negative by", storage.SeqSend, -5},
			{"no kind", 0, 5},
			{"unknown kind", 9, 5},
		}
		for _, tc := range bad {
			if _, err := s.Raise(ctx, tc.kind, []string{a}, tc.by); err == nil {
				t.Errorf("%s: Raise succeeded", tc.name)
			}
		}
		if send, recv := get(t, a); send != 0 || recv != 0 {
			t.Fatalf("rejected raises changed the row: send=%d recv=%d", send, recv)
		}
	})

	t.Run("ConcurrentNeverRepeats", func(t *testing.T) {
		const workers, rounds = 12, 25
		shared, other := ids.New(), ids.New()
		var mu sync.Mutex
		seen := map[string]map[int64]bool{shared: {}, other: {}}
		var errs []error
		fail := func(err error) { mu.Lock(); errs = append(errs, err); mu.Unlock() }
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				own := ids.New()
				for r := range rounds {
					users := []string{shared, other, own}
					if (w+r)%2 == 1 { // overlapping sets in another order must not deadlock
						users = []string{own, other, shared}
					}
					got, err := s.Raise(ctx, storage.SeqRecv, users, 2)
					if err != nil {
						fail(fmt.Errorf("worker %d round %d: %w", w, r, err))
						return
					}
					mu.Lock()
					for i, u := range users {
						if u == own {
							if got[i] != int64(2*(r+1)) {
								errs = append(errs, fmt.Errorf("worker %d round %d: own ceiling %d, want %d", w, r, got[i], 2*(r+1)))
							}
							continue
						}
						if seen[u][got[i]] {
							errs = append(errs, fmt.Errorf("ceiling %d of %s returned twice", got[i], u))
						}
						seen[u][got[i]] = true
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		for _, err := range errs {
			t.Error(err)
		}
		for _, u := range []string{shared, other} {
			if n := len(seen[u]); n != workers*rounds {
				t.Errorf("%s: %d distinct ceilings, want %d", u, n, workers*rounds)
			}
			if _, recv := get(t, u); recv != 2*workers*rounds {
				t.Errorf("%s: final ceiling %d, want %d", u, recv, 2*workers*rounds)
			}
		}
	})
}
