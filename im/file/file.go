// Package file serves the /file routes of the wire (sandcat-wire.md §2.5):
// uploads of chat files and avatars into a blob store, and downloads of them.
//
// Differences from the original, on purpose: uploads need a valid token (the
// client always sends one); the content type of an upload is kept and served
// back; a missing object is 404 NotFound instead of 500 OSSError; downloads
// carry nosniff and a sandboxing Content-Security-Policy so an uploaded HTML
// or SVG file cannot run script on the API's origin.
package file

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"path"
	"strconv"

	"github.com/gorilla/mux"

	"github.com/sandcat-im/sandcat/im/httpx"
	"github.com/sandcat-im/sandcat/im/ids"
	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/blob"
)

// DefaultMaxUpload is the original server's body limit, 50 MiB.
const DefaultMaxUpload = 50 << 20

// multipartSlack is what the multipart framing (boundary lines, part
// headers) may add to the body of an upload of MaxUpload bytes.
const multipartSlack = 64 << 10

// CacheControl is sent with every download, as the original server did.
const CacheControl = "private, max-age=31536000"

// downloadCSP keeps an uploaded document from running script or loading
// anything when opened directly; images, audio and video still display.
const downloadCSP = "default-src 'none'; img-src 'self'; media-src 'self'; style-src 'unsafe-inline'; sandbox"

// Store is what the routes need from the blob store (blob.Store has it).
type Store interface {
	Put(ctx context.Context, bucket blob.Bucket, name, contentType string, r io.Reader, size int64) error
	Get(ctx context.Context, bucket blob.Bucket, name string) (io.ReadCloser, blob.Info, error)
}

// Options configure the routes.
type Options struct {
	Blobs Store
	Log   *slog.Logger
	// MaxUpload is the largest accepted file, in bytes (DefaultMaxUpload if 0).
	MaxUpload int64
	// RequireUser is the auth middleware guarding the upload routes
	// (httpx.RequireUser); required.
	RequireUser func(http.Handler) http.Handler
}

// Service holds the /file routes.
type Service struct {
	blobs       Store
	log         *slog.Logger
	maxUpload   int64
	requireUser func(http.Handler) http.Handler
}

// New checks the options and builds the routes.
func New(o Options) (*Service, error) {
	if o.Blobs == nil {
		return nil, errors.New("file: Options.Blobs is nil")
	}
	if o.RequireUser == nil {
		return nil, errors.New("file: Options.RequireUser is nil (uploads must be authenticated)")
	}
	if o.MaxUpload < 0 {
		return nil, fmt.Errorf("file: negative MaxUpload %d", o.MaxUpload)
	}
	if o.MaxUpload == 0 {
		o.MaxUpload = DefaultMaxUpload
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{blobs: o.Blobs, log: o.Log, maxUpload: o.MaxUpload, requireUser: o.RequireUser}, nil
}

// Register adds the routes to r:
//
//	POST /file/upload                (auth)  multipart, first part -> Files bucket; text/plain name
//	POST /file/avatar/upload         (auth)  same, Avatars bucket
//	GET|HEAD /file/get/{filename}            object of Files
//	GET|HEAD /file/avatar/get/{filename}     object of Avatars
func (s *Service) Register(r *mux.Router) {
	r.Handle("/file/upload", s.requireUser(s.handler(s.upload(blob.Files)))).Methods(http.MethodPost)
	r.Handle("/file/avatar/upload", s.requireUser(s.handler(s.upload(blob.Avatars)))).Methods(http.MethodPost)
	r.Handle("/file/get/{filename}", s.handler(s.download(blob.Files))).Methods(http.MethodGet, http.MethodHead)
	r.Handle("/file/avatar/get/{filename}", s.handler(s.download(blob.Avatars))).Methods(http.MethodGet, http.MethodHead)
}

func (s *Service) handler(fn func(w http.ResponseWriter, r *http.Request) error) http.Handler {
	return httpx.Handler{Log: s.log, Fn: fn}
}

func tooLarge(limit int64) *httpx.Error {
	return httpx.Errorf(http.StatusRequestEntityTooLarge, httpx.KindPayloadTooLarge, "file larger than %d bytes", limit)
}

func bodyParsing(format string, args ...any) *httpx.Error {
	return httpx.Errorf(http.StatusBadRequest, httpx.KindBodyParsing, format, args...)
}

// errPartTooLarge is returned by the part reader past the upload limit.
var errPartTooLarge = errors.New("file: upload exceeds the limit")

func (s *Service) upload(bucket blob.Bucket) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		bodyLimit := s.maxUpload + multipartSlack
		if r.ContentLength > bodyLimit {
			return tooLarge(s.maxUpload)
		}
		r.Body = http.MaxBytesReader(w, r.Body, bodyLimit)
		mr, err := r.MultipartReader()
		if err != nil {
			return bodyParsing("expected a multipart/form-data body: %v", err)
		}
		part, err := mr.NextPart()
		if err != nil {
			if isTooLarge(err) {
				return tooLarge(s.maxUpload)
			}
			if errors.Is(err, io.EOF) {
				return bodyParsing("the multipart body has no part")
			}
			return bodyParsing("bad multipart body: %v", err)
		}
		defer part.Close()

		name := ids.New()
		if ext := Extension(part.FileName()); ext != "" {
			name += "." + ext
		}
		src := &clientReader{r: &limitReader{r: part, left: s.maxUpload}}
		br := bufio.NewReaderSize(src, 512)
		head, err := br.Peek(512)
		if err != nil && !errors.Is(err, io.EOF) {
			return s.uploadError(r, src, err)
		}
		ct := contentType(part.Header.Get("Content-Type"), head)

		if err := s.blobs.Put(r.Context(), bucket, name, ct, br, -1); err != nil {
			return s.uploadError(r, src, err)
		}
		s.log.DebugContext(r.Context(), "file uploaded", "bucket", string(bucket), "name", name,
			"content_type", ct, "size", src.n, "user", httpx.UserID(r.Context()))
		httpx.WriteText(w, name)
		return nil
	}
}

// uploadError classifies a failed upload: the client's stream (too large,
// malformed, cut off) is the client's fault; anything else is the store's.
func (s *Service) uploadError(r *http.Request, src *clientReader, err error) error {
	if src.err != nil {
		err = src.err
		if errors.Is(err, errPartTooLarge) || isTooLarge(err) {
			return tooLarge(s.maxUpload)
		}
		return bodyParsing("bad or interrupted multipart body: %v", err)
	}
	if r.Context().Err() != nil {
		return bodyParsing("upload interrupted: %v", r.Context().Err())
	}
	return httpx.Internal(httpx.KindOSSError, err)
}

func isTooLarge(err error) bool {
	var mb *http.MaxBytesError
	return errors.As(err, &mb)
}

// clientReader counts the bytes of the upload and remembers the first error
// of the client's stream other than io.EOF.
type clientReader struct {
	r   io.Reader
	n   int64
	err error
}

func (c *clientReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && !errors.Is(err, io.EOF) && c.err == nil {
		c.err = err
	}
	return n, err
}

// Extension returns the extension of an uploaded file name without the dot,
// or "" when there is none or it is not 1-16 ASCII letters and digits (the
// object name must pass blob.ValidName). The Matrix bridge names the files
// it copies the same way.
func Extension(filename string) string {
	ext := path.Ext(filename)
	if len(ext) < 2 || len(ext) > 17 {
		return ""
	}
	ext = ext[1:]
	for i := 0; i < len(ext); i++ {
		c := ext[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return ""
		}
	}
	return ext
}

// contentType is the part's declared type when it is a valid, specific media
// type, or else the type sniffed from the first bytes.
func contentType(declared string, head []byte) string {
	if declared != "" {
		if mt, params, err := mime.ParseMediaType(declared); err == nil && mt != "application/octet-stream" {
			if ct := mime.FormatMediaType(mt, params); ct != "" {
				return ct
			}
		}
	}
	return http.DetectContentType(head)
}

// limitReader yields at most left bytes of r, then fails with errPartTooLarge
// if r has more.
type limitReader struct {
	r    io.Reader
	left int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One probe byte tells a stream of exactly the limit from a longer one.
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, errPartTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

func (s *Service) download(bucket blob.Bucket) func(w http.ResponseWriter, r *http.Request) error {
	return func(w http.ResponseWriter, r *http.Request) error {
		name := mux.Vars(r)["filename"]
		if err := blob.ValidName(name); err != nil {
			return httpx.Errorf(http.StatusBadRequest, httpx.KindPathParsing, "invalid file name %q", name)
		}
		rc, info, err := s.blobs.Get(r.Context(), bucket, name)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			return httpx.NotFound()
		case errors.Is(err, blob.ErrInvalidName):
			return httpx.Errorf(http.StatusBadRequest, httpx.KindPathParsing, "invalid file name %q", name)
		case err != nil:
			return httpx.Internal(httpx.KindOSSError, err)
		}
		defer rc.Close()

		ct := info.ContentType
		if ct == "" {
			ct = blob.DefaultContentType
		}
		h := w.Header()
		h.Set("Content-Type", ct)
		h.Set("Cache-Control", CacheControl)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Content-Security-Policy", downloadCSP)

		if rs, ok := rc.(io.ReadSeeker); ok {
			// Range, HEAD, If-Modified-Since and Last-Modified.
			http.ServeContent(w, r, name, info.ModTime, rs)
			return nil
		}
		if !info.ModTime.IsZero() {
			h.Set("Last-Modified", info.ModTime.UTC().Format(http.TimeFormat))
		}
		if info.Size >= 0 {
			h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
		}
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return nil
		}
		if _, err := io.Copy(w, rc); err != nil {
			// Headers are gone; only the log can tell.
			s.log.WarnContext(r.Context(), "file download interrupted", "bucket", string(bucket), "name", name, "err", err)
		}
		return nil
	}
}
