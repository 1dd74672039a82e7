// Package redistest gives tests Redis: the shared server of this machine
// under a unique key prefix (Client), or a private redis-server process that
// a test may FLUSHALL or restart (Server). A test that needs Redis fails,
// never skips, when it cannot be reached.
package redistest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Addr is the shared server: SANDCAT_TEST_REDIS, default 127.0.0.1:6379.
func Addr() string {
	if a := os.Getenv("SANDCAT_TEST_REDIS"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

// Prefix returns a fresh key prefix "sandcat_test_<random>:".
func Prefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "sandcat_test_" + hex.EncodeToString(b[:]) + ":"
}

// Client returns a client of the shared server and a fresh key prefix; the
// keys under the prefix are deleted and the client closed at cleanup.
func Client(t testing.TB) (*redis.Client, string) {
	t.Helper()
	rdb := redis.NewClient(&redis.Options{Addr: Addr()})
	if err := rdb.Ping(context.Background()).Err(); err != nil {
		t.Fatalf("redistest: redis at %s: %v (Redis must run for these tests)", Addr(), err)
	}
	prefix := Prefix()
	t.Cleanup(func() {
		if err := DeletePrefix(context.Background(), rdb, prefix); err != nil {
			t.Logf("redistest: delete keys %s*: %v", prefix, err)
		}
		_ = rdb.Close()
	})
	return rdb, prefix
}

// DeletePrefix deletes every key that starts with prefix (SCAN + UNLINK).
func DeletePrefix(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	var cursor uint64
	for {
		keys, next, err := rdb.Scan(ctx, cursor, prefix+"*", 1000).Result()
		if err != nil {
			return fmt.Errorf("redistest: scan %s*: %w", prefix, err)
		}
		if len(keys) > 0 {
			if err := rdb.Unlink(ctx, keys...).Err(); err != nil {
				return fmt.Errorf("redistest: unlink: %w", err)
			}
		}
		if next == 0 {
			return nil
		}
		cursor = next
	}
}

// Server is a private redis-server process without persistence: a restart
// loses every key and the script cache, as FLUSHALL plus SCRIPT FLUSH do.
type Server struct {
	port int
	cmd  *exec.Cmd
	bin  string
}

// NewServer starts a private redis-server (SANDCAT_REDIS_SERVER, default
// redis-server from PATH) on a free loopback port, stopped at cleanup.
func NewServer(t testing.TB) *Server {
	t.Helper()
	bin := os.Getenv("SANDCAT_REDIS_SERVER")
	if bin == "" {
		bin = "redis-server"
	}
	path, err := exec.LookPath(bin)
	if err != nil {
		t.Fatalf("redistest: %s not found: %v (install redis-server for these tests)", bin, err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	s := &Server{port: port, bin: path}
	if err := s.start(); err != nil {
		t.Fatalf("redistest: %v", err)
	}
	t.Cleanup(s.stop)
	return s
}

// Addr is the server's host:port.
func (s *Server) Addr() string { return "127.0.0.1:" + strconv.Itoa(s.port) }

// Client returns a client of the server, closed at cleanup.
func (s *Server) Client(t testing.TB) *redis.Client {
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// Restart stops the server (nothing saved) and starts it again on the same
// port: every key and the script cache are gone.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.stop()
	if err := s.start(); err != nil {
		t.Fatalf("redistest: restart: %v", err)
	}
}

func (s *Server) start() error {
	s.cmd = exec.Command(s.bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(s.port),
		"--save", "", "--appendonly", "no", "--dir", os.TempDir())
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", s.bin, err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: s.Addr(), MaxRetries: -1})
	defer rdb.Close()
	var err error
	for range 200 { // readiness, not a timing assertion: about 10 s at most
		if err = rdb.Ping(context.Background()).Err(); err == nil {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.stop()
	return fmt.Errorf("redis-server on port %d not ready: %w", s.port, err)
}

// stop kills the server (a crash: nothing is saved).
func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
	s.cmd = nil
}
