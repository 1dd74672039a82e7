package appservice_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/appservice"
)

// hsDouble stands in for the homeserver's ping endpoint the way the spec
// (v1.7) and Synapse describe it: it checks the as_token and the id, then
// pings the appservice at the registration url with its hs_token.
type hsDouble struct {
	mu  sync.Mutex
	reg hsReg
}

// hsReg is the registration the homeserver double loaded.
type hsReg struct {
	id      string // registration id
	asToken string // as_token of the registration
	hsToken string // hs_token of the registration
	asURL   string // registration url ("" = null)
	noPing  bool   // a homeserver without the endpoint (Matrix < v1.7)
}

func (d *hsDouble) set(f func(r *hsReg)) { d.mu.Lock(); f(&d.reg); d.mu.Unlock() }

func writeErr(w http.ResponseWriter, status int, body map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func (d *hsDouble) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	reg := d.reg
	d.mu.Unlock()
	rest, ok := strings.CutPrefix(r.URL.Path, "/_matrix/client/v1/appservice/")
	pathID, ok2 := strings.CutSuffix(rest, "/ping")
	if reg.noPing || !ok || !ok2 || r.Method != http.MethodPost {
		writeErr(w, 404, map[string]any{"errcode": "M_UNRECOGNIZED", "error": "Unrecognized request"})
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+reg.asToken {
		writeErr(w, 401, map[string]any{"errcode": "M_UNKNOWN_TOKEN", "error": "Unrecognised access token."})
		return
	}
	if pathID != reg.id {
		writeErr(w, 403, map[string]any{"errcode": "M_FORBIDDEN", "error": "Provided token is not allowed to ping this appservice"})
		return
	}
	if reg.asURL == "" {
		writeErr(w, 400, map[string]any{"errcode": "M_URL_NOT_SET", "error": "Application service URL is not set"})
		return
	}
	body, _ := io.ReadAll(r.Body)
	start := time.Now()
	req, _ := http.NewRequestWithContext(r.Context(), http.MethodPost, reg.asURL+"/_matrix/app/v1/ping", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+reg.hsToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		writeErr(w, 502, map[string]any{"errcode": "M_CONNECTION_FAILED", "error": "Failed to connect to application service"})
		return
	}
	defer resp.Body.Close()
	asBody, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		writeErr(w, 502, map[string]any{"errcode": "M_BAD_STATUS", "error": "HTTP " + resp.Status,
			"status": resp.StatusCode, "body": string(asBody)})
		return
	}
	writeErr(w, 200, map[string]any{"duration_ms": time.Since(start).Milliseconds()})
}

func TestPing(t *testing.T) {
	double := &hsDouble{}
	hs := httptest.NewServer(double)
	defer hs.Close()
	h := newHarness(t, filepath.Join(t.TempDir(), "as.db"), appservice.Config{HomeserverURL: hs.URL})

	closed := httptest.NewServer(http.NotFoundHandler())
	closedURL := closed.URL
	closed.Close()
	notAS := httptest.NewServer(http.NotFoundHandler()) // answers, but is not an appservice
	defer notAS.Close()
	// Another bridge process that holds the same hs_token.
	other := newHarness(t, filepath.Join(t.TempDir(), "other.db"), appservice.Config{})

	good := func(d *hsReg) {
		*d = hsReg{id: "sandcat", asToken: asToken, hsToken: hsToken, asURL: h.url}
	}
	cases := []struct {
		name        string
		change      func(d *hsReg)
		hsURL       string // homeserver_url of the bridge ("" = the double)
		wantErr     []string
		errcode     string
		unsupported bool
	}{
		{name: "ok", change: func(*hsReg) {}},
		{name: "wrong as_token", change: func(d *hsReg) { d.asToken = "registration-has-another" },
			wantErr: []string{"appservice.as_token", "app_service_config_files"}, errcode: "M_UNKNOWN_TOKEN"},
		{name: "wrong id", change: func(d *hsReg) { d.id = "other-id" },
			wantErr: []string{`appservice.id "sandcat"`}, errcode: "M_FORBIDDEN"},
		{name: "wrong hs_token", change: func(d *hsReg) { d.hsToken = "registration-has-another" },
			wantErr: []string{"appservice.hs_token", "HTTP 403"}, errcode: "M_BAD_STATUS"},
		{name: "registration url unreachable", change: func(d *hsReg) { d.asURL = closedURL },
			wantErr: []string{"cannot reach the url of the registration", "appservice.listen"}, errcode: "M_CONNECTION_FAILED"},
		{name: "registration url not the appservice API", change: func(d *hsReg) { d.asURL = notAS.URL + "/x" },
			wantErr: []string{"wrong port or path"}, errcode: "M_BAD_STATUS"},
		{name: "registration url null", change: func(d *hsReg) { d.asURL = "" },
			wantErr: []string{"registration has no url"}, errcode: "M_URL_NOT_SET"},
		{name: "registration url is another bridge", change: func(d *hsReg) { d.asURL = other.url },
			wantErr: []string{"another process"}},
		{name: "homeserver without ping", change: func(d *hsReg) { d.noPing = true },
			wantErr: []string{"does not implement the appservice ping"}, errcode: "M_UNRECOGNIZED", unsupported: true},
		{name: "homeserver_url unreachable", change: func(*hsReg) {}, hsURL: closedURL,
			wantErr: []string{"cannot reach the homeserver", "appservice.homeserver_url", closedURL}},
		{name: "homeserver_url not a homeserver", change: func(*hsReg) {}, hsURL: notAS.URL,
			wantErr: []string{"appservice.homeserver_url", "does not answer like a Matrix homeserver"}, unsupported: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			double.set(good)
			double.set(tc.change)
			srv := h.srv
			if tc.hsURL != "" {
				var err error
				srv, err = appservice.New(appservice.Config{ID: "sandcat", HSToken: hsToken, ASToken: asToken,
					HomeserverURL: tc.hsURL}, h.store.Appservice(), h.rec, quietLog())
				if err != nil {
					t.Fatal(err)
				}
			}
			d, err := srv.Ping(context.Background())
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Ping: %v", err)
				}
				if d < 0 {
					t.Fatalf("Ping duration %v", d)
				}
				return
			}
			if err == nil {
				t.Fatalf("Ping succeeded, want an error mentioning %q", tc.wantErr)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
			var pe *appservice.PingError
			if tc.errcode != "" && (!errors.As(err, &pe) || pe.ErrCode != tc.errcode) {
				t.Errorf("error %v: want a PingError with errcode %s", err, tc.errcode)
			}
			if got := errors.Is(err, appservice.ErrPingUnsupported); got != tc.unsupported {
				t.Errorf("errors.Is(err, ErrPingUnsupported) = %v, want %v", got, tc.unsupported)
			}
		})
	}
}
