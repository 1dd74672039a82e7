package file_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/gorilla/mux"

	"github.com/sandcat-im/sandcat/im/file"
	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/storage/blob"
	"github.com/sandcat-im/sandcat/storage/blob/local"
)

const token = "good-token"

// verifier accepts one token; the real one is im/auth's.
type verifier struct{}

func (verifier) Verify(_ context.Context, tok string) (string, error) {
	if tok == token {
		return "user-1", nil
	}
	return "", errors.New("invalid token")
}

type env struct {
	srv   *httptest.Server
	store *local.Store
}

func newEnv(t *testing.T, maxUpload int64, configure ...func(*mux.Router)) *env {
	t.Helper()
	store, err := local.Open(context.Background(), filepath.Join(t.TempDir(), "data"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	svc, err := file.New(file.Options{
		Blobs:       store,
		Log:         log,
		MaxUpload:   maxUpload,
		RequireUser: httpx.RequireUser(verifier{}, log),
	})
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	for _, c := range configure {
		c(r)
	}
	svc.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &env{srv: srv, store: store}
}

type part struct {
	field, filename, contentType string
	data                         []byte
}

func multipartBody(t *testing.T, parts ...part) (io.Reader, string) {
	t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	for _, p := range parts {
		h := textproto.MIMEHeader{}
		disp := fmt.Sprintf(`form-data; name=%q`, p.field)
		if p.filename != "" {
			disp += fmt.Sprintf(`; filename=%q`, p.filename)
		}
		h.Set("Content-Disposition", disp)
		if p.contentType != "" {
			h.Set("Content-Type", p.contentType)
		}
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(p.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return &buf, mw.FormDataContentType()
}

func (e *env) do(t *testing.T, method, path, contentType, tok string, body io.Reader) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

func (e *env) upload(t *testing.T, path string, parts ...part) (*http.Response, []byte) {
	t.Helper()
	body, ct := multipartBody(t, parts...)
	return e.do(t, http.MethodPost, path, ct, token, body)
}

type wireError struct {
	Kind    string  `json:"kind"`
	Details *string `json:"details"`
}

func wantError(t *testing.T, resp *http.Response, body []byte, status int, kind string) wireError {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %s", resp.StatusCode, status, body)
	}
	var e wireError
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if e.Kind != kind {
		t.Fatalf("kind %q, want %q (body %s)", e.Kind, kind, body)
	}
	return e
}

// fileNames lists the objects of a bucket other than the default avatars.
func (e *env) fileNames(t *testing.T, b blob.Bucket) []string {
	t.Helper()
	var out []string
	err := e.store.List(context.Background(), b, func(i blob.Info) error {
		for _, d := range blob.DefaultAvatarNames() {
			if b == blob.Avatars && i.Name == d {
				return nil
			}
		}
		out = append(out, i.Name)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var pngHeader = []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR rest of a png")

func TestUploadDownloadRoundTrip(t *testing.T) {
	e := newEnv(t, 0)
	nanoid := `[A-Za-z0-9_-]{21}`
	tests := []struct {
		name     string
		upload   string
		get      string
		parts    []part
		wantName string // regexp
		wantType string
		wantData []byte
	}{
		{
			name: "file with type and extension", upload: "/file/upload", get: "/file/get/",
			parts:    []part{{field: "file", filename: "photo.JPG", contentType: "image/jpeg", data: []byte("\xff\xd8\xff jpeg bytes")}},
			wantName: nanoid + `\.JPG`, wantType: "image/jpeg", wantData: []byte("\xff\xd8\xff jpeg bytes"),
		},
		{
			name: "avatar, type sniffed when not declared", upload: "/file/avatar/upload", get: "/file/avatar/get/",
			parts:    []part{{field: "file", filename: "me.png", data: pngHeader}},
			wantName: nanoid + `\.png`, wantType: "image/png", wantData: pngHeader,
		},
		{
			name: "octet-stream is sniffed", upload: "/file/upload", get: "/file/get/",
			parts:    []part{{field: "file", filename: "x.png", contentType: "application/octet-stream", data: pngHeader}},
			wantName: nanoid + `\.png`, wantType: "image/png", wantData: pngHeader,
		},
		{
			name: "voice note keeps codec parameter", upload: "/file/upload", get: "/file/get/",
			parts:    []part{{field: "file", filename: "audio.webm", contentType: "audio/webm;codecs=opus", data: []byte("\x1aE\xdf\xa3 webm")}},
			wantName: nanoid + `\.webm`, wantType: "audio/webm; codecs=opus", wantData: []byte("\x1aE\xdf\xa3 webm"),
		},
		{
			name: "no extension", upload: "/file/upload", get: "/file/get/",
			parts:    []part{{field: "file", filename: "README", contentType: "text/plain", data: []byte("read me")}},
			wantName: nanoid, wantType: "text/plain", wantData: []byte("read me"),
		},
		{
			name: "unsafe extension dropped", upload: "/file/upload", get: "/file/get/",
			parts:    []part{{field: "file", filename: "evil.p%2Fhp", contentType: "text/plain", data: []byte("x")}},
			wantName: nanoid, wantType: "text/plain", wantData: []byte("x"),
		},
		{
			name: "first part whatever its name, others ignored", upload: "/file/upload", get: "/file/get/",
			parts: []part{
				{field: "anything", filename: "a.txt", contentType: "text/plain", data: []byte("first")},
				{field: "file", filename: "b.bin", contentType: "application/x-b", data: []byte("second")},
			},
			wantName: nanoid + `\.txt`, wantType: "text/plain", wantData: []byte("first"),
		},
		{
			name: "empty file", upload: "/file/upload", get: "/file/get/",
			parts:    []part{{field: "file", filename: "empty.txt", contentType: "text/plain", data: nil}},
			wantName: nanoid + `\.txt`, wantType: "text/plain", wantData: []byte{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := e.upload(t, tc.upload, tc.parts...)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("upload: %d %s", resp.StatusCode, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
				t.Fatalf("upload answer type %q", ct)
			}
			name := string(body)
			if !regexp.MustCompile(`^` + tc.wantName + `$`).MatchString(name) {
				t.Fatalf("object name %q does not match %s", name, tc.wantName)
			}
			// Downloads need no token.
			resp, data := e.do(t, http.MethodGet, tc.get+name, "", "", nil)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("download: %d %s", resp.StatusCode, data)
			}
			if !bytes.Equal(data, tc.wantData) {
				t.Fatalf("downloaded %q, want %q", data, tc.wantData)
			}
			h := resp.Header
			if h.Get("Content-Type") != tc.wantType {
				t.Errorf("Content-Type %q, want %q", h.Get("Content-Type"), tc.wantType)
			}
			if h.Get("Cache-Control") != "private, max-age=31536000" {
				t.Errorf("Cache-Control %q", h.Get("Cache-Control"))
			}
			if h.Get("X-Content-Type-Options") != "nosniff" || !strings.Contains(h.Get("Content-Security-Policy"), "sandbox") {
				t.Errorf("missing protective headers: %v", h)
			}
		})
	}
	// The two buckets are separate.
	resp, _ := e.upload(t, "/file/upload", part{field: "file", filename: "a.txt", contentType: "text/plain", data: []byte("a")})
	_ = resp
	names := e.fileNames(t, blob.Files)
	if len(names) == 0 {
		t.Fatal("no files stored")
	}
	resp, body := e.do(t, http.MethodGet, "/file/avatar/get/"+names[0], "", "", nil)
	wantError(t, resp, body, http.StatusNotFound, httpx.KindNotFound)
}

func TestUploadNeedsToken(t *testing.T) {
	e := newEnv(t, 0)
	for _, path := range []string{"/file/upload", "/file/avatar/upload"} {
		for _, tok := range []string{"", "forged"} {
			body, ct := multipartBody(t, part{field: "file", filename: "a.txt", data: []byte("x")})
			resp, data := e.do(t, http.MethodPost, path, ct, tok, body)
			e := wantError(t, resp, data, http.StatusUnauthorized, httpx.KindUnAuthorized)
			if e.Details == nil || *e.Details != path {
				t.Errorf("details %v, want the route %q", e.Details, path)
			}
		}
	}
	if n := e.fileNames(t, blob.Files); len(n) != 0 {
		t.Fatalf("stored without auth: %q", n)
	}
	if n := e.fileNames(t, blob.Avatars); len(n) != 0 {
		t.Fatalf("stored without auth: %q", n)
	}
}

// chunked hides the length of r so the request is sent chunked.
type chunked struct{ r io.Reader }

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

func TestUploadLimit(t *testing.T) {
	const limit = 1024
	e := newEnv(t, limit)

	resp, body := e.upload(t, "/file/upload", part{field: "file", filename: "max.bin", contentType: "application/x-a", data: bytes.Repeat([]byte{'a'}, limit)})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("exactly the limit: %d %s", resp.StatusCode, body)
	}

	tests := []struct {
		name    string
		size    int
		chunked bool
	}{
		{"one byte over", limit + 1, false},
		{"one byte over, chunked", limit + 1, true},
		{"far over, length known up front", 200 << 10, false},
		{"far over, chunked", 150 << 10, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, path := range []string{"/file/upload", "/file/avatar/upload"} {
				b, ct := multipartBody(t, part{field: "file", filename: "big.bin", contentType: "application/x-b", data: bytes.Repeat([]byte{'b'}, tc.size)})
				if tc.chunked {
					b = chunked{b}
				}
				resp, data := e.do(t, http.MethodPost, path, ct, token, b)
				wantError(t, resp, data, http.StatusRequestEntityTooLarge, httpx.KindPayloadTooLarge)
			}
		})
	}
	if n := e.fileNames(t, blob.Files); len(n) != 1 {
		t.Fatalf("files after the oversize uploads: %q, want only the one at the limit", n)
	}
	if n := e.fileNames(t, blob.Avatars); len(n) != 0 {
		t.Fatalf("avatars after the oversize uploads: %q", n)
	}
}

// TestUploadStreams sends a file of exactly the default limit (50 MiB) and
// checks the server did not hold it in memory.
func TestUploadStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("50 MiB upload")
	}
	e := newEnv(t, 0)
	const size = file.DefaultMaxUpload
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	go func() {
		w, err := mw.CreateFormFile("file", "big.bin")
		if err == nil {
			_, err = io.Copy(w, io.LimitReader(zeros{}, size))
		}
		if err == nil {
			err = mw.Close()
		}
		pw.CloseWithError(err)
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	resp, body := e.do(t, http.MethodPost, "/file/upload", mw.FormDataContentType(), token, pr)
	runtime.ReadMemStats(&after)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("upload of %d bytes: %d %s", size, resp.StatusCode, body)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/4 {
		t.Fatalf("client and server allocated %d bytes for a %d-byte upload", alloc, size)
	}
	rc, info, err := e.store.Get(context.Background(), blob.Files, string(body))
	if err != nil {
		t.Fatal(err)
	}
	rc.Close()
	if info.Size != size {
		t.Fatalf("stored %d bytes, want %d", info.Size, size)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestUploadBadBody(t *testing.T) {
	e := newEnv(t, 0)
	goodBody, goodType := multipartBody(t, part{field: "file", filename: "a.txt", data: []byte("hello")})
	full, _ := io.ReadAll(goodBody)
	truncated := full[:bytes.Index(full, []byte("hello"))+3]
	boundary := strings.TrimPrefix(goodType, "multipart/form-data; boundary=")
	tests := []struct {
		name, contentType string
		body              []byte
	}{
		{"json body", "application/json", []byte(`{"file":"x"}`)},
		{"no content type", "", full},
		{"multipart without boundary", "multipart/form-data", full},
		{"no parts", goodType, []byte("--" + boundary + "--\r\n")},
		{"empty body", goodType, nil},
		{"cut off inside the part", goodType, truncated},
		{"garbage", goodType, []byte("this is not multipart at all")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := e.do(t, http.MethodPost, "/file/upload", tc.contentType, token, bytes.NewReader(tc.body))
			wantError(t, resp, data, http.StatusBadRequest, httpx.KindBodyParsing)
		})
	}
	if n := e.fileNames(t, blob.Files); len(n) != 0 {
		t.Fatalf("bad bodies stored objects: %q", n)
	}
}

func TestDownloadErrors(t *testing.T) {
	e := newEnv(t, 0)
	// A secret next to the data directory that traversal would reach.
	secret := filepath.Join(filepath.Dir(e.store.Root()), "secret.txt")
	if err := os.WriteFile(secret, []byte("TOP-SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}

	resp, body := e.do(t, http.MethodGet, "/file/get/V1StGXR8_Z5jdHi6B-myT.png", "", "", nil)
	if e := wantError(t, resp, body, http.StatusNotFound, httpx.KindNotFound); e.Details != nil {
		t.Errorf("details %q, want null", *e.Details)
	}

	for _, name := range []string{"a..b", "%00", "a%00b", "..%5C..%5Csecret.txt", ".meta", "x%20y", "caf%C3%A9", "trailing."} {
		for _, prefix := range []string{"/file/get/", "/file/avatar/get/"} {
			resp, body := e.do(t, http.MethodGet, prefix+name, "", "", nil)
			wantError(t, resp, body, http.StatusBadRequest, httpx.KindPathParsing)
		}
	}
	// Encoded slashes and dot segments never reach a file outside the bucket,
	// whatever the router does with them.
	for _, name := range []string{"..%2F..%2Fsecret.txt", "%2e%2e", "..", "..%2Fsecret.txt", "%2e%2e%2f%2e%2e%2fsecret.txt"} {
		resp, body := e.do(t, http.MethodGet, "/file/get/"+name, "", "", nil)
		if resp.StatusCode == http.StatusOK || bytes.Contains(body, []byte("TOP-SECRET")) {
			t.Errorf("%s: %d %q", name, resp.StatusCode, body)
		}
	}

	// With a router that keeps dot segments, ".." reaches the handler: 400.
	raw := newEnv(t, 0, func(r *mux.Router) { r.SkipClean(true) })
	resp, body = raw.do(t, http.MethodGet, "/file/get/..", "", "", nil)
	wantError(t, resp, body, http.StatusBadRequest, httpx.KindPathParsing)
}

func TestDefaultAvatarsServed(t *testing.T) {
	e := newEnv(t, 0)
	for _, name := range blob.DefaultAvatarNames() {
		resp, data := e.do(t, http.MethodGet, "/file/avatar/get/"+name, "", "", nil)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "image/png" {
			t.Fatalf("%s: %d %q", name, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		want, _ := blob.DefaultAvatar(name)
		if !bytes.Equal(data, want) {
			t.Fatalf("%s: served bytes differ from the embedded avatar", name)
		}
	}
}

func TestHeadAndRange(t *testing.T) {
	e := newEnv(t, 0)
	resp, body := e.upload(t, "/file/upload", part{field: "file", filename: "d.txt", contentType: "text/plain", data: []byte("0123456789")})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("upload: %d %s", resp.StatusCode, body)
	}
	name := string(body)

	resp, data := e.do(t, http.MethodHead, "/file/get/"+name, "", "", nil)
	if resp.StatusCode != http.StatusOK || resp.ContentLength != 10 || len(data) != 0 {
		t.Fatalf("HEAD: %d length %d body %q", resp.StatusCode, resp.ContentLength, data)
	}
	if resp.Header.Get("Cache-Control") != file.CacheControl || resp.Header.Get("Last-Modified") == "" {
		t.Fatalf("HEAD headers: %v", resp.Header)
	}

	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/file/get/"+name, nil)
	req.Header.Set("Range", "bytes=2-5")
	rresp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer rresp.Body.Close()
	part, _ := io.ReadAll(rresp.Body)
	if rresp.StatusCode != http.StatusPartialContent || string(part) != "2345" {
		t.Fatalf("Range: %d %q", rresp.StatusCode, part)
	}
}

// failingStore fails every Put, as a broken object store would.
type failingStore struct{ blob.Store }

func (failingStore) Put(context.Context, blob.Bucket, string, string, io.Reader, int64) error {
	return errors.New("disk on fire")
}

func TestStoreFailureIs500(t *testing.T) {
	store, err := local.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	svc, err := file.New(file.Options{Blobs: failingStore{store}, RequireUser: httpx.RequireUser(verifier{}, nil)})
	if err != nil {
		t.Fatal(err)
	}
	r := mux.NewRouter()
	svc.Register(r)
	srv := httptest.NewServer(r)
	defer srv.Close()
	e := &env{srv: srv, store: store}
	resp, body := e.upload(t, "/file/upload", part{field: "file", filename: "a.txt", data: []byte("x")})
	wantError(t, resp, body, http.StatusInternalServerError, httpx.KindOSSError)
	if strings.Contains(string(body), "fire") {
		t.Fatalf("internal error leaked: %s", body)
	}
}

func TestNewChecksOptions(t *testing.T) {
	store, err := local.Open(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	auth := httpx.RequireUser(verifier{}, nil)
	tests := []struct {
		name string
		o    file.Options
		ok   bool
	}{
		{"complete", file.Options{Blobs: store, RequireUser: auth}, true},
		{"no store", file.Options{RequireUser: auth}, false},
		{"no auth", file.Options{Blobs: store}, false},
		{"negative limit", file.Options{Blobs: store, RequireUser: auth, MaxUpload: -1}, false},
	}
	for _, tc := range tests {
		if _, err := file.New(tc.o); (err == nil) != tc.ok {
			t.Errorf("%s: err = %v", tc.name, err)
		}
	}
}
