package sqlite

import (
	"context"
	"path/filepath"
	"testing"
)

// OpenTest returns a migrated store in a temporary file, closed at cleanup.
func OpenTest(t testing.TB) *Store {
	t.Helper()
	s, err := Open(context.Background(), filepath.Join(t.TempDir(), "sandcat.db"))
	if err != nil {
		t.Fatalf("sqlite: open test store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
