// Package observe is what operators see of a Sandcat process: slog logging to
// the console or daily files, Prometheus metrics per HTTP route, and the
// /health and /ready endpoints.
package observe

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// NewLogger builds the process logger: output "console" writes text to
// stderr; any other value is a directory of daily files sandcat.YYYY-MM-DD.log.
// The returned closer closes the current file.
func NewLogger(level, output string) (*slog.Logger, io.Closer, error) {
	var lv slog.Level
	switch strings.ToLower(level) {
	case "trace", "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if output == "" || output == "console" {
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), io.NopCloser(nil), nil
	}
	if err := os.MkdirAll(output, 0o750); err != nil {
		return nil, nil, fmt.Errorf("log: create %s: %w", output, err)
	}
	w := &dailyFile{dir: output, now: time.Now}
	return slog.New(slog.NewJSONHandler(w, opts)), w, nil
}

// dailyFile writes to <dir>/sandcat.<UTC date>.log, opening a new file when the date changes.
type dailyFile struct {
	dir  string
	now  func() time.Time
	mu   sync.Mutex
	day  string
	file *os.File
}

func (d *dailyFile) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	day := d.now().UTC().Format("2006-01-02")
	if d.file == nil || day != d.day {
		if d.file != nil {
			_ = d.file.Close()
		}
		f, err := os.OpenFile(filepath.Join(d.dir, "sandcat."+day+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
		if err != nil {
			return 0, err
		}
		d.file, d.day = f, day
	}
	return d.file.Write(p)
}

func (d *dailyFile) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.file == nil {
		return nil
	}
	err := d.file.Close()
	d.file = nil
	return err
}
