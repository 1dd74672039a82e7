package storagetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/storage"
)

// Appservice is the conformance suite of storage.AppserviceStore. The store
// must not hold rows of the ids the suite makes up (fresh nanoids).
func Appservice(t *testing.T, s storage.AppserviceStore) {
	t.Run("TxnMarks", func(t *testing.T) { appserviceTxnMarks(t, s) })
	t.Run("ConcurrentMarkOnce", func(t *testing.T) { appserviceConcurrentMark(t, s) })
	t.Run("Prune", func(t *testing.T) { appservicePrune(t, s) })
	t.Run("Puppets", func(t *testing.T) { appservicePuppets(t, s) })
	t.Run("Portals", func(t *testing.T) { appservicePortals(t, s) })
	t.Run("Messages", func(t *testing.T) { appserviceMessages(t, s) })
}

func appserviceTxnMarks(t *testing.T, s storage.AppserviceStore) {
	ctx := context.Background()
	type kind struct {
		name string
		seen func(context.Context, string) (bool, error)
		mark func(context.Context, string) (bool, error)
	}
	for _, k := range []kind{
		{"txn", s.TxnDone, s.MarkTxn},
		{"event", s.SeenEvent, s.MarkEvent},
	} {
		t.Run(k.name, func(t *testing.T) {
			id, other := "$"+ids.New(), "$"+ids.New()
			steps := []struct {
				op   string // seen | mark
				id   string
				want bool
			}{
				{"seen", id, false},
				{"mark", id, false},
				{"seen", id, true},
				{"mark", id, true},
				{"seen", other, false},
				{"mark", other, false},
				{"mark", other, true},
			}
			for i, st := range steps {
				f := k.seen
				if st.op == "mark" {
					f = k.mark
				}
				got, err := f(ctx, st.id)
				if err != nil {
					t.Fatalf("step %d %s(%s): %v", i, st.op, st.id, err)
				}
				if got != st.want {
					t.Fatalf("step %d %s(%s) = %v, want %v", i, st.op, st.id, got, st.want)
				}
			}
		})
	}
	// Transaction and event marks are separate namespaces.
	shared := ids.New()
	if _, err := s.MarkTxn(ctx, shared); err != nil {
		t.Fatal(err)
	}
	if seen, err := s.SeenEvent(ctx, shared); err != nil || seen {
		t.Fatalf("SeenEvent of an id marked only as txn = %v, %v; want false", seen, err)
	}
}

func appserviceConcurrentMark(t *testing.T, s storage.AppserviceStore) {
	ctx := context.Background()
	const workers = 8
	id := "$" + ids.New()
	var mu sync.Mutex
	first, errs := 0, []error{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			already, err := s.MarkEvent(ctx, id)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if !already {
				first++
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	if first != 1 {
		t.Fatalf("%d concurrent MarkEvent calls reported a first mark, want exactly 1", first)
	}
}

func appservicePrune(t *testing.T, s storage.AppserviceStore) {
	ctx := context.Background()
	txn, ev := ids.New(), "$"+ids.New()
	if _, err := s.MarkTxn(ctx, txn); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkEvent(ctx, ev); err != nil {
		t.Fatal(err)
	}
	// A horizon in the past keeps fresh marks.
	if _, err := s.PruneAppservice(ctx, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if done, _ := s.TxnDone(ctx, txn); !done {
		t.Fatal("prune with an old horizon dropped a fresh txn mark")
	}
	n, err := s.PruneAppservice(ctx, time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if n < 2 {
		t.Fatalf("prune removed %d rows, want at least 2", n)
	}
	if done, _ := s.TxnDone(ctx, txn); done {
		t.Fatal("txn mark survived the prune")
	}
	if seen, _ := s.SeenEvent(ctx, ev); seen {
		t.Fatal("event mark survived the prune")
	}
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: err %v, want %v", what, err, want)
	}
}

func appservicePuppets(t *testing.T, s storage.AppserviceStore) {
	ctx := context.Background()
	a, b := ids.New(), ids.New()
	mxA, mxB := "@sandcat_"+a+":example.org", "@bob_"+b+":matrix.org"
	pa := &storage.Puppet{UserID: a, MXID: mxA}
	if err := s.PutPuppet(ctx, pa); err != nil {
		t.Fatal(err)
	}
	if pa.UpdateTime == 0 {
		t.Fatal("PutPuppet did not set UpdateTime")
	}
	pb := &storage.Puppet{UserID: b, MXID: mxB, FromMatrix: true, Registered: true, Name: "Bob",
		Avatar: "mxc://matrix.org/abc", AvatarMXC: "mxc://matrix.org/abc"}
	if err := s.PutPuppet(ctx, pb); err != nil {
		t.Fatal(err)
	}
	same := func(what string, got *storage.Puppet, err error, want *storage.Puppet) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if *got != *want {
			t.Fatalf("%s = %+v, want %+v", what, *got, *want)
		}
	}
	got, err := s.GetPuppet(ctx, b)
	same("GetPuppet(b)", got, err, pb)
	got, err = s.PuppetByMXID(ctx, mxA)
	same("PuppetByMXID(a)", got, err, pa)

	// Update marks in place.
	pa.Registered, pa.Name, pa.Avatar, pa.AvatarMXC = true, "Alice", "avatar-obj", "mxc://example.org/x"
	if err := s.PutPuppet(ctx, pa); err != nil {
		t.Fatal(err)
	}
	got, err = s.GetPuppet(ctx, a)
	same("GetPuppet(a) after update", got, err, pa)

	// Another user cannot take an MXID.
	err = s.PutPuppet(ctx, &storage.Puppet{UserID: ids.New(), MXID: mxB})
	wantErr(t, "PutPuppet with a taken mxid", err, storage.ErrConflict)

	for _, tc := range []struct {
		name string
		err  error
	}{
		{"GetPuppet unknown", func() error { _, err := s.GetPuppet(ctx, ids.New()); return err }()},
		{"PuppetByMXID unknown", func() error { _, err := s.PuppetByMXID(ctx, "@nobody:"+ids.New()); return err }()},
		{"DeletePuppet unknown", s.DeletePuppet(ctx, ids.New())},
	} {
		wantErr(t, tc.name, tc.err, storage.ErrNotFound)
	}
	if err := s.DeletePuppet(ctx, b); err != nil {
		t.Fatal(err)
	}
	_, err = s.PuppetByMXID(ctx, mxB)
	wantErr(t, "PuppetByMXID after delete", err, storage.ErrNotFound)
	// The freed MXID can be reused.
	if err := s.PutPuppet(ctx, &storage.Puppet{UserID: ids.New(), MXID: mxB, FromMatrix: true}); err != nil {
		t.Fatalf("reuse of a deleted puppet's mxid: %v", err)
	}
}

func appservicePortals(t *testing.T, s storage.AppserviceStore) {
	ctx := context.Background()
	g1, g2 := ids.New(), ids.New()
	p1 := &storage.Portal{GroupID: g1, RoomID: "!" + ids.New() + ":example.org", Alias: "#sandcat_" + g1 + ":example.org"}
	if err := s.CreatePortal(ctx, p1); err != nil {
		t.Fatal(err)
	}
	if p1.CreateTime == 0 {
		t.Fatal("CreatePortal did not set CreateTime")
	}
	// Plumbed rooms may have no alias; several may.
	p2 := &storage.Portal{GroupID: g2, RoomID: "!" + ids.New() + ":matrix.org", Plumbed: true, CreateTime: 1234}
	if err := s.CreatePortal(ctx, p2); err != nil {
		t.Fatal(err)
	}
	p3 := &storage.Portal{GroupID: ids.New(), RoomID: "!" + ids.New() + ":matrix.org", Plumbed: true}
	if err := s.CreatePortal(ctx, p3); err != nil {
		t.Fatalf("second portal without alias: %v", err)
	}
	for _, tc := range []struct {
		name string
		get  func() (*storage.Portal, error)
		want *storage.Portal
	}{
		{"GetPortal", func() (*storage.Portal, error) { return s.GetPortal(ctx, g1) }, p1},
		{"PortalByRoom", func() (*storage.Portal, error) { return s.PortalByRoom(ctx, p2.RoomID) }, p2},
		{"PortalByAlias", func() (*storage.Portal, error) { return s.PortalByAlias(ctx, p1.Alias) }, p1},
	} {
		got, err := tc.get()
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if *got != *tc.want {
			t.Fatalf("%s = %+v, want %+v", tc.name, *got, *tc.want)
		}
	}
	conflicts := []struct {
		name string
		p    storage.Portal
	}{
		{"same group", storage.Portal{GroupID: g1, RoomID: "!" + ids.New() + ":x"}},
		{"same room", storage.Portal{GroupID: ids.New(), RoomID: p1.RoomID}},
		{"same alias", storage.Portal{GroupID: ids.New(), RoomID: "!" + ids.New() + ":x", Alias: p1.Alias}},
	}
	for _, tc := range conflicts {
		p := tc.p
		wantErr(t, "CreatePortal "+tc.name, s.CreatePortal(ctx, &p), storage.ErrConflict)
	}
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"GetPortal unknown", func() error { _, err := s.GetPortal(ctx, ids.New()); return err }()},
		{"PortalByRoom unknown", func() error { _, err := s.PortalByRoom(ctx, "!"+ids.New()+":x"); return err }()},
		{"PortalByAlias unknown", func() error { _, err := s.PortalByAlias(ctx, "#"+ids.New()+":x"); return err }()},
		{"PortalByAlias empty", func() error { _, err := s.PortalByAlias(ctx, ""); return err }()},
		{"DeletePortal unknown", s.DeletePortal(ctx, ids.New())},
	} {
		wantErr(t, tc.name, tc.err, storage.ErrNotFound)
	}
	if err := s.DeletePortal(ctx, g1); err != nil {
		t.Fatal(err)
	}
	_, err := s.PortalByRoom(ctx, p1.RoomID)
	wantErr(t, "PortalByRoom after delete", err, storage.ErrNotFound)
	// Unbridged: the group can be bridged again, to the same room and alias.
	again := &storage.Portal{GroupID: g1, RoomID: p1.RoomID, Alias: p1.Alias}
	if err := s.CreatePortal(ctx, again); err != nil {
		t.Fatalf("re-bridge after delete: %v", err)
	}
}

func appserviceMessages(t *testing.T, s storage.AppserviceStore) {
	ctx := context.Background()
	room := "!" + ids.New() + ":example.org"
	ms := make([]*storage.BridgedMessage, 3)
	for i := range ms {
		ms[i] = &storage.BridgedMessage{ServerID: ids.New(), EventID: fmt.Sprintf("$%s-%d", ids.New(), i), RoomID: room}
		if err := s.AddMessage(ctx, ms[i]); err != nil {
			t.Fatal(err)
		}
		if ms[i].CreateTime == 0 {
			t.Fatal("AddMessage did not set CreateTime")
		}
	}
	for i, m := range ms {
		got, err := s.MessageByServerID(ctx, m.ServerID)
		if err != nil || *got != *m {
			t.Fatalf("MessageByServerID(%d) = %+v, %v; want %+v", i, got, err, *m)
		}
		got, err = s.MessageByEventID(ctx, m.EventID)
		if err != nil || *got != *m {
			t.Fatalf("MessageByEventID(%d) = %+v, %v; want %+v", i, got, err, *m)
		}
	}
	for _, tc := range []struct {
		name string
		m    storage.BridgedMessage
	}{
		{"same server_id", storage.BridgedMessage{ServerID: ms[0].ServerID, EventID: "$" + ids.New(), RoomID: room}},
		{"same event_id", storage.BridgedMessage{ServerID: ids.New(), EventID: ms[1].EventID, RoomID: room}},
	} {
		m := tc.m
		wantErr(t, "AddMessage "+tc.name, s.AddMessage(ctx, &m), storage.ErrConflict)
	}
	_, err := s.MessageByServerID(ctx, ids.New())
	wantErr(t, "MessageByServerID unknown", err, storage.ErrNotFound)
	_, err = s.MessageByEventID(ctx, "$"+ids.New())
	wantErr(t, "MessageByEventID unknown", err, storage.ErrNotFound)
}

// AppserviceStalePuppets is the conformance suite of StalePuppets: a
// puppet is stale once its user is updated after the puppet row was
// written, and fresh again when the row is written after the update. The
// two stores share one database (the users table and matrix_puppets).
func AppserviceStalePuppets(t *testing.T, s storage.AppserviceStore, users storage.Users) {
	ctx := context.Background()
	now := time.Now().UnixMilli()
	mk := func(name string, fromMatrix, registered bool) *storage.User {
		u := newUser(name)
		u.CreateTime, u.UpdateTime = now-60_000, now-60_000
		mustCreate(t, users, u)
		if err := s.PutPuppet(ctx, &storage.Puppet{UserID: u.ID, MXID: "@p_" + u.ID + ":example.org",
			FromMatrix: fromMatrix, Registered: registered, Name: name}); err != nil {
			t.Fatal(err)
		}
		return u
	}
	alice, bob := mk("alice", false, true), mk("bob", false, true)
	fromMatrix, unregistered := mk("matrix", true, true), mk("unregistered", false, false)
	stale := func(want ...string) {
		t.Helper()
		got, err := s.StalePuppets(ctx, 100)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("StalePuppets = %v, want %v", got, want)
		}
	}
	stale()
	rename := func(u *storage.User, name string, at int64) {
		t.Helper()
		if _, err := users.UpdateUser(ctx, &storage.UserUpdate{ID: u.ID, Name: name}, at); err != nil {
			t.Fatal(err)
		}
	}
	// Updates after the puppet rows: stale, oldest update first; Matrix
	// users' rows and puppets never registered are not Sandcat puppets to sync.
	later := now + 60_000
	rename(bob, "Bob", later)
	rename(alice, "Alice", later+1)
	rename(fromMatrix, "M", later)
	rename(unregistered, "U", later)
	stale(bob.ID, alice.ID)
	if got, err := s.StalePuppets(ctx, 1); err != nil || len(got) != 1 || got[0] != bob.ID {
		t.Fatalf("StalePuppets(limit 1) = %v, %v; want [%s]", got, err, bob.ID)
	}
	// Writing the puppet after the update makes it fresh.
	p, err := s.GetPuppet(ctx, bob.ID)
	if err != nil {
		t.Fatal(err)
	}
	p.Name = "Bob"
	p.UpdateTime = 0
	if err := s.PutPuppet(ctx, p); err != nil {
		t.Fatal(err)
	}
	if p.UpdateTime < later {
		// PutPuppet stamps now; the update above is in the future: step over it.
		rename(bob, "Bob", p.UpdateTime-1)
	}
	stale(alice.ID)
}
