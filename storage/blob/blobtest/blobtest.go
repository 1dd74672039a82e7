// Package blobtest is the conformance suite of blob.Store: every
// implementation (local disk, MinIO) runs Run from its tests.
package blobtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/blob"
)

// Run runs the suite. open is called once per subtest and returns a store
// whose buckets hold nothing but (possibly) the default avatars; it arranges
// its own cleanup with t.Cleanup.
func Run(t *testing.T, open func(t *testing.T) blob.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s blob.Store)
	}{
		{"PutGetRoundTrip", testPutGet},
		{"UnknownSizeAndEmpty", testUnknownSizeAndEmpty},
		{"LargeStream", testLargeStream},
		{"Overwrite", testOverwrite},
		{"DefaultContentType", testDefaultContentType},
		{"NotFound", testNotFound},
		{"BucketsAreSeparate", testBucketsSeparate},
		{"InvalidNames", testInvalidNames},
		{"InvalidBucket", testInvalidBucket},
		{"SizeMismatch", testSizeMismatch},
		{"ReaderError", testReaderError},
		{"Cancelled", testCancelled},
		{"Delete", testDelete},
		{"List", testList},
		{"Seek", testSeek},
		{"Concurrent", testConcurrent},
		{"DefaultAvatars", testDefaultAvatars},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, open(t))
		})
	}
}

func name(ext string) string {
	if ext == "" {
		return ids.New()
	}
	return ids.New() + "." + ext
}

func put(t *testing.T, s blob.Store, b blob.Bucket, n, ct string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), b, n, ct, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%s, %q): %v", b, n, err)
	}
}

func get(t *testing.T, s blob.Store, b blob.Bucket, n string) ([]byte, blob.Info) {
	t.Helper()
	rc, info, err := s.Get(context.Background(), b, n)
	if err != nil {
		t.Fatalf("Get(%s, %q): %v", b, n, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", n, err)
	}
	return data, info
}

func wantNotFound(t *testing.T, s blob.Store, b blob.Bucket, n string) {
	t.Helper()
	rc, _, err := s.Get(context.Background(), b, n)
	if err == nil {
		rc.Close()
		t.Fatalf("Get(%s, %q) succeeded, want storage.ErrNotFound", b, n)
	}
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Get(%s, %q) = %v, want storage.ErrNotFound", b, n, err)
	}
}

func testPutGet(t *testing.T, s blob.Store) {
	start := time.Now()
	for _, b := range blob.Buckets() {
		n := name("jpg")
		data := []byte("\xff\xd8\xff\xe0 not really a jpeg \x00\x01\x02")
		put(t, s, b, n, "image/jpeg", data)
		got, info := get(t, s, b, n)
		if !bytes.Equal(got, data) {
			t.Fatalf("%s: got %q, want %q", b, got, data)
		}
		if info.ContentType != "image/jpeg" || info.Size != int64(len(data)) || info.Name != n {
			t.Fatalf("%s: info = %+v", b, info)
		}
		// Clocks of a remote store may differ a little; an hour is plenty.
		if info.ModTime.Before(start.Add(-time.Hour)) || info.ModTime.After(time.Now().Add(time.Hour)) {
			t.Fatalf("%s: ModTime %v far from now %v", b, info.ModTime, start)
		}
	}
}

func testUnknownSizeAndEmpty(t *testing.T, s blob.Store) {
	ctx := context.Background()
	n := name("txt")
	data := []byte("size not told in advance")
	if err := s.Put(ctx, blob.Files, n, "text/plain", onlyReader{bytes.NewReader(data)}, -1); err != nil {
		t.Fatal(err)
	}
	if got, info := get(t, s, blob.Files, n); !bytes.Equal(got, data) || info.Size != int64(len(data)) {
		t.Fatalf("got %q, %+v", got, info)
	}
	empty := name("")
	put(t, s, blob.Files, empty, "application/x-empty", nil)
	if got, info := get(t, s, blob.Files, empty); len(got) != 0 || info.Size != 0 || info.ContentType != "application/x-empty" {
		t.Fatalf("empty object: %q, %+v", got, info)
	}
}

func testLargeStream(t *testing.T, s blob.Store) {
	const size = 5<<20 + 123
	n := name("bin")
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.Reader, size), h)
	if err := s.Put(context.Background(), blob.Files, n, "application/octet-stream", onlyReader{src}, size); err != nil {
		t.Fatal(err)
	}
	want := h.Sum(nil)
	rc, info, err := s.Get(context.Background(), blob.Files, n)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	h2 := sha256.New()
	m, err := io.Copy(h2, rc)
	if err != nil {
		t.Fatal(err)
	}
	if m != size || info.Size != size || !bytes.Equal(h2.Sum(nil), want) {
		t.Fatalf("read %d bytes (info %d), want %d with the same digest", m, info.Size, size)
	}
}

func testOverwrite(t *testing.T, s blob.Store) {
	n := name("png")
	put(t, s, blob.Avatars, n, "image/png", []byte("first version, longer"))
	put(t, s, blob.Avatars, n, "image/webp", []byte("second"))
	got, info := get(t, s, blob.Avatars, n)
	if string(got) != "second" || info.ContentType != "image/webp" || info.Size != 6 {
		t.Fatalf("got %q, %+v", got, info)
	}
}

func testDefaultContentType(t *testing.T, s blob.Store) {
	n := name("")
	put(t, s, blob.Files, n, "", []byte("x"))
	if _, info := get(t, s, blob.Files, n); info.ContentType != blob.DefaultContentType {
		t.Fatalf("content type %q, want %q", info.ContentType, blob.DefaultContentType)
	}
}

func testNotFound(t *testing.T, s blob.Store) {
	for _, b := range blob.Buckets() {
		wantNotFound(t, s, b, name("png"))
	}
}

func testBucketsSeparate(t *testing.T, s blob.Store) {
	n := name("ogg")
	put(t, s, blob.Files, n, "audio/ogg", []byte("voice"))
	wantNotFound(t, s, blob.Avatars, n)
	n2 := name("gif")
	put(t, s, blob.Avatars, n2, "image/gif", []byte("gif"))
	wantNotFound(t, s, blob.Files, n2)
}

// BadNames are object names every store must refuse.
func BadNames() []string {
	long := make([]byte, blob.MaxNameLen+1)
	for i := range long {
		long[i] = 'a'
	}
	return []string{
		"", ".", "..", "../x", "..\\x", "a/b", "/abs", "a\\b", "a\x00b", "x..y", ".hidden",
		"trailing.", "sp ace", "semi;colon", "pct%2F", "uni\u00e9", "new\nline", "a:b", string(long),
	}
}

func testInvalidNames(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, n := range BadNames() {
		if err := s.Put(ctx, blob.Files, n, "text/plain", bytes.NewReader([]byte("x")), 1); !errors.Is(err, blob.ErrInvalidName) {
			t.Errorf("Put(%q) = %v, want ErrInvalidName", n, err)
		}
		if rc, _, err := s.Get(ctx, blob.Files, n); !errors.Is(err, blob.ErrInvalidName) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("Get(%q) = %v, want ErrInvalidName", n, err)
		}
		if err := s.Delete(ctx, blob.Files, n); !errors.Is(err, blob.ErrInvalidName) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidName", n, err)
		}
	}
	// Names of the wire are accepted.
	for _, n := range []string{ids.New(), ids.New() + ".png", ids.New() + ".tar", "avatar1.png", "a-b_c.D9"} {
		if err := blob.ValidName(n); err != nil {
			t.Errorf("ValidName(%q) = %v", n, err)
		}
	}
}

func testInvalidBucket(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, b := range []blob.Bucket{"", "other", "../files"} {
		if err := s.Put(ctx, b, name(""), "", bytes.NewReader(nil), 0); !errors.Is(err, blob.ErrInvalidBucket) {
			t.Errorf("Put(bucket %q) = %v", b, err)
		}
		if _, _, err := s.Get(ctx, b, name("")); !errors.Is(err, blob.ErrInvalidBucket) {
			t.Errorf("Get(bucket %q) = %v", b, err)
		}
		if err := s.List(ctx, b, func(blob.Info) error { return nil }); !errors.Is(err, blob.ErrInvalidBucket) {
			t.Errorf("List(bucket %q) = %v", b, err)
		}
	}
}

func testSizeMismatch(t *testing.T, s blob.Store) {
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		data string
		size int64
	}{
		{"short", "abc", 10},
		{"long", "abcdefghij", 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fresh := name("")
			if err := s.Put(ctx, blob.Files, fresh, "", onlyReader{bytes.NewReader([]byte(tc.data))}, tc.size); err == nil {
				t.Fatalf("Put of %d bytes told %d succeeded", len(tc.data), tc.size)
			}
			wantNotFound(t, s, blob.Files, fresh)

			old := name("")
			put(t, s, blob.Files, old, "text/plain", []byte("old"))
			if err := s.Put(ctx, blob.Files, old, "", onlyReader{bytes.NewReader([]byte(tc.data))}, tc.size); err == nil {
				t.Fatal("overwrite with a size mismatch succeeded")
			}
			if got, info := get(t, s, blob.Files, old); string(got) != "old" || info.ContentType != "text/plain" {
				t.Fatalf("old object changed: %q %+v", got, info)
			}
		})
	}
}

var errBroken = errors.New("blobtest: broken reader")

func testReaderError(t *testing.T, s blob.Store) {
	ctx := context.Background()
	broken := func() io.Reader {
		return io.MultiReader(bytes.NewReader(make([]byte, 100<<10)), errReader{errBroken})
	}
	for _, size := range []int64{-1, 200 << 10} {
		fresh := name("")
		if err := s.Put(ctx, blob.Files, fresh, "", broken(), size); err == nil {
			t.Fatalf("size %d: Put from a failing reader succeeded", size)
		}
		wantNotFound(t, s, blob.Files, fresh)
	}
	old := name("")
	put(t, s, blob.Files, old, "text/plain", []byte("old"))
	if err := s.Put(ctx, blob.Files, old, "", broken(), -1); err == nil {
		t.Fatal("overwrite from a failing reader succeeded")
	}
	if got, _ := get(t, s, blob.Files, old); string(got) != "old" {
		t.Fatalf("old object changed: %q", got)
	}
}

func testCancelled(t *testing.T, s blob.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	n := name("")
	if err := s.Put(ctx, blob.Files, n, "", bytes.NewReader([]byte("x")), 1); err == nil {
		t.Fatal("Put with a cancelled context succeeded")
	}
	wantNotFound(t, s, blob.Files, n)

	// Cancelled in the middle of the stream.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	r := io.MultiReader(bytes.NewReader(make([]byte, 64<<10)), cancelReader{cancel}, bytes.NewReader(make([]byte, 256<<10)))
	n = name("")
	if err := s.Put(ctx, blob.Files, n, "", r, -1); err == nil {
		t.Fatal("Put cancelled mid-stream succeeded")
	}
	wantNotFound(t, s, blob.Files, n)
}

func testDelete(t *testing.T, s blob.Store) {
	ctx := context.Background()
	n := name("mp4")
	put(t, s, blob.Files, n, "video/mp4", []byte("video"))
	if err := s.Delete(ctx, blob.Files, n); err != nil {
		t.Fatal(err)
	}
	wantNotFound(t, s, blob.Files, n)
	if err := s.Delete(ctx, blob.Files, n); err != nil {
		t.Fatalf("second Delete: %v", err)
	}
	if err := s.Delete(ctx, blob.Avatars, name("png")); err != nil {
		t.Fatalf("Delete of a never stored object: %v", err)
	}
	// Put again after delete: the content type is the new one.
	put(t, s, blob.Files, n, "text/plain", []byte("again"))
	if got, info := get(t, s, blob.Files, n); string(got) != "again" || info.ContentType != "text/plain" {
		t.Fatalf("after re-put: %q %+v", got, info)
	}
}

func list(t *testing.T, s blob.Store, b blob.Bucket) map[string]blob.Info {
	t.Helper()
	out := map[string]blob.Info{}
	err := s.List(context.Background(), b, func(i blob.Info) error {
		if _, dup := out[i.Name]; dup {
			t.Errorf("List(%s) gave %q twice", b, i.Name)
		}
		out[i.Name] = i
		return nil
	})
	if err != nil {
		t.Fatalf("List(%s): %v", b, err)
	}
	return out
}

func testList(t *testing.T, s blob.Store) {
	ctx := context.Background()
	start := time.Now()
	var files []string
	for i := range 5 {
		n := name("dat")
		put(t, s, blob.Files, n, "application/x-test", bytes.Repeat([]byte{'z'}, i*10))
		files = append(files, n)
	}
	avatar := name("png")
	put(t, s, blob.Avatars, avatar, "image/png", []byte("png"))

	got := list(t, s, blob.Files)
	for i, n := range files {
		info, ok := got[n]
		if !ok {
			t.Fatalf("List(files) lacks %q; got %v", n, slices.Collect(maps.Keys(got)))
		}
		if info.Size != int64(i*10) || info.Name != n {
			t.Fatalf("List info %+v, want size %d", info, i*10)
		}
		if info.ModTime.Before(start.Add(-time.Hour)) || info.ModTime.After(time.Now().Add(time.Hour)) {
			t.Fatalf("List ModTime %v far from %v", info.ModTime, start)
		}
	}
	if _, ok := got[avatar]; ok {
		t.Fatalf("List(files) has the avatar %q", avatar)
	}
	if _, ok := list(t, s, blob.Avatars)[avatar]; !ok {
		t.Fatalf("List(avatars) lacks %q", avatar)
	}

	if err := s.Delete(ctx, blob.Files, files[0]); err != nil {
		t.Fatal(err)
	}
	if _, ok := list(t, s, blob.Files)[files[0]]; ok {
		t.Fatalf("List(files) still has deleted %q", files[0])
	}

	// An error from fn stops the walk and comes back unchanged.
	stop := errors.New("stop")
	calls := 0
	err := s.List(ctx, blob.Files, func(blob.Info) error {
		calls++
		return stop
	})
	if err != stop || calls != 1 {
		t.Fatalf("List with a failing fn = %v after %d calls, want the fn's error after 1", err, calls)
	}
}

func testSeek(t *testing.T, s blob.Store) {
	n := name("txt")
	put(t, s, blob.Files, n, "text/plain", []byte("0123456789"))
	rc, _, err := s.Get(context.Background(), blob.Files, n)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rs, ok := rc.(io.ReadSeeker)
	if !ok {
		t.Skip("reader is not an io.ReadSeeker (allowed)")
	}
	if _, err := rs.Seek(4, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(rs)
	if err != nil || string(rest) != "456789" {
		t.Fatalf("after Seek(4): %q, %v", rest, err)
	}
}

func testConcurrent(t *testing.T, s blob.Store) {
	const n = 8
	names := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		names[i] = name("bin")
		wg.Go(func() {
			data := bytes.Repeat([]byte{byte(i)}, 1000+i)
			if err := s.Put(context.Background(), blob.Files, names[i], "application/x-test", bytes.NewReader(data), int64(len(data))); err != nil {
				errs <- fmt.Errorf("put %d: %w", i, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for i, nm := range names {
		got, _ := get(t, s, blob.Files, nm)
		if !bytes.Equal(got, bytes.Repeat([]byte{byte(i)}, 1000+i)) {
			t.Fatalf("object %d has wrong content", i)
		}
	}
}

func testDefaultAvatars(t *testing.T, s blob.Store) {
	ctx := context.Background()
	if err := blob.InstallDefaults(ctx, s); err != nil {
		t.Fatal(err)
	}
	for _, n := range blob.DefaultAvatarNames() {
		want, err := blob.DefaultAvatar(n)
		if err != nil {
			t.Fatal(err)
		}
		got, info := get(t, s, blob.Avatars, n)
		if !bytes.Equal(got, want) || info.ContentType != "image/png" {
			t.Fatalf("%s: %d bytes of %s, want the embedded %d bytes of image/png", n, len(got), info.ContentType, len(want))
		}
	}
	// An avatar replaced by the operator is left alone by a later install.
	put(t, s, blob.Avatars, "avatar2.png", "image/png", []byte("custom"))
	if err := blob.InstallDefaults(ctx, s); err != nil {
		t.Fatal(err)
	}
	if got, _ := get(t, s, blob.Avatars, "avatar2.png"); string(got) != "custom" {
		t.Fatalf("InstallDefaults overwrote avatar2.png: %q", got)
	}
}

// onlyReader hides WriterTo, Seeker and Len so stores see a plain stream.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// cancelReader cancels a context when first read, and yields nothing.
type cancelReader struct{ cancel context.CancelFunc }

func (c cancelReader) Read([]byte) (int, error) {
	c.cancel()
	return 0, io.EOF
}
