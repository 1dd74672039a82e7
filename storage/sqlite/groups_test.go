package sqlite_test

import (
	"context"
	"testing"

	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage/sqlite"
	"github.com/sandcat-im/sandcat/storage/storagetest"
)

// seedGroupUsers inserts users rows as storagetest.GroupUserFor describes.
func seedGroupUsers(s *sqlite.Store) func(t *testing.T, ids ...string) {
	return func(t *testing.T, ids ...string) {
		t.Helper()
		for _, id := range ids {
			u := storagetest.GroupUserFor(id)
			if _, err := s.DB().ExecContext(context.Background(), `INSERT INTO users
				(id, name, account, password, salt, signature, avatar, gender, age, region, create_time, update_time)
				VALUES (?, ?, ?, 'x', 'x', ?, ?, ?, ?, ?, 1, 1)`,
				u.ID, u.Name, u.Account, u.Signature, u.Avatar, u.Gender, u.Age, u.Region); err != nil {
				t.Fatalf("seed user %s: %v", id, err)
			}
		}
	}
}

func TestGroups(t *testing.T) {
	s := sqlite.OpenTest(t)
	storagetest.Groups(t, s, seedGroupUsers(s))
}

func TestGroupsSkipDeletedUsers(t *testing.T) {
	ctx := context.Background()
	s := sqlite.OpenTest(t)
	seedGroupUsers(s)(t, "owner", "alive", "gone")
	if _, err := s.DB().ExecContext(ctx, `UPDATE users SET is_delete = 1 WHERE id = 'gone'`); err != nil {
		t.Fatal(err)
	}
	_, m, err := s.CreateGroup(ctx, wireInfo("g1", "owner"), []string{"alive", "gone"})
	if err != nil || len(m) != 2 {
		t.Fatalf("CreateGroup = %d members, %v; want owner and alive", len(m), err)
	}
	added, err := s.AddGroupMembers(ctx, "g1", []string{"gone"})
	if err != nil || len(added) != 0 {
		t.Fatalf("AddGroupMembers(deleted) = %v, %v; want none", added, err)
	}
}

func wireInfo(id, owner string) wire.GroupInfo {
	return wire.GroupInfo{ID: id, Owner: owner, Name: "n", Avatar: "a"}
}
