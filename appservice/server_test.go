package appservice_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/appservice"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

const (
	hsToken = "hs_secret_token"
	asToken = "as_secret_token"
)

// recorder is the bridge stand-in: it records what the appservice layer hands over.
type recorder struct {
	mu      sync.Mutex
	batches [][]*event.Event
	eph     [][]*event.Event
	failN   int // the next failN HandleEvents calls fail
	users   map[id.UserID]bool
	aliases map[id.RoomAlias]bool
	queries []string
}

func newRecorder() *recorder {
	return &recorder{users: map[id.UserID]bool{}, aliases: map[id.RoomAlias]bool{}}
}

func (r *recorder) HandleEvents(_ context.Context, evts []*event.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failN > 0 {
		r.failN--
		return errors.New("bridge down")
	}
	r.batches = append(r.batches, evts)
	return nil
}

func (r *recorder) HandleEphemeral(_ context.Context, evts []*event.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.eph = append(r.eph, evts)
}

var errQuery = errors.New("query failed")

func (r *recorder) QueryUser(_ context.Context, u id.UserID) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, "user "+string(u))
	if strings.HasPrefix(string(u), "@sandcat_broken") {
		return false, errQuery
	}
	return r.users[u], nil
}

func (r *recorder) QueryAlias(_ context.Context, a id.RoomAlias) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queries = append(r.queries, "alias "+string(a))
	return r.aliases[a], nil
}

// delivered returns the ids of the events handed over since the last call.
func (r *recorder) delivered() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []string{}
	for _, b := range r.batches {
		for _, e := range b {
			out = append(out, string(e.ID))
		}
	}
	r.batches = nil
	return out
}

type harness struct {
	t     *testing.T
	url   string
	rec   *recorder
	srv   *appservice.Server
	store *sqlite.Store
	path  string
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newHarness serves a real Server over HTTP on a real SQLite store at path.
func newHarness(t *testing.T, path string, cfg appservice.Config) *harness {
	t.Helper()
	store, err := sqlite.Open(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	rec := newRecorder()
	if cfg.ID == "" {
		cfg.ID = "sandcat"
	}
	cfg.HSToken, cfg.ASToken = hsToken, asToken
	srv, err := appservice.New(cfg, store.Appservice(), rec, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return &harness{t: t, url: hs.URL, rec: rec, srv: srv, store: store, path: path}
}

type reply struct {
	status  int
	errcode string
	body    string
}

func (h *harness) do(method, path string, body []byte, header map[string]string) reply {
	h.t.Helper()
	req, err := http.NewRequest(method, h.url+path, bytes.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e struct {
		ErrCode string `json:"errcode"`
	}
	_ = json.Unmarshal(b, &e)
	return reply{resp.StatusCode, e.ErrCode, string(b)}
}

var bearer = map[string]string{"Authorization": "Bearer " + hsToken}

func msgEvent(eventID, body string) map[string]any {
	return map[string]any{
		"event_id": eventID, "type": "m.room.message", "room_id": "!room:example.org",
		"sender": "@alice:example.org", "origin_server_ts": 1700000000000,
		"content": map[string]any{"msgtype": "m.text", "body": body},
	}
}

func txnBody(t *testing.T, events ...map[string]any) []byte {
	t.Helper()
	if events == nil {
		events = []map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"events": events})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestAuth(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "as.db"), appservice.Config{})
	h.rec.users["@sandcat_u1:example.org"] = true
	h.rec.aliases["#sandcat_g1:example.org"] = true
	endpoints := []struct {
		name, method, path string
		body               func(i int) []byte
	}{
		{"transaction", http.MethodPut, "/_matrix/app/v1/transactions/auth-%d", func(i int) []byte {
			return txnBody(t, msgEvent(fmt.Sprintf("$auth-%d", i), "hi"))
		}},
		{"legacy transaction", http.MethodPut, "/transactions/legacy-auth-%d", func(i int) []byte {
			return txnBody(t, msgEvent(fmt.Sprintf("$legacy-auth-%d", i), "hi"))
		}},
		{"user", http.MethodGet, "/_matrix/app/v1/users/@sandcat_u1:example.org?n=%d", nil},
		{"room", http.MethodGet, "/_matrix/app/v1/rooms/%%23sandcat_g1:example.org?n=%d", nil},
		{"ping", http.MethodPost, "/_matrix/app/v1/ping?n=%d", func(int) []byte { return []byte(`{"transaction_id":"p"}`) }},
	}
	cases := []struct {
		name    string
		header  string // Authorization value
		query   string // access_token value ("" = absent)
		status  int
		errcode string
	}{
		{"no token", "", "", 401, "M_MISSING_TOKEN"},
		{"not a bearer header", "Basic " + hsToken, "", 401, "M_MISSING_TOKEN"},
		{"wrong bearer", "Bearer nope", "", 403, "M_FORBIDDEN"},
		{"as_token instead of hs_token", "Bearer " + asToken, "", 403, "M_FORBIDDEN"},
		{"right bearer", "Bearer " + hsToken, "", 200, ""},
		{"legacy query token", "", hsToken, 200, ""},
		{"wrong legacy query token", "", "nope", 403, "M_FORBIDDEN"},
		{"both right", "Bearer " + hsToken, hsToken, 200, ""},
		{"both given, query wrong", "Bearer " + hsToken, "nope", 403, "M_FORBIDDEN"},
		{"both given, header wrong", "Bearer nope", hsToken, 403, "M_FORBIDDEN"},
	}
	i := 0
	for _, ep := range endpoints {
		for _, tc := range cases {
			t.Run(ep.name+"/"+tc.name, func(t *testing.T) {
				i++
				path := fmt.Sprintf(ep.path, i)
				if tc.query != "" {
					sep := "?"
					if strings.Contains(path, "?") {
						sep = "&"
					}
					path += sep + "access_token=" + tc.query
				}
				var body []byte
				if ep.body != nil {
					body = ep.body(i)
				}
				hdr := map[string]string{}
				if tc.header != "" {
					hdr["Authorization"] = tc.header
				}
				got := h.do(ep.method, path, body, hdr)
				if got.status != tc.status || got.errcode != tc.errcode {
					t.Fatalf("%s %s: %d %s, want %d %s (%s)", ep.method, path, got.status, got.errcode,
						tc.status, tc.errcode, got.body)
				}
				if tc.status != 200 && !strings.Contains(got.body, `"error"`) {
					t.Fatalf("error body %s lacks the error field", got.body)
				}
				delivered := h.rec.delivered()
				if ep.body != nil && strings.Contains(ep.name, "transaction") {
					if tc.status == 200 && len(delivered) != 1 {
						t.Fatalf("accepted transaction delivered %v", delivered)
					}
					if tc.status != 200 && len(delivered) != 0 {
						t.Fatalf("refused transaction delivered %v", delivered)
					}
				}
			})
		}
	}
	// Refused transactions were not recorded: the same ids with the right token deliver.
	got := h.do(http.MethodPut, "/_matrix/app/v1/transactions/auth-1", txnBody(t, msgEvent("$auth-1", "hi")), bearer)
	if got.status != 200 || !slices.Equal(h.rec.delivered(), []string{"$auth-1"}) {
		t.Fatalf("transaction refused for no token was recorded: %v", got)
	}
}

type txnStep struct {
	name      string
	path      string
	body      []byte
	failNext  int // HandleEvents failures to inject before the step
	status    int
	errcode   string
	delivered []string
}

func runSteps(t *testing.T, h *harness, steps []txnStep) {
	t.Helper()
	for _, st := range steps {
		h.rec.mu.Lock()
		h.rec.failN = st.failNext
		h.rec.mu.Unlock()
		got := h.do(http.MethodPut, st.path, st.body, bearer)
		if got.status != st.status || got.errcode != st.errcode {
			t.Fatalf("%s: PUT %s: %d %s (%s), want %d %s", st.name, st.path, got.status, got.errcode, got.body,
				st.status, st.errcode)
		}
		if st.status == 200 && got.body != "{}" {
			t.Fatalf("%s: body %q, want {}", st.name, got.body)
		}
		if d := h.rec.delivered(); !slices.Equal(d, st.delivered) {
			t.Fatalf("%s: delivered %v, want %v", st.name, d, st.delivered)
		}
	}
}

func TestTransactions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "as.db")
	h := newHarness(t, path, appservice.Config{MaxBodyBytes: 8 << 10})
	v1 := "/_matrix/app/v1/transactions/"
	e := msgEvent
	runSteps(t, h, []txnStep{
		{"first delivery", v1 + "t1", txnBody(t, e("$e1", "a"), e("$e2", "b")), 0, 200, "", []string{"$e1", "$e2"}},
		{"retry is a no-op", v1 + "t1", txnBody(t, e("$e1", "a"), e("$e2", "b")), 0, 200, "", []string{}},
		{"event in a second transaction is dropped", v1 + "t2", txnBody(t, e("$e2", "b"), e("$e3", "c")), 0, 200, "", []string{"$e3"}},
		{"duplicate inside a transaction", v1 + "t3", txnBody(t, e("$e4", "d"), e("$e4", "d")), 0, 200, "", []string{"$e4"}},
		{"only old events", v1 + "t3b", txnBody(t, e("$e1", "a")), 0, 200, "", []string{}},
		{"empty transaction", v1 + "t3c", txnBody(t), 0, 200, "", []string{}},
		{"legacy path", "/transactions/t4", txnBody(t, e("$e5", "e")), 0, 200, "", []string{"$e5"}},
		{"legacy transaction retried on v1", v1 + "t4", txnBody(t, e("$e5", "e")), 0, 200, "", []string{}},
		{"escaped txn id", v1 + "t%2F5", txnBody(t, e("$e6", "f")), 0, 200, "", []string{"$e6"}},
		{"handler failure asks for a retry", v1 + "t6", txnBody(t, e("$e7", "g")), 1, 500, "M_UNKNOWN", []string{}},
		{"retry after failure delivers", v1 + "t6", txnBody(t, e("$e7", "g")), 0, 200, "", []string{"$e7"}},
		{"retry after success is a no-op", v1 + "t6", txnBody(t, e("$e7", "g")), 0, 200, "", []string{}},
		{"bad json", v1 + "t7", []byte(`{"events": [`), 0, 400, "M_BAD_JSON", []string{}},
		{"wrong json shape", v1 + "t7", []byte(`{"events": {"a": 1}}`), 0, 400, "M_BAD_JSON", []string{}},
		{"empty body", v1 + "t7", nil, 0, 400, "M_BAD_JSON", []string{}},
		{"body too large", v1 + "t8", txnBody(t, e("$big", strings.Repeat("x", 9<<10))), 0, 413, "M_TOO_LARGE", []string{}},
		{"bad json was not recorded", v1 + "t7", txnBody(t, e("$e8", "h")), 0, 200, "", []string{"$e8"}},
	})

	// A bridge restarted on the same database remembers transactions and events.
	h2 := newHarness(t, path, appservice.Config{})
	runSteps(t, h2, []txnStep{
		{"retry after restart", v1 + "t1", txnBody(t, e("$e1", "a"), e("$e2", "b")), 0, 200, "", []string{}},
		{"old event after restart", v1 + "t9", txnBody(t, e("$e3", "c"), e("$e9", "i")), 0, 200, "", []string{"$e9"}},
		// Synapse on SQLite reuses transaction ids after its own restart: the
		// same id with other events is a new transaction.
		{"reused txn id with new events", v1 + "t1", txnBody(t, e("$e10", "j")), 0, 200, "", []string{"$e10"}},
	})
}

func TestTransactionConcurrentRetry(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "as.db"), appservice.Config{})
	body := txnBody(t, msgEvent("$c1", "x"), msgEvent("$c2", "y"))
	var wg sync.WaitGroup
	statuses := make([]int, 6)
	for i := range statuses {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequest(http.MethodPut, h.url+"/_matrix/app/v1/transactions/same", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+hsToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			_ = resp.Body.Close()
			statuses[i] = resp.StatusCode
		}()
	}
	wg.Wait()
	for i, s := range statuses {
		if s != 200 {
			t.Errorf("request %d: status %d", i, s)
		}
	}
	if d := h.rec.delivered(); !slices.Equal(d, []string{"$c1", "$c2"}) {
		t.Fatalf("concurrent copies of one transaction delivered %v, want each event once", d)
	}
}

func TestTransactionContent(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "as.db"), appservice.Config{})
	member := map[string]any{
		"event_id": "$m1", "type": "m.room.member", "room_id": "!room:example.org", "state_key": "@bob:example.org",
		"sender": "@bob:example.org", "origin_server_ts": 1700000000001,
		"content": map[string]any{"membership": "join", "displayname": "Bob"},
	}
	custom := map[string]any{
		"event_id": "$x1", "type": "org.example.custom", "room_id": "!room:example.org",
		"sender": "@bob:example.org", "origin_server_ts": 1700000000002, "content": map[string]any{"k": "v"},
	}
	body, _ := json.Marshal(map[string]any{
		"events":    []any{msgEvent("$t1", "hello"), member, custom},
		"ephemeral": []any{map[string]any{"type": "m.typing", "room_id": "!room:example.org", "content": map[string]any{"user_ids": []string{"@bob:example.org"}}}},
	})
	for range 2 { // the retry changes nothing, ephemeral events included
		if got := h.do(http.MethodPut, "/_matrix/app/v1/transactions/c1", body, bearer); got.status != 200 {
			t.Fatalf("PUT: %+v", got)
		}
	}
	h.rec.mu.Lock()
	defer h.rec.mu.Unlock()
	if len(h.rec.batches) != 1 || len(h.rec.batches[0]) != 3 {
		t.Fatalf("batches %v", h.rec.batches)
	}
	b := h.rec.batches[0]
	msg, ok := b[0].Content.Parsed.(*event.MessageEventContent)
	if !ok || msg.Body != "hello" || b[0].Type.Class != event.MessageEventType {
		t.Fatalf("message event: class %v parsed %T %+v", b[0].Type.Class, b[0].Content.Parsed, b[0].Content.Parsed)
	}
	mem, ok := b[1].Content.Parsed.(*event.MemberEventContent)
	if !ok || mem.Membership != event.MembershipJoin || b[1].Type.Class != event.StateEventType {
		t.Fatalf("member event: class %v parsed %T", b[1].Type.Class, b[1].Content.Parsed)
	}
	if b[2].Content.Raw["k"] != "v" {
		t.Fatalf("custom event content %v", b[2].Content.Raw)
	}
	if len(h.rec.eph) != 1 || len(h.rec.eph[0]) != 1 || h.rec.eph[0][0].Type.Type != "m.typing" ||
		h.rec.eph[0][0].Type.Class != event.EphemeralEventType {
		t.Fatalf("ephemeral %v", h.rec.eph)
	}
}

func TestQueriesAndRoutes(t *testing.T) {
	h := newHarness(t, filepath.Join(t.TempDir(), "as.db"), appservice.Config{})
	h.rec.users["@sandcat_u1:example.org"] = true
	h.rec.aliases["#sandcat_g1:example.org"] = true
	cases := []struct {
		name, method, path string
		status             int
		errcode            string
		query              string // what the handler must have been asked ("" = nothing)
	}{
		{"known user", "GET", "/_matrix/app/v1/users/@sandcat_u1:example.org", 200, "", "user @sandcat_u1:example.org"},
		{"escaped user", "GET", "/_matrix/app/v1/users/%40sandcat_u1%3Aexample.org", 200, "", "user @sandcat_u1:example.org"},
		{"unknown user", "GET", "/_matrix/app/v1/users/@sandcat_nobody:example.org", 404, "M_NOT_FOUND", "user @sandcat_nobody:example.org"},
		{"failing user query", "GET", "/_matrix/app/v1/users/@sandcat_broken:example.org", 500, "M_UNKNOWN", "user @sandcat_broken:example.org"},
		{"legacy user", "GET", "/users/@sandcat_u1:example.org", 200, "", "user @sandcat_u1:example.org"},
		{"known alias", "GET", "/_matrix/app/v1/rooms/%23sandcat_g1:example.org", 200, "", "alias #sandcat_g1:example.org"},
		{"unknown alias", "GET", "/_matrix/app/v1/rooms/%23sandcat_g2:example.org", 404, "M_NOT_FOUND", "alias #sandcat_g2:example.org"},
		{"legacy alias", "GET", "/rooms/%23sandcat_g1:example.org", 200, "", "alias #sandcat_g1:example.org"},
		{"ping with empty body", "POST", "/_matrix/app/v1/ping", 200, "", ""},
		{"unknown route", "GET", "/_matrix/app/v1/thirdparty/protocol/irc", 404, "M_UNRECOGNIZED", ""},
		{"unknown root", "GET", "/", 404, "M_UNRECOGNIZED", ""},
		{"legacy ping does not exist", "POST", "/ping", 404, "M_UNRECOGNIZED", ""},
		{"extra segment", "GET", "/_matrix/app/v1/users/@a:b/c", 404, "M_UNRECOGNIZED", ""},
		{"user without id", "GET", "/_matrix/app/v1/users/", 404, "M_UNRECOGNIZED", ""},
		{"wrong method on transactions", "POST", "/_matrix/app/v1/transactions/x", 405, "M_UNRECOGNIZED", ""},
		{"wrong method on users", "PUT", "/_matrix/app/v1/users/@sandcat_u1:example.org", 405, "M_UNRECOGNIZED", ""},
		{"wrong method on ping", "GET", "/_matrix/app/v1/ping", 405, "M_UNRECOGNIZED", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.rec.mu.Lock()
			h.rec.queries = nil
			h.rec.mu.Unlock()
			got := h.do(tc.method, tc.path, nil, bearer)
			if got.status != tc.status || got.errcode != tc.errcode {
				t.Fatalf("%s %s: %d %s (%s), want %d %s", tc.method, tc.path, got.status, got.errcode, got.body, tc.status, tc.errcode)
			}
			h.rec.mu.Lock()
			q := h.rec.queries
			h.rec.mu.Unlock()
			want := []string{}
			if tc.query != "" {
				want = []string{tc.query}
			}
			if !slices.Equal(append([]string{}, q...), want) {
				t.Fatalf("handler asked %v, want %v", q, want)
			}
		})
	}
}
