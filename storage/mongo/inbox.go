// Package mongo is the MongoDB implementation of storage.Inbox, the offline
// inbox of the original server's collection single_msg_box
// (sandcat-wire.md §4.4), partitioned by time. It uses only what MongoDB and
// FerretDB both support: no multi-document transactions, no change streams,
// no TTL indexes.
//
// # Documents
//
// One document per inbox entry, with the original's field names: local_id,
// server_id, send_id, receiver_id, group_id (strings), create_time,
// send_time, seq, send_seq (int64), content_type, msg_type (int32), content
// (binary, subtype 0), is_read (bool), plus the fields the original dropped
// (bug B10): platform (int32), avatar, nickname (strings) and related_msg_id
// (string, absent when the message has none). Documents written by the
// original server are read as they are (the missing fields as defaults).
//
// # Partitions
//
// The original kept everything in one collection and listed partitioning as
// an open TODO. Here the inbox is one collection per period of send_time
// (UTC): <collection>_YYYYMM for PeriodMonth (the default) or
// <collection>_YYYYMMDD for PeriodDay, e.g. single_msg_box_202405.
//
//   - Writes are routed by the entry's send_time. All entries of a message
//     share its send_time (the producer sets it once), so a replay lands in
//     the same collection and its unique index {server_id, receiver_id}
//     makes Save idempotent.
//   - The set of partitions is the set of collections whose name matches,
//     listed on each read (one small round trip, no cache that could miss a
//     partition another process just created). A collection is created
//     with its indexes (createIndexes) before its first insert.
//   - Seq ranges carry no time, so a Pull asks every partition, each with
//     an index range scan on {receiver_id, seq} or {send_id, send_seq}
//     limited to the cap, from the oldest partition; once the cap is
//     reached the upper bound of the range tightens to the highest kept seq,
//     so later partitions return only what can still displace it. Results
//     are merged and sorted in Go with the §2.4 order. Retention keeps the
//     number of partitions small (retention / period + 1).
//   - Clean drops every partition whose whole period is older than the
//     cutoff (milliseconds whatever its size) and deletes the expired
//     documents of the boundary partition (an index range on send_time).
//     Entries of excepted types in a partition about to be dropped are first
//     copied (idempotently) into the base collection, the unsuffixed
//     <collection> (single_msg_box), and the partition is dropped after
//     the copy, so a crash in between loses nothing and a re-run finishes
//     the job. The base collection is read like any partition and cleaned
//     document by document; it also holds, unchanged, the documents of an
//     original server's single_msg_box, so a migrated deployment keeps them.
//
// Each collection has the indexes {receiver_id:1, seq:1} and
// {send_id:1, send_seq:1} (the original's), {send_time:1} (boundary clean),
// {msg_type:1} (finding survivors before a drop) and the unique
// {server_id:1, receiver_id:1} (idempotent Save, Find and DeleteByServerID);
// with Options.SkipQueryIndexes (for FerretDB 1.x) only the unique one.
// README.md in this directory has the design, the FerretDB notes and the
// benchmark figures.
//
// Known limits, all outside normal operation: an entry saved with a
// send_time already older than the retention cutoff while Clean drops its
// partition can be lost; a MarkRead or DeleteBySeqs of an excepted entry
// during its copy to the base collection may not reach the copy.
package mongo

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/bson/primitive"
	"go.mongodb.org/mongo-driver/mongo"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

var _ storage.Inbox = (*Inbox)(nil)

// DefaultCollection is the original's collection name, the prefix of the partitions.
const DefaultCollection = "single_msg_box"

// Options tunes the inbox. The zero value is the default.
type Options struct {
	// Collection is the base collection name and the prefix of the
	// partitions; default DefaultCollection ("single_msg_box").
	Collection string
	// Period is the length of a partition; default PeriodMonth.
	Period Period
	// Logger receives warnings and the cleaner's drops; default slog.Default().
	Logger *slog.Logger
	// SkipQueryIndexes creates only the unique {server_id, receiver_id}
	// index (idempotent Save), not the four that serve queries. For FerretDB
	// 1.x: it evaluates every filter other than an _id equality in its own
	// process over all documents, so it never reads those indexes, while
	// maintaining them (SQLite expression indexes) costs a large part of its
	// insert rate (README.md). Leave it false on MongoDB, where Pull,
	// MarkRead, the deletes and Clean need them.
	SkipQueryIndexes bool
}

// Inbox is storage.Inbox on a MongoDB (or FerretDB) database.
type Inbox struct {
	client *mongo.Client // owned (closed by Close) when opened by Open
	db     *mongo.Database
	prefix string
	period Period
	log    *slog.Logger
	// skipQueryIndexes: see Options.SkipQueryIndexes.
	skipQueryIndexes bool

	mu      sync.Mutex
	ensured map[string]struct{} // partitions whose indexes this Inbox created
}

// Open connects to uri (mongodb://...), uses database, and creates the
// indexes of the existing partitions and of the current period's one.
// Close disconnects.
func Open(ctx context.Context, uri, database string, opts Options) (*Inbox, error) {
	client, err := mongo.Connect(ctx, options.Client().ApplyURI(uri))
	if err != nil {
		return nil, fmt.Errorf("mongo: connect: %w", err)
	}
	in, err := New(ctx, client.Database(database), opts)
	if err != nil {
		_ = client.Disconnect(context.Background())
		return nil, err
	}
	in.client = client
	return in, nil
}

// New is Open on a database of a client the caller owns (Close then leaves
// the client connected).
func New(ctx context.Context, db *mongo.Database, opts Options) (*Inbox, error) {
	if opts.Collection == "" {
		opts.Collection = DefaultCollection
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Period != PeriodMonth && opts.Period != PeriodDay {
		return nil, fmt.Errorf("mongo: inbox: unknown period %d", opts.Period)
	}
	in := &Inbox{db: db, prefix: opts.Collection, period: opts.Period, log: opts.Logger,
		skipQueryIndexes: opts.SkipQueryIndexes, ensured: map[string]struct{}{}}
	parts, err := in.partitions(ctx)
	if err != nil {
		return nil, err
	}
	parts = append(parts, periodOf(in.prefix, in.period, nowMs()))
	for _, p := range parts {
		if err := in.ensure(ctx, p); err != nil {
			return nil, err
		}
	}
	return in, nil
}

// Close disconnects the client if Open created it.
func (in *Inbox) Close(ctx context.Context) error {
	if in.client == nil {
		return nil
	}
	if err := in.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("mongo: disconnect: %w", err)
	}
	return nil
}

// Ping checks that the server answers.
func (in *Inbox) Ping(ctx context.Context) error {
	if err := in.db.Client().Ping(ctx, nil); err != nil {
		return fmt.Errorf("mongo: ping: %w", err)
	}
	return nil
}

// doc is one stored entry. Field names are the original's (§4.4) plus the
// four it dropped (B10).
type doc struct {
	ID           primitive.ObjectID `bson:"_id"`
	LocalID      string             `bson:"local_id"`
	ServerID     string             `bson:"server_id"`
	SendID       string             `bson:"send_id"`
	ReceiverID   string             `bson:"receiver_id"`
	GroupID      string             `bson:"group_id"`
	CreateTime   int64              `bson:"create_time"`
	SendTime     int64              `bson:"send_time"`
	Seq          int64              `bson:"seq"`
	SendSeq      int64              `bson:"send_seq"`
	ContentType  int32              `bson:"content_type"`
	MsgType      int32              `bson:"msg_type"`
	Content      []byte             `bson:"content"`
	IsRead       bool               `bson:"is_read"`
	Platform     int32              `bson:"platform"`
	Avatar       string             `bson:"avatar"`
	Nickname     string             `bson:"nickname"`
	RelatedMsgID *string            `bson:"related_msg_id,omitempty"`
}

func toDoc(m *wire.Msg) *doc {
	content := m.Content
	if content == nil {
		content = []byte{} // the original always wrote a binary, never null
	}
	return &doc{
		ID: primitive.NewObjectID(), LocalID: m.LocalID, ServerID: m.ServerID, SendID: m.SendID,
		ReceiverID: m.ReceiverID, GroupID: m.GroupID, CreateTime: m.CreateTime, SendTime: m.SendTime,
		Seq: m.Seq, SendSeq: m.SendSeq, ContentType: m.ContentType, MsgType: int32(m.MsgType),
		Content: content, IsRead: m.IsRead, Platform: m.Platform, Avatar: m.Avatar, Nickname: m.Nickname,
		RelatedMsgID: m.RelatedMsgID,
	}
}

func (d *doc) msg() wire.Msg {
	m := wire.Msg{
		SendID: d.SendID, ReceiverID: d.ReceiverID, LocalID: d.LocalID, ServerID: d.ServerID,
		CreateTime: d.CreateTime, SendTime: d.SendTime, Seq: d.Seq, MsgType: wire.MsgType(d.MsgType),
		ContentType: d.ContentType, Content: d.Content, IsRead: d.IsRead, GroupID: d.GroupID,
		Platform: d.Platform, Avatar: d.Avatar, Nickname: d.Nickname, RelatedMsgID: d.RelatedMsgID,
		SendSeq: d.SendSeq,
	}
	if len(m.Content) == 0 {
		m.Content = nil
	}
	return m
}

// key identifies an entry across collections (a document may briefly be in
// a partition and in the base collection while Clean copies it).
func (d *doc) key() string { return d.ServerID + "\x00" + d.ReceiverID }

// Save implements storage.Inbox: the entries are grouped by partition and
// each group is one unordered insertMany, so a duplicate (an entry stored
// already) is rejected by the unique index without stopping the others.
func (in *Inbox) Save(ctx context.Context, entries []storage.InboxEntry) error {
	if len(entries) == 0 {
		return nil
	}
	for i := range entries {
		if entries[i].ServerID == "" {
			return fmt.Errorf("mongo: inbox save: entry %d has no server_id", i)
		}
	}
	type group struct {
		part partition
		docs []any
	}
	var groups []*group // in order of first appearance
	byName := map[string]*group{}
	for i := range entries {
		p := periodOf(in.prefix, in.period, entries[i].SendTime)
		g := byName[p.name]
		if g == nil {
			g = &group{part: p}
			byName[p.name] = g
			groups = append(groups, g)
		}
		g.docs = append(g.docs, toDoc(&entries[i].Msg))
	}
	for _, g := range groups {
		if err := in.ensure(ctx, g.part); err != nil {
			return fmt.Errorf("mongo: inbox save: %w", err)
		}
		if err := insertIgnoringDuplicates(ctx, in.db.Collection(g.part.name), g.docs); err != nil {
			return fmt.Errorf("mongo: inbox save into %s: %w", g.part.name, err)
		}
	}
	return nil
}

// insertIgnoringDuplicates inserts docs unordered and treats duplicate-key
// rejections as "stored already".
func insertIgnoringDuplicates(ctx context.Context, coll *mongo.Collection, docs []any) error {
	_, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	if err == nil || onlyDuplicates(err) {
		return nil
	}
	return err
}

// onlyDuplicates reports whether err is a bulk write error whose every write
// error is a duplicate key (and there is no write concern error).
func onlyDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if !isDuplicateCode(we.Code) {
			return false
		}
	}
	return true
}

// isDuplicateCode: the codes mongo.IsDuplicateKeyError accepts for one write.
func isDuplicateCode(code int) bool { return code == 11000 || code == 11001 || code == 12582 }

// Pull implements storage.Inbox (see the package comment for how it visits
// the partitions).
func (in *Inbox) Pull(ctx context.Context, userID string, sendStart, sendEnd, start, end int64) ([]wire.Msg, error) {
	if err := storage.CheckPullRange(sendStart, sendEnd, start, end); err != nil {
		return nil, err
	}
	out := []wire.Msg{}
	if start == end && sendStart == sendEnd {
		return out, nil
	}
	parts, err := in.partitions(ctx)
	if err != nil {
		return nil, err
	}
	recv, err := in.pullRange(ctx, parts, "receiver_id", "seq", userID, start, end, func(d *doc) int64 { return d.Seq })
	if err != nil {
		return nil, err
	}
	sent, err := in.pullRange(ctx, parts, "send_id", "send_seq", userID, sendStart, sendEnd, func(d *doc) int64 { return d.SendSeq })
	if err != nil {
		return nil, err
	}
	docs := dedupe(append(recv, sent...))
	sortKey := func(d *doc) int64 {
		if d.SendID == userID {
			return d.SendSeq
		}
		return d.Seq
	}
	slices.SortFunc(docs, func(a, b *doc) int {
		return cmp.Or(cmp.Compare(a.SendTime, b.SendTime), cmp.Compare(sortKey(a), sortKey(b)),
			bytes.Compare(a.ID[:], b.ID[:]))
	})
	out = make([]wire.Msg, len(docs))
	for i, d := range docs {
		out[i] = d.msg()
		if d.SendID == userID {
			out[i].Seq = 0
		}
	}
	return out, nil
}

// pullRange returns the (at most InboxPullLimit) documents with
// userField = user and lo < seqField <= hi with the lowest seqs, over all
// partitions.
func (in *Inbox) pullRange(ctx context.Context, parts []partition, userField, seqField, user string, lo, hi int64,
	seqOf func(*doc) int64) ([]*doc, error) {
	const limit = storage.InboxPullLimit
	var got []*doc
	for _, p := range parts {
		if lo >= hi {
			break
		}
		filter := bson.D{{Key: userField, Value: user}, {Key: seqField, Value: bson.D{{Key: "$gt", Value: lo}, {Key: "$lte", Value: hi}}}}
		opts := options.Find().SetSort(bson.D{{Key: seqField, Value: 1}}).SetLimit(limit)
		docs, err := findDocs(ctx, in.db.Collection(p.name), filter, opts)
		if err != nil {
			return nil, fmt.Errorf("mongo: inbox pull from %s: %w", p.name, err)
		}
		got = append(got, docs...)
		if len(got) >= limit {
			slices.SortStableFunc(got, func(a, b *doc) int { return cmp.Compare(seqOf(a), seqOf(b)) })
			got = got[:limit]
			hi = seqOf(got[limit-1]) // only lower (or equal) seqs can still get in
		}
	}
	return got, nil
}

func findDocs(ctx context.Context, coll *mongo.Collection, filter any, opts ...*options.FindOptions) ([]*doc, error) {
	cur, err := coll.Find(ctx, filter, opts...)
	if err != nil {
		return nil, err
	}
	var docs []*doc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	return docs, nil
}

// dedupe keeps the first document of each (server_id, receiver_id).
func dedupe(docs []*doc) []*doc {
	seen := make(map[string]struct{}, len(docs))
	out := docs[:0]
	for _, d := range docs {
		k := d.key()
		if _, ok := seen[k]; ok {
			continue
		}
		seen[k] = struct{}{}
		out = append(out, d)
	}
	return out
}

// Find implements storage.Inbox: the entries in the order they were saved.
func (in *Inbox) Find(ctx context.Context, serverID string) ([]storage.InboxEntry, error) {
	parts, err := in.partitions(ctx)
	if err != nil {
		return nil, err
	}
	var all []*doc
	for _, p := range parts {
		docs, err := findDocs(ctx, in.db.Collection(p.name), bson.D{{Key: "server_id", Value: serverID}})
		if err != nil {
			return nil, fmt.Errorf("mongo: inbox find %s in %s: %w", serverID, p.name, err)
		}
		all = append(all, docs...)
	}
	all = dedupe(all)
	slices.SortFunc(all, func(a, b *doc) int { return bytes.Compare(a.ID[:], b.ID[:]) })
	out := make([]storage.InboxEntry, len(all))
	for i, d := range all {
		out[i] = storage.InboxEntry{Msg: d.msg()}
	}
	return out, nil
}

// seqChunk is how many seqs one $in list carries.
const seqChunk = 5000

// bySeqs runs fn on every partition with the filter receiver_id = user AND
// seq in (chunk of seqs).
func (in *Inbox) bySeqs(ctx context.Context, op, userID string, seqs []int64,
	fn func(coll *mongo.Collection, filter bson.D) error) error {
	if len(seqs) == 0 {
		return nil
	}
	parts, err := in.partitions(ctx)
	if err != nil {
		return err
	}
	for _, p := range parts {
		for rest := seqs; len(rest) > 0; {
			n := min(len(rest), seqChunk)
			filter := bson.D{{Key: "receiver_id", Value: userID}, {Key: "seq", Value: bson.D{{Key: "$in", Value: rest[:n]}}}}
			if err := fn(in.db.Collection(p.name), filter); err != nil {
				return fmt.Errorf("mongo: inbox %s in %s: %w", op, p.name, err)
			}
			rest = rest[n:]
		}
	}
	return nil
}

// DeleteBySeqs implements storage.Inbox.
func (in *Inbox) DeleteBySeqs(ctx context.Context, userID string, seqs []int64) error {
	return in.bySeqs(ctx, "delete", userID, seqs, func(coll *mongo.Collection, filter bson.D) error {
		_, err := coll.DeleteMany(ctx, filter)
		return err
	})
}

// MarkRead implements storage.Inbox.
func (in *Inbox) MarkRead(ctx context.Context, userID string, seqs []int64) error {
	update := bson.D{{Key: "$set", Value: bson.D{{Key: "is_read", Value: true}}}}
	return in.bySeqs(ctx, "mark read", userID, seqs, func(coll *mongo.Collection, filter bson.D) error {
		_, err := coll.UpdateMany(ctx, filter, update)
		return err
	})
}

// DeleteByServerID implements storage.Inbox.
func (in *Inbox) DeleteByServerID(ctx context.Context, serverID string) error {
	parts, err := in.partitions(ctx)
	if err != nil {
		return err
	}
	for _, p := range parts {
		if _, err := in.db.Collection(p.name).DeleteMany(ctx, bson.D{{Key: "server_id", Value: serverID}}); err != nil {
			return fmt.Errorf("mongo: inbox delete %s in %s: %w", serverID, p.name, err)
		}
	}
	return nil
}

// Database is the database the inbox lives in (for tests and tools).
func (in *Inbox) Database() *mongo.Database { return in.db }
