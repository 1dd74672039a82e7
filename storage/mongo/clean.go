package mongo

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/bson"
	"go.mongodb.org/mongo-driver/mongo/options"

	"github.com/sandcat-im/sandcat/im/wire"
)

func nowMs() int64 { return time.Now().UnixMilli() }

// survivorBatch is how many survivors of a dropped partition one insert carries.
const survivorBatch = 1000

// Clean implements storage.Inbox. Partitions whose whole period is before
// olderThanMs are dropped (their entries of exceptTypes copied first into
// the base collection); the partition that straddles olderThanMs and the
// base collection lose their expired entries by an index range on
// send_time. The count of a dropped partition is its collection count
// (count metadata on MongoDB) minus the survivors.
func (in *Inbox) Clean(ctx context.Context, olderThanMs int64, exceptTypes []wire.MsgType) (int64, error) {
	parts, err := in.partitions(ctx)
	if err != nil {
		return 0, err
	}
	except := make([]int32, len(exceptTypes))
	for i, t := range exceptTypes {
		except[i] = int32(t)
	}
	var total int64
	for _, p := range parts {
		switch {
		case !p.base && p.end <= olderThanMs:
			n, err := in.dropPartition(ctx, p, except)
			total += n
			if err != nil {
				return total, err
			}
		case p.start < olderThanMs: // the boundary partition, or the base collection
			filter := bson.D{{Key: "send_time", Value: bson.D{{Key: "$lt", Value: olderThanMs}}}}
			if len(except) > 0 {
				filter = append(filter, bson.E{Key: "msg_type", Value: bson.D{{Key: "$nin", Value: except}}})
			}
			res, err := in.db.Collection(p.name).DeleteMany(ctx, filter)
			if err != nil {
				return total, fmt.Errorf("mongo: inbox clean %s: %w", p.name, err)
			}
			total += res.DeletedCount
		}
	}
	return total, nil
}

// dropPartition copies p's entries of the except types into the base
// collection, then drops p. It returns how many entries went.
func (in *Inbox) dropPartition(ctx context.Context, p partition, except []int32) (int64, error) {
	coll := in.db.Collection(p.name)
	var kept int64
	if len(except) > 0 {
		cur, err := coll.Find(ctx, bson.D{{Key: "msg_type", Value: bson.D{{Key: "$in", Value: except}}}},
			options.Find().SetBatchSize(survivorBatch))
		if err != nil {
			return 0, fmt.Errorf("mongo: inbox clean %s: find survivors: %w", p.name, err)
		}
		defer func() { _ = cur.Close(context.Background()) }()
		base := in.db.Collection(in.prefix)
		batch := make([]any, 0, survivorBatch)
		flush := func() error {
			if len(batch) == 0 {
				return nil
			}
			if err := in.ensure(ctx, basePartition(in.prefix)); err != nil {
				return err
			}
			if err := insertIgnoringDuplicates(ctx, base, batch); err != nil {
				return fmt.Errorf("mongo: inbox clean %s: copy survivors to %s: %w", p.name, in.prefix, err)
			}
			kept += int64(len(batch))
			batch = batch[:0]
			return nil
		}
		for cur.Next(ctx) {
			var d doc
			if err := cur.Decode(&d); err != nil {
				return 0, fmt.Errorf("mongo: inbox clean %s: decode survivor: %w", p.name, err)
			}
			batch = append(batch, &d)
			if len(batch) == survivorBatch {
				if err := flush(); err != nil {
					return 0, err
				}
			}
		}
		if err := cur.Err(); err != nil {
			return 0, fmt.Errorf("mongo: inbox clean %s: find survivors: %w", p.name, err)
		}
		if err := flush(); err != nil {
			return 0, err
		}
	}
	n, err := coll.EstimatedDocumentCount(ctx)
	if err != nil {
		return 0, fmt.Errorf("mongo: inbox clean %s: count: %w", p.name, err)
	}
	if err := coll.Drop(ctx); err != nil {
		return 0, fmt.Errorf("mongo: inbox clean: drop %s: %w", p.name, err)
	}
	in.forget(p.name)
	deleted := max(n-kept, 0)
	in.log.Info("mongo inbox: partition dropped", "collection", p.name, "entries", deleted, "kept", kept)
	return deleted, nil
}
