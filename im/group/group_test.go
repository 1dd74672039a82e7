package group_test

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
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/mux"

	"github.com/sandcat-im/sandcat/im/group"
	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/postgres/pgtest"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

// tokens: "tok-<user id>" is a valid token of that user.
type tokens struct{}

func (tokens) Verify(_ context.Context, tok string) (string, error) {
	if id, ok := strings.CutPrefix(tok, "tok-"); ok && id != "" {
		return id, nil
	}
	return "", errors.New("bad token")
}

type notice struct {
	msg wire.Msg
	to  []string
}

// recorder is a Sender that records what it is given.
type recorder struct {
	mu   sync.Mutex
	sent []notice
	fail error
}

func (r *recorder) Send(_ context.Context, m *wire.Msg, to []string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fail != nil {
		return r.fail
	}
	r.sent = append(r.sent, notice{msg: m.Clone(), to: slices.Clone(to)})
	return nil
}

// take returns the notices recorded since the last call.
func (r *recorder) take() []notice {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.sent
	r.sent = nil
	return out
}

type user struct {
	id        string
	name      string
	avatar    string
	gender    string
	age       int32
	region    *string
	signature *string
}

func profile(id string, bare bool) user {
	u := user{id: id, name: "name-" + id, avatar: "av-" + id, gender: "male", age: 41}
	if !bare {
		r, s := "region-"+id, "sig-"+id
		u.region, u.signature = &r, &s
	}
	return u
}

type env struct {
	t     *testing.T
	url   string
	sent  *recorder
	store storage.Groups
	users map[string]user
}

type seedFunc func(t *testing.T, u user)

func newEnv(t *testing.T, store storage.Groups) *env {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	rec := &recorder{}
	svc, err := group.New(group.Options{Store: store, Sender: rec, RequireUser: httpx.RequireUser(tokens{}, log), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	svc.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	e := &env{t: t, url: srv.URL, sent: rec, store: store, users: map[string]user{}}
	return e
}

// do sends a request as user `as` ("" for no token) and returns the status and body.
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
	if as != "" {
		req.Header.Set("Authorization", "Bearer tok-"+as)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp.StatusCode, b
}

// expect checks the status; for errors it also checks the error shape and kind.
func (e *env) expect(what string, status int, body []byte, want int, kind string) {
	e.t.Helper()
	if status != want {
		e.t.Fatalf("%s: status %d, want %d; body %s", what, status, want, body)
	}
	if kind == "" {
		return
	}
	m := asMap(e.t, body)
	keysAre(e.t, what+" error", m, "kind", "details")
	if m["kind"] != kind {
		e.t.Errorf("%s: kind %v, want %s", what, m["kind"], kind)
	}
}

// noNotice checks that nothing was sent since the last take.
func (e *env) noNotice(what string) {
	e.t.Helper()
	if n := e.sent.take(); len(n) != 0 {
		e.t.Errorf("%s: %d notices sent, want none: %+v", what, len(n), n[0].msg)
	}
}

// oneNotice returns the single notice sent since the last take, checking the frame fields.
func (e *env) oneNotice(what string, typ wire.MsgType, actor, gid string) notice {
	e.t.Helper()
	n := e.sent.take()
	if len(n) != 1 {
		e.t.Fatalf("%s: %d notices, want 1", what, len(n))
	}
	m := n[0].msg
	if m.MsgType != typ || m.SendID != actor || m.ReceiverID != gid || m.GroupID != gid || m.ContentType != wire.ContentDefault ||
		len(m.LocalID) != ids.Size || m.CreateTime <= 0 {
		e.t.Errorf("%s: notice frame %+v; want type %v from %s to group %s", what, m, typ, actor, gid)
	}
	if slices.Contains(n[0].to, actor) {
		e.t.Errorf("%s: the actor %s is among the recipients", what, actor)
	}
	return n[0]
}

func asMap(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("body %s is not a JSON object: %v", b, err)
	}
	return m
}

func asList(t *testing.T, b []byte) []any {
	t.Helper()
	var l []any
	if err := json.Unmarshal(b, &l); err != nil || l == nil {
		t.Fatalf("body %s is not a JSON array: %v", b, err)
	}
	return l
}

func keysAre(t *testing.T, what string, m map[string]any, keys ...string) {
	t.Helper()
	got := make([]string, 0, len(m))
	for k := range m {
		got = append(got, k)
	}
	slices.Sort(got)
	want := slices.Clone(keys)
	slices.Sort(want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s: keys %v, want %v", what, got, want)
	}
}

var infoKeys = []string{"id", "owner", "name", "avatar", "description", "announcement", "create_time", "update_time"}

// checkInfo checks a GroupInfo JSON object field by field.
func checkInfo(t *testing.T, what string, v any, want wire.GroupInfo) {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: %v is not an object", what, v)
	}
	keysAre(t, what, m, infoKeys...)
	wantM := map[string]any{"id": want.ID, "owner": want.Owner, "name": want.Name, "avatar": want.Avatar,
		"description": want.Description, "announcement": want.Announcement,
		"create_time": float64(want.CreateTime), "update_time": float64(want.UpdateTime)}
	if !reflect.DeepEqual(m, wantM) {
		t.Errorf("%s: %v, want %v", what, m, wantM)
	}
}

func infoOf(t *testing.T, v any) wire.GroupInfo {
	t.Helper()
	b, _ := json.Marshal(v)
	var g wire.GroupInfo
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return g
}

// checkMember checks a GroupMember JSON object field by field against the user's profile.
func (e *env) checkMember(what string, v any, gid string, role int32) string {
	e.t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		e.t.Fatalf("%s: %v is not an object", what, v)
	}
	keysAre(e.t, what, m, "age", "group_id", "user_id", "group_name", "avatar", "joined_at", "region", "gender", "remark", "signature", "role")
	uid, _ := m["user_id"].(string)
	u, ok := e.users[uid]
	if !ok {
		e.t.Fatalf("%s: unknown user %v", what, m["user_id"])
	}
	var region any
	if u.region != nil {
		region = *u.region
	}
	sig := ""
	if u.signature != nil {
		sig = *u.signature
	}
	joined, _ := m["joined_at"].(float64)
	if joined <= 0 {
		e.t.Errorf("%s: joined_at %v", what, m["joined_at"])
	}
	want := map[string]any{"age": float64(u.age), "group_id": gid, "user_id": u.id, "group_name": u.name, "avatar": u.avatar,
		"joined_at": joined, "region": region, "gender": u.gender, "remark": nil, "signature": sig, "role": float64(role)}
	if !reflect.DeepEqual(m, want) {
		e.t.Errorf("%s: %v, want %v", what, m, want)
	}
	return uid
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func without(s []string, drop ...string) []string {
	return slices.DeleteFunc(slices.Clone(s), func(x string) bool { return slices.Contains(drop, x) })
}

func (e *env) memberIDs(gid string) []string {
	e.t.Helper()
	ids, err := e.store.GroupMemberIDs(context.Background(), gid)
	if err != nil {
		e.t.Fatal(err)
	}
	return ids
}

func (e *env) sameSet(what string, got, want []string) {
	e.t.Helper()
	if !reflect.DeepEqual(sorted(got), sorted(want)) {
		e.t.Errorf("%s: %d ids %v, want %d ids %v", what, len(got), sorted(got), len(want), sorted(want))
	}
}

func TestRoutesSQLite(t *testing.T) {
	s := sqlite.OpenTest(t)
	scenario(t, s, func(t *testing.T, u user) {
		if _, err := s.DB().Exec(`INSERT INTO users (id, name, account, password, salt, signature, avatar, gender, age, region,
			create_time, update_time) VALUES (?, ?, ?, 'x', 'x', ?, ?, ?, ?, ?, 1, 1)`,
			u.id, u.name, u.id, u.signature, u.avatar, u.gender, u.age, u.region); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRoutesPostgres(t *testing.T) {
	s := pgtest.Open(t)
	scenario(t, s, func(t *testing.T, u user) {
		if _, err := s.Pool().Exec(context.Background(), `INSERT INTO users (id, name, account, password, salt, signature, avatar,
			gender, age, region, create_time, update_time) VALUES ($1, $2, $3, 'x', 'x', $4, $5, $6, $7, $8, 1, 1)`,
			u.id, u.name, u.id, u.signature, u.avatar, u.gender, u.age, u.region); err != nil {
			t.Fatal(err)
		}
	})
}

func scenario(t *testing.T, store storage.Groups, seed seedFunc) {
	e := newEnv(t, store)
	add := func(bare bool) string {
		u := profile(ids.New(), bare)
		seed(t, u)
		e.users[u.id] = u
		return u.id
	}
	owner := add(false)
	others := make([]string, 49)
	for i := range others {
		others[i] = add(i%7 == 0) // some members have NULL region and signature
	}
	outsider, late, stranger := add(false), add(true), add(false)
	m1, m2, m3, m4, m5, adminA, adminB := others[1], others[2], others[3], others[4], others[5], others[10], others[11]
	ghost := "ghost" + ids.New()

	// ---- create
	createBody := map[string]any{"id": "ignored", "owner": m1, "avatar": "a1,a2", "group_name": "team",
		"members_id": append(slices.Clone(others), "", m1, ghost, owner)}
	st, b := e.do(http.MethodPost, "/group/"+owner, "", createBody)
	e.expect("create without token", st, b, http.StatusUnauthorized, httpx.KindUnAuthorized)
	st, b = e.do(http.MethodPost, "/group/"+owner, m1, createBody)
	e.expect("create for another user", st, b, http.StatusForbidden, httpx.KindForbidden)
	e.noNotice("refused create")

	st, b = e.do(http.MethodPost, "/group/"+owner, owner, createBody)
	e.expect("create", st, b, http.StatusOK, "")
	inv := asMap(t, b)
	keysAre(t, "GroupInvitation", inv, "info", "members")
	info := infoOf(t, inv["info"])
	gid := info.ID
	if len(gid) != ids.Size || gid == "ignored" || info.CreateTime <= 0 || info.UpdateTime != info.CreateTime {
		t.Fatalf("created info %+v", info)
	}
	checkInfo(t, "create info", inv["info"], wire.GroupInfo{ID: gid, Owner: owner, Name: "team", Avatar: "a1,a2",
		CreateTime: info.CreateTime, UpdateTime: info.CreateTime})
	members, _ := inv["members"].([]any)
	if len(members) != 50 {
		t.Fatalf("create: %d members, want 50", len(members))
	}
	var gotIDs []string
	for i, m := range members {
		role := wire.RoleMember
		if i == 0 {
			role = wire.RoleOwner // the owner comes first
		}
		gotIDs = append(gotIDs, e.checkMember(fmt.Sprintf("create member %d", i), m, gid, role))
	}
	e.sameSet("create members", gotIDs, append([]string{owner}, others...))
	n := e.oneNotice("create", wire.MsgTypeGroupInvitation, owner, gid)
	e.sameSet("create recipients", n.to, others)
	var gi wire.GroupInvitation
	if err := gi.UnmarshalBincode(n.msg.Content); err != nil {
		t.Fatalf("GroupInvitation content: %v", err)
	}
	var respInv wire.GroupInvitation
	if err := json.Unmarshal(b, &respInv); err != nil || !reflect.DeepEqual(respInv, gi) {
		t.Errorf("GroupInvitation content differs from the response (%v):\n%+v\n%+v", err, gi, respInv)
	}

	// ---- get
	st, b = e.do(http.MethodGet, "/group/"+m1+"/"+gid, m1, nil)
	e.expect("get", st, b, http.StatusOK, "")
	checkInfo(t, "get", asMap(t, b), info)
	st, b = e.do(http.MethodGet, "/group/"+outsider+"/"+gid, outsider, nil)
	e.expect("get by a non-member", st, b, http.StatusForbidden, httpx.KindForbidden)
	st, b = e.do(http.MethodGet, "/group/"+m1+"/"+gid, outsider, nil)
	e.expect("get with another user's token", st, b, http.StatusForbidden, httpx.KindForbidden)
	st, b = e.do(http.MethodGet, "/group/"+m1+"/"+ids.New(), m1, nil)
	e.expect("get a missing group", st, b, http.StatusNotFound, httpx.KindNotFound)

	// ---- members
	st, b = e.do(http.MethodGet, "/group/member/"+m1+"/"+gid, m1, nil)
	e.expect("members", st, b, http.StatusOK, "")
	gm := asMap(t, b)
	keysAre(t, "members body", gm, "group", "members")
	checkInfo(t, "members group", gm["group"], info)
	if l, _ := gm["members"].([]any); len(l) != 50 {
		t.Errorf("members: %d, want 50", len(l))
	} else {
		e.checkMember("members[0]", l[0], gid, wire.RoleOwner)
	}
	st, b = e.do(http.MethodGet, "/group/member/"+outsider+"/"+gid, outsider, nil)
	e.expect("members by a non-member", st, b, http.StatusForbidden, httpx.KindForbidden)

	// ---- member subset
	bare := others[0] // i%7 == 0: NULL region and signature
	st, b = e.do(http.MethodPost, "/group/member", m1, map[string]any{"user_id": m1, "group_id": gid, "mem_ids": []string{m2, bare, outsider, ghost}})
	e.expect("member subset", st, b, http.StatusOK, "")
	sub := asList(t, b)
	if len(sub) != 2 {
		t.Fatalf("member subset: %d members, want 2: %s", len(sub), b)
	}
	var subIDs []string
	for i, m := range sub {
		subIDs = append(subIDs, e.checkMember(fmt.Sprintf("subset %d", i), m, gid, wire.RoleMember))
	}
	e.sameSet("member subset", subIDs, []string{m2, bare})
	if m := sub[slices.Index(subIDs, bare)].(map[string]any); m["region"] != nil || m["signature"] != "" {
		t.Errorf("bare member: region %v signature %v", m["region"], m["signature"])
	}
	st, b = e.do(http.MethodPost, "/group/member", m1, map[string]any{"user_id": m1, "group_id": gid, "mem_ids": []string{}})
	e.expect("empty member subset", st, b, http.StatusOK, "")
	if len(asList(t, b)) != 0 {
		t.Errorf("empty subset: %s", b)
	}
	st, b = e.do(http.MethodPost, "/group/member", outsider, map[string]any{"user_id": outsider, "group_id": gid, "mem_ids": []string{m1}})
	e.expect("member subset by a non-member", st, b, http.StatusForbidden, httpx.KindForbidden)

	// ---- invite
	st, b = e.do(http.MethodPut, "/group/invite", stranger, map[string]any{"user_id": stranger, "group_id": gid, "members": []string{stranger}})
	e.expect("invite by a non-member", st, b, http.StatusForbidden, httpx.KindForbidden)
	e.noNotice("refused invite")
	st, b = e.do(http.MethodPut, "/group/invite", m1, map[string]any{"user_id": m1, "group_id": gid,
		"members": []string{outsider, m2, outsider, ghost, owner, late, ""}})
	e.expect("invite", st, b, http.StatusOK, "")
	if len(b) != 0 {
		t.Errorf("invite body %q, want empty", b)
	}
	n = e.oneNotice("invite", wire.MsgTypeGroupInviteNew, m1, gid)
	added, err := wire.DecodeStrings(n.msg.Content)
	if err != nil || !reflect.DeepEqual(added, []string{outsider, late}) {
		t.Errorf("GroupInviteNew content = %q, %v; want [outsider late]", added, err)
	}
	e.sameSet("invite recipients (members after, new ones included)", n.to, without(e.memberIDs(gid), m1))
	if !slices.Contains(n.to, late) || !slices.Contains(n.to, owner) {
		t.Errorf("invite recipients miss the new member or the owner")
	}
	st, b = e.do(http.MethodPut, "/group/invite", m1, map[string]any{"user_id": m1, "group_id": gid, "members": []string{outsider, m2, ghost}})
	e.expect("invite only members", st, b, http.StatusOK, "")
	e.noNotice("invite of members only")
	st, b = e.do(http.MethodPut, "/group/invite", m1, map[string]any{"user_id": m1, "group_id": ids.New(), "members": []string{stranger}})
	e.expect("invite to a missing group", st, b, http.StatusNotFound, httpx.KindNotFound)

	// ---- update by a member: refused
	st, b = e.do(http.MethodPut, "/group/"+m1, m1, map[string]any{"id": gid, "name": "hijack", "avatar": "", "description": "", "announcement": "", "update_time": 0})
	e.expect("update by a member", st, b, http.StatusForbidden, httpx.KindForbidden)
	e.noNotice("refused update")
	if g, _ := store.GetGroup(context.Background(), gid); g.Name != "team" {
		t.Errorf("name after a refused update: %q", g.Name)
	}

	// ---- roles (new route)
	setRole := func(as, member string, role int32) (int, []byte) {
		return e.do(http.MethodPut, "/group/member/role", as, map[string]any{"user_id": as, "group_id": gid, "member_id": member, "role": role})
	}
	st, b = setRole(m1, adminA, wire.RoleAdmin)
	e.expect("promote by a member", st, b, http.StatusForbidden, httpx.KindForbidden)
	st, b = setRole(owner, adminA, wire.RoleOwner)
	e.expect("transfer via role", st, b, http.StatusBadRequest, httpx.KindBadRequest)
	st, b = setRole(owner, stranger, wire.RoleAdmin)
	e.expect("promote a non-member", st, b, http.StatusNotFound, httpx.KindNotFound)
	st, b = setRole(owner, owner, wire.RoleMember)
	e.expect("demote the owner", st, b, http.StatusForbidden, httpx.KindForbidden)
	for _, a := range []string{adminA, adminB} {
		st, b = setRole(owner, a, wire.RoleAdmin)
		e.expect("promote", st, b, http.StatusOK, "")
		e.checkMember("promoted", asMap(t, b), gid, wire.RoleAdmin)
	}
	e.noNotice("role changes")

	// ---- update by the owner, with a notice
	st, b = e.do(http.MethodPut, "/group/"+owner, owner, map[string]any{"id": gid, "name": "renamed", "avatar": "", "description": "about", "announcement": "", "update_time": 0})
	e.expect("update by the owner", st, b, http.StatusOK, "")
	up := asMap(t, b)
	info2 := infoOf(t, up)
	want := info
	want.Name, want.Description, want.UpdateTime = "renamed", "about", info2.UpdateTime
	checkInfo(t, "updated info", up, want)
	if info2.UpdateTime < info.UpdateTime {
		t.Errorf("update_time went back: %d < %d", info2.UpdateTime, info.UpdateTime)
	}
	n = e.oneNotice("update", wire.MsgTypeGroupUpdate, owner, gid)
	var ng wire.GroupInfo
	if err := ng.UnmarshalBincode(n.msg.Content); err != nil || ng != info2 {
		t.Errorf("GroupUpdate content = %+v, %v; want %+v", ng, err, info2)
	}
	e.sameSet("update recipients", n.to, without(e.memberIDs(gid), owner))

	// an admin may update too
	st, b = e.do(http.MethodPut, "/group/"+adminA, adminA, map[string]any{"id": gid, "name": "", "avatar": "", "description": "", "announcement": "hello", "update_time": 0})
	e.expect("update by an admin", st, b, http.StatusOK, "")
	info3 := infoOf(t, asMap(t, b))
	e.oneNotice("update by an admin", wire.MsgTypeGroupUpdate, adminA, gid)

	// ---- update without change: no notice
	st, b = e.do(http.MethodPut, "/group/"+owner, owner, map[string]any{"id": gid, "name": "renamed", "avatar": "", "description": "", "announcement": "hello", "update_time": 0})
	e.expect("update without change", st, b, http.StatusOK, "")
	checkInfo(t, "unchanged info", asMap(t, b), info3)
	e.noNotice("update without change")

	// ---- remove
	removeBody := func(as string, ids ...string) map[string]any {
		return map[string]any{"user_id": as, "group_id": gid, "mem_id": ids}
	}
	st, b = e.do(http.MethodDelete, "/group/member", m2, removeBody(m2, m3))
	e.expect("remove by a member", st, b, http.StatusForbidden, httpx.KindForbidden)
	e.noNotice("refused remove")
	if !slices.Contains(e.memberIDs(gid), m3) {
		t.Errorf("m3 removed by a plain member")
	}
	st, b = e.do(http.MethodDelete, "/group/member", adminA, removeBody(adminA, m3, owner))
	e.expect("admin removes the owner", st, b, http.StatusForbidden, httpx.KindForbidden)
	st, b = e.do(http.MethodDelete, "/group/member", adminA, removeBody(adminA, adminB))
	e.expect("admin removes an admin", st, b, http.StatusForbidden, httpx.KindForbidden)
	e.noNotice("refused removes")
	before := e.memberIDs(gid)
	st, b = e.do(http.MethodDelete, "/group/member", adminA, removeBody(adminA, m3, ghost, m4, stranger, m3))
	e.expect("remove by an admin", st, b, http.StatusOK, "")
	n = e.oneNotice("remove", wire.MsgTypeGroupRemoveMember, adminA, gid)
	removed, err := wire.DecodeStrings(n.msg.Content)
	if err != nil || !reflect.DeepEqual(removed, []string{m3, m4}) {
		t.Errorf("GroupRemoveMember content = %q, %v; want [m3 m4]", removed, err)
	}
	e.sameSet("remove recipients (members before, removed included)", n.to, without(before, adminA))
	if slices.Contains(e.memberIDs(gid), m3) || slices.Contains(e.memberIDs(gid), m4) {
		t.Errorf("m3 or m4 still a member")
	}
	st, b = e.do(http.MethodDelete, "/group/member", adminA, removeBody(adminA, m3, m4))
	e.expect("remove non-members", st, b, http.StatusOK, "")
	e.noNotice("nothing removed")
	st, b = e.do(http.MethodGet, "/group/"+m3+"/"+gid, m3, nil)
	e.expect("get by a removed member", st, b, http.StatusForbidden, httpx.KindForbidden)
	st, b = e.do(http.MethodDelete, "/group/member", owner, removeBody(owner, adminB))
	e.expect("owner removes an admin", st, b, http.StatusOK, "")
	e.oneNotice("owner removes an admin", wire.MsgTypeGroupRemoveMember, owner, gid)

	// ---- exit
	exitBody := func(as string, dismiss bool) map[string]any {
		return map[string]any{"user_id": as, "group_id": gid, "is_dismiss": dismiss}
	}
	st, b = e.do(http.MethodDelete, "/group", owner, exitBody(owner, false))
	e.expect("owner exits", st, b, http.StatusForbidden, httpx.KindForbidden)
	st, b = e.do(http.MethodDelete, "/group", stranger, exitBody(stranger, false))
	e.expect("non-member exits", st, b, http.StatusForbidden, httpx.KindForbidden)
	st, b = e.do(http.MethodDelete, "/group", m5, exitBody(m1, false))
	e.expect("exit for another user", st, b, http.StatusForbidden, httpx.KindForbidden)
	e.noNotice("refused exits")
	before = e.memberIDs(gid)
	st, b = e.do(http.MethodDelete, "/group", m5, exitBody(m5, false))
	e.expect("exit", st, b, http.StatusOK, "")
	n = e.oneNotice("exit", wire.MsgTypeGroupMemberExit, m5, gid)
	if len(n.msg.Content) != 0 {
		t.Errorf("GroupMemberExit content %v, want empty", n.msg.Content)
	}
	e.sameSet("exit recipients", n.to, without(before, m5))
	if slices.Contains(e.memberIDs(gid), m5) {
		t.Errorf("m5 still a member after exit")
	}

	// ---- list (new route)
	st, b = e.do(http.MethodGet, "/group/list/"+m1, m1, nil)
	e.expect("list", st, b, http.StatusOK, "")
	if l := asList(t, b); len(l) != 1 {
		t.Errorf("list: %s", b)
	} else {
		checkInfo(t, "listed group", l[0], info3)
	}
	st, b = e.do(http.MethodGet, "/group/list/"+stranger, stranger, nil)
	e.expect("empty list", st, b, http.StatusOK, "")
	if len(asList(t, b)) != 0 {
		t.Errorf("stranger's list: %s", b)
	}

	// ---- a notice that cannot be sent is a 500, not a silent success
	e.sent.mu.Lock()
	e.sent.fail = errors.New("bus down")
	e.sent.mu.Unlock()
	st, b = e.do(http.MethodPut, "/group/"+owner, owner, map[string]any{"id": gid, "name": "while down"})
	e.expect("update while the bus is down", st, b, http.StatusInternalServerError, httpx.KindInternalServer)
	e.sent.mu.Lock()
	e.sent.fail = nil
	e.sent.mu.Unlock()

	// ---- dismiss
	st, b = e.do(http.MethodDelete, "/group", adminA, exitBody(adminA, true))
	e.expect("dismiss by an admin", st, b, http.StatusForbidden, httpx.KindForbidden)
	e.noNotice("refused dismiss")
	if _, err := store.GetGroup(context.Background(), gid); err != nil {
		t.Fatalf("group gone after a refused dismiss: %v", err)
	}
	before = e.memberIDs(gid)
	st, b = e.do(http.MethodDelete, "/group", owner, exitBody(owner, true))
	e.expect("dismiss", st, b, http.StatusOK, "")
	n = e.oneNotice("dismiss", wire.MsgTypeGroupDismiss, owner, gid)
	if len(n.msg.Content) != 0 {
		t.Errorf("GroupDismiss content %v, want empty", n.msg.Content)
	}
	e.sameSet("dismiss recipients (every member)", n.to, without(before, owner))
	if len(n.to) < 40 {
		t.Errorf("dismiss reached %d members", len(n.to))
	}
	st, b = e.do(http.MethodGet, "/group/"+owner+"/"+gid, owner, nil)
	e.expect("get a dismissed group", st, b, http.StatusNotFound, httpx.KindNotFound)
	st, b = e.do(http.MethodDelete, "/group", owner, exitBody(owner, true))
	e.expect("dismiss twice", st, b, http.StatusNotFound, httpx.KindNotFound)
	e.noNotice("second dismiss")
}
