package discovery

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sandcat-im/sandcat/im/gateway"
	"github.com/sandcat-im/sandcat/im/msgserver"
)

// Errors of Remote.Push. The pusher logs them and moves on: the messages
// stay in the inbox, and the clients pull them.
var (
	// ErrGatewayGone: the gateway id has no healthy sandcat-gateway-push
	// instance (it stopped, crashed and lapsed, or never existed), or its
	// address now answers as another gateway.
	ErrGatewayGone = errors.New("discovery: gateway gone")
	// ErrGatewayDown: the last push to the gateway failed; pushes are
	// dropped until a retry delay has passed.
	ErrGatewayDown = errors.New("discovery: gateway unreachable")
	// ErrPushQueueFull: the gateway does not keep up; the deliveries were dropped.
	ErrPushQueueFull = errors.New("discovery: push queue full")
	// ErrRemoteClosed: Push after Close.
	ErrRemoteClosed = errors.New("discovery: remote gateway client closed")
)

// MetaScheme on a sandcat-gateway-push registration: "http" (default) or "https".
const MetaScheme = "scheme"

// RemoteOptions configures a Remote.
type RemoteOptions struct {
	// Gateways watches ServiceGatewayPush. Required; Remote does not close it.
	Gateways *Watcher
	// Secret is the shared push secret (gateway.DerivePushSecret). Required.
	Secret string
	// HTTPClient defaults to a pooled client with a 2 s dial timeout.
	HTTPClient *http.Client
	// Timeout bounds one push request (default 5 s).
	Timeout time.Duration
	// MaxQueue bounds the deliveries waiting for one gateway (default 65536).
	MaxQueue int
	// MaxBatch bounds the deliveries of one request (default 4096, at most
	// gateway.MaxPushDeliveries).
	MaxBatch int
	// MaxBatchBytes bounds the messages of one request (default 4 MiB; keep
	// it below the gateway's PushHandlerOptions.MaxBytes). A single larger
	// message still goes alone.
	MaxBatchBytes int
	// IdleAfter: a gateway's sender goroutine ends after this long without
	// pushes (default 2 min); the next push starts it again.
	IdleAfter time.Duration
	Logger    *slog.Logger
}

// Remote is the msgserver.GatewayClient of gateways in other processes: it
// resolves a gateway id to the address of its push endpoint through Consul
// (healthy sandcat-gateway-push instances, by MetaGatewayID) and POSTs the
// deliveries there.
//
// Push never waits for the network: it queues the deliveries for the
// gateway's sender goroutine and returns, so a slow or dead gateway never
// delays the pushes to the others (the pusher calls gateways one after the
// other). Each sender sends in order, and what queues while a request is in
// flight goes out together in the next one (per-gateway batching). Push
// fails at once, dropping the deliveries, when the gateway is not
// registered (ErrGatewayGone), when its last request failed and the retry
// delay has not passed (ErrGatewayDown), or when its queue is full.
type Remote struct {
	o      RemoteOptions
	log    *slog.Logger
	hc     *http.Client
	base   context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	queues map[string]*gwQueue
	closed bool
	wg     sync.WaitGroup

	stats remoteCounters
}

var _ msgserver.GatewayClient = (*Remote)(nil)

// NewRemote returns a Remote.
func NewRemote(o RemoteOptions) (*Remote, error) {
	if o.Gateways == nil || o.Secret == "" {
		return nil, errors.New("discovery: Remote needs a watcher of the gateways' push endpoints and the push secret")
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxQueue <= 0 {
		o.MaxQueue = 65536
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 4096
	}
	o.MaxBatch = min(o.MaxBatch, gateway.MaxPushDeliveries)
	if o.MaxBatchBytes <= 0 {
		o.MaxBatchBytes = 4 << 20
	}
	if o.IdleAfter <= 0 {
		o.IdleAfter = 2 * time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        256,
			MaxIdleConnsPerHost: 4, // one sender per gateway: a few suffice
			IdleConnTimeout:     90 * time.Second,
		}}
	}
	base, cancel := context.WithCancel(context.Background())
	return &Remote{o: o, log: o.Logger, hc: hc, base: base, cancel: cancel, queues: map[string]*gwQueue{}}, nil
}

// gwQueue is what waits for one gateway, and its sender's state.
type gwQueue struct {
	id   string
	wake chan struct{} // capacity 1

	mu        sync.Mutex // after Remote.mu
	pending   []msgserver.Delivery
	downUntil time.Time
	failures  int
	lastErr   error
}

// Push queues ds for the gateway gatewayID (see Remote). ds must not be
// modified afterwards.
func (r *Remote) Push(ctx context.Context, gatewayID string, ds []msgserver.Delivery) error {
	if len(ds) == 0 {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, ok := r.o.Gateways.Gateway(gatewayID); !ok {
		r.stats.dropped.Add(int64(len(ds)))
		return fmt.Errorf("%w: %q is not a healthy %s instance", ErrGatewayGone, gatewayID, ServiceGatewayPush)
	}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return ErrRemoteClosed
	}
	q := r.queues[gatewayID]
	if q == nil {
		q = &gwQueue{id: gatewayID, wake: make(chan struct{}, 1)}
		r.queues[gatewayID] = q
		r.wg.Add(1)
		go r.sender(q)
	}
	q.mu.Lock()
	var err error
	switch {
	case time.Now().Before(q.downUntil):
		err = fmt.Errorf("%w: %q (retry after %s): %w", ErrGatewayDown, gatewayID,
			q.downUntil.Format(time.RFC3339Nano), q.lastErr)
	case len(q.pending)+len(ds) > r.o.MaxQueue:
		err = fmt.Errorf("%w: %q has %d deliveries waiting", ErrPushQueueFull, gatewayID, len(q.pending))
	default:
		q.pending = append(q.pending, ds...)
	}
	q.mu.Unlock()
	r.mu.Unlock()
	if err != nil {
		r.stats.dropped.Add(int64(len(ds)))
		return err
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return nil
}

// sender sends q's deliveries in order until the Remote closes or the
// gateway stays idle for IdleAfter.
func (r *Remote) sender(q *gwQueue) {
	defer r.wg.Done()
	idle := time.NewTimer(r.o.IdleAfter)
	defer idle.Stop()
	for {
		select {
		case <-r.base.Done():
			return
		case <-idle.C:
			if r.retire(q) {
				return
			}
			idle.Reset(r.o.IdleAfter)
			continue
		case <-q.wake:
		}
		for {
			batch := q.take(r.o.MaxBatch, r.o.MaxBatchBytes)
			if len(batch) == 0 {
				break
			}
			err := r.send(q.id, batch)
			if r.base.Err() != nil {
				return
			}
			var rej *rejectedError
			if errors.As(err, &rej) {
				// The gateway is fine; this batch is not (too large, or a
				// bug): drop it alone.
				r.stats.dropped.Add(int64(len(batch)))
				r.stats.failures.Add(1)
				r.log.Error("discovery: gateway refused a push batch; deliveries dropped (they stay pullable)",
					"gateway", q.id, "dropped", len(batch), "err", err)
				continue
			}
			q.mu.Lock()
			if err != nil {
				dropped := len(batch) + len(q.pending)
				q.pending = nil
				q.failures++
				delay := min(250*time.Millisecond<<min(q.failures-1, 6), 10*time.Second)
				q.downUntil, q.lastErr = time.Now().Add(delay), err
				q.mu.Unlock()
				r.stats.dropped.Add(int64(dropped))
				r.stats.failures.Add(1)
				r.log.Warn("discovery: push to gateway failed; deliveries dropped (they stay pullable)",
					"gateway", q.id, "dropped", dropped, "retry_in", delay, "err", err)
				break
			}
			if q.failures > 0 {
				r.log.Info("discovery: push to gateway recovered", "gateway", q.id, "after_failures", q.failures)
			}
			q.failures, q.lastErr = 0, nil
			q.mu.Unlock()
			r.stats.batches.Add(1)
			r.stats.delivered.Add(int64(len(batch)))
		}
		idle.Reset(r.o.IdleAfter) // Go ≥ 1.23 timers: no stale tick survives Reset
	}
}

// take removes from the head of the queue up to n deliveries whose
// messages take up to maxBytes (at least one delivery when any waits).
func (q *gwQueue) take(n, maxBytes int) []msgserver.Delivery {
	q.mu.Lock()
	defer q.mu.Unlock()
	size, k := 0, 0
	for k < len(q.pending) && k < n {
		if m := q.pending[k].Msg; m != nil {
			size += m.BincodeSize()
		}
		if size > maxBytes && k > 0 {
			break
		}
		k++
	}
	if k == len(q.pending) {
		b := q.pending
		q.pending = nil
		return b
	}
	b := q.pending[:k:k]
	q.pending = q.pending[k:]
	return b
}

// retire removes an idle queue; false when deliveries arrived meanwhile.
func (r *Remote) retire(q *gwQueue) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.pending) > 0 || time.Now().Before(q.downUntil) {
		return false // keep the failure state until its delay has passed
	}
	if r.queues[q.id] == q {
		delete(r.queues, q.id)
	}
	return true
}

// send POSTs one batch to the gateway's push endpoint.
func (r *Remote) send(id string, ds []msgserver.Delivery) error {
	in, ok := r.o.Gateways.Gateway(id)
	if !ok {
		return fmt.Errorf("%w: %q left %s", ErrGatewayGone, id, ServiceGatewayPush)
	}
	scheme := cmp.Or(in.Meta[MetaScheme], "http")
	url := scheme + "://" + in.Address + gateway.PushPath
	body := gateway.AppendPushBatch(make([]byte, 0, 64+len(ds)*64), ds)
	ctx, cancel := context.WithTimeout(r.base, r.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("discovery: push to %q: %w", id, err)
	}
	req.Header.Set("Content-Type", gateway.PushContentType)
	req.Header.Set(gateway.PushSecretHeader, r.o.Secret)
	req.Header.Set(gateway.PushGatewayHeader, id)
	resp, err := r.hc.Do(req)
	if err != nil {
		return fmt.Errorf("discovery: push to %q at %s: %w", id, in.Address, err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	switch {
	case resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusMisdirectedRequest:
		return fmt.Errorf("%w: %q: %s answers as another gateway: %s", ErrGatewayGone, id, in.Address, bytes.TrimSpace(msg))
	case resp.StatusCode == http.StatusUnauthorized:
		return fmt.Errorf("discovery: push to %q at %s: %s (the push secrets of msgserver and gateway differ): %s",
			id, in.Address, resp.Status, bytes.TrimSpace(msg))
	case resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusRequestEntityTooLarge:
		return &rejectedError{fmt.Errorf("discovery: push to %q at %s: %s: %s", id, in.Address, resp.Status, bytes.TrimSpace(msg))}
	default:
		return fmt.Errorf("discovery: push to %q at %s: %s: %s", id, in.Address, resp.Status, bytes.TrimSpace(msg))
	}
}

// rejectedError: the gateway refused the batch itself (400, 413).
type rejectedError struct{ err error }

func (e *rejectedError) Error() string { return e.err.Error() }
func (e *rejectedError) Unwrap() error { return e.err }

// Close stops the senders; deliveries still queued are dropped. It does not
// close the Watcher.
func (r *Remote) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.mu.Unlock()
	r.cancel()
	r.wg.Wait()
}

// RemoteStats are Remote's counters since it started.
type RemoteStats struct {
	Batches   int64 // requests that succeeded
	Delivered int64 // deliveries in those requests
	Dropped   int64 // deliveries dropped (gateway gone, down, queue full, request failed)
	Failures  int64 // requests that failed
}

type remoteCounters struct{ batches, delivered, dropped, failures atomic.Int64 }

// Stats returns the counters.
func (r *Remote) Stats() RemoteStats {
	return RemoteStats{Batches: r.stats.batches.Load(), Delivered: r.stats.delivered.Load(),
		Dropped: r.stats.dropped.Load(), Failures: r.stats.failures.Load()}
}

// LocalFirst is the GatewayClient of a process that runs a gateway and the
// message server while other gateways exist: deliveries for the local
// gateway are a function call, the others go to remote.
type LocalFirst struct {
	id     string
	local  LocalGateway
	remote msgserver.GatewayClient
}

var _ msgserver.GatewayClient = (*LocalFirst)(nil)

// NewLocalFirst returns a LocalFirst for the local gateway localID.
func NewLocalFirst(localID string, local LocalGateway, remote msgserver.GatewayClient) *LocalFirst {
	return &LocalFirst{id: localID, local: local, remote: remote}
}

// Push delivers in-process to the local gateway, through remote otherwise.
func (l *LocalFirst) Push(ctx context.Context, gatewayID string, ds []msgserver.Delivery) error {
	if gatewayID == l.id {
		l.local.Deliver(ds)
		return nil
	}
	return l.remote.Push(ctx, gatewayID, ds)
}
