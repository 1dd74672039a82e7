// Package blob declares the object store behind /file (chat files and
// avatars): two buckets of named objects with a content type. The local-disk
// implementation is storage/blob/local; an S3/MinIO one can be added behind the
// same Store contract, checked by the conformance suite in storage/blob/blobtest.
package blob

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// Bucket is one of the two object namespaces of the wire (sandcat-wire.md §7).
type Bucket string

const (
	// Files holds chat files, images, videos and voice notes (oss.bucket, "sandcat").
	Files Bucket = "files"
	// Avatars holds user and group avatars, the default avatars and imported
	// OAuth avatars (oss.avatar_bucket, "sandcat-avatar").
	Avatars Bucket = "avatars"
)

// Buckets lists every bucket, in a fixed order.
func Buckets() []Bucket { return []Bucket{Files, Avatars} }

// Valid reports whether b is Files or Avatars.
func (b Bucket) Valid() bool { return b == Files || b == Avatars }

// Info describes a stored object.
type Info struct {
	Name string
	// ContentType is the type given to Put. Get always fills it (with
	// "application/octet-stream" when none was kept); List may leave it empty.
	ContentType string
	Size        int64
	ModTime     time.Time
}

// Store keeps objects by bucket and name. Names must pass ValidName.
type Store interface {
	// Put stores r under name, replacing any object of that name. size is the
	// exact number of bytes r yields, or -1 when unknown; when size >= 0 and r
	// yields a different count, Put fails. On any error (r failing, ctx
	// cancelled, size mismatch) no object is left behind and an older object
	// of the same name is untouched.
	Put(ctx context.Context, bucket Bucket, name, contentType string, r io.Reader, size int64) error
	// Get opens an object; the caller closes it. A missing object is
	// storage.ErrNotFound. The reader may also be an io.ReadSeeker.
	Get(ctx context.Context, bucket Bucket, name string) (io.ReadCloser, Info, error)
	// Delete removes an object; deleting a missing object is not an error.
	Delete(ctx context.Context, bucket Bucket, name string) error
	// List calls fn for every object of bucket, in no particular order,
	// with Name, Size and ModTime set. An error from fn stops the walk and is
	// returned as is.
	List(ctx context.Context, bucket Bucket, fn func(Info) error) error
}

// DefaultContentType is the content type of objects stored without one.
const DefaultContentType = "application/octet-stream"

// ErrInvalidName is returned for object names that ValidName rejects.
var ErrInvalidName = errors.New("blob: invalid object name")

// ErrInvalidBucket is returned for a Bucket that is neither Files nor Avatars.
var ErrInvalidBucket = errors.New("blob: invalid bucket")

// MaxNameLen is the longest accepted object name.
const MaxNameLen = 128

// ValidName checks an object name: 1 to MaxNameLen characters from
// [A-Za-z0-9_.-] (a nanoid, optionally followed by ".ext", or a default
// avatar name such as "avatar1.png"), not starting or ending with '.', and
// with no "..". Path separators, NUL and every other character are refused,
// so a valid name never escapes its bucket. Errors wrap ErrInvalidName.
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: length %d", ErrInvalidName, len(name))
	}
	if name[0] == '.' || name[len(name)-1] == '.' {
		return fmt.Errorf("%w: %q starts or ends with '.'", ErrInvalidName, name)
	}
	prevDot := false
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', c == '-':
			prevDot = false
		case c == '.':
			if prevDot {
				return fmt.Errorf("%w: %q contains \"..\"", ErrInvalidName, name)
			}
			prevDot = true
		default:
			return fmt.Errorf("%w: %q has character %q", ErrInvalidName, name, c)
		}
	}
	return nil
}

// CheckBucket returns an error wrapping ErrInvalidBucket unless b is valid.
func CheckBucket(b Bucket) error {
	if !b.Valid() {
		return fmt.Errorf("%w: %q", ErrInvalidBucket, string(b))
	}
	return nil
}

// AvatarPutter adapts a Store to writers of avatars that do not know the
// size in advance (OAuth avatar import): PutAvatar puts into Avatars.
type AvatarPutter struct{ Store Store }

// PutAvatar stores r in the Avatars bucket under name.
func (a AvatarPutter) PutAvatar(ctx context.Context, name, contentType string, r io.Reader) error {
	return a.Store.Put(ctx, Avatars, name, contentType, r, -1)
}
