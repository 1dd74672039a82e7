package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

var _ storage.History = (*History)(nil)

// History is the store's storage.History on the table `messages` (not
// partitioned: retention deletes rows).
type History struct {
	db *sql.DB
}

// History returns the message history kept in this store.
func (s *Store) History() *History { return &History{db: s.db} }

// historyAppendChunk is how many rows one INSERT of Append carries (9 parameters each).
const historyAppendChunk = 500

// Append implements storage.History: one transaction, 500 rows per INSERT.
func (h *History) Append(ctx context.Context, msgs []wire.Msg) error {
	if len(msgs) == 0 {
		return nil
	}
	tx, err := h.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: history append: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for len(msgs) > 0 {
		n := min(len(msgs), historyAppendChunk)
		var q strings.Builder
		q.WriteString(`INSERT INTO messages (send_id, receiver_id, local_id, server_id, send_time, msg_type,
			content_type, content, platform) VALUES `)
		args := make([]any, 0, 9*n)
		for i := range n {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?,?,?,?,?,?,?,?,?)")
			m := &msgs[i]
			content := m.Content
			if content == nil {
				content = []byte{}
			}
			args = append(args, m.SendID, m.ReceiverID, m.LocalID, m.ServerID, m.SendTime, int32(m.MsgType),
				m.ContentType, content, m.Platform)
		}
		q.WriteString(` ON CONFLICT DO NOTHING`)
		if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
			return fmt.Errorf("sqlite: history append: %w", err)
		}
		msgs = msgs[n:]
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
