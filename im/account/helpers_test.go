package account_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/sandcat-im/sandcat/im/account"
	"github.com/sandcat-im/sandcat/im/auth"
	"github.com/sandcat-im/sandcat/storage"
)

// recMailer records the codes it is asked to send (the SMTP sender has its own tests).
type recMailer struct {
	mu    sync.Mutex
	sent  map[string][]string
	fail  atomic.Bool
	calls atomic.Int32
}

func (m *recMailer) SendCode(_ context.Context, email, code string) error {
	m.calls.Add(1)
	if m.fail.Load() {
		return errors.New("smtp down")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sent == nil {
		m.sent = map[string][]string{}
	}
	m.sent[email] = append(m.sent[email], code)
	return nil
}

func (m *recMailer) last(t *testing.T, email string) string {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.sent[email]
	if len(c) == 0 {
		t.Fatalf("no code sent to %s", email)
	}
	return c[len(c)-1]
}

// offsetClock is a clock the test moves forward while the server reads it.
type offsetClock struct{ off atomic.Int64 }

func (c *offsetClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *offsetClock) advance(d time.Duration) { c.off.Add(int64(d)) }
func b64(s string) string                      { return base64.RawStdEncoding.EncodeToString([]byte(s)) }
func ptr[T any](v T) *T                        { return &v }
func jsonBody(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	must(t, err)
	return string(b)
}
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type env struct {
	t      *testing.T
	srv    *httptest.Server
	store  storage.Users
	tokens *auth.Tokens
	mailer *recMailer
	clock  *offsetClock
}

const wsAddr = "ws://127.0.0.1:50000/ws"

func newEnv(t *testing.T, store storage.Users, edit func(*account.Options)) *env {
	t.Helper()
	return newEnvURL(t, store, func(o *account.Options, _ string) {
		if edit != nil {
			edit(o)
		}
	})
}

// newEnvURL is newEnv whose edit also gets the server's base URL (for OAuth redirect URLs).
func newEnvURL(t *testing.T, store storage.Users, edit func(o *account.Options, baseURL string)) *env {
	t.Helper()
	e := &env{t: t, store: store, mailer: &recMailer{}, clock: &offsetClock{}}
	tokens, err := auth.NewTokens([]byte("test-secret"), store, nil)
	must(t, err)
	e.tokens = tokens
	opts := account.Options{
		Users: store, Tokens: tokens, Codes: auth.NewMemoryCodes(e.clock.now), States: auth.NewMemoryCodes(nil),
		Mailer: e.mailer, WSAddr: func(context.Context) (string, error) { return wsAddr, nil }, SeqStep: 100,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	e.srv = httptest.NewUnstartedServer(nil)
	edit(&opts, "http://"+e.srv.Listener.Addr().String())
	h, err := account.New(opts)
	must(t, err)
	r := mux.NewRouter()
	h.Register(r)
	e.srv.Config.Handler = r
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	return e
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q: %v", r.body, err)
	}
	return m
}

// do sends a request; body "" sends none; ct "" means application/json when there
// is a body, "none" sends no Content-Type.
func (e *env) do(method, path, body, ct, token string) resp {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	must(e.t, err)
	switch {
	case body == "" || ct == "none":
	case ct == "":
		req.Header.Set("Content-Type", "application/json")
	default:
		req.Header.Set("Content-Type", ct)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := client.Do(req)
	must(e.t, err)
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	must(e.t, err)
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

// wantError checks an error response: status, kind, and details (nil: null; "*": any string).
func wantError(t *testing.T, r resp, status int, kind string, details *string) {
	t.Helper()
	if r.status != status {
		t.Fatalf("status %d, want %d (body %s)", r.status, status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error content type %q", ct)
	}
	m := r.json(t)
	if len(m) != 2 || m["kind"] != kind {
		t.Fatalf("error body %s, want kind %s", r.body, kind)
	}
	d, present := m["details"]
	switch {
	case !present:
		t.Fatalf("error body %s has no details key", r.body)
	case details == nil && d != nil:
		t.Fatalf("details %v, want null", d)
	case details != nil && *details == "*":
		if _, ok := d.(string); !ok {
			t.Fatalf("details %v, want a string", d)
		}
	case details != nil && d != *details:
		t.Fatalf("details %v, want %q", d, *details)
	}
}

var anyDetails = ptr("*")

func wantEmpty200(t *testing.T, r resp) {
	t.Helper()
	if r.status != http.StatusOK || len(r.body) != 0 {
		t.Fatalf("status %d body %q, want 200 with an empty body", r.status, r.body)
	}
}

// wantKeys checks that m has exactly these keys (null values included).
func wantKeys(t *testing.T, what string, m map[string]any, keys ...string) {
	t.Helper()
	got := make([]string, 0, len(m))
	for k := range m {
		got = append(got, k)
	}
	sort.Strings(got)
	sort.Strings(keys)
	if strings.Join(got, ",") != strings.Join(keys, ",") {
		t.Fatalf("%s keys %v, want %v", what, got, keys)
	}
}

var userKeys = []string{"id", "name", "account", "avatar", "gender", "age", "phone", "email", "address",
	"region", "birthday", "create_time", "update_time", "signature"}

// claims decodes a JWT payload the way the client does (standard alphabet, no padding).
func claims(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token %q", token)
	}
	raw, err := base64.RawStdEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("payload of %q does not decode with RawStdEncoding: %v", token, err)
	}
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	must(t, dec.Decode(&m))
	return m
}

func claimInt(t *testing.T, m map[string]any, k string) int64 {
	t.Helper()
	n, ok := m[k].(json.Number)
	if !ok {
		t.Fatalf("claim %s = %v", k, m[k])
	}
	v, err := n.Int64()
	must(t, err)
	return v
}

type session struct {
	id, email, password, token, refresh string
}

// signUp runs mail/send, register and login for a new user.
func (e *env) signUp(t *testing.T, email, password string) session {
	t.Helper()
	wantEmpty200(t, e.do("POST", "/user/mail/send", jsonBody(t, map[string]string{"email": email}), "", ""))
	r := e.do("POST", "/user", jsonBody(t, map[string]string{"avatar": "avatar2.png", "name": "N " + email,
		"password": password, "email": email, "code": e.mailer.last(t, email)}), "", "")
	if r.status != http.StatusOK {
		t.Fatalf("register %s: %d %s", email, r.status, r.body)
	}
	return e.login(t, email, password)
}

func (e *env) login(t *testing.T, account, password string) session {
	t.Helper()
	r := e.do("POST", "/user/login", jsonBody(t, map[string]string{"account": account, "password": b64(password)}), "", "")
	if r.status != http.StatusOK {
		t.Fatalf("login %s: %d %s", account, r.status, r.body)
	}
	var lr struct {
		User         storage.User `json:"user"`
		Token        string       `json:"token"`
		RefreshToken string       `json:"refresh_token"`
	}
	must(t, json.Unmarshal(r.body, &lr))
	email := ""
	if lr.User.Email != nil {
		email = *lr.User.Email
	}
	return session{id: lr.User.ID, email: email, password: password, token: lr.Token, refresh: lr.RefreshToken}
}
