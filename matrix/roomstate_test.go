package matrix

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/blob/local"
)

// parsed is an event of typ with raw JSON content, parsed as the
// appservice layer does.
func parsed(t *testing.T, typ event.Type, raw string) *event.Event {
	t.Helper()
	evt := &event.Event{Type: typ, Content: event.Content{VeryRaw: json.RawMessage(raw)}}
	if err := evt.Content.ParseRaw(typ); err != nil {
		t.Fatalf("parse %s: %v", raw, err)
	}
	return evt
}

func TestProfileUpdate(t *testing.T) {
	name, topic := event.StateRoomName, event.StateTopic
	name.Class, topic.Class = event.StateEventType, event.StateEventType
	for _, tc := range []struct {
		typ  event.Type
		raw  string
		want storage.GroupUpdate
		ok   bool
	}{
		{name, `{"name":"New name"}`, storage.GroupUpdate{ID: "g", Name: "New name"}, true},
		{topic, `{"topic":"New topic"}`, storage.GroupUpdate{ID: "g", Announcement: "New topic"}, true},
		{name, `{}`, storage.GroupUpdate{ID: "g"}, false},
		{topic, `{"topic":""}`, storage.GroupUpdate{ID: "g"}, false},
	} {
		got, ok := profileUpdate("g", parsed(t, tc.typ, tc.raw))
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s %s: %+v %v, want %+v %v", tc.typ.Type, tc.raw, got, ok, tc.want, tc.ok)
		}
	}
}

func TestEditText(t *testing.T) {
	msg := event.EventMessage
	msg.Class = event.MessageEventType
	for _, tc := range []struct {
		raw, want string
	}{
		{`{"msgtype":"m.text","body":"* fixed","m.new_content":{"msgtype":"m.text","body":"fixed"},
			"m.relates_to":{"rel_type":"m.replace","event_id":"$a"}}`, "✎ fixed"},
		{`{"msgtype":"m.emote","body":"* * waves","m.new_content":{"msgtype":"m.emote","body":"waves"},
			"m.relates_to":{"rel_type":"m.replace","event_id":"$a"}}`, "✎ * waves"},
		{`{"msgtype":"m.image","body":"* new caption","m.new_content":{"msgtype":"m.image","body":"new caption","url":"mxc://x/y"},
			"m.relates_to":{"rel_type":"m.replace","event_id":"$a"}}`, "✎ new caption"},
		// No m.new_content: the fallback body without its "* ".
		{`{"msgtype":"m.text","body":"* fallback only","m.relates_to":{"rel_type":"m.replace","event_id":"$a"}}`, "✎ fallback only"},
	} {
		evt := parsed(t, msg, tc.raw)
		if got := editText(evt.Content.AsMessage()); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.raw, got, tc.want)
		}
		if !isEdit(evt) {
			t.Errorf("%s: not seen as an edit", tc.raw)
		}
	}
	plain := &event.Event{Type: msg, Content: event.Content{VeryRaw: json.RawMessage(`{"msgtype":"m.text","body":"x"}`)}}
	if isEdit(plain) {
		t.Error("a plain message seen as an edit")
	}
}

func TestPrevMembership(t *testing.T) {
	for _, tc := range []struct {
		prev string
		want event.Membership
	}{
		{`{"membership":"ban","reason":"spam"}`, event.MembershipBan},
		{`{"membership":"join","displayname":"x"}`, event.MembershipJoin},
		{`not json`, ""},
		{"", ""},
	} {
		evt := &event.Event{}
		if tc.prev != "" {
			evt.Unsigned.PrevContent = &event.Content{VeryRaw: json.RawMessage(tc.prev)}
		}
		if got := prevMembership(evt); got != tc.want {
			t.Errorf("prev %q: %q, want %q", tc.prev, got, tc.want)
		}
	}
}

func TestForgetJoined(t *testing.T) {
	b := newTestBridge(t)
	room, kept, kicked := id.RoomID("!r:example.org"), b.PuppetID("a"), b.PuppetID("b")
	b.joined[joinKey{room, kept}] = true
	b.joined[joinKey{room, kicked}] = true
	b.forgetJoined(room, kicked)
	if !b.joined[joinKey{room, kept}] || b.joined[joinKey{room, kicked}] {
		t.Fatalf("joined marks after forgetting %s: %v", kicked, b.joined)
	}
}

// joinFakes are the stores of TestJoinPuppetsBounded: users exist, puppets
// are kept in a map, the group has the members given.
type joinFakes struct {
	nopDeps
	mu      sync.Mutex
	puppets map[string]*storage.Puppet
	members []string
}

func (f *joinFakes) GetUser(_ context.Context, uid string) (*storage.User, error) {
	return &storage.User{ID: uid, Name: "name of " + uid}, nil
}
func (f *joinFakes) GroupMemberIDs(context.Context, string) ([]string, error) { return f.members, nil }
func (f *joinFakes) GetPuppet(_ context.Context, uid string) (*storage.Puppet, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.puppets[uid]; ok {
		c := *p
		return &c, nil
	}
	return nil, storage.ErrNotFound
}
func (f *joinFakes) PutPuppet(_ context.Context, p *storage.Puppet) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := *p
	f.puppets[p.UserID] = &c
	return nil
}

// A portal's creation joins at most maxJoinsAtOnce puppets, never a Matrix
// user, and a second pass (the GroupInvitation after the creation) costs
// no join.
func TestJoinPuppetsBounded(t *testing.T) {
	var mu sync.Mutex
	joins := map[string]int{} // user_id asserted -> joins
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/register"):
			_, _ = w.Write([]byte(`{"user_id":"@x:example.org"}`))
		case r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, "/displayname"):
			_, _ = w.Write([]byte(`{}`))
		case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/join"):
			mu.Lock()
			joins[r.URL.Query().Get("user_id")]++
			mu.Unlock()
			_, _ = w.Write([]byte(`{"room_id":"!portal:example.org"}`))
		default:
			http.Error(w, `{"errcode":"M_UNRECOGNIZED"}`, http.StatusNotFound)
		}
	}))
	defer hs.Close()

	f := &joinFakes{puppets: map[string]*storage.Puppet{}}
	var matrixUsers []string
	for i := range maxJoinsAtOnce + 50 {
		uid := fmt.Sprintf("user%03d", i)
		if i%10 == 0 { // every tenth member is a Matrix user
			f.puppets[uid] = &storage.Puppet{UserID: uid, MXID: "@m" + uid + ":other.org", FromMatrix: true, Registered: true}
			matrixUsers = append(matrixUsers, uid)
		}
		f.members = append(f.members, uid)
	}
	blobs, err := local.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{
		Config: Config{HomeserverURL: hs.URL, ServerName: "example.org", ASToken: "as",
			BotLocalpart: "sandcatbot", UserPrefix: "_sandcat_", AliasPrefix: "_sandcat_"},
		Store: f, Users: f, Groups: f, Sender: f, Blobs: blobs, Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	portal := &storage.Portal{GroupID: "g", RoomID: "!portal:example.org"}
	for pass := range 2 {
		if err := b.joinMembers(context.Background(), portal); err != nil {
			t.Fatalf("pass %d: %v", pass, err)
		}
		mu.Lock()
		n := len(joins)
		for u, c := range joins {
			if c != 1 {
				t.Errorf("pass %d: %s joined %d times", pass, u, c)
			}
		}
		mu.Unlock()
		if n != maxJoinsAtOnce {
			t.Fatalf("pass %d: %d puppets joined, want %d", pass, n, maxJoinsAtOnce)
		}
	}
	for _, uid := range matrixUsers {
		if joins[f.puppets[uid].MXID] != 0 {
			t.Errorf("Matrix user %s joined by the bridge", uid)
		}
	}
	// The first members (the owner and admins come first) are the ones.
	if joins[b.PuppetID("user001").String()] != 1 || joins[b.PuppetID(f.members[len(f.members)-1]).String()] != 0 {
		t.Errorf("joined %v: want the first members", joins)
	}
}
