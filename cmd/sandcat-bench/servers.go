package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/sandcat-im/sandcat/im/app"
	"github.com/sandcat-im/sandcat/im/config"
	"github.com/sandcat-im/sandcat/im/observe"
)

// child is a server process the tool started (a Sandcat, the relay,
// Centrifugo). Only it is ever signalled, by its own pid.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	log  *os.File
}

func startChild(name, exe string, args, env []string, logPath string) (*child, error) {
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = lf, lf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the tool
	if err := cmd.Start(); err != nil {
		_ = lf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{}), log: lf}
	go func() { _ = cmd.Wait(); close(c.done) }()
	return c, nil
}

func (c *child) Pid() int { return c.cmd.Process.Pid }

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, then SIGKILL after grace.
func (c *child) Stop(grace time.Duration) {
	if c == nil || c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		<-c.done
	}
	_ = c.log.Close()
}

// exitedErr says the child exited at start, with the end of its log.
func (c *child) exitedErr() error {
	b, _ := os.ReadFile(c.log.Name())
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return fmt.Errorf("%s exited at start; see %s; it ends with:\n%s", c.name, c.log.Name(), b)
}

// waitHTTP polls url until it answers 2xx, the child exits or timeout passes.
func waitHTTP(ctx context.Context, c *child, url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		if c != nil && c.exited() {
			return c.exitedErr()
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := hc.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode/100 == 2 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not answer %s within %s", c.name, url, timeout)
}

// freePort returns a port free on 127.0.0.1 now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// sandcatOpts describe a Sandcat server process the tool starts.
type sandcatOpts struct {
	Dir       string // config and log go here
	DataDir   string
	Component string // all (default) or gateway
	Secret    string // server.jwt_secret
	SMTP      string // the SMTP sink's address ("" : codes are logged)
	LogLevel  string
	// CPUProfile: the server writes a CPU profile here between SIGUSR1 and SIGUSR2.
	CPUProfile string
	// Extra is appended to the config (e.g. the appservice section).
	Extra string
	// Exe is the build of this tool whose serve role runs the server
	// (default: this one; scenario e may measure an older build too).
	Exe string
}

// sandcatServer is a running Sandcat under test.
type sandcatServer struct {
	*child
	API string // host:port of the HTTP API ("" for a gateway alone)
	WS  string // host:port of the WebSocket gateway
}

func startSandcat(ctx context.Context, o sandcatOpts) (*sandcatServer, error) {
	apiPort, err := freePort()
	if err != nil {
		return nil, err
	}
	wsPort, err := freePort()
	if err != nil {
		return nil, err
	}
	if o.Component == "" {
		o.Component = "all"
	}
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "component: %s\ndata_dir: %q\n", o.Component, o.DataDir)
	fmt.Fprintf(&b, "log:\n  level: %s\n  output: console\n", o.LogLevel)
	fmt.Fprintf(&b, "server:\n  host: 127.0.0.1\n  port: %d\n  jwt_secret: %q\n", apiPort, o.Secret)
	fmt.Fprintf(&b, "websocket:\n  protocol: ws\n  host: 127.0.0.1\n  port: %d\n", wsPort)
	if o.SMTP != "" {
		fmt.Fprintf(&b, "mail:\n  server: %q\n  tls: none\n  from: bench@sandcat.localhost\n", o.SMTP)
	}
	b.WriteString(o.Extra)
	cfgPath := filepath.Join(o.Dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	exe := o.Exe
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	name := "sandcat-" + o.Component
	env := []string{roleEnv + "=serve", "SANDCAT_BENCH_CONFIG=" + cfgPath}
	if o.CPUProfile != "" {
		abs, err := filepath.Abs(o.CPUProfile)
		if err != nil {
			return nil, err
		}
		env = append(env, "SANDCAT_BENCH_CPUPROFILE="+abs)
	}
	c, err := startChild(name, exe, nil, env, filepath.Join(o.Dir, name+".log"))
	if err != nil {
		return nil, err
	}
	s := &sandcatServer{child: c, WS: fmt.Sprintf("127.0.0.1:%d", wsPort)}
	health := "http://" + s.WS + "/health"
	if o.Component == "all" {
		s.API = fmt.Sprintf("127.0.0.1:%d", apiPort)
		health = "http://" + s.API + "/health"
	}
	if err := waitHTTP(ctx, c, health, 60*time.Second); err != nil {
		c.Stop(5 * time.Second)
		return nil, err
	}
	return s, nil
}

// serveMain runs a Sandcat from the config in SANDCAT_BENCH_CONFIG until
// SIGTERM: the same code path as cmd/sandcat, in its own process so that its
// RSS and CPU are its own.
func serveMain() int {
	path := os.Getenv("SANDCAT_BENCH_CONFIG")
	// The tool's own variables are no config keys (the loader ignores them
	// too).
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SANDCAT_BENCH_") {
			env = append(env, kv)
		}
	}
	cfg, err := config.Load(path, true, env)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	log, closer, err := observe.NewLogger(cfg.Log.Level, cfg.Log.Output)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer closer.Close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if p := os.Getenv("SANDCAT_BENCH_CPUPROFILE"); p != "" {
		go profileOnSignal(ctx, p, log)
	}
	if err := app.Run(ctx, cfg, log, "bench"); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("sandcat stopped", "err", err)
		return 1
	}
	return 0
}

// relayMain runs the bare relay on SANDCAT_BENCH_LISTEN until SIGTERM.
func relayMain() int {
	ln, err := net.Listen("tcp", os.Getenv("SANDCAT_BENCH_LISTEN"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serveRelay(ctx, ln, slog.Default()); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// startRelay starts the relay as a child process; it answers /relay/... only,
// so readiness is a TCP connect.
func startRelay(ctx context.Context, dir string) (*child, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	exe, err := os.Executable()
	if err != nil {
		return nil, "", err
	}
	c, err := startChild("relay", exe, nil, []string{roleEnv + "=relay", "SANDCAT_BENCH_LISTEN=" + addr},
		filepath.Join(dir, "relay.log"))
	if err != nil {
		return nil, "", err
	}
	if err := waitTCP(ctx, c, addr, 20*time.Second); err != nil {
		c.Stop(time.Second)
		return nil, "", err
	}
	return c, addr, nil
}

func waitTCP(ctx context.Context, c *child, addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if c.exited() {
			return c.exitedErr()
		}
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			_ = conn.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s did not listen on %s within %s", c.name, addr, timeout)
}

// profileOnSignal writes a CPU profile to path from SIGUSR1 to SIGUSR2 (the
// tool sends them around the measured window of a step).
func profileOnSignal(ctx context.Context, path string, log *slog.Logger) {
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGUSR1, syscall.SIGUSR2)
	defer signal.Stop(ch)
	var f *os.File
	for {
		select {
		case <-ctx.Done():
			if f != nil {
				pprof.StopCPUProfile()
				_ = f.Close()
			}
			return
		case s := <-ch:
			switch {
			case s == syscall.SIGUSR1 && f == nil:
				var err error
				if f, err = os.Create(path); err != nil {
					log.Error("cpu profile", "err", err)
					continue
				}
				if err := pprof.StartCPUProfile(f); err != nil {
					log.Error("cpu profile", "err", err)
					_ = f.Close()
					f = nil
				}
			case s == syscall.SIGUSR2 && f != nil:
				pprof.StopCPUProfile()
				_ = f.Close()
				f = nil
				log.Warn("cpu profile written", "path", path)
			}
		}
	}
}
