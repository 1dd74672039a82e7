// Package storagetest holds one conformance suite per storage interface; every
// implementation runs them from its own tests.
package storagetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/storage"
)

func strp(s string) *string { return &s }
func i64p(v int64) *int64   { return &v }

// newUser returns a user with every field set, unique per call.
func newUser(name string) *storage.User {
	id := ids.New()
	return &storage.User{
		ID: id, Name: name, Account: id, Password: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA", Salt: "c2FsdA",
		Avatar: "avatar1.png", Gender: "female", Age: 7,
		Phone: strp("1" + id[:9]), Email: strp(id + "@example.com"), Address: strp("addr " + name),
		Region: strp("region " + name), Birthday: i64p(946684800000),
		CreateTime: 1700000000000, UpdateTime: 1700000000000, Signature: "sig " + name,
	}
}

func mustCreate(t *testing.T, s storage.Users, u *storage.User) {
	t.Helper()
	if err := s.CreateUser(context.Background(), u, 5000); err != nil {
		t.Fatalf("CreateUser(%s): %v", u.Name, err)
	}
}

func sameUser(t *testing.T, what string, got, want *storage.User) {
	t.Helper()
	if got == nil {
		t.Fatalf("%s: got nil user", what)
	}
	if !reflect.DeepEqual(*got, *want) {
		t.Fatalf("%s:\n got  %s\n want %s", what, dumpUser(got), dumpUser(want))
	}
}

func dumpUser(u *storage.User) string {
	d := func(p *string) string {
		if p == nil {
			return "<nil>"
		}
		return *p
	}
	b := "<nil>"
	if u.Birthday != nil {
		b = fmt.Sprint(*u.Birthday)
	}
	return fmt.Sprintf("%+v phone=%s email=%s address=%s region=%s birthday=%s",
		*u, d(u.Phone), d(u.Email), d(u.Address), d(u.Region), b)
}

// Users runs the conformance suite of storage.Users against s (an empty store).
func Users(t *testing.T, s storage.Users) {
	t.Run("CreateGet", func(t *testing.T) { usersCreateGet(t, s) })
	t.Run("Conflict", func(t *testing.T) { usersConflict(t, s) })
	t.Run("Lookup", func(t *testing.T) { usersLookup(t, s) })
	t.Run("Update", func(t *testing.T) { usersUpdate(t, s) })
	t.Run("Password", func(t *testing.T) { usersPassword(t, s) })
	t.Run("Search", func(t *testing.T) { usersSearch(t, s) })
	t.Run("Revocation", func(t *testing.T) { usersRevocation(t, s) })
}

func usersCreateGet(t *testing.T, s storage.Users) {
	ctx := context.Background()
	full := newUser("full")
	bare := &storage.User{ID: ids.New(), Name: "bare", Avatar: "avatar2.png", Gender: ""}
	bare.Account = bare.ID
	mustCreate(t, s, full)
	mustCreate(t, s, bare)
	if bare.CreateTime == 0 || bare.UpdateTime != bare.CreateTime {
		t.Fatalf("times not defaulted: %d %d", bare.CreateTime, bare.UpdateTime)
	}
	for _, want := range []*storage.User{full, bare} {
		got, err := s.GetUser(ctx, want.ID)
		if err != nil {
			t.Fatalf("GetUser(%s): %v", want.Name, err)
		}
		sameUser(t, "GetUser "+want.Name, got, want)
	}
	if _, err := s.GetUser(ctx, ids.New()); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetUser(unknown) = %v, want ErrNotFound", err)
	}
}

func usersConflict(t *testing.T, s storage.Users) {
	ctx := context.Background()
	first := newUser("first")
	mustCreate(t, s, first)
	noEmail := newUser("noemail")
	noEmail.Email = nil
	mustCreate(t, s, noEmail)
	tests := []struct {
		name    string
		mutate  func(u *storage.User)
		wantErr error
	}{
		{"same email", func(u *storage.User) { u.Email = strp(*first.Email) }, storage.ErrConflict},
		{"same account", func(u *storage.User) { u.Account = first.Account }, storage.ErrConflict},
		{"same id", func(u *storage.User) { u.ID = first.ID }, storage.ErrConflict},
		{"both without email", func(u *storage.User) { u.Email = nil }, nil},
		{"same phone is allowed", func(u *storage.User) { u.Phone = strp(*first.Phone) }, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newUser(tc.name)
			tc.mutate(u)
			err := s.CreateUser(ctx, u, 5000)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("CreateUser = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil && u.ID != first.ID {
				if _, err := s.GetUser(ctx, u.ID); !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("rejected user was stored: %v", err)
				}
			}
		})
	}
}

func usersLookup(t *testing.T, s storage.Users) {
	ctx := context.Background()
	a := newUser("lookup-a")
	mustCreate(t, s, a)
	c := newUser("lookup-c")
	c.Account = "c" + ids.New()[:12]
	mustCreate(t, s, c)
	// b's phone equals c's account: the account match must win.
	b := newUser("lookup-b")
	b.Phone = strp(c.Account)
	mustCreate(t, s, b)
	tests := []struct {
		name   string
		find   func() (*storage.User, error)
		wantID string
	}{
		{"login by account", func() (*storage.User, error) { return s.UserByLogin(ctx, a.Account) }, a.ID},
		{"login by email", func() (*storage.User, error) { return s.UserByLogin(ctx, *a.Email) }, a.ID},
		{"login by phone", func() (*storage.User, error) { return s.UserByLogin(ctx, *c.Phone) }, c.ID},
		{"login by account other than id, also someone's phone", func() (*storage.User, error) { return s.UserByLogin(ctx, c.Account) }, c.ID},
		{"login unknown", func() (*storage.User, error) { return s.UserByLogin(ctx, "nobody@example.com") }, ""},
		{"login empty", func() (*storage.User, error) { return s.UserByLogin(ctx, "") }, ""},
		{"login by name is not a login", func() (*storage.User, error) { return s.UserByLogin(ctx, a.Name) }, ""},
		{"by email", func() (*storage.User, error) { return s.UserByEmail(ctx, *b.Email) }, b.ID},
		{"by email, account is not email", func() (*storage.User, error) { return s.UserByEmail(ctx, a.Account) }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := tc.find()
			if tc.wantID == "" {
				if !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("got %v, %v; want ErrNotFound", u, err)
				}
				return
			}
			if err != nil || u.ID != tc.wantID {
				t.Fatalf("got %v, %v; want user %s", u, err, tc.wantID)
			}
			if u.Password == "" || u.Salt == "" {
				t.Fatalf("lookup must return the password hash and salt")
			}
		})
	}
}

func usersUpdate(t *testing.T, s storage.Users) {
	ctx := context.Background()
	other := newUser("update-other")
	mustCreate(t, s, other)
	tests := []struct {
		name    string
		upd     storage.UserUpdate
		want    func(u *storage.User)
		wantErr error
	}{
		{"nothing set keeps everything", storage.UserUpdate{}, func(*storage.User) {}, nil},
		{"empty strings and zero birthday keep", storage.UserUpdate{Phone: strp(""), Email: strp(""), Address: strp(""),
			Region: strp(""), Birthday: i64p(0), Signature: strp("")}, func(*storage.User) {}, nil},
		{"every field", storage.UserUpdate{Name: "n2", Avatar: "avatar3.png", Gender: "male", Phone: strp("123"),
			Email: strp("new-" + ids.New() + "@example.com"), Address: strp("a2"), Region: strp("r2"),
			Birthday: i64p(42), Signature: strp("s2")},
			func(u *storage.User) {
				u.Name, u.Avatar, u.Gender, u.Phone, u.Address, u.Region, u.Birthday, u.Signature =
					"n2", "avatar3.png", "male", strp("123"), strp("a2"), strp("r2"), i64p(42), "s2"
			}, nil},
		{"name only", storage.UserUpdate{Name: "only"}, func(u *storage.User) { u.Name = "only" }, nil},
		{"own email again", storage.UserUpdate{}, func(*storage.User) {}, nil}, // Email filled below
		{"email of another user", storage.UserUpdate{Email: strp(*other.Email)}, nil, storage.ErrConflict},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newUser("update")
			u.Signature = ""
			mustCreate(t, s, u)
			tc.upd.ID = u.ID
			if tc.name == "own email again" {
				tc.upd.Email = strp(*u.Email)
			}
			got, err := s.UpdateUser(ctx, &tc.upd, 1800000000000)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("UpdateUser = %v, want %v", err, tc.wantErr)
			}
			stored, gerr := s.GetUser(ctx, u.ID)
			if gerr != nil {
				t.Fatal(gerr)
			}
			if tc.wantErr != nil {
				sameUser(t, "unchanged after error", stored, u)
				return
			}
			want := *u
			tc.want(&want)
			if tc.upd.Email != nil && *tc.upd.Email != "" {
				want.Email = strp(*tc.upd.Email)
			}
			want.UpdateTime = 1800000000000
			sameUser(t, "returned", got, &want)
			sameUser(t, "stored", stored, &want)
		})
	}
	if _, err := s.UpdateUser(ctx, &storage.UserUpdate{ID: ids.New(), Name: "x"}, 1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("UpdateUser(unknown) = %v, want ErrNotFound", err)
	}
}

func usersPassword(t *testing.T, s storage.Users) {
	ctx := context.Background()
	u := newUser("pwd")
	u.Password, u.Salt = "", "" // as created through OAuth
	mustCreate(t, s, u)
	if err := s.SetUserPassword(ctx, u.ID, "hash2", "salt2"); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetUser(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Password != "hash2" || got.Salt != "salt2" {
		t.Fatalf("password/salt = %q/%q", got.Password, got.Salt)
	}
	if err := s.SetUserPassword(ctx, ids.New(), "h", "s"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("SetUserPassword(unknown) = %v, want ErrNotFound", err)
	}
	if err := s.SetUserRegion(ctx, u.ID, "Bavaria"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.GetUser(ctx, u.ID); got.Region == nil || *got.Region != "Bavaria" {
		t.Fatalf("region = %v", got.Region)
	}
	if err := s.SetUserRegion(ctx, ids.New(), "x"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("SetUserRegion(unknown) = %v, want ErrNotFound", err)
	}
}

func usersSearch(t *testing.T, s storage.Users) {
	ctx := context.Background()
	caller := newUser("caller")
	target := newUser("target")
	target.Region, target.Birthday = nil, nil
	mustCreate(t, s, caller)
	mustCreate(t, s, target)
	tests := []struct {
		name, pattern, wantMatch string
	}{
		{"email", *target.Email, storage.MatchEmail},
		{"phone", *target.Phone, storage.MatchPhone},
		{"account", target.Account, storage.MatchAccount},
		{"own email is excluded", *caller.Email, ""},
		{"own account is excluded", caller.Account, ""},
		{"prefix is not a match", target.Account[:10], ""},
		{"name is not a match", target.Name, ""},
		{"unknown", "nobody", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.SearchUser(ctx, caller.ID, tc.pattern)
			if tc.wantMatch == "" {
				if !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("got %+v, %v; want ErrNotFound", got, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			want := storage.UserWithMatchType{ID: target.ID, Name: target.Name, Account: target.Account,
				Avatar: target.Avatar, Gender: target.Gender, Age: target.Age, Email: target.Email,
				MatchType: strp(tc.wantMatch), Signature: target.Signature}
			if !reflect.DeepEqual(*got, want) {
				t.Fatalf("got %+v\nwant %+v", *got, want)
			}
		})
	}
}

func usersRevocation(t *testing.T, s storage.Users) {
	ctx := context.Background()
	a, b := ids.New(), ids.New()
	steps := []struct {
		user   string
		revoke int64 // 0: only read
		want   int64
	}{
		{a, 0, 0},
		{a, 1000, 1000},
		{a, 900, 1000}, // never moves back
		{a, 1001, 1001},
		{b, 0, 0}, // per user
		{b, 5, 5},
		{a, 0, 1001},
	}
	for i, st := range steps {
		if st.revoke != 0 {
			if err := s.RevokeTokens(ctx, st.user, st.revoke); err != nil {
				t.Fatalf("step %d: RevokeTokens: %v", i, err)
			}
		}
		got, err := s.TokensRevokedAt(ctx, st.user)
		if err != nil || got != st.want {
			t.Fatalf("step %d: TokensRevokedAt = %d, %v; want %d", i, got, err, st.want)
		}
	}
}

// UsersSoftDeleted checks that a user marked deleted (by del, which sets
// is_delete in the implementation's own way) is invisible and frees its
// account and e-mail.
func UsersSoftDeleted(t *testing.T, s storage.Users, del func(t *testing.T, id string)) {
	ctx := context.Background()
	caller := newUser("sd-caller")
	u := newUser("sd-deleted")
	mustCreate(t, s, caller)
	mustCreate(t, s, u)
	del(t, u.ID)
	if _, err := s.GetUser(ctx, u.ID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetUser(deleted) = %v", err)
	}
	if _, err := s.UserByLogin(ctx, *u.Email); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("UserByLogin(deleted) = %v", err)
	}
	if _, err := s.UserByEmail(ctx, *u.Email); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("UserByEmail(deleted) = %v", err)
	}
	if _, err := s.SearchUser(ctx, caller.ID, *u.Email); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("SearchUser(deleted) = %v", err)
	}
	if _, err := s.UpdateUser(ctx, &storage.UserUpdate{ID: u.ID, Name: "x"}, 1); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("UpdateUser(deleted) = %v", err)
	}
	again := newUser("sd-again")
	again.Email = strp(*u.Email)
	mustCreate(t, s, again)
	if got, err := s.UserByEmail(ctx, *u.Email); err != nil || got.ID != again.ID {
		t.Fatalf("UserByEmail after re-register = %v, %v", got, err)
	}
}
