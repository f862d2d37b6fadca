package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/dsindex"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/storage/s3"
	"github.com/stoker-data/stoker/prefetch/storage/s3/s3test"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// writeShards writes n synthetic shards named name-00000k.tar into dir,
// the last one gzipped as .tar.gz when gz is set.
func writeShards(t *testing.T, dir, name string, n int, seed uint64, gz bool) {
	t.Helper()
	tmp := t.TempDir()
	if err := (wds.Synthetic{Shards: n, PerShard: 9 + int(seed), SampleSize: 700, Seed: seed}).Write(tmp); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		data, err := os.ReadFile(filepath.Join(tmp, "train-"+pad(i)+".tar"))
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(dir, name+"-"+pad(i)+".tar")
		if gz && i == n-1 {
			var b bytes.Buffer
			zw := gzip.NewWriter(&b)
			if _, err := zw.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := zw.Close(); err != nil {
				t.Fatal(err)
			}
			data, out = b.Bytes(), out+".gz"
		}
		if err := os.WriteFile(out, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func pad(i int) string { return strings.Repeat("0", 5) + string(rune('0'+i)) }

// checkIndexed loads the index beside objs and checks it against the
// shards themselves: every count is what wds.Index finds, and every
// compact index read back equals IndexShard's.
func checkIndexed(t *testing.T, src storage.Source, datasetURL string, objs []storage.Object) {
	t.Helper()
	ctx := context.Background()
	x, ok, why, err := dsindex.Load(ctx, src, dsindex.Locate(datasetURL, objs), objs)
	if err != nil || !ok {
		t.Fatalf("Load beside %s: ok %v, %s, %v", datasetURL, ok, why, err)
	}
	for i, o := range objs {
		raw, err := storage.Fetch(ctx, src, o, storage.FetchOptions{})
		if err != nil {
			t.Fatal(err)
		}
		data, err := wds.Decompress(raw)
		if err != nil {
			t.Fatal(err)
		}
		samples, err := wds.IndexBytes(data)
		if err != nil {
			t.Fatal(err)
		}
		if x.Entries[i].Samples != len(samples) || x.Entries[i].Size != o.Size || x.Entries[i].ETag != o.ETag {
			t.Errorf("%s: entry %+v, want %d samples, size %d, ETag %s", o.URL, x.Entries[i], len(samples), o.Size, o.ETag)
		}
		si, err := dsindex.ReadShard(ctx, src, x, i)
		if err != nil {
			t.Fatal(err)
		}
		want, err := wds.IndexShard(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if !si.Equal(want) {
			t.Errorf("%s: the compact index read back differs from IndexShard's", o.URL)
		}
	}
}

func resolve(t *testing.T, sources *storage.Sources, url string) []storage.Object {
	t.Helper()
	objs, err := dataset.Resolve(context.Background(), sources, url)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// stoker index on a file:// folder: the index it writes describes every
// shard; a second run reads no shard; a second split in the same folder
// joins the index without spoiling the first.
func TestIndexFile(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	writeShards(t, dir, "train", 4, 1, true)
	writeShards(t, dir, "val", 2, 2, false)
	src := storage.NewFileSource()
	sources := storage.NewSources(map[string]storage.Source{"file": src})
	opt := indexOptions{Parallel: 3, PartSize: 4096}
	train := "file://" + dir + "/train-{000000..000002}.tar"
	trainObjs := append(resolve(t, sources, train), resolve(t, sources, "file://"+dir+"/train-000003.tar.gz")...)

	var out bytes.Buffer
	sum, err := indexDataset(ctx, sources, train, opt, &out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Read != 3 || sum.Reused != 0 || sum.Samples != 30 || !strings.Contains(out.String(), "indexed 3 shards, 30 samples") {
		t.Fatalf("first run: %+v\n%s", sum, out.String())
	}
	checkIndexed(t, src, train, trainObjs[:3])

	// The whole folder (train with its gzipped shard, and val): the three
	// indexed shards are reused, the other three read.
	out.Reset()
	all := "file://" + dir + "/"
	sum, err = indexDataset(ctx, sources, all, opt, &out)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Read != 3 || sum.Reused != 3 || sum.Kept != 0 {
		t.Fatalf("second run: %+v\n%s", sum, out.String())
	}
	checkIndexed(t, src, all, resolve(t, sources, all))

	// Nothing changed: a third run reads only the index.
	before := src.Metrics().Bytes
	sum, err = indexDataset(ctx, sources, all, opt, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if read := src.Metrics().Bytes - before; sum.Read != 0 || sum.Reused != 6 || read > uint64(sum.JSONBytes+sum.BlobBytes) {
		t.Fatalf("third run read %d bytes (index %d + %d): %+v", read, sum.JSONBytes, sum.BlobBytes, sum)
	}

	// Indexing val alone keeps train's entries: both splits load.
	val := "file://" + dir + "/val-{000000..000001}.tar"
	sum, err = indexDataset(ctx, sources, val, indexOptions{Parallel: 2, PartSize: 1 << 20, Force: true}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Read != 2 || sum.Kept != 4 {
		t.Fatalf("val run: %+v", sum)
	}
	checkIndexed(t, src, val, resolve(t, sources, val))
	checkIndexed(t, src, all, trainObjs)
}

// A damaged shard fails the run with an error naming it, and no index is
// written.
func TestIndexCorruptShard(t *testing.T) {
	dir := t.TempDir()
	writeShards(t, dir, "train", 3, 1, false)
	bad := filepath.Join(dir, "train-000001.tar")
	data, err := os.ReadFile(bad)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, data[:len(data)/2+100], 0o644); err != nil {
		t.Fatal(err)
	}
	sources := storage.NewSources(map[string]storage.Source{"file": storage.NewFileSource()})
	_, err = indexDataset(context.Background(), sources, "file://"+dir+"/", indexOptions{Parallel: 2, PartSize: 1 << 20}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "file://"+bad) || !strings.Contains(err.Error(), "corrupt") {
		t.Fatalf("got %v, want a corrupt-shard error naming %s", err, bad)
	}
	if _, err := os.Stat(filepath.Join(dir, dsindex.IndexName)); !os.IsNotExist(err) {
		t.Fatalf("an index was written after a failure: %v", err)
	}
}

// stoker index against a real S3 server (versitygw), configured from the
// AWS variables as in use.
func TestIndexS3(t *testing.T) {
	srv := s3test.Start(t)
	srv.CreateBucket(t, "data")
	dir := t.TempDir()
	writeShards(t, dir, "train", 5, 3, true)
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		srv.Put(t, "data", "sets/train/"+e.Name(), data)
	}
	srv.Put(t, "data", "sets/train/README.txt", []byte("not a shard"))
	for _, kv := range srv.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	r := runStoker(t, nil, "index", "s3://data/sets/train/", "--parallel", "2", "--progress", "0")
	if r.code != 0 {
		t.Fatalf("exit %d: %s\n%s", r.code, r.stderr, r.stdout)
	}
	if !strings.Contains(r.stdout, "wrote s3://data/sets/train/wids-index.json") {
		t.Fatalf("output:\n%s", r.stdout)
	}
	cfg := s3.DefaultConfig()
	cfg.Endpoint, cfg.Credentials = srv.Endpoint, srv.Credentials()
	s3src, err := s3.New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	sources := storage.NewSources(map[string]storage.Source{"s3": s3src})
	objs := resolve(t, sources, "s3://data/sets/train/")
	if len(objs) != 5 {
		t.Fatalf("listed %d shards", len(objs))
	}
	checkIndexed(t, s3src, "s3://data/sets/train/", objs)
}
