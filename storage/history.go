package storage

import (
	"context"
	"time"

	"github.com/sandcat-im/sandcat/im/wire"
)

// History is the long-term message history: the original's `messages` table
// (send_id, receiver_id, local_id, server_id, send_time, msg_type,
// content_type, content, platform), keyed by (send_id, server_id, send_time).
// On PostgreSQL it is partitioned by week of send_time (ms): partitions named
// messages_<IYYY>_<IW> (ISO year and week), bounds in unix ms, weeks starting
// on Monday 00:00 in the server's TimeZone, as the original migration made them.
type History interface {
	// Append writes msgs in one batch; rows already stored are left as they are
	// (ON CONFLICT DO NOTHING). On PostgreSQL a row whose week has no partition
	// fails the batch: keep EnsurePartitions running.
	Append(ctx context.Context, msgs []wire.Msg) error
	// EnsurePartitions creates the weekly partitions of the week holding now
	// and of the `ahead` weeks after it, skipping existing ones (bug B4 of the
	// original: it never created any after the first 52). A no-op where the
	// table is not partitioned.
	EnsurePartitions(ctx context.Context, now time.Time, ahead int) error
	// DropBefore is retention: it removes history sent before t. PostgreSQL
	// detaches and drops the whole partitions that end at or before t (a
	// partition holding t stays, rows and all); SQLite deletes the rows.
	DropBefore(ctx context.Context, t time.Time) error
}
