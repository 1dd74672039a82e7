package sqlite_test

import (
	"testing"

	"github.com/sandcat-im/sandcat/storage/sqlite"
	"github.com/sandcat-im/sandcat/storage/storagetest"
)

func TestFriends(t *testing.T) {
	s := sqlite.OpenTest(t)
	storagetest.Friends(t, s, func(t *testing.T, u storagetest.FriendsUser) {
		t.Helper()
		if _, err := s.DB().ExecContext(t.Context(), `INSERT INTO users
			(id, name, account, password, salt, signature, avatar, gender, age, email, region, create_time, update_time, is_delete)
			VALUES (?, ?, ?, '', '', ?, ?, ?, ?, ?, ?, 1, 1, ?)`,
			u.ID, u.Name, u.Account, u.Signature, u.Avatar, u.Gender, u.Age, u.Email, u.Region, u.Deleted); err != nil {
			t.Fatalf("seed user: %v", err)
		}
	})
}
