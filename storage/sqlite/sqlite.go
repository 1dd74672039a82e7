// Package sqlite is the embedded implementation of Sandcat's relational
// stores, on pure-Go SQLite (modernc.org/sqlite): no server, one file.
package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/sandcat-im/sandcat/migrations"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Store holds the SQLite database. Its methods implement the storage interfaces.
type Store struct {
	db   *sql.DB
	bulk *bulkStmts // prepared multi-row INSERTs of the inbox and the history
}

// Open opens (creating if needed) the database file at path and applies the
// migrations. path ":memory:" is not supported (every connection would see
// another database); tests use a temporary file.
func Open(ctx context.Context, path string) (*Store, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("sqlite: create %s: %w", dir, err)
		}
	}
	dsn := "file:" + path + "?_txlock=immediate" +
		"&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)" +
		"&_pragma=foreign_keys(1)&_pragma=temp_store(MEMORY)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetConnMaxIdleTime(time.Minute)
	s := &Store{db: db}
	if err := s.Migrate(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	if s.bulk, err = prepareBulk(ctx, db); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// DB exposes the handle for stores that live beside this one in the same file.
func (s *Store) DB() *sql.DB { return s.db }

// Close closes the database.
func (s *Store) Close() error {
	s.bulk.close()
	return s.db.Close()
}

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.db.PingContext(ctx) }

// Migrate applies the migrations not applied yet, each in its own transaction.
func (s *Store) Migrate(ctx context.Context) error {
	files, err := migrations.Files(migrations.SQLite)
	if err != nil {
		return err
	}
	if _, err := s.db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS sandcat_migrations (
		version TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite: create migrations table: %w", err)
	}
	for _, f := range files {
		if err := s.apply(ctx, f); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) apply(ctx context.Context, f migrations.File) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", f.Version, err)
	}
	defer func() { _ = tx.Rollback() }()
	var n int
	if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM sandcat_migrations WHERE version = ?`, f.Version).Scan(&n); err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", f.Version, err)
	}
	if n > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, f.SQL); err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", f.Version, err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO sandcat_migrations (version, applied_at) VALUES (?, ?)`,
		f.Version, time.Now().UnixMilli()); err != nil {
		return fmt.Errorf("sqlite: migrate %s: %w", f.Version, err)
	}
	return tx.Commit()
}
