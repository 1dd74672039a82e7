package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// findCentrifugo returns the Centrifugo binary: the flag's path, else
// $SANDCAT_BENCH_CACHE/bin/centrifugo (where run.sh builds it), else $PATH.
func findCentrifugo(flagPath string) (string, error) {
	if flagPath != "" {
		if _, err := os.Stat(flagPath); err != nil {
			return "", fmt.Errorf("centrifugo: %w", err)
		}
		return flagPath, nil
	}
	if p := filepath.Join(cacheDir(), "bin", "centrifugo"); fileExists(p) {
		return p, nil
	}
	if p, err := exec.LookPath("centrifugo"); err == nil {
		return p, nil
	}
	return "", errors.New("centrifugo: not built (run cmd/sandcat-bench/run.sh, which builds v6.9.1 once, or pass -centrifugo PATH)")
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// cacheDir is where run.sh keeps the Centrifugo build and the tool keeps its
// fixtures: $SANDCAT_BENCH_CACHE, else ~/.cache/sandcat-bench.
func cacheDir() string {
	if d := os.Getenv("SANDCAT_BENCH_CACHE"); d != "" {
		return d
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "sandcat-bench")
	}
	return filepath.Join(os.TempDir(), "sandcat-bench")
}

// centrifugoConfig is the peer's configuration: loopback, memory engine, no
// history, anonymous clients that may subscribe and publish, and the tuned
// WebSocket buffers of baselines.md (1 KiB, write buffer pool).
func centrifugoConfig(port int) map[string]any {
	perm := map[string]any{
		"allow_subscribe_for_anonymous": true, "allow_subscribe_for_client": true,
		"allow_publish_for_anonymous": true, "allow_publish_for_client": true, "allow_publish_for_subscriber": true,
		"history_size": 0, "presence": false, "join_leave": false,
	}
	return map[string]any{
		"http_server": map[string]any{"address": "127.0.0.1", "port": port},
		"log":         map[string]any{"level": "error"},
		"engine":      map[string]any{"type": "memory"},
		"client": map[string]any{
			"allow_anonymous_connect_without_token": true,
			"allowed_origins":                       []string{"*"},
		},
		"channel":     map[string]any{"without_namespace": perm},
		"websocket":   map[string]any{"read_buffer_size": 1024, "write_buffer_size": 1024, "use_write_buffer_pool": true},
		"health":      map[string]any{"enabled": true},
		"usage_stats": map[string]any{"disabled": true},
		"shutdown":    map[string]any{"timeout": "3s"},
	}
}

// startCentrifugo starts the peer with a generated config; the WebSocket
// endpoint is ws://addr/connection/websocket.
func startCentrifugo(ctx context.Context, bin, dir string) (*child, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", err
	}
	b, err := json.MarshalIndent(centrifugoConfig(port), "", "  ")
	if err != nil {
		return nil, "", err
	}
	cfg := filepath.Join(dir, "centrifugo.json")
	if err := os.WriteFile(cfg, b, 0o600); err != nil {
		return nil, "", err
	}
	c, err := startChild("centrifugo", bin, []string{"--config", cfg}, nil, filepath.Join(dir, "centrifugo.log"))
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	if err := waitHTTP(ctx, c, "http://"+addr+"/health", 30*time.Second); err != nil {
		c.Stop(3 * time.Second)
		return nil, "", err
	}
	return c, addr, nil
}
