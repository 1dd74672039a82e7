package sqlite_test

import (
	"testing"

	"github.com/sandcat-im/sandcat/storage/blob/cleanup"
	"github.com/sandcat-im/sandcat/storage/blob/cleanup/cleanuptest"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

var _ cleanup.Referenced = (*sqlite.Store)(nil)

func TestReferencedFiles(t *testing.T) {
	s := sqlite.OpenTest(t)
	cleanuptest.Referenced(t, cleanuptest.Fixture{Refs: s, Users: s, Groups: s, History: s.History(), Inbox: s.Inbox()})
}
