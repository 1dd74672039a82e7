package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sandcat-im/sandcat/im/bus"
)

// Headers of a record in the dead-letter topic, beside the original
// record's own headers. Its key and value are the original's.
const (
	HeaderError     = "dlq-error"     // the handler's last error
	HeaderTopic     = "dlq-topic"     // the original topic
	HeaderPartition = "dlq-partition" // the original partition, decimal
	HeaderOffset    = "dlq-offset"    // the original offset, decimal
	HeaderGroup     = "dlq-group"     // the consumer group that gave up
	HeaderAttempts  = "dlq-attempts"  // failed attempts of the record alone, decimal
	HeaderTime      = "dlq-time"      // the original record's time, unix ms, decimal
)

// Consume joins the consumer group group on the main topic and delivers the
// records of the partitions assigned to this member to h, until ctx ends (it
// returns ctx's error) or the bus is closed (bus.ErrClosed). See the package
// documentation for batching, commits, retries and dead-lettering.
//
// h is called concurrently for different partitions, and always gets a
// context that ends only with Consume (not with a rebalance: a batch in
// progress is finished and committed before the partition is given up).
// Every record has Redelivered set.
func (b *Bus) Consume(ctx context.Context, group string, h bus.Handler) error {
	if group == "" {
		return errors.New("kafkabus: consume: empty group")
	}
	b.closeMu.RLock()
	if b.closed.Load() {
		b.closeMu.RUnlock()
		return bus.ErrClosed
	}
	b.consumers.Add(1)
	b.closeMu.RUnlock()
	defer b.consumers.Done()

	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-b.quit:
			cancel()
		case <-ctx.Done():
		}
	}()

	k := b.cfg.Consumer
	cg, err := kafka.NewConsumerGroup(kafka.ConsumerGroupConfig{
		ID:                    group,
		Brokers:               b.cfg.Brokers,
		Dialer:                b.dialer,
		Topics:                []string{b.cfg.Topic},
		HeartbeatInterval:     k.HeartbeatInterval,
		SessionTimeout:        k.SessionTimeout,
		RebalanceTimeout:      k.RebalanceTimeout,
		JoinGroupBackoff:      time.Second,
		WatchPartitionChanges: true,
		StartOffset:           b.startOffset,
		Timeout:               b.cfg.ConnectTimeout,
		Logger:                kafkaLogger{b.log, slog.LevelDebug},
		ErrorLogger:           kafkaLogger{b.log, slog.LevelWarn},
	})
	if err != nil {
		return fmt.Errorf("kafkabus: consumer group %q: %w", group, err)
	}
	c := &groupConsumer{b: b, group: group, h: h, ctx: ctx}
	for {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			b.log.Warn("kafkabus: joining the consumer group failed, retrying", "group", group, "err", err)
			continue
		}
		assigned := gen.Assignments[b.cfg.Topic]
		ids := make([]int, len(assigned))
		for i, a := range assigned {
			ids[i] = a.ID
		}
		b.log.Info("kafkabus: partitions assigned", "group", group, "generation", gen.ID,
			"member", gen.MemberID, "topic", b.cfg.Topic, "partitions", ids)
		for _, a := range assigned {
			gen.Start(func(gctx context.Context) { c.partition(gctx, gen, a) })
		}
	}
	// Ends the generation (the partitions commit and stop) and leaves the group.
	if err := cg.Close(); err != nil {
		b.log.Warn("kafkabus: leaving the consumer group", "group", group, "err", err)
	}
	if parent.Err() != nil {
		return parent.Err()
	}
	return bus.ErrClosed
}

// groupConsumer is one Consume call.
type groupConsumer struct {
	b     *Bus
	group string
	h     bus.Handler
	ctx   context.Context // Consume's: given to the handler
}

// partitionRun consumes one assigned partition during one generation.
type partitionRun struct {
	*groupConsumer
	gen  *kafka.Generation
	id   int
	pctx context.Context // ends with the generation or with Consume
	msgs chan kafka.Message
	log  *slog.Logger

	backoff     time.Duration
	uncommitted int64 // an offset handled but not committed yet, or -1
	endGen      bool  // a commit failed: end the generation to rejoin
}

type outcome uint8

const (
	delivered outcome = iota // the handler accepted, or the record is dead-lettered
	exhausted                // a batch of several records failed MaxAttempts times
	stopped                  // the generation or Consume ended
)

// partition consumes one assigned partition until the generation ends. A
// function started by the generation that returns ends the generation, so
// it returns earlier only to end it on purpose: after a failed commit (the
// coordinator connection is broken or the generation is stale), the member
// rejoins and resumes from the committed offsets.
func (c *groupConsumer) partition(gctx context.Context, gen *kafka.Generation, a kafka.PartitionAssignment) {
	b, k := c.b, c.b.cfg.Consumer
	pctx, cancel := context.WithCancel(c.ctx)
	stopOnGen := context.AfterFunc(gctx, cancel)
	defer stopOnGen()
	p := &partitionRun{
		groupConsumer: c,
		gen:           gen,
		id:            a.ID,
		pctx:          pctx,
		msgs:          make(chan kafka.Message, k.MaxBatch),
		log:           b.log.With("group", c.group, "topic", b.cfg.Topic, "partition", a.ID),
		backoff:       k.MinBackoff,
		uncommitted:   -1,
	}
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:        b.cfg.Brokers,
		Topic:          b.cfg.Topic,
		Partition:      a.ID,
		Dialer:         b.dialer,
		QueueCapacity:  k.MaxBatch,
		MinBytes:       1,
		MaxBytes:       k.MaxBytes,
		MaxWait:        k.MaxWait,
		ReadBackoffMin: 50 * time.Millisecond,
		ReadBackoffMax: time.Second,
		Logger:         kafkaLogger{p.log, slog.LevelDebug},
		ErrorLogger:    kafkaLogger{p.log, slog.LevelWarn},
	})
	if err := r.SetOffset(a.Offset); err != nil { // only fails on a closed reader
		p.log.Error("kafkabus: set start offset", "offset", a.Offset, "err", err)
	}
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		p.pump(r)
	}()

	p.run()

	cancel()
	<-pumped
	if err := r.Close(); err != nil {
		p.log.Warn("kafkabus: close reader", "err", err)
	}
	if p.endGen {
		// Returning ends the generation: the member rejoins on a fresh
		// coordinator connection and resumes from the committed offsets.
		return
	}
	if p.uncommitted >= 0 {
		if err := p.commit(p.uncommitted); err != nil {
			p.log.Warn("kafkabus: final offset commit failed; records after it will be redelivered",
				"offset", p.uncommitted, "err", err)
		}
	}
	<-gctx.Done() // Consume's end is the generation's end too, through cg.Close
}

// pump moves fetched records to p.msgs until p.pctx ends.
func (p *partitionRun) pump(r *kafka.Reader) {
	for {
		m, err := r.FetchMessage(p.pctx)
		if err != nil {
			if p.pctx.Err() != nil {
				return
			}
			p.log.Warn("kafkabus: fetch failed, retrying", "err", err)
			if !sleepCtx(p.pctx, 100*time.Millisecond) {
				return
			}
			continue
		}
		select {
		case p.msgs <- m:
		case <-p.pctx.Done():
			return
		}
	}
}

// run delivers the partition's records until p.pctx ends.
func (p *partitionRun) run() {
	maxBatch := p.b.cfg.Consumer.MaxBatch
	buf := make([]kafka.Message, 0, maxBatch)
	var pending []kafka.Message // fetched, not delivered yet: a tail of buf
	singleUntil := int64(-1)    // records up to this offset go to the handler one at a time
	for {
		if len(pending) == 0 {
			var ok bool
			if pending, ok = p.next(buf[:0], maxBatch); !ok {
				return
			}
		}
		n := len(pending)
		if pending[0].Offset <= singleUntil {
			n = 1
		}
		batch := pending[:n]
		switch p.deliver(batch) {
		case stopped:
			return
		case exhausted:
			singleUntil = batch[n-1].Offset
			continue
		}
		if err := p.commit(batch[n-1].Offset + 1); err != nil {
			if p.pctx.Err() == nil {
				p.log.Warn("kafkabus: offset commit failed, rejoining the group",
					"offset", batch[n-1].Offset+1, "err", err)
				p.endGen = true
			}
			return
		}
		pending = pending[n:]
	}
}

// next waits for a record, then takes what else is fetched already, up to
// maxBatch.
func (p *partitionRun) next(buf []kafka.Message, maxBatch int) ([]kafka.Message, bool) {
	select {
	case m := <-p.msgs:
		buf = append(buf, m)
	case <-p.pctx.Done():
		return buf, false
	}
	for len(buf) < maxBatch {
		select {
		case m := <-p.msgs:
			buf = append(buf, m)
		default:
			return buf, true
		}
	}
	return buf, true
}

func toRecords(msgs []kafka.Message) []bus.Record {
	recs := make([]bus.Record, len(msgs))
	for i, m := range msgs {
		recs[i] = bus.Record{
			Offset:      m.Offset,
			Key:         string(m.Key),
			Value:       m.Value,
			Time:        m.Time.UnixMilli(),
			Redelivered: true, // see the package documentation
		}
	}
	return recs
}

// deliver hands batch to the handler until it accepts it, backing off
// between attempts. A single record that fails MaxAttempts times is
// dead-lettered; a batch of several is reported exhausted.
func (p *partitionRun) deliver(batch []kafka.Message) outcome {
	k := p.b.cfg.Consumer
	for attempt := 1; ; attempt++ {
		if p.pctx.Err() != nil {
			return stopped
		}
		recs := toRecords(batch)
		err := p.h(p.ctx, recs)
		if err == nil {
			p.b.metrics.Consumed(p.group, len(recs))
			p.backoff = k.MinBackoff
			return delivered
		}
		if p.pctx.Err() != nil {
			// Consume ends, or the partition goes to another member, which
			// delivers the batch again.
			return stopped
		}
		first, last := batch[0].Offset, batch[len(batch)-1].Offset
		if k.MaxAttempts > 0 && attempt >= k.MaxAttempts {
			if len(batch) > 1 {
				p.log.Warn("kafkabus: batch failed too often, delivering its records one at a time",
					"first", first, "last", last, "attempts", attempt, "err", err)
				p.b.metrics.Retried(p.group, len(recs))
				p.backoff = k.MinBackoff
				return exhausted
			}
			return p.deadLetter(batch[0], err, attempt)
		}
		p.log.Warn("kafkabus: handler failed, batch will be redelivered",
			"first", first, "last", last, "attempt", attempt, "backoff", p.backoff, "err", err)
		p.b.metrics.Retried(p.group, len(recs))
		if !p.sleep() {
			return stopped
		}
	}
}

// deadLetter writes a poison record to the dead-letter topic (retrying until
// it is acknowledged or the partition stops), then logs and counts it.
func (p *partitionRun) deadLetter(m kafka.Message, cause error, attempts int) outcome {
	headers := append(slices.Clone(m.Headers),
		kafka.Header{Key: HeaderError, Value: []byte(cause.Error())},
		kafka.Header{Key: HeaderTopic, Value: []byte(m.Topic)},
		kafka.Header{Key: HeaderPartition, Value: []byte(strconv.Itoa(m.Partition))},
		kafka.Header{Key: HeaderOffset, Value: []byte(strconv.FormatInt(m.Offset, 10))},
		kafka.Header{Key: HeaderGroup, Value: []byte(p.group)},
		kafka.Header{Key: HeaderAttempts, Value: []byte(strconv.Itoa(attempts))},
		kafka.Header{Key: HeaderTime, Value: []byte(strconv.FormatInt(m.Time.UnixMilli(), 10))},
	)
	for {
		err := p.b.dlq.publish(p.pctx, string(m.Key), m.Value, headers)
		if err == nil {
			break
		}
		if p.pctx.Err() != nil {
			return stopped
		}
		p.log.Error("kafkabus: writing a poison record to the dead-letter topic failed, retrying",
			"offset", m.Offset, "dead_letter_topic", p.b.cfg.DeadLetterTopic, "err", err)
		if !p.sleep() {
			return stopped
		}
	}
	p.log.Error("kafkabus: poison record moved to the dead-letter topic",
		"offset", m.Offset, "key", string(m.Key), "attempts", attempts,
		"dead_letter_topic", p.b.cfg.DeadLetterTopic, "err", cause)
	p.b.metrics.DeadLettered(p.group, 1)
	p.backoff = p.b.cfg.Consumer.MinBackoff
	return delivered
}

// commit commits next as the group's position in the partition. On failure
// next stays to commit: if the partition stops (or its generation ends)
// before a commit succeeds, the records after the committed offset are
// delivered again.
func (p *partitionRun) commit(next int64) error {
	if err := p.gen.CommitOffsets(map[string]map[int]int64{p.b.cfg.Topic: {p.id: next}}); err != nil {
		p.uncommitted = next
		return err
	}
	p.uncommitted = -1
	return nil
}

// sleep waits the current backoff, then doubles it; false if p.pctx ended.
func (p *partitionRun) sleep() bool {
	d := p.backoff
	p.backoff = min(p.backoff*2, p.b.cfg.Consumer.MaxBackoff)
	return sleepCtx(p.pctx, d)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
