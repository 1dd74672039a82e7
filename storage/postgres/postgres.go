// Package postgres is the production implementation of Sandcat's relational
// stores on PostgreSQL (pgx/v5), on the original server's schema.
package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sandcat-im/sandcat/migrations"
)

// Store holds the connection pool. Its methods implement the storage interfaces.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to dsn (a postgres:// URL) and applies the migrations.
func Open(ctx context.Context, dsn string, maxConns int32) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: parse dsn: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: connect: %w", err)
	}
	s := &Store{pool: pool}
	if err := s.Migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Pool exposes the pool for stores that share it.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// Close closes the pool.
func (s *Store) Close() error { s.pool.Close(); return nil }

// Ping checks that the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// migrationLock is the advisory lock key that serialises migrations across processes.
const migrationLock = 0x5a4dca7

// Migrate applies the migrations not applied yet, each in its own transaction,
// under an advisory lock so several processes starting together apply them once.
func (s *Store) Migrate(ctx context.Context) error {
	files, err := migrations.Files(migrations.Postgres)
	if err != nil {
		return err
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, `SELECT pg_advisory_lock($1)`, migrationLock); err != nil {
		return fmt.Errorf("postgres: migrate lock: %w", err)
	}
	defer func() { _, _ = conn.Exec(context.Background(), `SELECT pg_advisory_unlock($1)`, migrationLock) }()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS sandcat_migrations (
		version TEXT PRIMARY KEY, applied_at BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("postgres: create migrations table: %w", err)
	}
	for _, f := range files {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return fmt.Errorf("postgres: migrate %s: %w", f.Version, err)
		}
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM sandcat_migrations WHERE version = $1`, f.Version).Scan(&n); err != nil {
			_ = tx.Rollback(ctx)
			return fmt.Errorf("postgres: migrate %s: %w", f.Version, err)
		}
		if n > 0 {
			_ = tx.Rollback(ctx)
			continue
		}
		if _, err := tx.Exec(ctx, f.SQL); err != nil {
			_ = tx.Rollback(ctx)
			return fmt.Errorf("postgres: migrate %s: %w", f.Version, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO sandcat_migrations (version, applied_at) VALUES ($1, $2)`,
			f.Version, time.Now().UnixMilli()); err != nil {
			_ = tx.Rollback(ctx)
			return fmt.Errorf("postgres: migrate %s: %w", f.Version, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("postgres: migrate %s: %w", f.Version, err)
		}
	}
	return nil
}
