// Command sandcat-bench is Sandcat's load tool. It drives real clients over
// the real wire (HTTP register and login, WebSocket bincode frames) against a
// Sandcat it starts itself (the embedded default, from a cached seed of users
// and groups) or against a running one (-api, -ws), measures each scenario
// next to a baseline run in the same invocation (a bare gorilla relay built
// into the tool, and Centrifugo v6), and writes JSON and PNG per scenario.
//
//	sandcat-bench [flags]                 run the scenarios (default a,b,c,d,e)
//	cmd/sandcat-bench/run.sh [flags]      the same, after building Centrifugo once
//
// Scenarios: (a) idle connections, (b) 1:1 flood at a fixed rate and at
// maximum, (c) group fan-out, (d) offline catch-up, (e) Matrix bridge both
// ways through Synapse next to Synapse alone (needs the Synapse chroot of
// `make synapse` and root). See BENCHMARKS.md.
//
// The tool re-executes itself for its worker processes (at most 18,000
// connections each: a process here may open 20,000 files), for the Sandcat
// under test and for the relay, so that each has its own RSS and CPU.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	switch os.Getenv(roleEnv) {
	case "worker":
		os.Exit(workerMain())
	case "serve":
		os.Exit(serveMain())
	case "relay":
		os.Exit(relayMain())
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// options are the flags.
type options struct {
	scenarios   []string
	out         string
	state       string
	api, ws     string
	serverPID   int
	gateways    []string
	centrifugo  string
	baselines   bool
	inproc      bool
	srcIPs      int
	size        int
	warmup      time.Duration
	duration    time.Duration
	pairs       int
	rate        float64
	window      int
	idleConns   int
	idleTotal   int
	idleHold    time.Duration
	idleSettle  time.Duration
	groups      []int
	groupRate   float64
	fanWindow   int
	catchup     int
	bridgePar   []int
	bridgeWin   int
	bridgeOld   string
	smtp        string
	codeLog     string
	registerPar int
	profile     string
	verbose     bool
	quiet       bool
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("sandcat-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scen := fs.String("scenarios", "a,b,c,d,e", "scenarios to run: a (idle), b (1:1 flood), c (group fan-out), d (offline catch-up), e (Matrix bridge)")
	fs.StringVar(&o.out, "out", "", "directory for the JSON and PNG files (default bench-results/<time>)")
	fs.StringVar(&o.state, "state", "", "directory of the cached seed and fixtures (default $SANDCAT_BENCH_CACHE or ~/.cache/sandcat-bench)")
	fs.StringVar(&o.api, "api", "", "HTTP API of a running Sandcat (http://host:port); empty: the tool starts the embedded default itself")
	fs.StringVar(&o.ws, "ws", "", "WebSocket base of that Sandcat (ws://host:port/ws; default: the ws_addr of the login answer)")
	fs.IntVar(&o.serverPID, "server-pid", 0, "pid of that Sandcat, to read its RSS and CPU from /proc")
	gws := fs.String("gateways", "", "more gateways of that Sandcat for scenario a's spread (comma-separated ws://host:port/ws)")
	fs.StringVar(&o.centrifugo, "centrifugo", "", "Centrifugo v6 binary (default: the one run.sh built, or $PATH)")
	fs.BoolVar(&o.baselines, "baselines", true, "measure the baselines (bare relay, Centrifugo) in the same run")
	fs.BoolVar(&o.inproc, "inproc", false, "run the client connections in this process (at most 18,000)")
	fs.IntVar(&o.srcIPs, "src-ips", 8, "dial from this many source addresses 127.0.0.2, 127.0.0.3, ...")
	fs.IntVar(&o.size, "size", 100, "message content size in bytes (at least 25: it carries the send time)")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "warm-up before each measured window")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "measured window of each rate step")
	fs.IntVar(&o.pairs, "pairs", 100, "(b) sender→receiver pairs")
	fs.Float64Var(&o.rate, "rate", 5000, "(b) fixed offered rate, messages/s over all pairs")
	fs.IntVar(&o.window, "window", 64, "(b) messages in flight per sender at maximum rate")
	fs.IntVar(&o.idleConns, "idle-conns", 19000, "(a) idle connections held by one gateway")
	fs.IntVar(&o.idleTotal, "idle-total", 100000, "(a) idle connections spread over several gateways (0: skip)")
	fs.DurationVar(&o.idleHold, "idle-hold", 10*time.Second, "(a) how long the idle connections are held and measured")
	fs.DurationVar(&o.idleSettle, "idle-settle", 3*time.Second, "(a) wait after connecting before measuring")
	grp := fs.String("groups", "1000,10000", "(c) group sizes, every member online")
	fs.Float64Var(&o.groupRate, "group-rate", 10, "(c) messages/s to the group in the fixed-rate step")
	fs.IntVar(&o.fanWindow, "fan-window", 4, "(c) group messages in flight at maximum rate")
	fs.IntVar(&o.catchup, "catchup", 100000, "(d) messages an offline user pulls")
	bpar := fs.String("bridge-par", "1,16", "(e) senders in parallel (one group or room each) of the maximum-rate steps")
	fs.IntVar(&o.bridgeWin, "bridge-window", 4, "(e) messages in flight per sender at maximum rate (freed when received)")
	fs.StringVar(&o.bridgeOld, "bridge-compare", "", "(e) another build of sandcat-bench (e.g. of an older commit) whose Sandcat is measured Sandcat→Matrix too, as \"before\"")
	fs.StringVar(&o.smtp, "smtp", "", "listen address of the SMTP sink for verification codes (default 127.0.0.1:0 when the tool starts Sandcat)")
	fs.StringVar(&o.codeLog, "code-log", "", "read verification codes from this Sandcat log instead (a server with no mail server logs them)")
	fs.IntVar(&o.registerPar, "register-par", 4, "registrations in flight (each costs argon2id hashes on the server)")
	fs.StringVar(&o.profile, "profile", "", "write a CPU profile of the Sandcat server during the (b) maximum-rate step to this file")
	fs.BoolVar(&o.verbose, "v", false, "log more")
	fs.BoolVar(&o.quiet, "quiet", false, "no progress line")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, s := range strings.Split(*scen, ",") {
		if s = strings.TrimSpace(s); s != "" {
			if !slices.Contains([]string{"a", "b", "c", "d", "e"}, s) {
				return nil, fmt.Errorf("unknown scenario %q (a, b, c, d, e)", s)
			}
			o.scenarios = append(o.scenarios, s)
		}
	}
	for _, s := range strings.Split(*grp, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 2 {
			return nil, fmt.Errorf("bad group size %q", s)
		}
		o.groups = append(o.groups, n)
	}
	for _, s := range strings.Split(*bpar, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 256 {
			return nil, fmt.Errorf("bad -bridge-par %q (1..256)", s)
		}
		o.bridgePar = append(o.bridgePar, n)
	}
	if o.bridgeWin < 1 {
		return nil, errors.New("-bridge-window must be at least 1")
	}
	for _, s := range strings.Split(*gws, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.gateways = append(o.gateways, s)
		}
	}
	if o.size < benchHeaderLen {
		return nil, fmt.Errorf("-size must be at least %d", benchHeaderLen)
	}
	if o.srcIPs < 1 || o.srcIPs > 250 {
		return nil, errors.New("-src-ips must be 1..250")
	}
	if o.out == "" {
		o.out = filepath.Join("bench-results", time.Now().Format("20060102-150405"))
	}
	if o.state == "" {
		o.state = cacheDir()
	}
	return o, nil
}

func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		fmt.Fprintln(stderr, err)
		return 2
	}
	level := slog.LevelWarn
	if o.verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b := &bench{o: o, log: log, out: stdout, bar: newProgressBar(stderr, o.quiet), machine: machineInfo()}
	steps, err := b.runAll(ctx)
	b.bar.done()
	if err != nil {
		fmt.Fprintln(stderr, "sandcat-bench:", err)
		return 1
	}
	fmt.Fprintf(stdout, "\n%d steps written to %s\n", len(steps), o.out)
	return 0
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
