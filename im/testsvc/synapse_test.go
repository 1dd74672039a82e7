package testsvc_test

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/im/testsvc"
)

// recordingAppservice is a minimal appservice HTTP server that checks the
// hs_token and records the transactions and pings it receives.
type recordingAppservice struct {
	hsToken string

	mu      sync.Mutex
	txns    []string        // transaction IDs in arrival order
	seen    map[string]bool // event IDs
	events  []json.RawMessage
	pings   []string
	badAuth int
	changed chan struct{} // closed and replaced on every record
}

func newRecordingAppservice(hsToken string) *recordingAppservice {
	return &recordingAppservice{hsToken: hsToken, seen: map[string]bool{}, changed: make(chan struct{})}
}

func (a *recordingAppservice) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Authorization") != "Bearer "+a.hsToken {
		a.mu.Lock()
		a.badAuth++
		a.mu.Unlock()
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `{"errcode":"M_FORBIDDEN"}`)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	defer func() {
		close(a.changed)
		a.changed = make(chan struct{})
		a.mu.Unlock()
	}()
	switch {
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/_matrix/app/v1/transactions/"):
		txn := strings.TrimPrefix(r.URL.Path, "/_matrix/app/v1/transactions/")
		var t struct {
			Events []json.RawMessage `json:"events"`
		}
		if err := json.Unmarshal(body, &t); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		// Events are deduplicated by event ID, not by transaction ID: Synapse
		// on SQLite numbers transactions from the largest one still stored,
		// so after a restart it reuses the IDs of delivered transactions.
		a.txns = append(a.txns, txn)
		for _, raw := range t.Events {
			var ev struct {
				ID string `json:"event_id"`
			}
			if json.Unmarshal(raw, &ev) == nil && !a.seen[ev.ID] {
				a.seen[ev.ID] = true
				a.events = append(a.events, raw)
			}
		}
	case r.Method == http.MethodPost && r.URL.Path == "/_matrix/app/v1/ping":
		var p struct {
			TxnID string `json:"transaction_id"`
		}
		_ = json.Unmarshal(body, &p)
		a.pings = append(a.pings, p.TxnID)
	default:
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, `{"errcode":"M_UNRECOGNIZED"}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = io.WriteString(w, "{}")
}

// waitEvent waits until an event accepted by match has been received.
func (a *recordingAppservice) waitEvent(ctx context.Context, t *testing.T, what string, match func(ev *event.Event) bool) *event.Event {
	t.Helper()
	for {
		a.mu.Lock()
		for _, raw := range a.events {
			var ev event.Event
			if err := json.Unmarshal(raw, &ev); err == nil && match(&ev) {
				a.mu.Unlock()
				return &ev
			}
		}
		changed, n, bad := a.changed, len(a.events), a.badAuth
		a.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			t.Fatalf("appservice never received %s (%d events received, %d requests with a wrong hs_token)", what, n, bad)
		}
	}
}

func TestSynapseAppservice(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()

	asToken, hsToken := "as-"+randomText(t), "hs-"+randomText(t)
	as := newRecordingAppservice(hsToken)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: as, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	const asID = "sandcat-test"
	registration := filepath.Join(t.TempDir(), "registration.yaml")
	reg := fmt.Sprintf(`id: %s
url: http://%s
as_token: %s
hs_token: %s
sender_localpart: sandcatbot
rate_limited: false
receive_ephemeral: true
namespaces:
  users:
    - exclusive: true
      regex: '@sandcat_.*:localhost'
  aliases:
    - exclusive: true
      regex: '#sandcat_.*:localhost'
  rooms: []
`, asID, l.Addr(), asToken, hsToken)
	if err := os.WriteFile(registration, []byte(reg), 0o644); err != nil {
		t.Fatal(err)
	}

	started := time.Now()
	s := testsvc.RunSynapse(t, testsvc.SynapseOptions{AppserviceRegistration: registration})
	t.Logf("synapse ready in %s at %s", time.Since(started).Round(time.Millisecond), s.URL)
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") || s.ServerName != "localhost" {
		t.Fatalf("URL = %q, ServerName = %q", s.URL, s.ServerName)
	}

	// The homeserver reaches the appservice: the ping round-trips.
	bot, err := mautrix.NewClient(s.URL, id.NewUserID("sandcatbot", s.ServerName), asToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bot.AppservicePing(ctx, asID, "ping-1"); err != nil {
		t.Fatalf("appservice ping: %v", err)
	}

	alice, room := checkAppserviceFlow(ctx, t, as, s.URL, s.ServerName, asToken, bot, s.RegisterUser)

	// The homeserver keeps its database across a restart on the same URL,
	// and delivers again afterwards.
	url := s.URL
	s.Restart(t)
	if s.URL != url {
		t.Fatalf("URL after restart = %q, want %q", s.URL, url)
	}
	sent, err := alice.SendText(ctx, room.RoomID, "after restart")
	if err != nil {
		t.Fatalf("send after restart: %v", err)
	}
	as.waitEvent(ctx, t, "the message sent after the restart", func(ev *event.Event) bool { return ev.ID == sent.EventID })

	as.mu.Lock()
	defer as.mu.Unlock()
	t.Logf("transaction IDs received: %q", as.txns)
	if len(as.pings) != 1 || as.pings[0] != "ping-1" {
		t.Errorf("pings = %q, want [ping-1]", as.pings)
	}
	if as.badAuth != 0 {
		t.Errorf("%d requests carried a wrong hs_token", as.badAuth)
	}
}

func randomText(t *testing.T) string {
	t.Helper()
	return strings.ToLower(rand.Text())
}

func TestSynapseRootMissingNamesTheBuildCommand(t *testing.T) {
	tests := []struct {
		name  string
		files []string // created under the bin dir
	}{
		{"no chroot", nil},
		{"chroot without stamp (interrupted build)", []string{"synapse-root/usr/bin/python3"}},
		{"stamp without chroot", []string{"synapse-root.stamp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, f := range tt.files {
				p := filepath.Join(dir, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, nil, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv(testsvc.EnvBinDir, dir)
			r := &fatalRecorder{TB: t}
			testsvc.SynapseRoot(r)
			for _, want := range []string{"cmd/testservers/synapse.sh", dir} {
				if !strings.Contains(r.msg, want) {
					t.Errorf("failure message %q does not contain %q", r.msg, want)
				}
			}
		})
	}
}

// checkAppserviceFlow is what every homeserver must do for the bridge:
// register a user, let the appservice register a puppet in its exclusive
// namespace (refused to a plain user), deliver the puppet's invite, let the
// appservice join as the puppet (masquerading) and deliver a message of
// the room. It returns the user's client and the room.
func checkAppserviceFlow(ctx context.Context, t *testing.T, as *recordingAppservice, hsURL, serverName, asToken string,
	bot *mautrix.Client, register func(testing.TB, string, string) (string, string)) (*mautrix.Client, *mautrix.RespCreateRoom) {
	t.Helper()
	aliceID, aliceToken := register(t, "alice", "alice-password")
	if aliceID != "@alice:localhost" {
		t.Fatalf("user id = %q, want @alice:localhost", aliceID)
	}
	alice, err := mautrix.NewClient(hsURL, id.UserID(aliceID), aliceToken)
	if err != nil {
		t.Fatal(err)
	}

	// The appservice registers a puppet in its exclusive namespace...
	puppetID := id.NewUserID("sandcat_bob", serverName)
	if _, _, err := bot.Register(ctx, &mautrix.ReqRegister[any]{
		Username: "sandcat_bob", Type: mautrix.AuthTypeAppservice, InhibitLogin: true,
	}); err != nil {
		t.Fatalf("register puppet: %v", err)
	}
	// ...that a plain user cannot take.
	anon, err := mautrix.NewClient(hsURL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = anon.Register(ctx, &mautrix.ReqRegister[any]{Username: "sandcat_eve", Password: "eve-password"})
	if !errors.Is(err, mautrix.MExclusive) {
		t.Fatalf("plain registration in the appservice's exclusive namespace: err = %v, want M_EXCLUSIVE", err)
	}

	room, err := alice.CreateRoom(ctx, &mautrix.ReqCreateRoom{
		Name: "bridge test", Preset: "private_chat", Invite: []id.UserID{puppetID},
	})
	if err != nil {
		t.Fatalf("create room: %v", err)
	}
	as.waitEvent(ctx, t, "the puppet's invite", func(ev *event.Event) bool {
		return ev.Type == event.StateMember && ev.RoomID == room.RoomID && ev.GetStateKey() == puppetID.String()
	})

	// The appservice joins as the puppet (masquerading with its as_token).
	puppet, err := mautrix.NewClient(hsURL, puppetID, asToken)
	if err != nil {
		t.Fatal(err)
	}
	puppet.SetAppServiceUserID = true
	if _, err := puppet.JoinRoomByID(ctx, room.RoomID); err != nil {
		t.Fatalf("puppet join: %v", err)
	}

	// A message in a room where a namespaced user is a member reaches the
	// appservice.
	sent, err := alice.SendText(ctx, room.RoomID, "hello, bridge")
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	ev := as.waitEvent(ctx, t, "alice's message", func(ev *event.Event) bool { return ev.ID == sent.EventID })
	if ev.Sender.String() != aliceID || ev.Type != event.EventMessage {
		t.Fatalf("event = %s from %s, want m.room.message from %s", ev.Type.Type, ev.Sender, aliceID)
	}
	var content struct {
		Body string `json:"body"`
	}
	if err := json.Unmarshal(ev.Content.VeryRaw, &content); err != nil || content.Body != "hello, bridge" {
		t.Fatalf("content = %s (%v), want body \"hello, bridge\"", ev.Content.VeryRaw, err)
	}

	return alice, room
}
