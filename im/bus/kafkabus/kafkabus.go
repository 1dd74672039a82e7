// Package kafkabus is the message bus on Kafka (any Kafka-protocol broker),
// for several processes: bus.Publisher and bus.Consumer on one topic.
//
// Publishing. A record goes to the partition that kafka-go's Hash balancer
// (FNV-1a, Sarama-compatible) gives its key, so the records of one key (a
// conversation) stay in publish order. Each partition has one writer
// goroutine that sends everything queued for it in one produce request
// (group commit, no linger: what accumulates while a request is in flight
// goes in the next one) and answers each Publish only when the broker
// acknowledged the request (acks=all by default). One request in flight per
// partition keeps the order through retries.
//
// Consuming. Consume joins a Kafka consumer group. Each partition assigned to
// the process is read by one goroutine, which hands the records to the
// handler in batches, in offset order, and commits the group's offset past a
// batch only after the handler returned nil. A failed batch is delivered
// again after an exponential backoff. When a batch has failed
// ConsumerConfig.MaxAttempts times, its records are delivered one at a time;
// a record that fails MaxAttempts times alone is a poison record: it is
// written to the dead-letter topic (headers: error, original topic,
// partition, offset, group, attempts), logged at Error level, counted by
// Metrics.DeadLettered, and only then committed past. Nothing is skipped
// silently. A failed commit makes the member rejoin the group (fresh
// coordinator connection); the records after the committed offset are then
// delivered again.
//
// Redelivered. Kafka cannot prove that a record was never handed to a
// handler before: another member of the group (an earlier owner of the
// partition, or a stalled process that lost its membership) may have handled
// it without committing, and a producer retry after a lost acknowledgement
// stores the same value twice. So every record is delivered with
// Redelivered=true and the handler always checks for duplicates.
//
// Handlers run concurrently for different partitions (one goroutine per
// assigned partition); within a partition, batches are sequential.
package kafkabus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sandcat-im/sandcat/im/bus"
)

// Metrics receives the bus's counters (the application adapts them to
// Prometheus). Implementations must be safe for concurrent use.
type Metrics interface {
	// Published counts records of the main topic acknowledged by the broker.
	Published(n int)
	// Consumed counts records a handler of group accepted (returned nil for).
	Consumed(group string, n int)
	// Retried counts records delivered again to a handler of group after it
	// failed on them.
	Retried(group string, n int)
	// DeadLettered counts poison records group moved to the dead-letter topic.
	DeadLettered(group string, n int)
}

// ProducerConfig tunes publishing. Zero values take the defaults.
type ProducerConfig struct {
	// Timeout bounds one produce request, the broker's wait for the
	// replicas' acknowledgements included (default 10 s).
	Timeout time.Duration
	// Acks is how many replicas must have the record before Publish returns:
	// "all" (default, also "-1"), "one" ("1") or "none" ("0"; Publish then
	// returns once the request is sent and durability is not guaranteed).
	Acks string
	// MaxRetry is how many times a failed produce request is retried (every
	// error but a non-retriable broker error, e.g. a record too large) before
	// Publish fails (default 10; negative: no retry).
	MaxRetry int
	// RetryInterval is the wait before each retry (default 250 ms).
	RetryInterval time.Duration
	// MaxBatchRecords and MaxBatchBytes bound one produce request (defaults
	// 1000 records and 900 KiB of keys and values; the broker's default
	// message.max.bytes is 1 MiB per batch).
	MaxBatchRecords int
	MaxBatchBytes   int
}

// ConsumerConfig tunes consuming. Zero values take the defaults.
type ConsumerConfig struct {
	// AutoOffsetReset is where a group starts on a partition for which it
	// has no committed offset: "earliest" (default) or "latest".
	AutoOffsetReset string
	// SessionTimeout is how long the coordinator waits for a member's
	// heartbeat before it gives the member's partitions to the others
	// (default 10 s; brokers accept 6 s to 30 min by default).
	SessionTimeout time.Duration
	// HeartbeatInterval defaults to a third of SessionTimeout.
	HeartbeatInterval time.Duration
	// RebalanceTimeout is how long the coordinator waits for every member to
	// rejoin during a rebalance; a member finishes its current batch before
	// rejoining (default 30 s).
	RebalanceTimeout time.Duration
	// MaxBatch is the most records handed to a handler at once (default 256).
	MaxBatch int
	// MaxAttempts is how many times a batch may fail before its records are
	// delivered one at a time, and how many times a record alone may fail
	// before it is moved to the dead-letter topic (default 10; negative:
	// never dead-letter, retry forever). With the default backoff, a batch
	// goes one at a time after about 33 s of failures and its first record
	// is dead-lettered about 33 s later: a store outage longer than that
	// dead-letters records that were not poison. Choose MaxAttempts and
	// MaxBackoff for the outages to ride out.
	MaxAttempts int
	// MinBackoff and MaxBackoff bound the wait before a failed batch is
	// delivered again (defaults 100 ms and 10 s; doubling).
	MinBackoff, MaxBackoff time.Duration
	// MaxWait is how long a fetch waits on the broker for new records
	// (default 500 ms); records are delivered as soon as they arrive.
	MaxWait time.Duration
	// MaxBytes bounds one fetch response (default 4 MiB).
	MaxBytes int
}

// Config configures a Bus. Brokers is required; every other zero value takes
// its default.
type Config struct {
	// Brokers are bootstrap addresses, host:port.
	Brokers []string
	// Topic is the main topic (default "sandcat-chat").
	Topic string
	// Partitions is the partition count of the topics Open creates (default
	// 8). Topics that exist already keep theirs (a mismatch is logged).
	Partitions int
	// ReplicationFactor of the topics Open creates (default 1).
	ReplicationFactor int
	// DeadLetterTopic receives poison records (default Topic + ".dlq").
	DeadLetterTopic string
	// ConnectTimeout bounds dialing a broker, the consumer group's
	// coordinator requests, and Open as a whole (default 5 s).
	ConnectTimeout time.Duration
	// ClientID is sent to the brokers (default "sandcat").
	ClientID string
	Producer ProducerConfig
	Consumer ConsumerConfig
	// Logger receives the bus's log lines (default slog.Default()).
	Logger *slog.Logger
	// Metrics receives the counters (default: none).
	Metrics Metrics
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	defInt := func(i *int, v int) {
		if *i <= 0 {
			*i = v
		}
	}
	if c.Topic == "" {
		c.Topic = "sandcat-chat"
	}
	defInt(&c.Partitions, 8)
	defInt(&c.ReplicationFactor, 1)
	if c.DeadLetterTopic == "" {
		c.DeadLetterTopic = c.Topic + ".dlq"
	}
	def(&c.ConnectTimeout, 5*time.Second)
	if c.ClientID == "" {
		c.ClientID = "sandcat"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Metrics == nil {
		c.Metrics = nopMetrics{}
	}

	p := &c.Producer
	def(&p.Timeout, 10*time.Second)
	if p.Acks == "" {
		p.Acks = "all"
	}
	if p.MaxRetry == 0 {
		p.MaxRetry = 10
	} else if p.MaxRetry < 0 {
		p.MaxRetry = 0
	}
	def(&p.RetryInterval, 250*time.Millisecond)
	defInt(&p.MaxBatchRecords, 1000)
	defInt(&p.MaxBatchBytes, 900<<10)

	k := &c.Consumer
	if k.AutoOffsetReset == "" {
		k.AutoOffsetReset = "earliest"
	}
	def(&k.SessionTimeout, 10*time.Second)
	def(&k.HeartbeatInterval, k.SessionTimeout/3)
	def(&k.RebalanceTimeout, 30*time.Second)
	defInt(&k.MaxBatch, 256)
	if k.MaxAttempts == 0 {
		k.MaxAttempts = 10
	}
	def(&k.MinBackoff, 100*time.Millisecond)
	def(&k.MaxBackoff, 10*time.Second)
	if k.MaxBackoff < k.MinBackoff {
		k.MaxBackoff = k.MinBackoff
	}
	def(&k.MaxWait, 500*time.Millisecond)
	defInt(&k.MaxBytes, 4<<20)
}

// parseAcks maps the configured acks to kafka-go's.
func parseAcks(s string) (kafka.RequiredAcks, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "all", "-1":
		return kafka.RequireAll, nil
	case "one", "1", "leader":
		return kafka.RequireOne, nil
	case "none", "0":
		return kafka.RequireNone, nil
	}
	return 0, fmt.Errorf("kafkabus: producer acks %q: want all, one or none", s)
}

// parseOffsetReset maps auto_offset_reset to kafka-go's start offset.
func parseOffsetReset(s string) (int64, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "earliest", "smallest", "first":
		return kafka.FirstOffset, nil
	case "latest", "largest", "last":
		return kafka.LastOffset, nil
	}
	return 0, fmt.Errorf("kafkabus: consumer auto_offset_reset %q: want earliest or latest", s)
}

type nopMetrics struct{}

func (nopMetrics) Published(int)            {}
func (nopMetrics) Consumed(string, int)     {}
func (nopMetrics) Retried(string, int)      {}
func (nopMetrics) DeadLettered(string, int) {}

// Bus is the Kafka message bus. It implements bus.Publisher and bus.Consumer.
type Bus struct {
	cfg         Config
	log         *slog.Logger
	metrics     Metrics
	transport   *kafka.Transport
	dialer      *kafka.Dialer
	startOffset int64

	pub *producer // main topic
	dlq *producer // dead-letter topic

	closeMu   sync.RWMutex // Consume holds it shared while registering; Close exclusively
	closed    atomic.Bool
	quit      chan struct{} // closed by Close: consumers stop
	consumers sync.WaitGroup
}

var (
	_ bus.Publisher = (*Bus)(nil)
	_ bus.Consumer  = (*Bus)(nil)
)

// Open checks the configuration, connects to the cluster, creates the main
// and dead-letter topics with cfg.Partitions partitions and
// cfg.ReplicationFactor replicas (topics that exist already are kept), and
// starts the producers. It fails when the cluster does not answer within
// cfg.ConnectTimeout (or ctx ends first).
func Open(ctx context.Context, cfg Config) (*Bus, error) {
	cfg.defaults()
	if len(cfg.Brokers) == 0 {
		return nil, errors.New("kafkabus: no brokers configured")
	}
	if cfg.Topic == cfg.DeadLetterTopic {
		return nil, fmt.Errorf("kafkabus: dead-letter topic %q is the main topic", cfg.Topic)
	}
	acks, err := parseAcks(cfg.Producer.Acks)
	if err != nil {
		return nil, err
	}
	start, err := parseOffsetReset(cfg.Consumer.AutoOffsetReset)
	if err != nil {
		return nil, err
	}
	b := &Bus{
		cfg:         cfg,
		log:         cfg.Logger,
		metrics:     cfg.Metrics,
		startOffset: start,
		quit:        make(chan struct{}),
		transport: &kafka.Transport{
			DialTimeout: cfg.ConnectTimeout,
			ClientID:    cfg.ClientID,
		},
		dialer: &kafka.Dialer{
			ClientID:  cfg.ClientID,
			Timeout:   cfg.ConnectTimeout,
			DualStack: true,
		},
	}
	client := b.client(cfg.Producer.Timeout)

	octx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout)
	defer cancel()
	parts, err := b.setupTopics(octx, client)
	if err != nil {
		b.transport.CloseIdleConnections()
		return nil, err
	}
	b.pub = newProducer(client, cfg.Topic, parts[cfg.Topic], acks, cfg.Producer, b.log, cfg.Metrics.Published)
	b.dlq = newProducer(client, cfg.DeadLetterTopic, parts[cfg.DeadLetterTopic], acks, cfg.Producer, b.log, nil)
	b.log.Info("kafkabus: connected", "brokers", cfg.Brokers, "topic", cfg.Topic,
		"partitions", parts[cfg.Topic], "dead_letter_topic", cfg.DeadLetterTopic)
	return b, nil
}

func (b *Bus) client(timeout time.Duration) *kafka.Client {
	return &kafka.Client{Addr: kafka.TCP(b.cfg.Brokers...), Timeout: timeout, Transport: b.transport}
}

// setupTopics creates the topics (retrying until ctx ends) and returns their
// partition counts once every partition has a leader.
func (b *Bus) setupTopics(ctx context.Context, client *kafka.Client) (map[string]int, error) {
	topics := []string{b.cfg.Topic, b.cfg.DeadLetterTopic}
	delay := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		parts, err := b.trySetupTopics(ctx, client, topics)
		if err == nil {
			return parts, nil
		}
		if !retriable(err) {
			return nil, err
		}
		if attempt == 1 || attempt%10 == 0 {
			b.log.Warn("kafkabus: cluster not ready, retrying", "brokers", b.cfg.Brokers, "attempt", attempt, "err", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("kafkabus: brokers %v not ready within %s: %w", b.cfg.Brokers, b.cfg.ConnectTimeout, err)
		case <-t.C:
		}
		delay = min(delay*2, time.Second)
	}
}

func (b *Bus) trySetupTopics(ctx context.Context, client *kafka.Client, topics []string) (map[string]int, error) {
	req := &kafka.CreateTopicsRequest{}
	for _, t := range topics {
		req.Topics = append(req.Topics, kafka.TopicConfig{
			Topic:             t,
			NumPartitions:     b.cfg.Partitions,
			ReplicationFactor: b.cfg.ReplicationFactor,
		})
	}
	res, err := client.CreateTopics(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("kafkabus: create topics: %w", err)
	}
	for _, t := range topics {
		if err := res.Errors[t]; err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
			return nil, fmt.Errorf("kafkabus: create topic %q: %w", t, err)
		}
	}
	md, err := client.Metadata(ctx, &kafka.MetadataRequest{Topics: topics})
	if err != nil {
		return nil, fmt.Errorf("kafkabus: metadata: %w", err)
	}
	parts := make(map[string]int, len(topics))
	for _, t := range md.Topics {
		if t.Error != nil {
			return nil, fmt.Errorf("kafkabus: metadata of %q: %w", t.Name, t.Error)
		}
		for _, p := range t.Partitions {
			if p.Error != nil {
				return nil, fmt.Errorf("kafkabus: metadata of %q partition %d: %w", t.Name, p.ID, p.Error)
			}
			if p.Leader.Host == "" {
				return nil, fmt.Errorf("kafkabus: %q partition %d: %w", t.Name, p.ID, kafka.LeaderNotAvailable)
			}
		}
		parts[t.Name] = len(t.Partitions)
	}
	for _, t := range topics {
		n := parts[t]
		if n == 0 {
			return nil, fmt.Errorf("kafkabus: topic %q: %w", t, kafka.UnknownTopicOrPartition)
		}
		if n != b.cfg.Partitions {
			b.log.Warn("kafkabus: topic exists with another partition count; using it",
				"topic", t, "partitions", n, "configured", b.cfg.Partitions)
		}
	}
	return parts, nil
}

// Topic is the main topic.
func (b *Bus) Topic() string { return b.cfg.Topic }

// DeadLetterTopic is the topic poison records go to.
func (b *Bus) DeadLetterTopic() string { return b.cfg.DeadLetterTopic }

// Partitions is the main topic's partition count.
func (b *Bus) Partitions() int { return b.pub.partitions() }

// PartitionOf is the partition of the main topic that records of key go to.
func (b *Bus) PartitionOf(key string) int { return b.pub.partitionOf([]byte(key)) }

// Publish appends a record to the partition of key and returns once the
// broker acknowledged it (with the configured acks), retrying failed
// requests. If ctx ends first, Publish returns ctx's error and the record
// may still be written. After Close it returns bus.ErrClosed.
func (b *Bus) Publish(ctx context.Context, key string, value []byte) error {
	return b.pub.publish(ctx, key, value, nil)
}

// Close stops the consumers (Consume returns bus.ErrClosed after its
// partitions finished their current batch and the member left its group),
// then writes what is queued for publishing and stops the producers.
func (b *Bus) Close() error {
	if b.closed.Swap(true) {
		return nil
	}
	b.closeMu.Lock() // wait for Consume calls that are registering
	close(b.quit)
	b.closeMu.Unlock()
	b.consumers.Wait()
	b.pub.close()
	b.dlq.close()
	b.transport.CloseIdleConnections()
	return nil
}

// kafkaLogger adapts kafka-go's Printf logging to slog.
type kafkaLogger struct {
	log   *slog.Logger
	level slog.Level
}

func (l kafkaLogger) Printf(format string, args ...any) {
	if !l.log.Enabled(context.Background(), l.level) {
		return
	}
	l.log.Log(context.Background(), l.level, "kafkabus: kafka-go: "+strings.TrimSpace(fmt.Sprintf(format, args...)))
}
