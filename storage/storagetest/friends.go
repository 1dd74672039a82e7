package storagetest

import (
	"context"
	"errors"
	"testing"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

// FriendsUser is a users row the Friends suite needs for its joins; the
// backend's seed function inserts it (columns of the original users table;
// password and salt may be anything).
type FriendsUser struct {
	ID        string
	Name      string
	Account   string
	Avatar    string
	Gender    string
	Age       int32
	Region    *string
	Email     *string
	Signature *string
	Deleted   bool // is_delete
}

func friendsStr(s string) *string { return &s }

// Friends runs the conformance suite of storage.Friends against s. seed
// inserts a users row; it is called with fresh ids in every subtest, so s
// may be shared by all of them.
func Friends(t *testing.T, s storage.Friends, seed func(t *testing.T, u FriendsUser)) {
	ctx := context.Background()
	newUser := func(t *testing.T, name string) FriendsUser {
		t.Helper()
		u := FriendsUser{ID: ids.New(), Name: name, Avatar: name + ".png", Gender: "female", Age: 30,
			Region: friendsStr("Lyon"), Email: friendsStr(name + "@example.org"), Signature: friendsStr("hi, " + name)}
		u.Account = u.ID
		seed(t, u)
		return u
	}
	request := func(t *testing.T, from, to FriendsUser, at int64) storage.FriendRequest {
		t.Helper()
		fr, err := s.RequestFriend(ctx, storage.NewFriendRequest{UserID: from.ID, FriendID: to.ID,
			ApplyMsg: friendsStr("hello from " + from.Name), ReqRemark: friendsStr("my " + to.Name), Source: "search", Time: at})
		if err != nil {
			t.Fatalf("RequestFriend: %v", err)
		}
		return fr
	}
	befriend := func(t *testing.T, a, b FriendsUser, at int64) storage.Agreement {
		t.Helper()
		fr := request(t, a, b, at)
		ag, err := s.AgreeFriendRequest(ctx, fr.ID, friendsStr("welcome"), friendsStr("my "+a.Name), at+1)
		if err != nil {
			t.Fatalf("AgreeFriendRequest: %v", err)
		}
		return ag
	}
	mustFriend := func(t *testing.T, user, friend FriendsUser) wire.Friend {
		t.Helper()
		f, err := s.GetFriend(ctx, user.ID, friend.ID)
		if err != nil {
			t.Fatalf("GetFriend(%s, %s): %v", user.Name, friend.Name, err)
		}
		return f
	}
	areFriends := func(t *testing.T, a, b FriendsUser, want bool) {
		t.Helper()
		for _, p := range [][2]FriendsUser{{a, b}, {b, a}} {
			got, err := s.AreFriends(ctx, p[0].ID, p[1].ID)
			if err != nil || got != want {
				t.Errorf("AreFriends(%s, %s) = %v, %v; want %v", p[0].Name, p[1].Name, got, err, want)
			}
		}
	}
	isBlocked := func(t *testing.T, by, whom FriendsUser, want bool) {
		t.Helper()
		got, err := s.IsBlocked(ctx, by.ID, whom.ID)
		if err != nil || got != want {
			t.Errorf("IsBlocked(%s, %s) = %v, %v; want %v", by.Name, whom.Name, got, err, want)
		}
	}

	t.Run("RequestAndGet", func(t *testing.T) {
		a, b := newUser(t, "alice"), newUser(t, "bob")
		fr := request(t, a, b, 1000)
		want := storage.FriendRequest{ID: fr.ID, UserID: a.ID, FriendID: b.ID, Status: wire.FriendPending,
			ApplyMsg: friendsStr("hello from alice"), ReqRemark: friendsStr("my bob"), Source: "search", CreateTime: 1000, UpdateTime: 1000}
		if len(fr.ID) != ids.Size {
			t.Errorf("id %q: want a %d-char nanoid", fr.ID, ids.Size)
		}
		friendsCheckRequest(t, "RequestFriend", fr, want)
		got, err := s.GetFriendRequest(ctx, fr.ID)
		if err != nil {
			t.Fatal(err)
		}
		friendsCheckRequest(t, "GetFriendRequest", got, want)
		if _, err := s.GetFriendRequest(ctx, ids.New()); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("unknown id: %v, want ErrNotFound", err)
		}
		// Null optional fields stay null.
		c := newUser(t, "carol")
		fr2, err := s.RequestFriend(ctx, storage.NewFriendRequest{UserID: c.ID, FriendID: b.ID, Time: 1001})
		if err != nil {
			t.Fatal(err)
		}
		friendsCheckRequest(t, "no optional fields", fr2, storage.FriendRequest{ID: fr2.ID, UserID: c.ID, FriendID: b.ID,
			Status: wire.FriendPending, CreateTime: 1001, UpdateTime: 1001})
	})

	t.Run("ReRequestBumpsTimesKeepsID", func(t *testing.T) {
		a, b := newUser(t, "alice"), newUser(t, "bob")
		fr := request(t, a, b, 1000)
		if _, err := s.RejectFriendRequest(ctx, fr.ID, friendsStr("no"), 2000); err != nil {
			t.Fatal(err)
		}
		again, err := s.RequestFriend(ctx, storage.NewFriendRequest{UserID: a.ID, FriendID: b.ID,
			ApplyMsg: friendsStr("please"), ReqRemark: friendsStr("bobby"), Source: "group", Time: 3000})
		if err != nil {
			t.Fatal(err)
		}
		friendsCheckRequest(t, "re-request", again, storage.FriendRequest{ID: fr.ID, UserID: a.ID, FriendID: b.ID,
			Status: wire.FriendPending, ApplyMsg: friendsStr("please"), ReqRemark: friendsStr("bobby"), Source: "group",
			CreateTime: 3000, UpdateTime: 3000})
		list, err := s.ListFriendRequestsSince(ctx, b.ID, 2000)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].FsID != fr.ID || list[0].Status != wire.FriendPending || list[0].CreateTime != 3000 {
			t.Errorf("sync after re-request (B14): %+v", list)
		}
	})

	t.Run("Agree", func(t *testing.T) {
		a, b := newUser(t, "alice"), newUser(t, "bob")
		fr := request(t, a, b, 1000)
		ag, err := s.AgreeFriendRequest(ctx, fr.ID, friendsStr("welcome"), friendsStr("my alice"), 2000)
		if err != nil {
			t.Fatal(err)
		}
		friendsCheckRequest(t, "agreed request", ag.Request, storage.FriendRequest{ID: fr.ID, UserID: a.ID, FriendID: b.ID,
			Status: wire.FriendAccepted, ApplyMsg: friendsStr("hello from alice"), ReqRemark: friendsStr("my bob"),
			RespMsg: friendsStr("welcome"), RespRemark: friendsStr("my alice"), Source: "search", CreateTime: 1000, UpdateTime: 2000})
		wantForRequester := friendsEntryOf(b, fr.ID, wire.FriendAccepted, friendsStr("my bob"), "search", 2000, 2000)
		wantForAgreer := friendsEntryOf(a, fr.ID, wire.FriendAccepted, friendsStr("my alice"), "search", 2000, 2000)
		friendsCheckFriend(t, "ForRequester", ag.ForRequester, wantForRequester)
		friendsCheckFriend(t, "ForAgreer", ag.ForAgreer, wantForAgreer)
		friendsCheckFriend(t, "GetFriend(a, b)", mustFriend(t, a, b), wantForRequester)
		friendsCheckFriend(t, "GetFriend(b, a)", mustFriend(t, b, a), wantForAgreer)
		areFriends(t, a, b, true)

		// Agreeing again is idempotent and keeps create_time.
		ag2, err := s.AgreeFriendRequest(ctx, fr.ID, friendsStr("welcome"), friendsStr("my alice"), 2500)
		if err != nil {
			t.Fatalf("second agree: %v", err)
		}
		if ag2.ForAgreer.CreateTime != 2000 || ag2.ForAgreer.UpdateTime != 2500 || ag2.ForAgreer.Status != wire.FriendAccepted {
			t.Errorf("second agree: %+v", ag2.ForAgreer)
		}
		if _, err := s.AgreeFriendRequest(ctx, ids.New(), nil, nil, 3000); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("agree unknown: %v, want ErrNotFound", err)
		}
		if _, err := s.RejectFriendRequest(ctx, fr.ID, nil, 3000); !errors.Is(err, storage.ErrConflict) {
			t.Errorf("reject accepted: %v, want ErrConflict", err)
		}
		if _, err := s.GetFriend(ctx, a.ID, newUser(t, "dave").ID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("GetFriend of a stranger: %v, want ErrNotFound", err)
		}
	})

	t.Run("Reject", func(t *testing.T) {
		a, b := newUser(t, "alice"), newUser(t, "bob")
		fr := request(t, a, b, 1000)
		got, err := s.RejectFriendRequest(ctx, fr.ID, friendsStr("sorry"), 2000)
		if err != nil {
			t.Fatal(err)
		}
		want := storage.FriendRequest{ID: fr.ID, UserID: a.ID, FriendID: b.ID, Status: wire.FriendRejected,
			ApplyMsg: friendsStr("hello from alice"), ReqRemark: friendsStr("my bob"), RespMsg: friendsStr("sorry"), Source: "search",
			CreateTime: 1000, UpdateTime: 2000}
		friendsCheckRequest(t, "rejected", got, want)
		if _, err := s.RejectFriendRequest(ctx, fr.ID, friendsStr("sorry"), 2100); err != nil {
			t.Errorf("reject twice: %v", err)
		}
		if _, err := s.AgreeFriendRequest(ctx, fr.ID, nil, nil, 3000); !errors.Is(err, storage.ErrConflict) {
			t.Errorf("agree rejected: %v, want ErrConflict", err)
		}
		if _, err := s.RejectFriendRequest(ctx, ids.New(), nil, 3000); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("reject unknown: %v, want ErrNotFound", err)
		}
		areFriends(t, a, b, false)
		if _, err := s.GetFriend(ctx, a.ID, b.ID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("friends row after a reject: %v, want ErrNotFound", err)
		}
	})

	t.Run("ListFriendsSince", func(t *testing.T) {
		a, b, c := newUser(t, "alice"), newUser(t, "bob"), newUser(t, "carol")
		// carol has no region, e-mail nor signature: null, null and "".
		d := FriendsUser{ID: ids.New(), Name: "dan", Avatar: "d.png", Gender: "male", Age: 7}
		d.Account = d.ID
		seed(t, d)
		gone := FriendsUser{ID: ids.New(), Name: "gone", Avatar: "g.png", Gender: "male", Deleted: true}
		gone.Account = gone.ID
		seed(t, gone)
		agB := befriend(t, a, b, 1000) // rows at 1001
		befriend(t, a, c, 2000)        // rows at 2001
		agD := befriend(t, d, a, 3000) // rows at 3001; a's row: remark = resp_remark "my dan"
		// A row towards a deleted user is not listed (agreeing with one is refused, see below).
		if err := s.BlockUser(ctx, a.ID, gone.ID, 4000); err != nil {
			t.Fatal(err)
		}
		frGone := request(t, gone, a, 4100)
		if _, err := s.AgreeFriendRequest(ctx, frGone.ID, nil, nil, 4200); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("agree with a deleted user: %v, want ErrNotFound", err)
		}
		if fr, err := s.GetFriendRequest(ctx, frGone.ID); err != nil || fr.Status != wire.FriendPending {
			t.Errorf("failed agree was not rolled back: %+v, %v", fr, err)
		}

		list, err := s.ListFriendsSince(ctx, a.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 3 {
			t.Fatalf("full sync: %d entries, want 3 (deleted user excluded): %+v", len(list), list)
		}
		friendsCheckFriend(t, "bob", list[0], agB.ForRequester)
		if list[1].FriendID != c.ID {
			t.Errorf("second entry %s, want carol", list[1].Name)
		}
		friendsCheckFriend(t, "dan", list[2], friendsEntryOf(d, agD.Request.ID, wire.FriendAccepted, friendsStr("my dan"), "search", 3001, 3001))
		if list[2].Region != nil || list[2].Email != nil || list[2].Signature != "" {
			t.Errorf("null columns: region %v email %v signature %q", list[2].Region, list[2].Email, list[2].Signature)
		}
		list, err = s.ListFriendsSince(ctx, a.ID, 2001)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].FriendID != d.ID {
			t.Errorf("since 2001: %+v, want dan only", list)
		}
		list, err = s.ListFriendsSince(ctx, ids.New(), 0)
		if err != nil || list == nil || len(list) != 0 {
			t.Errorf("unknown user: %v, %v; want an empty non-nil list", list, err)
		}
	})

	t.Run("ListFriendRequests", func(t *testing.T) {
		a, b, c, d := newUser(t, "alice"), newUser(t, "bob"), newUser(t, "carol"), newUser(t, "dan")
		gone := FriendsUser{ID: ids.New(), Name: "gone", Avatar: "g.png", Gender: "male", Deleted: true}
		gone.Account = gone.ID
		seed(t, gone)
		frB := request(t, b, a, 1000)
		frC := request(t, c, a, 2000)
		request(t, a, d, 2500) // outgoing: not listed for a
		frD := request(t, d, a, 3000)
		request(t, gone, a, 3500)
		if _, err := s.RejectFriendRequest(ctx, frC.ID, nil, 4000); err != nil {
			t.Fatal(err)
		}
		all, err := s.ListFriendRequestsSince(ctx, a.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(all) != 3 {
			t.Fatalf("requests: %d, want 3: %+v", len(all), all)
		}
		friendsCheckRequestWithUser(t, "bob's", all[0], wire.FriendshipWithUser{FsID: frB.ID, UserID: b.ID, Name: "bob",
			Avatar: "bob.png", Gender: "female", Age: 30, Region: friendsStr("Lyon"), Status: wire.FriendPending,
			ApplyMsg: friendsStr("hello from bob"), Source: "search", CreateTime: 1000, Account: b.Account})
		if all[1].FsID != frD.ID || all[2].FsID != frC.ID || all[2].Status != wire.FriendRejected {
			t.Errorf("order by update time / statuses: %+v", all)
		}
		since, err := s.ListFriendRequestsSince(ctx, a.ID, 3000)
		if err != nil {
			t.Fatal(err)
		}
		if len(since) != 1 || since[0].FsID != frC.ID {
			t.Errorf("since 3000: %+v, want carol's rejected request", since)
		}
		pending, err := s.ListPendingFriendRequests(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) != 2 || pending[0].FsID != frB.ID || pending[1].FsID != frD.ID {
			t.Errorf("pending: %+v, want bob's and dan's", pending)
		}
		none, err := s.ListPendingFriendRequests(ctx, ids.New())
		if err != nil || none == nil || len(none) != 0 {
			t.Errorf("no requests: %v, %v; want an empty non-nil list", none, err)
		}
	})

	t.Run("DeleteFriend", func(t *testing.T) {
		a, b, c := newUser(t, "alice"), newUser(t, "bob"), newUser(t, "carol")
		ag := befriend(t, a, b, 1000)
		fs := ag.Request.ID
		if err := s.DeleteFriend(ctx, a.ID, c.ID, fs, 2000); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("delete with a third user: %v, want ErrNotFound", err)
		}
		if err := s.DeleteFriend(ctx, c.ID, b.ID, fs, 2000); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("delete by a third user: %v, want ErrNotFound", err)
		}
		if err := s.DeleteFriend(ctx, a.ID, b.ID, ids.New(), 2000); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("delete unknown fs: %v, want ErrNotFound", err)
		}
		areFriends(t, a, b, true)
		if err := s.DeleteFriend(ctx, b.ID, a.ID, fs, 2000); err != nil { // the target deletes
			t.Fatal(err)
		}
		areFriends(t, a, b, false)
		for _, p := range [][2]FriendsUser{{a, b}, {b, a}} {
			list, err := s.ListFriendsSince(ctx, p[0].ID, 1001)
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 1 || list[0].FriendID != p[1].ID || list[0].Status != wire.FriendDeleted || list[0].UpdateTime != 2000 {
				t.Errorf("%s's sync after delete: %+v", p[0].Name, list)
			}
		}
		fr, err := s.GetFriendRequest(ctx, fs)
		if err != nil || fr.Status != wire.FriendDeleted || fr.UpdateTime != 2000 {
			t.Errorf("friendship after delete: %+v, %v", fr, err)
		}
		if _, err := s.AgreeFriendRequest(ctx, fs, nil, nil, 2100); !errors.Is(err, storage.ErrConflict) {
			t.Errorf("agree deleted: %v, want ErrConflict", err)
		}

		// Friends again: new request (same id), agree; rows Accepted with new times.
		again := request(t, a, b, 3000)
		if again.ID != fs {
			t.Errorf("re-request id %s, want %s", again.ID, fs)
		}
		ag2, err := s.AgreeFriendRequest(ctx, fs, nil, friendsStr("B"), 3001)
		if err != nil {
			t.Fatal(err)
		}
		if ag2.ForAgreer.Status != wire.FriendAccepted || ag2.ForAgreer.CreateTime != 3001 ||
			ag2.ForAgreer.UpdateTime != 3001 || ag2.ForAgreer.Remark == nil || *ag2.ForAgreer.Remark != "B" {
			t.Errorf("friends again: %+v", ag2.ForAgreer)
		}
		areFriends(t, a, b, true)
	})

	t.Run("SetFriendRemark", func(t *testing.T) {
		a, b, c := newUser(t, "alice"), newUser(t, "bob"), newUser(t, "carol")
		befriend(t, a, b, 1000)
		if err := s.SetFriendRemark(ctx, a.ID, b.ID, "Bobby", 2000); err != nil {
			t.Fatal(err)
		}
		f := mustFriend(t, a, b)
		if f.Remark == nil || *f.Remark != "Bobby" || f.UpdateTime != 2000 {
			t.Errorf("after remark: remark %v update_time %d", f.Remark, f.UpdateTime)
		}
		if g := mustFriend(t, b, a); g.Remark == nil || *g.Remark != "my alice" || g.UpdateTime != 1001 {
			t.Errorf("the other side changed: %+v", g)
		}
		if err := s.SetFriendRemark(ctx, a.ID, c.ID, "x", 2000); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("remark on a stranger: %v, want ErrNotFound", err)
		}
	})

	t.Run("BlockStranger", func(t *testing.T) {
		a, b := newUser(t, "alice"), newUser(t, "bob")
		isBlocked(t, a, b, false)
		if err := s.BlockUser(ctx, a.ID, b.ID, 1000); err != nil {
			t.Fatal(err)
		}
		isBlocked(t, a, b, true)
		isBlocked(t, b, a, false)
		areFriends(t, a, b, false)
		f := mustFriend(t, a, b)
		if f.Status != wire.FriendBlacked || f.UpdateTime != 1000 || len(f.FsID) != ids.Size {
			t.Errorf("block row: %+v", f)
		}
		if err := s.BlockUser(ctx, a.ID, b.ID, 1500); err != nil {
			t.Fatalf("block twice: %v", err)
		}
		if err := s.UnblockUser(ctx, a.ID, b.ID, 2000); err != nil {
			t.Fatal(err)
		}
		isBlocked(t, a, b, false)
		areFriends(t, a, b, false)
		if f := mustFriend(t, a, b); f.Status != wire.FriendDeleted || f.UpdateTime != 2000 {
			t.Errorf("after unblock: status %d update_time %d, want Deleted at 2000", f.Status, f.UpdateTime)
		}
		if err := s.UnblockUser(ctx, a.ID, b.ID, 3000); err != nil {
			t.Fatal(err)
		}
		if f := mustFriend(t, a, b); f.UpdateTime != 2000 {
			t.Errorf("unblock of an unblocked user changed the row: %+v", f)
		}
		if err := s.UnblockUser(ctx, b.ID, a.ID, 3000); err != nil {
			t.Errorf("unblock without a row: %v", err)
		}
	})

	t.Run("BlockFriend", func(t *testing.T) {
		a, b := newUser(t, "alice"), newUser(t, "bob")
		ag := befriend(t, a, b, 1000)
		if err := s.BlockUser(ctx, a.ID, b.ID, 2000); err != nil {
			t.Fatal(err)
		}
		isBlocked(t, a, b, true)
		areFriends(t, a, b, false)
		f := mustFriend(t, a, b)
		if f.Status != wire.FriendBlacked || f.FsID != ag.Request.ID || f.Remark == nil || *f.Remark != "my bob" {
			t.Errorf("blocked friend row: %+v", f)
		}
		list, err := s.ListFriendsSince(ctx, a.ID, 1001)
		if err != nil || len(list) != 1 || list[0].Status != wire.FriendBlacked {
			t.Errorf("sync shows the block: %+v, %v", list, err)
		}
		if err := s.UnblockUser(ctx, a.ID, b.ID, 3000); err != nil {
			t.Fatal(err)
		}
		isBlocked(t, a, b, false)
		areFriends(t, a, b, true)
		if f := mustFriend(t, a, b); f.Status != wire.FriendAccepted || f.UpdateTime != 3000 || f.CreateTime != 1001 {
			t.Errorf("after unblock: %+v", f)
		}
	})

	t.Run("BlockSurvivesDelete", func(t *testing.T) {
		a, b := newUser(t, "alice"), newUser(t, "bob")
		ag := befriend(t, a, b, 1000)
		if err := s.BlockUser(ctx, a.ID, b.ID, 2000); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteFriend(ctx, b.ID, a.ID, ag.Request.ID, 3000); err != nil {
			t.Fatal(err)
		}
		isBlocked(t, a, b, true)
		if f := mustFriend(t, b, a); f.Status != wire.FriendDeleted {
			t.Errorf("deleter's row: %+v", f)
		}
		if err := s.UnblockUser(ctx, a.ID, b.ID, 4000); err != nil {
			t.Fatal(err)
		}
		isBlocked(t, a, b, false)
		if f := mustFriend(t, a, b); f.Status != wire.FriendDeleted || f.UpdateTime != 4000 {
			t.Errorf("unblock after the friendship ended: %+v, want Deleted", f)
		}
		areFriends(t, a, b, false)
	})
}

// friendOf is the wire.Friend describing u in another user's list.
func friendsEntryOf(u FriendsUser, fsID string, status int32, remark *string, source string, created, updated int64) wire.Friend {
	sig := ""
	if u.Signature != nil {
		sig = *u.Signature
	}
	return wire.Friend{FsID: fsID, FriendID: u.ID, Account: u.Account, Name: u.Name, Avatar: u.Avatar,
		Gender: u.Gender, Age: u.Age, Region: u.Region, Status: status, Remark: remark, Email: u.Email,
		Source: source, Signature: sig, CreateTime: created, UpdateTime: updated}
}

func friendsEqStr(a, b *string) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }

func friendsShowStr(p *string) string {
	if p == nil {
		return "<nil>"
	}
	return "&" + *p
}

func friendsCheckRequest(t *testing.T, what string, got, want storage.FriendRequest) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || got.FriendID != want.FriendID || got.Status != want.Status ||
		!friendsEqStr(got.ApplyMsg, want.ApplyMsg) || !friendsEqStr(got.ReqRemark, want.ReqRemark) || !friendsEqStr(got.RespMsg, want.RespMsg) ||
		!friendsEqStr(got.RespRemark, want.RespRemark) || got.Source != want.Source || got.CreateTime != want.CreateTime ||
		got.UpdateTime != want.UpdateTime {
		t.Errorf("%s:\n got  id=%s user=%s friend=%s status=%d apply=%s req_remark=%s resp=%s resp_remark=%s source=%q times=%d/%d\n want id=%s user=%s friend=%s status=%d apply=%s req_remark=%s resp=%s resp_remark=%s source=%q times=%d/%d",
			what, got.ID, got.UserID, got.FriendID, got.Status, friendsShowStr(got.ApplyMsg), friendsShowStr(got.ReqRemark), friendsShowStr(got.RespMsg), friendsShowStr(got.RespRemark), got.Source, got.CreateTime, got.UpdateTime,
			want.ID, want.UserID, want.FriendID, want.Status, friendsShowStr(want.ApplyMsg), friendsShowStr(want.ReqRemark), friendsShowStr(want.RespMsg), friendsShowStr(want.RespRemark), want.Source, want.CreateTime, want.UpdateTime)
	}
}

func friendsCheckFriend(t *testing.T, what string, got, want wire.Friend) {
	t.Helper()
	if got.FsID != want.FsID || got.FriendID != want.FriendID || got.Account != want.Account || got.Name != want.Name ||
		got.Avatar != want.Avatar || got.Gender != want.Gender || got.Age != want.Age || !friendsEqStr(got.Region, want.Region) ||
		got.Status != want.Status || !friendsEqStr(got.Remark, want.Remark) || !friendsEqStr(got.Email, want.Email) ||
		got.Source != want.Source || got.Signature != want.Signature || got.CreateTime != want.CreateTime ||
		got.UpdateTime != want.UpdateTime {
		t.Errorf("%s:\n got  %+v region=%s remark=%s email=%s\n want %+v region=%s remark=%s email=%s", what,
			got, friendsShowStr(got.Region), friendsShowStr(got.Remark), friendsShowStr(got.Email), want, friendsShowStr(want.Region), friendsShowStr(want.Remark), friendsShowStr(want.Email))
	}
}

func friendsCheckRequestWithUser(t *testing.T, what string, got, want wire.FriendshipWithUser) {
	t.Helper()
	if got.FsID != want.FsID || got.UserID != want.UserID || got.Name != want.Name || got.Avatar != want.Avatar ||
		got.Gender != want.Gender || got.Age != want.Age || !friendsEqStr(got.Region, want.Region) || got.Status != want.Status ||
		!friendsEqStr(got.ApplyMsg, want.ApplyMsg) || got.Source != want.Source || got.CreateTime != want.CreateTime ||
		got.Account != want.Account || !friendsEqStr(got.Remark, want.Remark) || !friendsEqStr(got.Email, want.Email) {
		t.Errorf("%s:\n got  %+v region=%s apply=%s remark=%s email=%s\n want %+v region=%s apply=%s remark=%s email=%s", what,
			got, friendsShowStr(got.Region), friendsShowStr(got.ApplyMsg), friendsShowStr(got.Remark), friendsShowStr(got.Email),
			want, friendsShowStr(want.Region), friendsShowStr(want.ApplyMsg), friendsShowStr(want.Remark), friendsShowStr(want.Email))
	}
}
