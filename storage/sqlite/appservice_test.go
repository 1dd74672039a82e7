package sqlite_test

import (
	"testing"

	"github.com/sandcat-im/sandcat/storage/sqlite"
	"github.com/sandcat-im/sandcat/storage/storagetest"
)

func TestAppservice(t *testing.T) {
	storagetest.Appservice(t, sqlite.OpenTest(t).Appservice())
}

func TestAppserviceStalePuppets(t *testing.T) {
	st := sqlite.OpenTest(t)
	storagetest.AppserviceStalePuppets(t, st.Appservice(), st)
}
