package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// procSample is one reading of a process's resources.
type procSample struct {
	At     time.Time
	RSS    int64   // bytes
	CPUSec float64 // user + system seconds since the process started
}

// clkTck is USER_HZ, 100 on every Linux this runs on.
const clkTck = 100

func readProc(pid int) (procSample, error) {
	s := procSample{At: time.Now()}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name may hold spaces: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 22 {
		return s, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	s.CPUSec = float64(ut+st) / clkTck
	m, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
	if err != nil {
		return s, err
	}
	mf := strings.Fields(string(m))
	if len(mf) < 2 {
		return s, fmt.Errorf("/proc/%d/statm: unexpected format", pid)
	}
	pages, _ := strconv.ParseInt(mf[1], 10, 64)
	s.RSS = pages * int64(os.Getpagesize())
	return s, nil
}

// procWatch samples processes every interval until stopped, keeping the
// peak RSS and the first and last samples of each.
type procWatch struct {
	pids  []int
	mu    sync.Mutex
	first map[int]procSample
	last  map[int]procSample
	peak  map[int]int64
	stop  chan struct{}
	done  chan struct{}
}

func watchProcs(pids []int, every time.Duration) *procWatch {
	w := &procWatch{pids: pids, first: map[int]procSample{}, last: map[int]procSample{}, peak: map[int]int64{},
		stop: make(chan struct{}), done: make(chan struct{})}
	w.sample()
	go func() {
		defer close(w.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				w.sample()
			case <-w.stop:
				w.sample()
				return
			}
		}
	}()
	return w
}

func (w *procWatch) sample() {
	for _, pid := range w.pids {
		s, err := readProc(pid)
		if err != nil {
			continue
		}
		w.mu.Lock()
		if _, ok := w.first[pid]; !ok {
			w.first[pid] = s
		}
		w.last[pid] = s
		w.peak[pid] = max(w.peak[pid], s.RSS)
		w.mu.Unlock()
	}
}

// Stop ends the sampling and returns, per process, the CPU used (in cores,
// averaged over the watch), the last RSS and the peak RSS.
func (w *procWatch) Stop() map[int]ProcUsage {
	close(w.stop)
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	out := map[int]ProcUsage{}
	for _, pid := range w.pids {
		f, ok1 := w.first[pid]
		l, ok2 := w.last[pid]
		if !ok1 || !ok2 {
			continue
		}
		u := ProcUsage{RSS: l.RSS, PeakRSS: w.peak[pid]}
		if d := l.At.Sub(f.At).Seconds(); d > 0 {
			u.CPUCores = (l.CPUSec - f.CPUSec) / d
		}
		out[pid] = u
	}
	return out
}

// ProcUsage is what a process used during a measurement.
type ProcUsage struct {
	CPUCores float64 `json:"cpu_cores"` // average cores busy (1.0 = one core)
	RSS      int64   `json:"rss_bytes"`
	PeakRSS  int64   `json:"peak_rss_bytes"`
}

// waitIdle waits until the processes together use less than 0.1 core over a
// second (a server still working off an earlier step would skew the next
// one), at most max. It returns how long it waited.
func waitIdle(ctx context.Context, pids []int, maxWait time.Duration) time.Duration {
	start := time.Now()
	cpu := func() float64 {
		var t float64
		for _, p := range pids {
			if s, err := readProc(p); err == nil {
				t += s.CPUSec
			}
		}
		return t
	}
	prev, prevAt := cpu(), time.Now()
	for time.Since(start) < maxWait {
		select {
		case <-ctx.Done():
			return time.Since(start)
		case <-time.After(time.Second):
		}
		c, at := cpu(), time.Now()
		if (c-prev)/at.Sub(prevAt).Seconds() < 0.1 {
			break
		}
		prev, prevAt = c, at
	}
	return time.Since(start)
}
