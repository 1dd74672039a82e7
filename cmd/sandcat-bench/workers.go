package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"
)

// roleEnv selects what a re-executed copy of the tool does: "worker" (client
// connections driven over stdin/stdout), "serve" (a Sandcat server under
// test) or "relay" (the bare relay).
const roleEnv = "SANDCAT_BENCH_ROLE"

// The tool's variables all start with SANDCAT_BENCH_; the Sandcat it starts
// does not see them (its config loader takes SANDCAT_* as config keys).

// worker is a set of client connections, in this process or in a child.
type worker interface {
	Connect(ctx context.Context, req ConnectReq) (ConnectResp, error)
	Run(ctx context.Context, req RunReq, progress func(Progress)) (RunResult, error)
	CloseConns(ctx context.Context) error
	Pid() int
	Stop()
}

// localWorker runs the engine in this process (tests, -inproc).
type localWorker struct{ e *engine }

func (w *localWorker) Connect(ctx context.Context, req ConnectReq) (ConnectResp, error) {
	return w.e.Connect(ctx, req), nil
}

func (w *localWorker) Run(ctx context.Context, req RunReq, p func(Progress)) (RunResult, error) {
	return w.e.Run(ctx, req, p), nil
}

func (w *localWorker) CloseConns(context.Context) error { w.e.Close(); return nil }
func (w *localWorker) Pid() int                         { return os.Getpid() }
func (w *localWorker) Stop()                            { w.e.Close() }

// wireReq and wireResp are the JSON lines between the tool and a worker child.
type wireReq struct {
	Op      string      `json:"op"` // connect, run, close
	Connect *ConnectReq `json:"connect,omitempty"`
	Run     *RunReq     `json:"run,omitempty"`
}

type wireResp struct {
	Connect  *ConnectResp `json:"connect,omitempty"`
	Progress *Progress    `json:"progress,omitempty"`
	Result   *RunResult   `json:"result,omitempty"`
	Done     bool         `json:"done,omitempty"`
	Err      string       `json:"err,omitempty"`
}

// procWorker is a child process running workerMain.
type procWorker struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
	mu  sync.Mutex
}

func startProcWorker(logw io.Writer) (*procWorker, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(), roleEnv+"=worker")
	cmd.Stderr = logw
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start worker: %w", err)
	}
	return &procWorker{cmd: cmd, in: in, out: bufio.NewReaderSize(out, 1<<20)}, nil
}

func (w *procWorker) Pid() int { return w.cmd.Process.Pid }

func (w *procWorker) call(ctx context.Context, req wireReq, onResp func(wireResp) bool) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := w.in.Write(append(b, '\n')); err != nil {
		return fmt.Errorf("worker %d: %w", w.Pid(), err)
	}
	type line struct {
		b   []byte
		err error
	}
	for {
		ch := make(chan line, 1)
		go func() {
			b, err := w.out.ReadBytes('\n')
			ch <- line{b, err}
		}()
		var l line
		select {
		case l = <-ch:
		case <-ctx.Done():
			w.Stop()
			return ctx.Err()
		}
		if l.err != nil {
			return fmt.Errorf("worker %d: %w", w.Pid(), l.err)
		}
		var resp wireResp
		if err := json.Unmarshal(l.b, &resp); err != nil {
			return fmt.Errorf("worker %d: bad answer: %w", w.Pid(), err)
		}
		if resp.Err != "" {
			return fmt.Errorf("worker %d: %s", w.Pid(), resp.Err)
		}
		if onResp(resp) {
			return nil
		}
	}
}

func (w *procWorker) Connect(ctx context.Context, req ConnectReq) (ConnectResp, error) {
	var out ConnectResp
	err := w.call(ctx, wireReq{Op: "connect", Connect: &req}, func(r wireResp) bool {
		if r.Connect != nil {
			out = *r.Connect
			return true
		}
		return false
	})
	return out, err
}

func (w *procWorker) Run(ctx context.Context, req RunReq, p func(Progress)) (RunResult, error) {
	var out RunResult
	err := w.call(ctx, wireReq{Op: "run", Run: &req}, func(r wireResp) bool {
		if r.Progress != nil && p != nil {
			p(*r.Progress)
		}
		if r.Result != nil {
			out = *r.Result
			return true
		}
		return false
	})
	return out, err
}

func (w *procWorker) CloseConns(ctx context.Context) error {
	return w.call(ctx, wireReq{Op: "close"}, func(r wireResp) bool { return r.Done })
}

// Stop ends the child (its connections close with it).
func (w *procWorker) Stop() {
	_ = w.in.Close()
	done := make(chan struct{})
	go func() { _ = w.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = w.cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
}

// workerMain serves wireReqs on stdin until it closes.
func workerMain() int {
	e := newEngine()
	in := bufio.NewReaderSize(os.Stdin, 1<<20)
	out := bufio.NewWriter(os.Stdout)
	var omu sync.Mutex
	send := func(r wireResp) {
		b, _ := json.Marshal(r)
		omu.Lock()
		_, _ = out.Write(append(b, '\n'))
		_ = out.Flush()
		omu.Unlock()
	}
	ctx := context.Background()
	for {
		line, err := in.ReadBytes('\n')
		if err != nil {
			e.Close()
			if errors.Is(err, io.EOF) {
				return 0
			}
			fmt.Fprintln(os.Stderr, "worker:", err)
			return 1
		}
		var req wireReq
		if err := json.Unmarshal(line, &req); err != nil {
			send(wireResp{Err: err.Error()})
			continue
		}
		switch req.Op {
		case "connect":
			if req.Connect == nil {
				send(wireResp{Err: "connect without a request"})
				continue
			}
			r := e.Connect(ctx, *req.Connect)
			send(wireResp{Connect: &r})
		case "run":
			if req.Run == nil {
				send(wireResp{Err: "run without a request"})
				continue
			}
			r := e.Run(ctx, *req.Run, func(p Progress) { send(wireResp{Progress: &p}) })
			send(wireResp{Result: &r})
		case "close":
			e.Close()
			send(wireResp{Done: true})
		default:
			send(wireResp{Err: "unknown op " + req.Op})
		}
	}
}

// pool is the workers of one target, with the connections spread over them.
type pool struct {
	workers []worker
	// where[i] is the worker and index in it of connection i of the target.
	where  []connRef
	counts []int // connections opened on each worker (the next index)
}

type connRef struct{ w, idx int }

// perWorkerConns keeps every worker under the 20,000 open files of a process.
const perWorkerConns = 18000

// newPool starts enough workers for n connections (at least min).
func newPool(inproc bool, n, minWorkers int, logw io.Writer) (*pool, error) {
	k := max(minWorkers, (n+perWorkerConns-1)/perWorkerConns, 1)
	p := &pool{}
	for range k {
		if inproc {
			if k > 1 {
				return nil, fmt.Errorf("%d connections need %d worker processes; -inproc holds at most %d", n, k, perWorkerConns)
			}
			p.workers = append(p.workers, &localWorker{e: newEngine()})
			continue
		}
		w, err := startProcWorker(logw)
		if err != nil {
			p.Stop()
			return nil, err
		}
		p.workers = append(p.workers, w)
	}
	p.counts = make([]int, len(p.workers))
	return p, nil
}

// Stop ends every worker.
func (p *pool) Stop() {
	for _, w := range p.workers {
		w.Stop()
	}
	p.workers = nil
}

func (p *pool) pids() []int {
	var out []int
	for _, w := range p.workers {
		out = append(out, w.Pid())
	}
	return out
}

// connect opens specs, connection i on worker assign(i) (nil: spread evenly
// in contiguous blocks). It returns the totals.
func (p *pool) connect(ctx context.Context, kind, channel string, specs []ConnSpec, srcIPs []string, assign func(i int) int) (ConnectResp, error) {
	k := len(p.workers)
	if assign == nil {
		per := (len(specs) + k - 1) / k
		assign = func(i int) int { return i / max(per, 1) }
	}
	batches := make([][]ConnSpec, k)
	idxs := make([][]int, k)
	for i, s := range specs {
		w := assign(i)
		idxs[w] = append(idxs[w], i)
		batches[w] = append(batches[w], s)
	}
	base := len(p.where)
	p.where = append(p.where, make([]connRef, len(specs))...)
	var (
		mu    sync.Mutex
		total ConnectResp
		errs  []error
		wg    sync.WaitGroup
	)
	start := time.Now()
	for w := range k {
		if len(batches[w]) == 0 {
			continue
		}
		wg.Add(1)
		before := p.counts[w]
		go func() {
			defer wg.Done()
			r, err := p.workers[w].Connect(ctx, ConnectReq{Kind: kind, Conns: batches[w], SrcIPs: srcIPs, Channel: channel})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
				return
			}
			for j, i := range idxs[w] {
				p.where[base+i] = connRef{w: w, idx: before + j}
			}
			total.Connected += r.Connected
			total.Failed += r.Failed
			if total.FirstErr == "" {
				total.FirstErr = r.FirstErr
			}
		}()
	}
	wg.Wait()
	total.TookMs = time.Since(start).Milliseconds()
	for w := range k {
		p.counts[w] += len(batches[w])
	}
	return total, errors.Join(errs...)
}

// closeConns closes every connection of every worker.
func (p *pool) closeConns(ctx context.Context) error {
	var errs []error
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, w := range p.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.CloseConns(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	p.where = nil
	for i := range p.counts {
		p.counts[i] = 0
	}
	return errors.Join(errs...)
}

// run runs flows (flows[w] on worker w) with the times and sizes of base,
// and merges what the workers measured. progress gets the totals.
func (p *pool) run(ctx context.Context, flows [][]FlowSpec, base RunReq, progress func(Progress)) (RunResult, error) {
	k := len(p.workers)
	var (
		mu   sync.Mutex
		prog = make([]Progress, k)
		res  = make([]RunResult, k)
		errs []error
		wg   sync.WaitGroup
	)
	for w := range k {
		req := base
		if w < len(flows) {
			req.Flows = flows[w]
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := p.workers[w].Run(ctx, req, func(pr Progress) {
				mu.Lock()
				prog[w] = pr
				var t Progress
				for _, x := range prog {
					t.Sent += x.Sent
					t.Recv += x.Recv
				}
				mu.Unlock()
				if progress != nil {
					progress(t)
				}
			})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			}
			res[w] = r
		}()
	}
	wg.Wait()
	return mergeResults(res), errors.Join(errs...)
}

func mergeResults(rs []RunResult) RunResult {
	var m RunResult
	for _, r := range rs {
		m.Sent += r.Sent
		m.SentWindow += r.SentWindow
		m.Acks += r.Acks
		m.AckErrors += r.AckErrors
		m.Recv += r.Recv
		m.RecvWindow += r.RecvWindow
		m.RecvInWin += r.RecvInWin
		m.Other += r.Other
		m.SendErrors += r.SendErrors
		m.Closed += r.Closed
		if m.FirstErr == "" {
			m.FirstErr = r.FirstErr
		}
		m.Hist.Merge(r.Hist)
		m.HistAll.Merge(r.HistAll)
		if len(r.Timeline) > len(m.Timeline) {
			m.Timeline = append(m.Timeline, make([]int64, len(r.Timeline)-len(m.Timeline))...)
		}
		for i, v := range r.Timeline {
			m.Timeline[i] += v
		}
		m.Alive += r.Alive
		m.LastRecvNs = max(m.LastRecvNs, r.LastRecvNs)
		m.EndNs = max(m.EndNs, r.EndNs)
	}
	return m
}
