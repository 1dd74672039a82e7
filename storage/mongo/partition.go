package mongo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"
)

// Period is the length of one inbox partition (one collection).
type Period int

const (
	// PeriodMonth: one collection per calendar month (UTC) of send_time,
	// named <collection>_YYYYMM. The default.
	PeriodMonth Period = iota
	// PeriodDay: one collection per day (UTC) of send_time, named
	// <collection>_YYYYMMDD. For short retentions or very high volume.
	PeriodDay
)

// ParsePeriod reads "month" (or "") and "day".
func ParsePeriod(s string) (Period, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "month", "monthly":
		return PeriodMonth, nil
	case "day", "daily":
		return PeriodDay, nil
	}
	return 0, fmt.Errorf("mongo: unknown inbox partition period %q (want month or day)", s)
}

// String implements fmt.Stringer.
func (p Period) String() string {
	if p == PeriodDay {
		return "day"
	}
	return "month"
}

// maxSendTime is the last millisecond that gets its own partition
// (9999-12-31T23:59:59.999Z); later and negative send_times are clamped.
var maxSendTime = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli() - 1

// partition is one collection of the inbox. base is the unpartitioned
// collection (its bounds cover everything).
type partition struct {
	name       string
	start, end int64 // unix ms, [start, end)
	base       bool
}

// periodOf returns the partition of send time ms under period p.
func periodOf(prefix string, p Period, ms int64) partition {
	ms = min(max(ms, 0), maxSendTime)
	t := time.UnixMilli(ms).UTC()
	var start, end time.Time
	var suffix string
	if p == PeriodDay {
		start = time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		end = start.AddDate(0, 0, 1)
		suffix = start.Format("20060102")
	} else {
		start = time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		end = start.AddDate(0, 1, 0)
		suffix = start.Format("200601")
	}
	return partition{name: prefix + "_" + suffix, start: start.UnixMilli(), end: end.UnixMilli()}
}

// basePartition is the unpartitioned collection named prefix.
func basePartition(prefix string) partition {
	return partition{name: prefix, start: 0, end: maxSendTime + 1, base: true}
}

// parsePartition recognises the collections of the inbox: the base
// collection (prefix itself), and prefix_YYYYMM or prefix_YYYYMMDD whatever
// the configured period (so a change of period keeps older partitions
// readable and cleanable). Other names give ok false.
func parsePartition(prefix, name string) (partition, bool) {
	if name == prefix {
		return basePartition(prefix), true
	}
	suffix, ok := strings.CutPrefix(name, prefix+"_")
	if !ok {
		return partition{}, false
	}
	if _, err := strconv.ParseUint(suffix, 10, 64); err != nil {
		return partition{}, false
	}
	var layout string
	var p Period
	switch len(suffix) {
	case 6:
		layout, p = "200601", PeriodMonth
	case 8:
		layout, p = "20060102", PeriodDay
	default:
		return partition{}, false
	}
	t, err := time.ParseInLocation(layout, suffix, time.UTC)
	if err != nil {
		return partition{}, false
	}
	part := periodOf(prefix, p, t.UnixMilli())
	if part.name != name { // not canonical (cannot happen after a successful parse, but be strict)
		return partition{}, false
	}
	return part, true
}

// sortPartitions orders partitions for reading: the base collection first
// (legacy documents and survivors of dropped partitions are the oldest),
// then by start, then by name.
func sortPartitions(parts []partition) {
	slices.SortFunc(parts, func(a, b partition) int {
		if a.base != b.base {
			if a.base {
				return -1
			}
			return 1
		}
		return cmp.Or(cmp.Compare(a.start, b.start), cmp.Compare(a.name, b.name))
	})
}

// partitions lists the inbox's collections that exist now, in read order.
// Listing on every operation (one small round trip) is what makes a
// partition created by another process visible at once: there is no cache
// to go stale.
func (in *Inbox) partitions(ctx context.Context) ([]partition, error) {
	names, err := in.db.ListCollectionNames(ctx, bson.D{}, options.ListCollections().SetNameOnly(true))
	if err != nil {
		return nil, fmt.Errorf("mongo: inbox: list collections: %w", err)
	}
	out := make([]partition, 0, len(names))
	for _, n := range names {
		if p, ok := parsePartition(in.prefix, n); ok {
			out = append(out, p)
		}
	}
	sortPartitions(out)
	return out, nil
}

// Collections returns the names of the inbox's collections that exist now,
// in the order reads visit them: the base collection (if it exists), then the
// period partitions from the oldest.
func (in *Inbox) Collections(ctx context.Context) ([]string, error) {
	parts, err := in.partitions(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = p.name
	}
	return out, nil
}

// CollectionFor returns the name of the partition that an entry with this
// send_time (unix ms) is written to.
func (in *Inbox) CollectionFor(sendTimeMs int64) string {
	return periodOf(in.prefix, in.period, sendTimeMs).name
}

// inboxIndexes are created on every collection of the inbox. The first two
// are the original's (§4.4, same names, so an original single_msg_box keeps
// them); the unique one makes Save idempotent; send_time serves the
// cleaner's delete in the boundary partition; msg_type lets the cleaner
// find, without a scan, the entries of excepted types that must survive the
// drop of an expired partition.
//
// With skipQuery only the unique index is returned (Options.SkipQueryIndexes).
func inboxIndexes(skipQuery bool) []mongo.IndexModel {
	index := func(name string, unique bool, keys ...string) mongo.IndexModel {
		d := make(bson.D, len(keys))
		for i, k := range keys {
			d[i] = bson.E{Key: k, Value: 1}
		}
		o := options.Index().SetName(name)
		if unique {
			o.SetUnique(true)
		}
		return mongo.IndexModel{Keys: d, Options: o}
	}
	unique := index("server_id_1_receiver_id_1", true, "server_id", "receiver_id")
	if skipQuery {
		return []mongo.IndexModel{unique}
	}
	return []mongo.IndexModel{
		index("receiver_id_1_seq_1", false, "receiver_id", "seq"),
		index("send_id_1_send_seq_1", false, "send_id", "send_seq"),
		index("send_time_1", false, "send_time"),
		index("msg_type_1", false, "msg_type"),
		unique,
	}
}

// missingIndexes returns the inboxIndexes that coll does not have (all of
// them if coll does not exist). Creating only those is cheaper than asking
// for all, and avoids a FerretDB 1.24 bug: a createIndexes naming several
// indexes of which more than one exists already panics its connection
// handler.
func missingIndexes(ctx context.Context, coll *mongo.Collection, skipQuery bool) ([]mongo.IndexModel, error) {
	specs, err := coll.Indexes().ListSpecifications(ctx)
	if err != nil && !isNamespaceNotFound(err) {
		return nil, err
	}
	have := make(map[string]bool, len(specs))
	for _, s := range specs {
		have[s.Name] = true
	}
	var out []mongo.IndexModel
	for _, m := range inboxIndexes(skipQuery) {
		if !have[*m.Options.Name] {
			out = append(out, m)
		}
	}
	return out, nil
}

// isNamespaceNotFound reports a command error "ns does not exist" (code 26).
func isNamespaceNotFound(err error) bool {
	var ce mongo.CommandError
	return errors.As(err, &ce) && ce.Code == 26
}

// ensure creates the missing indexes of partition p (and so the
// collection), one createIndexes per index: several processes may create
// the same new partition at once, and FerretDB 1.24 fails a createIndexes
// that names several indexes of which more than one exists already. A
// partition whose period has not ended yet is remembered and not ensured
// again by this Inbox (only Clean can drop it, and Clean forgets it); a
// partition whose period has ended is ensured before every write, because
// another process's Clean may have dropped it and an insert would otherwise
// recreate it without its unique index.
//
// On the base collection, which may hold an original server's documents
// (it had no unique index, so it may have stored duplicates), a unique index
// that cannot be built is logged and skipped: reads de-duplicate.
func (in *Inbox) ensure(ctx context.Context, p partition) error {
	in.mu.Lock()
	_, done := in.ensured[p.name]
	in.mu.Unlock()
	if done {
		return nil
	}
	coll := in.db.Collection(p.name)
	missing, err := missingIndexes(ctx, coll, in.skipQueryIndexes)
	if err != nil {
		return fmt.Errorf("mongo: inbox: list indexes of %s: %w", p.name, err)
	}
	for _, m := range missing {
		if _, err := coll.Indexes().CreateOne(ctx, m); err != nil {
			if p.base && m.Options.Unique != nil && *m.Options.Unique && isDuplicateBuild(err) {
				in.log.Warn("mongo inbox: the base collection holds duplicate (server_id, receiver_id) documents; "+
					"its unique index is not built (reads de-duplicate)", "collection", p.name, "err", err)
				continue
			}
			return fmt.Errorf("mongo: inbox: create index %s of %s: %w", *m.Options.Name, p.name, err)
		}
	}
	if p.end > nowMs() {
		in.mu.Lock()
		in.ensured[p.name] = struct{}{}
		in.mu.Unlock()
	}
	return nil
}

// isDuplicateBuild reports whether err is the failure of a unique index
// build over duplicate documents: E11000 on MongoDB, an internal error
// quoting SQLite's "UNIQUE constraint failed" on FerretDB.
func isDuplicateBuild(err error) bool {
	return mongo.IsDuplicateKeyError(err) || strings.Contains(err.Error(), "UNIQUE constraint failed")
}

// forget drops p from the set of ensured partitions (after Clean dropped it).
func (in *Inbox) forget(name string) {
	in.mu.Lock()
	delete(in.ensured, name)
	in.mu.Unlock()
}
