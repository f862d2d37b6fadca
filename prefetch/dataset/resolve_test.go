package dataset_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/storage/s3/s3test"
)

// resolveFixture is one dataset layout, put through a source's harness.
var resolveFixture = []string{
	"train-000000.tar", "train-000001.tar", "train-000002.tar", "train-000003.tar", "train-000004.tar",
	"val/b.tar.gz", "val/a.tgz", "val/readme.txt", "val/sub/c.tar", "val/shards.tar.json",
	"docs/readme.txt",
}

func TestResolve(t *testing.T) {
	// Both sources hold the same layout; every case runs against each.
	dir := t.TempDir()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "data")
	for _, name := range resolveFixture {
		path := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		srv.Put(t, "data", name, []byte(name))
	}
	s3src := srv.Source(t, srv.Endpoint, 2, 0)
	sources := storage.NewSources(map[string]storage.Source{"file": storage.NewFileSource(), "s3": s3src})

	for _, base := range []string{"file://" + dir + "/", "s3://data/"} {
		urls := func(names ...string) []string {
			var out []string
			for _, n := range names {
				out = append(out, base+n)
			}
			return out
		}
		for _, tc := range []struct {
			name, url string
			want      []string
			kind      error  // the error's kind, if one is wanted
			object    string // what the error names
		}{
			{"prefix", base + "val/", urls("val/a.tgz", "val/b.tar.gz", "val/sub/c.tar"), nil, ""},
			{"root prefix", base, urls("train-000000.tar", "train-000001.tar", "train-000002.tar",
				"train-000003.tar", "train-000004.tar", "val/a.tgz", "val/b.tar.gz", "val/sub/c.tar"), nil, ""},
			{"brace range", base + "train-{000001..000003}.tar", urls("train-000001.tar", "train-000002.tar", "train-000003.tar"), nil, ""},
			{"brace order kept", base + "train-{000004..000002}.tar", urls("train-000004.tar", "train-000003.tar", "train-000002.tar"), nil, ""},
			{"brace list", base + "{val/a.tgz,train-000000.tar}", urls("val/a.tgz", "train-000000.tar"), nil, ""},
			{"brace of prefixes", base + "{val/sub,docs}/", urls("val/sub/c.tar"), nil, ""},
			{"single object", base + "train-000002.tar", urls("train-000002.tar"), nil, ""},
			{"single object, any name", base + "val/readme.txt", urls("val/readme.txt"), nil, ""},
			{"brace with a missing shard", base + "train-{000003..000005}.tar", nil, storage.ErrNotFound, base + "train-000005.tar"},
			{"missing object", base + "nope.tar", nil, storage.ErrNotFound, base + "nope.tar"},
			{"prefix without shards", base + "docs/", nil, storage.ErrNotFound, base + "docs/"},
			{"bad brace", base + "train-{000000..000004.tar", nil, storage.ErrBadURL, base + "train-{000000..000004.tar"},
		} {
			got, err := dataset.Resolve(context.Background(), sources, tc.url)
			if tc.kind != nil {
				var e *storage.Error
				if !errors.Is(err, tc.kind) || !errors.As(err, &e) || e.Object != tc.object {
					t.Errorf("%s: Resolve(%s) = %v, want %q naming %s", tc.name, tc.url, err, tc.kind, tc.object)
				}
				continue
			}
			var gotURLs []string
			for _, o := range got {
				gotURLs = append(gotURLs, o.URL)
				if o.Size != int64(len(strings.TrimPrefix(o.URL, base))) || o.ETag == "" {
					t.Errorf("%s: %+v: wrong size or no ETag", tc.name, o)
				}
			}
			if err != nil || !slices.Equal(gotURLs, tc.want) {
				t.Errorf("%s: Resolve(%s) = %q, %v; want %q", tc.name, tc.url, gotURLs, err, tc.want)
			}
		}
	}

	for _, tc := range []struct{ url, says string }{
		{"gs://bucket/train/", `unknown scheme "gs"`},
		{"/data/train/", "bare paths are not accepted"},
		{"data/train-{0..3}.tar", "not a URL"},
		{"s3:///train/", "no bucket"},
		{"file://relative/dir/", "absolute path"},
	} {
		_, err := dataset.Resolve(context.Background(), sources, tc.url)
		var e *storage.Error
		if !errors.Is(err, storage.ErrBadURL) || !errors.As(err, &e) || e.Object != tc.url || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("Resolve(%q) = %v, want ErrBadURL naming it and saying %q", tc.url, err, tc.says)
		}
	}
}

// Many shards are Stat'ed in parallel, bounded, in the order of the
// expansion.
func TestResolveManyShards(t *testing.T) {
	dir := t.TempDir()
	const n = 200
	for i := range n {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("s-%04d.tar", i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	src := storage.NewFileSource()
	sources := storage.NewSources(map[string]storage.Source{"file": src})
	got, err := dataset.Resolve(context.Background(), sources, fmt.Sprintf("file://%s/s-{%04d..0000}.tar", dir, n-1))
	if err != nil || len(got) != n {
		t.Fatalf("Resolve: %d objects, %v", len(got), err)
	}
	for i, o := range got {
		if want := fmt.Sprintf("file://%s/s-%04d.tar", dir, n-1-i); o.URL != want {
			t.Fatalf("object %d is %s, want %s", i, o.URL, want)
		}
	}
	if m := src.Metrics(); m.Requests != n {
		t.Errorf("%d requests for %d shards, want one Stat each", m.Requests, n)
	}
}

func ExampleExpandBraces() {
	names, _ := dataset.ExpandBraces("s3://bucket/{train,val}-{0000..0002}.tar")
	for _, n := range names {
		fmt.Println(n)
	}
	// Output:
	// s3://bucket/train-0000.tar
	// s3://bucket/train-0001.tar
	// s3://bucket/train-0002.tar
	// s3://bucket/val-0000.tar
	// s3://bucket/val-0001.tar
	// s3://bucket/val-0002.tar
}

func ExampleResolve() {
	dir, _ := os.MkdirTemp("", "resolve-example")
	defer os.RemoveAll(dir)
	for _, name := range []string{"a-0.tar", "a-1.tar", "notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("x"), 0o644); err != nil {
			fmt.Println(err) // and the output differs
		}
	}
	sources := storage.NewSources(map[string]storage.Source{"file": storage.NewFileSource()})
	objs, err := dataset.Resolve(context.Background(), sources, "file://"+dir+"/")
	fmt.Println(len(objs), err)
	_, err = dataset.Resolve(context.Background(), sources, "gs://bucket/train/")
	fmt.Println(errors.Is(err, storage.ErrBadURL))
	// Output:
	// 2 <nil>
	// true
}
