package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
)

// fileScheme is the URL prefix of local files: file:///absolute/path.
const fileScheme = "file://"

// FileSource reads objects from local folders, named by file:///abs/path
// URLs. URLs are not percent-decoded: file:///data/a b.tar names the file
// "/data/a b.tar". An object's ETag is derived from its size and
// modification time (nanoseconds), so rewriting a file changes its ETag on
// file systems with fine-grained timestamps.
//
// A FileSource has no mutable state but its counters: every method is safe
// to call concurrently.
type FileSource struct {
	counters Counters
}

var (
	_ Source = (*FileSource)(nil)
	_ Writer = (*FileSource)(nil)
)

// NewFileSource returns a Source for file:// URLs.
func NewFileSource() *FileSource { return &FileSource{} }

// Metrics returns a snapshot of the source's counters: Requests counts
// Stat, List and ReadAt calls, Bytes the bytes ReadAt delivered.
func (s *FileSource) Metrics() Metrics { return s.counters.Snapshot() }

// Stat returns the regular file at url. A folder is ErrNotFound.
func (s *FileSource) Stat(ctx context.Context, url string) (Object, error) {
	const op = "stat"
	path, err := filePath(op, url)
	if err != nil {
		return Object{}, err
	}
	if err := ctx.Err(); err != nil {
		return Object{}, &Error{Op: op, Object: url, Kind: ErrUnavailable, Err: err}
	}
	s.counters.Request()
	fi, err := os.Stat(path)
	if err != nil {
		return Object{}, fileError(op, url, err)
	}
	if !fi.Mode().IsRegular() {
		return Object{}, &Error{Op: op, Object: url, Kind: ErrNotFound, Err: fmt.Errorf("not a regular file (%v)", fi.Mode().Type())}
	}
	return Object{URL: url, Size: fi.Size(), ETag: fileETag(fi)}, nil
}

// List walks the folder part of prefix recursively and returns the regular
// files (and links to regular files) whose URL starts with prefix, sorted
// by URL. Links to folders are not followed. The folder itself missing is
// ErrNotFound; a prefix matching nothing in it gives an empty list.
func (s *FileSource) List(ctx context.Context, prefix string) ([]Object, error) {
	const op = "list"
	pp, err := filePath(op, prefix)
	if err != nil {
		return nil, err
	}
	root := pp
	if !strings.HasSuffix(root, "/") {
		root = filepath.Dir(root)
	}
	s.counters.Request()
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fileError(op, fileScheme+root, err)
	}
	if !fi.IsDir() {
		return nil, &Error{Op: op, Object: fileScheme + root, Kind: ErrNotFound, Err: errors.New("not a folder")}
	}
	var objs []Object
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if cerr := ctx.Err(); cerr != nil {
			return cerr
		}
		if err != nil {
			return err
		}
		if d.IsDir() {
			// Descend only where names under path can start with the prefix.
			dir := strings.TrimSuffix(path, "/") + "/"
			if !strings.HasPrefix(dir, pp) && !strings.HasPrefix(pp, dir) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(path, pp) {
			return nil
		}
		info, err := d.Info()
		if d.Type()&fs.ModeSymlink != 0 {
			info, err = os.Stat(path)
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a dangling link is no object
			}
		}
		if err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			objs = append(objs, Object{URL: fileScheme + path, Size: info.Size(), ETag: fileETag(info)})
		}
		return nil
	})
	if err != nil {
		return nil, fileError(op, prefix, err)
	}
	sort.Slice(objs, func(i, j int) bool { return objs[i].URL < objs[j].URL })
	return objs, nil
}

// ReadAt fills p from the file at obj.URL at offset off. The ETag is checked
// on the open file before and after reading, so an in-place rewrite during
// the read is ErrChanged too. A range past the end is ErrCorrupt wrapping
// io.ErrUnexpectedEOF.
func (s *FileSource) ReadAt(ctx context.Context, obj Object, p []byte, off int64) error {
	const op = "read"
	path, err := filePath(op, obj.URL)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Object: obj.URL, Kind: ErrUnavailable, Err: err}
	}
	if off < 0 {
		return RangeError(op, obj.URL, off, len(p), -1)
	}
	s.counters.Request()
	f, err := os.Open(path)
	if err != nil {
		return fileError(op, obj.URL, err)
	}
	defer f.Close()
	check := func() (fs.FileInfo, error) {
		fi, err := f.Stat()
		if err != nil {
			return nil, fileError(op, obj.URL, err)
		}
		if !fi.Mode().IsRegular() {
			return nil, &Error{Op: op, Object: obj.URL, Kind: ErrNotFound, Err: errors.New("not a regular file")}
		}
		if obj.ETag != "" && fileETag(fi) != obj.ETag {
			return nil, &Error{Op: op, Object: obj.URL, Kind: ErrChanged, Err: fmt.Errorf("etag %s, want %s", fileETag(fi), obj.ETag)}
		}
		return fi, nil
	}
	fi, err := check()
	if err != nil {
		return err
	}
	n, err := f.ReadAt(p, off)
	if n < len(p) {
		if err == nil || errors.Is(err, io.EOF) {
			return RangeError(op, obj.URL, off, len(p), fi.Size())
		}
		return fileError(op, obj.URL, err)
	}
	if _, err := check(); err != nil {
		return err
	}
	s.counters.Read(n)
	return nil
}

// Put writes data to the file at url atomically: into a temporary file in
// the same folder, synced, then renamed over the old one. Missing folders
// are made, as S3 needs none. The file is readable by all (0644).
func (s *FileSource) Put(ctx context.Context, url string, data []byte) error {
	const op = "put"
	path, err := filePath(op, url)
	if err != nil {
		return err
	}
	if strings.HasSuffix(path, "/") {
		return &Error{Op: op, Object: url, Kind: ErrBadURL, Err: errors.New("names a folder, not a file")}
	}
	if err := ctx.Err(); err != nil {
		return &Error{Op: op, Object: url, Kind: ErrUnavailable, Err: err}
	}
	s.counters.Request()
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fileError(op, url, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fileError(op, url, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a successful rename, there is nothing to remove
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(0o644)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		return fileError(op, url, err)
	}
	return nil
}

// fileETag derives a file's version from its size and modification time.
func fileETag(fi fs.FileInfo) string {
	return fmt.Sprintf("%x-%x", fi.Size(), fi.ModTime().UnixNano())
}

// filePath returns the absolute path a file:// URL names. Only URLs are
// accepted, not bare paths, and only clean absolute paths, so that one file
// has one URL.
func filePath(op, url string) (string, error) {
	rest, ok := strings.CutPrefix(url, fileScheme)
	if !ok {
		return "", &Error{Op: op, Object: url, Kind: ErrBadURL, Err: errors.New("want a file:///absolute/path URL")}
	}
	if !strings.HasPrefix(rest, "/") {
		return "", &Error{Op: op, Object: url, Kind: ErrBadURL, Err: errors.New("file URLs name an absolute path and no host: file:///absolute/path")}
	}
	trimmed := strings.TrimSuffix(rest, "/")
	if trimmed != "" && filepath.Clean(trimmed) != trimmed {
		return "", &Error{Op: op, Object: url, Kind: ErrBadURL, Err: fmt.Errorf("path is not clean (want %s)", filepath.Clean(trimmed))}
	}
	return rest, nil
}

// fileError maps an os error to an *Error kind.
func fileError(op, url string, err error) error {
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	kind := ErrUnavailable
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		kind = ErrNotFound
	case errors.Is(err, fs.ErrPermission):
		kind = ErrPermission
	}
	return &Error{Op: op, Object: url, Kind: kind, Err: err}
}
