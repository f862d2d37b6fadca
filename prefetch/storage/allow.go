package storage

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ErrNotAllowed is the cause of every refusal by an allow-list (AllowFiles,
// AllowS3); the error's Kind is ErrPermission. Its message is the same
// whether the object exists or not, and says nothing about it.
var ErrNotAllowed = errors.New("outside what this server is allowed to read")

// s3Scheme starts every URL AllowS3 allows.
const s3Scheme = "s3://"

// allowSource is a Source that reads only the URLs its check allows: every
// Stat, List and ReadAt is checked before the wrapped Source sees it, and
// a listing keeps only the objects allowed (a link in an allowed folder
// may point out of it). It is the one place a server's reads of a scheme
// pass through, whoever asks (a trainer's open, a hint, another node's
// ReadShard).
type allowSource struct {
	Source
	// check returns nil for a URL that may be read, else an error naming
	// only the URL as given.
	check func(op, url string) error
	// listable checks a listing's prefix (a folder, or a folder and the
	// start of a name).
	listable func(op, prefix string) error
}

var _ Source = (*allowSource)(nil)

func (a *allowSource) Stat(ctx context.Context, url string) (Object, error) {
	if err := a.check("stat", url); err != nil {
		return Object{}, err
	}
	return a.Source.Stat(ctx, url)
}

func (a *allowSource) List(ctx context.Context, prefix string) ([]Object, error) {
	if err := a.listable("list", prefix); err != nil {
		return nil, err
	}
	objs, err := a.Source.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	kept := objs[:0]
	for _, o := range objs {
		if a.check("list", o.URL) == nil {
			kept = append(kept, o)
		}
	}
	return kept, nil
}

func (a *allowSource) ReadAt(ctx context.Context, obj Object, p []byte, off int64) error {
	if err := a.check("read", obj.URL); err != nil {
		return err
	}
	return a.Source.ReadAt(ctx, obj, p, off)
}

// Allowed returns nil when url may be read, else the error a read gets.
func (a *allowSource) Allowed(url string) error { return a.check("read", url) }

// Metrics passes on the wrapped Source's counters.
func (a *allowSource) Metrics() Metrics {
	if m, ok := a.Source.(interface{ Metrics() Metrics }); ok {
		return m.Metrics()
	}
	return Metrics{}
}

// Link passes on the wrapped Source's estimate.
func (a *allowSource) Link() (LinkEstimate, bool) { return LinkOf(a.Source) }

// Allowed returns nil when the Source for url's scheme may read url (see
// AllowFiles, AllowS3), else the error a read of it gets. A server checks
// requests with it that its cache may answer without reading storage.
func (s *Sources) Allowed(url string) error {
	src, err := s.For(url)
	if err != nil {
		return err
	}
	if a, ok := src.(interface{ Allowed(string) error }); ok {
		return a.Allowed(url)
	}
	return nil
}

func notAllowed(op, url, how string) error {
	return &Error{Op: op, Object: url, Kind: ErrPermission, Err: fmt.Errorf("%w (%s)", ErrNotAllowed, how)}
}

// AllowFiles returns src (a file:// Source) made to read only files under
// roots, each a folder resolved now through its links. A URL is resolved
// through every link and must land under a root (a link out of a root is
// refused), and so must a listing's folder. A URL refused gets the same
// error whether its file exists or not. With no roots every file:// URL is
// refused: local folders are opt-in. A root that is not a folder is an
// error.
func AllowFiles(src Source, roots []string) (Source, error) {
	resolved := make([]string, 0, len(roots))
	for _, r := range roots {
		abs, err := filepath.Abs(r)
		if err == nil {
			abs, err = filepath.EvalSymlinks(abs)
		}
		if err != nil {
			return nil, fmt.Errorf("allowed folder %s: %w", r, err)
		}
		if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("allowed folder %s: not a folder", r)
		}
		resolved = append(resolved, abs)
	}
	how := "local folders are off on this server: start stokerd with --allow-file-root DIR"
	if len(resolved) > 0 {
		how = "not under a folder given to stokerd --allow-file-root"
	}
	under := func(p string) bool {
		for _, r := range resolved {
			if p == r || strings.HasPrefix(p, strings.TrimSuffix(r, "/")+"/") {
				return true
			}
		}
		return false
	}
	check := func(op, url string) error {
		path, err := filePath(op, url)
		if err != nil {
			return err
		}
		if p, ok := resolveExisting(filepath.Clean(path)); !ok || !under(p) {
			return notAllowed(op, url, how)
		}
		return nil
	}
	listable := func(op, prefix string) error {
		path, err := filePath(op, prefix)
		if err != nil {
			return err
		}
		dir := path
		if !strings.HasSuffix(dir, "/") {
			dir = filepath.Dir(dir)
		}
		if p, ok := resolveExisting(filepath.Clean(dir)); !ok || !under(p) {
			return notAllowed(op, prefix, how)
		}
		return nil
	}
	return &allowSource{Source: src, check: check, listable: listable}, nil
}

// resolveExisting resolves path (absolute and clean) through its links:
// the longest part of it that exists is resolved, and the names below it,
// which do not exist, are joined on as they are. False when the path
// cannot be resolved (a dangling link, a folder it may not enter): such a
// path is refused like one outside every root, so the answer does not
// tell why.
func resolveExisting(path string) (string, bool) {
	rest := ""
	for p := path; ; p = filepath.Dir(p) {
		r, err := filepath.EvalSymlinks(p)
		if err == nil {
			return filepath.Join(r, rest), true
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", false
		}
		if _, lerr := os.Lstat(p); lerr == nil || !errors.Is(lerr, fs.ErrNotExist) {
			return "", false // p is there (a dangling link) but cannot be resolved
		}
		if p == "/" {
			return "", false
		}
		rest = filepath.Join(filepath.Base(p), rest)
	}
}

// AllowS3 returns src (an s3:// Source) made to read only objects whose URL
// starts with one of prefixes (s3://bucket/ for a whole bucket,
// s3://bucket/train/ for a folder; matched as strings, as S3 policies
// match key prefixes, so end a folder with "/"). A key with "." or ".."
// segments or an empty one is refused: a store that maps keys to files
// could read them as paths. With no prefixes src is returned as it is.
func AllowS3(src Source, prefixes []string) (Source, error) {
	if len(prefixes) == 0 {
		return src, nil
	}
	norm := make([]string, 0, len(prefixes))
	for _, p := range prefixes {
		rest, ok := strings.CutPrefix(p, s3Scheme)
		bucket, _, _ := strings.Cut(rest, "/")
		if !ok || bucket == "" {
			return nil, fmt.Errorf("allowed S3 prefix %q: want s3://bucket/ or s3://bucket/prefix", p)
		}
		if !strings.Contains(rest, "/") {
			p += "/" // a bucket alone: all of it, and no other bucket whose name starts the same
		}
		norm = append(norm, p)
	}
	how := "not under an S3 prefix given to stokerd --allow-s3"
	allowed := func(op, url string) error {
		rest, ok := strings.CutPrefix(url, s3Scheme)
		if !ok {
			return &Error{Op: op, Object: url, Kind: ErrBadURL, Err: errors.New("want an s3://bucket/key URL")}
		}
		if _, key, _ := strings.Cut(rest, "/"); dotSegments(key) {
			return notAllowed(op, url, how)
		}
		for _, p := range norm {
			if strings.HasPrefix(url, p) {
				return nil
			}
		}
		return notAllowed(op, url, how)
	}
	return &allowSource{Source: src, check: allowed, listable: allowed}, nil
}

// dotSegments reports whether key has a ".", ".." or empty segment
// before its last (a trailing "/" is a folder prefix).
func dotSegments(key string) bool {
	segs := strings.Split(strings.TrimSuffix(key, "/"), "/")
	for _, s := range segs {
		if s == "." || s == ".." || (s == "" && len(segs) > 1) {
			return true
		}
	}
	return false
}
