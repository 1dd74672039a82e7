package postgres_test

import (
	"testing"

	"github.com/sandcat-im/sandcat/storage/postgres/pgtest"
	"github.com/sandcat-im/sandcat/storage/storagetest"
)

func TestSeqCeilings(t *testing.T) {
	storagetest.SeqCeilings(t, pgtest.Open(t).SeqCeilings())
}
