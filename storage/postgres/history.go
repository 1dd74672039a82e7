package postgres

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

var _ storage.History = (*History)(nil)

// History is the store's storage.History on the original table `messages`,
// partitioned by week of send_time (ms).
type History struct {
	pool *pgxpool.Pool
}

// History returns the message history kept in this store.
func (s *Store) History() *History { return &History{pool: s.pool} }

// partitionLock is the advisory lock key that serialises partition
// maintenance across processes.
const partitionLock = 0x5a4dca8

// Append implements storage.History: one INSERT of unnested arrays.
func (h *History) Append(ctx context.Context, msgs []wire.Msg) error {
	if len(msgs) == 0 {
		return nil
	}
	n := len(msgs)
	sendIDs, receiverIDs, localIDs, serverIDs := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	sendTimes := make([]int64, n)
	msgTypes, contentTypes, platforms := make([]int32, n), make([]int32, n), make([]int32, n)
	contents := make([][]byte, n)
	for i := range msgs {
		m := &msgs[i]
		sendIDs[i], receiverIDs[i], localIDs[i], serverIDs[i] = m.SendID, m.ReceiverID, m.LocalID, m.ServerID
		sendTimes[i] = m.SendTime
		msgTypes[i], contentTypes[i], platforms[i] = int32(m.MsgType), m.ContentType, m.Platform
		contents[i] = m.Content
		if contents[i] == nil {
			contents[i] = []byte{}
		}
	}
	_, err := h.pool.Exec(ctx, `INSERT INTO messages (send_id, receiver_id, local_id, server_id, send_time, msg_type,
			content_type, content, platform)
		SELECT * FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[], $5::bigint[], $6::int[],
			$7::int[], $8::bytea[], $9::int[])
		ON CONFLICT DO NOTHING`,
		sendIDs, receiverIDs, localIDs, serverIDs, sendTimes, msgTypes, contentTypes, contents, platforms)
	if err != nil {
		return fmt.Errorf("postgres: history append: %w", err)
	}
	return nil
}

// EnsurePartitions implements storage.History. Weeks are computed by the
// server exactly as the original migration did (date_trunc('week') in the
// session TimeZone, to_char IYYY_IW, bounds in ms), so the partitions it
// makes line up with the migration's.
func (h *History) EnsurePartitions(ctx context.Context, now time.Time, ahead int) error {
	if ahead < 0 {
		return fmt.Errorf("postgres: ensure partitions: negative ahead %d", ahead)
	}
	type part struct {
		name     string
		from, to int64
	}
	const missing = `SELECT 'messages_' || to_char(s, 'IYYY_IW'),
			(extract(epoch FROM s) * 1000)::bigint, (extract(epoch FROM s + interval '1 week') * 1000)::bigint
		FROM (SELECT date_trunc('week', to_timestamp($1::bigint / 1000.0)) + make_interval(weeks => g) AS s
			FROM generate_series(0, $2::int) AS g) AS w
		WHERE to_regclass('messages_' || to_char(s, 'IYYY_IW')) IS NULL
		ORDER BY s`
	scan := func(q pgx.Rows) ([]part, error) {
		return pgx.CollectRows(q, func(r pgx.CollectableRow) (part, error) {
			var p part
			err := r.Scan(&p.name, &p.from, &p.to)
			return p, err
		})
	}
	rows, err := h.pool.Query(ctx, missing, now.UnixMilli(), ahead)
	if err != nil {
		return fmt.Errorf("postgres: ensure partitions: %w", err)
	}
	parts, err := scan(rows)
	if err != nil {
		return fmt.Errorf("postgres: ensure partitions: %w", err)
	}
	if len(parts) == 0 {
		return nil // the usual case: no lock taken
	}
	err = pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, partitionLock); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, missing, now.UnixMilli(), ahead) // again, under the lock
		if err != nil {
			return err
		}
		parts, err := scan(rows)
		if err != nil {
			return err
		}
		for _, p := range parts {
			if _, err := tx.Exec(ctx, fmt.Sprintf(`CREATE TABLE IF NOT EXISTS %s PARTITION OF messages FOR VALUES FROM (%d) TO (%d)`,
				pgx.Identifier{p.name}.Sanitize(), p.from, p.to)); err != nil {
				return fmt.Errorf("create %s: %w", p.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("postgres: ensure partitions: %w", err)
	}
	return nil
}

// partitionUpper finds the upper bound of a range partition in pg_get_expr's text.
var partitionUpper = regexp.MustCompile(`TO \('?(-?[0-9]+)'?\)`)

// DropBefore implements storage.History: every partition of messages whose
// upper bound is at or before t is detached and dropped, one per transaction.
func (h *History) DropBefore(ctx context.Context, t time.Time) error {
	cut := t.UnixMilli()
	rows, err := h.pool.Query(ctx, `SELECT c.relname, pg_get_expr(c.relpartbound, c.oid)
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'messages'::regclass`)
	if err != nil {
		return fmt.Errorf("postgres: history drop before: %w", err)
	}
	type bound struct{ name, expr string }
	parts, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (bound, error) {
		var b bound
		err := r.Scan(&b.name, &b.expr)
		return b, err
	})
	if err != nil {
		return fmt.Errorf("postgres: history drop before: %w", err)
	}
	for _, p := range parts {
		m := partitionUpper.FindStringSubmatch(p.expr)
		if m == nil {
			continue // DEFAULT or MAXVALUE: never dropped
		}
		upper, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || upper > cut {
			continue
		}
		err = pgx.BeginFunc(ctx, h.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, partitionLock); err != nil {
				return err
			}
			var still bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_inherits
				WHERE inhparent = 'messages'::regclass AND inhrelid = to_regclass($1))`, p.name).Scan(&still); err != nil {
				return err
			}
			if !still {
				return nil // another process got there first
			}
			id := pgx.Identifier{p.name}.Sanitize()
			if _, err := tx.Exec(ctx, `ALTER TABLE messages DETACH PARTITION `+id); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, `DROP TABLE `+id)
			return err
		})
		if err != nil {
			return fmt.Errorf("postgres: history drop %s: %w", p.name, err)
		}
	}
	return nil
}
