package postgres_test

import (
	"context"
	"testing"

	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage/postgres"
	"github.com/sandcat-im/sandcat/storage/postgres/pgtest"
	"github.com/sandcat-im/sandcat/storage/storagetest"
)

// seedGroupUsers inserts users rows as storagetest.GroupUserFor describes.
func seedGroupUsers(s *postgres.Store) func(t *testing.T, ids ...string) {
	return func(t *testing.T, ids ...string) {
		t.Helper()
		for _, id := range ids {
			u := storagetest.GroupUserFor(id)
			if _, err := s.Pool().Exec(context.Background(), `INSERT INTO users
				(id, name, account, password, salt, signature, avatar, gender, age, region, create_time, update_time)
				VALUES ($1, $2, $3, 'x', 'x', $4, $5, $6, $7, $8, 1, 1)`,
				u.ID, u.Name, u.Account, u.Signature, u.Avatar, u.Gender, u.Age, u.Region); err != nil {
				t.Fatalf("seed user %s: %v", id, err)
			}
		}
	}
}

func TestGroups(t *testing.T) {
	s := pgtest.Open(t)
	storagetest.Groups(t, s, seedGroupUsers(s))
}

func TestGroupsSkipDeletedUsers(t *testing.T) {
	ctx := context.Background()
	s := pgtest.Open(t)
	seedGroupUsers(s)(t, "owner", "alive", "gone")
	if _, err := s.Pool().Exec(ctx, `UPDATE users SET is_delete = true WHERE id = 'gone'`); err != nil {
		t.Fatal(err)
	}
	_, m, err := s.CreateGroup(ctx, wire.GroupInfo{ID: "g1", Owner: "owner", Name: "n", Avatar: "a"}, []string{"alive", "gone"})
	if err != nil || len(m) != 2 {
		t.Fatalf("CreateGroup = %d members, %v; want owner and alive", len(m), err)
	}
	added, err := s.AddGroupMembers(ctx, "g1", []string{"gone"})
	if err != nil || len(added) != 0 {
		t.Fatalf("AddGroupMembers(deleted) = %v, %v; want none", added, err)
	}
}
