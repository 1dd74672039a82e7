package storage

import (
	"context"
	"fmt"
)

// SeqKind chooses one of a user's two sequence counters (sandcat-wire.md §4.1).
type SeqKind int

const (
	// SeqSend is the counter of the frames a user sent (column send_max_seq).
	SeqSend SeqKind = iota + 1
	// SeqRecv is the counter of the things delivered to a user (column rec_max_seq).
	SeqRecv
)

func (k SeqKind) String() string {
	switch k {
	case SeqSend:
		return "send"
	case SeqRecv:
		return "recv"
	}
	return fmt.Sprintf("SeqKind(%d)", int(k))
}

// Valid reports whether k is SeqSend or SeqRecv.
func (k SeqKind) Valid() bool { return k == SeqSend || k == SeqRecv }

// SeqCeilings keeps the durable per-user ceilings of the send and recv
// counters (table `sequence`). A ceiling only grows: every seq ever handed out
// is at most the ceiling of its counter, so after a restart the counters
// continue above it and never reissue a value.
type SeqCeilings interface {
	// Get returns the two ceilings of a user; (0, 0) for a user without a row.
	Get(ctx context.Context, userID string) (send, recv int64, err error)
	// Raise atomically adds by (> 0) to the kind ceiling of every user,
	// creating missing rows (from 0), and returns the new ceilings in argument
	// order. All users are raised in one statement or transaction. A user
	// listed twice is raised once and both positions get the same value.
	// Concurrent Raises of one user never return the same ceiling.
	Raise(ctx context.Context, kind SeqKind, userIDs []string, by int64) ([]int64, error)
}

// CheckRaise validates the arguments of SeqCeilings.Raise (for implementations).
func CheckRaise(kind SeqKind, by int64) error {
	if !kind.Valid() {
		return fmt.Errorf("storage: raise: invalid seq kind %d", int(kind))
	}
	if by <= 0 {
		return fmt.Errorf("storage: raise: by must be positive, got %d", by)
	}
	return nil
}
