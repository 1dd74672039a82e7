package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/client"
	"github.com/sandcat-im/sandcat/im/wire"
)

// A fresh start on an empty data directory answers /health.
func TestFreshStart(t *testing.T) {
	in := newInstance(t)
	p := in.spawn()
	took := p.waitHealthy()
	t.Logf("a fresh start answered /health after %v", took.Round(time.Millisecond))
	for _, f := range []string{"sandcat.db", "bus.db", "jwt_secret"} {
		if _, err := os.Stat(filepath.Join(in.dir, f)); err != nil {
			t.Errorf("data directory: %v", err)
		}
	}
	if !strings.Contains(p.log.all(), `msg="sandcat started"`) {
		t.Errorf("no start line in the log:\n%s", p.log.tail(20))
	}
	p.signal(syscall.SIGTERM)
	if code := p.wait(30 * time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM", code)
	}
}

// SIGTERM: the process stops accepting, finishes a request in flight (a
// slow upload), closes WebSocket connections with 1001 and exits 0; the
// upload is stored.
func TestGracefulShutdown(t *testing.T) {
	in := newInstance(t)
	p := in.start()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	ann := p.register(ctx, "Ann")
	ws, err := client.Dial(ctx, ann.Login.WSAddr, ann.ID, wire.PlatformDesktop, ann.Login.Token)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()

	// The upload: 40 MiB through a pipe, so the test decides when the body ends.
	data := make([]byte, 40<<20)
	_, _ = rand.Read(data)
	const before = 30 << 20 // sent before SIGTERM: more than any socket buffers hold
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, in.apiBase()+"/file/upload", pr)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Authorization", "Bearer "+ann.Login.Token)
	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		done <- result{resp.StatusCode, string(b), err}
	}()
	part, err := mw.CreateFormFile("file", "big.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := part.Write(data[:before]); err != nil {
		t.Fatalf("upload, first part: %v", err)
	}

	p.signal(syscall.SIGTERM)
	// The listeners close first: once /health is refused, the shutdown has
	// begun while the upload is still in flight.
	hc := &http.Client{Timeout: 2 * time.Second}
	for deadline := time.Now().Add(30 * time.Second); ; {
		resp, err := hc.Get(in.apiBase() + "/health")
		if err != nil {
			break
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatal("the API still accepts requests 30 s after SIGTERM")
		}
		time.Sleep(10 * time.Millisecond)
	}
	select {
	case r := <-done:
		t.Fatalf("the upload ended before its body did: %+v", r)
	case <-p.exited:
		t.Fatalf("the process exited with a request in flight: %v", p.err)
	default:
	}
	if _, err := part.Write(data[before:]); err != nil {
		t.Fatalf("upload, rest: %v", err)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	_ = pw.Close()
	r := <-done
	if r.err != nil || r.status != http.StatusOK || r.body == "" {
		t.Fatalf("the in-flight upload: status %d body %q err %v", r.status, r.body, r.err)
	}
	if code := p.wait(60 * time.Second); code != 0 {
		t.Fatalf("exit status %d after SIGTERM, want 0", code)
	}
	if _, err := ws.Recv(ctx); !errors.Is(err, client.ErrClosed) || ws.CloseCode() != 1001 {
		t.Errorf("the WebSocket at shutdown: %v, close code %d, want 1001", err, ws.CloseCode())
	}

	// The upload was stored: it is served after a restart.
	p2 := in.start()
	p2.login(ctx, ann)
	got, _, err := ann.API.Download(ctx, r.body)
	if err != nil {
		t.Fatalf("download after restart: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("downloaded %d bytes, not the %d uploaded", len(got), len(data))
	}
	p2.signal(syscall.SIGTERM)
	if code := p2.wait(30 * time.Second); code != 0 {
		t.Fatalf("second run: exit status %d", code)
	}
}

// A bad configuration: exit status 2 and every problem listed, the file's
// and the environment's.
func TestBadConfig(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(`component: everything
log:
  level: loud
server:
  port: 70000
websocket:
  protocol: ftp
  ping_interval: -1
mail:
  tls: maybe
colour: blue
`), 0o600); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.yml")
	if err := os.WriteFile(good, []byte("data_dir: "+filepath.Join(dir, "data")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  []string
		want []string
	}{
		{
			name: "every problem of the file and the environment",
			args: []string{"-p", cfg},
			env:  []string{"SANDCAT_SEQUENCE_STEP=lots", "SANDCAT_REDIS_PORT=99999"},
			want: []string{"component", "everything", "log.level", "loud", "server.port", "70000", "websocket.protocol", "ftp",
				"websocket.ping_interval", "mail.tls", "maybe", "colour", "SANDCAT_SEQUENCE_STEP", "redis.port"},
		},
		{
			name: "a missing file named with -p",
			args: []string{"-p", filepath.Join(dir, "nope.yml")},
			want: []string{"nope.yml"},
		},
		{
			name: "an unknown command",
			args: []string{"-p", good, "fly"},
			want: []string{"usage"},
		},
		{
			name: "an unknown flag",
			args: []string{"--frobnicate"},
			want: []string{"frobnicate", "usage"},
		},
	}
	bin := sandcatBinary(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(bin, tt.args...)
			cmd.Dir = dir
			cmd.Env = append(cleanEnv(), tt.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 2 {
				t.Fatalf("exit: %v, want status 2\n%s", err, stderr.String())
			}
			out := stderr.String()
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("stderr does not mention %q:\n%s", w, out)
				}
			}
			if strings.Count(out, "\n") > 40 {
				t.Errorf("stderr is long (%d lines):\n%s", strings.Count(out, "\n"), out)
			}
		})
	}
}
