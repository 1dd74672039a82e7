package app

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/sandcat-im/sandcat/im/account"
	"github.com/sandcat-im/sandcat/im/auth"
	"github.com/sandcat-im/sandcat/im/bus"
	"github.com/sandcat-im/sandcat/im/bus/kafkabus"
	"github.com/sandcat-im/sandcat/im/bus/localbus"
	"github.com/sandcat-im/sandcat/im/cache"
	"github.com/sandcat-im/sandcat/im/config"
	"github.com/sandcat-im/sandcat/im/msgserver"
	"github.com/sandcat-im/sandcat/im/observe"
	"github.com/sandcat-im/sandcat/im/seq"
	"github.com/sandcat-im/sandcat/im/seq/redisseq"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/blob"
	"github.com/sandcat-im/sandcat/storage/blob/cleanup"
	"github.com/sandcat-im/sandcat/storage/blob/local"
	blobminio "github.com/sandcat-im/sandcat/storage/blob/minio"
	"github.com/sandcat-im/sandcat/storage/mongo"
	"github.com/sandcat-im/sandcat/storage/postgres"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

// allocator hands out seqs: seq.Allocator (embedded) or redisseq.Allocator.
type allocator interface {
	NextSend(ctx context.Context, userID string) (int64, error)
	NextRecv(ctx context.Context, userIDs []string) ([]int64, error)
	Current(ctx context.Context, userID string) (recv, send int64, err error)
}

// memberCache is the group-member cache: msgserver.MemberCache (in process)
// or cache.Members (Redis, shared by every process).
type memberCache interface {
	Members(ctx context.Context, groupID string) ([]string, error)
	IsMember(ctx context.Context, groupID, userID string) (bool, error)
	Invalidate(groupID string)
}

// messageBus is both sides of the bus.
type messageBus interface {
	bus.Publisher
	bus.Consumer
}

// backends are the stores and services the configuration selects; each
// has an embedded implementation and a production one behind one interface.
type backends struct {
	rel         relational
	blocks      *blockCache // rel's friends with IsBlocked cached (gateway and friend routes)
	inbox       storage.Inbox
	history     storage.History
	batch       msgserver.BatchStore // the inbox and the history in one transaction, when one SQLite file has both
	seqs        allocator
	revocations auth.Revocations
	codes       account.Codes
	states      account.Codes
	members     memberCache
	bus         messageBus
	blobs       blob.Store
	refs        cleanup.Referenced
	rdb         redis.UniversalClient // nil without a redis section
	routes      *cache.Routes         // nil without a redis section
	checks      []observe.Check
}

// openBackends opens what cfg selects, registering closers on a.
func (a *App) openBackends(ctx context.Context, cfg *config.Config, log *slog.Logger) (*backends, error) {
	b := &backends{}
	rel, err := openRelational(ctx, cfg)
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, rel.Close)
	b.rel = rel
	b.blocks = newBlockCache(rel, blockCacheTTL, nil)
	b.revocations = rel
	b.checks = append(b.checks, observe.Check{Name: backendName(cfg), Ping: rel.Ping})

	var ceilings storage.SeqCeilings
	refs := []cleanup.Referenced{}
	switch s := rel.(type) {
	case *postgres.Store:
		ceilings, b.history = s.SeqCeilings(), s.History()
		if err := s.History().EnsurePartitions(ctx, time.Now(), 8); err != nil {
			return nil, fmt.Errorf("app: history partitions: %w", err)
		}
		refs = append(refs, s)
	case *sqlite.Store:
		ceilings, b.history = s.SeqCeilings(), s.History()
		refs = append(refs, s)
	}

	// The inbox: MongoDB, or the embedded one in the SQLite file.
	if m := cfg.DB.MongoDB; m != nil {
		in, err := mongo.Open(ctx, m.URL(), m.Database, mongo.Options{Logger: log})
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, func() error { return in.Close(context.Background()) })
		b.inbox = in
		b.checks = append(b.checks, observe.Check{Name: "mongodb", Ping: in.Ping})
	} else if s, ok := rel.(*sqlite.Store); ok {
		b.inbox = s.Inbox()
		b.batch = s
	} else {
		lite, err := sqlite.Open(ctx, cfg.SQLitePath())
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, lite.Close)
		b.inbox = lite.Inbox()
		refs = append(refs, lite)
	}
	b.refs = cleanup.AnyOf(refs...)

	// Redis: seqs, caches, codes, token revocation, online routes.
	if r := cfg.Redis; r != nil {
		rdb := redis.NewClient(&redis.Options{Addr: r.Addr(), Password: r.Password, DB: r.DB})
		a.closers = append(a.closers, rdb.Close)
		if err := rdb.Ping(ctx).Err(); err != nil {
			return nil, fmt.Errorf("app: redis %s: %w", r.Addr(), err)
		}
		b.rdb = rdb
		b.checks = append(b.checks, observe.Check{Name: "redis", Ping: func(ctx context.Context) error { return rdb.Ping(ctx).Err() }})
		seqs, err := redisseq.New(rdb, ceilings, redisseq.Options{Prefix: r.Prefix, Step: cfg.SeqStep(), Log: log})
		if err != nil {
			return nil, err
		}
		b.seqs = seqs
		b.codes = auth.NewRedisCodes(rdb, r.Prefix, auth.KindRegisterCode)
		b.states = auth.NewRedisCodes(rdb, r.Prefix, auth.KindOAuthState)
		b.revocations = cache.NewRevocations(rdb, rel, cache.RevocationsOptions{Prefix: r.Prefix, Log: log})
		b.members = cache.NewMembers(rdb, rel, cache.MembersOptions{Prefix: r.Prefix, Log: log})
		b.routes = cache.NewRoutes(rdb, cache.RoutesOptions{Prefix: r.Prefix})
	} else {
		seqs, err := seq.New(ceilings, seq.Options{Step: cfg.SeqStep(), Log: log})
		if err != nil {
			return nil, err
		}
		b.seqs = seqs
		b.codes = auth.NewMemoryCodes(nil)
		b.states = auth.NewMemoryCodes(nil)
		b.members = msgserver.NewMemberCache(rel, time.Minute, 100_000)
	}

	// The bus: Kafka, or the embedded durable log.
	if k := cfg.Kafka; k != nil {
		ms := time.Millisecond
		kb, err := kafkabus.Open(ctx, kafkabus.Config{
			Brokers:        k.Hosts,
			Topic:          k.Topic,
			Partitions:     k.Partitions,
			ConnectTimeout: time.Duration(k.ConnectTimeout) * ms,
			Producer: kafkabus.ProducerConfig{
				Timeout: time.Duration(k.Producer.Timeout) * ms, Acks: k.Producer.Acks,
				MaxRetry: k.Producer.MaxRetry, RetryInterval: time.Duration(k.Producer.RetryInterval) * ms,
			},
			Consumer: kafkabus.ConsumerConfig{
				AutoOffsetReset: k.Consumer.AutoOffsetReset,
				SessionTimeout:  time.Duration(k.Consumer.SessionTimeout) * ms,
			},
			Logger:  log,
			Metrics: newBusMetrics(a.metrics.Registry),
		})
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, kb.Close)
		b.bus = kb
	} else {
		lb, err := localbus.Open(ctx, filepath.Join(cfg.DataDir, "bus.db"), localbus.Options{Logger: log})
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, lb.Close)
		b.bus = lb
	}

	// Files: MinIO, or local disk.
	if o := cfg.OSS; o != nil {
		st, err := blobminio.Open(ctx, blobminio.Options{
			Endpoint: o.Endpoint, AccessKey: o.AccessKey, SecretKey: o.SecretKey,
			Bucket: o.Bucket, AvatarBucket: o.AvatarBucket, Region: o.Region, UseSSL: o.UseSSL, Logger: log,
		})
		if err != nil {
			return nil, err
		}
		b.blobs = st
	} else {
		st, err := local.Open(ctx, filepath.Join(cfg.DataDir, "files"))
		if err != nil {
			return nil, err
		}
		b.blobs = st
	}
	return b, nil
}

// busMetrics counts what the Kafka bus does, for Prometheus.
type busMetrics struct {
	published prometheus.Counter
	consumed  *prometheus.CounterVec
	retried   *prometheus.CounterVec
	dead      *prometheus.CounterVec
}

func newBusMetrics(reg *prometheus.Registry) *busMetrics {
	m := &busMetrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "sandcat_bus_published_total", Help: "Records published to the bus."}),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandcat_bus_consumed_total", Help: "Records handled and committed, by consumer group."}, []string{"group"}),
		retried: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandcat_bus_retried_total", Help: "Records handed to a handler again after a failure."}, []string{"group"}),
		dead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sandcat_bus_dead_lettered_total", Help: "Poison records moved to the dead-letter topic."}, []string{"group"}),
	}
	reg.MustRegister(m.published, m.consumed, m.retried, m.dead)
	return m
}

func (m *busMetrics) Published(n int) { m.published.Add(float64(n)) }
func (m *busMetrics) Consumed(group string, n int) {
	m.consumed.WithLabelValues(group).Add(float64(n))
}
func (m *busMetrics) Retried(group string, n int) { m.retried.WithLabelValues(group).Add(float64(n)) }
func (m *busMetrics) DeadLettered(group string, n int) {
	m.dead.WithLabelValues(group).Add(float64(n))
}
