package prefetch_test

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet/compress"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/columnar"
	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/storage/s3/s3test"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// A Parquet dataset on a store without ETags opens and reads: every unit
// (row group) comes back as the bytes of its range of the object.
func TestColumnarWithoutETags(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "col")
	var recs []arrow.RecordBatch
	for i := range 3 {
		recs = append(recs, columnar.Synthetic(int64(i*200), 200, 1))
	}
	data, err := columnar.WriteParquet(recs, compress.Codecs.Uncompressed)
	if err != nil {
		t.Fatal(err)
	}
	srv.Put(t, "col", "data/part-0.parquet", data)
	proxy := s3test.StartProxy(t, srv)
	proxy.StripETags(true)

	log := slog.New(slog.DiscardHandler)
	tiers, err := cache.Open(cache.Config{MemoryBytes: 64 << 20}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer tiers.Close()
	sources := storage.NewSources(map[string]storage.Source{"s3": srv.Source(t, proxy.URL, 3, 0)})
	shards := prefetch.NewShards(prefetch.ShardsConfig{}, sources, tiers, log)
	cat, err := dataset.NewCatalog(dataset.CatalogConfig{Dir: t.TempDir()}, sources, shards, log)
	if err != nil {
		t.Fatal(err)
	}
	ds, err := cat.Open(ctx, "s3://col/data/", "")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ds.Manifest.Shards); n != 3 {
		t.Fatalf("%d units, want 3 row groups", n)
	}
	for i := range ds.Manifest.Shards {
		o := ds.Object(i)
		if !strings.HasPrefix(o.ETag, "lm:") {
			t.Errorf("unit %d has version %q, want an lm: token", i, o.ETag)
		}
		r, err := shards.Get(ctx, o)
		if err != nil {
			t.Fatalf("unit %d: %v", i, err)
		}
		if !bytes.Equal(r.Bytes(), data[o.Offset:o.Offset+o.Length]) {
			t.Errorf("unit %d: bytes differ from [%d, +%d) of the object", i, o.Offset, o.Length)
		}
		r.Release()
	}
}

// The prefetch layer reads every shard exactly, round after round with an
// empty cache, through a store without ETags that throttles, fails,
// resets and stalls on a schedule: a dataset opened through the catalog,
// its shards fetched as parallel ranges.
func TestShardsThroughFaults(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "faults")
	dir := t.TempDir()
	if err := (wds.Synthetic{Shards: 6, PerShard: 8, SampleSize: 20 << 10, Seed: 7}).Write(dir); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	files, err := filepath.Glob(filepath.Join(dir, "*.tar"))
	if err != nil || len(files) != 6 {
		t.Fatalf("%d shards written: %v", len(files), err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		srv.Put(t, "faults", "ds/"+filepath.Base(f), b)
		want["s3://faults/ds/"+filepath.Base(f)] = b
	}
	proxy := s3test.StartProxy(t, srv)
	proxy.StripETags(true)
	proxy.Schedule([]s3test.Fault{s3test.Pass, s3test.SlowDown, s3test.Reset, s3test.Stall, s3test.Pass, s3test.Drop, s3test.InternalError, s3test.Stall}, 4)
	src := srv.Source(t, proxy.URL, 5, 300*time.Millisecond)
	sources := storage.NewSources(map[string]storage.Source{"s3": src})
	log := slog.New(slog.DiscardHandler)

	for round := range 3 {
		tiers, err := cache.Open(cache.Config{MemoryBytes: 64 << 20}, log)
		if err != nil {
			t.Fatal(err)
		}
		shards := prefetch.NewShards(prefetch.ShardsConfig{MaxFetches: 3, Fetch: storage.FetchOptions{PartSize: 64 << 10, Parallel: 3}}, sources, tiers, log)
		cat, err := dataset.NewCatalog(dataset.CatalogConfig{Dir: t.TempDir()}, sources, shards, log)
		if err != nil {
			t.Fatal(err)
		}
		var ds *dataset.Dataset
		if err := s3test.Within(t, "Open", func() (err error) { ds, err = cat.Open(ctx, "s3://faults/ds/", ""); return err }); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for i := range ds.Manifest.Shards {
			o := ds.Object(i)
			var got []byte
			err := s3test.Within(t, "Get", func() error {
				r, err := shards.Get(ctx, o)
				if err == nil {
					got = bytes.Clone(r.Bytes())
					r.Release()
				}
				return err
			})
			if err != nil || !bytes.Equal(got, want[o.URL]) {
				t.Fatalf("round %d, %s: %d bytes, %v; want the %d bytes written", round, o.URL, len(got), err, len(want[o.URL]))
			}
		}
		tiers.Close()
	}
	inj := proxy.Injected()
	for _, f := range []s3test.Fault{s3test.SlowDown, s3test.Reset, s3test.Stall, s3test.Drop, s3test.InternalError} {
		if inj[f] == 0 {
			t.Errorf("no %v was injected", f)
		}
	}
	t.Logf("faults injected: %v", inj)
}
