package storage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/storage/s3/s3test"
	"github.com/stoker-data/stoker/prefetch/storage/storagetest"
)

// A Source behind an allow-list still passes the conformance suite for
// what it allows.
func TestAllowFilesConformance(t *testing.T) {
	h, _, dir := fileHarness(t)
	src, err := storage.AllowFiles(h.Source, []string{dir})
	if err != nil {
		t.Fatal(err)
	}
	h.Source = src
	storagetest.Run(t, h)
}

func TestAllowS3Conformance(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "suite")
	s3, err := storage.AllowS3(srv.Source(t, srv.Endpoint, 3, 0), []string{"s3://suite", "s3://no-such-bucket/"})
	if err != nil {
		t.Fatal(err)
	}
	storagetest.Run(t, storagetest.Harness{
		Source:  s3,
		Base:    "s3://suite/",
		Put:     func(t testing.TB, name string, data []byte) { srv.Put(t, "suite", name, data) },
		Missing: "s3://no-such-bucket/",
	})
}

// allowTree is an allowed folder holding a shard, a link to a file outside
// it, a link to a folder outside it, and a link inside it; beside it, the
// outside folder with a secret shard.
type allowTree struct {
	root, outside string
	src           storage.Source
}

func newAllowTree(t *testing.T) allowTree {
	t.Helper()
	base := t.TempDir()
	root, outside := filepath.Join(base, "allowed"), filepath.Join(base, "outside")
	for _, d := range []string{filepath.Join(root, "sub"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "a.tar"), "allowed bytes")
	write(filepath.Join(root, "sub", "b.tar"), "allowed too")
	write(filepath.Join(outside, "secret.tar"), "secret bytes")
	for link, target := range map[string]string{
		"link-out.tar": filepath.Join(outside, "secret.tar"),
		"dir-out":      outside,
		"link-in.tar":  filepath.Join(root, "sub", "b.tar"),
		"dangling.tar": filepath.Join(outside, "gone.tar"),
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	// The root is given through a link to it, as an operator may.
	alias := filepath.Join(base, "alias")
	if err := os.Symlink(root, alias); err != nil {
		t.Fatal(err)
	}
	src, err := storage.AllowFiles(storage.NewFileSource(), []string{alias})
	if err != nil {
		t.Fatal(err)
	}
	return allowTree{root: root, outside: outside, src: src}
}

// Files outside the allowed folders are refused with one message whatever
// they are (there, missing, a link out, a folder it may not enter), which
// names only the URL asked for; files inside are read, and a missing one
// inside is NotFound.
func TestAllowFilesRefusesOutside(t *testing.T) {
	tr := newAllowTree(t)
	ctx := context.Background()
	u := func(p string) string { return "file://" + p }
	for _, p := range []string{
		filepath.Join(tr.outside, "secret.tar"),         // exists
		filepath.Join(tr.outside, "missing.tar"),        // does not
		"/no/such/folder/x.tar",                         // nor its folder
		"/etc/passwd",                                   // a system file
		filepath.Join(tr.root, "link-out.tar"),          // a link out of the root
		filepath.Join(tr.root, "dir-out", "secret.tar"), // through a folder link out
		filepath.Join(tr.root, "dir-out", "missing.tar"),
		filepath.Join(tr.root, "dangling.tar"), // a link whose target is gone
		filepath.Dir(tr.root),                  // the root's parent
	} {
		_, err := tr.src.Stat(ctx, u(p))
		if !errors.Is(err, storage.ErrPermission) || !errors.Is(err, storage.ErrNotAllowed) {
			t.Errorf("Stat %s: %v, want ErrPermission and ErrNotAllowed", p, err)
			continue
		}
		if want := "stat " + u(p) + ": permission denied: outside what this server is allowed to read (not under a folder given to stokerd --allow-file-root)"; err.Error() != want {
			t.Errorf("Stat %s says\n  %v\nwant the same words for every refused path:\n  %s", p, err, want)
		}
		buf := make([]byte, 4)
		if err := tr.src.ReadAt(ctx, storage.Object{URL: u(p), Size: 12}, buf, 0); !errors.Is(err, storage.ErrNotAllowed) || string(buf) != "\x00\x00\x00\x00" {
			t.Errorf("ReadAt %s: %v, read %q", p, err, buf)
		}
	}
	if _, err := tr.src.Stat(ctx, "file://"+tr.root+"/../outside/secret.tar"); !errors.Is(err, storage.ErrBadURL) {
		t.Errorf("a path with ..: %v, want ErrBadURL", err)
	}

	for _, p := range []string{"a.tar", "sub/b.tar", "link-in.tar"} {
		if _, err := tr.src.Stat(ctx, u(filepath.Join(tr.root, p))); err != nil {
			t.Errorf("Stat %s inside the root: %v", p, err)
		}
	}
	if _, err := tr.src.Stat(ctx, u(filepath.Join(tr.root, "missing.tar"))); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a missing file inside the root: %v, want ErrNotFound", err)
	}

	objs, err := tr.src.List(ctx, u(tr.root+"/"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, strings.TrimPrefix(o.URL, u(tr.root+"/")))
	}
	if want := []string{"a.tar", "link-in.tar", "sub/b.tar"}; !slices.Equal(names, want) {
		t.Errorf("listing the root: %v, want %v (no link out of it)", names, want)
	}
	for _, prefix := range []string{u(tr.outside + "/"), "file:///", u(tr.root + "/dir-out/"), u(filepath.Dir(tr.root) + "/all")} {
		if _, err := tr.src.List(ctx, prefix); !errors.Is(err, storage.ErrNotAllowed) {
			t.Errorf("List %s: %v, want ErrNotAllowed", prefix, err)
		}
	}

	// The mux answers the same for a server's own checks.
	srcs := storage.NewSources(map[string]storage.Source{"file": tr.src})
	if err := srcs.Allowed(u(filepath.Join(tr.outside, "secret.tar"))); !errors.Is(err, storage.ErrNotAllowed) {
		t.Errorf("Sources.Allowed outside: %v", err)
	}
	if err := srcs.Allowed(u(filepath.Join(tr.root, "a.tar"))); err != nil {
		t.Errorf("Sources.Allowed inside: %v", err)
	}
}

// Without a root, local files are off: every file:// URL is refused with a
// message saying how to turn them on.
func TestAllowFilesNoRoots(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "a.tar"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := storage.AllowFiles(storage.NewFileSource(), nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = src.Stat(context.Background(), "file://"+dir+"/a.tar")
	if !errors.Is(err, storage.ErrNotAllowed) || !strings.Contains(err.Error(), "--allow-file-root") {
		t.Fatalf("Stat with no roots: %v", err)
	}
	if _, err := storage.AllowFiles(storage.NewFileSource(), []string{filepath.Join(dir, "a.tar")}); err == nil {
		t.Error("a file as a root was accepted")
	}
	if _, err := storage.AllowFiles(storage.NewFileSource(), []string{filepath.Join(dir, "missing")}); err == nil {
		t.Error("a missing root was accepted")
	}
}

// S3 URLs must start with an allowed prefix, matched as a string (a bucket
// alone means the whole bucket, not others named like it), with no dot
// segments; nothing is asked of storage for a refused URL.
func TestAllowS3(t *testing.T) {
	fake := &recordingSource{}
	src, err := storage.AllowS3(fake, []string{"s3://data/train/", "s3://whole"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for url, ok := range map[string]bool{
		"s3://data/train/a.tar":           true,
		"s3://data/train/x/y.tar":         true,
		"s3://whole/any/thing.tar":        true,
		"s3://data/secret/a.tar":          false,
		"s3://data/train-other/a.tar":     false,
		"s3://wholesale/a.tar":            false,
		"s3://other/train/a.tar":          false,
		"s3://data/train/../secret/a.tar": false,
		"s3://data/train/./a.tar":         false,
		"s3://data/train//a.tar":          false,
	} {
		_, err := src.Stat(ctx, url)
		if ok != (err == nil) || (!ok && !errors.Is(err, storage.ErrNotAllowed)) {
			t.Errorf("Stat %s: %v, want allowed=%v", url, err, ok)
		}
	}
	if _, err := src.List(ctx, "s3://data/tr"); !errors.Is(err, storage.ErrNotAllowed) {
		t.Errorf("listing a prefix wider than the allowed one: %v", err)
	}
	fake.list = []storage.Object{{URL: "s3://data/train/a.tar"}}
	if objs, err := src.List(ctx, "s3://data/train/"); err != nil || len(objs) != 1 {
		t.Errorf("listing the allowed prefix: %v, %v", objs, err)
	}
	if want := []string{"s3://data/train/a.tar", "s3://data/train/x/y.tar", "s3://whole/any/thing.tar", "s3://data/train/"}; !sameSet(fake.asked, want) {
		t.Errorf("storage was asked for %v, want only %v", fake.asked, want)
	}
	for _, bad := range []string{"data/train", "s3://", "s3:///x"} {
		if _, err := storage.AllowS3(fake, []string{bad}); err == nil {
			t.Errorf("AllowS3 accepted %q", bad)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// recordingSource is a fake Source that records the URLs it is asked for.
type recordingSource struct {
	asked []string
	list  []storage.Object
}

func (r *recordingSource) Stat(_ context.Context, url string) (storage.Object, error) {
	r.asked = append(r.asked, url)
	return storage.Object{URL: url}, nil
}

func (r *recordingSource) List(_ context.Context, prefix string) ([]storage.Object, error) {
	r.asked = append(r.asked, prefix)
	return r.list, nil
}

func (r *recordingSource) ReadAt(_ context.Context, obj storage.Object, _ []byte, _ int64) error {
	r.asked = append(r.asked, obj.URL)
	return nil
}
