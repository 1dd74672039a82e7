package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"
)

func TestFindBenchContent(t *testing.T) {
	body := appendBenchContent(nil, 1234567890123, 42, 60)
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"at the start", body, true},
		{"after a prefix", append([]byte("Bob: B not hex "), body...), true},
		{"none", []byte("Bxyz plain text that is long enough to look"), false},
		{"too short", body[:benchHeaderLen-1], false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, flow, ok := findBenchContent(tt.in)
			if ok != tt.ok || (ok && (ns != 1234567890123 || flow != 42)) {
				t.Fatalf("got %d %d %v, want ok=%v", ns, flow, ok, tt.ok)
			}
		})
	}
}

// The meter's arithmetic: window accounting by send stamp and by receipt
// time, duplicates, foreign messages, losses, slots.
func TestEMeter(t *testing.T) {
	start := time.Unix(1000, 0)
	m := newEMeter([]uint32{7, 8}, 2, start, time.Second, 10*time.Second)
	at := func(sec float64) int64 { return start.Add(time.Duration(sec * float64(time.Second))).UnixNano() }
	body := func(flow uint32, sentNs int64) []byte { return appendBenchContent(nil, sentNs, flow, 40) }

	// Flow 7: one message in the warm-up (received in the window), three in
	// the window (one received twice, one lost), one after the window.
	sends := []struct {
		flow     uint32
		sent     float64
		recvAt   []float64 // receipts (none: lost)
		inWindow bool
	}{
		{7, 0.5, []float64{1.2}, false},
		{7, 2, []float64{2.010}, true},
		{7, 3, []float64{3.020, 3.5}, true},
		{8, 4, nil, true},
		{8, 10.9, []float64{11.5}, true},
	}
	for _, s := range sends {
		m.noteSent(at(s.sent))
		for _, r := range s.recvAt {
			if !m.receive(body(s.flow, at(s.sent)), at(r)) {
				t.Fatalf("message of flow %d not taken", s.flow)
			}
		}
	}
	if m.receive(body(99, at(2)), at(2.1)) {
		t.Fatal("a message of another run's flow was counted")
	}
	if m.receive([]byte("a notice"), at(2.1)) {
		t.Fatal("a notice was counted")
	}
	r := m.result("x")
	want := struct{ sent, expected, recv, lost, dups int64 }{5, 4, 4, 1, 1}
	if r.Sent != want.sent || r.Expected != want.expected || r.Recv != want.recv || r.Lost != want.lost || r.Extra["duplicates"] != float64(want.dups) {
		t.Fatalf("sent %d expected %d recv %d lost %d dups %v, want %+v", r.Sent, r.Expected, r.Recv, r.Lost, r.Extra["duplicates"], want)
	}
	// Receipts inside [1 s, 11 s): 1.2, 2.01, 3.02 (11.5 is out): 3 in 10 s.
	if r.DeliveredPS != 0.3 {
		t.Fatalf("delivered/s %v, want 0.3", r.DeliveredPS)
	}
	// Latencies of the window's messages: 10 ms, 20 ms, 600 ms.
	if r.Latency.N != 3 || r.Latency.P50 < 19.5 || r.Latency.P50 > 20.5 || r.Latency.Max != 600 {
		t.Fatalf("latency %+v, want 3 samples, p50 20 ms, max 600 ms", r.Latency)
	}
	if m.pending() != 1 {
		t.Fatalf("pending %d, want 1 (the lost one)", m.pending())
	}
}

// runEFlows keeps at most window messages in flight per flow, frees a slot
// per receipt, and stops sending at the end of the window.
func TestRunEFlowsWindow(t *testing.T) {
	const window = 3
	start := time.Now().Add(50 * time.Millisecond)
	m := newEMeter([]uint32{1}, window, start, 0, 300*time.Millisecond)
	var (
		mu       sync.Mutex
		inFlight [][]byte
		maxSeen  int
	)
	deliver := make(chan struct{})
	go func() {
		// The receiver: delivers the oldest message in flight every 5 ms.
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-deliver:
				return
			case <-tk.C:
			}
			mu.Lock()
			var b []byte
			if len(inFlight) > 0 {
				b, inFlight = inFlight[0], inFlight[1:]
			}
			mu.Unlock()
			if b != nil {
				m.receive(b, time.Now().UnixNano())
			}
		}
	}()
	failOnce := true
	flow := eFlow{id: 1, send: func(_ context.Context, body []byte) error {
		mu.Lock()
		defer mu.Unlock()
		if failOnce {
			failOnce = false
			return errors.New("refused")
		}
		inFlight = append(inFlight, append([]byte(nil), body...))
		maxSeen = max(maxSeen, len(inFlight))
		return nil
	}}
	runEFlows(context.Background(), m, []eFlow{flow}, 40, 5*time.Second)
	close(deliver)
	r := m.result("x")
	if maxSeen > window {
		t.Fatalf("%d messages in flight, window %d", maxSeen, window)
	}
	if r.Sent == 0 || r.Recv != r.Sent || r.Lost != 0 || r.Errors != 1 || r.FirstError != "refused" {
		t.Fatalf("sent %d recv %d lost %d errors %d (%s)", r.Sent, r.Recv, r.Lost, r.Errors, r.FirstError)
	}
}

func TestBridgeRatiosAndTargets(t *testing.T) {
	syn := &Result{Target: "synapse", Available: true, DeliveredPS: 130, Latency: Latency{P50: 100, P99: 200, N: 10}}
	tests := []struct {
		name       string
		bridge     Result
		maxRate    bool
		wantRatio  float64
		wantAdded  float64
		wantMet    []bool
		wantValue0 float64
	}{
		{"fast enough", Result{Available: true, DeliveredPS: 126.1, Recv: 10, Latency: Latency{P50: 112.5, P99: 220, N: 10}, Extra: map[string]float64{}},
			true, 0.97, 12.5, []bool{true, true}, 0.97},
		{"too slow", Result{Available: true, DeliveredPS: 65, Recv: 10, Latency: Latency{P50: 150, N: 10}, Extra: map[string]float64{}},
			true, 0.5, 50, []bool{false, true}, 0.5},
		{"latency added too much", Result{Available: true, DeliveredPS: 5, Recv: 10, Latency: Latency{P50: 121, N: 10}, Extra: map[string]float64{}},
			false, 0.038, 21, []bool{false, true}, 21},
		{"latency within", Result{Available: true, DeliveredPS: 5, Recv: 10, Latency: Latency{P50: 119.99, N: 10}, Extra: map[string]float64{}},
			false, 0.038, 19.99, []bool{true, true}, 19.99},
		{"a duplicate", Result{Available: true, DeliveredPS: 130, Recv: 10, Latency: Latency{P50: 100, N: 10}, Extra: map[string]float64{"duplicates": 1}},
			true, 1, 0, []bool{true, false}, 1},
		{"a loss", Result{Available: true, DeliveredPS: 130, Recv: 10, Lost: 2, Latency: Latency{P50: 100, N: 10}, Extra: map[string]float64{}},
			true, 1, 0, []bool{true, false}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := bridgeRatios(&tt.bridge, syn)
			if r["delivered_per_sec"] != tt.wantRatio || r["p50_added_ms"] != tt.wantAdded {
				t.Fatalf("ratios %v, want rate %v added %v", r, tt.wantRatio, tt.wantAdded)
			}
			ts := bridgeTargets("x", tt.maxRate, &tt.bridge, r)
			if len(ts) != len(tt.wantMet) || ts[0].Value != tt.wantValue0 {
				t.Fatalf("targets %+v", ts)
			}
			for i, want := range tt.wantMet {
				if ts[i].Met != want {
					t.Fatalf("target %q met %v, want %v (%+v)", ts[i].What, ts[i].Met, want, ts)
				}
			}
		})
	}
	if r := bridgeRatios(&Result{Available: true}, unavailable("synapse", "off")); len(r) != 0 {
		t.Fatalf("ratios against an unavailable baseline: %v", r)
	}
}

// TestScenarioE runs scenario (e) small and short against a real Synapse
// (the chroot of `make synapse`; root): one sender one at a time, then two
// with two in flight, both ways, Synapse alone next to each, and the
// comparison with another build (here this test binary again).
func TestScenarioE(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Synapse and two servers")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	o := &options{out: out, state: t.TempDir(), size: 100, warmup: 300 * time.Millisecond, duration: time.Second,
		bridgePar: []int{2}, bridgeWin: 2, bridgeOld: exe, baselines: true, registerPar: 2}
	var stdout bytes.Buffer
	b := &bench{o: o, log: slog.New(slog.NewTextHandler(io.Discard, nil)), out: &stdout,
		bar: newProgressBar(io.Discard, true), machine: machineInfo(), runDir: t.TempDir()}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tool output:\n%s", stdout.String())
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if err := b.scenarioE(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"e-s2m-lat", "e-s2m-2", "e-m2s-lat", "e-m2s-2"} {
		s := readStep(t, out, id)
		rs := []*Result{s.Sandcat, s.Baseline}
		if id[2] == 's' { // s2m: the build before and its Synapse
			if len(s.Extra) != 2 || s.Extra[0].Target != "sandcat-before" || s.Extra[1].Target != "synapse-before" {
				t.Fatalf("%s: extra %+v", id, s.Extra)
			}
			rs = append(rs, s.Extra...)
			if s.Ratios["delivered_per_sec_vs_before"] <= 0 || s.Ratios["before_delivered_per_sec"] <= 0 {
				t.Errorf("%s: ratios %v", id, s.Ratios)
			}
		}
		for _, r := range rs {
			if !r.Available {
				t.Fatalf("%s: %s not available: %s", id, r.Target, r.Note)
			}
			if r.Recv == 0 || r.Recv < r.Sent || r.Lost != 0 || r.Errors != 0 || r.Extra["duplicates"] != 0 || r.Latency.N == 0 {
				t.Errorf("%s %s: sent %d recv %d lost %d errors %d (%s) duplicates %v latencies %d",
					id, r.Target, r.Sent, r.Recv, r.Lost, r.Errors, r.FirstError, r.Extra["duplicates"], r.Latency.N)
			}
		}
		if s.Sandcat.Extra["sandcat_cpu"] <= 0 && s.Sandcat.Extra["synapse_cpu"] <= 0 {
			t.Errorf("%s: no CPU figures: %v", id, s.Sandcat.Extra)
		}
		if _, ok := s.Ratios["p50_added_ms"]; !ok || s.Ratios["delivered_per_sec"] <= 0 || len(s.Targets) != 2 {
			t.Errorf("%s: ratios %v targets %+v", id, s.Ratios, s.Targets)
		}
	}
}
