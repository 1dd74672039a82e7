package matrix

import (
	"context"
	"errors"
	"sync"

	"github.com/sandcat-im/sandcat/im/msgserver"
	"github.com/sandcat-im/sandcat/im/wire"
)

// maxParallelRooms bounds the rooms one bus batch sends to at the same
// time. The homeserver, not the bridge, is the bottleneck: Synapse on
// SQLite (one Python process) reaches its ceiling at about 16 senders in
// parallel (BENCHMARKS.md, scenario e).
const maxParallelRooms = 16

// roomKey is the key of the Matrix room a Sandcat record is bridged to:
// records with the same key are handled one after another, in bus order;
// records with different keys may be handled at the same time. "" marks a
// record that must see every earlier record of the batch handled, and be
// handled before any later one (a barrier): a type that is not known to
// touch a single room.
func roomKey(m *wire.Msg) string {
	if m.GroupID != "" {
		return "g:" + m.GroupID
	}
	if msgserver.Classify(m.MsgType).Group {
		// toMatrix reads the group from receiver_id when group_id is empty.
		return "g:" + m.ReceiverID
	}
	switch m.MsgType {
	case wire.MsgTypeSingleMsg:
		// Both directions of a chat go to the same DM room.
		a, b := m.SendID, m.ReceiverID
		if a > b {
			a, b = b, a
		}
		return "d:" + a + "\x00" + b
	}
	return ""
}

// roomBatch is one room's records of a batch, in bus order.
type roomBatch struct {
	key  string
	msgs []*wire.Msg
}

// splitByRoom cuts msgs into segments separated by barriers (see roomKey);
// each segment lists its rooms in order of first appearance, each room
// with its records in bus order. A barrier is a segment of its own.
func splitByRoom(msgs []*wire.Msg) [][]roomBatch {
	var (
		out []roomBatch
		all [][]roomBatch
		at  = map[string]int{}
	)
	flush := func() {
		if len(out) > 0 {
			all = append(all, out)
			out, at = nil, map[string]int{}
		}
	}
	for _, m := range msgs {
		k := roomKey(m)
		if k == "" {
			flush()
			all = append(all, []roomBatch{{msgs: []*wire.Msg{m}}})
			continue
		}
		i, ok := at[k]
		if !ok {
			i = len(out)
			at[k] = i
			out = append(out, roomBatch{key: k})
		}
		out[i].msgs = append(out[i].msgs, m)
	}
	flush()
	return all
}

// forEachRoom runs each room's records through handle, in order within the
// room, with up to limit rooms at a time, and returns once every room is
// done. A room stops at its first error (its later records must not
// overtake the failed one); the other rooms go on to their end. The
// result joins the rooms' errors (nil when none failed).
func forEachRoom(ctx context.Context, rooms []roomBatch, limit int, handle func(context.Context, *wire.Msg) error) error {
	runRoom := func(r roomBatch) error {
		for _, m := range r.msgs {
			if err := handle(ctx, m); err != nil {
				return err
			}
		}
		return nil
	}
	if len(rooms) == 1 || limit <= 1 {
		var errs []error
		for _, r := range rooms {
			if err := runRoom(r); err != nil {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, limit)
	)
	for _, r := range rooms {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := runRoom(r); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// bridgeOne bridges one Sandcat message to Matrix (HandleRecords' step):
// a refusal for good is logged and skipped; any other error is returned,
// for the bus to deliver the batch again.
func (b *Bridge) bridgeOne(ctx context.Context, m *wire.Msg) error {
	err := b.toMatrix(ctx, m)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if permanent(err) {
		b.log.Warn("message not bridged to Matrix", "server_id", m.ServerID, "group_id", m.GroupID, "err", err)
		return nil
	}
	return err
}
