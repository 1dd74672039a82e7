package postgres_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/postgres/pgtest"
	"github.com/sandcat-im/sandcat/storage/storagetest"
)

func TestUsers(t *testing.T) {
	storagetest.Users(t, pgtest.Open(t))
}

func TestUsersSoftDeleted(t *testing.T) {
	s := pgtest.Open(t)
	storagetest.UsersSoftDeleted(t, s, func(t *testing.T, id string) {
		if _, err := s.Pool().Exec(context.Background(), `UPDATE users SET is_delete = TRUE WHERE id = $1`, id); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCreateUserInsertsSequenceRow(t *testing.T) {
	ctx := context.Background()
	s := pgtest.Open(t)
	id := ids.New()
	if err := s.CreateUser(ctx, &storage.User{ID: id, Account: id, Name: "n"}, 10000); err != nil {
		t.Fatal(err)
	}
	var send, rec int64
	if err := s.Pool().QueryRow(ctx, `SELECT send_max_seq, rec_max_seq FROM sequence WHERE user_id = $1`, id).Scan(&send, &rec); err != nil {
		t.Fatal(err)
	}
	if send != 10000 || rec != 10000 {
		t.Fatalf("sequence = %d/%d, want 10000/10000", send, rec)
	}
}

// Concurrent registrations of one e-mail: exactly one wins (the advisory lock
// makes the check-then-insert atomic without a unique index).
func TestCreateUserConcurrentSameEmail(t *testing.T) {
	ctx := context.Background()
	s := pgtest.Open(t)
	email := ids.New() + "@example.com"
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := ids.New()
			errs[i] = s.CreateUser(ctx, &storage.User{ID: id, Account: id, Name: "c", Email: &email}, 100)
		}()
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, storage.ErrConflict):
			t.Fatalf("unexpected error: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d registrations succeeded, want 1", ok)
	}
}
