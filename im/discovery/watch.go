package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// Instance is one healthy instance of a service.
type Instance struct {
	ID      string // Consul service id
	Address string // host:port (host alone when registered without a port)
	Tags    []string
	Meta    map[string]string
}

// WatchOptions configures a Watcher.
type WatchOptions struct {
	// WaitTime bounds one blocking query (default 5 min; Consul caps it at 10).
	WaitTime time.Duration
	// OnChange, when set, is called (from the watcher's goroutine) with each
	// new set of instances after the first.
	OnChange func(instances []Instance)
	Logger   *slog.Logger
}

// Watcher keeps the health-passing instances of one service, updated by
// Consul blocking queries: a change is seen as soon as Consul knows it, and
// an idle watcher costs one open request per WaitTime.
type Watcher struct {
	c       *api.Client
	service string
	o       WatchOptions
	log     *slog.Logger

	snap   atomic.Pointer[snapshot]
	cancel context.CancelFunc
	done   chan struct{}
	once   sync.Once
}

type snapshot struct {
	list      []Instance          // sorted by ID
	byGateway map[string]Instance // MetaGatewayID → instance
}

// Watch queries the healthy instances of service once (so that the first
// caller already sees them: no startup delay, bug B12), then keeps them
// current in the background until Close. The first query's failure is
// returned: the caller decides whether to start without discovery.
func Watch(ctx context.Context, c *api.Client, service string, o WatchOptions) (*Watcher, error) {
	if c == nil || service == "" {
		return nil, errors.New("discovery: Watch needs a consul client and a service name")
	}
	if o.WaitTime <= 0 {
		o.WaitTime = 5 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	w := &Watcher{c: c, service: service, o: o, log: o.Logger.With("service", service), done: make(chan struct{})}
	entries, meta, err := c.Health().Service(service, "", true, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("discovery: query %s: %w", service, err)
	}
	w.snap.Store(newSnapshot(entries))
	bctx, cancel := context.WithCancel(context.Background())
	w.cancel = cancel
	go w.loop(bctx, meta.LastIndex)
	return w, nil
}

// Instances returns the current healthy instances, sorted by id. The
// result is shared: do not modify it.
func (w *Watcher) Instances() []Instance { return w.snap.Load().list }

// Gateway returns the instance whose MetaGatewayID is id.
func (w *Watcher) Gateway(id string) (Instance, bool) {
	in, ok := w.snap.Load().byGateway[id]
	return in, ok
}

// Close stops the background queries.
func (w *Watcher) Close() {
	w.once.Do(func() {
		w.cancel()
		<-w.done
	})
}

func (w *Watcher) loop(ctx context.Context, index uint64) {
	defer close(w.done)
	backoff := time.Duration(0)
	for {
		q := (&api.QueryOptions{WaitIndex: index, WaitTime: w.o.WaitTime}).WithContext(ctx)
		entries, meta, err := w.c.Health().Service(w.service, "", true, q)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// Keep the last known set: a Consul blip must not make every
			// gateway unreachable. Retry with backoff.
			backoff = min(max(2*backoff, 250*time.Millisecond), 30*time.Second)
			w.log.Warn("discovery: consul watch failed; keeping the last known instances", "err", err, "retry_in", backoff)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			continue
		}
		backoff = 0
		switch {
		case meta.LastIndex < index:
			index = 0 // the index went backwards (agent restart): start over
		case meta.LastIndex == index:
			index = max(index, 1) // an index of 0 would not block
			continue              // WaitTime elapsed without a change
		default:
			index = meta.LastIndex
		}
		s := newSnapshot(entries)
		if slices.EqualFunc(s.list, w.snap.Load().list, sameInstance) {
			continue
		}
		w.snap.Store(s)
		w.log.Debug("discovery: instances changed", "count", len(s.list))
		if w.o.OnChange != nil {
			w.o.OnChange(s.list)
		}
	}
}

func newSnapshot(entries []*api.ServiceEntry) *snapshot {
	s := &snapshot{byGateway: map[string]Instance{}}
	for _, e := range entries {
		if e.Service == nil {
			continue
		}
		host := e.Service.Address
		if host == "" && e.Node != nil {
			host = e.Node.Address // Consul's rule for services registered without an address
		}
		addr := host
		if e.Service.Port > 0 {
			addr = net.JoinHostPort(host, strconv.Itoa(e.Service.Port))
		}
		in := Instance{ID: e.Service.ID, Address: addr, Tags: e.Service.Tags, Meta: e.Service.Meta}
		s.list = append(s.list, in)
		if gid := in.Meta[MetaGatewayID]; gid != "" {
			s.byGateway[gid] = in
		}
	}
	slices.SortFunc(s.list, func(a, b Instance) int { return cmp.Compare(a.ID, b.ID) })
	return s
}

func sameInstance(a, b Instance) bool {
	return a.ID == b.ID && a.Address == b.Address && slices.Equal(a.Tags, b.Tags) && maps.Equal(a.Meta, b.Meta)
}
