package postgres_test

import (
	"testing"

	"github.com/sandcat-im/sandcat/storage/postgres/pgtest"
	"github.com/sandcat-im/sandcat/storage/storagetest"
)

func TestAppservice(t *testing.T) {
	storagetest.Appservice(t, pgtest.Open(t).Appservice())
}

func TestAppserviceStalePuppets(t *testing.T) {
	st := pgtest.Open(t)
	storagetest.AppserviceStalePuppets(t, st.Appservice(), st)
}
