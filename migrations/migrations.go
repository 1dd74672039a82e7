// Package migrations embeds the schema of every SQL dialect Sandcat runs on.
// Each dialect has its own folder of forward-only files applied in name order;
// the PostgreSQL set starts with the original server's tables (same names and
// columns) written idempotently, so an existing database keeps working.
package migrations

import (
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strings"
)

//go:embed postgres/*.sql sqlite/*.sql
var files embed.FS

// Dialects served by this package.
const (
	Postgres = "postgres"
	SQLite   = "sqlite"
)

// File is one migration: Version is the file name without ".sql".
type File struct {
	Version string
	SQL     string
}

// Files returns the migrations of a dialect in the order they apply.
func Files(dialect string) ([]File, error) {
	if dialect != Postgres && dialect != SQLite {
		return nil, fmt.Errorf("migrations: unknown dialect %q", dialect)
	}
	entries, err := fs.ReadDir(files, dialect)
	if err != nil {
		return nil, fmt.Errorf("migrations: read %s: %w", dialect, err)
	}
	out := make([]File, 0, len(entries))
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		b, err := fs.ReadFile(files, dialect+"/"+e.Name())
		if err != nil {
			return nil, fmt.Errorf("migrations: read %s: %w", e.Name(), err)
		}
		out = append(out, File{Version: strings.TrimSuffix(e.Name(), ".sql"), SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	return out, nil
}
