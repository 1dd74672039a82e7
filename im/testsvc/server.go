// Package testsvc starts real servers for tests as child processes:
// FerretDB (MongoDB wire protocol), kfake (Kafka wire protocol), MinIO,
// Consul, and the Matrix homeservers Synapse (synapse.go, from a Debian sid
// chroot) and Dendrite (dendrite.go). Each listens on 127.0.0.1 on free
// ports, keeps its data in a t.TempDir() and its output in files beside the
// data, and is stopped (SIGTERM, then SIGKILL) by t.Cleanup.
//
// The binaries are built once per machine by cmd/testservers/build.sh
// (`make testservers`) into $SANDCAT_TESTBIN, else
// $HOME/.cache/sandcat-testbin. A missing binary fails the test with the
// command that builds it; it never skips.
package testsvc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// EnvBinDir names the environment variable that overrides the folder of
// the test server binaries.
const EnvBinDir = "SANDCAT_TESTBIN"

const (
	readyTimeout = 90 * time.Second // under a loaded 2-core CI machine
	stopTimeout  = 15 * time.Second // graceful stop before SIGKILL
	tailLines    = 30
)

// BinDir returns the folder that holds the test server binaries:
// $SANDCAT_TESTBIN, else $HOME/.cache/sandcat-testbin.
func BinDir() (string, error) {
	if d := os.Getenv(EnvBinDir); d != "" {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("testsvc: neither $%s nor $HOME is set: %w", EnvBinDir, err)
	}
	return filepath.Join(home, ".cache", "sandcat-testbin"), nil
}

// Bin returns the path of the test server binary name (ferretdb, kfake,
// minio or consul). It fails the test, with the command that builds it,
// when the binary is missing.
func Bin(t testing.TB, name string) string {
	t.Helper()
	dir, err := BinDir()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	st, err := os.Stat(p)
	if err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
		return p
	}
	t.Fatalf("testsvc: test server binary %q not found at %s (%v).\nBuild the test servers (a few minutes, once per machine) with:\n\t%s",
		name, p, err, buildCommand(dir))
	return ""
}

// buildCommand is the shell command that builds the binaries into dir.
func buildCommand(dir string) string {
	script := "cmd/testservers/build.sh"
	if root := repoRoot(); root != "" {
		script = filepath.Join(root, script)
	}
	return fmt.Sprintf("%s %q   (or: make testservers)", script, dir)
}

// repoRoot walks up from the working directory to the folder holding
// cmd/testservers/build.sh; "" when there is none.
func repoRoot() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "cmd", "testservers", "build.sh")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Server is one test server process. Stop and Start (or Restart) run it
// again on the same ports with the same data directory; Kill simulates a
// crash. All methods must be called from the test's goroutine.
type Server struct {
	name  string
	bin   string
	dir   string   // per-server temp dir: data and logs
	env   []string // added to the test's environment
	args  func() []string
	ready func(ctx context.Context, p *process) error
	// pick, when set, chooses fresh ports before the first start and again
	// when that start finds one taken; it is dropped after a start succeeds
	// so that later starts reuse the same ports.
	pick func() error

	starts int
	proc   *process
}

type process struct {
	cmd        *exec.Cmd
	stdoutPath string
	stderrPath string
	exited     chan struct{}
	waitErr    error
}

// Dir is the server's temp folder: its data directory and its output
// (NAME-N.stdout.log, NAME-N.stderr.log for the N-th start) are in it.
func (s *Server) Dir() string { return s.dir }

// Running reports whether the server's process is running.
func (s *Server) Running() bool {
	if s.proc == nil {
		return false
	}
	select {
	case <-s.proc.exited:
		return false
	default:
		return true
	}
}

// newServer prepares a server; the caller fills args and ready and calls
// Start. Its cleanup stops the process before the temp dir is removed.
func newServer(t testing.TB, name string) *Server {
	t.Helper()
	s := &Server{name: name, bin: Bin(t, name), dir: t.TempDir()}
	t.Cleanup(func() {
		if t.Failed() && s.proc != nil {
			t.Logf("testsvc: %s stderr tail (%s):\n%s", s.name, s.proc.stderrPath, tail(s.proc.stderrPath, tailLines))
		}
		if err := s.stop(syscall.SIGTERM); err != nil {
			t.Logf("testsvc: stopping %s: %v", s.name, err)
		}
	})
	return s
}

// Start starts the server and waits until it is ready. It fails the test
// when the server exits early or is not ready in time.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	if s.Running() {
		t.Fatalf("testsvc: %s is already running", s.name)
	}
	if err := s.start(); err != nil {
		t.Fatal(err)
	}
}

// Stop stops the server gracefully (SIGTERM; SIGKILL after 15 s), keeping
// its data directory for a later Start.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	if err := s.stop(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
}

// Kill stops the server with SIGKILL, as a crash would.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if err := s.stop(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
}

// Restart stops the server gracefully and starts it again.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.Start(t)
}

func (s *Server) start() error {
	const attempts = 3
	for i := 1; ; i++ {
		if s.pick != nil {
			if err := s.pick(); err != nil {
				return err
			}
		}
		p, err := s.startOnce()
		if err == nil {
			s.pick = nil
			return nil
		}
		if p == nil || s.pick == nil || i == attempts ||
			!strings.Contains(tail(p.stderrPath, tailLines), "already in use") {
			return err
		}
	}
}

// startOnce starts the process and waits until it is ready; p is the
// process when one was started.
func (s *Server) startOnce() (p *process, err error) {
	s.starts++
	base := filepath.Join(s.dir, fmt.Sprintf("%s-%d", s.name, s.starts))
	p = &process{
		stdoutPath: base + ".stdout.log",
		stderrPath: base + ".stderr.log",
		exited:     make(chan struct{}),
	}
	stdout, err := os.Create(p.stdoutPath)
	if err != nil {
		return nil, fmt.Errorf("testsvc: %s: %w", s.name, err)
	}
	defer stdout.Close()
	stderr, err := os.Create(p.stderrPath)
	if err != nil {
		return nil, fmt.Errorf("testsvc: %s: %w", s.name, err)
	}
	defer stderr.Close()

	args := s.args()
	cmd := exec.Command(s.bin, args...)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdout = stdout
	cmd.Stderr = stderr
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("testsvc: start %s: %w", s.name, err)
	}
	p.cmd = cmd
	s.proc = p
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), readyTimeout)
	defer cancel()
	if err := s.ready(ctx, p); err != nil {
		_ = s.stop(syscall.SIGKILL)
		s.proc = nil // its output is in the error; cleanup need not show it again
		return p, fmt.Errorf("testsvc: %s did not become ready: %w\ncommand: %s %s\nstderr tail (%s):\n%s\nstdout tail (%s):\n%s",
			s.name, err, s.bin, strings.Join(args, " "),
			p.stderrPath, tail(p.stderrPath, tailLines), p.stdoutPath, tail(p.stdoutPath, tailLines))
	}
	return p, nil
}

// stop signals the process and waits for it; SIGKILL after stopTimeout.
func (s *Server) stop(sig syscall.Signal) error {
	p := s.proc
	if p == nil {
		return nil
	}
	select {
	case <-p.exited:
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("testsvc: signal %s: %w", s.name, err)
	}
	select {
	case <-p.exited:
		return nil
	case <-time.After(stopTimeout):
	}
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("testsvc: kill %s: %w", s.name, err)
	}
	<-p.exited
	return fmt.Errorf("testsvc: %s ignored %v for %s and was killed", s.name, sig, stopTimeout)
}

// poll calls check until it returns nil, the context ends or the process
// exits; the error names the last failure.
func poll(ctx context.Context, p *process, check func(ctx context.Context) error) error {
	delay := 20 * time.Millisecond
	for {
		err := check(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("process exited (%v); last check: %w", p.waitErr, err)
		case <-ctx.Done():
			return fmt.Errorf("not ready after %s; last check: %w", readyTimeout, err)
		case <-time.After(delay):
		}
		delay = min(delay*2, 250*time.Millisecond)
	}
}

// firstLine waits for the first complete line the process writes on stdout.
func firstLine(ctx context.Context, p *process) (string, error) {
	var line string
	err := poll(ctx, p, func(context.Context) error {
		b, err := os.ReadFile(p.stdoutPath)
		if err != nil {
			return err
		}
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return errors.New("no line on stdout yet")
		}
		line = strings.TrimSpace(string(b[:i]))
		return nil
	})
	return line, err
}

// dialCheck returns a check that succeeds once addr accepts TCP connections.
func dialCheck(addr string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		d := net.Dialer{Timeout: time.Second}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		return c.Close()
	}
}

// freePorts returns n distinct ports that are free on 127.0.0.1 now. Another
// process may take one before the server binds it: Server.start then picks
// again.
func freePorts(n int) ([]int, error) {
	ls := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("testsvc: free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(%v)", err)
	}
	b = bytes.TrimRight(b, "\n")
	if len(b) == 0 {
		return "(empty)"
	}
	lines := bytes.Split(b, []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}
