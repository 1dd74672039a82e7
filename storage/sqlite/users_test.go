package sqlite_test

import (
	"context"
	"testing"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/sqlite"
	"github.com/sandcat-im/sandcat/storage/storagetest"
)

func TestUsers(t *testing.T) {
	storagetest.Users(t, sqlite.OpenTest(t))
}

func TestUsersSoftDeleted(t *testing.T) {
	s := sqlite.OpenTest(t)
	storagetest.UsersSoftDeleted(t, s, func(t *testing.T, id string) {
		if _, err := s.DB().Exec(`UPDATE users SET is_delete = 1 WHERE id = ?`, id); err != nil {
			t.Fatal(err)
		}
	})
}

func TestCreateUserInsertsSequenceRow(t *testing.T) {
	s := sqlite.OpenTest(t)
	id := ids.New()
	if err := s.CreateUser(context.Background(), &storage.User{ID: id, Account: id, Name: "n"}, 10000); err != nil {
		t.Fatal(err)
	}
	var send, rec int64
	if err := s.DB().QueryRow(`SELECT send_max_seq, rec_max_seq FROM sequence WHERE user_id = ?`, id).Scan(&send, &rec); err != nil {
		t.Fatal(err)
	}
	if send != 10000 || rec != 10000 {
		t.Fatalf("sequence = %d/%d, want 10000/10000", send, rec)
	}
	// A failed creation leaves no sequence row behind.
	id2 := ids.New()
	if err := s.CreateUser(context.Background(), &storage.User{ID: id2, Account: id, Name: "dup"}, 10000); err != storage.ErrConflict {
		t.Fatalf("duplicate account: %v", err)
	}
	var n int
	if err := s.DB().QueryRow(`SELECT count(*) FROM sequence WHERE user_id = ?`, id2).Scan(&n); err != nil || n != 0 {
		t.Fatalf("sequence rows of rejected user: %d, %v", n, err)
	}
}
