package main

// Tests of the real binary: it is built once per test binary (go build into
// a temporary directory) and run as a child process with a generated config
// (free ports on 127.0.0.1, a temporary data directory). Verification codes
// are read from its stderr, where the embedded default logs them at WARN.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/client"
)

// binDir holds the binary built by TestMain's first user (sandcatBinary).
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binError error
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sandcat-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binDir = dir
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// sandcatBinary builds ./cmd/sandcat once and returns the binary's path.
func sandcatBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		goBin, err := exec.LookPath("go")
		if err != nil {
			goBin = "/usr/local/go/bin/go"
		}
		binPath = filepath.Join(binDir, "sandcat")
		cmd := exec.Command(goBin, "build", "-o", binPath, ".")
		out, err := cmd.CombinedOutput()
		if err != nil {
			binError = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binError != nil {
		t.Fatal(binError)
	}
	return binPath
}

// freePort returns a port that was free a moment ago on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// instance is a data directory and a config for the binary; start runs it.
type instance struct {
	t       *testing.T
	dir     string // data directory
	config  string // config file path
	apiPort int
	wsPort  int
	env     []string // SANDCAT_* overrides given to the process
}

func newInstance(t *testing.T) *instance {
	t.Helper()
	root := t.TempDir()
	in := &instance{t: t, dir: filepath.Join(root, "data"), config: filepath.Join(root, "config.yml"),
		apiPort: freePort(t), wsPort: freePort(t)}
	cfg := fmt.Sprintf(`component: all
data_dir: %s
log:
  level: info
  output: console
server:
  host: 127.0.0.1
  port: %d
websocket:
  protocol: ws
  host: 127.0.0.1
  port: %d
`, in.dir, in.apiPort, in.wsPort)
	if err := os.WriteFile(in.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return in
}

func (in *instance) apiBase() string { return fmt.Sprintf("http://127.0.0.1:%d", in.apiPort) }
func (in *instance) wsAddr() string  { return fmt.Sprintf("127.0.0.1:%d", in.wsPort) }

// proc is a running sandcat process.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	in     *instance
	log    *lineLog
	exited chan struct{}
	state  *os.ProcessState
	err    error
}

// start runs the binary with the instance's config and waits for /health.
func (in *instance) start() *proc {
	p := in.spawn()
	p.waitHealthy()
	return p
}

// spawn runs the binary without waiting for it.
func (in *instance) spawn(args ...string) *proc {
	t := in.t
	t.Helper()
	bin := sandcatBinary(t)
	cmd := exec.Command(bin, append([]string{"-p", in.config}, args...)...)
	cmd.Dir = filepath.Dir(in.config)
	cmd.Env = append(cleanEnv(), in.env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, in: in, log: newLineLog(), exited: make(chan struct{})}
	go func() {
		p.log.consume(stderr)
		p.err = cmd.Wait()
		p.state = cmd.ProcessState
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("sandcat stderr (pid %d):\n%s", cmd.Process.Pid, p.log.tail(60))
		}
	})
	return p
}

// cleanEnv is the environment without SANDCAT_ overrides of the caller.
func cleanEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SANDCAT_") {
			out = append(out, kv)
		}
	}
	return out
}

// waitHealthy polls GET /health until it answers 200; it fails after 60 s
// or when the process exits. It returns how long it took.
func (p *proc) waitHealthy() time.Duration {
	t := p.t
	t.Helper()
	start := time.Now()
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := c.Get(p.in.apiBase() + "/health")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(start)
			}
		}
		select {
		case <-p.exited:
			t.Fatalf("sandcat exited before answering /health: %v\n%s", p.err, p.log.tail(40))
		case <-time.After(20 * time.Millisecond):
		}
		if time.Since(start) > 60*time.Second {
			t.Fatalf("sandcat did not answer /health within 60 s\n%s", p.log.tail(40))
		}
	}
}

// signal sends sig to the process.
func (p *proc) signal(sig os.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for the process to exit (at most d) and returns its exit code
// (-1 when killed by a signal).
func (p *proc) wait(d time.Duration) int {
	p.t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		p.t.Fatalf("sandcat did not exit within %v\n%s", d, p.log.tail(40))
	}
	return p.state.ExitCode()
}

// kill is SIGKILL and wait.
func (p *proc) kill() {
	p.t.Helper()
	p.signal(syscall.SIGKILL)
	p.wait(30 * time.Second)
}

// ---------------------------------------------------------------------------
// stderr

// lineLog keeps the process's stderr lines and the verification codes in them.
type lineLog struct {
	mu    sync.Mutex
	lines []string
	codes map[string]string
	wake  chan struct{} // closed and replaced on every line
}

func newLineLog() *lineLog {
	return &lineLog{codes: map[string]string{}, wake: make(chan struct{})}
}

// codeLine matches the WARN line of the log mailer (text handler):
// level=WARN msg="... verification code ..." email=ann@example.com code=123456
var codeLine = regexp.MustCompile(`level=WARN msg="[^"]*verification code[^"]*" email=(\S+) code=(\d{6})`)

func (l *lineLog) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		l.mu.Lock()
		l.lines = append(l.lines, line)
		if m := codeLine.FindStringSubmatch(line); m != nil {
			l.codes[m[1]] = m[2]
		}
		close(l.wake)
		l.wake = make(chan struct{})
		l.mu.Unlock()
	}
}

// code waits for the code of email (at most 30 s).
func (l *lineLog) code(email string) (string, error) {
	deadline := time.After(30 * time.Second)
	for {
		l.mu.Lock()
		c, ok := l.codes[email]
		wake := l.wake
		l.mu.Unlock()
		if ok {
			return c, nil
		}
		select {
		case <-wake:
		case <-deadline:
			return "", errors.New("no verification code logged for " + email)
		}
	}
}

func (l *lineLog) tail(n int) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	from := max(0, len(l.lines)-n)
	return strings.Join(l.lines[from:], "\n")
}

func (l *lineLog) all() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// ---------------------------------------------------------------------------
// Users

type account struct {
	ID       string
	Email    string
	Password string
	Login    *client.LoginResponse
	API      *client.HTTP
}

// register creates and logs in a user on the running process.
func (p *proc) register(ctx context.Context, name string) *account {
	t := p.t
	t.Helper()
	api := &client.HTTP{Base: p.in.apiBase()}
	email := strings.ToLower(name) + "@example.com"
	if err := api.SendCode(ctx, email); err != nil {
		t.Fatalf("send code: %v", err)
	}
	code, err := p.log.code(email)
	if err != nil {
		t.Fatal(err)
	}
	const password = "correct horse"
	u, err := api.Register(ctx, client.RegisterRequest{Name: name, Password: password, Email: email, Code: code})
	if err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	a := &account{ID: u.ID, Email: email, Password: password}
	p.login(ctx, a)
	return a
}

// login logs the account in on the running process.
func (p *proc) login(ctx context.Context, a *account) {
	p.t.Helper()
	api := &client.HTTP{Base: p.in.apiBase()}
	lr, err := api.Login(ctx, a.Email, a.Password)
	if err != nil {
		p.t.Fatalf("login %s: %v", a.Email, err)
	}
	a.Login, a.API = lr, api.WithToken(lr.Token)
}
