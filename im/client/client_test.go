package client_test

// Unit tests of the client's own logic against small stand-in servers. The
// client is exercised against the real server by im/app's end-to-end tests
// and cmd/sandcat's process tests.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/sandcat-im/sandcat/im/client"
	"github.com/sandcat-im/sandcat/im/wire"
)

func TestURL(t *testing.T) {
	tests := []struct {
		addr, want string
		err        bool
	}{
		{"ws://127.0.0.1:50000/ws", "ws://127.0.0.1:50000/ws/u1/conn/u1/1/tok", false},
		{"ws://127.0.0.1:50000/ws/", "ws://127.0.0.1:50000/ws/u1/conn/u1/1/tok", false},
		{"wss://chat.example.com/ws", "wss://chat.example.com/ws/u1/conn/u1/1/tok", false},
		{"127.0.0.1:50000", "ws://127.0.0.1:50000/ws/u1/conn/u1/1/tok", false},
		{"http://127.0.0.1:50000/ws", "ws://127.0.0.1:50000/ws/u1/conn/u1/1/tok", false},
		{"https://h/ws", "wss://h/ws/u1/conn/u1/1/tok", false},
		{"ftp://h/ws", "", true},
	}
	for _, tt := range tests {
		got, err := client.URL(tt.addr, "u1", 1, "tok")
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("URL(%q) = %q, %v; want %q (error %v)", tt.addr, got, err, tt.want, tt.err)
		}
	}
}

func TestHTTPErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/message/seq/404":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = io.WriteString(w, `{"kind":"NotFound","details":null}`)
		case "/message/seq/403":
			w.WriteHeader(http.StatusForbidden)
			_, _ = io.WriteString(w, `{"kind":"Forbidden","details":"not yours"}`)
		case "/message/seq/502":
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, `upstream down`)
		default:
			if r.Header.Get("Authorization") != "Bearer tok" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			_, _ = io.WriteString(w, `{"seq":7,"send_seq":3}`)
		}
	}))
	defer srv.Close()
	h := &client.HTTP{Base: srv.URL + "/", Token: "tok"}
	ctx := context.Background()
	tests := []struct {
		id         string
		status     int
		kind, text string
	}{
		{"404", 404, "NotFound", "404 NotFound"},
		{"403", 403, "Forbidden", "Forbidden: not yours"},
		{"502", 502, "", "upstream down"},
	}
	for _, tt := range tests {
		_, err := h.Seq(ctx, tt.id)
		if client.StatusOf(err) != tt.status || client.KindOf(err) != tt.kind || !strings.Contains(err.Error(), tt.text) {
			t.Errorf("Seq(%s): %v (status %d kind %q)", tt.id, err, client.StatusOf(err), client.KindOf(err))
		}
	}
	sq, err := h.Seq(ctx, "ok")
	if err != nil || sq != (client.Seqs{Seq: 7, SendSeq: 3}) {
		t.Fatalf("Seq: %+v %v", sq, err)
	}
	if _, err := h.WithToken("other").Seq(ctx, "ok"); client.StatusOf(err) != 401 {
		t.Fatalf("another token: %v", err)
	}
	if client.StatusOf(errors.New("x")) != 0 || client.KindOf(nil) != "" {
		t.Fatal("StatusOf/KindOf of a foreign error")
	}
}

func TestLoginAndUpload(t *testing.T) {
	var got struct {
		login    map[string]string
		field    string
		filename string
		ctype    string
		data     []byte
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/user/login":
			_ = json.NewDecoder(r.Body).Decode(&got.login)
			_, _ = io.WriteString(w, `{"user":{"id":"u1","name":"Ann","account":"u1","avatar":"a.png","gender":"","age":0,
				"phone":null,"email":"ann@example.com","address":null,"region":null,"birthday":null,"create_time":1,
				"update_time":2,"signature":""},"token":"t","refresh_token":"r","ws_addr":"ws://h:1/ws"}`)
		case "/file/upload":
			mr, err := r.MultipartReader()
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			p, err := mr.NextPart()
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			got.field, got.filename, got.ctype = p.FormName(), p.FileName(), p.Header.Get("Content-Type")
			got.data, _ = io.ReadAll(p)
			_, _ = io.WriteString(w, "stored.pdf")
		}
	}))
	defer srv.Close()
	h := &client.HTTP{Base: srv.URL}
	ctx := context.Background()
	lr, err := h.Login(ctx, "ann@example.com", "pâss?")
	if err != nil {
		t.Fatal(err)
	}
	if got.login["account"] != "ann@example.com" || got.login["password"] != base64.RawStdEncoding.EncodeToString([]byte("pâss?")) ||
		strings.HasSuffix(got.login["password"], "=") {
		t.Errorf("login body %v", got.login)
	}
	if lr.User.ID != "u1" || lr.User.Email == nil || *lr.User.Email != "ann@example.com" || lr.Token != "t" || lr.WSAddr != "ws://h:1/ws" {
		t.Errorf("login answer %+v", lr)
	}
	name, err := h.Upload(ctx, "report.pdf", "application/pdf", strings.NewReader("%PDF-1.7"))
	if err != nil || name != "stored.pdf" {
		t.Fatalf("upload: %q %v", name, err)
	}
	if got.field != "file" || got.filename != "report.pdf" || got.ctype != "application/pdf" || string(got.data) != "%PDF-1.7" {
		t.Errorf("upload part: %q %q %q %q", got.field, got.filename, got.ctype, got.data)
	}
}

// wsServer upgrades, answers every frame with an ACK of it (binary), and
// closes with closeCode when a frame's content is "bye".
func wsServer(t *testing.T, closeCode int) (*httptest.Server, *[]string) {
	var mu sync.Mutex
	var paths []string
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.Path)
		mu.Unlock()
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			var m wire.Msg
			if typ == websocket.TextMessage {
				m, err = wire.DecodeJSONMsg(b)
			} else {
				m, err = wire.DecodeMsg(b)
			}
			if err != nil {
				_ = c.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}) // undecodable
				continue
			}
			if string(m.Content) == "bye" {
				_ = c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(closeCode, "knock off"))
				_, _, _ = c.ReadMessage()
				return
			}
			ack := m
			ack.MsgType, ack.ServerID, ack.Content = wire.MsgTypeMsgRecResp, "srv-"+m.LocalID, nil
			if typ == websocket.TextMessage {
				ack.ContentType = 42 // tells the test the text frame arrived as text
			}
			_ = c.WriteMessage(websocket.BinaryMessage, ack.MarshalBincode())
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &paths
}

func TestConnRecv(t *testing.T) {
	srv, paths := wsServer(t, client.CloseKnockOff)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, "ws://"+strings.TrimPrefix(srv.URL, "http://")+"/ws", "u1", wire.PlatformMobile, "tok")
	if err != nil {
		t.Fatal(err)
	}
	if (*paths)[0] != "/ws/u1/conn/u1/1/tok" {
		t.Fatalf("path %q", (*paths)[0])
	}
	if err := c.Send(&wire.Msg{SendID: "u1", LocalID: "l1", Content: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	if err := c.SendJSON(&wire.Msg{SendID: "u1", LocalID: "l2", Content: []byte("hi")}); err != nil {
		t.Fatal(err)
	}
	if err := c.SendRaw(websocket.BinaryMessage, []byte{0xff}); err != nil {
		t.Fatal(err)
	}
	for _, w := range []struct {
		local string
		ct    int32
	}{{"l1", 0}, {"l2", 42}} {
		m, err := c.Recv(ctx)
		if err != nil || m.MsgType != wire.MsgTypeMsgRecResp || m.LocalID != w.local || m.ServerID != "srv-"+w.local || m.ContentType != w.ct {
			t.Fatalf("Recv: %+v %v, want the ACK of %s", m, err, w.local)
		}
	}
	if c.CloseCode() != 0 || c.Err() != nil {
		t.Fatal("closed too early")
	}
	if err := c.Send(&wire.Msg{Content: []byte("bye")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Recv(ctx); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Recv after the close: %v", err)
	}
	if c.CloseCode() != client.CloseKnockOff || c.CloseText() != "knock off" || c.DecodeErrors() != 1 {
		t.Fatalf("close %d %q, %d decode errors", c.CloseCode(), c.CloseText(), c.DecodeErrors())
	}
	if err := c.Send(&wire.Msg{}); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Send after the close: %v", err)
	}
	_ = c.Close()
}

func TestConnOnMessageAndClose(t *testing.T) {
	srv, _ := wsServer(t, client.CloseBadToken)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []string
	closed := make(chan int, 1)
	d := client.Dialer{
		OnMessage: func(m *wire.Msg) {
			mu.Lock()
			got = append(got, m.LocalID)
			mu.Unlock()
		},
		OnClose: func(code int, _ error) { closed <- code },
	}
	c, err := d.Dial(ctx, strings.TrimPrefix(srv.URL, "http://"), "u1", 0, "tok")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"a", "b", "c"} {
		if err := c.Send(&wire.Msg{LocalID: l}); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Send(&wire.Msg{Content: []byte("bye")}); err != nil {
		t.Fatal(err)
	}
	if code := <-closed; code != client.CloseBadToken {
		t.Fatalf("OnClose code %d", code)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(got, ",") != "a,b,c" {
		t.Fatalf("OnMessage got %v", got)
	}
	if _, err := c.Recv(ctx); err == nil {
		t.Fatal("Recv works with OnMessage")
	}
}

// Close does not hang when the Recv queue is full and the reader is blocked.
func TestCloseWithFullQueue(t *testing.T) {
	srv, _ := wsServer(t, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	d := client.Dialer{Queue: 1}
	c, err := d.Dial(ctx, strings.TrimPrefix(srv.URL, "http://"), "u1", 0, "tok")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if err := c.Send(&wire.Msg{LocalID: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	// One echo is read before Close so that the reader has really been
	// filling the one-frame queue (the others back up behind it).
	if _, err := c.Recv(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = c.Close(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		t.Fatal("Close hangs with a full queue")
	}
	// What was queued is still readable, then the end.
	n := 1
	for {
		if _, err := c.Recv(ctx); err != nil {
			break
		}
		n++
	}
	if n < 1 || n > 5 {
		t.Fatalf("%d frames after Close", n)
	}
}

func TestDialHTTPError(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = io.WriteString(w, `{"kind":"ServiceNotFound","details":"gateway is shutting down"}`)
	}))
	defer srv.Close()
	_, err := client.Dial(context.Background(), srv.URL+"/ws", "u1", 0, "secret-token")
	if client.StatusOf(err) != http.StatusServiceUnavailable || client.KindOf(err) != "ServiceNotFound" ||
		strings.Contains(err.Error(), "secret-token") {
		t.Fatalf("dial: %v", err)
	}
	// A refused TCP connection names the URL without the token.
	_, err = client.Dial(context.Background(), "127.0.0.1:1", "u1", 0, "secret-token")
	if err == nil || strings.Contains(err.Error(), "secret-token") {
		t.Fatalf("dial a closed port: %v", err)
	}
}
