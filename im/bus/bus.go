// Package bus is the message bus between the producers of messages (the
// gateway's send path, the API's notices) and the message server's consumer.
//
// A Publisher returns only once a record is durable. A consumer group reads
// records in publish order (per key at least), hands them to a Handler in
// batches, and commits its position only after the Handler returned nil: a
// failed batch is retried with backoff, never skipped. Delivery is therefore
// at-least-once; handlers must be idempotent (Record.Redelivered says when a
// record may have been seen before).
//
// Implementations: localbus (embedded, one SQLite file, for one process);
// Kafka later, behind the same interfaces.
package bus

import (
	"context"
	"errors"
)

// Record is one published value.
type Record struct {
	// Offset is the record's position in the log (strictly increasing in
	// delivery order within a partition).
	Offset int64
	// Key groups records whose relative order must hold (a conversation).
	Key string
	// Value is the payload; the handler must not keep it after returning
	// unless it copies it.
	Value []byte
	// Time is when the record was made durable, unix milliseconds.
	Time int64
	// Redelivered is true when the record may already have been handed to a
	// handler of this group (a retry after an error, or records past the
	// committed position after a restart). False guarantees it was not.
	Redelivered bool
}

// Handler processes a batch of records in order. Returning nil commits the
// position past the last record; an error makes the same batch be delivered
// again (with Redelivered set) after a backoff.
type Handler func(ctx context.Context, recs []Record) error

// Publisher appends records to the bus.
type Publisher interface {
	// Publish returns nil once the record is durable (it survives a crash of
	// the process). On error the record may or may not have been stored.
	Publish(ctx context.Context, key string, value []byte) error
}

// Consumer reads the bus as a consumer group.
type Consumer interface {
	// Consume delivers records after the group's committed position to h
	// until ctx is done, then returns ctx's error. Batches are delivered one
	// at a time, in order.
	Consume(ctx context.Context, group string, h Handler) error
}

// ErrClosed is returned by operations on a closed bus.
var ErrClosed = errors.New("bus: closed")
