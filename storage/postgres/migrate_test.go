package postgres_test

import (
	"context"
	"testing"

	"github.com/sandcat-im/sandcat/storage/postgres"
	"github.com/sandcat-im/sandcat/storage/postgres/pgtest"
)

func TestMigrateTwiceIsNoop(t *testing.T) {
	s := pgtest.Open(t)
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatalf("second migrate: %v", err)
	}
	for _, table := range []string{"users", "friends", "friendships", "messages", "groups", "group_members", "sequence"} {
		var n int
		if err := s.Pool().QueryRow(context.Background(),
			`SELECT count(*) FROM pg_tables WHERE schemaname='public' AND tablename=$1`, table).Scan(&n); err != nil || n != 1 {
			t.Errorf("table %s: n=%d err=%v", table, n, err)
		}
	}
	var parts int
	if err := s.Pool().QueryRow(context.Background(),
		`SELECT count(*) FROM pg_inherits WHERE inhparent = 'messages'::regclass`).Scan(&parts); err != nil || parts < 52 {
		t.Errorf("messages partitions: %d, %v", parts, err)
	}
}

// An existing database of the original server (tables created by its sqlx
// migrations, no sandcat_migrations table) must migrate without error.
func TestMigrateOverOriginalSchema(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	first, err := postgres.Open(ctx, url, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := first.Pool().Exec(ctx, `DROP TABLE sandcat_migrations`); err != nil {
		t.Fatal(err)
	}
	_ = first.Close()
	again, err := postgres.Open(ctx, url, 2)
	if err != nil {
		t.Fatalf("migrate over existing tables: %v", err)
	}
	_ = again.Close()
}
