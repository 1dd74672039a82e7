// Package storagetest holds one conformance suite per storage interface; every
// implementation runs them from its own tests.
package storagetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/wire"
	"github.com/sandcat-im/sandcat/storage"
)

// GroupUser is the users row the Groups suite expects seedUsers to write for
// an id (see GroupUserFor).
type GroupUser struct {
	ID        string
	Name      string
	Account   string
	Avatar    string
	Gender    string
	Age       int32
	Region    *string // NULL when nil
	Signature *string // NULL when nil
}

// GroupUserFor returns the profile seedUsers must store for id: name
// "name-<id>", account id, avatar "avatar-<id>", gender "female", age 30,
// region "region-<id>" and signature "sig-<id>", except that ids starting with
// "bare" have NULL region and signature. Password and salt are any text,
// times any value, is_delete false.
func GroupUserFor(id string) GroupUser {
	u := GroupUser{ID: id, Name: "name-" + id, Account: id, Avatar: "avatar-" + id, Gender: "female", Age: 30}
	if !strings.HasPrefix(id, "bare") {
		r, s := "region-"+id, "sig-"+id
		u.Region, u.Signature = &r, &s
	}
	return u
}

// Groups runs the conformance suite of storage.Groups against s. seedUsers
// must insert users rows for the ids it is given, as GroupUserFor describes.
// Every id the suite uses is fresh, so it can run twice on one database.
func Groups(t *testing.T, s storage.Groups, seedUsers func(t *testing.T, ids ...string)) {
	ctx := context.Background()
	// fresh returns n new user ids with a prefix (prefix "bare" gives NULL region and signature).
	fresh := func(prefix string, n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = prefix + ids.New()
		}
		return out
	}
	users := func(t *testing.T, prefix string, n int) []string {
		t.Helper()
		u := fresh(prefix, n)
		seedUsers(t, u...)
		return u
	}
	create := func(t *testing.T, owner string, members ...string) (wire.GroupInfo, []wire.GroupMember) {
		t.Helper()
		info := wire.GroupInfo{ID: ids.New(), Owner: owner, Name: "g", Avatar: "a1,a2", CreateTime: 1000, UpdateTime: 1000}
		g, m, err := s.CreateGroup(ctx, info, members)
		if err != nil {
			t.Fatalf("CreateGroup: %v", err)
		}
		return g, m
	}
	memberIDs := func(ms []wire.GroupMember) []string {
		out := make([]string, len(ms))
		for i, m := range ms {
			out[i] = m.UserID
		}
		return out
	}
	wantIDs := func(t *testing.T, what string, got, want []string) {
		t.Helper()
		if got == nil {
			t.Errorf("%s: nil slice, want non-nil", what)
		}
		if len(got) == 0 && len(want) == 0 {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %q, want %q", what, got, want)
		}
	}
	wantErr := func(t *testing.T, what string, err, target error) {
		t.Helper()
		if !errors.Is(err, target) {
			t.Errorf("%s: err = %v, want %v", what, err, target)
		}
	}
	role := func(t *testing.T, gid, uid string) int32 {
		t.Helper()
		r, err := s.GroupMemberRole(ctx, gid, uid)
		if err != nil {
			t.Fatalf("GroupMemberRole(%s): %v", uid, err)
		}
		return r
	}

	t.Run("CreateStoresGroupAndExistingMembers", func(t *testing.T) {
		u := users(t, "u", 3)
		bare := users(t, "bare", 1)[0]
		owner, m1, m2 := u[0], u[1], u[2]
		ghost := "ghost" + ids.New()
		info := wire.GroupInfo{ID: ids.New(), Owner: owner, Name: "friends", Avatar: "a,b", Description: "d", Announcement: "n",
			CreateTime: 1700000000123, UpdateTime: 1700000000456}
		g, members, err := s.CreateGroup(ctx, info, []string{m2, "", m1, ghost, m1, bare}) // owner not listed: added anyway
		if err != nil {
			t.Fatalf("CreateGroup: %v", err)
		}
		if g != info {
			t.Errorf("CreateGroup info = %+v, want %+v", g, info)
		}
		got, err := s.GetGroup(ctx, info.ID)
		if err != nil || got != info {
			t.Errorf("GetGroup = %+v, %v; want %+v", got, err, info)
		}
		// Owner first, then by joined_at (all equal), then user id.
		rest := []string{m1, m2, bare}
		slices.Sort(rest)
		want := append([]string{owner}, rest...)
		wantIDs(t, "members", memberIDs(members), want)
		for _, m := range members {
			fx := GroupUserFor(m.UserID)
			wantRole := wire.RoleMember
			if m.UserID == owner {
				wantRole = wire.RoleOwner
			}
			sig := ""
			if fx.Signature != nil {
				sig = *fx.Signature
			}
			wantM := wire.GroupMember{Age: fx.Age, GroupID: info.ID, UserID: fx.ID, GroupName: fx.Name, Avatar: fx.Avatar,
				JoinedAt: info.CreateTime, Region: fx.Region, Gender: fx.Gender, Remark: nil, Signature: sig, Role: wantRole}
			if !reflect.DeepEqual(m, wantM) {
				t.Errorf("member %s = %s, want %s", m.UserID, groupDumpMember(m), groupDumpMember(wantM))
			}
		}
		all, err := s.GroupMembers(ctx, info.ID)
		if err != nil || !reflect.DeepEqual(all, members) {
			t.Errorf("GroupMembers = %v, %v; want the members CreateGroup returned", all, err)
		}
		idsNow, err := s.GroupMemberIDs(ctx, info.ID)
		if err != nil {
			t.Fatalf("GroupMemberIDs: %v", err)
		}
		wantIDs(t, "GroupMemberIDs", idsNow, want)
		if _, err := s.GroupMemberRole(ctx, info.ID, ghost); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("role of a non-user: %v, want ErrNotFound", err)
		}
	})

	t.Run("CreateErrors", func(t *testing.T) {
		u := users(t, "u", 2)
		_, _, err := s.CreateGroup(ctx, wire.GroupInfo{ID: ids.New(), Owner: "ghost" + ids.New(), Name: "x"}, u)
		wantErr(t, "owner is not a user", err, storage.ErrNotFound)

		g, _ := create(t, u[0])
		_, _, err = s.CreateGroup(ctx, wire.GroupInfo{ID: g.ID, Owner: u[1], Name: "other"}, nil)
		wantErr(t, "duplicate group id", err, storage.ErrConflict)
		got, err := s.GetGroup(ctx, g.ID)
		if err != nil || got.Owner != u[0] || got.Name != "g" {
			t.Errorf("after a conflicting create: %+v, %v", got, err)
		}
		mids, _ := s.GroupMemberIDs(ctx, g.ID)
		wantIDs(t, "members after a conflicting create", mids, []string{u[0]})
	})

	t.Run("CreateFillsZeroTimes", func(t *testing.T) {
		owner := users(t, "u", 1)[0]
		before := time.Now().UnixMilli()
		g, m, err := s.CreateGroup(ctx, wire.GroupInfo{ID: ids.New(), Owner: owner, Name: "t"}, nil)
		if err != nil {
			t.Fatalf("CreateGroup: %v", err)
		}
		if g.CreateTime < before || g.UpdateTime != g.CreateTime || len(m) != 1 || m[0].JoinedAt != g.CreateTime {
			t.Errorf("times: info %+v, members %+v, before %d", g, m, before)
		}
	})

	t.Run("CreateFiftyMembers", func(t *testing.T) {
		u := users(t, "u", 51)
		g, m := create(t, u[0], u[1:]...)
		if len(m) != 51 {
			t.Fatalf("members = %d, want 51", len(m))
		}
		n := 0
		for _, x := range m {
			if x.Role == wire.RoleOwner {
				n++
			}
		}
		if n != 1 || m[0].UserID != u[0] {
			t.Errorf("owners = %d, first = %s", n, m[0].UserID)
		}
		mids, _ := s.GroupMemberIDs(ctx, g.ID)
		if len(mids) != 51 {
			t.Errorf("GroupMemberIDs = %d ids", len(mids))
		}
	})

	t.Run("GetMissing", func(t *testing.T) {
		_, err := s.GetGroup(ctx, ids.New())
		wantErr(t, "GetGroup of a missing group", err, storage.ErrNotFound)
		m, err := s.GroupMembers(ctx, ids.New())
		if err != nil || m == nil || len(m) != 0 {
			t.Errorf("GroupMembers of a missing group = %v, %v; want empty", m, err)
		}
		mids, err := s.GroupMemberIDs(ctx, ids.New())
		if err != nil {
			t.Errorf("GroupMemberIDs of a missing group: %v", err)
		}
		wantIDs(t, "GroupMemberIDs of a missing group", mids, nil)
	})

	t.Run("MembersByID", func(t *testing.T) {
		u := users(t, "u", 4)
		g, all := create(t, u[0], u[1], u[2])
		other, _ := create(t, u[3])
		sub, err := s.GroupMembersByID(ctx, g.ID, []string{u[2], "ghost", u[0], u[2], u[3]})
		if err != nil {
			t.Fatalf("GroupMembersByID: %v", err)
		}
		want := []wire.GroupMember{}
		for _, m := range all {
			if m.UserID == u[0] || m.UserID == u[2] {
				want = append(want, m)
			}
		}
		if !reflect.DeepEqual(sub, want) {
			t.Errorf("GroupMembersByID = %v, want %v", memberIDs(sub), memberIDs(want))
		}
		empty, err := s.GroupMembersByID(ctx, g.ID, nil)
		if err != nil || empty == nil || len(empty) != 0 {
			t.Errorf("GroupMembersByID(nil) = %v, %v; want empty", empty, err)
		}
		cross, err := s.GroupMembersByID(ctx, other.ID, []string{u[1]})
		if err != nil || len(cross) != 0 {
			t.Errorf("member of another group = %v, %v; want empty", cross, err)
		}
	})

	t.Run("Roles", func(t *testing.T) {
		u := users(t, "u", 3)
		g, _ := create(t, u[0], u[1])
		if r := role(t, g.ID, u[0]); r != wire.RoleOwner {
			t.Errorf("owner role = %d", r)
		}
		if r := role(t, g.ID, u[1]); r != wire.RoleMember {
			t.Errorf("member role = %d", r)
		}
		_, err := s.GroupMemberRole(ctx, g.ID, u[2])
		wantErr(t, "role of a non-member", err, storage.ErrNotFound)
		_, err = s.GroupMemberRole(ctx, ids.New(), u[0])
		wantErr(t, "role in a missing group", err, storage.ErrNotFound)
	})

	t.Run("AddMembers", func(t *testing.T) {
		u := users(t, "u", 5)
		bare := users(t, "bare", 1)[0]
		g, _ := create(t, u[0], u[1])
		other, _ := create(t, u[4])
		added, err := s.AddGroupMembers(ctx, g.ID, []string{u[1], u[3], "", u[2], u[3], "ghost" + ids.New(), u[0], bare})
		if err != nil {
			t.Fatalf("AddGroupMembers: %v", err)
		}
		wantIDs(t, "added", added, []string{u[3], u[2], bare})
		for _, id := range []string{u[2], u[3], bare} {
			if r := role(t, g.ID, id); r != wire.RoleMember {
				t.Errorf("role of added %s = %d", id, r)
			}
		}
		m, _ := s.GroupMembersByID(ctx, g.ID, []string{bare})
		if len(m) != 1 || m[0].JoinedAt < g.CreateTime || m[0].Region != nil || m[0].Signature != "" || m[0].GroupName != "name-"+bare {
			t.Errorf("added member = %+v", m)
		}
		again, err := s.AddGroupMembers(ctx, g.ID, []string{u[1], u[2]})
		if err != nil {
			t.Fatalf("AddGroupMembers again: %v", err)
		}
		wantIDs(t, "added again", again, nil)
		if r := role(t, g.ID, u[0]); r != wire.RoleOwner {
			t.Errorf("owner role after re-adding the owner = %d", r)
		}
		mids, _ := s.GroupMemberIDs(ctx, other.ID)
		wantIDs(t, "other group untouched", mids, []string{u[4]})
		_, err = s.AddGroupMembers(ctx, ids.New(), []string{u[1]})
		wantErr(t, "add to a missing group", err, storage.ErrNotFound)
	})

	t.Run("SetRole", func(t *testing.T) {
		u := users(t, "u", 3)
		g, _ := create(t, u[0], u[1])
		m, err := s.SetGroupMemberRole(ctx, g.ID, u[1], wire.RoleAdmin)
		if err != nil {
			t.Fatalf("SetGroupMemberRole: %v", err)
		}
		if m.Role != wire.RoleAdmin || m.UserID != u[1] || m.GroupID != g.ID || m.GroupName != "name-"+u[1] {
			t.Errorf("promoted member = %+v", m)
		}
		if r := role(t, g.ID, u[1]); r != wire.RoleAdmin {
			t.Errorf("role after promotion = %d", r)
		}
		if _, err := s.SetGroupMemberRole(ctx, g.ID, u[1], wire.RoleMember); err != nil {
			t.Fatalf("demote: %v", err)
		}
		if r := role(t, g.ID, u[1]); r != wire.RoleMember {
			t.Errorf("role after demotion = %d", r)
		}
		_, err = s.SetGroupMemberRole(ctx, g.ID, u[0], wire.RoleMember)
		wantErr(t, "demote the owner", err, storage.ErrGroupOwner)
		if r := role(t, g.ID, u[0]); r != wire.RoleOwner {
			t.Errorf("owner role = %d", r)
		}
		_, err = s.SetGroupMemberRole(ctx, g.ID, u[2], wire.RoleAdmin)
		wantErr(t, "promote a non-member", err, storage.ErrNotFound)
		for _, bad := range []int32{wire.RoleOwner, 7, -1} {
			if _, err := s.SetGroupMemberRole(ctx, g.ID, u[1], bad); err == nil {
				t.Errorf("role %d accepted", bad)
			}
		}
		if r := role(t, g.ID, u[1]); r != wire.RoleMember {
			t.Errorf("role after refused changes = %d", r)
		}
	})

	t.Run("RemoveMembersByRank", func(t *testing.T) {
		u := users(t, "u", 6)
		owner, admin1, admin2, mem1, mem2, outsider := u[0], u[1], u[2], u[3], u[4], u[5]
		g, _ := create(t, owner, admin1, admin2, mem1, mem2)
		other, _ := create(t, outsider, mem1)
		for _, a := range []string{admin1, admin2} {
			if _, err := s.SetGroupMemberRole(ctx, g.ID, a, wire.RoleAdmin); err != nil {
				t.Fatalf("promote: %v", err)
			}
		}
		cases := []struct {
			name   string
			actor  string
			remove []string
			want   []string
		}{
			{"member removes nobody", mem1, []string{mem2, admin1, owner}, nil},
			{"admin removes neither owner nor admins nor itself", admin1, []string{owner, admin2, admin1}, nil},
			{"admin removes a member", admin1, []string{owner, mem2, "ghost", mem2, outsider}, []string{mem2}},
			{"owner removes admins and members, not itself", owner, []string{mem1, owner, admin2}, []string{mem1, admin2}},
			{"nothing left to remove", owner, []string{mem1, mem2}, nil},
		}
		for _, c := range cases {
			got, err := s.RemoveGroupMembers(ctx, g.ID, c.actor, c.remove)
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			wantIDs(t, c.name, got, c.want)
		}
		mids, _ := s.GroupMemberIDs(ctx, g.ID)
		wantIDs(t, "left", mids, []string{owner, admin1})
		_, err := s.RemoveGroupMembers(ctx, g.ID, outsider, []string{admin1})
		wantErr(t, "non-member actor", err, storage.ErrNotFound)
		mids, _ = s.GroupMemberIDs(ctx, other.ID)
		wantIDs(t, "other group untouched", mids, []string{outsider, mem1})
	})

	t.Run("Exit", func(t *testing.T) {
		u := users(t, "u", 3)
		g, _ := create(t, u[0], u[1])
		err := s.ExitGroup(ctx, g.ID, u[0])
		wantErr(t, "owner exits", err, storage.ErrGroupOwner)
		err = s.ExitGroup(ctx, g.ID, u[2])
		wantErr(t, "non-member exits", err, storage.ErrNotFound)
		if err := s.ExitGroup(ctx, g.ID, u[1]); err != nil {
			t.Fatalf("member exits: %v", err)
		}
		_, err = s.GroupMemberRole(ctx, g.ID, u[1])
		wantErr(t, "role after exit", err, storage.ErrNotFound)
		mids, _ := s.GroupMemberIDs(ctx, g.ID)
		wantIDs(t, "members after exit", mids, []string{u[0]})
		err = s.ExitGroup(ctx, g.ID, u[1])
		wantErr(t, "exit twice", err, storage.ErrNotFound)
	})

	t.Run("Update", func(t *testing.T) {
		owner := users(t, "u", 1)[0]
		g, _ := create(t, owner)
		same, changed, err := s.UpdateGroup(ctx, storage.GroupUpdate{ID: g.ID})
		if err != nil || changed || same != g {
			t.Errorf("empty update = %+v, %v, %v; want unchanged", same, changed, err)
		}
		same, changed, err = s.UpdateGroup(ctx, storage.GroupUpdate{ID: g.ID, Name: g.Name, Avatar: g.Avatar})
		if err != nil || changed || same != g {
			t.Errorf("update to the same values = %+v, %v, %v; want unchanged", same, changed, err)
		}
		before := time.Now().UnixMilli()
		up, changed, err := s.UpdateGroup(ctx, storage.GroupUpdate{ID: g.ID, Name: "new", Announcement: "hello", Description: ""})
		if err != nil || !changed {
			t.Fatalf("update = %v, %v", changed, err)
		}
		want := g
		want.Name, want.Announcement, want.UpdateTime = "new", "hello", up.UpdateTime
		if up != want || up.UpdateTime < before {
			t.Errorf("updated = %+v, want %+v with update_time >= %d", up, want, before)
		}
		got, err := s.GetGroup(ctx, g.ID)
		if err != nil || got != up {
			t.Errorf("GetGroup after update = %+v, %v; want %+v", got, err, up)
		}
		_, _, err = s.UpdateGroup(ctx, storage.GroupUpdate{ID: ids.New(), Name: "x"})
		wantErr(t, "update a missing group", err, storage.ErrNotFound)
	})

	t.Run("UserGroups", func(t *testing.T) {
		u := users(t, "u", 3)
		info1 := wire.GroupInfo{ID: ids.New(), Owner: u[0], Name: "one", CreateTime: 2000, UpdateTime: 2000}
		info2 := wire.GroupInfo{ID: ids.New(), Owner: u[1], Name: "two", CreateTime: 1000, UpdateTime: 1000}
		if _, _, err := s.CreateGroup(ctx, info1, []string{u[1]}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.CreateGroup(ctx, info2, nil); err != nil {
			t.Fatal(err)
		}
		got, err := s.UserGroups(ctx, u[1])
		if err != nil || !reflect.DeepEqual(got, []wire.GroupInfo{info2, info1}) {
			t.Errorf("UserGroups = %+v, %v; want two then one", got, err)
		}
		none, err := s.UserGroups(ctx, u[2])
		if err != nil || none == nil || len(none) != 0 {
			t.Errorf("UserGroups of a user in none = %v, %v; want empty", none, err)
		}
	})

	t.Run("Delete", func(t *testing.T) {
		u := users(t, "u", 3)
		g, _ := create(t, u[0], u[1])
		other, _ := create(t, u[2], u[1])
		if err := s.DeleteGroup(ctx, g.ID); err != nil {
			t.Fatalf("DeleteGroup: %v", err)
		}
		_, err := s.GetGroup(ctx, g.ID)
		wantErr(t, "get after delete", err, storage.ErrNotFound)
		_, err = s.GroupMemberRole(ctx, g.ID, u[1])
		wantErr(t, "role after delete", err, storage.ErrNotFound)
		mids, _ := s.GroupMemberIDs(ctx, g.ID)
		wantIDs(t, "members after delete", mids, nil)
		mine, _ := s.UserGroups(ctx, u[1])
		if len(mine) != 1 || mine[0].ID != other.ID {
			t.Errorf("UserGroups after delete = %+v", mine)
		}
		err = s.DeleteGroup(ctx, g.ID)
		wantErr(t, "delete twice", err, storage.ErrNotFound)
		mids, _ = s.GroupMemberIDs(ctx, other.ID)
		wantIDs(t, "other group untouched", mids, []string{u[2], u[1]})
	})
}

func groupDumpMember(m wire.GroupMember) string {
	opt := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return fmt.Sprintf("%q", *p)
	}
	return fmt.Sprintf("{age:%d group:%s user:%s name:%q avatar:%q joined:%d region:%s gender:%q remark:%s sig:%q role:%d}",
		m.Age, m.GroupID, m.UserID, m.GroupName, m.Avatar, m.JoinedAt, opt(m.Region), m.Gender, opt(m.Remark), m.Signature, m.Role)
}
