package matrix

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"testing"

	"maunium.net/go/mautrix"
	"maunium.net/go/mautrix/id"

	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/blob/local"
)

// nopDeps satisfy New's non-nil checks; the naming tests never call them.
type nopDeps struct{ Store }

func (nopDeps) GetUser(context.Context, string) (*storage.User, error) {
	return nil, storage.ErrNotFound
}
func (nopDeps) UpdateUser(context.Context, *storage.UserUpdate, int64) (*storage.User, error) {
	return nil, storage.ErrNotFound
}
func (nopDeps) CreateUser(context.Context, *storage.User, int64) error { return nil }
func (nopDeps) GetGroup(context.Context, string) (wire.GroupInfo, error) {
	return wire.GroupInfo{}, storage.ErrNotFound
}
func (nopDeps) GroupMemberIDs(context.Context, string) ([]string, error)            { return nil, nil }
func (nopDeps) GroupMemberRole(context.Context, string, string) (int32, error)      { return 0, nil }
func (nopDeps) AddGroupMembers(context.Context, string, []string) ([]string, error) { return nil, nil }
func (nopDeps) ExitGroup(context.Context, string, string) error                     { return nil }
func (nopDeps) UpdateGroup(context.Context, storage.GroupUpdate) (wire.GroupInfo, bool, error) {
	return wire.GroupInfo{}, false, storage.ErrNotFound
}
func (nopDeps) Send(context.Context, *wire.Msg, []string) error              { return nil }
func (nopDeps) SendKeyed(context.Context, *wire.Msg, []string, string) error { return nil }

func newTestBridge(t *testing.T) *Bridge {
	t.Helper()
	d := nopDeps{}
	blobs, err := local.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Options{
		Config: Config{HomeserverURL: "http://127.0.0.1:1", ServerName: "example.org", ASToken: "as",
			BotLocalpart: "sandcatbot", UserPrefix: "_sandcat_", AliasPrefix: "_sandcat_"},
		Store: d, Users: d, Groups: d, Sender: d, Blobs: blobs,
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPuppetAndAliasNames(t *testing.T) {
	b := newTestBridge(t)
	for _, sid := range []string{"V1pWq3_x-abcDEF012345", "abc", "___", "A-Z_a-z"} {
		mxid := b.PuppetID(sid)
		if _, _, err := mxid.ParseAndValidateStrict(); err != nil {
			t.Errorf("puppet of %q: %s is not a valid user id: %v", sid, mxid, err)
		}
		if got, ok := b.puppetUserID(mxid); !ok || got != sid {
			t.Errorf("puppet %s of %q decodes to %q, %v", mxid, sid, got, ok)
		}
		if !b.ours(mxid) {
			t.Errorf("puppet %s not recognised as the bridge's", mxid)
		}
		alias := b.PortalAlias(sid)
		if got, ok := b.aliasGroupID(alias); !ok || got != sid {
			t.Errorf("alias %s of %q decodes to %q, %v", alias, sid, got, ok)
		}
	}
}

func TestOursAndForeign(t *testing.T) {
	b := newTestBridge(t)
	tests := []struct {
		mxid id.UserID
		ours bool
	}{
		{"@sandcatbot:example.org", true},
		{"@_sandcat_abc:example.org", true},
		{"@_sandcat_abc:other.org", false},
		{"@alice:example.org", false},
		{"@sandcatbot2:example.org", false},
		{"not-an-id", false},
	}
	for _, tt := range tests {
		if got := b.ours(tt.mxid); got != tt.ours {
			t.Errorf("ours(%s) = %v, want %v", tt.mxid, got, tt.ours)
		}
	}
	for _, bad := range []id.RoomAlias{"#_sandcat_abc:other.org", "#other:example.org", "_sandcat_abc:example.org", "#_sandcat_:example.org"} {
		if g, ok := b.aliasGroupID(bad); ok {
			t.Errorf("aliasGroupID(%s) = %q, want none", bad, g)
		}
	}
	if _, ok := b.puppetUserID("@_sandcat_:example.org"); ok {
		t.Error("an empty puppet suffix decoded")
	}
}

func TestMatrixUserIDStable(t *testing.T) {
	a, a2, c := matrixUserID("@alice:example.org"), matrixUserID("@alice:example.org"), matrixUserID("@bob:example.org")
	if a != a2 || a == c || len(a) != 21 {
		t.Fatalf("matrixUserID: %q %q %q", a, a2, c)
	}
}

func TestInviteRefusesOwnUsers(t *testing.T) {
	b := newTestBridge(t)
	for _, mxid := range []id.UserID{"@sandcatbot:example.org", "@_sandcat_x:example.org", "nope"} {
		if _, err := b.InviteMatrixUser(context.Background(), "g", mxid); !errors.Is(err, ErrBadMXID) {
			t.Errorf("InviteMatrixUser(%s) accepted", mxid)
		}
	}
}

func TestPermanent(t *testing.T) {
	status := func(code int) error {
		return fmt.Errorf("send: %w", mautrix.HTTPError{Response: &http.Response{StatusCode: code}})
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"user or group gone", fmt.Errorf("puppet: %w", storage.ErrNotFound), true},
		{"refused by the homeserver", status(http.StatusForbidden), true},
		{"bad request", status(http.StatusBadRequest), true},
		{"rate limited", status(http.StatusTooManyRequests), false},
		{"homeserver failing", status(http.StatusBadGateway), false},
		{"connection refused", mautrix.HTTPError{WrappedError: errors.New("connection refused")}, false},
		{"database down", errors.New("sqlite: busy"), false},
	}
	for _, tt := range tests {
		if got := permanent(tt.err); got != tt.want {
			t.Errorf("%s: permanent = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestDMKey(t *testing.T) {
	sc, mx, ok := parseDMKey(dmKey("alice_Id-1", "matrixU"))
	if !ok || sc != "alice_Id-1" || mx != "matrixU" {
		t.Fatalf("parseDMKey: %q %q %v", sc, mx, ok)
	}
	for _, group := range []string{"V1pWq3_x-abcDEF012345", "dm-like", ""} {
		if _, _, ok := parseDMKey(group); ok {
			t.Errorf("group id %q taken for a DM key", group)
		}
	}
}
