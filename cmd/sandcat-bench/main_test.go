package main

import (
	"bytes"
	"context"
	"encoding/json"
	"image/png"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/app"
	"github.com/sandcat-im/sandcat/im/client"
	"github.com/sandcat-im/sandcat/im/config"
	"github.com/sandcat-im/sandcat/im/mail"
	"github.com/sandcat-im/sandcat/im/wire"
)

// TestMain lets the test binary be re-executed as the tool's children
// (workers, the relay, a Sandcat), as the tool itself is.
func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "worker":
		os.Exit(workerMain())
	case "serve":
		os.Exit(serveMain())
	case "relay":
		os.Exit(relayMain())
	}
	os.Exit(m.Run())
}

func TestHistQuantiles(t *testing.T) {
	var h histArr
	for v := int64(1); v <= 100000; v++ {
		h.record(v)
	}
	e := h.export()
	var merged Hist
	merged.Merge(e)
	tests := []struct {
		q    float64
		want int64
	}{{0.5, 50000}, {0.95, 95000}, {0.99, 99000}, {1, 100000}}
	for _, tt := range tests {
		got := merged.Quantile(tt.q)
		if d := float64(got-tt.want) / float64(tt.want); d > 0.02 || d < -0.02 {
			t.Errorf("q%.2f = %d, want %d ±2%%", tt.q, got, tt.want)
		}
	}
	if merged.N != 100000 || merged.Max != 100000 {
		t.Errorf("n %d max %d", merged.N, merged.Max)
	}
	for i := range 3000 {
		if b := histBucket(histValue(i)); b != i {
			t.Fatalf("bucket(value(%d)) = %d", i, b)
		}
	}
}

func TestBenchContentAndPeek(t *testing.T) {
	tests := []struct {
		name  string
		size  int
		group bool
	}{{"small", benchHeaderLen, false}, {"100 bytes", 100, false}, {"group 1 KiB", 1024, true}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mb := newMsgBuilder("alice", "bob", tt.group)
			frame := append([]byte(nil), mb.frame(1234567890123456789, 0xdeadbeef, tt.size)...)
			m, err := wire.DecodeMsg(frame) // the real decoder accepts the frame
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Content) != tt.size || m.SendID != "alice" || m.ReceiverID != "bob" || m.LocalID == "" {
				t.Fatalf("decoded %+v", m)
			}
			fi, ok := peekFrame(frame)
			if !ok || fi.msgType != m.MsgType || fi.contentType != wire.ContentText || !bytes.Equal(fi.content, m.Content) {
				t.Fatalf("peek %+v", fi)
			}
			ts, flow, ok := parseBenchContent(fi.content)
			if !ok || ts != 1234567890123456789 || flow != 0xdeadbeef {
				t.Fatalf("content %q → %d %x %v", fi.content, ts, flow, ok)
			}
			to, ok := peekReceiver(frame)
			if !ok || string(to) != "bob" {
				t.Fatalf("receiver %q", to)
			}
		})
	}
	if _, ok := peekFrame([]byte{1, 2, 3}); ok {
		t.Error("a truncated frame peeked")
	}
	if _, _, ok := parseBenchContent([]byte("hello")); ok {
		t.Error("a foreign content parsed")
	}
}

// TestSMTPSink sends a code with Sandcat's own SMTP sender (TLS none) to the
// sink, which must find it in the quoted-printable HTML body.
func TestSMTPSink(t *testing.T) {
	sink, err := startSMTPSink("")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	s, err := mail.NewSMTP(mail.SMTPOptions{Server: sink.Addr(), TLS: mail.TLSNone, From: "bench@sandcat.localhost"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.SendCode(ctx, "Ann@Example.com", "482913"); err != nil {
		t.Fatal(err)
	}
	code, err := sink.Code(ctx, "ann@example.com")
	if err != nil || code != "482913" {
		t.Fatalf("code %q, %v", code, err)
	}
}

func TestLogCodes(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sandcat.log")
	log := slog.New(slog.NewTextHandler(mustCreate(t, p), nil))
	if err := mail.NewLog(log).SendCode(context.Background(), "bob@example.com", "123456"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	code, err := (&logCodes{path: p}).Code(ctx, "bob@example.com")
	if err != nil || code != "123456" {
		t.Fatalf("code %q, %v", code, err)
	}
}

func mustCreate(t *testing.T, p string) io.Writer {
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// startApp runs the embedded default in this process (app.Start) on
// loopback listeners, mailing codes to the sink.
func startApp(t *testing.T, sink *smtpSink) (api, ws string, secret string) {
	t.Helper()
	secret = "bench-test-secret-" + randHex(8)
	env := []string{
		"SANDCAT_DATA_DIR=" + t.TempDir(),
		"SANDCAT_SERVER_JWT_SECRET=" + secret,
		"SANDCAT_MAIL_SERVER=" + sink.Addr(),
		"SANDCAT_MAIL_TLS=none",
		"SANDCAT_MAIL_FROM=bench@sandcat.localhost",
		"SANDCAT_LOG_LEVEL=warn",
	}
	cfg, err := config.Load("", false, env)
	if err != nil {
		t.Fatal(err)
	}
	apiLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	wsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	a, err := app.Start(context.Background(), cfg, log, app.Listeners{API: apiLn, WebSocket: wsLn})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_ = a.Shutdown(ctx)
	})
	return a.APIAddr(), a.WSAddr(), secret
}

// testBench is a bench on an in-process Sandcat with users registered over
// HTTP through the SMTP sink, and the given groups.
func testBench(t *testing.T, users int, groups []int) *bench {
	t.Helper()
	sink, err := startSMTPSink("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sink.Close)
	api, ws, secret := startApp(t, sink)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	h := &client.HTTP{Base: "http://" + api}
	fx := &fixture{Tag: randHex(4), Groups: map[string]string{}}
	if err := ensureUsers(ctx, h, sink, fx, users, 4, nil); err != nil {
		t.Fatal(err)
	}
	for _, g := range groups {
		if _, err := ensureGroup(ctx, h, fx, g, nil); err != nil {
			t.Fatal(err)
		}
	}
	out := t.TempDir()
	o := &options{out: out, state: t.TempDir(), inproc: true, srcIPs: 2, size: 100, warmup: 300 * time.Millisecond,
		duration: time.Second, pairs: users / 2, rate: 400, window: 8, idleConns: 20, idleHold: 300 * time.Millisecond, idleSettle: 150 * time.Millisecond,
		groups: groups, groupRate: 10, fanWindow: 2, catchup: 300, baselines: true}
	var stdout bytes.Buffer
	b := &bench{o: o, log: slog.New(slog.NewTextHandler(io.Discard, nil)), out: &stdout,
		bar: newProgressBar(io.Discard, true), machine: machineInfo(), h: h, wsBase: "ws://" + ws + "/ws",
		serverPIDs: []int{os.Getpid()}, fx: fx, secret: secret}
	b.runDir = t.TempDir()
	b.logw = io.Discard
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("tool output:\n%s", stdout.String())
		}
	})
	return b
}

// readStep reads back a step's JSON and checks its PNG decodes.
func readStep(t *testing.T, dir, id string) Step {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, id+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var s Step
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("%s.json: %v", id, err)
	}
	f, err := os.Open(filepath.Join(dir, id+".png"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s.png: %v", id, err)
	}
	if img.Bounds().Dx() < 100 || img.Bounds().Dy() < 100 {
		t.Errorf("%s.png is %v", id, img.Bounds())
	}
	return s
}

func checkRate(t *testing.T, id string, r *Result) {
	t.Helper()
	if r == nil || !r.Available {
		t.Fatalf("%s: no result: %+v", id, r)
	}
	if r.Sent == 0 || r.Recv == 0 || r.DeliveredPS <= 0 {
		t.Errorf("%s %s: sent %d recv %d delivered/s %.1f", id, r.Target, r.Sent, r.Recv, r.DeliveredPS)
	}
	if r.Latency.N == 0 || r.Latency.P50 <= 0 || r.Latency.Max < r.Latency.P99 || r.Latency.P99 < r.Latency.P50 {
		t.Errorf("%s %s: latency %+v", id, r.Target, r.Latency)
	}
	if r.Lost != 0 || r.Errors != 0 {
		t.Errorf("%s %s: lost %d errors %d (%s)", id, r.Target, r.Lost, r.Errors, r.FirstError)
	}
}

// TestScenarioB runs (b) for a second at a fixed rate and at maximum against
// an in-process Sandcat and the bare relay (a child process), and checks
// that messages were counted, latencies recorded and the report written.
func TestScenarioB(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	b := testBench(t, 8, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := b.scenarioB(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"b-fixed", "b-max"} {
		s := readStep(t, b.o.out, id)
		checkRate(t, id, s.Sandcat)
		checkRate(t, id, s.Baseline)
		if s.Baseline.Target != "relay" || s.Ratios["delivered_per_sec"] <= 0 {
			t.Errorf("%s: baseline %s ratios %v", id, s.Baseline.Target, s.Ratios)
		}
	}
	// At 400 msg/s offered for 1 s, about 400 messages are stamped in the window.
	s := readStep(t, b.o.out, "b-fixed")
	if n := s.Sandcat.Latency.N; n < 300 || n > 500 {
		t.Errorf("b-fixed: %d latencies recorded, want about 400", n)
	}
}

// TestScenariosACD runs (a) with 20 connections, (c) with a group of 5 and
// (d) with 300 messages, small and short ((e): bridge_test.go).
func TestScenariosACD(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	b := testBench(t, 10, []int{5})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if err := b.scenarioA(ctx); err != nil {
		t.Fatal(err)
	}
	a := readStep(t, b.o.out, "a-idle")
	if a.Sandcat.Conns != 20 || a.Sandcat.Extra["alive"] != 20 || a.Sandcat.Errors != 0 {
		t.Errorf("a-idle: %+v", a.Sandcat)
	}
	if len(a.Extra) != 1 || a.Extra[0].Target != "relay" || a.Extra[0].Conns != 20 {
		t.Errorf("a-idle: relay %+v", a.Extra)
	}

	if err := b.scenarioC(ctx); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c-5-rate", "c-5-max"} {
		s := readStep(t, b.o.out, id)
		checkRate(t, id, s.Sandcat)
		if s.Sandcat.Recv != s.Sandcat.Sent*4 {
			t.Errorf("%s: %d receipts for %d messages to 4 members", id, s.Sandcat.Recv, s.Sandcat.Sent)
		}
		if s.Baseline.Available {
			checkRate(t, id, s.Baseline)
		}
	}

	if err := b.scenarioD(ctx); err != nil {
		t.Fatal(err)
	}
	d := readStep(t, b.o.out, "d-catchup")
	if d.Sandcat.Extra["pulled"] != 300 || d.Sandcat.Extra["pull_sec"] <= 0 || d.Sandcat.Errors != 0 {
		t.Errorf("d-catchup: %+v", d.Sandcat)
	}

}

// TestProcWorker drives connections through a worker child process (the
// test binary re-executed), as the tool does past 18,000 connections.
func TestProcWorker(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	go func() { _ = serveRelay(ctx, ln, slog.New(slog.NewTextHandler(io.Discard, nil))) }()
	p, err := newPool(false, 4, 2, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	if len(p.workers) != 2 || p.workers[0].Pid() == os.Getpid() {
		t.Fatalf("workers %v", p.pids())
	}
	specs := make([]ConnSpec, 4)
	for i := range specs {
		id := "w" + strconv.Itoa(i)
		specs[i] = ConnSpec{URL: "ws://" + ln.Addr().String() + "/relay/" + id, ID: id}
	}
	// Pairs (0→1) on worker 0 and (2→3) on worker 1.
	cr, err := p.connect(ctx, kindRelay, "", specs, []string{"127.0.0.2", "127.0.0.3"}, func(i int) int { return i / 2 })
	if err != nil || cr.Connected != 4 {
		t.Fatalf("connect %+v %v", cr, err)
	}
	flows := [][]FlowSpec{
		{{Flow: 1, Conn: p.where[0].idx, To: "w1", Probe: p.where[1].idx}},
		{{Flow: 2, Conn: p.where[2].idx, To: "w3", Probe: p.where[3].idx}},
	}
	req := RunReq{StartNs: time.Now().Add(200 * time.Millisecond).UnixNano(), WarmupMs: 100, DurationMs: 500,
		DrainMs: 3000, Rate: 0, Window: 4, Size: 64}
	r, err := p.run(ctx, flows, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent == 0 || r.Recv != r.Sent || r.Acks != r.Sent || r.Hist.N == 0 || r.Alive != 4 {
		t.Errorf("result sent %d recv %d acks %d latencies %d alive %d", r.Sent, r.Recv, r.Acks, r.Hist.N, r.Alive)
	}
	if err := p.closeConns(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestWriteStep checks the report writer on a hand-made step: valid JSON
// that reads back the same, and a PNG.
func TestWriteStep(t *testing.T) {
	dir := t.TempDir()
	mk := func(target string, ps float64) *Result {
		return &Result{Target: target, Available: true, DeliveredPS: ps, Sent: 10, Recv: 10,
			Latency: Latency{P50: 1, P95: 2, P99: 3, Max: 4, N: 10}, Timeline: []int64{5, 10, 8, 0, 0}}
	}
	tests := []struct {
		name string
		step *Step
	}{
		{"rate", &Step{ID: "b-max", Title: "t", Sandcat: mk("sandcat", 100), Baseline: mk("relay", 200),
			Ratios: map[string]float64{"delivered_per_sec": 0.5}}},
		{"idle", &Step{ID: "a-idle", Title: "idle", Sandcat: &Result{Target: "sandcat", Available: true, BytesPerConn: 9000},
			Baseline: unavailable("centrifugo", "not built")}},
		{"unavailable", &Step{ID: "e-bridge", Title: "bridge", Sandcat: unavailable("sandcat", "no bridge")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := writeStep(dir, machineInfo(), tt.step); err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(filepath.Join(dir, tt.step.ID+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var back Step
			if err := json.Unmarshal(raw, &back); err != nil {
				t.Fatal(err)
			}
			if back.Sandcat.Target != "sandcat" || back.Sandcat.Available != tt.step.Sandcat.Available {
				t.Errorf("read back %+v", back.Sandcat)
			}
			_, err = os.Stat(filepath.Join(dir, tt.step.ID+".png"))
			if tt.step.Sandcat.Available {
				readStep(t, dir, tt.step.ID)
			} else if err == nil {
				t.Error("a PNG for a step with nothing measured")
			}
			var buf bytes.Buffer
			printStep(&buf, tt.step)
			if !strings.Contains(buf.String(), tt.step.ID) {
				t.Errorf("printed %q", buf.String())
			}
		})
	}
}
