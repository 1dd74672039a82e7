// Package localbus is the embedded message bus: a durable append-only log in
// its own SQLite file (WAL, synchronous=NORMAL: a committed record survives a
// SIGKILL of the process), for a single process.
//
// One writer goroutine owns every write. Concurrent Publish calls are queued
// to it; it writes everything queued in one transaction (group commit) and
// then wakes the publishers and the consumers (a channel signal, no polling).
// Consumer positions are committed through the same writer, in the same
// file. Records every known group has consumed are deleted periodically
// (retention).
//
// The log is one partition: consumers see every record in publish order,
// which keeps per-key order trivially.
package localbus

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sandcat-im/sandcat/im/bus"
	_ "modernc.org/sqlite" // database/sql driver "sqlite"
)

// Options tune a Log. Zero values take the defaults.
type Options struct {
	// MaxBatch is the most records handed to a handler at once (default 256).
	MaxBatch int
	// MaxWriteBatch is the most queued requests written in one transaction
	// (default 2048).
	MaxWriteBatch int
	// RetentionInterval is how often records consumed by every group are
	// deleted (default 10 s; negative disables retention).
	RetentionInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait before a failed batch is
	// delivered again (defaults 20 ms and 5 s; doubling).
	MinBackoff, MaxBackoff time.Duration
	// Logger receives handler failures and write errors (default slog.Default()).
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.MaxWriteBatch <= 0 {
		o.MaxWriteBatch = 2048
	}
	if o.RetentionInterval == 0 {
		o.RetentionInterval = 10 * time.Second
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 20 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = 5 * time.Second
		if o.MaxBackoff < o.MinBackoff {
			o.MaxBackoff = o.MinBackoff
		}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Log is the embedded bus. It implements bus.Publisher and bus.Consumer.
type Log struct {
	db    *sql.DB
	wconn *sql.Conn // the writer's own connection
	// Statements of the writer, prepared once on wconn. Transactions are
	// plain BEGIN/COMMIT statements on wconn, which only the writer uses
	// (database/sql's Tx would re-prepare every statement per transaction).
	begin, commitTx, rollback, ins, upd *sql.Stmt
	sel                                 *sql.Stmt // consumers' read, on the pool
	opts                                Options
	log                                 *slog.Logger

	reqs    chan *request
	closeMu sync.RWMutex // Publish holds it shared while queueing; Close exclusively
	closed  atomic.Bool
	quit    chan struct{} // closed by Close: the writer drains and exits
	done    chan struct{} // closed when the writer has exited

	// last is the highest durable offset; openMax the highest offset that
	// existed when the file was opened (records up to it may have been
	// delivered by an earlier process).
	last    atomic.Int64
	openMax int64

	mu     sync.Mutex
	wake   chan struct{} // closed and replaced after each write with new records
	active map[string]bool

	reqPool sync.Pool
}

var (
	_ bus.Publisher = (*Log)(nil)
	_ bus.Consumer  = (*Log)(nil)
)

type reqKind uint8

const (
	reqPublish reqKind = iota
	reqCommit
	reqRetain
)

type request struct {
	kind  reqKind
	key   string // publish: key; commit: group
	value []byte
	pos   int64 // commit
	done  chan error
}

const schema = `
CREATE TABLE IF NOT EXISTS records (
	off   INTEGER PRIMARY KEY AUTOINCREMENT,
	key   TEXT    NOT NULL,
	value BLOB    NOT NULL,
	ts    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
	grp TEXT PRIMARY KEY,
	pos INTEGER NOT NULL
);`

// Open opens (creating if needed) the log file at path.
func Open(ctx context.Context, path string, opts Options) (*Log, error) {
	opts.defaults()
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("localbus: create %s: %w", dir, err)
		}
	}
	dsn := "file:" + path + "?_txlock=immediate" +
		"&_pragma=busy_timeout(10000)&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("localbus: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	l := &Log{
		db:     db,
		opts:   opts,
		log:    opts.Logger,
		reqs:   make(chan *request, opts.MaxWriteBatch),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		wake:   make(chan struct{}),
		active: make(map[string]bool),
	}
	l.reqPool.New = func() any { return &request{done: make(chan error, 1)} }
	if err := l.init(ctx); err != nil {
		_ = db.Close()
		return nil, err
	}
	go l.writer()
	return l, nil
}

func (l *Log) init(ctx context.Context) (err error) {
	if _, err := l.db.ExecContext(ctx, schema); err != nil {
		return fmt.Errorf("localbus: create schema: %w", err)
	}
	var maxOff sql.NullInt64
	// sqlite_sequence keeps the highest offset ever assigned, even after
	// retention deleted every record.
	err = l.db.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'records'`).Scan(&maxOff)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("localbus: read last offset: %w", err)
	}
	l.last.Store(maxOff.Int64)
	l.openMax = maxOff.Int64

	l.wconn, err = l.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("localbus: writer connection: %w", err)
	}
	defer func() {
		if err != nil {
			_ = l.wconn.Close()
		}
	}()
	prep := func(dst **sql.Stmt, q string) {
		if err != nil {
			return
		}
		if *dst, err = l.wconn.PrepareContext(ctx, q); err != nil {
			err = fmt.Errorf("localbus: prepare %q: %w", q, err)
		}
	}
	prep(&l.begin, `BEGIN IMMEDIATE`)
	prep(&l.commitTx, `COMMIT`)
	prep(&l.rollback, `ROLLBACK`)
	prep(&l.ins, `INSERT INTO records(key, value, ts) VALUES (?, ?, ?)`)
	prep(&l.upd, `INSERT INTO positions(grp, pos) VALUES (?, ?)
		ON CONFLICT(grp) DO UPDATE SET pos = MAX(pos, excluded.pos)`)
	if err != nil {
		return err
	}
	if l.sel, err = l.db.PrepareContext(ctx,
		`SELECT off, key, value, ts FROM records WHERE off > ? ORDER BY off LIMIT ?`); err != nil {
		return fmt.Errorf("localbus: prepare read: %w", err)
	}
	return nil
}

// Close stops the writer after it wrote what was queued and closes the file.
// Consumers return bus.ErrClosed.
func (l *Log) Close() error {
	if l.closed.Swap(true) {
		return nil
	}
	l.closeMu.Lock() // wait for Publish calls that are queueing
	close(l.quit)
	l.closeMu.Unlock()
	<-l.done
	var errs []error
	for _, st := range []*sql.Stmt{l.begin, l.commitTx, l.rollback, l.ins, l.upd, l.sel} {
		errs = append(errs, st.Close())
	}
	errs = append(errs, l.wconn.Close(), l.db.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("localbus: close: %w", err)
	}
	return nil
}

// Publish appends a record and returns once it is committed to the file.
// If ctx ends first, Publish returns ctx's error and the record may still be
// written.
func (l *Log) Publish(ctx context.Context, key string, value []byte) error {
	r := l.reqPool.Get().(*request)
	r.kind, r.key, r.value = reqPublish, key, value
	if err := l.submit(ctx, r); err != nil {
		return err
	}
	return nil
}

// submit queues r and waits for its result. r goes back to the pool only
// when its result was received.
func (l *Log) submit(ctx context.Context, r *request) error {
	l.closeMu.RLock()
	if l.closed.Load() {
		l.closeMu.RUnlock()
		l.reqPool.Put(r)
		return bus.ErrClosed
	}
	select {
	case l.reqs <- r:
	case <-ctx.Done():
		l.closeMu.RUnlock()
		l.reqPool.Put(r)
		return ctx.Err()
	}
	l.closeMu.RUnlock()
	select {
	case err := <-r.done:
		r.key, r.value = "", nil
		l.reqPool.Put(r)
		return err
	case <-ctx.Done():
		return ctx.Err() // r is dropped: the writer still answers into its buffered channel
	}
}

func (l *Log) writer() {
	defer close(l.done)
	var tick <-chan time.Time
	if l.opts.RetentionInterval > 0 {
		t := time.NewTicker(l.opts.RetentionInterval)
		defer t.Stop()
		tick = t.C
	}
	batch := make([]*request, 0, 64)
	for {
		select {
		case r := <-l.reqs:
			batch = append(batch, r)
		case <-tick:
			if err := l.retain(); err != nil {
				l.log.Error("localbus: retention failed", "err", err)
			}
			continue
		case <-l.quit:
			// Close waited for every queueing Publish: what is queued now is all.
			for len(l.reqs) > 0 {
				batch = append(batch, <-l.reqs)
				if len(batch) >= l.opts.MaxWriteBatch {
					l.flush(batch)
					batch = batch[:0]
				}
			}
			l.flush(batch)
			return
		}
	drain:
		for len(batch) < l.opts.MaxWriteBatch {
			select {
			case r := <-l.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		l.flush(batch)
		clear(batch)
		batch = batch[:0]
	}
}

// flush writes a batch of requests in one transaction and answers them.
func (l *Log) flush(batch []*request) {
	if len(batch) == 0 {
		return
	}
	last, published, err := l.write(batch)
	if err != nil {
		l.log.Error("localbus: write failed", "requests", len(batch), "err", err)
	} else if published {
		// Visible to consumers before any publisher returns.
		l.last.Store(last)
		l.mu.Lock()
		close(l.wake)
		l.wake = make(chan struct{})
		l.mu.Unlock()
	}
	for _, r := range batch {
		if r.kind == reqRetain && err == nil {
			r.done <- l.retain()
			continue
		}
		r.done <- err
	}
}

func (l *Log) write(batch []*request) (last int64, published bool, err error) {
	ctx := context.Background()
	if _, err := l.begin.ExecContext(ctx); err != nil {
		return 0, false, fmt.Errorf("localbus: begin: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = l.rollback.ExecContext(ctx)
		}
	}()
	now := time.Now().UnixMilli()
	for _, r := range batch {
		switch r.kind {
		case reqPublish:
			res, err := l.ins.ExecContext(ctx, r.key, r.value, now)
			if err != nil {
				return 0, false, fmt.Errorf("localbus: append: %w", err)
			}
			if last, err = res.LastInsertId(); err != nil {
				return 0, false, fmt.Errorf("localbus: append: %w", err)
			}
			published = true
		case reqCommit:
			if _, err := l.upd.ExecContext(ctx, r.key, r.pos); err != nil {
				return 0, false, fmt.Errorf("localbus: commit position of %q: %w", r.key, err)
			}
		}
	}
	if _, err := l.commitTx.ExecContext(ctx); err != nil {
		return 0, false, fmt.Errorf("localbus: commit: %w", err)
	}
	return last, published, nil
}

// retainChunk bounds one retention DELETE so the writer is never held long.
const retainChunk = 10000

// retain deletes the records every known group has consumed (writer only).
// Records are kept while no group has registered.
func (l *Log) retain() error {
	ctx := context.Background()
	var minPos sql.NullInt64
	if err := l.wconn.QueryRowContext(ctx, `SELECT MIN(pos) FROM positions`).Scan(&minPos); err != nil {
		return fmt.Errorf("localbus: retention: %w", err)
	}
	if !minPos.Valid {
		return nil
	}
	var lo sql.NullInt64
	if err := l.wconn.QueryRowContext(ctx, `SELECT MIN(off) FROM records`).Scan(&lo); err != nil {
		return fmt.Errorf("localbus: retention: %w", err)
	}
	for lo.Valid && lo.Int64 <= minPos.Int64 {
		upTo := min(lo.Int64+retainChunk-1, minPos.Int64)
		if _, err := l.wconn.ExecContext(ctx, `DELETE FROM records WHERE off <= ?`, upTo); err != nil {
			return fmt.Errorf("localbus: retention: %w", err)
		}
		lo.Int64 = upTo + 1
	}
	return nil
}

// Retain runs retention now (it also runs every Options.RetentionInterval).
func (l *Log) Retain(ctx context.Context) error {
	r := l.reqPool.Get().(*request)
	r.kind = reqRetain
	return l.submit(ctx, r)
}

// Len returns how many records the file holds (consumed ones included until
// retention deletes them).
func (l *Log) Len(ctx context.Context) (int64, error) {
	var n int64
	if err := l.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM records`).Scan(&n); err != nil {
		return 0, fmt.Errorf("localbus: count: %w", err)
	}
	return n, nil
}

// LastOffset is the offset of the newest durable record (0 if none ever).
func (l *Log) LastOffset() int64 { return l.last.Load() }

// Position returns the committed position of a group (0 if it never committed).
func (l *Log) Position(ctx context.Context, group string) (int64, error) {
	var pos int64
	err := l.db.QueryRowContext(ctx, `SELECT pos FROM positions WHERE grp = ?`, group).Scan(&pos)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("localbus: position of %q: %w", group, err)
	}
	return pos, nil
}

func (l *Log) commit(ctx context.Context, group string, pos int64) error {
	r := l.reqPool.Get().(*request)
	r.kind, r.key, r.pos = reqCommit, group, pos
	return l.submit(ctx, r)
}

func (l *Log) wakeChan() chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.wake
}

// ErrGroupActive is returned by Consume when the group already has a consumer
// in this process.
var ErrGroupActive = errors.New("localbus: group already consuming")

// Consume delivers the records after the group's committed position to h, in
// batches of at most Options.MaxBatch, until ctx ends (it returns ctx's error)
// or the log is closed (bus.ErrClosed). A batch is committed only after h
// returned nil; on error it is delivered again after a backoff, with
// Redelivered set. A group has at most one consumer at a time; a new group
// starts at the oldest retained record and, from then on, holds back
// retention until it has consumed.
func (l *Log) Consume(ctx context.Context, group string, h bus.Handler) error {
	l.mu.Lock()
	if l.active[group] {
		l.mu.Unlock()
		return fmt.Errorf("%w: %q", ErrGroupActive, group)
	}
	l.active[group] = true
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		delete(l.active, group)
		l.mu.Unlock()
	}()

	pos, err := l.Position(ctx, group)
	if err != nil {
		return err
	}
	if err := l.commit(ctx, group, pos); err != nil { // registers the group for retention
		return err
	}
	backoff := l.opts.MinBackoff
	for {
		wake := l.wakeChan()
		if l.last.Load() <= pos {
			select {
			case <-wake:
				continue
			case <-ctx.Done():
				return ctx.Err()
			case <-l.quit:
				return bus.ErrClosed
			}
		}
		recs, err := l.read(ctx, pos)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			l.log.Error("localbus: read failed", "group", group, "err", err)
			if err := l.sleep(ctx, &backoff); err != nil {
				return err
			}
			continue
		}
		if len(recs) == 0 { // nothing past pos (cannot happen unless the file was edited)
			select {
			case <-wake:
				continue
			case <-ctx.Done():
				return ctx.Err()
			case <-l.quit:
				return bus.ErrClosed
			}
		}
		for {
			err := h(ctx, recs)
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			l.log.Warn("localbus: handler failed, batch will be redelivered",
				"group", group, "first", recs[0].Offset, "last", recs[len(recs)-1].Offset,
				"backoff", backoff, "err", err)
			if err := l.sleep(ctx, &backoff); err != nil {
				return err
			}
			for i := range recs {
				recs[i].Redelivered = true
			}
		}
		backoff = l.opts.MinBackoff
		next := recs[len(recs)-1].Offset
		if err := l.commit(ctx, group, next); err != nil {
			return err
		}
		pos = next
	}
}

// sleep waits *backoff (then doubles it up to MaxBackoff) unless ctx ends or
// the log closes.
func (l *Log) sleep(ctx context.Context, backoff *time.Duration) error {
	t := time.NewTimer(*backoff)
	defer t.Stop()
	*backoff = min(*backoff*2, l.opts.MaxBackoff)
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-l.quit:
		return bus.ErrClosed
	}
}

func (l *Log) read(ctx context.Context, after int64) ([]bus.Record, error) {
	rows, err := l.sel.QueryContext(ctx, after, l.opts.MaxBatch)
	if err != nil {
		return nil, fmt.Errorf("localbus: read: %w", err)
	}
	defer func() { _ = rows.Close() }()
	recs := make([]bus.Record, 0, 16)
	for rows.Next() {
		var r bus.Record
		if err := rows.Scan(&r.Offset, &r.Key, &r.Value, &r.Time); err != nil {
			return nil, fmt.Errorf("localbus: read: %w", err)
		}
		r.Redelivered = r.Offset <= l.openMax
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("localbus: read: %w", err)
	}
	return recs, nil
}
