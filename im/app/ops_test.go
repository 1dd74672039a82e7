package app_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/sandcat-im/sandcat/im/client"
	"github.com/sandcat-im/sandcat/im/wire"
)

// Scenario h: the operations endpoints on the API port, and the /api prefix
// of the web client.
func TestOperationsAndAPIPrefix(t *testing.T) {
	s := startServer(t)
	ann := s.newUser("Ann")
	ctx := ctxT(t)

	tests := []struct {
		path, contains string
	}{
		{"/health", ""},
		{"/ready", ""},
		{"/metrics", "sandcat_http_requests_total"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			body, err := s.api.Text(ctx, http.MethodGet, tt.path)
			if err != nil {
				t.Fatalf("GET %s: %v", tt.path, err)
			}
			if !strings.Contains(body, tt.contains) {
				t.Errorf("GET %s: %q does not contain %q", tt.path, body, tt.contains)
			}
		})
	}
	// Requests are counted by route template.
	metrics, err := s.api.Text(ctx, http.MethodGet, "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(metrics, `route="/user/login"`) {
		t.Errorf("/metrics has no series of /user/login:\n%s", metrics)
	}
	// The gateway port answers /health too.
	wsHealth := &client.HTTP{Base: "http://" + s.ws}
	if _, err := wsHealth.Text(ctx, http.MethodGet, "/health"); err != nil {
		t.Errorf("GET /health on the WebSocket port: %v", err)
	}

	// The same routes under /api, as the web client's dev proxy sends them.
	web := &client.HTTP{Base: s.base + "/api"}
	lr, err := web.Login(ctx, ann.Email, "s3cret!pass")
	if err != nil {
		t.Fatalf("POST /api/user/login: %v", err)
	}
	if lr.User.ID != ann.ID {
		t.Fatalf("login under /api: %+v", lr.User)
	}
	web.Token = lr.Token
	if _, err := web.Seq(ctx, ann.ID); err != nil {
		t.Errorf("GET /api/message/seq: %v", err)
	}
	if u, err := web.GetUser(ctx, ann.ID); err != nil || u.ID != ann.ID {
		t.Errorf("GET /api/user/{id}: %v %+v", err, u)
	}
	if _, err := web.Text(ctx, http.MethodGet, "/no/such/route"); client.KindOf(err) != "NotFound" || client.StatusOf(err) != 404 {
		t.Errorf("an unknown route: %v", err)
	}
}

// Tokens: the refresh token gives new access tokens; logout revokes every
// token of the user, for HTTP and for the WebSocket.
func TestTokens(t *testing.T) {
	s := startServer(t)
	ann := s.newUser("Ann")
	ctx := ctxT(t)
	access, err := s.api.Refresh(ctx, ann.Login.RefreshToken, false)
	if err != nil || access == "" {
		t.Fatalf("refresh: %q %v", access, err)
	}
	if _, err := s.api.WithToken(access).Seq(ctx, ann.ID); err != nil {
		t.Fatalf("the refreshed token: %v", err)
	}
	if _, err := s.api.Refresh(ctx, "not-a-token", false); client.StatusOf(err) != 401 {
		t.Fatalf("refresh with a bad token: %v, want 401", err)
	}
	if err := ann.api.Logout(ctx, ann.ID); err != nil {
		t.Fatalf("logout: %v", err)
	}
	for _, tok := range []string{ann.Login.Token, access} {
		if _, err := s.api.WithToken(tok).Seq(ctx, ann.ID); client.StatusOf(err) != 401 {
			t.Errorf("a token after logout: %v, want 401", err)
		}
	}
	c, err := client.Dial(ctx, ann.Login.WSAddr, ann.ID, 0, ann.Login.Token)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Recv(ctx); !errors.Is(err, client.ErrClosed) || c.CloseCode() != client.CloseBadToken {
		t.Errorf("a revoked token on the WebSocket: %v, close code %d, want %d", err, c.CloseCode(), client.CloseBadToken)
	}
}

// Close codes: 4002 for a bad token or another user's token, 4001 for the
// connection a newer one of the same user and platform replaces.
func TestCloseCodes(t *testing.T) {
	s := startServer(t)
	ann, bob := s.newUser("Ann"), s.newUser("Bob")
	ctx := ctxT(t)
	tests := []struct {
		name        string
		user, token string
	}{
		{"a bad token", ann.ID, "garbage"},
		{"another user's token", ann.ID, bob.Login.Token},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := client.Dial(ctx, s.ws, tt.user, wire.PlatformDesktop, tt.token)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.Recv(ctx)
			if !errors.Is(err, client.ErrClosed) || c.CloseCode() != client.CloseBadToken || c.CloseText() != "knock off" {
				t.Errorf("%v, close %d %q, want %d \"knock off\"", err, c.CloseCode(), c.CloseText(), client.CloseBadToken)
			}
		})
	}

	first := ann.dial(wire.PlatformMobile)
	desk := ann.dial(wire.PlatformDesktop)
	second := ann.dial(wire.PlatformMobile)
	rctx, cancel := context.WithTimeout(ctx, waitFrame)
	defer cancel()
	if _, err := first.c.Recv(rctx); !errors.Is(err, client.ErrClosed) || first.c.CloseCode() != client.CloseKnockOff {
		t.Errorf("the replaced connection: %v, close code %d, want %d", err, first.c.CloseCode(), client.CloseKnockOff)
	}
	// The replacement and the other platform are live.
	bobD := bob.dial(wire.PlatformDesktop)
	m := &wire.Msg{ReceiverID: ann.ID, MsgType: wire.MsgTypeSingleMsg, ContentType: wire.ContentText, Content: []byte("still there?")}
	ack := bobD.sendOK(m)
	got := s.quiet(desk, second)
	for i, d := range []*dev{desk, second} {
		if len(got[i]) != 1 || got[i][0].ServerID != ack.ServerID {
			t.Errorf("%s got %s", d.name, describe(got[i]))
		}
	}
}
