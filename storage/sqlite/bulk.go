package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

// bulkMaxRows is the largest multi-row INSERT kept prepared. A write of n
// rows runs as INSERTs of the powers of two that sum to n (at most 256 rows
// each), so a few statements per table serve every batch size and SQLite
// parses none of them again (database/sql keeps each prepared once per
// connection).
const bulkMaxRows = 256

type bulkKind uint8

const (
	bulkInbox bulkKind = iota
	bulkHistory
)

type bulkKey struct {
	kind bulkKind
	rows int
}

// bulkStmts are the prepared multi-row INSERTs of a Store, prepared once at
// Open (never later: preparing on the pool while a transaction holds a
// connection and the write lock could wait for a connection that waits for
// that lock). Inside a transaction, Tx.StmtContext reuses the statement
// already prepared on the transaction's connection, or prepares it there.
type bulkStmts struct {
	stmts map[bulkKey]*sql.Stmt
}

func prepareBulk(ctx context.Context, db *sql.DB) (*bulkStmts, error) {
	b := &bulkStmts{stmts: make(map[bulkKey]*sql.Stmt)}
	for _, kind := range []bulkKind{bulkInbox, bulkHistory} {
		for n := 1; n <= bulkMaxRows; n <<= 1 {
			st, err := db.PrepareContext(ctx, bulkSQL(bulkKey{kind, n}))
			if err != nil {
				b.close()
				return nil, fmt.Errorf("sqlite: prepare bulk insert: %w", err)
			}
			b.stmts[bulkKey{kind, n}] = st
		}
	}
	return b, nil
}

func (b *bulkStmts) close() {
	for _, st := range b.stmts {
		_ = st.Close()
	}
}

func bulkSQL(k bulkKey) string {
	var q strings.Builder
	var row, tail string
	switch k.kind {
	case bulkInbox:
		q.WriteString(`INSERT INTO inbox (` + inboxColumns + `) VALUES `)
		row, tail = "("+inboxMarks(inboxColumnCount)+")", ` ON CONFLICT (server_id, receiver_id) DO NOTHING`
	case bulkHistory:
		q.WriteString(`INSERT INTO messages (send_id, receiver_id, local_id, server_id, send_time, msg_type,
			content_type, content, platform) VALUES `)
		row, tail = "(?,?,?,?,?,?,?,?,?)", ` ON CONFLICT DO NOTHING`
	}
	for i := range k.rows {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(row)
	}
	q.WriteString(tail)
	return q.String()
}

// bulkChunk is the size of the next INSERT for n remaining rows: the largest
// power of two ≤ min(n, bulkMaxRows).
func bulkChunk(n int) int {
	c := bulkMaxRows
	for c > n {
		c >>= 1
	}
	return c
}

func historyArgs(args []any, m *wire.Msg) []any {
	content := m.Content
	if content == nil {
		content = []byte{}
	}
	return append(args, m.SendID, m.ReceiverID, m.LocalID, m.ServerID, m.SendTime, int32(m.MsgType),
		m.ContentType, content, m.Platform)
}

// insertInbox inserts entries inside tx with the prepared statements.
func (b *bulkStmts) insertInbox(ctx context.Context, tx *sql.Tx, entries []storage.InboxEntry) error {
	args := make([]any, 0, min(len(entries), bulkMaxRows)*inboxColumnCount)
	for len(entries) > 0 {
		n := bulkChunk(len(entries))
		st := b.stmts[bulkKey{bulkInbox, n}]
		args = args[:0]
		for i := range n {
			args = inboxArgs(args, &entries[i].Msg)
		}
		if _, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...); err != nil {
			return err
		}
		entries = entries[n:]
	}
	return nil
}

// insertHistory inserts msgs inside tx with the prepared statements.
func (b *bulkStmts) insertHistory(ctx context.Context, tx *sql.Tx, msgs []wire.Msg) error {
	args := make([]any, 0, min(len(msgs), bulkMaxRows)*9)
	for len(msgs) > 0 {
		n := bulkChunk(len(msgs))
		st := b.stmts[bulkKey{bulkHistory, n}]
		args = args[:0]
		for i := range n {
			args = historyArgs(args, &msgs[i])
		}
		if _, err := tx.StmtContext(ctx, st).ExecContext(ctx, args...); err != nil {
			return err
		}
		msgs = msgs[n:]
	}
	return nil
}

// SaveBatch stores a consumer batch: the inbox entries (as Inbox.Save) and
// the history (as History.Append) in one transaction, so one commit makes
// both durable.
func (s *Store) SaveBatch(ctx context.Context, entries []storage.InboxEntry, history []wire.Msg) error {
	if len(entries) == 0 && len(history) == 0 {
		return nil
	}
	if err := checkServerIDs(entries); err != nil {
		return fmt.Errorf("sqlite: save batch: %w", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: save batch: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := s.bulk.insertInbox(ctx, tx, entries); err != nil {
		return fmt.Errorf("sqlite: save batch: inbox: %w", err)
	}
	if err := s.bulk.insertHistory(ctx, tx, history); err != nil {
		return fmt.Errorf("sqlite: save batch: history: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: save batch: %w", err)
	}
	return nil
}

func checkServerIDs(entries []storage.InboxEntry) error {
	for i := range entries {
		if entries[i].ServerID == "" {
			return fmt.Errorf("entry %d has no server_id", i)
		}
	}
	return nil
}
