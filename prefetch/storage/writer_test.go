package storage_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/storage/s3"
	"github.com/stoker-data/stoker/prefetch/storage/s3/s3test"
	"github.com/stoker-data/stoker/prefetch/storage/storagetest"
)

// writerSource is a Source that can Put.
type writerSource interface {
	storage.Source
	storage.Writer
}

// testPut checks Put on src under base (a URL ending in "/" where nothing
// exists yet): what Put wrote is what Stat, List and ReadAt see, a second
// Put replaces it whole, nested names work, concurrent Puts of one object
// leave one of the versions, and bad URLs are ErrBadURL.
func testPut(t *testing.T, src writerSource, base string) {
	ctx := context.Background()
	url := base + "d/wids-index.json"
	one := storagetest.Data("one", 3000)
	if err := src.Put(ctx, url, one); err != nil {
		t.Fatalf("Put(%s): %v", url, err)
	}
	o, err := src.Stat(ctx, url)
	if err != nil || o.Size != int64(len(one)) || o.ETag == "" {
		t.Fatalf("Stat after Put = %+v, %v; want %d bytes and an ETag", o, err, len(one))
	}
	got := make([]byte, len(one))
	if err := src.ReadAt(ctx, o, got, 0); err != nil || !bytes.Equal(got, one) {
		t.Fatalf("ReadAt after Put: %v, equal %v", err, bytes.Equal(got, one))
	}
	two := storagetest.Data("two", 1000)
	if err := src.Put(ctx, url, two); err != nil {
		t.Fatal(err)
	}
	o2, err := src.Stat(ctx, url)
	if err != nil || o2.Size != int64(len(two)) || o2.ETag == o.ETag {
		t.Fatalf("Stat after a second Put = %+v, %v; want %d bytes and a new ETag", o2, err, len(two))
	}
	if err := src.ReadAt(ctx, o, got[:10], 0); !errors.Is(err, storage.ErrChanged) {
		t.Fatalf("ReadAt of the replaced version = %v, want ErrChanged", err)
	}
	if err := src.Put(ctx, base+"d/empty.stoker", nil); err != nil {
		t.Fatalf("Put of no bytes: %v", err)
	}
	list, err := src.List(ctx, base)
	if err != nil || len(list) != 2 || list[0].URL != base+"d/empty.stoker" || list[0].Size != 0 || list[1].URL != url {
		t.Fatalf("List = %+v, %v; want the two objects Put wrote, and nothing else", list, err)
	}

	var wg sync.WaitGroup
	versions := [][]byte{storagetest.Data("a", 100_000), storagetest.Data("b", 100_000), storagetest.Data("c", 100_000)}
	for _, v := range versions {
		wg.Go(func() {
			if err := src.Put(ctx, base+"race", v); err != nil {
				t.Errorf("concurrent Put: %v", err)
			}
		})
	}
	wg.Wait()
	o3, err := src.Stat(ctx, base+"race")
	if err != nil {
		t.Fatal(err)
	}
	last := make([]byte, o3.Size)
	if err := src.ReadAt(ctx, o3, last, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(last, versions[0]) && !bytes.Equal(last, versions[1]) && !bytes.Equal(last, versions[2]) {
		t.Fatal("concurrent Puts left a mix of versions")
	}

	for _, bad := range []string{base, base + "d/", "nosuchscheme://x/y"} {
		if err := src.Put(ctx, bad, one); !errors.Is(err, storage.ErrBadURL) {
			t.Errorf("Put(%q) = %v, want ErrBadURL", bad, err)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := src.Put(cctx, base+"cancelled", one); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Put with a cancelled ctx = %v, want ErrUnavailable", err)
	}
}

func TestFileSourcePut(t *testing.T) {
	dir := t.TempDir()
	src := storage.NewFileSource()
	testPut(t, src, "file://"+dir+"/")
	left, err := filepath.Glob(filepath.Join(dir, "d", ".*"))
	if err != nil || len(left) != 0 {
		t.Errorf("temporary files left behind: %v %v", left, err)
	}
	fi, err := os.Stat(filepath.Join(dir, "d", "wids-index.json"))
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("written file: %v, mode %v; want 0644", err, fi.Mode())
	}
	// A file where a folder must be: nothing can be written under it.
	if err := src.Put(context.Background(), "file://"+dir+"/d/wids-index.json/x", nil); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Put under a file = %v, want ErrNotFound", err)
	}
}

func TestS3SourcePut(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "put")
	src := srv.Source(t, srv.Endpoint, 2, 0)
	testPut(t, src, "s3://put/")
	if err := src.Put(context.Background(), "s3://no-such-bucket/x.json", []byte("x")); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Put into a missing bucket = %v, want ErrNotFound", err)
	}
	cfg := s3.DefaultConfig()
	cfg.Endpoint = srv.Endpoint
	cfg.Credentials = (&s3test.Server{AccessKey: srv.AccessKey, SecretKey: "wrong"}).Credentials()
	bad, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Put(context.Background(), "s3://put/y.json", []byte("y")); !errors.Is(err, storage.ErrPermission) {
		t.Errorf("Put with a wrong secret = %v, want ErrPermission", err)
	}
}
