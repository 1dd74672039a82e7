package cleanup_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/testsvc"
	"github.com/sandcat-im/sandcat/storage/blob"
	"github.com/sandcat-im/sandcat/storage/blob/cleanup"
	"github.com/sandcat-im/sandcat/storage/blob/cleanup/cleanuptest"
	"github.com/sandcat-im/sandcat/storage/blob/local"
	"github.com/sandcat-im/sandcat/storage/blob/minio"
	"github.com/sandcat-im/sandcat/storage/postgres/pgtest"
	"github.com/sandcat-im/sandcat/storage/sqlite"
)

// End to end: real blob stores, real databases.

func sqliteFixture(t *testing.T) cleanuptest.Fixture {
	s := sqlite.OpenTest(t)
	return cleanuptest.Fixture{Refs: s, Users: s, Groups: s, History: s.History(), Inbox: s.Inbox()}
}

func postgresFixture(t *testing.T) cleanuptest.Fixture {
	s := pgtest.Open(t)
	return cleanuptest.Fixture{Refs: s, Users: s, Groups: s, History: s.History()}
}

func fixtures() []struct {
	name string
	open func(t *testing.T) cleanuptest.Fixture
} {
	return []struct {
		name string
		open func(t *testing.T) cleanuptest.Fixture
	}{{"SQLite", sqliteFixture}, {"PostgreSQL", postgresFixture}}
}

func TestCleanerLocal(t *testing.T) {
	for _, fx := range fixtures() {
		t.Run(fx.name, func(t *testing.T) {
			store, err := local.Open(context.Background(), t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			cleanuptest.Cleaner(t, store, fx.open(t))
		})
	}
}

func TestCleanerMinIO(t *testing.T) {
	endpoint, ak, sk := testsvc.StartMinIO(t)
	for _, fx := range fixtures() {
		t.Run(fx.name, func(t *testing.T) {
			var b [6]byte
			_, _ = rand.Read(b[:])
			suffix := hex.EncodeToString(b[:])
			store, err := minio.Open(context.Background(), minio.Options{Endpoint: endpoint, AccessKey: ak, SecretKey: sk,
				Bucket: "files-" + suffix, AvatarBucket: "avatars-" + suffix})
			if err != nil {
				t.Fatal(err)
			}
			cleanuptest.Cleaner(t, store, fx.open(t))
		})
	}
}

// Unit tests of the cleaner's own logic, over fakes.

type fakeStore struct {
	mu      sync.Mutex
	objs    map[blob.Bucket]map[string]time.Time
	failDel string
	listed  chan struct{} // receives once per List call when not nil
}

func newFakeStore() *fakeStore {
	return &fakeStore{objs: map[blob.Bucket]map[string]time.Time{blob.Files: {}, blob.Avatars: {}}}
}

func (f *fakeStore) add(b blob.Bucket, name string, mod time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.objs[b][name] = mod
}

func (f *fakeStore) has(b blob.Bucket, name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.objs[b][name]
	return ok
}

func (f *fakeStore) List(ctx context.Context, b blob.Bucket, fn func(blob.Info) error) error {
	if f.listed != nil {
		select {
		case f.listed <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	var infos []blob.Info
	for n, m := range f.objs[b] {
		infos = append(infos, blob.Info{Name: n, ModTime: m})
	}
	f.mu.Unlock()
	slices.SortFunc(infos, func(a, b blob.Info) int {
		if a.Name < b.Name {
			return -1
		}
		return 1
	})
	for _, i := range infos {
		if err := fn(i); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeStore) Delete(_ context.Context, b blob.Bucket, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if name == f.failDel {
		return errors.New("delete failed")
	}
	delete(f.objs[b], name)
	return nil
}

// fakeRefs reports the names of refs referenced and records each call.
type fakeRefs struct {
	refs  map[string]bool
	err   error
	calls [][]string
}

func (r *fakeRefs) ReferencedFiles(_ context.Context, names []string) (map[string]bool, error) {
	r.calls = append(r.calls, slices.Clone(names))
	if r.err != nil {
		return nil, r.err
	}
	out := map[string]bool{}
	for _, n := range names {
		if r.refs[n] {
			out[n] = true
		}
	}
	return out, nil
}

var now = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func clock() time.Time { return now }

func TestNewValidates(t *testing.T) {
	s, r := newFakeStore(), &fakeRefs{}
	tests := []struct {
		name string
		o    cleanup.Options
		ok   bool
	}{
		{"complete", cleanup.Options{Store: s, Refs: r, Retention: time.Hour}, true},
		{"no store", cleanup.Options{Refs: r, Retention: time.Hour}, false},
		{"no refs", cleanup.Options{Store: s, Retention: time.Hour}, false},
		{"no retention", cleanup.Options{Store: s, Refs: r}, false},
		{"negative retention", cleanup.Options{Store: s, Refs: r, Retention: -time.Hour}, false},
		{"negative interval", cleanup.Options{Store: s, Refs: r, Retention: time.Hour, Interval: -1}, false},
		{"negative batch", cleanup.Options{Store: s, Refs: r, Retention: time.Hour, BatchSize: -1}, false},
		{"bad bucket", cleanup.Options{Store: s, Refs: r, Retention: time.Hour, Buckets: []blob.Bucket{"sandcat"}}, false},
	}
	for _, tc := range tests {
		if _, err := cleanup.New(tc.o); (err == nil) != tc.ok {
			t.Errorf("%s: New = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestOnceBatchesAndAges(t *testing.T) {
	s := newFakeStore()
	refs := &fakeRefs{refs: map[string]bool{}}
	old, young := now.Add(-25*time.Hour), now.Add(-23*time.Hour)
	var wantGone, wantKept []string
	for i := range 11 {
		n := fmt.Sprintf("file%02d", i)
		s.add(blob.Files, n, old)
		if i%3 == 0 {
			refs.refs[n] = true
			wantKept = append(wantKept, n)
		} else {
			wantGone = append(wantGone, n)
		}
	}
	s.add(blob.Files, "young", young)
	s.add(blob.Files, "exactly-at-cutoff", now.Add(-24*time.Hour))
	s.add(blob.Files, "avatar1.png", old) // a default avatar's name, but in Files
	wantGone = append(wantGone, "avatar1.png")
	for _, n := range blob.DefaultAvatarNames() {
		s.add(blob.Avatars, n, old)
	}
	s.add(blob.Avatars, "old-avatar", old)
	wantGone = append(wantGone, "old-avatar")

	c, err := cleanup.New(cleanup.Options{Store: s, Refs: refs, Retention: 24 * time.Hour, BatchSize: 4, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	removed, err := c.Once(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if removed != len(wantGone) {
		t.Fatalf("removed %d, want %d", removed, len(wantGone))
	}
	for _, n := range wantGone {
		b := blob.Files
		if n == "old-avatar" {
			b = blob.Avatars
		}
		if s.has(b, n) {
			t.Errorf("%s kept", n)
		}
	}
	for _, n := range append(wantKept, "young", "exactly-at-cutoff") {
		if !s.has(blob.Files, n) {
			t.Errorf("%s deleted", n)
		}
	}
	for _, n := range blob.DefaultAvatarNames() {
		if !s.has(blob.Avatars, n) {
			t.Errorf("default avatar %s deleted", n)
		}
	}
	asked := map[string]int{}
	for _, call := range refs.calls {
		if len(call) == 0 || len(call) > 4 {
			t.Errorf("batch of %d names", len(call))
		}
		for _, n := range call {
			asked[n]++
		}
	}
	for _, n := range []string{"young", "exactly-at-cutoff"} {
		if asked[n] != 0 {
			t.Errorf("young object %s was a candidate", n)
		}
	}
	// avatar1.png once, as a file; the default avatars themselves never.
	if asked["avatar1.png"] != 1 || asked["avatar2.png"] != 0 || asked["avatar3.png"] != 0 {
		t.Errorf("default avatar names asked %v", asked)
	}
}

func TestOnceStopsOnErrors(t *testing.T) {
	old := now.Add(-48 * time.Hour)

	s := newFakeStore()
	s.add(blob.Files, "a", old)
	s.add(blob.Files, "b", old)
	refs := &fakeRefs{err: errors.New("database down")}
	c, err := cleanup.New(cleanup.Options{Store: s, Refs: refs, Retention: time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := c.Once(context.Background()); err == nil || n != 0 {
		t.Fatalf("Once with failing refs = %d, %v", n, err)
	}
	if !s.has(blob.Files, "a") || !s.has(blob.Files, "b") {
		t.Fatal("deleted without a reference check")
	}

	s.failDel = "b"
	c, err = cleanup.New(cleanup.Options{Store: s, Refs: &fakeRefs{}, Retention: time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.Once(context.Background())
	if err == nil || n != 1 {
		t.Fatalf("Once with a failing delete = %d, %v; want 1 and an error", n, err)
	}
}

func TestAnyOf(t *testing.T) {
	a := &fakeRefs{refs: map[string]bool{"x": true}}
	b := &fakeRefs{refs: map[string]bool{"y": true, "x": true}}
	got, err := cleanup.AnyOf(a, b).ReferencedFiles(context.Background(), []string{"x", "y", "z"})
	if err != nil {
		t.Fatal(err)
	}
	if !got["x"] || !got["y"] || got["z"] {
		t.Fatalf("AnyOf = %v", got)
	}
	if len(b.calls) != 1 || !slices.Equal(b.calls[0], []string{"y", "z"}) {
		t.Fatalf("second was asked %v, want only the names left", b.calls)
	}
	failing := &fakeRefs{err: errors.New("down")}
	if _, err := cleanup.AnyOf(a, failing).ReferencedFiles(context.Background(), []string{"x", "q"}); err == nil {
		t.Fatal("AnyOf hid an error")
	}
}

func TestRunPassesUntilCancelled(t *testing.T) {
	s := newFakeStore()
	s.listed = make(chan struct{})
	s.add(blob.Files, "old", now.Add(-48*time.Hour))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- cleanup.Run(ctx, cleanup.Options{Store: s, Refs: &fakeRefs{}, Retention: time.Hour,
			Interval: time.Millisecond, Buckets: []blob.Bucket{blob.Files}, Now: clock})
	}()
	// The first pass, then at least one more on the ticker.
	for range 3 {
		<-s.listed
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if s.has(blob.Files, "old") {
		t.Fatal("old unreferenced file kept")
	}
	if err := cleanup.Run(context.Background(), cleanup.Options{}); err == nil {
		t.Fatal("Run with empty options succeeded")
	}
}
