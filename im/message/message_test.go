package message_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	"github.com/sandcat-im/sandcat/im/auth"
	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/message"
	"github.com/sandcat-im/sandcat/im/seq"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

type env struct {
	srv    *httptest.Server
	inbox  *sqlite.Inbox
	alloc  *seq.Allocator
	tokens *auth.Tokens
}

func newEnv(t testing.TB) *env {
	t.Helper()
	store := sqlite.OpenTest(t)
	alloc, err := seq.New(store.SeqCeilings(), seq.Options{Step: 100})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewTokens([]byte("test secret"), store, nil)
	if err != nil {
		t.Fatal(err)
	}
	api, err := message.New(message.Options{
		Inbox: store.Inbox(), Seqs: alloc, RequireUser: httpx.RequireUser(tokens, nil),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	api.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &env{srv: srv, inbox: store.Inbox(), alloc: alloc, tokens: tokens}
}

func (e *env) token(t testing.TB, user string) string {
	t.Helper()
	tok, err := e.tokens.Issue(context.Background(), user, false)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// do sends a request as user ("" for no token); body is marshalled to JSON unless it is a string.
func (e *env) do(t testing.TB, method, path, user string, body any) (int, http.Header, []byte) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+e.token(t, user))
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, out
}

func (e *env) save(t testing.TB, msgs ...wire.Msg) {
	t.Helper()
	entries := make([]storage.InboxEntry, len(msgs))
	for i, m := range msgs {
		entries[i] = storage.InboxEntry{Msg: m}
	}
	if err := e.inbox.Save(context.Background(), entries); err != nil {
		t.Fatal(err)
	}
}

func pullReq(user string, sendStart, sendEnd, start, end int64) map[string]any {
	return map[string]any{"user_id": user, "send_start": sendStart, "send_end": sendEnd, "start": start, "end": end}
}

func (e *env) pull(t testing.TB, user string, sendStart, sendEnd, start, end int64) []wire.Msg {
	t.Helper()
	code, _, body := e.do(t, http.MethodPost, "/message", user, pullReq(user, sendStart, sendEnd, start, end))
	if code != http.StatusOK {
		t.Fatalf("pull: %d %s", code, body)
	}
	var out []wire.Msg
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("pull: decode %s: %v", body, err)
	}
	return out
}

func msg(from, to string, sendTime, seq, sendSeq int64) wire.Msg {
	rel := "quoted-" + ids.New()
	return wire.Msg{
		SendID: from, ReceiverID: to, LocalID: ids.New(), ServerID: ids.New(), CreateTime: sendTime - 3,
		SendTime: sendTime, Seq: seq, MsgType: wire.MsgTypeSingleMsg, ContentType: wire.ContentText,
		Content: []byte("hi"), Platform: wire.PlatformMobile, Avatar: "a.png", Nickname: "nick",
		RelatedMsgID: &rel, SendSeq: sendSeq,
	}
}

func wantError(t *testing.T, what string, code int, body []byte, wantCode int, wantKind string) {
	t.Helper()
	if code != wantCode {
		t.Fatalf("%s: status %d, want %d (%s)", what, code, wantCode, body)
	}
	var e struct {
		Kind    string  `json:"kind"`
		Details *string `json:"details"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Kind != wantKind {
		t.Fatalf("%s: body %s, want kind %s", what, body, wantKind)
	}
}

func TestPullShape(t *testing.T) {
	e := newEnv(t)
	a, b := ids.New(), ids.New()
	m := msg(a, b, 1700000000000, 1, 1)
	m.Content = []byte{0, 7, 255}
	noRel := msg(a, b, 1700000000001, 2, 2)
	noRel.RelatedMsgID = nil
	noRel.Content = nil
	e.save(t, m, noRel)
	code, hdr, body := e.do(t, http.MethodPost, "/message", b, pullReq(b, 0, 0, 0, 10))
	if code != http.StatusOK || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
		t.Fatalf("status %d, content type %q", code, hdr.Get("Content-Type"))
	}
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal(body, &raw); err != nil || len(raw) != 2 {
		t.Fatalf("body %s: %v", body, err)
	}
	fields := []string{"send_id", "receiver_id", "local_id", "server_id", "create_time", "send_time", "seq",
		"msg_type", "content_type", "content", "is_read", "group_id", "platform", "avatar", "nickname",
		"related_msg_id", "send_seq"}
	for i, obj := range raw {
		if len(obj) != len(fields) {
			t.Errorf("message %d has %d fields, want %d: %s", i, len(obj), len(fields), body)
		}
		for _, f := range fields {
			if _, ok := obj[f]; !ok {
				t.Errorf("message %d lacks %q", i, f)
			}
		}
	}
	if got := string(raw[0]["content"]); got != "[0,7,255]" {
		t.Errorf("content = %s, want a number array [0,7,255]", got)
	}
	if got := string(raw[1]["content"]); got != "[]" {
		t.Errorf("empty content = %s, want []", got)
	}
	if got := string(raw[1]["related_msg_id"]); got != "null" {
		t.Errorf("absent related_msg_id = %s, want null", got)
	}
	// every field makes the round trip (B10: related_msg_id, platform, avatar, nickname kept)
	got := e.pull(t, b, 0, 0, 0, 10)
	for i, want := range []wire.Msg{m, noRel} {
		g := got[i]
		if !bytes.Equal(g.Content, want.Content) {
			t.Fatalf("message %d content %v, want %v", i, g.Content, want.Content)
		}
		g.Content, want.Content = nil, nil
		gj, _ := json.Marshal(g)
		wj, _ := json.Marshal(want)
		if !bytes.Equal(gj, wj) {
			t.Fatalf("message %d:\n got  %s\n want %s", i, gj, wj)
		}
	}
	// nothing in range: an empty array, never null
	if code, _, body := e.do(t, http.MethodPost, "/message", b, pullReq(b, 0, 0, 10, 20)); code != 200 || string(body) != "[]" {
		t.Fatalf("empty pull: %d %q, want 200 []", code, body)
	}
}

func TestPullRangesAndOrder(t *testing.T) {
	e := newEnv(t)
	me, f := ids.New(), ids.New()
	in1 := msg(f, me, 3000, 1, 11)
	in2 := msg(f, me, 1000, 2, 12)
	in3 := msg(f, me, 2000, 3, 13)
	out1 := msg(me, f, 2000, 40, 1) // own: sorted by send_seq, returned with seq 0
	out2 := msg(me, f, 2000, 41, 2)
	e.save(t, in1, in2, in3, out1, out2)
	type key struct {
		server string
		seq    int64
	}
	keys := func(ms ...wire.Msg) []key {
		out := make([]key, len(ms))
		for i, m := range ms {
			out[i] = key{m.ServerID, m.Seq}
		}
		return out
	}
	own := func(m wire.Msg) wire.Msg { m.Seq = 0; return m }
	tests := []struct {
		name                           string
		sendStart, sendEnd, start, end int64
		want                           []key
	}{
		// at send_time 2000 the sort keys are out1's send_seq 1, out2's 2, in3's seq 3
		{"everything", 0, 10, 0, 10, keys(in2, own(out1), own(out2), in3, in1)},
		{"recv (1,3]", 0, 0, 1, 3, keys(in2, in3)},
		{"recv (0,1]", 0, 0, 0, 1, keys(in1)},
		{"send (1,2]", 1, 2, 0, 0, keys(own(out2))},
		{"start equals end", 2, 2, 3, 3, nil},
		{"beyond", 2, 100, 3, 100, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := keys(e.pull(t, me, tc.sendStart, tc.sendEnd, tc.start, tc.end)...)
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
	bad := []struct {
		name                           string
		sendStart, sendEnd, start, end int64
	}{
		{"negative start", 0, 0, -1, 5},
		{"negative send_start", -1, 5, 0, 0},
		{"negative end", 0, 0, 0, -1},
		{"start above end", 0, 0, 5, 4},
		{"send_start above send_end", 3, 2, 0, 0},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := e.do(t, http.MethodPost, "/message", me, pullReq(me, tc.sendStart, tc.sendEnd, tc.start, tc.end))
			wantError(t, tc.name, code, body, http.StatusBadRequest, httpx.KindBadRequest)
		})
	}
}

func TestSeq(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u := ids.New()
	seqOf := func(user string) message.SeqResponse {
		t.Helper()
		code, _, body := e.do(t, http.MethodGet, "/message/seq/"+user, user, nil)
		if code != http.StatusOK {
			t.Fatalf("seq: %d %s", code, body)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil || len(raw) != 2 || raw["seq"] == nil || raw["send_seq"] == nil {
			t.Fatalf("seq body %s, want {seq, send_seq}", body)
		}
		var r message.SeqResponse
		if err := json.Unmarshal(body, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if got := seqOf(u); got != (message.SeqResponse{}) {
		t.Fatalf("unknown user: %+v, want zeros (B9)", got)
	}
	for range 2 {
		if _, err := e.alloc.NextSend(ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	for range 3 {
		if _, err := e.alloc.NextRecv(ctx, []string{u}); err != nil {
			t.Fatal(err)
		}
	}
	if got := seqOf(u); got != (message.SeqResponse{Seq: 3, SendSeq: 2}) {
		t.Fatalf("after 3 recv and 2 send: %+v", got)
	}
}

func TestDelete(t *testing.T) {
	e := newEnv(t)
	a, b := ids.New(), ids.New()
	var msgs []wire.Msg
	for i := int64(1); i <= 4; i++ {
		msgs = append(msgs, msg(a, b, 1000+i, i, i))
	}
	e.save(t, msgs...)
	code, _, body := e.do(t, http.MethodDelete, "/message", b, map[string]any{"user_id": b, "msg_id": []int64{1, 3}})
	if code != http.StatusOK || len(body) != 0 {
		t.Fatalf("delete: %d %q, want 200 and an empty body", code, body)
	}
	got := e.pull(t, b, 0, 0, 0, 10)
	if len(got) != 2 || got[0].Seq != 2 || got[1].Seq != 4 {
		t.Fatalf("after delete: %+v", got)
	}
	// the sender's devices lose them too (one entry serves both), the rest stays
	if got := e.pull(t, a, 0, 10, 0, 0); len(got) != 2 {
		t.Fatalf("sender pulls %d, want 2", len(got))
	}
	if code, _, body := e.do(t, http.MethodDelete, "/message", b, map[string]any{"user_id": b, "msg_id": []int64{}}); code != 200 {
		t.Fatalf("delete nothing: %d %s", code, body)
	}
}

func TestAuth(t *testing.T) {
	e := newEnv(t)
	me, other := ids.New(), ids.New()
	e.save(t, msg(me, other, 1000, 1, 1))
	tests := []struct {
		name     string
		method   string
		path     string
		user     string
		body     any
		wantCode int
		wantKind string
	}{
		{"pull of another user", http.MethodPost, "/message", me, pullReq(other, 0, 10, 0, 10), 403, httpx.KindForbidden},
		{"seq of another user", http.MethodGet, "/message/seq/" + other, me, nil, 403, httpx.KindForbidden},
		{"delete of another user", http.MethodDelete, "/message", me, map[string]any{"user_id": other, "msg_id": []int64{1}}, 403, httpx.KindForbidden},
		{"pull without token", http.MethodPost, "/message", "", pullReq(me, 0, 10, 0, 10), 401, httpx.KindUnAuthorized},
		{"seq without token", http.MethodGet, "/message/seq/" + me, "", nil, 401, httpx.KindUnAuthorized},
		{"delete without token", http.MethodDelete, "/message", "", map[string]any{"user_id": me, "msg_id": []int64{1}}, 401, httpx.KindUnAuthorized},
		{"malformed body", http.MethodPost, "/message", me, `{"user_id":`, 400, httpx.KindBodyParsing},
		{"wrong field type", http.MethodPost, "/message", me, `{"user_id":"x","start":"1"}`, 422, httpx.KindBodyParsing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, body := e.do(t, tc.method, tc.path, tc.user, tc.body)
			wantError(t, tc.name, code, body, tc.wantCode, tc.wantKind)
		})
	}
	// the other user's entry is still there
	if got := e.pull(t, other, 0, 0, 0, 10); len(got) != 1 {
		t.Fatalf("other user's inbox: %d entries, want 1", len(got))
	}
	// a bad token is 401
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/message/seq/"+me, nil)
	req.Header.Set("Authorization", "Bearer not.a.token")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", resp.StatusCode)
	}
}

func TestNewRequiresDependencies(t *testing.T) {
	if _, err := message.New(message.Options{}); err == nil {
		t.Fatal("New without dependencies succeeded")
	}
}

// BenchmarkPull100k pulls 100,000 offline messages over HTTP (JSON), page by
// page as a client does: InboxPullLimit messages per request.
func BenchmarkPull100k(b *testing.B) {
	e := newEnv(b)
	me := ids.New()
	const n = 100_000
	batch := make([]wire.Msg, 0, 5000)
	for i := range n {
		m := msg(ids.New(), me, 1700000000000+int64(i), int64(i+1), 0)
		m.Content = []byte(fmt.Sprintf("offline message number %d", i))
		batch = append(batch, m)
		if len(batch) == cap(batch) {
			e.save(b, batch...)
			batch = batch[:0]
		}
	}
	b.ResetTimer()
	for range b.N {
		total, last := 0, int64(0)
		for last < n {
			msgs := e.pull(b, me, 0, 0, last, n)
			if len(msgs) == 0 {
				b.Fatalf("empty page after %d", last)
			}
			total += len(msgs)
			for _, m := range msgs {
				last = max(last, m.Seq)
			}
		}
		if total != n {
			b.Fatalf("pulled %d, want %d", total, n)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/100k")
}
