package storage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/storage/storagetest"
)

// fileHarness returns a conformance harness over an empty temporary folder.
func fileHarness(t *testing.T) (storagetest.Harness, *storage.FileSource, string) {
	dir := t.TempDir()
	src := storage.NewFileSource()
	return storagetest.Harness{
		Source: src,
		Base:   "file://" + dir + "/",
		Put: func(t testing.TB, name string, data []byte) {
			t.Helper()
			path := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, data, 0o644); err != nil { // in place, as a rewrite would be
				t.Fatal(err)
			}
		},
		Missing: "file://" + dir + "/no-such-folder/",
		Metrics: src.Metrics,
	}, src, dir
}

func TestFileSourceConformance(t *testing.T) {
	h, _, _ := fileHarness(t)
	storagetest.Run(t, h)
}

// A rewrite that keeps the size still changes the ETag through the
// modification time.
func TestFileSourceSameSizeRewrite(t *testing.T) {
	ctx := context.Background()
	src := storage.NewFileSource()
	path := filepath.Join(t.TempDir(), "a.tar")
	if err := os.WriteFile(path, []byte("version one"), 0o644); err != nil {
		t.Fatal(err)
	}
	old, err := src.Stat(ctx, "file://"+path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("version two"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Set the time explicitly: two writes may share one coarse timestamp.
	if err := os.Chtimes(path, time.Time{}, time.Unix(0, 123456789)); err != nil {
		t.Fatal(err)
	}
	err = src.ReadAt(ctx, old, make([]byte, 3), 0)
	if !errors.Is(err, storage.ErrChanged) {
		t.Fatalf("ReadAt after a same-size rewrite: %v, want ErrChanged", err)
	}
}

func TestFileSourceBadURLs(t *testing.T) {
	ctx := context.Background()
	src := storage.NewFileSource()
	dir := t.TempDir()
	for _, url := range []string{
		dir + "/a.tar",                // a bare path
		"file://" + dir[1:] + "/a",    // not absolute (a host)
		"file://" + dir + "/x/../a",   // not clean
		"file://" + dir + "//a.tar",   // not clean
		"s3://bucket/key",             // another scheme
		"file:" + dir + "/a.tar",      // no //
		"file://" + dir + "/./a.tar/", // not clean
	} {
		if _, err := src.Stat(ctx, url); !errors.Is(err, storage.ErrBadURL) {
			t.Errorf("Stat(%q) = %v, want ErrBadURL", url, err)
		}
		if _, err := src.List(ctx, url); !errors.Is(err, storage.ErrBadURL) {
			t.Errorf("List(%q) = %v, want ErrBadURL", url, err)
		}
	}
}

func TestFileSourceFoldersAndLinks(t *testing.T) {
	ctx := context.Background()
	src := storage.NewFileSource()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "d", "e"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "d", "real.tar"), []byte("abc"), 0o644))
	must(os.Symlink(filepath.Join(dir, "d", "real.tar"), filepath.Join(dir, "d", "link.tar")))
	must(os.Symlink(filepath.Join(dir, "nowhere"), filepath.Join(dir, "d", "dangling.tar")))
	must(os.Symlink(filepath.Join(dir, "d"), filepath.Join(dir, "d", "e", "loop")))

	if _, err := src.Stat(ctx, "file://"+dir+"/d"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Stat of a folder = %v, want ErrNotFound", err)
	}
	objs, err := src.List(ctx, "file://"+dir+"/")
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, o := range objs {
		urls = append(urls, o.URL)
	}
	want := []string{"file://" + dir + "/d/link.tar", "file://" + dir + "/d/real.tar"}
	if len(urls) != 2 || urls[0] != want[0] || urls[1] != want[1] {
		t.Errorf("List = %q, want %q (a link to a file is listed; dangling links and folder links are not)", urls, want)
	}
	if _, err := src.List(ctx, "file://"+dir+"/d/real.tar/"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("List under a file = %v, want ErrNotFound", err)
	}
}
