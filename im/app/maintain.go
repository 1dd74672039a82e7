package app

import (
	"context"
	"log/slog"
	"time"

	"github.com/sandcat-im/sandcat/im/config"
	"github.com/sandcat-im/sandcat/im/wire"
)

// inboxCleaner and historyKeeper are what the maintenance job cleans.
type inboxCleaner interface {
	Clean(ctx context.Context, olderThanMs int64, exceptTypes []wire.MsgType) (int64, error)
}

type historyKeeper interface {
	EnsurePartitions(ctx context.Context, now time.Time, ahead int) error
	DropBefore(ctx context.Context, t time.Time) error
}

// maintain runs the periodic jobs of the message server: history partitions
// ahead of time (bug B4 of the original) and retention of the inbox (in
// milliseconds, bug B3) and of the history. It runs once at start, then hourly.
func maintain(ctx context.Context, cfg *config.Config, log *slog.Logger, inbox inboxCleaner, history historyKeeper) error {
	except := exceptTypes(cfg, log)
	run := func() {
		now := time.Now()
		if err := history.EnsurePartitions(ctx, now, 8); err != nil {
			log.Error("maintenance: history partitions", "err", err)
		}
		if d := cfg.Retention.HistoryDays; d > 0 {
			if err := history.DropBefore(ctx, now.Add(-time.Duration(d)*24*time.Hour)); err != nil {
				log.Error("maintenance: history retention", "err", err)
			}
		}
		days := cfg.Retention.InboxDays
		if cfg.DB.MongoDB != nil {
			days = cfg.DB.MongoDB.Clean.Period
		}
		if days > 0 && inbox != nil {
			cutoff := now.Add(-time.Duration(days) * 24 * time.Hour).UnixMilli()
			n, err := inbox.Clean(ctx, cutoff, except)
			if err != nil {
				log.Error("maintenance: inbox retention", "err", err)
			} else if n > 0 {
				log.Info("maintenance: inbox entries removed", "count", n, "older_than_ms", cutoff)
			}
		}
	}
	run()
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			run()
		}
	}
}

func exceptTypes(cfg *config.Config, log *slog.Logger) []wire.MsgType {
	if cfg.DB.MongoDB == nil {
		return nil
	}
	var out []wire.MsgType
	for _, name := range cfg.DB.MongoDB.Clean.ExceptTypes {
		t, ok := wire.ParseMsgType(name)
		if !ok {
			log.Warn("db.mongodb.clean.except_types: unknown message type, ignored", "name", name)
			continue
		}
		out = append(out, t)
	}
	return out
}
