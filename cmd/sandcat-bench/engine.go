package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sandcat-im/sandcat/im/wire"
)

// ConnSpec is one connection a worker opens.
type ConnSpec struct {
	URL string `json:"url"`
	ID  string `json:"id"` // the user id (Sandcat), the relay id, the Centrifugo client name
}

// ConnectReq opens connections in a worker.
type ConnectReq struct {
	Kind     string     `json:"kind"`
	Conns    []ConnSpec `json:"conns"`
	SrcIPs   []string   `json:"src_ips"`
	Channel  string     `json:"channel"`  // Centrifugo: the channel every connection subscribes to ("" none)
	Parallel int        `json:"parallel"` // dials in flight (default 64)
}

// ConnectResp reports a ConnectReq.
type ConnectResp struct {
	Connected int    `json:"connected"`
	Failed    int    `json:"failed"`
	FirstErr  string `json:"first_err"`
	TookMs    int64  `json:"took_ms"`
}

// FlowSpec is one sender in a run.
type FlowSpec struct {
	Flow  uint32 `json:"flow"`  // unique in the whole suite
	Conn  int    `json:"conn"`  // index of the sending connection in this worker
	To    string `json:"to"`    // receiver id, group id or Centrifugo channel
	Group bool   `json:"group"` // Sandcat: a group message
	// Probe is the index (in this worker) of the connection whose receipt
	// of this flow's messages frees a window slot; -1: the ACK frees it.
	Probe int `json:"probe"`
}

// RunReq runs flows. Every worker of a run gets the same times.
type RunReq struct {
	Flows      []FlowSpec `json:"flows"`
	StartNs    int64      `json:"start_ns"`
	WarmupMs   int64      `json:"warmup_ms"`
	DurationMs int64      `json:"duration_ms"`
	DrainMs    int64      `json:"drain_ms"` // longest wait for late receipts after the sending ends
	QuietMs    int64      `json:"quiet_ms"` // the drain ends after this long without a receipt (default 1000)
	Rate       float64    `json:"rate"`     // per flow, messages/s; 0: as fast as the window allows
	Window     int        `json:"window"`   // messages in flight per flow
	Size       int        `json:"size"`     // content bytes
	MaxMsgs    int64      `json:"max_msgs"` // per flow (0: no limit)
}

// RunResult is what one worker measured.
type RunResult struct {
	Sent       int64   `json:"sent"`        // messages sent
	SentWindow int64   `json:"sent_window"` // of which stamped inside the measured window
	Acks       int64   `json:"acks"`
	AckErrors  int64   `json:"ack_errors"`
	Recv       int64   `json:"recv"`        // receipts of this run's messages
	RecvWindow int64   `json:"recv_window"` // receipts of messages stamped inside the window (latency recorded)
	RecvInWin  int64   `json:"recv_in_win"` // receipts that arrived inside the window (throughput)
	Other      int64   `json:"other"`       // other frames (notices, stale messages)
	SendErrors int64   `json:"send_errors"`
	Closed     int64   `json:"closed"` // connections that ended during the run
	FirstErr   string  `json:"first_err"`
	Hist       Hist    `json:"hist"`     // messages stamped inside the window
	HistAll    Hist    `json:"hist_all"` // every message of the run
	Timeline   []int64 `json:"timeline"` // receipts per second since StartNs
	Alive      int     `json:"alive"`    // connections open at the end
	LastRecvNs int64   `json:"last_recv_ns"`
	EndNs      int64   `json:"end_ns"`
}

// Progress is a worker's running count.
type Progress struct {
	Sent int64 `json:"sent"`
	Recv int64 `json:"recv"`
}

// engine holds the connections of one worker and runs flows over them.
type engine struct {
	kind    string
	channel string
	conns   []*bconn
	run     atomic.Pointer[runState]
	closed  atomic.Int64
	stray   atomic.Int64
	mu      sync.Mutex
}

type flowState struct {
	spec FlowSpec
	sem  chan struct{}
}

func (f *flowState) release() {
	select {
	case f.sem <- struct{}{}:
	default:
	}
}

type runState struct {
	req                                                                   RunReq
	winStart, winEnd, sendEnd                                             int64
	flows                                                                 map[uint32]*flowState
	ackFlows                                                              map[int]*flowState
	sent, sentWin, acks, ackErr, recv, recvWin, recvInWin, other, sendErr atomic.Int64
	lastRecv                                                              atomic.Int64
	timeline                                                              []atomic.Int64
	hists                                                                 [16]struct {
		sync.Mutex
		h, all histArr
	}
	errOnce  sync.Once
	firstErr atomic.Pointer[string]
}

func (rs *runState) noteErr(err error) {
	rs.errOnce.Do(func() { s := err.Error(); rs.firstErr.Store(&s) })
}

func newEngine() *engine { return &engine{} }

// Connect opens the connections of req (added to those already open).
func (e *engine) Connect(ctx context.Context, req ConnectReq) ConnectResp {
	start := time.Now()
	e.mu.Lock()
	e.kind, e.channel = req.Kind, req.Channel
	e.mu.Unlock()
	nd, err := newNetDialer(req.SrcIPs)
	if err != nil {
		return ConnectResp{Failed: len(req.Conns), FirstErr: err.Error()}
	}
	e.mu.Lock()
	base := len(e.conns)
	e.mu.Unlock()
	par := req.Parallel
	if par <= 0 {
		par = 64
	}
	conns := make([]*bconn, len(req.Conns))
	var (
		wg       sync.WaitGroup
		failed   atomic.Int64
		firstErr atomic.Pointer[string]
		next     atomic.Int64
	)
	for range min(par, len(req.Conns)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(req.Conns) || ctx.Err() != nil {
					return
				}
				c, err := e.open(ctx, nd, req.Kind, base+i, req.Conns[i], req.Channel)
				if err != nil {
					failed.Add(1)
					s := err.Error()
					firstErr.CompareAndSwap(nil, &s)
					continue
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	e.mu.Lock()
	e.conns = append(e.conns, conns...) // nil for a failed dial: indexes stay aligned with the request
	e.mu.Unlock()
	resp := ConnectResp{Connected: len(req.Conns) - int(failed.Load()), Failed: int(failed.Load()),
		TookMs: time.Since(start).Milliseconds()}
	if p := firstErr.Load(); p != nil {
		resp.FirstErr = *p
	}
	return resp
}

func (e *engine) open(ctx context.Context, nd *netDialer, kind string, idx int, spec ConnSpec, channel string) (*bconn, error) {
	ws, err := dialConn(ctx, nd, spec.URL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec.ID, err)
	}
	c := &bconn{idx: idx, id: spec.ID, kind: kind, ws: ws}
	if kind == kindCentrifugo {
		c.ready = make(chan struct{})
	}
	go e.readLoop(c, channel)
	if kind != kindCentrifugo {
		return c, nil
	}
	if _, err := c.centrifugoCommand(`"connect":{"name":"` + spec.ID + `"}`); err != nil {
		c.close()
		return nil, err
	}
	if channel != "" {
		if _, err := c.centrifugoCommand(`"subscribe":{"channel":"` + channel + `"}`); err != nil {
			c.close()
			return nil, err
		}
	}
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-c.ready:
		return c, nil
	case <-t.C:
	case <-ctx.Done():
	}
	c.close()
	if p := c.rerr.Load(); p != nil {
		return nil, errors.New(*p)
	}
	return nil, errNotReady
}

// readLoop reads a connection's frames until it ends.
func (e *engine) readLoop(c *bconn, channel string) {
	defer func() {
		c.dead.Store(true)
		if rs := e.run.Load(); rs != nil {
			rs.noteErr(fmt.Errorf("connection %d ended", c.idx))
		}
		e.closed.Add(1)
	}()
	var readyID uint64 = 1
	if channel != "" {
		readyID = 2
	}
	for {
		typ, r, err := c.ws.NextReader()
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) && !errors.Is(err, net.ErrClosed) {
				c.fail(err)
			}
			return
		}
		buf := readBufs.Get().(*bytes.Buffer)
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			readBufs.Put(buf)
			c.fail(err)
			return
		}
		now := time.Now().UnixNano()
		if typ == websocket.BinaryMessage {
			e.onFrame(c, buf.Bytes(), now)
		} else if typ == websocket.TextMessage && c.kind == kindCentrifugo {
			e.onCentrifugo(c, buf.Bytes(), now, readyID)
		}
		if buf.Cap() <= 64<<10 {
			readBufs.Put(buf)
		}
	}
}

// onFrame handles a Sandcat or relay frame.
func (e *engine) onFrame(c *bconn, b []byte, now int64) {
	fi, ok := peekFrame(b)
	rs := e.run.Load()
	if !ok {
		if rs != nil {
			rs.other.Add(1)
		}
		return
	}
	if fi.msgType == wire.MsgTypeMsgRecResp {
		if rs == nil {
			e.stray.Add(1)
			return
		}
		rs.acks.Add(1)
		if fi.contentType == wire.ContentError {
			rs.ackErr.Add(1)
			rs.noteErr(fmt.Errorf("error ACK: %s", fi.content))
		}
		if f := rs.ackFlows[c.idx]; f != nil {
			f.release()
		}
		return
	}
	e.onBench(rs, c, fi.content, now)
}

func (e *engine) onBench(rs *runState, c *bconn, content []byte, now int64) {
	ts, flow, ok := parseBenchContent(content)
	if rs == nil || !ok || ts < rs.req.StartNs {
		if rs != nil {
			rs.other.Add(1)
		} else {
			e.stray.Add(1)
		}
		return
	}
	rs.recv.Add(1)
	rs.lastRecv.Store(now)
	if now >= rs.winStart && now < rs.winEnd {
		rs.recvInWin.Add(1)
	}
	inWin := ts >= rs.winStart && ts < rs.winEnd
	if inWin {
		rs.recvWin.Add(1)
	}
	sh := &rs.hists[c.idx%len(rs.hists)]
	sh.Lock()
	if inWin {
		sh.h.record((now - ts) / 1000)
	}
	sh.all.record((now - ts) / 1000)
	sh.Unlock()
	if sec := (now - rs.req.StartNs) / 1e9; sec >= 0 && sec < int64(len(rs.timeline)) {
		rs.timeline[sec].Add(1)
	}
	if f := rs.flows[flow]; f != nil && f.spec.Probe == c.idx {
		f.release()
	}
}

// onCentrifugo handles a Centrifugo text frame: replies and pushes, one per
// line.
func (e *engine) onCentrifugo(c *bconn, b []byte, now int64, readyID uint64) {
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		if string(line) == "{}" { // server ping: answer pong
			c.wmu.Lock()
			_ = c.ws.SetWriteDeadline(time.Now().Add(30 * time.Second))
			_ = c.ws.WriteMessage(websocket.TextMessage, []byte("{}"))
			c.wmu.Unlock()
			continue
		}
		rs := e.run.Load()
		if bytes.HasPrefix(line, []byte(`{"push"`)) {
			if i := bytes.Index(line, []byte(`"m":"`)); i >= 0 {
				content := line[i+5:]
				if j := bytes.IndexByte(content, '"'); j >= 0 {
					content = content[:j]
				}
				e.onBench(rs, c, content, now)
				continue
			}
			if rs != nil {
				rs.other.Add(1)
			}
			continue
		}
		id := jsonID(line)
		isErr := bytes.Contains(line, []byte(`"error":`))
		if id != 0 && id <= readyID {
			if isErr {
				c.fail(fmt.Errorf("centrifugo: %s", line))
				c.close()
				continue
			}
			if id == readyID {
				close(c.ready)
			}
			continue
		}
		if rs == nil {
			e.stray.Add(1)
			continue
		}
		rs.acks.Add(1)
		if isErr {
			rs.ackErr.Add(1)
			rs.noteErr(fmt.Errorf("centrifugo: %s", line))
		}
		if f := rs.ackFlows[c.idx]; f != nil {
			f.release()
		}
	}
}

// jsonID reads the leading "id" of a Centrifugo reply ({"id":N,...}).
func jsonID(line []byte) uint64 {
	const p = `{"id":`
	if !bytes.HasPrefix(line, []byte(p)) {
		return 0
	}
	var id uint64
	for _, ch := range line[len(p):] {
		if ch < '0' || ch > '9' {
			break
		}
		id = id*10 + uint64(ch-'0')
	}
	return id
}

// Run sends the flows of req and returns what this worker measured.
// progress, if not nil, is called about twice a second.
func (e *engine) Run(ctx context.Context, req RunReq, progress func(Progress)) RunResult {
	if req.QuietMs <= 0 {
		req.QuietMs = 1000
	}
	if req.Window <= 0 {
		req.Window = 1
	}
	rs := &runState{req: req, flows: map[uint32]*flowState{}, ackFlows: map[int]*flowState{}}
	rs.winStart = req.StartNs + req.WarmupMs*1e6
	rs.winEnd = rs.winStart + req.DurationMs*1e6
	rs.sendEnd = rs.winEnd
	rs.timeline = make([]atomic.Int64, (req.WarmupMs+req.DurationMs+req.DrainMs)/1000+2)
	e.mu.Lock()
	conns := e.conns
	kind := e.kind
	e.mu.Unlock()
	for _, f := range req.Flows {
		fs := &flowState{spec: f, sem: make(chan struct{}, req.Window)}
		for range req.Window {
			fs.sem <- struct{}{}
		}
		rs.flows[f.Flow] = fs
		if f.Probe < 0 {
			rs.ackFlows[f.Conn] = fs
		}
	}
	closedBefore := e.closed.Load()
	e.run.Store(rs)

	var wg sync.WaitGroup
	for _, fs := range rs.flows {
		if fs.spec.Conn < 0 || fs.spec.Conn >= len(conns) || conns[fs.spec.Conn] == nil {
			rs.noteErr(fmt.Errorf("flow %d: no connection %d", fs.spec.Flow, fs.spec.Conn))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			e.send(ctx, rs, conns[fs.spec.Conn], fs, kind)
		}()
	}
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	sendersDone := make(chan struct{})
	go func() { wg.Wait(); close(sendersDone) }()
	report := func() {
		if progress != nil {
			progress(Progress{Sent: rs.sent.Load(), Recv: rs.recv.Load()})
		}
	}
	if len(rs.flows) == 0 { // a hold: nothing to send, just keep the connections for the window
		timer := time.NewTimer(time.Duration(rs.sendEnd - time.Now().UnixNano()))
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
		}
	}
	// Sending phase.
wait:
	for {
		select {
		case <-sendersDone:
			break wait
		case <-tick.C:
			report()
		case <-ctx.Done():
			break wait
		}
	}
	// Drain: until every local window is free and nothing arrived for QuietMs,
	// or DrainMs passed.
	drainEnd := time.Now().Add(time.Duration(req.DrainMs) * time.Millisecond)
	endAt := time.Now().UnixNano()
	for time.Now().Before(drainEnd) && ctx.Err() == nil {
		last := max(rs.lastRecv.Load(), endAt)
		if allFree(rs) && time.Now().UnixNano()-last > req.QuietMs*1e6 {
			break
		}
		select {
		case <-tick.C:
			report()
		case <-time.After(50 * time.Millisecond):
		case <-ctx.Done():
		}
	}
	report()
	e.run.Store(nil)

	res := RunResult{
		Sent: rs.sent.Load(), SentWindow: rs.sentWin.Load(), Acks: rs.acks.Load(), AckErrors: rs.ackErr.Load(),
		Recv: rs.recv.Load(), RecvWindow: rs.recvWin.Load(), RecvInWin: rs.recvInWin.Load(), Other: rs.other.Load(),
		SendErrors: rs.sendErr.Load(), Closed: e.closed.Load() - closedBefore, LastRecvNs: rs.lastRecv.Load(),
		EndNs: time.Now().UnixNano(), Alive: e.Alive(),
	}
	if p := rs.firstErr.Load(); p != nil {
		res.FirstErr = *p
	}
	var h, all histArr
	for i := range rs.hists {
		sh := &rs.hists[i]
		sh.Lock()
		h.add(&sh.h)
		all.add(&sh.all)
		sh.Unlock()
	}
	res.Hist, res.HistAll = h.export(), all.export()
	res.Timeline = make([]int64, len(rs.timeline))
	for i := range rs.timeline {
		res.Timeline[i] = rs.timeline[i].Load()
	}
	return res
}

func allFree(rs *runState) bool {
	for _, f := range rs.flows {
		if len(f.sem) < cap(f.sem) {
			return false
		}
	}
	return true
}

// send is one flow's sender loop.
func (e *engine) send(ctx context.Context, rs *runState, c *bconn, fs *flowState, kind string) {
	req := &rs.req
	var interval int64
	if req.Rate > 0 {
		interval = int64(1e9 / req.Rate)
	}
	// Spread the flows' first sends over one interval.
	phase := int64(0)
	if interval > 0 {
		phase = int64(fs.spec.Flow) * 7919 % interval
	}
	var mb *msgBuilder
	if kind != kindCentrifugo {
		mb = newMsgBuilder(c.id, fs.spec.To, fs.spec.Group)
	}
	var content, cmd []byte
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	sleepUntil := func(t int64) bool {
		d := time.Duration(t - time.Now().UnixNano())
		if d <= 0 {
			return true
		}
		timer.Reset(d)
		select {
		case <-timer.C:
			return true
		case <-ctx.Done():
			return false
		}
	}
	if !sleepUntil(req.StartNs + phase) {
		return
	}
	for k := int64(0); req.MaxMsgs <= 0 || k < req.MaxMsgs; k++ {
		var ts int64
		if interval > 0 {
			ts = req.StartNs + phase + k*interval
			if ts >= rs.sendEnd || !sleepUntil(ts) {
				return
			}
		}
		// A window slot, but never past the end of the sending phase.
		select {
		case <-fs.sem:
		default:
			d := time.Duration(rs.sendEnd - time.Now().UnixNano())
			if d <= 0 {
				return
			}
			timer.Reset(d)
			select {
			case <-fs.sem:
				if !timer.Stop() {
					<-timer.C
				}
			case <-timer.C:
				return
			case <-ctx.Done():
				return
			}
		}
		if interval == 0 {
			ts = time.Now().UnixNano()
			if ts >= rs.sendEnd {
				fs.release()
				return
			}
		}
		var err error
		if kind == kindCentrifugo {
			content = appendBenchContent(content[:0], ts, fs.spec.Flow, req.Size)
			cmd = appendCentrifugoPublish(cmd[:0], fs.spec.To, content)
			_, err = c.centrifugoCommand(string(cmd))
		} else {
			err = c.write(mb.frame(ts, fs.spec.Flow, req.Size))
		}
		if err != nil {
			rs.sendErr.Add(1)
			rs.noteErr(fmt.Errorf("send: %w", err))
			fs.release()
			if c.dead.Load() {
				return
			}
			continue
		}
		rs.sent.Add(1)
		if ts >= rs.winStart && ts < rs.winEnd {
			rs.sentWin.Add(1)
		}
	}
}

// Close closes every connection.
func (e *engine) Close() {
	e.mu.Lock()
	conns := e.conns
	e.conns = nil
	e.mu.Unlock()
	var wg sync.WaitGroup
	ch := make(chan *bconn)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range ch {
				c.close()
			}
		}()
	}
	for _, c := range conns {
		if c != nil {
			ch <- c
		}
	}
	close(ch)
	wg.Wait()
}

// Alive is the number of open connections.
func (e *engine) Alive() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, c := range e.conns {
		if c != nil && !c.dead.Load() {
			n++
		}
	}
	return n
}
