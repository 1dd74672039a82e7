package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sandcat-im/sandcat/im/client"
)

// bench is one invocation: the target, its fixture, the steps measured.
type bench struct {
	o       *options
	log     *slog.Logger
	out     io.Writer
	bar     *progressBar
	machine Machine

	runDir     string
	logw       io.Writer // workers' stderr
	own        *sandcatServer
	h          *client.HTTP
	wsBase     string // ws://host:port/ws
	serverPIDs []int
	fx         *fixture
	fxPath     string
	secret     string
	flowSeq    uint32
	steps      []*Step
}

// perGateway keeps a gateway process under the 20,000 open files too.
const perGateway = 18000

// usersNeeded is the size of the user pool the scenarios need.
func (b *bench) usersNeeded() int {
	o := b.o
	n := 2
	for _, s := range o.scenarios {
		switch s {
		case "a":
			n = max(n, (o.idleConns+1)/2)
			if o.idleTotal > 0 {
				gws := (o.idleTotal + perGateway - 1) / perGateway
				n = max(n, ((o.idleTotal+gws-1)/gws+1)/2)
			}
		case "b":
			n = max(n, 2*o.pairs)
		case "c":
			for _, g := range o.groups {
				n = max(n, g)
			}
		}
	}
	return n
}

func (b *bench) groupsNeeded() []int {
	if !contains(b.o.scenarios, "c") {
		return nil
	}
	return b.o.groups
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

func (b *bench) runAll(ctx context.Context) ([]*Step, error) {
	o := b.o
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.state, 0o755); err != nil {
		return nil, err
	}
	var err error
	if b.runDir, err = os.MkdirTemp(o.state, "run-"); err != nil {
		return nil, err
	}
	defer func() {
		// Keep the logs, drop the data copy.
		_ = os.MkdirAll(filepath.Join(o.out, "logs"), 0o755)
		if ents, err := os.ReadDir(b.runDir); err == nil {
			for _, e := range ents {
				if strings.HasSuffix(e.Name(), ".log") {
					_ = os.Rename(filepath.Join(b.runDir, e.Name()), filepath.Join(o.out, "logs", e.Name()))
				}
			}
		}
		_ = os.RemoveAll(b.runDir)
	}()
	lf, err := os.Create(filepath.Join(b.runDir, "workers.log"))
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	b.logw = lf

	if o.api == "" {
		err = b.setupOwn(ctx)
	} else {
		err = b.setupExternal(ctx)
	}
	defer func() {
		if b.own != nil {
			b.own.Stop(20 * time.Second)
		}
	}()
	if err != nil {
		return nil, err
	}
	b.bar.done()
	fmt.Fprintf(b.out, "sandcat-bench on %s (%d CPUs, %.0f GiB, %s): target %s, %d users ready\n",
		b.machine.CPU, b.machine.CPUs, b.machine.MemGiB, b.machine.Go, b.h.Base, len(b.fx.Users))

	for _, s := range o.scenarios {
		var err error
		switch s {
		case "a":
			err = b.scenarioA(ctx)
		case "b":
			err = b.scenarioB(ctx)
		case "c":
			err = b.scenarioC(ctx)
		case "d":
			err = b.scenarioD(ctx)
		case "e":
			err = b.scenarioE(ctx)
		}
		if err != nil {
			return b.steps, fmt.Errorf("scenario %s: %w", s, err)
		}
	}
	summary, _ := json.MarshalIndent(struct {
		Machine Machine `json:"machine"`
		Steps   []*Step `json:"steps"`
	}{b.machine, b.steps}, "", "  ")
	if err := os.WriteFile(filepath.Join(o.out, "summary.json"), summary, 0o644); err != nil {
		return b.steps, err
	}
	return b.steps, nil
}

// setupOwn builds (once) the seed of users and groups on the embedded
// default, copies it for this run and starts the Sandcat under test on the copy.
func (b *bench) setupOwn(ctx context.Context) error {
	seedDir := filepath.Join(b.o.state, "seed")
	b.fxPath = filepath.Join(seedDir, "fixture.json")
	if err := os.MkdirAll(seedDir, 0o755); err != nil {
		return err
	}
	fx, err := loadFixture(b.fxPath)
	if err != nil {
		return err
	}
	if fx.Secret == "" {
		fx.Secret = randHex(24)
	}
	b.fx, b.secret = fx, fx.Secret
	need, groups := b.usersNeeded(), b.groupsNeeded()
	missing := len(fx.Users) < need
	for _, g := range groups {
		if fx.Groups[strconv.Itoa(g)] == "" {
			missing = true
		}
	}
	if missing {
		if err := b.buildSeed(ctx, seedDir, need, groups); err != nil {
			return fmt.Errorf("seed: %w", err)
		}
	}
	data := filepath.Join(b.runDir, "data")
	if err := copyDir(filepath.Join(seedDir, "data"), data); err != nil {
		return fmt.Errorf("copy the seed: %w", err)
	}
	sc, err := startSandcat(ctx, sandcatOpts{Dir: b.runDir, DataDir: data, Secret: b.secret, CPUProfile: b.o.profile})
	if err != nil {
		return err
	}
	b.own = sc
	b.h = &client.HTTP{Base: "http://" + sc.API}
	b.wsBase = "ws://" + sc.WS + "/ws"
	b.serverPIDs = []int{sc.Pid()}
	rotate := time.Since(fx.RefreshedAt) > 12*time.Hour
	if err := ensureTokens(ctx, b.h, fx, need, rotate, b.bar.step); err != nil {
		return err
	}
	if rotate {
		return fx.save(b.fxPath)
	}
	return nil
}

func (b *bench) buildSeed(ctx context.Context, seedDir string, need int, groups []int) error {
	fx := b.fx
	start := time.Now()
	fmt.Fprintf(b.out, "building the seed in %s: %d users (registered over HTTP, two argon2id hashes each), groups %v; later runs reuse it\n",
		seedDir, need, groups)
	sink, err := startSMTPSink("")
	if err != nil {
		return err
	}
	defer sink.Close()
	sc, err := startSandcat(ctx, sandcatOpts{Dir: seedDir, DataDir: filepath.Join(seedDir, "data"), Secret: fx.Secret, SMTP: sink.Addr()})
	if err != nil {
		return err
	}
	defer sc.Stop(20 * time.Second)
	h := &client.HTTP{Base: "http://" + sc.API}
	if err := ensureTokens(ctx, h, fx, len(fx.Users), false, b.bar.step); err != nil {
		return err
	}
	if err := ensureUsers(ctx, h, sink, fx, need, b.o.registerPar, b.bar.step); err != nil {
		_ = fx.save(b.fxPath)
		return err
	}
	if err := fx.save(b.fxPath); err != nil {
		return err
	}
	created := false
	for _, g := range groups {
		if fx.Groups[strconv.Itoa(g)] != "" {
			continue
		}
		last := fx.Users[g-1]
		before, err := h.WithToken(last.Token).Seq(ctx, last.ID)
		if err != nil {
			return err
		}
		if _, err := ensureGroup(ctx, h, fx, g, b.bar.step); err != nil {
			return err
		}
		// The notices are consumed in order: once the last member got its
		// invitation, every earlier record was processed.
		if err := waitRecvSeq(ctx, h, last, before.Seq+1, 10*time.Minute); err != nil {
			return err
		}
		created = true
		if err := fx.save(b.fxPath); err != nil {
			return err
		}
	}
	b.bar.done()
	sc.Stop(20 * time.Second)
	if created {
		if err := cleanSeedInbox(ctx, filepath.Join(seedDir, "data", "sandcat.db"), b.log); err != nil {
			return err
		}
	}
	fmt.Fprintf(b.out, "seed ready in %s\n", time.Since(start).Round(time.Second))
	return fx.save(b.fxPath)
}

// setupExternal prepares users and groups on a running Sandcat (cached per target).
func (b *bench) setupExternal(ctx context.Context) error {
	u, err := url.Parse(b.o.api)
	if err != nil || u.Host == "" {
		return fmt.Errorf("-api %q: want http://host:port", b.o.api)
	}
	b.h = &client.HTTP{Base: strings.TrimSuffix(b.o.api, "/")}
	b.fxPath = filepath.Join(b.o.state, "target-"+strings.NewReplacer(":", "_", "/", "_").Replace(u.Host)+".json")
	fx, err := loadFixture(b.fxPath)
	if err != nil {
		return err
	}
	if len(fx.Users) > 0 {
		if _, err := b.h.GetUser(ctx, fx.Users[0].ID); client.StatusOf(err) == http.StatusNotFound {
			b.log.Warn("the cached users are unknown to the target: registering anew", "fixture", b.fxPath)
			fx = &fixture{Tag: randHex(4), Groups: map[string]string{}}
		}
	}
	b.fx = fx
	var codes codeSource
	if b.o.codeLog != "" {
		codes = &logCodes{path: b.o.codeLog}
	} else {
		addr := b.o.smtp
		if addr == "" {
			addr = "127.0.0.1:2525"
		}
		sink, err := startSMTPSink(addr)
		if err != nil {
			return err
		}
		defer sink.Close()
		codes = sink
	}
	need := b.usersNeeded()
	if err := ensureTokens(ctx, b.h, fx, len(fx.Users), false, b.bar.step); err != nil {
		return err
	}
	if err := ensureUsers(ctx, b.h, codes, fx, need, b.o.registerPar, b.bar.step); err != nil {
		_ = fx.save(b.fxPath)
		return err
	}
	for _, g := range b.groupsNeeded() {
		if _, err := ensureGroup(ctx, b.h, fx, g, b.bar.step); err != nil {
			_ = fx.save(b.fxPath)
			return err
		}
	}
	if err := fx.save(b.fxPath); err != nil {
		return err
	}
	b.wsBase = b.o.ws
	if b.wsBase == "" {
		lr, err := b.h.Login(ctx, fx.Users[0].Email, fx.Users[0].Password)
		if err != nil {
			return err
		}
		b.wsBase = lr.WSAddr
	}
	if b.o.serverPID > 0 {
		b.serverPIDs = []int{b.o.serverPID}
	}
	return nil
}

// sandcatSpecs returns n connections of the pool's users: connection j is
// user j/2 on platform j%2 (desktop and mobile), so n connections need n/2 users.
func (b *bench) sandcatSpecs(wsBase string, n int) ([]ConnSpec, error) {
	if (n+1)/2 > len(b.fx.Users) {
		return nil, fmt.Errorf("%d connections need %d users, have %d", n, (n+1)/2, len(b.fx.Users))
	}
	out := make([]ConnSpec, n)
	for j := range n {
		u := b.fx.Users[j/2]
		s, err := client.URL(wsBase, u.ID, int32(j%2), u.Token)
		if err != nil {
			return nil, err
		}
		out[j] = ConnSpec{URL: s, ID: u.ID}
	}
	return out, nil
}

// userSpecs returns one desktop connection per listed user.
func (b *bench) userSpecs(users []benchUser) ([]ConnSpec, error) {
	out := make([]ConnSpec, len(users))
	for i, u := range users {
		s, err := client.URL(b.wsBase, u.ID, 0, u.Token)
		if err != nil {
			return nil, err
		}
		out[i] = ConnSpec{URL: s, ID: u.ID}
	}
	return out, nil
}

func (b *bench) srcIPs() []string {
	out := make([]string, b.o.srcIPs)
	for i := range out {
		out[i] = fmt.Sprintf("127.0.0.%d", i+2)
	}
	return out
}

func (b *bench) nextFlow() uint32 {
	b.flowSeq++
	return b.flowSeq
}

func (b *bench) finish(s *Step) error {
	b.bar.done()
	s.LoadAvg = loadAvg()
	b.steps = append(b.steps, s)
	printStep(b.out, s)
	return writeStep(b.o.out, b.machine, s)
}

func unavailable(target, why string) *Result {
	return &Result{Target: target, Available: false, Note: why}
}

func sumRSS(pids []int) int64 {
	var t int64
	for _, p := range pids {
		if s, err := readProc(p); err == nil {
			t += s.RSS
		}
	}
	return t
}

func sumUsage(u map[int]ProcUsage, pids []int) ProcUsage {
	var t ProcUsage
	for _, p := range pids {
		x := u[p]
		t.CPUCores += x.CPUCores
		t.RSS += x.RSS
		t.PeakRSS += x.PeakRSS
	}
	return t
}

// ---------------------------------------------------------------------------
// (a) idle connections

// idle connects specs, holds them for -idle-hold and measures the servers'
// memory growth per connection and their CPU.
func (b *bench) idle(ctx context.Context, label, target, kind string, specs []ConnSpec, pids []int, minWorkers int) (*Result, error) {
	p, err := newPool(b.o.inproc, len(specs), minWorkers, b.logw)
	if err != nil {
		return nil, err
	}
	defer p.Stop()
	waitIdle(ctx, pids, 90*time.Second)
	time.Sleep(b.o.idleSettle / 3)
	before := sumRSS(pids)
	clientBefore := sumRSS(p.pids())
	b.bar.begin(label+" connect", 0)
	b.bar.step(label+": connecting", 0, len(specs))
	cr, err := p.connect(ctx, kind, "", specs, b.srcIPs(), nil)
	if err != nil {
		return nil, err
	}
	b.bar.step(label+": connected", cr.Connected, len(specs))
	time.Sleep(b.o.idleSettle) // let the servers settle
	w := watchProcs(append(append([]int{}, pids...), p.pids()...), 500*time.Millisecond)
	hold := b.o.idleHold
	b.bar.begin(label+" hold", hold)
	rr, err := p.run(ctx, nil, RunReq{StartNs: time.Now().UnixNano(), DurationMs: hold.Milliseconds(), QuietMs: 1},
		b.bar.update)
	usage := w.Stop()
	if err != nil {
		return nil, err
	}
	r := &Result{Target: target, Available: true, Conns: cr.Connected, ConnectFailed: cr.Failed, ConnectMs: cr.TookMs,
		FirstError: cr.FirstErr, ServerPIDs: pids, Server: sumUsage(usage, pids), Clients: sumUsage(usage, p.pids()),
		DurationSec: hold.Seconds(), Errors: int64(cr.Failed) + int64(cr.Connected-rr.Alive),
		Extra: map[string]float64{"alive": float64(rr.Alive)}}
	if r.FirstError == "" {
		r.FirstError = rr.FirstErr
	}
	if cr.Connected > 0 {
		r.BytesPerConn = float64(r.Server.RSS-before) / float64(cr.Connected)
		r.Extra["client_bytes_per_conn"] = float64(r.Clients.RSS-clientBefore) / float64(cr.Connected)
		r.Extra["connects_per_sec"] = float64(cr.Connected) / math.Max(float64(cr.TookMs)/1000, 1e-3)
	}
	r.Params = map[string]any{"conns": len(specs), "hold_sec": hold.Seconds(), "workers": len(p.workers)}
	_ = p.closeConns(ctx)
	return r, nil
}

func (b *bench) scenarioA(ctx context.Context) error {
	o := b.o
	n := o.idleConns
	step := &Step{ID: "a-idle", Title: fmt.Sprintf("(a) %d idle connections on one gateway", n), Ratios: map[string]float64{}}
	specs, err := b.sandcatSpecs(b.wsBase, n)
	if err != nil {
		return err
	}
	if step.Sandcat, err = b.idle(ctx, "a sandcat", "sandcat", kindSandcat, specs, b.serverPIDs, 1); err != nil {
		return err
	}
	if o.baselines {
		step.Baseline = b.idleCentrifugo(ctx, n)
		rl, err := b.idleRelay(ctx, n)
		if err != nil {
			return err
		}
		step.Extra = append(step.Extra, rl)
	} else {
		step.Baseline = unavailable("centrifugo", "-baselines=false")
	}
	s := step.Sandcat
	if c := step.Baseline; c.Available {
		step.Ratios["bytes_per_conn_vs_centrifugo"] = ratio(s.BytesPerConn, c.BytesPerConn)
	}
	for _, x := range step.Extra {
		if x.Available {
			step.Ratios["bytes_per_conn_vs_relay"] = ratio(s.BytesPerConn, x.BytesPerConn)
		}
	}
	step.Targets = append(step.Targets, TargetCheck{What: "(a) gateway KiB per idle connection", Goal: "≤ 10 KiB",
		Value: s.BytesPerConn / 1024, Met: s.BytesPerConn > 0 && s.BytesPerConn <= 10*1024 && s.Conns == n})
	if err := b.finish(step); err != nil {
		return err
	}
	if o.idleTotal > 0 {
		return b.scenarioASpread(ctx)
	}
	return nil
}

func (b *bench) idleCentrifugo(ctx context.Context, n int) *Result {
	bin, err := findCentrifugo(b.o.centrifugo)
	if err != nil {
		return unavailable("centrifugo", err.Error())
	}
	c, addr, err := startCentrifugo(ctx, bin, b.runDir)
	if err != nil {
		return unavailable("centrifugo", err.Error())
	}
	defer c.Stop(5 * time.Second)
	specs := make([]ConnSpec, n)
	for i := range specs {
		specs[i] = ConnSpec{URL: "ws://" + addr + "/connection/websocket", ID: "c" + strconv.Itoa(i)}
	}
	r, err := b.idle(ctx, "a centrifugo", "centrifugo", kindCentrifugo, specs, []int{c.Pid()}, 1)
	if err != nil {
		return unavailable("centrifugo", err.Error())
	}
	return r
}

func (b *bench) idleRelay(ctx context.Context, n int) (*Result, error) {
	c, addr, err := startRelay(ctx, b.runDir)
	if err != nil {
		return nil, err
	}
	defer c.Stop(5 * time.Second)
	specs := make([]ConnSpec, n)
	for i := range specs {
		specs[i] = ConnSpec{URL: "ws://" + addr + "/relay/r" + strconv.Itoa(i), ID: "r" + strconv.Itoa(i)}
	}
	return b.idle(ctx, "a relay", "relay", kindRelay, specs, []int{c.Pid()}, 1)
}

// scenarioASpread holds -idle-total connections over several gateways: the
// tool's own Sandcat plus more embedded Sandcat processes sharing its JWT
// secret (or the -gateways of an external target).
func (b *bench) scenarioASpread(ctx context.Context) error {
	o := b.o
	total := o.idleTotal
	bases := []string{b.wsBase}
	pids := append([]int{}, b.serverPIDs...)
	if b.own != nil {
		k := (total + perGateway - 1) / perGateway
		for i := 1; i < k; i++ {
			dir := filepath.Join(b.runDir, fmt.Sprintf("gw%d", i))
			// A gateway-only process needs PostgreSQL, Redis and Kafka to
			// share state; here each extra gateway is an embedded Sandcat of
			// its own (same JWT secret), holding connections like any gateway.
			gw, err := startSandcat(ctx, sandcatOpts{Dir: dir, DataDir: filepath.Join(dir, "data"), Secret: b.secret})
			if err != nil {
				return err
			}
			defer gw.Stop(20 * time.Second)
			bases = append(bases, "ws://"+gw.WS+"/ws")
			pids = append(pids, gw.Pid())
		}
	} else {
		bases = append(bases, o.gateways...)
	}
	k := len(bases)
	per := (total + k - 1) / k
	if per > perGateway {
		return fmt.Errorf("%d connections over %d gateways is %d per gateway, above %d: add -gateways", total, k, per, perGateway)
	}
	specs := make([]ConnSpec, 0, total)
	for g, base := range bases {
		n := min(per, total-g*per)
		s, err := b.sandcatSpecs(base, n)
		if err != nil {
			return err
		}
		specs = append(specs, s...)
	}
	step := &Step{ID: "a-spread", Title: fmt.Sprintf("(a) %d idle connections over %d gateways", total, k), Ratios: map[string]float64{}}
	r, err := b.idle(ctx, "a spread", "sandcat", kindSandcat, specs, pids, 1)
	if err != nil {
		return err
	}
	r.Params["gateways"] = k
	step.Sandcat = r
	step.Targets = append(step.Targets, TargetCheck{What: "(a) connections held across gateways", Goal: fmt.Sprintf("= %d", total),
		Value: r.Extra["alive"], Met: int(r.Extra["alive"]) == total})
	return b.finish(step)
}

// ---------------------------------------------------------------------------
// rate steps (b, c)

// measure runs flows on p with req's shape and turns the merged result into
// a Result. fanout is how many receipts each message should produce.
func (b *bench) measure(ctx context.Context, label, target string, p *pool, flows [][]FlowSpec, req RunReq, pids []int, fanout int64, onWindow func(start bool)) (*Result, error) {
	waited := waitIdle(ctx, pids, 90*time.Second)
	req.StartNs = time.Now().Add(300 * time.Millisecond).UnixNano()
	winStart := time.Unix(0, req.StartNs+req.WarmupMs*1e6)
	winEnd := winStart.Add(time.Duration(req.DurationMs) * time.Millisecond)
	usageCh := make(chan map[int]ProcUsage, 1)
	all := append(append([]int{}, pids...), p.pids()...)
	go func() {
		time.Sleep(time.Until(winStart))
		if onWindow != nil {
			onWindow(true)
		}
		w := watchProcs(all, 500*time.Millisecond)
		time.Sleep(time.Until(winEnd))
		usageCh <- w.Stop()
		if onWindow != nil {
			onWindow(false)
		}
	}()
	b.bar.begin(label, time.Duration(req.WarmupMs+req.DurationMs)*time.Millisecond)
	rr, err := p.run(ctx, flows, req, b.bar.update)
	usage := <-usageCh
	if err != nil {
		return nil, err
	}
	dur := float64(req.DurationMs) / 1000
	r := &Result{Target: target, Available: true, DurationSec: dur, DeliveredPS: float64(rr.RecvInWin) / dur,
		Sent: rr.Sent, Acks: rr.Acks, Recv: rr.Recv, Expected: rr.SentWindow * fanout,
		Errors: rr.AckErrors + rr.SendErrors + rr.Closed, FirstError: rr.FirstErr, Latency: latencyOf(&rr.Hist),
		Timeline: rr.Timeline, ServerPIDs: pids, Server: sumUsage(usage, pids), Clients: sumUsage(usage, p.pids()),
		Extra: map[string]float64{"ack_errors": float64(rr.AckErrors), "send_errors": float64(rr.SendErrors),
			"conns_lost": float64(rr.Closed), "other_frames": float64(rr.Other), "waited_idle_sec": waited.Seconds()}}
	r.Lost = max(0, r.Expected-rr.RecvWindow)
	r.Extra["sent_per_sec"] = float64(rr.Sent) / (float64(req.WarmupMs+req.DurationMs) / 1000)
	if req.Rate > 0 {
		nf := 0
		for _, f := range flows {
			nf += len(f)
		}
		r.Extra["offered_per_sec"] = req.Rate * float64(nf)
	}
	if rr.Hist.N == 0 && rr.HistAll.N > 0 {
		// The sender fell so far behind its schedule that no message stamped
		// inside the window was sent: report every message of the run, each
		// from its scheduled send time.
		r.Latency = latencyOf(&rr.HistAll)
		r.Extra["latency_of_whole_run"] = 1
		r.Note = "the server did not keep up with the offered rate: no message scheduled inside the window was sent; latencies are those of every message of the step, from its scheduled send time"
	}
	nflows := 0
	for _, f := range flows {
		nflows += len(f)
	}
	r.Params = map[string]any{"flows": nflows, "rate_per_flow": req.Rate, "window": req.Window, "size": req.Size,
		"warmup_sec": float64(req.WarmupMs) / 1000, "duration_sec": dur}
	return r, nil
}

func (b *bench) rateReq(rate float64, window int) RunReq {
	return RunReq{WarmupMs: b.o.warmup.Milliseconds(), DurationMs: b.o.duration.Milliseconds(), DrainMs: 60000,
		Rate: rate, Window: window, Size: b.o.size}
}

// pairsRun connects the pairs of scenario (b) (senders then receivers, all on
// one worker, a receipt frees its sender's slot) and runs the fixed and the
// maximum rate.
func (b *bench) pairsRun(ctx context.Context, target, kind string, specs []ConnSpec, pids []int, profile bool) (fixed, maxr *Result, err error) {
	pairs := len(specs) / 2
	p, err := newPool(b.o.inproc, len(specs), 1, b.logw)
	if err != nil {
		return nil, nil, err
	}
	defer p.Stop()
	if len(p.workers) != 1 {
		return nil, nil, fmt.Errorf("(b) keeps a pair on one worker: at most %d connections", perWorkerConns)
	}
	cr, err := p.connect(ctx, kind, "", specs, b.srcIPs(), nil)
	if err != nil {
		return nil, nil, err
	}
	if cr.Failed > 0 {
		return nil, nil, fmt.Errorf("%s: %d of %d connections failed: %s", target, cr.Failed, len(specs), cr.FirstErr)
	}
	flows := func() [][]FlowSpec {
		fs := make([]FlowSpec, pairs)
		for i := range fs {
			fs[i] = FlowSpec{Flow: b.nextFlow(), Conn: p.where[i].idx, To: specs[pairs+i].ID, Probe: p.where[pairs+i].idx}
		}
		return [][]FlowSpec{fs}
	}
	o := b.o
	// At a fixed rate a sender may have one second of messages in flight: a
	// server that does not keep up falls behind by at most that much (the
	// latency still counts from the scheduled send time).
	fixedWindow := max(4, int(o.rate/float64(pairs)))
	fixed, err = b.measure(ctx, "b fixed "+target, target, p, flows(), b.rateReq(o.rate/float64(pairs), fixedWindow), pids, 1, nil)
	if err != nil {
		return nil, nil, err
	}
	fixed.Params["offered_per_sec"] = o.rate
	var onWindow func(bool)
	if profile && b.own != nil && o.profile != "" {
		sig := b.own.cmd.Process
		onWindow = func(start bool) {
			if start {
				_ = sig.Signal(syscall.SIGUSR1)
			} else {
				_ = sig.Signal(syscall.SIGUSR2)
			}
		}
	}
	maxr, err = b.measure(ctx, "b max "+target, target, p, flows(), b.rateReq(0, o.window), pids, 1, onWindow)
	if err != nil {
		return nil, nil, err
	}
	_ = p.closeConns(ctx)
	return fixed, maxr, nil
}

func (b *bench) scenarioB(ctx context.Context) error {
	o := b.o
	P := o.pairs
	users := append(append([]benchUser{}, b.fx.Users[:P]...), b.fx.Users[P:2*P]...)
	specs, err := b.userSpecs(users)
	if err != nil {
		return err
	}
	sf, sm, err := b.pairsRun(ctx, "sandcat", kindSandcat, specs, b.serverPIDs, true)
	if err != nil {
		return err
	}
	fixed := &Step{ID: "b-fixed", Title: fmt.Sprintf("(b) 1:1, %d pairs, %.0f msg/s offered", P, o.rate), Sandcat: sf, Ratios: map[string]float64{}}
	maxs := &Step{ID: "b-max", Title: fmt.Sprintf("(b) 1:1, %d pairs, maximum (%d in flight per sender)", P, o.window), Sandcat: sm, Ratios: map[string]float64{}}
	if o.baselines {
		c, addr, err := startRelay(ctx, b.runDir)
		if err != nil {
			return err
		}
		rspecs := make([]ConnSpec, 2*P)
		for i := range P {
			rspecs[i] = ConnSpec{URL: "ws://" + addr + "/relay/s" + strconv.Itoa(i), ID: "s" + strconv.Itoa(i)}
			rspecs[P+i] = ConnSpec{URL: "ws://" + addr + "/relay/r" + strconv.Itoa(i), ID: "r" + strconv.Itoa(i)}
		}
		rf, rm, err := b.pairsRun(ctx, "relay", kindRelay, rspecs, []int{c.Pid()}, false)
		c.Stop(5 * time.Second)
		if err != nil {
			return err
		}
		fixed.Baseline, maxs.Baseline = rf, rm
		for _, s := range []*Step{fixed, maxs} {
			s.Ratios["delivered_per_sec"] = ratio(s.Sandcat.DeliveredPS, s.Baseline.DeliveredPS)
			s.Ratios["p50"] = ratio(s.Sandcat.Latency.P50, s.Baseline.Latency.P50)
			s.Ratios["p99"] = ratio(s.Sandcat.Latency.P99, s.Baseline.Latency.P99)
			s.Ratios["server_cpu"] = ratio(s.Sandcat.Server.CPUCores, s.Baseline.Server.CPUCores)
		}
	} else {
		fixed.Baseline = unavailable("relay", "-baselines=false")
		maxs.Baseline = fixed.Baseline
	}
	fixed.Targets = append(fixed.Targets, TargetCheck{What: "(b) p99 at 5,000 msg/s offered", Goal: "≤ 50 ms",
		Value: sf.Latency.P99, Met: sf.Latency.N > 0 && sf.Latency.P99 <= 50 && sf.Lost == 0})
	maxs.Targets = append(maxs.Targets, TargetCheck{What: "(b) delivered msg/s, durable before the ACK", Goal: "≥ 20,000",
		Value: sm.DeliveredPS, Met: sm.DeliveredPS >= 20000})
	if err := b.finish(fixed); err != nil {
		return err
	}
	return b.finish(maxs)
}

// ---------------------------------------------------------------------------
// (c) group fan-out

// fanRun connects one sender and n-1 receivers (members or subscribers) and
// runs the fixed and the maximum rate; the last receiver on the sender's
// worker is the probe whose receipts free the sender's window.
func (b *bench) fanRun(ctx context.Context, target, kind, channel, to string, sender ConnSpec, recv []ConnSpec, pids []int, group bool, size int) (fixed, maxr *Result, err error) {
	p, err := newPool(b.o.inproc, len(recv)+1, 1, b.logw)
	if err != nil {
		return nil, nil, err
	}
	defer p.Stop()
	b.bar.step(fmt.Sprintf("c %s %d: connecting", target, size), 0, len(recv)+1)
	cr, err := p.connect(ctx, kind, "", []ConnSpec{sender}, b.srcIPs(), func(int) int { return 0 })
	if err != nil {
		return nil, nil, err
	}
	if cr.Failed > 0 {
		return nil, nil, fmt.Errorf("%s: sender: %s", target, cr.FirstErr)
	}
	cr, err = p.connect(ctx, kind, channel, recv, b.srcIPs(), nil)
	if err != nil {
		return nil, nil, err
	}
	if cr.Failed > 0 {
		return nil, nil, fmt.Errorf("%s: %d of %d connections failed: %s", target, cr.Failed, len(recv), cr.FirstErr)
	}
	probe := -1
	for i := len(p.where) - 1; i > 0; i-- {
		if p.where[i].w == 0 {
			probe = p.where[i].idx
			break
		}
	}
	flows := func() [][]FlowSpec {
		fs := make([][]FlowSpec, len(p.workers))
		fs[0] = []FlowSpec{{Flow: b.nextFlow(), Conn: p.where[0].idx, To: to, Group: group, Probe: probe}}
		return fs
	}
	fan := int64(len(recv))
	o := b.o
	label := fmt.Sprintf("c %d %s", size, target)
	// One second of messages in flight at most (see pairsRun).
	fixed, err = b.measure(ctx, label+" rate", target, p, flows(), b.rateReq(o.groupRate, max(2, int(o.groupRate))), pids, fan, nil)
	if err != nil {
		return nil, nil, err
	}
	maxr, err = b.measure(ctx, label+" max", target, p, flows(), b.rateReq(0, o.fanWindow), pids, fan, nil)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range []*Result{fixed, maxr} {
		r.Conns = len(recv) + 1
		r.Params["members"] = size
	}
	_ = p.closeConns(ctx)
	return fixed, maxr, nil
}

func (b *bench) scenarioC(ctx context.Context) error {
	o := b.o
	var bin string
	var binErr error
	if o.baselines {
		bin, binErr = findCentrifugo(o.centrifugo)
	}
	for _, n := range o.groups {
		gid := b.fx.Groups[strconv.Itoa(n)]
		if gid == "" {
			return fmt.Errorf("no group of %d", n)
		}
		specs, err := b.userSpecs(b.fx.Users[:n])
		if err != nil {
			return err
		}
		sf, sm, err := b.fanRun(ctx, "sandcat", kindSandcat, "", gid, specs[0], specs[1:], b.serverPIDs, true, n)
		if err != nil {
			return err
		}
		rate := &Step{ID: fmt.Sprintf("c-%d-rate", n), Title: fmt.Sprintf("(c) group of %d, all online, %.0f msg/s", n, o.groupRate),
			Sandcat: sf, Ratios: map[string]float64{}}
		maxs := &Step{ID: fmt.Sprintf("c-%d-max", n), Title: fmt.Sprintf("(c) group of %d, all online, maximum (%d in flight)", n, o.fanWindow),
			Sandcat: sm, Ratios: map[string]float64{}}
		switch {
		case !o.baselines:
			rate.Baseline = unavailable("centrifugo", "-baselines=false")
			maxs.Baseline = rate.Baseline
		case binErr != nil:
			rate.Baseline = unavailable("centrifugo", binErr.Error())
			maxs.Baseline = rate.Baseline
		default:
			c, addr, err := startCentrifugo(ctx, bin, b.runDir)
			if err != nil {
				return err
			}
			u := "ws://" + addr + "/connection/websocket"
			cspecs := make([]ConnSpec, n)
			for i := range cspecs {
				cspecs[i] = ConnSpec{URL: u, ID: "m" + strconv.Itoa(i)}
			}
			ch := "bench" + strconv.Itoa(n)
			cf, cm, err := b.fanRun(ctx, "centrifugo", kindCentrifugo, ch, ch, cspecs[0], cspecs[1:], []int{c.Pid()}, false, n)
			c.Stop(5 * time.Second)
			if err != nil {
				return err
			}
			rate.Baseline, maxs.Baseline = cf, cm
			for _, s := range []*Step{rate, maxs} {
				s.Ratios["deliveries_per_sec"] = ratio(s.Sandcat.DeliveredPS, s.Baseline.DeliveredPS)
				s.Ratios["p50"] = ratio(s.Sandcat.Latency.P50, s.Baseline.Latency.P50)
				s.Ratios["p99"] = ratio(s.Sandcat.Latency.P99, s.Baseline.Latency.P99)
			}
		}
		if n >= 10000 {
			rate.Targets = append(rate.Targets, TargetCheck{What: fmt.Sprintf("(c) p99 to all %d members at %.0f msg/s", n, o.groupRate),
				Goal: "≤ 150 ms", Value: sf.Latency.P99, Met: sf.Latency.N > 0 && sf.Latency.P99 <= 150 && sf.Lost == 0})
		}
		if maxs.Baseline.Available {
			maxs.Targets = append(maxs.Targets, TargetCheck{What: "(c) sustained deliveries/s vs Centrifugo", Goal: "≥ 1.0×",
				Value: maxs.Ratios["deliveries_per_sec"], Met: maxs.Ratios["deliveries_per_sec"] >= 1})
		}
		if err := b.finish(rate); err != nil {
			return err
		}
		if err := b.finish(maxs); err != nil {
			return err
		}
	}
	return nil
}

// ---------------------------------------------------------------------------
// (d) offline catch-up

func (b *bench) scenarioD(ctx context.Context) error {
	o := b.o
	sender, recv := b.fx.Users[0], b.fx.Users[1]
	rh := b.h.WithToken(recv.Token)
	seq0, err := rh.Seq(ctx, recv.ID)
	if err != nil {
		return err
	}
	specs, err := b.userSpecs([]benchUser{sender})
	if err != nil {
		return err
	}
	p, err := newPool(b.o.inproc, 1, 1, b.logw)
	if err != nil {
		return err
	}
	defer p.Stop()
	if cr, err := p.connect(ctx, kindSandcat, "", specs, b.srcIPs(), nil); err != nil || cr.Failed > 0 {
		return fmt.Errorf("(d) sender: %v %s", err, cr.FirstErr)
	}
	n := int64(o.catchup)
	req := RunReq{Flows: nil, WarmupMs: 0, DurationMs: 10 * 60 * 1000, DrainMs: 30000, QuietMs: 200, Window: 256,
		Size: o.size, MaxMsgs: n, StartNs: time.Now().Add(100 * time.Millisecond).UnixNano()}
	flows := [][]FlowSpec{{{Flow: b.nextFlow(), Conn: p.where[0].idx, To: recv.ID, Probe: -1}}}
	b.bar.begin("d flood", 0)
	t0 := time.Now()
	rr, err := p.run(ctx, flows, req, b.bar.update)
	if err != nil {
		return err
	}
	flood := time.Since(t0)
	if err := waitRecvSeq(ctx, b.h, recv, seq0.Seq+n, 10*time.Minute); err != nil {
		return err
	}
	stored := time.Since(t0)
	_ = p.closeConns(ctx)
	b.bar.done()

	// The client pulls as the native one catches up: ranges of its recv seqs,
	// one page after another (the server caps one answer at
	// storage.InboxPullLimit messages), until it has the newest seq.
	target := seq0.Seq + n
	var (
		pages   []client.PullRequest
		pulled  int64
		pullErr error
	)
	t1 := time.Now()
	for cur := seq0.Seq; cur < target && len(pages) < 10000; {
		pr := client.PullRequest{UserID: recv.ID, SendStart: seq0.SendSeq, SendEnd: seq0.SendSeq, Start: cur, End: target}
		msgs, err := rh.Pull(ctx, pr)
		if err != nil {
			pullErr = err
			break
		}
		pages = append(pages, pr)
		last := cur
		for i := range msgs {
			last = max(last, msgs[i].Seq)
		}
		pulled += int64(len(msgs))
		if len(msgs) == 0 || last == cur {
			break
		}
		cur = last
	}
	pullSec := time.Since(t1).Seconds()
	if pullErr != nil {
		return pullErr
	}
	// The same pages again, timed to the last byte without decoding.
	var rawSec float64
	var rawBytes int64
	for _, pr := range pages {
		s, n, err := rawPull(ctx, b.h.Base, recv.Token, pr)
		if err != nil {
			return err
		}
		rawSec += s
		rawBytes += n
	}
	r := &Result{Target: "sandcat", Available: true, Sent: rr.Sent, Acks: rr.Acks, Recv: pulled,
		Expected: n, Lost: max(0, n-pulled), Errors: rr.AckErrors + rr.SendErrors, FirstError: rr.FirstErr,
		ServerPIDs: b.serverPIDs,
		Extra: map[string]float64{"pulled": float64(pulled), "pull_sec": pullSec, "pull_raw_sec": rawSec,
			"pull_bytes": float64(rawBytes), "pages": float64(len(pages)), "flood_sec": flood.Seconds(), "flood_per_sec": float64(rr.Acks) / flood.Seconds(),
			"stored_sec": stored.Seconds()},
		Params: map[string]any{"messages": n, "size": o.size, "window": 256}}
	step := &Step{ID: "d-catchup", Title: fmt.Sprintf("(d) offline catch-up: %d messages pulled over HTTP", n), Sandcat: r,
		Ratios: map[string]float64{"pull_sec_vs_2s_target": ratio(pullSec, 2)}}
	step.Targets = append(step.Targets, TargetCheck{What: fmt.Sprintf("(d) %d messages pulled", n), Goal: "≤ 2 s",
		Value: pullSec, Met: pullSec <= 2 && pulled == n})
	return b.finish(step)
}

// rawPull times POST /message to the last byte, without decoding.
func rawPull(ctx context.Context, base, token string, pr client.PullRequest) (float64, int64, error) {
	body, _ := json.Marshal(pr)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/message", strings.NewReader(string(body)))
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	t := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil {
		return 0, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, 0, fmt.Errorf("POST /message: %s", resp.Status)
	}
	return time.Since(t).Seconds(), n, nil
}
