// Package local is the embedded blob.Store: one directory per bucket under a
// root (root/files, root/avatars), one plain file per object, the content type
// in a JSON sidecar (root/<bucket>/.meta/<name>.json). Writes go to a temporary
// file in the bucket directory, are synced, then renamed into place, so a
// reader never sees a partial object.
package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sandcat-im/sandcat/storage"
	"github.com/sandcat-im/sandcat/storage/blob"
)

const (
	metaDir    = ".meta"
	metaSuffix = ".json"
	tmpPrefix  = ".tmp-"
	// staleTemp is the age after which Open removes temporary files left by
	// an interrupted Put (another process may still be writing younger ones).
	staleTemp = time.Hour
	filePerm  = 0o640
	dirPerm   = 0o750
)

// Store keeps objects on the local disk. It is safe for concurrent use, also
// by several processes sharing the directory.
type Store struct {
	root string
}

var _ blob.Store = (*Store)(nil)

// Open creates root/files and root/avatars when needed, removes stale
// temporary files, and installs the default avatars that are missing.
func Open(ctx context.Context, root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("local blob store: empty directory")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("local blob store: %w", err)
	}
	s := &Store{root: abs}
	for _, b := range blob.Buckets() {
		if err := os.MkdirAll(filepath.Join(s.dir(b), metaDir), dirPerm); err != nil {
			return nil, fmt.Errorf("local blob store: create %s: %w", b, err)
		}
		if err := removeStale(s.dir(b), time.Now().Add(-staleTemp)); err != nil {
			return nil, fmt.Errorf("local blob store: clean %s: %w", b, err)
		}
	}
	if err := blob.InstallDefaults(ctx, s); err != nil {
		return nil, fmt.Errorf("local blob store: %w", err)
	}
	return s, nil
}

// Root is the directory the store was opened on (absolute).
func (s *Store) Root() string { return s.root }

func (s *Store) dir(b blob.Bucket) string { return filepath.Join(s.root, string(b)) }

func (s *Store) paths(b blob.Bucket, name string) (data, meta string, err error) {
	if err := blob.CheckBucket(b); err != nil {
		return "", "", err
	}
	if err := blob.ValidName(name); err != nil {
		return "", "", err
	}
	d := s.dir(b)
	return filepath.Join(d, name), filepath.Join(d, metaDir, name+metaSuffix), nil
}

type metadata struct {
	ContentType string `json:"content_type"`
}

// Put implements blob.Store.
func (s *Store) Put(ctx context.Context, b blob.Bucket, name, contentType string, r io.Reader, size int64) (err error) {
	dataPath, metaPath, err := s.paths(b, name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob put %s/%s: %w", b, name, err)
	}
	dataTmp, err := s.writeTemp(ctx, filepath.Dir(dataPath), r, size)
	if err != nil {
		return fmt.Errorf("blob put %s/%s: %w", b, name, err)
	}
	defer func() {
		if err != nil {
			_ = os.Remove(dataTmp)
		}
	}()
	meta, err := json.Marshal(metadata{ContentType: contentType})
	if err != nil {
		return fmt.Errorf("blob put %s/%s: %w", b, name, err)
	}
	metaTmp, err := s.writeTemp(ctx, filepath.Dir(metaPath), bytes.NewReader(meta), int64(len(meta)))
	if err != nil {
		return fmt.Errorf("blob put %s/%s: meta: %w", b, name, err)
	}
	if err := ctx.Err(); err != nil {
		_ = os.Remove(metaTmp)
		return fmt.Errorf("blob put %s/%s: %w", b, name, err)
	}
	// The sidecar goes first: an object is never visible without its type.
	if err := os.Rename(metaTmp, metaPath); err != nil {
		_ = os.Remove(metaTmp)
		return fmt.Errorf("blob put %s/%s: %w", b, name, err)
	}
	if err := os.Rename(dataTmp, dataPath); err != nil {
		return fmt.Errorf("blob put %s/%s: %w", b, name, err)
	}
	if err := syncDir(filepath.Dir(dataPath)); err != nil {
		return fmt.Errorf("blob put %s/%s: %w", b, name, err)
	}
	return nil
}

// writeTemp copies r into a new synced temporary file in dir and returns its
// path; on error nothing is left behind.
func (s *Store) writeTemp(ctx context.Context, dir string, r io.Reader, size int64) (path string, err error) {
	f, err := os.CreateTemp(dir, tmpPrefix+"*")
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(f.Name())
		}
	}()
	src := io.Reader(ctxReader{ctx: ctx, r: r})
	if size >= 0 {
		src = io.LimitReader(src, size+1) // one more byte reveals a longer stream
	}
	buf := make([]byte, 64<<10)
	n, err := io.CopyBuffer(onlyWriter{f}, src, buf)
	if err != nil {
		return "", err
	}
	if size >= 0 && n < size {
		return "", fmt.Errorf("size mismatch: stream ended after %d bytes, want %d", n, size)
	}
	if size >= 0 && n > size {
		return "", fmt.Errorf("size mismatch: stream longer than %d bytes", size)
	}
	if err := f.Chmod(filePerm); err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// Get implements blob.Store. The returned reader is an *os.File (an
// io.ReadSeeker).
func (s *Store) Get(ctx context.Context, b blob.Bucket, name string) (io.ReadCloser, blob.Info, error) {
	dataPath, metaPath, err := s.paths(b, name)
	if err != nil {
		return nil, blob.Info{}, err
	}
	if err := ctx.Err(); err != nil {
		return nil, blob.Info{}, fmt.Errorf("blob get %s/%s: %w", b, name, err)
	}
	f, err := os.Open(dataPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, blob.Info{}, fmt.Errorf("blob get %s/%s: %w", b, name, storage.ErrNotFound)
		}
		return nil, blob.Info{}, fmt.Errorf("blob get %s/%s: %w", b, name, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, blob.Info{}, fmt.Errorf("blob get %s/%s: %w", b, name, err)
	}
	if !st.Mode().IsRegular() {
		_ = f.Close()
		return nil, blob.Info{}, fmt.Errorf("blob get %s/%s: %w", b, name, storage.ErrNotFound)
	}
	info := blob.Info{Name: name, ContentType: blob.DefaultContentType, Size: st.Size(), ModTime: st.ModTime()}
	if raw, err := os.ReadFile(metaPath); err == nil {
		var m metadata
		if json.Unmarshal(raw, &m) == nil && m.ContentType != "" {
			info.ContentType = m.ContentType
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		_ = f.Close()
		return nil, blob.Info{}, fmt.Errorf("blob get %s/%s: meta: %w", b, name, err)
	}
	return f, info, nil
}

// Delete implements blob.Store.
func (s *Store) Delete(ctx context.Context, b blob.Bucket, name string) error {
	dataPath, metaPath, err := s.paths(b, name)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("blob delete %s/%s: %w", b, name, err)
	}
	for _, p := range []string{dataPath, metaPath} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("blob delete %s/%s: %w", b, name, err)
		}
	}
	return nil
}

// List implements blob.Store; ContentType is left empty.
func (s *Store) List(ctx context.Context, b blob.Bucket, fn func(blob.Info) error) error {
	if err := blob.CheckBucket(b); err != nil {
		return err
	}
	d, err := os.Open(s.dir(b))
	if err != nil {
		return fmt.Errorf("blob list %s: %w", b, err)
	}
	defer d.Close()
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("blob list %s: %w", b, err)
		}
		entries, err := d.ReadDir(256)
		for _, e := range entries {
			name := e.Name()
			if blob.ValidName(name) != nil || !e.Type().IsRegular() {
				continue // temporary files, the .meta directory, strays
			}
			st, ierr := e.Info()
			if ierr != nil {
				if errors.Is(ierr, fs.ErrNotExist) {
					continue // deleted meanwhile
				}
				return fmt.Errorf("blob list %s: %w", b, ierr)
			}
			if ferr := fn(blob.Info{Name: name, Size: st.Size(), ModTime: st.ModTime()}); ferr != nil {
				return ferr
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("blob list %s: %w", b, err)
		}
	}
}

// removeStale deletes temporary files older than before in dir and dir/.meta.
func removeStale(dir string, before time.Time) error {
	for _, d := range []string{dir, filepath.Join(dir, metaDir)} {
		entries, err := os.ReadDir(d)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !strings.HasPrefix(e.Name(), tmpPrefix) {
				continue
			}
			st, err := e.Info()
			if err != nil || st.ModTime().After(before) {
				continue
			}
			if err := os.Remove(filepath.Join(d, e.Name())); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return err
			}
		}
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
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

// onlyWriter hides *os.File's ReadFrom so that every read goes through ctxReader.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }
