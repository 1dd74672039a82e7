package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Latency is a latency summary in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
	N    int64   `json:"n"`
}

func latencyOf(h *Hist) Latency {
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{P50: ms(h.Quantile(0.50)), P95: ms(h.Quantile(0.95)), P99: ms(h.Quantile(0.99)),
		Max: ms(h.Max), Mean: h.Mean() / 1000, N: h.N}
}

// Result is one target measured in one scenario step.
type Result struct {
	Target    string         `json:"target"` // sandcat, relay, centrifugo, synapse, sandcat-before
	Available bool           `json:"available"`
	Note      string         `json:"note"`
	Params    map[string]any `json:"params"`

	Conns         int   `json:"conns"`
	ConnectFailed int   `json:"connect_failed"`
	ConnectMs     int64 `json:"connect_ms"`

	DurationSec  float64            `json:"duration_sec"`
	DeliveredPS  float64            `json:"delivered_per_sec"` // receipts per second inside the window
	Sent         int64              `json:"sent"`
	Acks         int64              `json:"acks"`
	Recv         int64              `json:"recv"`
	Expected     int64              `json:"expected"` // receipts expected for the messages stamped inside the window
	Lost         int64              `json:"lost"`     // of those, not received by the end of the drain
	Errors       int64              `json:"errors"`   // error ACKs + send errors + failed connections + connections lost
	FirstError   string             `json:"first_error"`
	Latency      Latency            `json:"latency"`
	Timeline     []int64            `json:"timeline"` // receipts per second from the start of sending
	Server       ProcUsage          `json:"server"`
	ServerPIDs   []int              `json:"server_pids"`
	Clients      ProcUsage          `json:"clients"`
	BytesPerConn float64            `json:"server_bytes_per_conn"` // server RSS growth per connection
	Extra        map[string]float64 `json:"extra"`
}

// Step is one scenario step: Sandcat and its baseline, measured in the same run.
type Step struct {
	ID       string             `json:"id"`    // e.g. b-max
	Title    string             `json:"title"` // what it measures
	Sandcat  *Result            `json:"sandcat"`
	Baseline *Result            `json:"baseline"` // nil when the step has none
	Extra    []*Result          `json:"extra"`    // other references (the relay in (a))
	Ratios   map[string]float64 `json:"ratios"`   // sandcat / baseline
	Targets  []TargetCheck      `json:"targets"`
	// LoadAvg is /proc/loadavg when the step ended: the machine is shared,
	// and other work on it moves absolute figures (ratios less so).
	LoadAvg string `json:"load_avg"`
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

// TargetCheck is one target of issue 4.
type TargetCheck struct {
	What  string  `json:"what"`
	Goal  string  `json:"goal"`
	Value float64 `json:"value"`
	Met   bool    `json:"met"`
}

// Machine describes where the figures come from.
type Machine struct {
	Host    string  `json:"host"`
	CPUs    int     `json:"cpus"`
	CPU     string  `json:"cpu"`
	MemGiB  float64 `json:"mem_gib"`
	Go      string  `json:"go"`
	Kernel  string  `json:"kernel"`
	Started string  `json:"started"`
}

func machineInfo() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), Started: time.Now().UTC().Format(time.RFC3339)}
	m.Host, _ = os.Hostname()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				if i := strings.IndexByte(l, ':'); i >= 0 {
					m.CPU = strings.TrimSpace(l[i+1:])
				}
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %f kB", &kb); err == nil {
			m.MemGiB = math.Round(kb/1024/1024*10) / 10
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// ratio returns a/b, or NaN-free 0 when b is 0.
func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return math.Round(a/b*1000) / 1000
}

// writeStep writes <dir>/<id>.json and <dir>/<id>.png.
func writeStep(dir string, m Machine, s *Step) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(struct {
		Machine Machine `json:"machine"`
		*Step
	}{m, s}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, s.ID+".json"), b, 0o644); err != nil {
		return err
	}
	return writeChart(filepath.Join(dir, s.ID+".png"), s)
}

var targetColors = map[string]color.Color{
	"sandcat":        color.RGBA{R: 0xfe, G: 0x4f, B: 0x70, A: 0xff},
	"relay":          color.RGBA{R: 0x77, G: 0x77, B: 0x77, A: 0xff},
	"centrifugo":     color.RGBA{R: 0x2b, G: 0x7b, B: 0xb9, A: 0xff},
	"synapse":        color.RGBA{R: 0x0d, G: 0xbd, B: 0x8b, A: 0xff},
	"sandcat-before": color.RGBA{R: 0xf5, G: 0xa6, B: 0x23, A: 0xff},
	"synapse-before": color.RGBA{R: 0x7f, G: 0xd8, B: 0xbe, A: 0xff},
}

func colorOf(target string) color.Color {
	if c, ok := targetColors[target]; ok {
		return c
	}
	return color.Black
}

// writeChart draws a step: its headline figure per target, the latency
// percentiles, and the deliveries per second over time.
func writeChart(path string, s *Step) error {
	var rs []*Result
	for _, r := range append([]*Result{s.Sandcat, s.Baseline}, s.Extra...) {
		if r != nil && r.Available {
			rs = append(rs, r)
		}
	}
	if len(rs) == 0 {
		return nil
	}
	var plots []*plot.Plot

	// 1. Headline: delivered/s, or KiB per connection for idle steps, or the
	// pull time for the catch-up.
	head := plot.New()
	head.Title.Text = s.Title
	names := make([]string, len(rs))
	vals := make(plotter.Values, len(rs))
	headLabel := "delivered msg/s"
	for i, r := range rs {
		names[i] = r.Target
		switch {
		case strings.HasPrefix(s.ID, "a-"):
			vals[i] = r.BytesPerConn / 1024
			headLabel = "server KiB per connection"
		case strings.HasPrefix(s.ID, "d-"):
			vals[i] = r.Extra["pull_sec"]
			headLabel = "seconds to pull"
		default:
			vals[i] = r.DeliveredPS
		}
	}
	head.Y.Label.Text = headLabel
	bars, err := plotter.NewBarChart(vals, vg.Points(28))
	if err != nil {
		return err
	}
	bars.Color = colorOf(rs[0].Target)
	head.Add(bars)
	head.NominalX(names...)
	for i, r := range rs {
		if i == 0 {
			continue
		}
		// Recolour by drawing one bar chart per target.
		one := make(plotter.Values, len(rs))
		one[i] = vals[i]
		b, err := plotter.NewBarChart(one, vg.Points(28))
		if err != nil {
			return err
		}
		b.Color = colorOf(r.Target)
		head.Add(b)
	}
	plots = append(plots, head)

	// 2. Latency percentiles (ms), grouped by target.
	if !strings.HasPrefix(s.ID, "a-") && !strings.HasPrefix(s.ID, "d-") {
		lat := plot.New()
		lat.Title.Text = "end-to-end latency"
		lat.Y.Label.Text = "ms"
		w := vg.Points(14)
		for i, r := range rs {
			v := plotter.Values{r.Latency.P50, r.Latency.P95, r.Latency.P99, r.Latency.Max}
			b, err := plotter.NewBarChart(v, w)
			if err != nil {
				return err
			}
			b.Color = colorOf(r.Target)
			b.Offset = w * vg.Length(float64(i)-float64(len(rs)-1)/2)
			lat.Add(b)
			lat.Legend.Add(r.Target, b)
		}
		lat.Legend.Top = true
		lat.NominalX("p50", "p95", "p99", "max")
		plots = append(plots, lat)
	}

	// 3. Deliveries per second over time.
	hasTimeline := false
	tl := plot.New()
	tl.Title.Text = "deliveries per second"
	tl.X.Label.Text = "s since the first send"
	for _, r := range rs {
		if len(r.Timeline) == 0 {
			continue
		}
		last := len(r.Timeline)
		for last > 1 && r.Timeline[last-1] == 0 {
			last--
		}
		pts := make(plotter.XYs, last)
		for i, v := range r.Timeline[:last] {
			pts[i] = plotter.XY{X: float64(i), Y: float64(v)}
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = colorOf(r.Target)
		l.Width = vg.Points(1.5)
		tl.Add(l)
		tl.Legend.Add(r.Target, l)
		hasTimeline = true
	}
	if hasTimeline {
		tl.Legend.Top = true
		plots = append(plots, tl)
	}

	const colW, height = 400, 320
	img := vgimg.New(vg.Points(float64(colW*len(plots))), vg.Points(height))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: len(plots), PadX: vg.Points(12), PadY: vg.Points(8),
		PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(10)}
	canv := plot.Align([][]*plot.Plot{plots}, tiles, dc)
	for j, p := range plots {
		p.Draw(canv[0][j])
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// printStep writes a step's figures and ratios as text.
func printStep(w io.Writer, s *Step) {
	fmt.Fprintf(w, "\n== %s: %s (load average %s)\n", s.ID, s.Title, s.LoadAvg)
	all := append([]*Result{s.Sandcat, s.Baseline}, s.Extra...)
	for _, r := range all {
		if r == nil {
			continue
		}
		if !r.Available {
			fmt.Fprintf(w, "  %-10s not available: %s\n", r.Target, r.Note)
			continue
		}
		switch {
		case strings.HasPrefix(s.ID, "a-"):
			fmt.Fprintf(w, "  %-10s %7d conns (%d failed) in %.1fs  server %.2f KiB/conn  RSS %s  CPU %.2f cores  clients %.2f KiB/conn\n",
				r.Target, r.Conns, r.ConnectFailed, float64(r.ConnectMs)/1000, r.BytesPerConn/1024, mib(r.Server.RSS),
				r.Server.CPUCores, r.Extra["client_bytes_per_conn"]/1024)
		case strings.HasPrefix(s.ID, "d-"):
			fmt.Fprintf(w, "  %-10s pulled %.0f msgs in %.3fs (%.0f msgs/s, %s of JSON); flood %.0f msg/s acked; errors %d\n",
				r.Target, r.Extra["pulled"], r.Extra["pull_sec"], r.Extra["pulled"]/math.Max(r.Extra["pull_sec"], 1e-9),
				mib(int64(r.Extra["pull_bytes"])), r.Extra["flood_per_sec"], r.Errors)
		default:
			fmt.Fprintf(w, "  %-10s %9.0f msg/s delivered  p50 %.2f  p95 %.2f  p99 %.2f  max %.2f ms  sent %d recv %d lost %d errors %d  server CPU %.2f RSS %s  clients CPU %.2f\n",
				r.Target, r.DeliveredPS, r.Latency.P50, r.Latency.P95, r.Latency.P99, r.Latency.Max, r.Sent, r.Recv,
				r.Lost, r.Errors, r.Server.CPUCores, mib(r.Server.RSS), r.Clients.CPUCores)
		}
		if r.FirstError != "" {
			fmt.Fprintf(w, "  %-10s first error: %s\n", "", r.FirstError)
		}
		if r.Note != "" {
			fmt.Fprintf(w, "  %-10s note: %s\n", "", r.Note)
		}
	}
	if len(s.Ratios) > 0 {
		keys := sortedKeys(s.Ratios)
		var parts []string
		for _, k := range keys {
			parts = append(parts, fmt.Sprintf("%s %.3f", k, s.Ratios[k]))
		}
		fmt.Fprintf(w, "  ratios (sandcat / baseline): %s\n", strings.Join(parts, ", "))
	}
	for _, t := range s.Targets {
		mark := "MET"
		if !t.Met {
			mark = "NOT MET"
		}
		fmt.Fprintf(w, "  target %s %s: %.3g → %s\n", t.What, t.Goal, t.Value, mark)
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
