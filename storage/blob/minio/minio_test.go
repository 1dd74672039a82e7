package minio_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/mux"
	s3 "github.com/minio/minio-go/v7"

	"github.com/sandcat-im/sandcat/im/file"
	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/im/testsvc"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/blob"
	"github.com/sandcat-im/sandcat/storage/blob/blobtest"
	"github.com/sandcat-im/sandcat/storage/blob/minio"
)

// server is one real MinIO for every subtest; each store gets its own buckets.
type server struct {
	endpoint, access, secret string
}

func (srv server) options() minio.Options {
	suffix := randomHex(6)
	return minio.Options{
		Endpoint:     srv.endpoint,
		AccessKey:    srv.access,
		SecretKey:    srv.secret,
		Bucket:       "files-" + suffix,
		AvatarBucket: "avatars-" + suffix,
	}
}

func (srv server) open(t *testing.T) *minio.Store {
	t.Helper()
	s, err := minio.Open(context.Background(), srv.options())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func TestMinIO(t *testing.T) {
	endpoint, ak, sk := testsvc.StartMinIO(t)
	srv := server{endpoint: endpoint, access: ak, secret: sk}

	t.Run("Conformance", func(t *testing.T) {
		blobtest.Run(t, func(t *testing.T) blob.Store { return srv.open(t) })
	})
	t.Run("BucketsAndDefaults", func(t *testing.T) { testBucketsAndDefaults(t, srv) })
	t.Run("DefaultBucketNames", func(t *testing.T) { testDefaultBucketNames(t, srv) })
	t.Run("ContentTypeIsObjectMetadata", func(t *testing.T) { testContentTypeMetadata(t, srv) })
	t.Run("Multipart", func(t *testing.T) { testMultipart(t, srv) })
	t.Run("FailedMultipartLeavesNothing", func(t *testing.T) { testFailedMultipart(t, srv) })
	t.Run("ListSkipsForeignKeys", func(t *testing.T) { testListSkipsForeignKeys(t, srv) })
	t.Run("BadCredentials", func(t *testing.T) { testBadCredentials(t, srv) })
	t.Run("FileRoutesWithRange", func(t *testing.T) { testFileRoutes(t, srv) })
}

func testBucketsAndDefaults(t *testing.T, srv server) {
	ctx := context.Background()
	o := srv.options()
	s, err := minio.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Client()
	for _, b := range []string{o.Bucket, o.AvatarBucket} {
		if ok, err := c.BucketExists(ctx, b); err != nil || !ok {
			t.Fatalf("bucket %s: exists=%v err=%v", b, ok, err)
		}
	}
	if s.BucketName(blob.Files) != o.Bucket || s.BucketName(blob.Avatars) != o.AvatarBucket {
		t.Fatalf("BucketName: %q %q", s.BucketName(blob.Files), s.BucketName(blob.Avatars))
	}
	for _, n := range blob.DefaultAvatarNames() {
		obj, err := c.GetObject(ctx, o.AvatarBucket, n, s3.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(obj)
		obj.Close()
		want, _ := blob.DefaultAvatar(n)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes, %v", n, len(got), err)
		}
	}
	// Reopen: a replaced default is kept, a deleted one comes back.
	if err := s.Put(ctx, blob.Avatars, "avatar1.png", "image/png", strings.NewReader("mine"), 4); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, blob.Avatars, "avatar3.png"); err != nil {
		t.Fatal(err)
	}
	s2, err := minio.Open(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	rc, _, err := s2.Get(ctx, blob.Avatars, "avatar1.png")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "mine" {
		t.Fatalf("avatar1.png overwritten on reopen: %q", got)
	}
	rc, _, err = s2.Get(ctx, blob.Avatars, "avatar3.png")
	if err != nil {
		t.Fatalf("avatar3.png not reinstalled: %v", err)
	}
	rc.Close()
}

func testDefaultBucketNames(t *testing.T, srv server) {
	ctx := context.Background()
	s, err := minio.Open(ctx, minio.Options{Endpoint: "http://" + srv.endpoint, AccessKey: srv.access, SecretKey: srv.secret})
	if err != nil {
		t.Fatal(err)
	}
	if s.BucketName(blob.Files) != "sandcat" || s.BucketName(blob.Avatars) != "sandcat-avatar" {
		t.Fatalf("default buckets %q %q", s.BucketName(blob.Files), s.BucketName(blob.Avatars))
	}
	for _, b := range []string{"sandcat", "sandcat-avatar"} {
		if ok, err := s.Client().BucketExists(ctx, b); err != nil || !ok {
			t.Fatalf("bucket %s: exists=%v err=%v", b, ok, err)
		}
	}
	// A second process starting against the same server is fine.
	if _, err := minio.Open(ctx, minio.Options{Endpoint: srv.endpoint, AccessKey: srv.access, SecretKey: srv.secret}); err != nil {
		t.Fatal(err)
	}
}

func testContentTypeMetadata(t *testing.T, srv server) {
	ctx := context.Background()
	s := srv.open(t)
	n := ids.New() + ".webm"
	if err := s.Put(ctx, blob.Files, n, "audio/webm;codecs=opus", strings.NewReader("voice"), -1); err != nil {
		t.Fatal(err)
	}
	st, err := s.Client().StatObject(ctx, s.BucketName(blob.Files), n, s3.StatObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if st.ContentType != "audio/webm;codecs=opus" || st.Size != 5 {
		t.Fatalf("stat: %q %d", st.ContentType, st.Size)
	}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

// onlyReader hides io.WriterTo and io.Seeker.
type onlyReader struct{ r io.Reader }

func (o onlyReader) Read(p []byte) (int, error) { return o.r.Read(p) }

func testMultipart(t *testing.T, srv server) {
	ctx := context.Background()
	s := srv.open(t)
	const part = minio.DefaultPartSize
	for _, n := range []int{part - 1, part, part + 1, 2 * part, 2*part + 1, 3*part + 12345} {
		for _, size := range []int64{int64(n), -1} {
			data := pattern(n)
			name := ids.New() + ".bin"
			if err := s.Put(ctx, blob.Files, name, "application/x-test", onlyReader{bytes.NewReader(data)}, size); err != nil {
				t.Fatalf("%d bytes (size %d): %v", n, size, err)
			}
			rc, info, err := s.Get(ctx, blob.Files, name)
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(rc)
			rc.Close()
			if err != nil || !bytes.Equal(got, data) || info.Size != int64(n) || info.ContentType != "application/x-test" {
				t.Fatalf("%d bytes (size %d): read %d bytes, %+v, %v", n, size, len(got), info, err)
			}
		}
	}
}

var errBroken = errors.New("broken")

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errBroken }

type cancelReader struct{ cancel context.CancelFunc }

func (c cancelReader) Read([]byte) (int, error) { c.cancel(); return 0, io.EOF }

func testFailedMultipart(t *testing.T, srv server) {
	s := srv.open(t)
	const part = minio.DefaultPartSize
	big := func(n int) io.Reader { return onlyReader{bytes.NewReader(pattern(n))} }
	cases := []struct {
		name string
		r    func(cancel context.CancelFunc) io.Reader
		size int64
	}{
		{"long for the size", func(context.CancelFunc) io.Reader { return big(2*part + 10) }, 2*part + 9},
		{"long by one byte at a part boundary", func(context.CancelFunc) io.Reader { return big(2*part + 1) }, 2 * part},
		{"short for the size", func(context.CancelFunc) io.Reader { return big(2*part + 10) }, 3 * part},
		{"reader error in part 2", func(context.CancelFunc) io.Reader {
			return io.MultiReader(big(part+100), errReader{})
		}, -1},
		{"cancelled in part 2", func(cancel context.CancelFunc) io.Reader {
			return io.MultiReader(big(part+100), cancelReader{cancel}, big(part))
		}, -1},
		{"cancelled in the last part", func(cancel context.CancelFunc) io.Reader {
			return io.MultiReader(big(part+100), cancelReader{cancel}, big(100))
		}, -1},
	}
	// Control: the listing below does see an upload left incomplete.
	core := &s3.Core{Client: s.Client()}
	probe := ids.New()
	id, err := core.NewMultipartUpload(context.Background(), s.BucketName(blob.Files), probe, s3.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if incomplete(t, s, probe) != 1 {
		t.Fatal("ListIncompleteUploads does not show an open upload")
	}
	if err := core.AbortMultipartUpload(context.Background(), s.BucketName(blob.Files), probe, id); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			n := ids.New()
			if err := s.Put(ctx, blob.Files, n, "", tc.r(cancel), tc.size); err == nil {
				t.Fatal("Put succeeded")
			}
			if rc, _, err := s.Get(context.Background(), blob.Files, n); !errors.Is(err, storage.ErrNotFound) {
				if err == nil {
					rc.Close()
				}
				t.Fatalf("Get after failed Put = %v", err)
			}
			if k := incomplete(t, s, n); k != 0 {
				t.Fatalf("%d incomplete uploads left", k)
			}
		})
	}
}

// incomplete counts the unfinished multipart uploads of name in Files.
func incomplete(t *testing.T, s *minio.Store, name string) int {
	t.Helper()
	k := 0
	for u := range s.Client().ListIncompleteUploads(context.Background(), s.BucketName(blob.Files), name, true) {
		if u.Err != nil {
			t.Fatal(u.Err)
		}
		k++
	}
	return k
}

func testListSkipsForeignKeys(t *testing.T, srv server) {
	ctx := context.Background()
	s := srv.open(t)
	// Objects put by other tools under names Sandcat never makes.
	for _, k := range []string{"dir/nested.txt", "with space"} {
		if _, err := s.Client().PutObject(ctx, s.BucketName(blob.Files), k, strings.NewReader("x"), 1, s3.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	n := ids.New()
	if err := s.Put(ctx, blob.Files, n, "", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := s.List(ctx, blob.Files, func(i blob.Info) error { got = append(got, i.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != n {
		t.Fatalf("List = %q, want only %q", got, n)
	}
}

func testBadCredentials(t *testing.T, srv server) {
	o := srv.options()
	o.SecretKey += "x"
	if _, err := minio.Open(context.Background(), o); err == nil {
		t.Fatal("Open with a wrong secret key succeeded")
	}
	o = srv.options()
	o.AvatarBucket = o.Bucket
	if _, err := minio.Open(context.Background(), o); err == nil {
		t.Fatal("Open with one bucket for both succeeded")
	}
}

// testFileRoutes serves /file from MinIO: Range requests work because Get
// returns a seekable reader.
func testFileRoutes(t *testing.T, srv server) {
	s := srv.open(t)
	svc, err := file.New(file.Options{Blobs: s, RequireUser: func(h http.Handler) http.Handler { return h }})
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	svc.Register(r)
	ts := httptest.NewServer(r)
	defer ts.Close()

	data := pattern(100000)
	n := ids.New() + ".bin"
	if err := s.Put(context.Background(), blob.Files, n, "application/x-test", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, ts.URL+"/file/get/"+n, nil)
	req.Header.Set("Range", "bytes=1000-1999")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[1000:2000]) {
		t.Fatalf("range: %d, %d bytes", resp.StatusCode, len(body))
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-test" {
		t.Fatalf("content type %q", ct)
	}

	resp, err = http.Get(ts.URL + "/file/avatar/get/" + ids.New() + ".png")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("missing avatar: %d", resp.StatusCode)
	}
	resp, err = http.Get(ts.URL + "/file/avatar/get/avatar2.png")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want, _ := blob.DefaultAvatar("avatar2.png")
	if resp.StatusCode != http.StatusOK || !bytes.Equal(got, want) {
		t.Fatalf("default avatar: %d, %d bytes", resp.StatusCode, len(got))
	}
}
