// Package minio is the blob.Store on MinIO or any S3-compatible server
// (sandcat-wire.md §7), through github.com/minio/minio-go/v7: one S3 bucket per
// blob.Bucket (Files → Options.Bucket, "sandcat"; Avatars →
// Options.AvatarBucket, "sandcat-avatar"), path-style addressing, the content
// type kept as the object's Content-Type.
//
// Put buffers up to Options.PartSize bytes: a smaller object goes up in one
// PUT from memory; a larger one, or one of unknown length, is streamed as a
// multipart upload of PartSize parts, aborted on any error, so that no object
// (and no incomplete upload, unless the abort itself fails) is left behind and
// an older object of the same name is untouched.
package minio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	s3 "github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/blob"
)

// Defaults of Options.
const (
	DefaultBucket       = "sandcat"
	DefaultAvatarBucket = "sandcat-avatar"
	DefaultRegion       = "us-east-1"
	// DefaultPartSize is the S3 minimum part size: also the largest object
	// that Put uploads in a single PUT, and the memory one Put holds.
	DefaultPartSize = 5 << 20
	// MaxPartSize is the S3 maximum part size.
	MaxPartSize = 5 << 30
	// maxParts is the S3 limit on parts of one multipart upload.
	maxParts = 10000
	// abortTimeout bounds the abort of a failed multipart upload, which runs
	// even when the caller's context is cancelled.
	abortTimeout = 30 * time.Second
)

// Options configure Open.
type Options struct {
	// Endpoint is host:port of the S3 API, or a URL http://host:port or
	// https://host:port (the scheme then decides TLS, UseSSL is ignored).
	Endpoint  string
	AccessKey string
	SecretKey string
	// Bucket holds blob.Files (default DefaultBucket).
	Bucket string
	// AvatarBucket holds blob.Avatars (default DefaultAvatarBucket).
	AvatarBucket string
	// Region of the buckets (default DefaultRegion).
	Region string
	// UseSSL selects https for an Endpoint without a scheme.
	UseSSL bool
	// PartSize is the part size of multipart uploads and the threshold of
	// single-PUT uploads, between DefaultPartSize (the default) and
	// MaxPartSize. The largest object is 10,000 parts.
	PartSize int64
	// Logger receives bucket creation and failed aborts (discarded if nil).
	Logger *slog.Logger
}

// Store is the MinIO/S3 blob.Store. It is safe for concurrent use.
type Store struct {
	client   *s3.Client
	core     *s3.Core
	buckets  map[blob.Bucket]string
	partSize int64
	log      *slog.Logger
	bufs     sync.Pool // *[]byte of partSize bytes
}

var _ blob.Store = (*Store)(nil)

// Open connects to the server, creates both buckets when missing and
// installs the default avatars that are missing (blob.InstallDefaults). It
// fails when the server cannot be reached or refuses the credentials.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Bucket == "" {
		o.Bucket = DefaultBucket
	}
	if o.AvatarBucket == "" {
		o.AvatarBucket = DefaultAvatarBucket
	}
	if o.Region == "" {
		o.Region = DefaultRegion
	}
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Bucket == o.AvatarBucket {
		return nil, fmt.Errorf("minio blob store: bucket and avatar bucket are both %q", o.Bucket)
	}
	if o.PartSize < DefaultPartSize || o.PartSize > MaxPartSize {
		return nil, fmt.Errorf("minio blob store: part size %d not in [%d, %d]", o.PartSize, DefaultPartSize, MaxPartSize)
	}
	host, secure, err := endpoint(o.Endpoint, o.UseSSL)
	if err != nil {
		return nil, err
	}
	copts := &s3.Options{
		Creds:        credentials.NewStaticV4(o.AccessKey, o.SecretKey, ""),
		Secure:       secure,
		Region:       o.Region,
		BucketLookup: s3.BucketLookupPath,
	}
	core, err := s3.NewCore(host, copts)
	if err != nil {
		return nil, fmt.Errorf("minio blob store: %w", err)
	}
	s := &Store{
		client:   core.Client,
		core:     core,
		buckets:  map[blob.Bucket]string{blob.Files: o.Bucket, blob.Avatars: o.AvatarBucket},
		partSize: o.PartSize,
		log:      o.Logger,
	}
	s.bufs.New = func() any {
		b := make([]byte, s.partSize)
		return &b
	}
	for _, b := range blob.Buckets() {
		if err := s.ensureBucket(ctx, s.buckets[b], o.Region); err != nil {
			return nil, err
		}
	}
	if err := blob.InstallDefaults(ctx, s); err != nil {
		return nil, fmt.Errorf("minio blob store: %w", err)
	}
	return s, nil
}

// endpoint splits an Endpoint option into host:port and whether to use TLS.
func endpoint(e string, useSSL bool) (host string, secure bool, err error) {
	if e == "" {
		return "", false, errors.New("minio blob store: empty endpoint")
	}
	if !strings.Contains(e, "://") {
		return e, useSSL, nil
	}
	u, err := url.Parse(e)
	if err != nil {
		return "", false, fmt.Errorf("minio blob store: endpoint: %w", err)
	}
	if u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", false, fmt.Errorf("minio blob store: endpoint %q: want host:port or scheme://host:port", e)
	}
	switch u.Scheme {
	case "http":
		return u.Host, false, nil
	case "https":
		return u.Host, true, nil
	}
	return "", false, fmt.Errorf("minio blob store: endpoint %q: scheme must be http or https", e)
}

func (s *Store) ensureBucket(ctx context.Context, name, region string) error {
	ok, err := s.client.BucketExists(ctx, name)
	if err != nil {
		return fmt.Errorf("minio blob store: bucket %s: %w", name, err)
	}
	if ok {
		return nil
	}
	err = s.client.MakeBucket(ctx, name, s3.MakeBucketOptions{Region: region})
	if err != nil {
		// Another process may have created it meanwhile.
		if code := s3.ToErrorResponse(err).Code; code == s3.BucketAlreadyOwnedByYou || code == s3.BucketAlreadyExists {
			return nil
		}
		return fmt.Errorf("minio blob store: create bucket %s: %w", name, err)
	}
	s.log.InfoContext(ctx, "minio bucket created", "bucket", name)
	return nil
}

// BucketName is the S3 bucket that holds b ("" for an invalid b).
func (s *Store) BucketName(b blob.Bucket) string { return s.buckets[b] }

// Client is the underlying minio-go client (for tests and tools).
func (s *Store) Client() *s3.Client { return s.client }

func (s *Store) target(b blob.Bucket, name string) (string, error) {
	if err := blob.CheckBucket(b); err != nil {
		return "", err
	}
	if err := blob.ValidName(name); err != nil {
		return "", err
	}
	return s.buckets[b], nil
}

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, b blob.Bucket, name, contentType string, r io.Reader, size int64) (err error) {
	bucket, err := s.target(b, name)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("blob put %s/%s: %w", b, name, err)
		}
	}()
	if err := ctx.Err(); err != nil {
		return err
	}
	if contentType == "" {
		contentType = blob.DefaultContentType
	}
	src := io.Reader(ctxReader{ctx: ctx, r: r})
	if size >= 0 {
		src = &exactReader{r: src, left: size}
	}
	bufp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bufp)
	buf := *bufp

	n, err := io.ReadFull(src, buf)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return s.putSingle(ctx, bucket, name, contentType, buf[:n])
	case err != nil:
		return err
	}
	var probe [1]byte
	if _, err := io.ReadFull(src, probe[:]); errors.Is(err, io.EOF) {
		return s.putSingle(ctx, bucket, name, contentType, buf)
	} else if err != nil {
		return err
	}
	return s.putMultipart(ctx, bucket, name, contentType, buf, probe[0], src)
}

func (s *Store) putSingle(ctx context.Context, bucket, name, contentType string, data []byte) error {
	// The stream is read: a cancellation during it must still fail the Put.
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err := s.client.PutObject(ctx, bucket, name, bytes.NewReader(data), int64(len(data)),
		s3.PutObjectOptions{ContentType: contentType, PartSize: uint64(s.partSize)})
	return err
}

// putMultipart uploads first (a full buffer), then next followed by the rest
// of src, in parts of len(first) bytes. first is reused as the part buffer.
func (s *Store) putMultipart(ctx context.Context, bucket, name, contentType string, first []byte, next byte, src io.Reader) (err error) {
	uploadID, err := s.core.NewMultipartUpload(ctx, bucket, name, s3.PutObjectOptions{ContentType: contentType})
	if err != nil {
		return err
	}
	defer func() {
		if err == nil {
			return
		}
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
		defer cancel()
		if aerr := s.core.AbortMultipartUpload(actx, bucket, name, uploadID); aerr != nil {
			s.log.WarnContext(ctx, "minio: abort of a failed multipart upload failed",
				"bucket", bucket, "name", name, "upload_id", uploadID, "err", aerr)
		}
	}()

	buf := first
	part := buf
	more := true
	var parts []s3.CompletePart
	for {
		if len(parts) == maxParts {
			return fmt.Errorf("object larger than %d parts of %d bytes", maxParts, len(buf))
		}
		p, err := s.core.PutObjectPart(ctx, bucket, name, uploadID, len(parts)+1,
			bytes.NewReader(part), int64(len(part)), s3.PutObjectPartOptions{})
		if err != nil {
			return err
		}
		parts = append(parts, s3.CompletePart{PartNumber: p.PartNumber, ETag: p.ETag})
		if !more {
			break
		}
		buf[0] = next
		n, err := io.ReadFull(src, buf[1:])
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			part, more = buf[:1+n], false
			continue
		}
		if err != nil {
			return err
		}
		part = buf
		var probe [1]byte
		if _, err := io.ReadFull(src, probe[:]); errors.Is(err, io.EOF) {
			more = false
		} else if err != nil {
			return err
		}
		next = probe[0]
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	_, err = s.core.CompleteMultipartUpload(ctx, bucket, name, uploadID, parts, s3.PutObjectOptions{ContentType: contentType})
	return err
}

// Get implements blob.Store. The reader is a *minio.Object: an io.ReadSeeker
// (and io.ReaderAt) whose reads after a Seek are ranged GETs. It is bound to
// ctx.
func (s *Store) Get(ctx context.Context, b blob.Bucket, name string) (io.ReadCloser, blob.Info, error) {
	bucket, err := s.target(b, name)
	if err != nil {
		return nil, blob.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, blob.Info{}, fmt.Errorf("blob get %s/%s: %w", b, name, err)
	}
	obj, err := s.client.GetObject(ctx, bucket, name, s3.GetObjectOptions{})
	if err != nil {
		return nil, blob.Info{}, fmt.Errorf("blob get %s/%s: %w", b, name, notFound(err))
	}
	// Stat sends the GET; its response body serves the first reads.
	st, err := obj.Stat()
	if err != nil {
		_ = obj.Close()
		return nil, blob.Info{}, fmt.Errorf("blob get %s/%s: %w", b, name, notFound(err))
	}
	info := blob.Info{Name: name, ContentType: st.ContentType, Size: st.Size, ModTime: st.LastModified}
	if info.ContentType == "" {
		info.ContentType = blob.DefaultContentType
	}
	return obj, info, nil
}

// notFound maps S3's missing-key error to storage.ErrNotFound (keeping the
// original's text).
func notFound(err error) error {
	if s3.ToErrorResponse(err).Code == s3.NoSuchKey {
		return fmt.Errorf("%w: %v", storage.ErrNotFound, err)
	}
	return err
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, b blob.Bucket, name string) error {
	bucket, err := s.target(b, name)
	if err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, bucket, name, s3.RemoveObjectOptions{}); err != nil {
		if s3.ToErrorResponse(err).Code == s3.NoSuchKey {
			return nil
		}
		return fmt.Errorf("blob delete %s/%s: %w", b, name, err)
	}
	return nil
}

// List implements blob.Store; ContentType is left empty. Objects whose names
// blob.ValidName refuses (put there by other tools) are skipped.
func (s *Store) List(ctx context.Context, b blob.Bucket, fn func(blob.Info) error) error {
	if err := blob.CheckBucket(b); err != nil {
		return err
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine when fn stops the walk
	for o := range s.client.ListObjects(lctx, s.buckets[b], s3.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			return fmt.Errorf("blob list %s: %w", b, o.Err)
		}
		if blob.ValidName(o.Key) != nil {
			continue
		}
		if err := fn(blob.Info{Name: o.Key, Size: o.Size, ModTime: o.LastModified}); err != nil {
			return err
		}
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob list %s: %w", b, err)
	}
	return nil
}

// ctxReader fails reads once ctx is done, so a cancelled upload stops.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// errSizeMismatch fails a Put whose stream is not of the announced size.
var errSizeMismatch = errors.New("size mismatch")

// exactReader yields r, which must be exactly left bytes long: it fails
// with errSizeMismatch on a shorter stream, and on a longer one before
// handing out the last announced bytes (it reads one byte ahead), so that a
// consumer reading exactly the announced size still sees the failure.
type exactReader struct {
	r    io.Reader
	left int64
	read int64
	err  error
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		if err := e.checkEnd(); err != nil {
			return 0, err
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	e.read += int64(n)
	switch {
	case errors.Is(err, io.EOF) && e.left > 0:
		e.err = fmt.Errorf("%w: stream ended after %d bytes, %d more announced", errSizeMismatch, e.read, e.left)
		return 0, e.err
	case err != nil && !errors.Is(err, io.EOF):
		e.err = err
		return 0, err
	}
	if e.left == 0 {
		if err := e.checkEnd(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// checkEnd reads one byte past the announced size: io.EOF is success.
func (e *exactReader) checkEnd() error {
	var one [1]byte
	for {
		n, err := e.r.Read(one[:])
		if n > 0 {
			e.err = fmt.Errorf("%w: stream longer than the announced %d bytes", errSizeMismatch, e.read)
			return e.err
		}
		if errors.Is(err, io.EOF) {
			e.err = io.EOF
			return nil
		}
		if err != nil {
			e.err = err
			return err
		}
	}
}
