package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/sandcat-im/sandcat/storage"
)

var _ storage.SeqCeilings = (*SeqCeilings)(nil)

// SeqCeilings is the store's storage.SeqCeilings on the table `sequence`.
type SeqCeilings struct {
	db *sql.DB
}

// SeqCeilings returns the durable seq ceilings kept in this store.
func (s *Store) SeqCeilings() *SeqCeilings { return &SeqCeilings{db: s.db} }

// seqRaiseChunk is how many users one INSERT of Raise carries (2 parameters each).
const seqRaiseChunk = 500

// Get implements storage.SeqCeilings.
func (s *SeqCeilings) Get(ctx context.Context, userID string) (send, recv int64, err error) {
	err = s.db.QueryRowContext(ctx, `SELECT send_max_seq, rec_max_seq FROM sequence WHERE user_id = ?`, userID).
		Scan(&send, &recv)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("sqlite: get seq ceilings of %s: %w", userID, err)
	}
	return send, recv, nil
}

// seqColumn is the ceiling column of a kind (a constant: safe to splice).
func seqColumn(kind storage.SeqKind) string {
	if kind == storage.SeqSend {
		return "send_max_seq"
	}
	return "rec_max_seq"
}

// Raise implements storage.SeqCeilings: one immediate transaction of upserts
// (500 users per statement), RETURNING the new ceilings.
func (s *SeqCeilings) Raise(ctx context.Context, kind storage.SeqKind, userIDs []string, by int64) ([]int64, error) {
	if err := storage.CheckRaise(kind, by); err != nil {
		return nil, err
	}
	if len(userIDs) == 0 {
		return []int64{}, nil
	}
	uniq := make([]string, 0, len(userIDs))
	seen := make(map[string]struct{}, len(userIDs))
	for _, u := range userIDs {
		if _, ok := seen[u]; !ok {
			seen[u] = struct{}{}
			uniq = append(uniq, u)
		}
	}
	col := seqColumn(kind)
	got := make(map[string]int64, len(uniq))
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("sqlite: raise %s seqs: %w", kind, err)
	}
	defer func() { _ = tx.Rollback() }()
	for len(uniq) > 0 {
		n := min(len(uniq), seqRaiseChunk)
		part := uniq[:n]
		uniq = uniq[n:]
		var q strings.Builder
		q.WriteString(`INSERT INTO sequence (user_id, ` + col + `) VALUES `)
		args := make([]any, 0, 2*len(part))
		for i, u := range part {
			if i > 0 {
				q.WriteByte(',')
			}
			q.WriteString("(?, ?)")
			args = append(args, u, by)
		}
		q.WriteString(` ON CONFLICT (user_id) DO UPDATE SET ` + col + ` = ` + col + ` + excluded.` + col +
			` RETURNING user_id, ` + col)
		rows, err := tx.QueryContext(ctx, q.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("sqlite: raise %s seqs: %w", kind, err)
		}
		for rows.Next() {
			var u string
			var v int64
			if err := rows.Scan(&u, &v); err != nil {
				_ = rows.Close()
				return nil, fmt.Errorf("sqlite: raise %s seqs: %w", kind, err)
			}
			got[u] = v
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("sqlite: raise %s seqs: %w", kind, err)
		}
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("sqlite: raise %s seqs: %w", kind, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("sqlite: raise %s seqs: %w", kind, err)
	}
	out := make([]int64, len(userIDs))
	for i, u := range userIDs {
		v, ok := got[u]
		if !ok {
			return nil, fmt.Errorf("sqlite: raise %s seqs: no ceiling returned for %q", kind, u)
		}
		out[i] = v
	}
	return out, nil
}
