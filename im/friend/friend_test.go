package friend_test

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
	"reflect"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/sandcat-im/sandcat/im/friend"
	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/postgres/pgtest"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

// ---------------------------------------------------------------------------
// Test doubles: a token verifier ("tok-<user id>"), a recording Sender that
// keeps the bincode frames, and a clock that advances 1 ms per reading.

type tokens struct{}

func (tokens) Verify(_ context.Context, tok string) (string, error) {
	if len(tok) > 4 && tok[:4] == "tok-" {
		return tok[4:], nil
	}
	return "", errors.New("bad token")
}

type recorder struct {
	mu     sync.Mutex
	frames [][]byte
	fail   error
}

func (r *recorder) Send(_ context.Context, m *wire.Msg, to []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	if len(to) != 1 || to[0] != m.ReceiverID {
		return fmt.Errorf("recipients %v, want [receiver_id %s]", to, m.ReceiverID)
	}
	r.frames = append(r.frames, m.MarshalBincode())
	return nil
}

// take returns the notices sent since the last call, decoded from bincode.
func (r *recorder) take(t *testing.T) []wire.Msg {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []wire.Msg
	for _, f := range r.frames {
		m, err := wire.DecodeMsg(f)
		if err != nil {
			t.Fatalf("notice does not decode: %v", err)
		}
		out = append(out, m)
	}
	r.frames = nil
	return out
}

type clock struct {
	mu sync.Mutex
	ms int64
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ms++
	return time.UnixMilli(c.ms)
}

func (c *clock) read() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ms
}

// ---------------------------------------------------------------------------
// Backends: the real SQLite and PostgreSQL stores; users rows by plain SQL.

type user struct {
	ID, Name, Avatar, Gender string
	Age                      int32
	Region, Email, Signature *string
}

// friendStore is what the tests need of a backend: friends and user lookups.
type friendStore interface {
	storage.Friends
	friend.Users
}

type backend struct {
	store friendStore
	seed  func(t *testing.T, u user)
}

const insertUser = `INSERT INTO users
	(id, name, account, password, salt, signature, avatar, gender, age, email, region, create_time, update_time)
	VALUES (%s)`

func sqliteBackend(t *testing.T) backend {
	s := sqlite.OpenTest(t)
	return backend{store: s, seed: func(t *testing.T, u user) {
		q := fmt.Sprintf(insertUser, "?, ?, ?, '', '', ?, ?, ?, ?, ?, ?, 1, 1")
		if _, err := s.DB().Exec(q, u.ID, u.Name, u.ID, u.Signature, u.Avatar, u.Gender, u.Age, u.Email, u.Region); err != nil {
			t.Fatal(err)
		}
	}}
}

func postgresBackend(t *testing.T) backend {
	s := pgtest.Open(t)
	return backend{store: s, seed: func(t *testing.T, u user) {
		q := fmt.Sprintf(insertUser, "$1, $2, $1, '', '', $3, $4, $5, $6, $7, $8, 1, 1")
		if _, err := s.Pool().Exec(context.Background(), q, u.ID, u.Name, u.Signature, u.Avatar, u.Gender, u.Age, u.Email, u.Region); err != nil {
			t.Fatal(err)
		}
	}}
}

// ---------------------------------------------------------------------------
// The server under test.

type env struct {
	t      *testing.T
	b      backend
	url    string
	sender *recorder
	clock  *clock
}

func newEnv(t *testing.T, b backend) *env {
	e := &env{t: t, b: b, sender: &recorder{}, clock: &clock{ms: 1_700_000_000_000}}
	svc, err := friend.New(friend.Options{
		Store:       b.store,
		Users:       b.store,
		Sender:      e.sender,
		RequireUser: httpx.RequireUser(tokens{}, nil),
		Now:         e.clock.Now,
		Log:         slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	svc.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	return e
}

func strp(s string) *string { return &s }

func (e *env) newUser(name string, withOptional bool) user {
	u := user{ID: ids.New(), Name: name, Avatar: name + ".png", Gender: "male", Age: 20}
	if withOptional {
		u.Region, u.Email, u.Signature = strp("Oslo"), strp(name+"@example.org"), strp("I am "+name)
	}
	e.b.seed(e.t, u)
	return u
}

// badToken as the acting user of env.do sends an invalid token.
const badToken = "!bad"

// do sends a request as user as (no Authorization header if as is "") and
// returns the status and body.
func (e *env) do(method, path, as string, body any) (int, []byte) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, e.url+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	switch as {
	case "":
	case badToken:
		req.Header.Set("Authorization", "Bearer not-a-token")
	default:
		req.Header.Set("Authorization", "Bearer tok-"+as)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, out
}

// ok sends a request that must succeed and returns the body.
func (e *env) ok(method, path, as string, body any) []byte {
	e.t.Helper()
	st, out := e.do(method, path, as, body)
	if st != http.StatusOK {
		e.t.Fatalf("%s %s as %s: %d %s", method, path, as, st, out)
	}
	return out
}

// fails sends a request that must fail with status and kind (the wire's error shape).
func (e *env) fails(method, path, as string, body any, status int, kind string) {
	e.t.Helper()
	st, out := e.do(method, path, as, body)
	var eb map[string]any
	if err := json.Unmarshal(out, &eb); err != nil {
		e.t.Errorf("%s %s: error body %q: %v", method, path, out, err)
		return
	}
	if st != status || eb["kind"] != kind || len(eb) != 2 {
		e.t.Errorf("%s %s as %s: %d %s; want %d with kind %s", method, path, as, st, out, status, kind)
	}
	if _, ok := eb["details"]; !ok {
		e.t.Errorf("%s %s: error body without details: %s", method, path, out)
	}
}

func object(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("not a JSON object: %s: %v", b, err)
	}
	return m
}

func array(t *testing.T, v any) []map[string]any {
	t.Helper()
	raw, ok := v.([]any)
	if !ok {
		t.Fatalf("not a JSON array: %#v", v)
	}
	out := make([]map[string]any, len(raw))
	for i, x := range raw {
		out[i], ok = x.(map[string]any)
		if !ok {
			t.Fatalf("element %d is not an object: %#v", i, x)
		}
	}
	return out
}

// shape checks that m has exactly the keys of want, with equal values (JSON
// numbers are float64, null is nil; a value of anyValue only checks presence).
func shape(t *testing.T, what string, m, want map[string]any) {
	t.Helper()
	var keys, wantKeys []string
	for k := range m {
		keys = append(keys, k)
	}
	for k := range want {
		wantKeys = append(wantKeys, k)
	}
	sort.Strings(keys)
	sort.Strings(wantKeys)
	if !reflect.DeepEqual(keys, wantKeys) {
		t.Errorf("%s: keys %v, want %v", what, keys, wantKeys)
	}
	for k, w := range want {
		if w == anyValue {
			continue
		}
		if g := m[k]; !reflect.DeepEqual(g, w) {
			t.Errorf("%s: %s = %#v, want %#v", what, k, g, w)
		}
	}
}

type anyT struct{}

var anyValue = anyT{}

func optJSON(p *string) any {
	if p == nil {
		return nil
	}
	return *p
}

func sigJSON(p *string) any {
	if p == nil {
		return ""
	}
	return *p
}

func num(v int64) any { return float64(v) }

// ---------------------------------------------------------------------------

func backends(t *testing.T, fn func(t *testing.T, b backend)) {
	t.Run("sqlite", func(t *testing.T) { fn(t, sqliteBackend(t)) })
	t.Run("postgres", func(t *testing.T) { fn(t, postgresBackend(t)) })
}

// TestFriendLifecycle: request → apply list → agree → both sync lists → remark → delete.
func TestFriendLifecycle(t *testing.T) {
	backends(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		a := e.newUser("alice", true)
		bob := e.newUser("bob", false) // null region and e-mail, no signature

		// A asks B.
		before := e.clock.read()
		resp := object(t, e.ok("POST", "/friend", a.ID, map[string]any{"user_id": a.ID, "friend_id": bob.ID,
			"apply_msg": "hi bob", "req_remark": "B", "source": "search", "platform": 1}))
		fsID, _ := resp["fs_id"].(string)
		if len(fsID) != ids.Size {
			t.Fatalf("fs_id %q", resp["fs_id"])
		}
		created, _ := resp["create_time"].(float64)
		if int64(created) <= before || int64(created) > e.clock.read() {
			t.Errorf("create_time %v not from the clock (%d..%d)", created, before, e.clock.read())
		}
		shape(t, "POST /friend", resp, map[string]any{"fs_id": fsID, "user_id": bob.ID, "name": "bob",
			"avatar": "bob.png", "gender": "male", "age": num(20), "region": nil, "status": num(0), "apply_msg": nil,
			"source": "search", "create_time": created, "account": bob.ID, "remark": "B", "email": nil})

		notes := e.sender.take(t)
		if len(notes) != 1 {
			t.Fatalf("%d notices, want 1", len(notes))
		}
		n := notes[0]
		checkNotice(t, n, wire.MsgTypeFriendApplyReq, a.ID, bob.ID, 1)
		var req wire.FriendshipWithUser
		if err := req.UnmarshalBincode(n.Content); err != nil {
			t.Fatal(err)
		}
		wantReq := wire.FriendshipWithUser{FsID: fsID, UserID: a.ID, Name: "alice", Avatar: "alice.png", Gender: "male",
			Age: 20, Region: strp("Oslo"), Status: wire.FriendPending, ApplyMsg: strp("hi bob"), Source: "search",
			CreateTime: int64(created), Account: a.ID}
		if !reflect.DeepEqual(req, wantReq) {
			t.Errorf("FriendApplyReq content:\n got  %s\n want %s", js(req), js(wantReq))
		}

		// B's apply list and sync show the request; A may not read them.
		applies := array(t, jsonValue(t, e.ok("GET", "/friend/"+bob.ID+"/apply", bob.ID, nil)))
		if len(applies) != 1 {
			t.Fatalf("apply list: %v", applies)
		}
		wantFs := map[string]any{"fs_id": fsID, "user_id": a.ID, "name": "alice", "avatar": "alice.png",
			"gender": "male", "age": num(20), "region": "Oslo", "status": num(0), "apply_msg": "hi bob",
			"source": "search", "create_time": created, "account": a.ID, "remark": nil, "email": nil}
		shape(t, "apply list", applies[0], wantFs)
		e.fails("GET", "/friend/"+bob.ID+"/apply", a.ID, nil, http.StatusForbidden, httpx.KindForbidden)
		e.fails("GET", "/friend/"+bob.ID+"/0", a.ID, nil, http.StatusForbidden, httpx.KindForbidden)
		syncB := object(t, e.ok("GET", "/friend/"+bob.ID+"/0", bob.ID, nil))
		shape(t, "sync before agree", syncB, map[string]any{"friends": []any{}, "fs": anyValue})
		if fs := array(t, syncB["fs"]); len(fs) != 1 {
			t.Errorf("sync fs: %v", fs)
		} else {
			shape(t, "sync fs entry", fs[0], wantFs)
		}
		syncA := object(t, e.ok("GET", "/friend/"+a.ID+"/0", a.ID, nil))
		shape(t, "A's sync before agree (outgoing requests are not listed)", syncA, map[string]any{"friends": []any{}, "fs": []any{}})

		// Only the target may agree.
		e.fails("PUT", "/friend/agree", a.ID, map[string]any{"fs_id": fsID}, http.StatusForbidden, httpx.KindForbidden)
		agreeAt := e.clock.read()
		agreed := object(t, e.ok("PUT", "/friend/agree", bob.ID, map[string]any{"fs_id": fsID, "resp_msg": "yo", "resp_remark": "Al"}))
		agreedTime := agreed["update_time"]
		if ut, _ := agreedTime.(float64); int64(ut) <= agreeAt {
			t.Errorf("agree update_time %v", agreedTime)
		}
		wantBobsEntry := map[string]any{"fs_id": fsID, "friend_id": a.ID, "account": a.ID, "name": "alice",
			"avatar": "alice.png", "gender": "male", "age": num(20), "region": "Oslo", "status": num(1), "remark": "Al",
			"email": "alice@example.org", "source": "search", "signature": "I am alice", "create_time": agreedTime,
			"update_time": agreedTime}
		shape(t, "PUT /friend/agree", agreed, wantBobsEntry)

		notes = e.sender.take(t)
		if len(notes) != 1 {
			t.Fatalf("%d notices after agree, want 1", len(notes))
		}
		checkNotice(t, notes[0], wire.MsgTypeFriendApplyResp, "", a.ID, 0)
		var fr wire.Friend
		if err := fr.UnmarshalBincode(notes[0].Content); err != nil {
			t.Fatal(err)
		}
		ut := int64(agreedTime.(float64))
		wantFr := wire.Friend{FsID: fsID, FriendID: bob.ID, Account: bob.ID, Name: "bob", Avatar: "bob.png",
			Gender: "male", Age: 20, Status: wire.FriendAccepted, Remark: strp("B"), Source: "search",
			CreateTime: ut, UpdateTime: ut}
		if !reflect.DeepEqual(fr, wantFr) {
			t.Errorf("FriendApplyResp content:\n got  %s\n want %s", js(fr), js(wantFr))
		}

		// Both sync lists.
		wantAlicesEntry := map[string]any{"fs_id": fsID, "friend_id": bob.ID, "account": bob.ID, "name": "bob",
			"avatar": "bob.png", "gender": "male", "age": num(20), "region": nil, "status": num(1), "remark": "B",
			"email": nil, "source": "search", "signature": "", "create_time": agreedTime, "update_time": agreedTime}
		syncA = object(t, e.ok("GET", "/friend/"+a.ID+"/0", a.ID, nil))
		shape(t, "A's sync", syncA, map[string]any{"friends": anyValue, "fs": []any{}})
		if fl := array(t, syncA["friends"]); len(fl) != 1 {
			t.Errorf("A's friends: %v", fl)
		} else {
			shape(t, "A's friend", fl[0], wantAlicesEntry)
		}
		syncB = object(t, e.ok("GET", "/friend/"+bob.ID+"/0", bob.ID, nil))
		if fl := array(t, syncB["friends"]); len(fl) != 1 {
			t.Errorf("B's friends: %v", fl)
		} else {
			shape(t, "B's friend", fl[0], wantBobsEntry)
		}
		if fs := array(t, syncB["fs"]); len(fs) != 1 || fs[0]["status"] != num(1) {
			t.Errorf("B's requests after agree: %v", fs)
		}
		if applies := array(t, jsonValue(t, e.ok("GET", "/friend/"+bob.ID+"/apply", bob.ID, nil))); len(applies) != 0 {
			t.Errorf("apply list after agree: %v", applies)
		}

		// Remark.
		e.fails("PUT", "/friend/remark", a.ID, map[string]any{"user_id": a.ID, "friend_id": bob.ID, "remark": ""},
			http.StatusBadRequest, httpx.KindBadRequest)
		e.fails("PUT", "/friend/remark", bob.ID, map[string]any{"user_id": a.ID, "friend_id": bob.ID, "remark": "x"},
			http.StatusForbidden, httpx.KindForbidden)
		e.fails("PUT", "/friend/remark", a.ID, map[string]any{"user_id": a.ID, "friend_id": ids.New(), "remark": "x"},
			http.StatusNotFound, httpx.KindNotFound)
		if out := e.ok("PUT", "/friend/remark", a.ID, map[string]any{"user_id": a.ID, "friend_id": bob.ID, "remark": "Bobby"}); len(out) != 0 {
			t.Errorf("remark body %q, want empty", out)
		}
		since := fmt.Sprint(ut)
		fl := array(t, object(t, e.ok("GET", "/friend/"+a.ID+"/"+since, a.ID, nil))["friends"])
		if len(fl) != 1 || fl[0]["remark"] != "Bobby" {
			t.Errorf("sync after remark: %v", fl)
		}
		if fl := array(t, object(t, e.ok("GET", "/friend/"+bob.ID+"/"+since, bob.ID, nil))["friends"]); len(fl) != 0 {
			t.Errorf("B's sync after A's remark: %v", fl)
		}

		// Delete (by A).
		del := map[string]any{"user_id": a.ID, "friend_id": bob.ID, "fs_id": fsID}
		e.fails("DELETE", "/friend", bob.ID, del, http.StatusForbidden, httpx.KindForbidden)
		e.fails("DELETE", "/friend", a.ID, map[string]any{"user_id": a.ID, "friend_id": bob.ID}, http.StatusBadRequest, httpx.KindBadRequest)
		e.fails("DELETE", "/friend", a.ID, map[string]any{"user_id": a.ID, "friend_id": bob.ID, "fs_id": ids.New()},
			http.StatusNotFound, httpx.KindNotFound)
		if len(e.sender.take(t)) != 0 {
			t.Error("failed calls sent notices")
		}
		if out := e.ok("DELETE", "/friend", a.ID, del); len(out) != 0 {
			t.Errorf("delete body %q, want empty", out)
		}
		notes = e.sender.take(t)
		if len(notes) != 1 {
			t.Fatalf("%d notices after delete, want 1", len(notes))
		}
		checkNotice(t, notes[0], wire.MsgTypeFriendDelete, a.ID, bob.ID, 0)
		if len(notes[0].Content) != 0 {
			t.Errorf("FriendDelete content %v, want empty", notes[0].Content)
		}
		for _, p := range [][2]user{{a, bob}, {bob, a}} {
			fl := array(t, object(t, e.ok("GET", "/friend/"+p[0].ID+"/"+since, p[0].ID, nil))["friends"])
			if len(fl) != 1 || fl[0]["status"] != num(int64(wire.FriendDeleted)) || fl[0]["friend_id"] != p[1].ID {
				t.Errorf("%s's sync after delete: %v", p[0].Name, fl)
			}
		}
	})
}

// TestReRequestBumpsUpdateTime: a second request (bug B14) keeps fs_id and is
// seen by a sync from after the first one.
func TestReRequestBumpsUpdateTime(t *testing.T) {
	backends(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		a, bob := e.newUser("alice", true), e.newUser("bob", true)
		body := map[string]any{"user_id": a.ID, "friend_id": bob.ID, "apply_msg": "hi", "source": "search"}
		first := object(t, e.ok("POST", "/friend", a.ID, body))
		synced := fmt.Sprint(e.clock.read())
		if fs := array(t, object(t, e.ok("GET", "/friend/"+bob.ID+"/"+synced, bob.ID, nil))["fs"]); len(fs) != 0 {
			t.Fatalf("nothing new yet: %v", fs)
		}
		body["apply_msg"] = "hi again"
		second := object(t, e.ok("POST", "/friend", a.ID, body))
		if second["fs_id"] != first["fs_id"] {
			t.Errorf("fs_id changed: %v → %v", first["fs_id"], second["fs_id"])
		}
		if second["create_time"].(float64) <= first["create_time"].(float64) {
			t.Errorf("create_time not bumped: %v → %v", first["create_time"], second["create_time"])
		}
		fs := array(t, object(t, e.ok("GET", "/friend/"+bob.ID+"/"+synced, bob.ID, nil))["fs"])
		if len(fs) != 1 || fs[0]["apply_msg"] != "hi again" || fs[0]["create_time"] != second["create_time"] {
			t.Errorf("re-request not synced: %v", fs)
		}
		if n := e.sender.take(t); len(n) != 2 {
			t.Errorf("%d notices, want one per request", len(n))
		}
	})
}

func TestReject(t *testing.T) {
	backends(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		a, bob := e.newUser("alice", true), e.newUser("bob", true)
		fsID := object(t, e.ok("POST", "/friend", a.ID, map[string]any{"user_id": a.ID, "friend_id": bob.ID, "source": ""}))["fs_id"]
		e.sender.take(t)
		e.fails("PUT", "/friend/reject", a.ID, map[string]any{"fs_id": fsID}, http.StatusForbidden, httpx.KindForbidden)
		e.fails("PUT", "/friend/reject", bob.ID, map[string]any{"fs_id": ids.New()}, http.StatusNotFound, httpx.KindNotFound)
		e.fails("PUT", "/friend/reject", bob.ID, map[string]any{}, http.StatusBadRequest, httpx.KindBadRequest)
		if out := e.ok("PUT", "/friend/reject", bob.ID, map[string]any{"fs_id": fsID, "resp_msg": "no thanks"}); len(out) != 0 {
			t.Errorf("reject body %q", out)
		}
		if n := e.sender.take(t); len(n) != 0 {
			t.Errorf("reject sent %d notices", len(n))
		}
		if applies := array(t, jsonValue(t, e.ok("GET", "/friend/"+bob.ID+"/apply", bob.ID, nil))); len(applies) != 0 {
			t.Errorf("apply list after reject: %v", applies)
		}
		fs := array(t, object(t, e.ok("GET", "/friend/"+bob.ID+"/0", bob.ID, nil))["fs"])
		if len(fs) != 1 || fs[0]["status"] != num(int64(wire.FriendRejected)) {
			t.Errorf("sync after reject: %v", fs)
		}
		e.fails("PUT", "/friend/agree", bob.ID, map[string]any{"fs_id": fsID}, http.StatusConflict, httpx.KindConflict)
		// A new request makes it pending again and agreeable.
		e.ok("POST", "/friend", a.ID, map[string]any{"user_id": a.ID, "friend_id": bob.ID, "source": ""})
		e.ok("PUT", "/friend/agree", bob.ID, map[string]any{"fs_id": fsID})
	})
}

func TestBlock(t *testing.T) {
	backends(t, func(t *testing.T, b backend) {
		e := newEnv(t, b)
		a, bob := e.newUser("alice", true), e.newUser("bob", true)
		pair := map[string]any{"user_id": bob.ID, "friend_id": a.ID}
		e.fails("POST", "/friend/block", a.ID, pair, http.StatusForbidden, httpx.KindForbidden)
		e.fails("POST", "/friend/block", bob.ID, map[string]any{"user_id": bob.ID, "friend_id": bob.ID},
			http.StatusBadRequest, httpx.KindBadRequest)
		e.fails("POST", "/friend/block", bob.ID, map[string]any{"user_id": bob.ID, "friend_id": ids.New()},
			http.StatusNotFound, httpx.KindNotFound)
		if out := e.ok("POST", "/friend/block", bob.ID, pair); len(out) != 0 {
			t.Errorf("block body %q", out)
		}
		if blocked, err := b.store.IsBlocked(context.Background(), bob.ID, a.ID); err != nil || !blocked {
			t.Errorf("IsBlocked after POST /friend/block: %v, %v", blocked, err)
		}
		req := map[string]any{"user_id": a.ID, "friend_id": bob.ID, "source": "search"}
		e.fails("POST", "/friend", a.ID, req, http.StatusForbidden, httpx.KindForbidden)
		if n := e.sender.take(t); len(n) != 0 {
			t.Errorf("a refused request sent %d notices", len(n))
		}
		if applies := array(t, jsonValue(t, e.ok("GET", "/friend/"+bob.ID+"/apply", bob.ID, nil))); len(applies) != 0 {
			t.Errorf("refused request stored: %v", applies)
		}
		// B may still ask A.
		e.ok("POST", "/friend", bob.ID, map[string]any{"user_id": bob.ID, "friend_id": a.ID, "source": "search"})
		e.sender.take(t)

		e.fails("DELETE", "/friend/block", a.ID, pair, http.StatusForbidden, httpx.KindForbidden)
		if out := e.ok("DELETE", "/friend/block", bob.ID, pair); len(out) != 0 {
			t.Errorf("unblock body %q", out)
		}
		e.ok("POST", "/friend", a.ID, req)
		if n := e.sender.take(t); len(n) != 1 || n[0].MsgType != wire.MsgTypeFriendApplyReq {
			t.Errorf("request after unblock: notices %v", n)
		}
	})
}

func TestQuery(t *testing.T) {
	e := newEnv(t, sqliteBackend(t))
	a, bob := e.newUser("alice", true), e.newUser("bob", false)
	for _, u := range []user{a, bob} {
		got := object(t, e.ok("GET", "/friend/query/"+u.ID, a.ID, nil))
		shape(t, "FriendInfo "+u.Name, got, map[string]any{"id": u.ID, "name": u.Name, "avatar": u.Avatar,
			"gender": "male", "age": num(20), "region": optJSON(u.Region), "account": u.ID,
			"signature": sigJSON(u.Signature), "email": optJSON(u.Email)})
	}
	e.fails("GET", "/friend/query/"+ids.New(), a.ID, nil, http.StatusNotFound, httpx.KindNotFound)
}

func TestBadRequests(t *testing.T) {
	e := newEnv(t, sqliteBackend(t))
	a, bob := e.newUser("alice", true), e.newUser("bob", true)
	ghost := ids.New()
	cases := []struct {
		name         string
		method, path string
		as           string
		body         any
		status       int
		kind         string
	}{
		{"no token", "POST", "/friend", "", map[string]any{"user_id": a.ID, "friend_id": bob.ID, "source": ""}, 401, httpx.KindUnAuthorized},
		{"bad token", "GET", "/friend/" + a.ID + "/0", badToken, nil, 401, httpx.KindUnAuthorized},
		{"missing friend_id", "POST", "/friend", a.ID, map[string]any{"user_id": a.ID, "source": ""}, 400, httpx.KindBadRequest},
		{"missing source", "POST", "/friend", a.ID, map[string]any{"user_id": a.ID, "friend_id": bob.ID}, 400, httpx.KindBadRequest},
		{"request to oneself", "POST", "/friend", a.ID, map[string]any{"user_id": a.ID, "friend_id": a.ID, "source": ""}, 400, httpx.KindBadRequest},
		{"request for another user", "POST", "/friend", bob.ID, map[string]any{"user_id": a.ID, "friend_id": bob.ID, "source": ""}, 403, httpx.KindForbidden},
		{"request to an unknown user", "POST", "/friend", a.ID, map[string]any{"user_id": a.ID, "friend_id": ghost, "source": ""}, 404, httpx.KindNotFound},
		{"not JSON", "POST", "/friend", a.ID, "x", 422, httpx.KindBodyParsing},
		{"agree unknown", "PUT", "/friend/agree", a.ID, map[string]any{"fs_id": ids.New()}, 404, httpx.KindNotFound},
		{"agree without fs_id", "PUT", "/friend/agree", a.ID, map[string]any{"resp_msg": "x"}, 400, httpx.KindBadRequest},
		{"bad offline_time", "GET", "/friend/" + a.ID + "/yesterday", a.ID, nil, 400, httpx.KindPathParsing},
		{"remark without friend_id", "PUT", "/friend/remark", a.ID, map[string]any{"user_id": a.ID, "remark": "x"}, 400, httpx.KindBadRequest},
		{"unblock for another user", "DELETE", "/friend/block", a.ID, map[string]any{"user_id": bob.ID, "friend_id": a.ID}, 403, httpx.KindForbidden},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e.t = t
			e.fails(c.method, c.path, c.as, c.body, c.status, c.kind)
		})
	}
	e.t = t
	if n := e.sender.take(t); len(n) != 0 {
		t.Errorf("failed requests sent %d notices", len(n))
	}
}

// A pipeline failure is a 500 in the wire's shape, never a silent success.
func TestSenderFailure(t *testing.T) {
	e := newEnv(t, sqliteBackend(t))
	a, bob := e.newUser("alice", true), e.newUser("bob", true)
	e.sender.fail = errors.New("bus down")
	e.fails("POST", "/friend", a.ID, map[string]any{"user_id": a.ID, "friend_id": bob.ID, "source": ""},
		http.StatusInternalServerError, httpx.KindInternalServer)
}

func checkNotice(t *testing.T, m wire.Msg, typ wire.MsgType, from, to string, platform int32) {
	t.Helper()
	if m.MsgType != typ || m.SendID != from || m.ReceiverID != to || m.ContentType != wire.ContentDefault ||
		m.Platform != platform || len(m.LocalID) != ids.Size || m.CreateTime <= 1_700_000_000_000 ||
		m.ServerID != "" || m.SendTime != 0 || m.Seq != 0 || m.SendSeq != 0 || m.GroupID != "" || m.IsRead ||
		m.RelatedMsgID != nil {
		t.Errorf("notice: %+v; want type %v from %q to %q platform %d", m, typ, from, to, platform)
	}
}

func jsonValue(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("bad JSON %s: %v", b, err)
	}
	return v
}

func js(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
