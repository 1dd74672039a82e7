package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Scenario (e) measures in this process: its clients are Matrix clients
// (HTTP, one request at a time each) and a few WebSocket connections, far
// below what needs worker processes.

// eKey names one bench message: its flow and its send time.
type eKey struct {
	flow uint32
	ns   int64
}

// eMeter counts one measured run of scenario (e): every flow sends one
// message at a time and has at most window messages in flight, a message
// freeing its slot when a receiver sees it; the latency of a message is
// from just before its send request to the receiver seeing it.
type eMeter struct {
	slots            map[uint32]chan struct{} // window slots per flow (the map is read-only once made)
	startNs          int64
	winStart, winEnd int64 // the measured window, unix ns

	mu        sync.Mutex
	hist      histArr // messages sent inside the window
	all       histArr // every message
	seen      map[eKey]bool
	sent      int64 // send requests that succeeded
	sentWin   int64 // of those, stamped inside the window
	recv      int64 // distinct messages received
	recvWin   int64 // of those, stamped inside the window
	recvInWin int64 // receipts that happened inside the window
	dups      int64 // messages received more than once
	errs      int64
	firstErr  string
	timeline  []int64 // receipts per second from the start
}

func newEMeter(flows []uint32, window int, start time.Time, warmup, dur time.Duration) *eMeter {
	m := &eMeter{slots: make(map[uint32]chan struct{}, len(flows)), seen: map[eKey]bool{},
		startNs: start.UnixNano(), winStart: start.Add(warmup).UnixNano(), winEnd: start.Add(warmup + dur).UnixNano()}
	for _, f := range flows {
		ch := make(chan struct{}, window)
		for range window {
			ch <- struct{}{}
		}
		m.slots[f] = ch
	}
	return m
}

// noteSent counts a send request that succeeded, stamped at ns.
func (m *eMeter) noteSent(ns int64) {
	m.mu.Lock()
	m.sent++
	if ns >= m.winStart && ns < m.winEnd {
		m.sentWin++
	}
	m.mu.Unlock()
}

// noteErr counts a failed send request; its slot is given back.
func (m *eMeter) noteErr(flow uint32, err error) {
	m.mu.Lock()
	m.errs++
	if m.firstErr == "" {
		m.firstErr = err.Error()
	}
	m.mu.Unlock()
	m.release(flow)
}

func (m *eMeter) release(flow uint32) {
	select {
	case m.slots[flow] <- struct{}{}:
	default:
	}
}

// receive counts the receipt at nowNs of a message body; it returns false
// when the body is no bench message of this run (an earlier step's, a
// notice).
func (m *eMeter) receive(body []byte, nowNs int64) bool {
	ns, flow, ok := findBenchContent(body)
	if !ok {
		return false
	}
	if _, mine := m.slots[flow]; !mine {
		return false
	}
	lat := (nowNs - ns) / 1000
	m.mu.Lock()
	k := eKey{flow, ns}
	if m.seen[k] {
		m.dups++
		m.mu.Unlock()
		return true
	}
	m.seen[k] = true
	m.recv++
	m.all.record(lat)
	if ns >= m.winStart && ns < m.winEnd {
		m.recvWin++
		m.hist.record(lat)
	}
	if nowNs >= m.winStart && nowNs < m.winEnd {
		m.recvInWin++
	}
	if sec := (nowNs - m.startNs) / 1e9; sec >= 0 && sec < 3600 {
		for int64(len(m.timeline)) <= sec {
			m.timeline = append(m.timeline, 0)
		}
		m.timeline[sec]++
	}
	m.mu.Unlock()
	m.release(flow)
	return true
}

// pending is how many sent messages were not received yet.
func (m *eMeter) pending() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sent - m.recv
}

func (m *eMeter) progress() Progress {
	m.mu.Lock()
	defer m.mu.Unlock()
	return Progress{Sent: m.sent, Recv: m.recv}
}

// result turns the counts into a Result (without the process figures).
func (m *eMeter) result(target string) *Result {
	m.mu.Lock()
	defer m.mu.Unlock()
	dur := float64(m.winEnd-m.winStart) / 1e9
	h := m.hist.export()
	r := &Result{Target: target, Available: true, DurationSec: dur, DeliveredPS: float64(m.recvInWin) / dur,
		Sent: m.sent, Acks: m.sent, Recv: m.recv, Expected: m.sentWin, Lost: max(0, m.sentWin-m.recvWin),
		Errors: m.errs, FirstError: m.firstErr, Latency: latencyOf(&h), Timeline: append([]int64(nil), m.timeline...),
		Extra: map[string]float64{"duplicates": float64(m.dups), "sent_in_window": float64(m.sentWin),
			"sent_per_sec": float64(m.sentWin) / dur}}
	return r
}

// findBenchContent finds a bench header (see msgfmt.go) in a message body:
// at its start, or after a prefix a bridge may add.
func findBenchContent(b []byte) (sentNs int64, flow uint32, ok bool) {
	for i := 0; i+benchHeaderLen <= len(b); {
		j := bytes.IndexByte(b[i:], benchMark)
		if j < 0 {
			return 0, 0, false
		}
		if ns, f, ok := parseBenchContent(b[i+j:]); ok {
			return ns, f, true
		}
		i += j + 1
	}
	return 0, 0, false
}

// eFlow is one sender of scenario (e): send makes one send request and
// returns once it is answered (the HTTP answer of a Matrix send, the ACK of
// a Sandcat WebSocket send).
type eFlow struct {
	id   uint32
	send func(ctx context.Context, body []byte) error
}

// runEFlows runs the flows from start until the window ends, then waits up
// to drain for the messages in flight. The receivers must already pass
// what they see to m.receive.
func runEFlows(ctx context.Context, m *eMeter, flows []eFlow, size int, drain time.Duration) {
	winEnd := time.Unix(0, m.winEnd)
	var wg sync.WaitGroup
	for _, f := range flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(time.Unix(0, m.startNs)))
			slots := m.slots[f.id]
			var buf []byte
			for {
				t := time.NewTimer(time.Until(winEnd))
				select {
				case <-slots:
					t.Stop()
				case <-t.C:
					return
				case <-ctx.Done():
					t.Stop()
					return
				}
				now := time.Now()
				if !now.Before(winEnd) {
					return
				}
				buf = appendBenchContent(buf[:0], now.UnixNano(), f.id, size)
				if err := f.send(ctx, buf); err != nil {
					if ctx.Err() != nil {
						return
					}
					m.noteErr(f.id, err)
					time.Sleep(100 * time.Millisecond)
					continue
				}
				m.noteSent(now.UnixNano())
			}
		}()
	}
	wg.Wait()
	deadline := time.Now().Add(drain)
	for m.pending() > 0 && time.Now().Before(deadline) && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
}

// eSink hands what a receiver sees to the meter of the running step, if
// that receiver is the one measured.
type eSink struct{ p atomic.Pointer[eMeter] }

func (s *eSink) see(body []byte) {
	if m := s.p.Load(); m != nil {
		m.receive(body, time.Now().UnixNano())
	}
}

// bridgeRatios compares the bridge with Synapse alone at the same
// parallelism and window: throughput as a ratio, the p50 and p99 as ratios,
// and what the bridge adds to the p50 in milliseconds.
func bridgeRatios(bridge, synapse *Result) map[string]float64 {
	r := map[string]float64{}
	if bridge == nil || synapse == nil || !bridge.Available || !synapse.Available {
		return r
	}
	r["delivered_per_sec"] = ratio(bridge.DeliveredPS, synapse.DeliveredPS)
	r["p50"] = ratio(bridge.Latency.P50, synapse.Latency.P50)
	r["p99"] = ratio(bridge.Latency.P99, synapse.Latency.P99)
	r["p50_added_ms"] = math.Round((bridge.Latency.P50-synapse.Latency.P50)*100) / 100
	return r
}

// Targets of issue 6 for scenario (e).
const (
	eRateTarget     = 0.9 // of Synapse's own rate for a plain client, same parallelism
	eAddedP50Target = 20  // ms added to Synapse's p50
)

// bridgeTargets checks the targets of a step: the rate at maximum, the
// added p50 one message at a time; always: nothing lost or duplicated.
func bridgeTargets(dir string, maxRate bool, bridge *Result, ratios map[string]float64) []TargetCheck {
	var out []TargetCheck
	if bridge == nil || !bridge.Available {
		return out
	}
	if _, ok := ratios["delivered_per_sec"]; ok {
		if maxRate {
			v := ratios["delivered_per_sec"]
			out = append(out, TargetCheck{What: fmt.Sprintf("(e) %s msg/s vs Synapse alone, same parallelism", dir),
				Goal: fmt.Sprintf("≥ %.1f×", eRateTarget), Value: v, Met: v >= eRateTarget})
		} else {
			v := ratios["p50_added_ms"]
			out = append(out, TargetCheck{What: fmt.Sprintf("(e) %s p50 added to Synapse's", dir),
				Goal: fmt.Sprintf("≤ %d ms", eAddedP50Target), Value: v, Met: bridge.Latency.N > 0 && v <= eAddedP50Target})
		}
	}
	out = append(out, TargetCheck{What: fmt.Sprintf("(e) %s messages lost + duplicated", dir), Goal: "= 0",
		Value: float64(bridge.Lost) + bridge.Extra["duplicates"], Met: bridge.Lost == 0 && bridge.Extra["duplicates"] == 0 && bridge.Recv > 0})
	return out
}
