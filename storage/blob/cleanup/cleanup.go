// Package cleanup deletes stored files that are past a retention and that no
// stored data refers to any more: the original's README TODO "delete minio
// file by period" (sandcat-wire.md §7), for every blob.Store (local disk,
// MinIO).
//
// One pass (Cleaner.Once) lists each bucket; objects whose ModTime is older
// than now − Retention become candidates, except the default avatars, which
// are never deleted. Candidates are asked of Referenced in batches; those no
// row refers to (as a user's avatar, in a group's avatar list, as the object
// of a message) are deleted. Young objects are never candidates, so a file
// uploaded and not yet referenced (its message still in flight) is safe as
// long as Retention is far longer than a message's way to the database.
//
// A file that was unreferenced when checked but is referenced again before
// its deletion (a client forwarding an old message with the same key) is
// still deleted: nothing is lost that the retention had not already given up
// on, and the window is one batch long.
package cleanup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/sandcat-im/sandcat/storage/blob"
)

// Referenced tells which object names the stored data still refers to.
// storage/sqlite.Store and storage/postgres.Store implement it; AnyOf
// combines several (e.g. PostgreSQL plus an inbox kept elsewhere).
type Referenced interface {
	// ReferencedFiles returns, among names (distinct, valid object names of
	// either bucket), those that some stored row refers to (a user's avatar,
	// an element of a group's avatar list, the object of a file, image,
	// video or audio message, ...); a name absent from the map, or mapped to
	// false, is unreferenced and may be deleted. An error means nothing is
	// deleted.
	ReferencedFiles(ctx context.Context, names []string) (map[string]bool, error)
}

// Store is the part of blob.Store the cleaner uses.
type Store interface {
	List(ctx context.Context, bucket blob.Bucket, fn func(blob.Info) error) error
	Delete(ctx context.Context, bucket blob.Bucket, name string) error
}

// Defaults of Options.
const (
	DefaultInterval  = time.Hour
	DefaultBatchSize = 1000
)

// Options configure a Cleaner.
type Options struct {
	Store Store      // required
	Refs  Referenced // required
	// Retention is the age (from the object's ModTime) below which no object
	// is ever deleted; required, > 0.
	Retention time.Duration
	// Interval between passes of Run (DefaultInterval if 0).
	Interval time.Duration
	// Buckets to clean (both, blob.Buckets(), if empty).
	Buckets []blob.Bucket
	// BatchSize is how many names one ReferencedFiles call checks
	// (DefaultBatchSize if 0). A call typically reads the message tables
	// once, so larger batches mean fewer scans.
	BatchSize int
	// Logger receives one line per pass and per deleted object (discarded if nil).
	Logger *slog.Logger
	// Now is the clock (time.Now if nil).
	Now func() time.Time
}

// Cleaner deletes old unreferenced files.
type Cleaner struct {
	o        Options
	defaults map[string]bool
}

// New checks o and returns a Cleaner.
func New(o Options) (*Cleaner, error) {
	if o.Store == nil {
		return nil, errors.New("cleanup: Options.Store is nil")
	}
	if o.Refs == nil {
		return nil, errors.New("cleanup: Options.Refs is nil")
	}
	if o.Retention <= 0 {
		return nil, fmt.Errorf("cleanup: retention %v must be positive", o.Retention)
	}
	if o.Interval < 0 || o.BatchSize < 0 {
		return nil, fmt.Errorf("cleanup: negative interval %v or batch size %d", o.Interval, o.BatchSize)
	}
	if o.Interval == 0 {
		o.Interval = DefaultInterval
	}
	if o.BatchSize == 0 {
		o.BatchSize = DefaultBatchSize
	}
	if len(o.Buckets) == 0 {
		o.Buckets = blob.Buckets()
	}
	for _, b := range o.Buckets {
		if err := blob.CheckBucket(b); err != nil {
			return nil, fmt.Errorf("cleanup: %w", err)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	c := &Cleaner{o: o, defaults: map[string]bool{}}
	for _, n := range blob.DefaultAvatarNames() {
		c.defaults[n] = true
	}
	return c, nil
}

// Run is New(o) then Cleaner.Run.
func Run(ctx context.Context, o Options) error {
	c, err := New(o)
	if err != nil {
		return err
	}
	return c.Run(ctx)
}

// Run makes a pass now and then every Interval until ctx is done, and then
// returns nil. A failed pass is logged and retried at the next tick.
func (c *Cleaner) Run(ctx context.Context) error {
	t := time.NewTicker(c.o.Interval)
	defer t.Stop()
	for {
		if _, err := c.Once(ctx); err != nil && ctx.Err() == nil {
			c.o.Logger.ErrorContext(ctx, "file cleanup failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Once makes one pass over every bucket and returns how many objects it
// deleted. It stops at the first error (a failed listing, reference check or
// deletion), returning what it deleted until then.
func (c *Cleaner) Once(ctx context.Context) (removed int, err error) {
	start := c.o.Now()
	cutoff := start.Add(-c.o.Retention)
	for _, b := range c.o.Buckets {
		n, err := c.bucket(ctx, b, cutoff)
		removed += n
		if err != nil {
			return removed, fmt.Errorf("cleanup %s: %w", b, err)
		}
	}
	c.o.Logger.InfoContext(ctx, "file cleanup done", "removed", removed, "older_than", cutoff,
		"took", time.Since(start).Round(time.Millisecond))
	return removed, nil
}

func (c *Cleaner) bucket(ctx context.Context, b blob.Bucket, cutoff time.Time) (int, error) {
	removed := 0
	batch := make([]string, 0, c.o.BatchSize)
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		n, err := c.sweep(ctx, b, batch)
		removed += n
		batch = batch[:0]
		return err
	}
	err := c.o.Store.List(ctx, b, func(i blob.Info) error {
		if !i.ModTime.Before(cutoff) || (b == blob.Avatars && c.defaults[i.Name]) {
			return nil
		}
		batch = append(batch, i.Name)
		if len(batch) < c.o.BatchSize {
			return nil
		}
		return flush()
	})
	if err != nil {
		return removed, err
	}
	return removed, flush()
}

// sweep deletes the names of batch that are not referenced.
func (c *Cleaner) sweep(ctx context.Context, b blob.Bucket, batch []string) (int, error) {
	refs, err := c.o.Refs.ReferencedFiles(ctx, batch)
	if err != nil {
		return 0, fmt.Errorf("check references: %w", err)
	}
	removed := 0
	for _, name := range batch {
		if refs[name] {
			continue
		}
		if err := c.o.Store.Delete(ctx, b, name); err != nil {
			return removed, err
		}
		removed++
		c.o.Logger.DebugContext(ctx, "unreferenced file deleted", "bucket", string(b), "name", name)
	}
	return removed, nil
}

// AnyOf is a Referenced that reports a name referenced when any of refs
// does. Each one is asked only about the names the previous ones did not
// claim.
func AnyOf(refs ...Referenced) Referenced { return anyOf(refs) }

type anyOf []Referenced

func (a anyOf) ReferencedFiles(ctx context.Context, names []string) (map[string]bool, error) {
	out := make(map[string]bool, len(names))
	left := names
	for _, r := range a {
		if len(left) == 0 {
			break
		}
		got, err := r.ReferencedFiles(ctx, left)
		if err != nil {
			return nil, err
		}
		next := make([]string, 0, len(left))
		for _, n := range left {
			if got[n] {
				out[n] = true
			} else {
				next = append(next, n)
			}
		}
		left = next
	}
	return out, nil
}
