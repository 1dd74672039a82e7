package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

var _ storage.Inbox = (*Inbox)(nil)

// Inbox is the store's storage.Inbox on the table `inbox`.
type Inbox struct {
	db   *sql.DB
	bulk *bulkStmts
}

// Inbox returns the offline inbox kept in this store.
func (s *Store) Inbox() *Inbox { return &Inbox{db: s.db, bulk: s.bulk} }

const (
	// inboxColumns are the stored columns, in the order of inboxArgs and scanInbox.
	inboxColumns = `server_id, receiver_id, send_id, local_id, group_id, create_time, send_time, seq, send_seq,
		msg_type, content_type, content, is_read, platform, avatar, nickname, related_msg_id`
	inboxColumnCount = 17
	// inboxListChunk is how many seqs one IN (...) list carries.
	inboxListChunk = 900
	// inboxCleanBatch is how many rows one DELETE of Clean removes, so that the
	// write lock is never held for long.
	inboxCleanBatch = 5000
)

func inboxArgs(args []any, m *wire.Msg) []any {
	content := m.Content
	if content == nil {
		content = []byte{}
	}
	return append(args, m.ServerID, m.ReceiverID, m.SendID, m.LocalID, m.GroupID, m.CreateTime, m.SendTime,
		m.Seq, m.SendSeq, int32(m.MsgType), m.ContentType, content, m.IsRead, m.Platform, m.Avatar, m.Nickname,
		m.RelatedMsgID)
}

func scanInbox(row interface{ Scan(dest ...any) error }, m *wire.Msg) error {
	var related sql.NullString
	var msgType int32
	if err := row.Scan(&m.ServerID, &m.ReceiverID, &m.SendID, &m.LocalID, &m.GroupID, &m.CreateTime, &m.SendTime,
		&m.Seq, &m.SendSeq, &msgType, &m.ContentType, &m.Content, &m.IsRead, &m.Platform, &m.Avatar, &m.Nickname,
		&related); err != nil {
		return err
	}
	m.MsgType = wire.MsgType(msgType)
	if related.Valid {
		s := related.String
		m.RelatedMsgID = &s
	}
	if len(m.Content) == 0 {
		m.Content = nil
	}
	return nil
}

// inboxMarks returns n comma-separated "?".
func inboxMarks(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?,", n-1) + "?"
}

// Save implements storage.Inbox: one transaction, prepared INSERTs of up to
// 256 rows.
func (s *Inbox) Save(ctx context.Context, entries []storage.InboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	if err := checkServerIDs(entries); err != nil {
		return fmt.Errorf("sqlite: inbox save: %w", err)
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: inbox save: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if err := s.bulk.insertInbox(ctx, tx, entries); err != nil {
		return fmt.Errorf("sqlite: inbox save: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: inbox save: %w", err)
	}
	return nil
}

// inboxPullQuery takes user, start, end, sendStart, sendEnd, limit.
const inboxPullQuery = `SELECT ` + inboxColumns + ` FROM inbox WHERE id IN (
		SELECT id FROM (SELECT id FROM inbox WHERE receiver_id = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?6)
		UNION
		SELECT id FROM (SELECT id FROM inbox WHERE send_id = ?1 AND send_seq > ?4 AND send_seq <= ?5
			ORDER BY send_seq LIMIT ?6))
	ORDER BY send_time, CASE WHEN send_id = ?1 THEN send_seq ELSE seq END, id`

// Pull implements storage.Inbox. Each range is read from its own index
// ((receiver_id, seq) and (send_id, send_seq)) in seq order with the cap as
// LIMIT; the union (a message to oneself matches both) is then sorted.
func (s *Inbox) Pull(ctx context.Context, userID string, sendStart, sendEnd, start, end int64) ([]wire.Msg, error) {
	if err := storage.CheckPullRange(sendStart, sendEnd, start, end); err != nil {
		return nil, err
	}
	out := []wire.Msg{}
	if start == end && sendStart == sendEnd {
		return out, nil
	}
	rows, err := s.db.QueryContext(ctx, inboxPullQuery, userID, start, end, sendStart, sendEnd, storage.InboxPullLimit)
	if err != nil {
		return nil, fmt.Errorf("sqlite: inbox pull: %w", err)
	}
	defer func() { _ = rows.Close() }()
	for rows.Next() {
		var m wire.Msg
		if err := scanInbox(rows, &m); err != nil {
			return nil, fmt.Errorf("sqlite: inbox pull: %w", err)
		}
		if m.SendID == userID {
			m.Seq = 0
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: inbox pull: %w", err)
	}
	return out, nil
}

// Find implements storage.Inbox.
func (s *Inbox) Find(ctx context.Context, serverID string) ([]storage.InboxEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+inboxColumns+` FROM inbox WHERE server_id = ? ORDER BY id`, serverID)
	if err != nil {
		return nil, fmt.Errorf("sqlite: inbox find %s: %w", serverID, err)
	}
	defer func() { _ = rows.Close() }()
	out := []storage.InboxEntry{}
	for rows.Next() {
		var e storage.InboxEntry
		if err := scanInbox(rows, &e.Msg); err != nil {
			return nil, fmt.Errorf("sqlite: inbox find %s: %w", serverID, err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: inbox find %s: %w", serverID, err)
	}
	return out, nil
}

// bySeqs runs `<head> receiver_id = ? AND seq IN (...)` over seqs in chunks, in one transaction.
func (s *Inbox) bySeqs(ctx context.Context, op, head, userID string, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: inbox %s: %w", op, err)
	}
	defer func() { _ = tx.Rollback() }()
	for len(seqs) > 0 {
		n := min(len(seqs), inboxListChunk)
		args := make([]any, 0, n+1)
		args = append(args, userID)
		for _, v := range seqs[:n] {
			args = append(args, v)
		}
		if _, err := tx.ExecContext(ctx, head+` receiver_id = ? AND seq IN (`+inboxMarks(n)+`)`, args...); err != nil {
			return fmt.Errorf("sqlite: inbox %s: %w", op, err)
		}
		seqs = seqs[n:]
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: inbox %s: %w", op, err)
	}
	return nil
}

// DeleteBySeqs implements storage.Inbox.
func (s *Inbox) DeleteBySeqs(ctx context.Context, userID string, seqs []int64) error {
	return s.bySeqs(ctx, "delete", `DELETE FROM inbox WHERE`, userID, seqs)
}

// MarkRead implements storage.Inbox.
func (s *Inbox) MarkRead(ctx context.Context, userID string, seqs []int64) error {
	return s.bySeqs(ctx, "mark read", `UPDATE inbox SET is_read = 1 WHERE`, userID, seqs)
}

// DeleteByServerID implements storage.Inbox.
func (s *Inbox) DeleteByServerID(ctx context.Context, serverID string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM inbox WHERE server_id = ?`, serverID); err != nil {
		return fmt.Errorf("sqlite: inbox delete %s: %w", serverID, err)
	}
	return nil
}

// Clean implements storage.Inbox, deleting in batches of 5000 rows.
func (s *Inbox) Clean(ctx context.Context, olderThanMs int64, exceptTypes []wire.MsgType) (int64, error) {
	q := `DELETE FROM inbox WHERE id IN (SELECT id FROM inbox WHERE send_time < ?`
	args := []any{olderThanMs}
	if len(exceptTypes) > 0 {
		q += ` AND msg_type NOT IN (` + inboxMarks(len(exceptTypes)) + `)`
		for _, t := range exceptTypes {
			args = append(args, int32(t))
		}
	}
	q += ` LIMIT ?)`
	args = append(args, inboxCleanBatch)
	var total int64
	for {
		res, err := s.db.ExecContext(ctx, q, args...)
		if err != nil {
			return total, fmt.Errorf("sqlite: inbox clean: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("sqlite: inbox clean: %w", err)
		}
		total += n
		if n < inboxCleanBatch {
			return total, nil
		}
	}
}
