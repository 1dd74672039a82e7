package gateway_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/gateway"
	"github.com/sandcat-im/sandcat/im/msgserver"
	"github.com/sandcat-im/sandcat/im/wire"
)

// routeLog records the route table calls of a gateway.
type routeLog struct {
	mu      sync.Mutex
	online  map[string]bool // user/platform → routed here
	removed int
}

func (r *routeLog) Add(_ context.Context, user string, platform int32, _ string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.online[routeKey(user, platform)] = true
	return nil
}

func (r *routeLog) Remove(_ context.Context, user string, platform int32, _ string) error {
	time.Sleep(20 * time.Millisecond) // a round trip to Redis
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.online, routeKey(user, platform))
	r.removed++
	return nil
}

func (r *routeLog) snapshot() (online, removed int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.online), r.removed
}

func routeKey(user string, platform int32) string {
	return user + "/" + string(rune('0'+platform))
}

// Close then Drain: when Drain returns, every connection has ended and its
// route is removed (a stopping process closes Redis right after).
func TestDrainRemovesRoutes(t *testing.T) {
	routes := &routeLog{online: map[string]bool{}}
	s := newStack(t, stackOpts{cfg: gateway.Config{ID: "gw-1", Routes: routes}})
	users := []string{"alice", "bob", "carol"}
	for _, u := range users {
		s.dial(u, wire.PlatformDesktop)
		s.dial(u, wire.PlatformMobile)
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		online, _ := routes.snapshot()
		if online == 2*len(users) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d routes added, want %d", online, 2*len(users))
		}
	}
	s.gw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.gw.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if online, removed := routes.snapshot(); online != 0 || removed != 2*len(users) {
		t.Fatalf("after Drain: %d routes left, %d removed; want 0 and %d", online, removed, 2*len(users))
	}
	if n := s.gw.Stats().Connections; n != 0 {
		t.Fatalf("%d connections after Drain", n)
	}
}

// The push counters: every delivery received through the push API counts
// as pushed; those for users without a connection here count as unrouted
// (a steady rate means the online routes point to the wrong gateway).
func TestPushCounters(t *testing.T) {
	s := newStack(t, stackOpts{noConsumer: true})
	const secret = "push-secret-for-tests"
	h, err := gateway.NewPushHandler(s.gw, gateway.PushHandlerOptions{GatewayID: "gw-a", Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	bob := s.dial("bob", wire.PlatformDesktop)
	s.waitOnline("bob", wire.PlatformDesktop)
	m := text("alice", "bob", "counted")
	m.ServerID, m.Seq = "srv01-000000000000000", 1
	push := func(secretHdr string, ds ...msgserver.Delivery) int {
		req := httptest.NewRequest(http.MethodPost, gateway.PushPath, bytes.NewReader(gateway.AppendPushBatch(nil, ds)))
		req.Header.Set(gateway.PushSecretHeader, secretHdr)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code
	}
	tests := []struct {
		name             string
		secret           string
		ds               []msgserver.Delivery
		pushed, unrouted int64
	}{
		{"refused", "wrong", []msgserver.Delivery{{UserID: "bob", Msg: m}}, 0, 0},
		{"held here", secret, []msgserver.Delivery{{UserID: "bob", Msg: m}}, 1, 0},
		{"one not here", secret, []msgserver.Delivery{{UserID: "bob", Msg: m}, {UserID: "carol", Msg: m}}, 3, 1},
	}
	for _, tt := range tests {
		push(tt.secret, tt.ds...)
		if st := s.gw.Stats(); st.Pushed != tt.pushed || st.Unrouted != tt.unrouted {
			t.Errorf("%s: pushed %d unrouted %d, want %d %d", tt.name, st.Pushed, st.Unrouted, tt.pushed, tt.unrouted)
		}
	}
	for range 2 {
		if got := bob.next(); got.ServerID != m.ServerID {
			t.Fatalf("bob got %+v", got)
		}
	}
}
