package observe

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
)

func TestReady(t *testing.T) {
	cases := []struct {
		name   string
		checks []Check
		status int
		body   string
	}{
		{"none", nil, 200, `"ready"`},
		{"ok", []Check{{"db", func(context.Context) error { return nil }}}, 200, `"ready"`},
		{"down", []Check{{"db", func(context.Context) error { return nil }},
			{"redis", func(context.Context) error { return errors.New("refused") }}}, 503, `"redis":"refused"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			Ready(tc.checks, time.Second)(rec, httptest.NewRequest("GET", "/ready", nil))
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.body) {
				t.Errorf("got %d %s", rec.Code, rec.Body.String())
			}
		})
	}
}

func TestMetricsPerRouteTemplate(t *testing.T) {
	m := NewMetrics()
	r := mux.NewRouter()
	r.Use(m.Middleware)
	r.HandleFunc("/user/{id}", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(404) })
	r.Handle("/metrics", m.Handler())
	srv := httptest.NewServer(r)
	defer srv.Close()
	for _, id := range []string{"a", "b"} {
		resp, err := http.Get(srv.URL + "/user/" + id)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err := http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `sandcat_http_requests_total{method="GET",route="/user/{id}",status="404"} 2`
	if !strings.Contains(string(b), want) {
		t.Errorf("metrics lack %s", want)
	}
}

func TestDailyFile(t *testing.T) {
	dir := t.TempDir()
	day := time.Date(2026, 1, 2, 23, 59, 0, 0, time.UTC)
	w := &dailyFile{dir: dir, now: func() time.Time { return day }}
	_, _ = w.Write([]byte("one\n"))
	day = day.Add(2 * time.Minute)
	_, _ = w.Write([]byte("two\n"))
	_ = w.Close()
	for name, want := range map[string]string{"sandcat.2026-01-02.log": "one\n", "sandcat.2026-01-03.log": "two\n"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(b) != want {
			t.Errorf("%s: %q %v", name, b, err)
		}
	}
}
