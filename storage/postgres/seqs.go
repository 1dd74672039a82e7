package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sandcat-im/sandcat/storage"
)

var _ storage.SeqCeilings = (*SeqCeilings)(nil)

// SeqCeilings is the store's storage.SeqCeilings on the original table `sequence`.
type SeqCeilings struct {
	pool *pgxpool.Pool
}

// SeqCeilings returns the durable seq ceilings kept in this store.
func (s *Store) SeqCeilings() *SeqCeilings { return &SeqCeilings{pool: s.pool} }

// Get implements storage.SeqCeilings.
func (s *SeqCeilings) Get(ctx context.Context, userID string) (send, recv int64, err error) {
	err = s.pool.QueryRow(ctx, `SELECT send_max_seq, rec_max_seq FROM sequence WHERE user_id = $1`, userID).
		Scan(&send, &recv)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, 0, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("postgres: get seq ceilings of %s: %w", userID, err)
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

// Raise implements storage.SeqCeilings with one upsert over the sorted,
// de-duplicated ids (rows are locked in id order: overlapping concurrent
// Raises cannot deadlock).
func (s *SeqCeilings) Raise(ctx context.Context, kind storage.SeqKind, userIDs []string, by int64) ([]int64, error) {
	if err := storage.CheckRaise(kind, by); err != nil {
		return nil, err
	}
	if len(userIDs) == 0 {
		return []int64{}, nil
	}
	ids := slices.Clone(userIDs)
	slices.Sort(ids)
	ids = slices.Compact(ids)
	col := seqColumn(kind)
	rows, err := s.pool.Query(ctx, `INSERT INTO sequence (user_id, `+col+`)
		SELECT u, $2::bigint FROM unnest($1::varchar[]) WITH ORDINALITY AS t(u, n) ORDER BY n
		ON CONFLICT (user_id) DO UPDATE SET `+col+` = sequence.`+col+` + EXCLUDED.`+col+`
		RETURNING user_id, `+col, ids, by)
	if err != nil {
		return nil, fmt.Errorf("postgres: raise %s seqs: %w", kind, err)
	}
	got := make(map[string]int64, len(ids))
	var u string
	var v int64
	if _, err := pgx.ForEachRow(rows, []any{&u, &v}, func() error { got[u] = v; return nil }); err != nil {
		return nil, fmt.Errorf("postgres: raise %s seqs: %w", kind, err)
	}
	out := make([]int64, len(userIDs))
	for i, id := range userIDs {
		c, ok := got[id]
		if !ok {
			return nil, fmt.Errorf("postgres: raise %s seqs: no ceiling returned for %q", kind, id)
		}
		out[i] = c
	}
	return out, nil
}
