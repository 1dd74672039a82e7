package local

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/storage/blob"
	"github.com/sandcat-im/sandcat/storage/blob/blobtest"
)

func open(t *testing.T) *Store {
	t.Helper()
	s, err := Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return open(t) })
}

func TestOpenLayoutAndDefaults(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data")
	s, err := Open(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range []string{"files", "avatars"} {
		if st, err := os.Stat(filepath.Join(root, b)); err != nil || !st.IsDir() {
			t.Fatalf("%s: %v", b, err)
		}
	}
	for _, n := range blob.DefaultAvatarNames() {
		got, err := os.ReadFile(filepath.Join(root, "avatars", n))
		if err != nil {
			t.Fatal(err)
		}
		want, _ := blob.DefaultAvatar(n)
		if !bytes.Equal(got, want) {
			t.Fatalf("%s differs from the embedded avatar", n)
		}
	}

	// A replaced default survives a reopen; a deleted one comes back.
	ctx := context.Background()
	if err := s.Put(ctx, blob.Avatars, "avatar1.png", "image/png", strings.NewReader("mine"), 4); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, blob.Avatars, "avatar3.png"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, root); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "avatars", "avatar1.png")); string(got) != "mine" {
		t.Fatalf("avatar1.png overwritten on reopen: %q", got)
	}
	if _, err := os.Stat(filepath.Join(root, "avatars", "avatar3.png")); err != nil {
		t.Fatalf("avatar3.png not reinstalled: %v", err)
	}
}

func TestObjectIsPlainFileWithSidecar(t *testing.T) {
	s := open(t)
	n := ids.New() + ".txt"
	if err := s.Put(context.Background(), blob.Files, n, "text/plain; charset=utf-8", strings.NewReader("hello"), 5); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(s.Root(), "files", n))
	if err != nil || string(data) != "hello" {
		t.Fatalf("data file: %q, %v", data, err)
	}
	meta, err := os.ReadFile(filepath.Join(s.Root(), "files", ".meta", n+".json"))
	if err != nil || !strings.Contains(string(meta), `"text/plain; charset=utf-8"`) {
		t.Fatalf("sidecar: %s, %v", meta, err)
	}

	// A lost sidecar degrades to the default type, not to an error.
	if err := os.Remove(filepath.Join(s.Root(), "files", ".meta", n+".json")); err != nil {
		t.Fatal(err)
	}
	rc, info, err := s.Get(context.Background(), blob.Files, n)
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if info.ContentType != blob.DefaultContentType {
		t.Fatalf("content type %q", info.ContentType)
	}
}

// entries lists every path under root, relative, skipping nothing.
func entries(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestFailedPutsLeaveNothing(t *testing.T) {
	s := open(t)
	before := entries(t, s.Root())
	ctx := context.Background()
	failing := []struct {
		name string
		r    io.Reader
		size int64
	}{
		{"short", strings.NewReader("abc"), 10},
		{"long", strings.NewReader("abcdef"), 2},
		{"reader error", io.MultiReader(strings.NewReader("abc"), errReader{}), -1},
	}
	for _, tc := range failing {
		if err := s.Put(ctx, blob.Files, ids.New(), "", tc.r, tc.size); err == nil {
			t.Fatalf("%s: Put succeeded", tc.name)
		}
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Put(cancelled, blob.Files, ids.New(), "", strings.NewReader("x"), 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled Put = %v", err)
	}
	after := entries(t, s.Root())
	if strings.Join(before, "\n") != strings.Join(after, "\n") {
		t.Fatalf("files changed:\nbefore %q\nafter  %q", before, after)
	}
}

func TestTraversalStaysInside(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "data")
	s, err := Open(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	// A secret beside the store that a traversing name would reach.
	if err := os.WriteFile(filepath.Join(parent, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, n := range []string{"../../secret", "..", "../secret", "..\\secret", "/etc/passwd", ".meta"} {
		if _, _, err := s.Get(ctx, blob.Files, n); !errors.Is(err, blob.ErrInvalidName) {
			t.Errorf("Get(%q) = %v", n, err)
		}
		if err := s.Put(ctx, blob.Files, n, "", strings.NewReader("x"), 1); !errors.Is(err, blob.ErrInvalidName) {
			t.Errorf("Put(%q) = %v", n, err)
		}
		if err := s.Delete(ctx, blob.Files, n); !errors.Is(err, blob.ErrInvalidName) {
			t.Errorf("Delete(%q) = %v", n, err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(parent, "secret")); err != nil || string(got) != "s" {
		t.Fatalf("secret touched: %q %v", got, err)
	}
}

func TestListSkipsInternalFiles(t *testing.T) {
	s := open(t)
	dir := filepath.Join(s.Root(), "files")
	if err := os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "subdir"), 0o700); err != nil {
		t.Fatal(err)
	}
	n := ids.New()
	if err := s.Put(context.Background(), blob.Files, n, "", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.List(context.Background(), blob.Files, func(i blob.Info) error {
		got = append(got, i.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != n {
		t.Fatalf("List = %q, want only %q", got, n)
	}
}

func TestOpenRemovesStaleTemps(t *testing.T) {
	root := t.TempDir()
	if _, err := Open(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(root, "files", ".tmp-old")
	fresh := filepath.Join(root, "avatars", ".meta", ".tmp-new")
	for _, p := range []string{stale, fresh} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * staleTemp)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale temp kept: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Fatalf("fresh temp removed: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("boom") }

func TestAvatarPutter(t *testing.T) {
	s := open(t)
	n := ids.New() + ".jpg"
	if err := (blob.AvatarPutter{Store: s}).PutAvatar(context.Background(), n, "image/jpeg", strings.NewReader("jpeg")); err != nil {
		t.Fatal(err)
	}
	rc, info, err := s.Get(context.Background(), blob.Avatars, n)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	if string(data) != "jpeg" || info.ContentType != "image/jpeg" {
		t.Fatalf("%q %+v", data, info)
	}
	if _, _, err := s.Get(context.Background(), blob.Files, n); err == nil {
		t.Fatal("avatar landed in the files bucket")
	}
}
