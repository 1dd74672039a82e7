package main

// (e) Matrix bridge: text messages both ways through Synapse, next to
// Synapse alone measured in the same run.
//
// The tool starts a Synapse (im/testsvc: Debian's matrix-synapse in the
// chroot of `make synapse`, SQLite, rate limits off; root needed) with the
// appservice registration it writes, then a Sandcat with that appservice
// section, in its own process like the other scenarios, on a data
// directory of its own (it registers its native users there over HTTP; -api
// does not apply to this scenario). Every sender makes one send request at
// a time and has at most a window of messages in flight, freed when the
// receiver sees them; the latency of a message is from just before its send
// request until the receiver sees it:
//
//   - baseline: P registered Matrix users (mautrix-go) each send m.text into
//     a room of their own; one Matrix user in all the rooms, syncing, sees
//     them (send request → event in its /sync).
//   - Sandcat → Matrix: P native users (WebSocket) each send group messages
//     into a group of their own, bridged to a portal; the same syncing
//     Matrix user, in every portal, sees them (send frame → /sync).
//   - Matrix → Sandcat: P Matrix users, members of the portals (and so of
//     the groups), send into them; the groups' native owners see the
//     WebSocket frames (send request → frame).
//
// Steps: one sender with one message in flight (latency; the target is the
// p50 added to Synapse's), then each -bridge-par at -bridge-window (rate;
// the target is ≥ 0.9 of Synapse's with the same parallelism).

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/appservice"
	"github.com/sandcat-im/sandcat/im/client"
	"github.com/sandcat-im/sandcat/im/testsvc"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/matrix"
)

// eMode is one shape of measurement: senders in parallel and their window.
type eMode struct {
	par, window int
	latency     bool // the one-at-a-time step
}

func (m eMode) id() string {
	if m.latency {
		return "lat"
	}
	return strconv.Itoa(m.par)
}

func eModes(o *options) []eMode {
	out := []eMode{{par: 1, window: 1, latency: true}}
	for _, p := range o.bridgePar {
		out = append(out, eMode{par: p, window: o.bridgeWin})
	}
	return out
}

// mxUser is a registered Matrix user.
type mxUser struct {
	cli *mautrix.Client
}

// eEnv is scenario (e)'s Synapse, Matrix users, rooms, and the Sandcat
// with the bridge when it runs.
type eEnv struct {
	b          *bench
	syn        *testsvc.Synapse
	hc         *http.Client
	recv       *mxUser   // in every room, syncing
	senders    []*mxUser // one per room
	rooms      []id.RoomID
	mxSink     eSink // what recv's /sync sees
	wsSink     eSink // what the native owners' WebSockets see
	stopMatrix func()

	listen  string // the bridge's appservice listener
	section string // the appservice config section
	dataDir string
	secret  string
	sink    *smtpSink   // verification codes of the Sandcat under test
	users   []benchUser // the groups' native owners
	groups  []string
	portals []id.RoomID
	sc      *sandcatServer
	ws      []*eWS
}

func (b *bench) scenarioE(ctx context.Context) error {
	o := b.o
	modes := eModes(o)
	maxPar := 0
	for _, m := range modes {
		maxPar = max(maxPar, m.par)
	}
	unavail := func(why string) error {
		for _, dir := range []string{"s2m", "m2s"} {
			for _, m := range modes {
				s := &Step{ID: "e-" + dir + "-" + m.id(), Title: eTitle(dir, m), Sandcat: unavailable("sandcat", why),
					Baseline: unavailable("synapse", why)}
				if err := b.finish(s); err != nil {
					return err
				}
			}
		}
		return nil
	}
	e := &eEnv{b: b, hc: &http.Client{Timeout: time.Minute, Transport: &http.Transport{
		MaxIdleConns: 256, MaxIdleConnsPerHost: 256, IdleConnTimeout: time.Minute}}}
	b.bar.step("e: starting Synapse", 0, 0)
	if err := e.startMatrix(ctx, maxPar); err != nil {
		b.bar.done()
		if e.syn == nil {
			b.log.Warn("scenario e: no Synapse", "err", err)
			return unavail("Synapse did not start: " + err.Error())
		}
		e.close()
		return err
	}
	defer e.close()
	synPid := e.syn.Pid()

	// Synapse alone is measured right before the bridge in each mode, with
	// the Sandcat up and idle: the machine is shared, and its load drifts.
	synapseAlone := func(m eMode, label string) (*Result, error) {
		if !o.baselines {
			return unavailable("synapse", "-baselines=false"), nil
		}
		return e.measure(ctx, "e synapse "+label+m.id(), "synapse", e.matrixFlows(m.par, e.rooms), m.window,
			[]int{synPid}, &e.mxSink, synPid, 0)
	}

	before, baseBefore := map[eMode]*Result{}, map[eMode]*Result{}
	if o.bridgeOld != "" {
		if err := e.startBridge(ctx, o.bridgeOld, "before", maxPar); err != nil {
			return fmt.Errorf("(e) the -bridge-compare build: %w", err)
		}
		for _, m := range modes {
			r, err := synapseAlone(m, "(before) ")
			if err != nil {
				return err
			}
			r.Target = "synapse-before"
			baseBefore[m] = r
			if r, err = e.measure(ctx, "e before s2m "+m.id(), "sandcat-before", e.wsFlows(m.par), m.window,
				[]int{e.sc.Pid(), synPid}, &e.mxSink, synPid, e.sc.Pid()); err != nil {
				return err
			}
			r.Note = "the Sandcat of " + o.bridgeOld
			before[m] = r
		}
		e.stopBridge()
	}

	if err := e.startBridge(ctx, "", "bridge", maxPar); err != nil {
		return err
	}
	pids := []int{e.sc.Pid(), synPid}
	base, s2m, m2s := map[eMode]*Result{}, map[eMode]*Result{}, map[eMode]*Result{}
	for _, m := range modes {
		r, err := synapseAlone(m, "")
		if err != nil {
			return err
		}
		base[m] = r
		if s2m[m], err = e.measure(ctx, "e s2m "+m.id(), "sandcat", e.wsFlows(m.par), m.window, pids, &e.mxSink, synPid, e.sc.Pid()); err != nil {
			return err
		}
		if m2s[m], err = e.measure(ctx, "e m2s "+m.id(), "sandcat", e.matrixFlows(m.par, e.portals), m.window, pids, &e.wsSink, synPid, e.sc.Pid()); err != nil {
			return err
		}
	}
	e.stopBridge()

	for _, dir := range []string{"s2m", "m2s"} {
		for _, m := range modes {
			s := &Step{ID: "e-" + dir + "-" + m.id(), Title: eTitle(dir, m), Baseline: base[m]}
			if dir == "s2m" {
				s.Sandcat = s2m[m]
				if !m.latency && s.Sandcat.Available {
					s.Sandcat.Note = "at maximum a native sender's ACK comes before the message reaches Synapse, so its whole window waits at the bridge " +
						"(a Matrix client's send request holds the next one back): latency ≈ window × senders / rate here; compare latencies on the one-at-a-time step"
				}
				if r := before[m]; r != nil {
					s.Extra = append(s.Extra, r, baseBefore[m])
				}
			} else {
				s.Sandcat = m2s[m]
			}
			s.Ratios = bridgeRatios(s.Sandcat, s.Baseline)
			if r := before[m]; dir == "s2m" && r != nil {
				s.Ratios["delivered_per_sec_vs_before"] = ratio(s.Sandcat.DeliveredPS, r.DeliveredPS)
				s.Ratios["p50_vs_before"] = ratio(s.Sandcat.Latency.P50, r.Latency.P50)
				// The build before against the Synapse measured next to it.
				for k, v := range bridgeRatios(r, baseBefore[m]) {
					s.Ratios["before_"+k] = v
				}
			}
			s.Targets = bridgeTargets(eDirName(dir), !m.latency, s.Sandcat, s.Ratios)
			if err := b.finish(s); err != nil {
				return err
			}
		}
	}
	return nil
}

func eDirName(dir string) string {
	if dir == "s2m" {
		return "Sandcat→Matrix"
	}
	return "Matrix→Sandcat"
}

func eTitle(dir string, m eMode) string {
	if m.latency {
		return fmt.Sprintf("(e) bridge %s, one sender, one message at a time", eDirName(dir))
	}
	senders := fmt.Sprintf("%d senders (one room each)", m.par)
	if m.par == 1 {
		senders = "one sender"
	}
	return fmt.Sprintf("(e) bridge %s, %s, maximum (%d in flight each)", eDirName(dir), senders, m.window)
}

// measure runs flows with the given window; sink is the receiver measured.
func (e *eEnv) measure(ctx context.Context, label, target string, flows []eFlow, window int, pids []int, sink *eSink, synPid, scPid int) (*Result, error) {
	b, o := e.b, e.b.o
	waited := waitIdle(ctx, pids, 60*time.Second)
	ids := make([]uint32, len(flows))
	for i := range flows {
		ids[i] = flows[i].id
	}
	start := time.Now().Add(200 * time.Millisecond)
	m := newEMeter(ids, window, start, o.warmup, o.duration)
	sink.p.Store(m)
	defer sink.p.Store(nil)
	usageCh := make(chan map[int]ProcUsage, 1)
	go func() {
		time.Sleep(time.Until(time.Unix(0, m.winStart)))
		w := watchProcs(append([]int{os.Getpid()}, pids...), 500*time.Millisecond)
		time.Sleep(time.Until(time.Unix(0, m.winEnd)))
		usageCh <- w.Stop()
	}()
	b.bar.begin(label, o.warmup+o.duration)
	stopBar := make(chan struct{})
	go func() {
		tk := time.NewTicker(500 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stopBar:
				return
			case <-tk.C:
				b.bar.update(m.progress())
			}
		}
	}()
	runEFlows(ctx, m, flows, o.size, 30*time.Second)
	close(stopBar)
	usage := <-usageCh
	b.bar.done()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	r := m.result(target)
	r.ServerPIDs = pids
	r.Server = sumUsage(usage, pids)
	r.Clients = usage[os.Getpid()] // this process: the Matrix clients and the WebSockets
	r.Extra["synapse_cpu"] = usage[synPid].CPUCores
	if scPid > 0 {
		r.Extra["sandcat_cpu"] = usage[scPid].CPUCores
	}
	r.Extra["waited_idle_sec"] = waited.Seconds()
	r.Conns = len(flows)
	r.Params = map[string]any{"senders": len(flows), "window": window, "size": o.size,
		"warmup_sec": o.warmup.Seconds(), "duration_sec": o.duration.Seconds()}
	return r, nil
}

// newFlow returns a flow of the run with a fresh id.
func (e *eEnv) newFlow(send func(context.Context, []byte) error) eFlow {
	return eFlow{id: e.b.nextFlow(), send: send}
}

// matrixFlows: sender i sends m.text into rooms[i].
func (e *eEnv) matrixFlows(n int, rooms []id.RoomID) []eFlow {
	out := make([]eFlow, n)
	for i := range n {
		cli, room := e.senders[i].cli, rooms[i]
		out[i] = e.newFlow(func(ctx context.Context, body []byte) error {
			_, err := cli.SendMessageEvent(ctx, room, event.EventMessage,
				&event.MessageEventContent{MsgType: event.MsgText, Body: string(body)})
			return err
		})
	}
	return out
}

// wsFlows: native owner i sends group messages into groups[i].
func (e *eEnv) wsFlows(n int) []eFlow {
	out := make([]eFlow, n)
	for i := range n {
		out[i] = e.newFlow(e.ws[i].send)
	}
	return out
}

// startMatrix starts Synapse with the bridge's registration, registers the
// Matrix users and makes the baseline rooms.
func (e *eEnv) startMatrix(ctx context.Context, n int) error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	e.listen = l.Addr().String()
	_ = l.Close()
	opts := appservice.RegistrationOptions{ID: "sandcat", URL: "http://" + e.listen, ServerName: "localhost",
		SenderLocalpart: "sandcatbot", UserPrefix: "_sandcat_", AliasPrefix: "_sandcat_"}
	reg, err := appservice.NewRegistration(opts)
	if err != nil {
		return err
	}
	regYAML, err := appservice.MarshalRegistration(reg)
	if err != nil {
		return err
	}
	dir := filepath.Join(e.b.runDir, "e")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	regPath := filepath.Join(dir, "registration.yaml")
	if err := os.WriteFile(regPath, regYAML, 0o600); err != nil {
		return err
	}
	syn, stop, err := testsvc.StartSynapse(ctx, testsvc.SynapseOptions{AppserviceRegistration: regPath},
		func(f string, a ...any) { e.b.log.Warn(fmt.Sprintf(f, a...)) })
	if err != nil {
		return err
	}
	e.syn, e.stopMatrix = syn, stop
	section, err := appservice.MarshalConfigSection(appservice.NewConfigSection(reg, opts, syn.URL))
	if err != nil {
		return err
	}
	e.section = string(section)

	register := func(local string) (*mxUser, error) {
		uid, tok, err := syn.Register(ctx, local, "pw-"+randHex(8))
		if err != nil {
			return nil, fmt.Errorf("register %s on Synapse: %w", local, err)
		}
		cli, err := mautrix.NewClient(syn.URL, id.UserID(uid), tok)
		if err != nil {
			return nil, err
		}
		cli.Client = e.hc
		return &mxUser{cli: cli}, nil
	}
	if e.recv, err = register("bench_recv"); err != nil {
		return err
	}
	for i := range n {
		u, err := register(fmt.Sprintf("bench_s%d", i))
		if err != nil {
			return err
		}
		e.senders = append(e.senders, u)
		r, err := u.cli.CreateRoom(ctx, &mautrix.ReqCreateRoom{Preset: "private_chat", Name: fmt.Sprintf("baseline %d", i),
			Invite: []id.UserID{e.recv.cli.UserID}})
		if err != nil {
			return fmt.Errorf("baseline room: %w", err)
		}
		if _, err := e.recv.cli.JoinRoomByID(ctx, r.RoomID); err != nil {
			return fmt.Errorf("join the baseline room: %w", err)
		}
		e.rooms = append(e.rooms, r.RoomID)
	}

	// The receiver syncs from now on; the meters tell this run's messages
	// from any other.
	syncer := e.recv.cli.Syncer.(*mautrix.DefaultSyncer)
	syncer.OnEventType(event.EventMessage, func(_ context.Context, evt *event.Event) {
		if evt.Sender == e.recv.cli.UserID {
			return
		}
		if c, ok := evt.Content.Parsed.(*event.MessageEventContent); ok {
			e.mxSink.see([]byte(c.Body))
		} else if s, ok := evt.Content.Raw["body"].(string); ok {
			e.mxSink.see([]byte(s))
		}
	})
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for sctx.Err() == nil {
			if err := e.recv.cli.SyncWithContext(sctx); err != nil && sctx.Err() == nil {
				e.b.log.Warn("scenario e: the receiver's sync failed; again", "err", err)
				time.Sleep(time.Second)
			}
		}
	}()
	stopSyn := e.stopMatrix
	e.stopMatrix = func() {
		cancel()
		<-done
		stopSyn()
	}
	return nil
}

// startBridge starts a Sandcat with the bridge (exe "" = this build) on the
// scenario's own data directory (the first time empty: the tool registers
// the native users over HTTP, makes their groups and bridges them; later
// Sandcats reuse all of it) and connects the groups' owners.
func (e *eEnv) startBridge(ctx context.Context, exe, name string, n int) error {
	b := e.b
	if e.dataDir == "" {
		e.dataDir = filepath.Join(b.runDir, "e", "data")
		if err := os.MkdirAll(e.dataDir, 0o755); err != nil {
			return err
		}
		e.secret = randHex(24)
		sink, err := startSMTPSink("")
		if err != nil {
			return err
		}
		e.sink = sink
	}
	b.bar.step("e: starting Sandcat with the bridge ("+name+")", 0, 0)
	sc, err := startSandcat(ctx, sandcatOpts{Dir: filepath.Join(b.runDir, "e", name), DataDir: e.dataDir, Secret: e.secret,
		SMTP: e.sink.Addr(), Extra: e.section, Exe: exe})
	if err != nil {
		return err
	}
	e.sc = sc
	h := &client.HTTP{Base: "http://" + sc.API}
	h.Timeout = time.Minute
	routes := &client.HTTP{Base: "http://" + e.listen}
	routes.Timeout = time.Minute
	if e.users == nil {
		fx := &fixture{Tag: randHex(4), Groups: map[string]string{}}
		if err := ensureUsers(ctx, h, e.sink, fx, n, b.o.registerPar, b.bar.step); err != nil {
			return fmt.Errorf("(e) register the native users: %w", err)
		}
		e.users = fx.Users
	}
	if e.groups == nil {
		for i := range n {
			u := e.users[i]
			inv, err := h.WithToken(u.Token).CreateGroup(ctx, u.ID, fmt.Sprintf("bench-e-%d", i), "", nil)
			if err != nil {
				return fmt.Errorf("(e) create group %d: %w", i, err)
			}
			gid := inv.Info.ID
			var room id.RoomID
			for _, mx := range []*mxUser{e.recv, e.senders[i]} {
				var p matrix.PortalResponse
				if err := routes.WithToken(u.Token).Call(ctx, http.MethodPost, "/matrix/group/"+gid+"/invite",
					matrix.InviteRequest{MXID: mx.cli.UserID.String()}, &p); err != nil {
					return fmt.Errorf("(e) bridge group %d: %w", i, err)
				}
				room = id.RoomID(p.RoomID)
				if _, err := mx.cli.JoinRoomByID(ctx, room); err != nil {
					return fmt.Errorf("(e) %s joins portal %s: %w", mx.cli.UserID, room, err)
				}
			}
			e.groups = append(e.groups, gid)
			e.portals = append(e.portals, room)
			b.bar.step("e: bridged groups", i+1, n)
		}
	}
	for i := range n {
		w, err := dialEWS(ctx, "ws://"+sc.WS+"/ws", e.users[i], e.groups[i], &e.wsSink)
		if err != nil {
			return err
		}
		e.ws = append(e.ws, w)
	}
	// Warm up both ways in every group (puppets registered and joined,
	// Matrix users made members), one message at a time.
	b.bar.done()
	for _, flows := range []struct {
		f    []eFlow
		sink *eSink
	}{{e.wsFlows(n), &e.mxSink}, {e.matrixFlows(n, e.portals), &e.wsSink}} {
		start := time.Now().Add(100 * time.Millisecond)
		ids := make([]uint32, len(flows.f))
		for i := range flows.f {
			ids[i] = flows.f[i].id
		}
		m := newEMeter(ids, 1, start, 0, max(b.o.warmup, time.Second))
		flows.sink.p.Store(m)
		runEFlows(ctx, m, flows.f, b.o.size, 60*time.Second)
		flows.sink.p.Store(nil)
		if r := m.result("warm-up"); r.Recv == 0 || r.Lost > 0 {
			return fmt.Errorf("(e) warm-up through the bridge (%s): sent %d, received %d, errors %d %s",
				name, r.Sent, r.Recv, r.Errors, r.FirstError)
		}
	}
	return nil
}

// stopBridge closes the connections and stops the Sandcat, keeping its
// data for the next one.
func (e *eEnv) stopBridge() {
	for _, w := range e.ws {
		_ = w.conn.Close()
	}
	e.ws = nil
	if e.sc != nil {
		e.sc.Stop(30 * time.Second)
		e.sc = nil
	}
}

func (e *eEnv) close() {
	e.stopBridge()
	if e.stopMatrix != nil {
		e.stopMatrix()
		e.stopMatrix = nil
	}
	if e.sink != nil {
		e.sink.Close()
		e.sink = nil
	}
	// Keep the Sandcat logs with the others (runAll moves runDir/*.log).
	dir := filepath.Join(e.b.runDir, "e")
	ents, _ := os.ReadDir(dir)
	for _, d := range ents {
		if !d.IsDir() {
			continue
		}
		logs, _ := filepath.Glob(filepath.Join(dir, d.Name(), "*.log"))
		for _, l := range logs {
			_ = os.Rename(l, filepath.Join(e.b.runDir, "e-"+d.Name()+"-"+filepath.Base(l)))
		}
	}
}

// eWS is a native group owner on WebSocket: it sends into its group and
// hands the group messages it receives to a sink.
type eWS struct {
	u    benchUser
	gid  string
	conn *client.Conn
	acks chan wire.Msg
	seq  atomic.Uint64
}

func dialEWS(ctx context.Context, wsBase string, u benchUser, gid string, sink *eSink) (*eWS, error) {
	w := &eWS{u: u, gid: gid, acks: make(chan wire.Msg, 16)}
	d := &client.Dialer{OnMessage: func(m *wire.Msg) {
		switch m.MsgType {
		case wire.MsgTypeMsgRecResp:
			select {
			case w.acks <- *m:
			default:
			}
		case wire.MsgTypeGroupMsg:
			if m.SendID != u.ID {
				sink.see(m.Content)
			}
		}
	}}
	c, err := d.Dial(ctx, wsBase, u.ID, wire.PlatformDesktop, u.Token)
	if err != nil {
		return nil, fmt.Errorf("(e) connect %s: %w", u.ID, err)
	}
	w.conn = c
	return w, nil
}

var errNoAck = errors.New("no ACK within 30 s")

// send sends one group message and waits for its ACK.
func (w *eWS) send(ctx context.Context, body []byte) error {
	lid := "e" + strconv.FormatUint(w.seq.Add(1), 36)
	m := wire.Msg{SendID: w.u.ID, ReceiverID: w.gid, GroupID: w.gid, MsgType: wire.MsgTypeGroupMsg,
		ContentType: wire.ContentText, LocalID: lid, CreateTime: time.Now().UnixMilli(), Content: bytes.Clone(body)}
	if err := w.conn.Send(&m); err != nil {
		return err
	}
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	for {
		select {
		case a := <-w.acks:
			if a.LocalID != lid {
				continue
			}
			if a.ContentType == wire.ContentError {
				return fmt.Errorf("group message refused: %s", strings.TrimSpace(string(a.Content)))
			}
			return nil
		case <-t.C:
			return errNoAck
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
