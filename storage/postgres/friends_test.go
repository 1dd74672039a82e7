package postgres_test

import (
	"testing"

	"github.com/sandcat-im/sandcat/storage/postgres/pgtest"
	"github.com/sandcat-im/sandcat/storage/storagetest"
)

func TestFriends(t *testing.T) {
	s := pgtest.Open(t)
	storagetest.Friends(t, s, func(t *testing.T, u storagetest.FriendsUser) {
		t.Helper()
		if _, err := s.Pool().Exec(t.Context(), `INSERT INTO users
			(id, name, account, password, salt, signature, avatar, gender, age, email, region, create_time, update_time, is_delete)
			VALUES ($1, $2, $3, '', '', $4, $5, $6, $7, $8, $9, 1, 1, $10)`,
			u.ID, u.Name, u.Account, u.Signature, u.Avatar, u.Gender, u.Age, u.Email, u.Region, u.Deleted); err != nil {
			t.Fatalf("seed user: %v", err)
		}
	})
}
