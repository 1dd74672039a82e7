package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

var _ storage.History = (*History)(nil)

// History is the store's storage.History on the table `messages` (not
// partitioned: retention deletes rows).
type History struct {
	db   *sql.DB
	bulk *bulkStmts
}

// History returns the message history kept in this store.
func (s *Store) History() *History { return &History{db: s.db, bulk: s.bulk} }

// Append implements storage.History: one transaction, prepared INSERTs of
// up to 256 rows.
func (h *History) Append(ctx context.Context, msgs []wire.Msg) error {
	if len(msgs) == 0 {
		return nil
	}
	tx, err := h.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: history append: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := h.bulk.insertHistory(ctx, tx, msgs); err != nil {
		return fmt.Errorf("sqlite: history append: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: history append: %w", err)
	}
	return nil
}

// EnsurePartitions implements storage.History: SQLite does not partition.
func (h *History) EnsurePartitions(context.Context, time.Time, int) error { return nil }

// DropBefore implements storage.History: it deletes the rows sent before t.
func (h *History) DropBefore(ctx context.Context, t time.Time) error {
	if _, err := h.db.ExecContext(ctx, `DELETE FROM messages WHERE send_time < ?`, t.UnixMilli()); err != nil {
		return fmt.Errorf("sqlite: history drop before %s: %w", t.UTC().Format(time.RFC3339), err)
	}
	return nil
}
