package sqlite_test

import (
	"testing"

	"github.com/sandcat-im/sandcat/storage/sqlite"
	"github.com/sandcat-im/sandcat/storage/storagetest"
)

func TestSeqCeilings(t *testing.T) {
	storagetest.SeqCeilings(t, sqlite.OpenTest(t).SeqCeilings())
}
