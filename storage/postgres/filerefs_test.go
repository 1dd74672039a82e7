package postgres_test

import (
	"testing"

	"github.com/sandcat-im/sandcat/storage/blob/cleanup"
	"github.com/sandcat-im/sandcat/storage/blob/cleanup/cleanuptest"
	"github.com/sandcat-im/sandcat/storage/postgres"
	"github.com/sandcat-im/sandcat/storage/postgres/pgtest"
)

var _ cleanup.Referenced = (*postgres.Store)(nil)

func TestReferencedFiles(t *testing.T) {
	s := pgtest.Open(t)
	cleanuptest.Referenced(t, cleanuptest.Fixture{Refs: s, Users: s, Groups: s, History: s.History()})
}
