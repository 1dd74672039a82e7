package sqlite_test

import (
	"context"
	"testing"

	"github.com/sandcat-im/sandcat/storage/sqlite"
)

func TestMigrateTwiceIsNoop(t *testing.T) {
	s := sqlite.OpenTest(t)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	for _, table := range []string{"users", "friends", "friendships", "messages", "groups", "group_members", "sequence"} {
		var n int
		if err := s.DB().QueryRow(`SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?`, table).Scan(&n); err != nil || n != 1 {
			t.Errorf("table %s: n=%d err=%v", table, n, err)
		}
	}
}
