package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progressBar draws one updating status line on a terminal, or a line every
// few seconds when the output is not a terminal.
type progressBar struct {
	w      io.Writer
	tty    bool
	mu     sync.Mutex
	last   time.Time
	label  string
	start  time.Time
	total  time.Duration
	shown  bool
	quiet  bool
	recv0  int64
	lastAt time.Time
	rate   float64
}

func newProgressBar(w io.Writer, quiet bool) *progressBar {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	return &progressBar{w: w, tty: tty, quiet: quiet}
}

// begin starts a timed phase.
func (p *progressBar) begin(label string, total time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.label, p.start, p.total, p.recv0, p.lastAt, p.rate = label, time.Now(), total, 0, time.Now(), 0
}

// update shows the counts of the current phase.
func (p *progressBar) update(pr Progress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.quiet {
		return
	}
	now := time.Now()
	if dt := now.Sub(p.lastAt).Seconds(); dt >= 0.5 {
		p.rate = float64(pr.Recv-p.recv0) / dt
		p.recv0, p.lastAt = pr.Recv, now
	}
	every := 200 * time.Millisecond
	if !p.tty {
		every = 5 * time.Second
	}
	if now.Sub(p.last) < every {
		return
	}
	p.last = now
	el := now.Sub(p.start)
	frac := 0.0
	if p.total > 0 {
		frac = min(1, el.Seconds()/p.total.Seconds())
	}
	const width = 24
	n := int(frac * width)
	bar := strings.Repeat("█", n) + strings.Repeat("░", width-n)
	line := fmt.Sprintf("%-28s %5.1fs/%4.0fs ▕%s▏ sent %s recv %s (%s/s)", p.label, el.Seconds(), p.total.Seconds(),
		bar, human(float64(pr.Sent)), human(float64(pr.Recv)), human(p.rate))
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
		p.shown = true
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// step shows a setup step's progress.
func (p *progressBar) step(step string, done, total int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.quiet {
		return
	}
	now := time.Now()
	if done < total && now.Sub(p.last) < map[bool]time.Duration{true: 200 * time.Millisecond, false: 5 * time.Second}[p.tty] {
		return
	}
	p.last = now
	line := fmt.Sprintf("%-28s %d/%d", step, done, total)
	if p.tty {
		fmt.Fprintf(p.w, "\r%s\x1b[K", line)
		p.shown = true
	} else {
		fmt.Fprintln(p.w, line)
	}
}

// done clears the status line.
func (p *progressBar) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty && p.shown {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.shown = false
	}
}

// human renders 12345.6 as "12.3k".
func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.1fk", v/1e3)
	default:
		return fmt.Sprintf("%.0f", v)
	}
}
