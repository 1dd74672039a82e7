package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sandcat-im/sandcat/im/bus"
)

// producer writes records to one topic: one writer goroutine per partition,
// each sending everything queued for its partition in one produce request
// (group commit) with one request in flight, which keeps per-partition order
// through retries.
type producer struct {
	client   *kafka.Client
	topic    string
	acks     kafka.RequiredAcks
	cfg      ProducerConfig
	log      *slog.Logger
	onAcked  func(n int) // nil: not counted
	balancer kafka.Hash
	ids      []int // 0..partitions-1, for the balancer
	queues   []chan *pubReq

	closeMu sync.RWMutex // publish holds it shared while queueing; close exclusively
	closed  atomic.Bool
	quit    chan struct{}
	wg      sync.WaitGroup
	reqPool sync.Pool
}

type pubReq struct {
	key     []byte
	value   []byte
	headers []kafka.Header
	done    chan error
}

func (r *pubReq) size() int { return len(r.key) + len(r.value) }

func newProducer(client *kafka.Client, topic string, partitions int, acks kafka.RequiredAcks,
	cfg ProducerConfig, log *slog.Logger, onAcked func(int)) *producer {
	p := &producer{
		client:  client,
		topic:   topic,
		acks:    acks,
		cfg:     cfg,
		log:     log,
		onAcked: onAcked,
		queues:  make([]chan *pubReq, partitions),
		ids:     make([]int, partitions),
		quit:    make(chan struct{}),
	}
	p.reqPool.New = func() any { return &pubReq{done: make(chan error, 1)} }
	for i := range p.queues {
		p.ids[i] = i
		p.queues[i] = make(chan *pubReq, cfg.MaxBatchRecords)
		p.wg.Add(1)
		go p.writer(i)
	}
	return p
}

func (p *producer) partitions() int { return len(p.queues) }

// partitionOf is the partition of key: kafka-go's Hash balancer (FNV-1a, as
// Sarama), so other kafka-go or Sarama producers agree.
func (p *producer) partitionOf(key []byte) int {
	if key == nil {
		key = []byte{} // the Hash balancer round-robins nil keys
	}
	return p.balancer.Balance(kafka.Message{Key: key}, p.ids...)
}

// publish queues a record and waits for the broker's acknowledgement.
func (p *producer) publish(ctx context.Context, key string, value []byte, headers []kafka.Header) error {
	r := p.reqPool.Get().(*pubReq)
	r.key, r.value, r.headers = []byte(key), value, headers
	q := p.queues[p.partitionOf(r.key)]

	p.closeMu.RLock()
	if p.closed.Load() {
		p.closeMu.RUnlock()
		p.release(r)
		return bus.ErrClosed
	}
	select {
	case q <- r:
	case <-ctx.Done():
		p.closeMu.RUnlock()
		p.release(r)
		return ctx.Err()
	}
	p.closeMu.RUnlock()
	select {
	case err := <-r.done:
		p.release(r)
		return err
	case <-ctx.Done():
		return ctx.Err() // r is dropped: the writer answers into its buffered channel
	}
}

func (p *producer) release(r *pubReq) {
	r.key, r.value, r.headers = nil, nil, nil
	p.reqPool.Put(r)
}

// close writes what is queued and stops the writers. Later publishes return
// bus.ErrClosed.
func (p *producer) close() {
	if p.closed.Swap(true) {
		return
	}
	p.closeMu.Lock() // wait for publishes that are queueing
	close(p.quit)
	p.closeMu.Unlock()
	p.wg.Wait()
}

// writer owns partition part: it takes the first queued request, adds what
// else is queued (up to the batch limits), writes them in one request and
// answers them.
func (p *producer) writer(part int) {
	defer p.wg.Done()
	q := p.queues[part]
	batch := make([]*pubReq, 0, 64)
	var carry *pubReq // taken from q but over the byte limit of the last batch
	for {
		if carry != nil {
			batch, carry = append(batch, carry), nil
		} else {
			select {
			case r := <-q:
				batch = append(batch, r)
			case <-p.quit:
				// close waited for every queueing publish: what is queued now is all.
				for {
					batch, carry = p.fill(q, batch, carry)
					if len(batch) == 0 {
						return
					}
					p.flush(part, batch)
					clear(batch)
					batch = batch[:0]
				}
			}
		}
		batch, carry = p.fill(q, batch, carry)
		p.flush(part, batch)
		clear(batch)
		batch = batch[:0]
	}
}

// fill adds queued requests to batch without waiting, up to the limits; a
// request that would pass the byte limit is returned as carry.
func (p *producer) fill(q chan *pubReq, batch []*pubReq, carry *pubReq) ([]*pubReq, *pubReq) {
	if carry != nil {
		batch, carry = append(batch, carry), nil
	}
	size := 0
	for _, r := range batch {
		size += r.size()
	}
	for len(batch) < p.cfg.MaxBatchRecords {
		select {
		case r := <-q:
			if len(batch) > 0 && size+r.size() > p.cfg.MaxBatchBytes {
				return batch, r
			}
			batch = append(batch, r)
			size += r.size()
		default:
			return batch, nil
		}
	}
	return batch, nil
}

// flush writes batch to partition part, retrying, and answers every request.
func (p *producer) flush(part int, batch []*pubReq) {
	err := p.write(part, batch)
	if err == nil && p.onAcked != nil {
		p.onAcked(len(batch))
	}
	for _, r := range batch {
		r.done <- err
	}
}

func (p *producer) write(part int, batch []*pubReq) error {
	recs := make([]kafka.Record, len(batch))
	for attempt := 0; ; attempt++ {
		now := time.Now()
		for i, r := range batch { // readers are consumed by each attempt
			recs[i] = kafka.Record{Time: now, Key: kafka.NewBytes(r.key), Value: kafka.NewBytes(r.value), Headers: r.headers}
		}
		ctx, cancel := context.WithTimeout(context.Background(), p.cfg.Timeout)
		res, err := p.client.Produce(ctx, &kafka.ProduceRequest{
			Topic:        p.topic,
			Partition:    part,
			RequiredAcks: p.acks,
			Records:      kafka.NewRecordReader(recs...),
		})
		cancel()
		if err == nil && res != nil {
			err = res.Error
			for i, rerr := range res.RecordErrors {
				err = errors.Join(err, fmt.Errorf("record %d: %w", i, rerr))
			}
		}
		if err == nil {
			return nil
		}
		if !retriable(err) || attempt >= p.cfg.MaxRetry || p.closing() {
			p.log.Error("kafkabus: produce failed", "topic", p.topic, "partition", part,
				"records", len(batch), "attempts", attempt+1, "err", err)
			return fmt.Errorf("kafkabus: produce to %s/%d: %w", p.topic, part, err)
		}
		p.log.Warn("kafkabus: produce failed, retrying", "topic", p.topic, "partition", part,
			"records", len(batch), "attempt", attempt+1, "retry_in", p.cfg.RetryInterval, "err", err)
		time.Sleep(p.cfg.RetryInterval)
	}
}

// closing reports whether close was called: queued records get one attempt.
func (p *producer) closing() bool {
	select {
	case <-p.quit:
		return true
	default:
		return false
	}
}

// retriable reports whether a request may succeed if sent again: every
// error but the final ones (a record too large or invalid, a bad topic or
// configuration, authorization). Network errors, timeouts, leader moves and
// a broker not known yet (e.g. restarting) pass.
func retriable(err error) bool {
	var kerr kafka.Error
	if !errors.As(err, &kerr) {
		return true
	}
	switch kerr {
	case kafka.InvalidMessageSize, kafka.MessageSizeTooLarge, kafka.RecordListTooLarge,
		kafka.InvalidTopic, kafka.InvalidRequiredAcks, kafka.InvalidTimestamp, kafka.InvalidRecord,
		kafka.InvalidPartitionNumber, kafka.InvalidReplicationFactor, kafka.InvalidReplicaAssignment,
		kafka.InvalidConfiguration, kafka.InvalidRequest, kafka.PolicyViolation,
		kafka.UnsupportedVersion, kafka.UnsupportedForMessageFormat, kafka.UnsupportedCompressionType,
		kafka.TopicAuthorizationFailed, kafka.GroupAuthorizationFailed, kafka.ClusterAuthorizationFailed,
		kafka.TransactionalIDAuthorizationFailed, kafka.BrokerAuthorizationFailed,
		kafka.DelegationTokenAuthorizationFailed, kafka.SASLAuthenticationFailed,
		kafka.UnsupportedSASLMechanism, kafka.IllegalSASLState:
		return false
	}
	return true
}
