package prefetch_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet/compress"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/columnar"
	"github.com/stoker-data/stoker/prefetch/s3test"
	"github.com/stoker-data/stoker/prefetch/sourcetest"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// hangBound is how long a test waits for a call that must not hang before
// failing it: a generous multiple of the timeouts the calls run under,
// not a measure of speed.
const hangBound = time.Minute

// newIdleSource is newS3Source with a read idle timeout.
func newIdleSource(t *testing.T, endpoint string, srv *s3test.Server, attempts int, idle time.Duration) *prefetch.S3Source {
	t.Helper()
	cfg := prefetch.DefaultS3Config()
	cfg.Endpoint = endpoint
	cfg.Credentials = srv.Credentials()
	cfg.MaxAttempts = attempts
	cfg.MaxBackoff = 20 * time.Millisecond
	cfg.ReadIdleTimeout = idle
	src, err := prefetch.NewS3Source(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// within runs f and returns its error, failing the test if f has not
// returned after hangBound.
func within(t *testing.T, what string, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(hangBound):
		t.Fatalf("%s: still blocked after %v", what, hangBound)
		return nil
	}
}

// A body that stops with its connection left open is read on from where
// it stopped after ReadIdleTimeout; when every attempt stalls, ReadAt
// fails with ErrUnavailable naming the object, the range and the timeout.
// Headers that never come, and a List whose body stalls, are retried too.
func TestS3Stalls(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "bkt")
	data := sourcetest.Data("stalls", 64<<10)
	srv.Put(t, "bkt", "k.tar", data)
	srv.Put(t, "bkt", "one.tar", []byte{7})
	proxy := s3test.StartProxy(t, srv)
	const idle = 300 * time.Millisecond
	src := newIdleSource(t, proxy.URL, srv, 3, idle)
	obj, err := src.Stat(ctx, "s3://bkt/k.tar")
	if err != nil {
		t.Fatal(err)
	}
	read := func(t *testing.T, o prefetch.Object, p []byte, off int64) error {
		return within(t, "ReadAt", func() error { return src.ReadAt(ctx, o, p, off) })
	}

	for _, tc := range []struct {
		name   string
		faults []s3test.Fault
	}{
		{"body stalls once", []s3test.Fault{s3test.Stall}},
		{"body stalls twice", []s3test.Fault{s3test.Stall, s3test.Stall}},
		{"headers never come", []s3test.Fault{s3test.Hang}},
		{"stall, then reset", []s3test.Fault{s3test.Stall, s3test.Reset}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy.Queue(tc.faults...)
			p := make([]byte, 60000)
			start := time.Now()
			if err := read(t, obj, p, 500); err != nil {
				t.Fatalf("ReadAt: %v", err)
			}
			if !bytes.Equal(p, data[500:60500]) {
				t.Fatal("ReadAt gave wrong bytes")
			}
			t.Logf("%v: read in %v", tc.faults, time.Since(start).Round(time.Millisecond))
		})
	}

	t.Run("first body byte never comes", func(t *testing.T) {
		proxy.Queue(s3test.Stall) // a 1-byte body: the stall is before its byte
		p := make([]byte, 1)
		if err := read(t, prefetch.Object{URL: "s3://bkt/one.tar"}, p, 0); err != nil || p[0] != 7 {
			t.Fatalf("ReadAt = %v, byte %d", err, p[0])
		}
	})

	t.Run("every attempt stalls", func(t *testing.T) {
		proxy.Queue(s3test.Stall, s3test.Stall, s3test.Stall)
		start := time.Now()
		err := read(t, obj, make([]byte, 60000), 500)
		took := time.Since(start)
		var e *prefetch.Error
		if !errors.Is(err, prefetch.ErrUnavailable) || !errors.As(err, &e) || e.Object != obj.URL {
			t.Fatalf("ReadAt = %v, want ErrUnavailable naming %s", err, obj.URL)
		}
		for _, want := range []string{"bytes [500, 60500)", "after 3 attempts", idle.String(), "idle timeout"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not say %q", err, want)
			}
		}
		if took < 3*idle {
			t.Errorf("failed after %v, before three idle timeouts of %v", took, idle)
		}
		t.Logf("failed after %v: %v", took.Round(time.Millisecond), err)
	})

	t.Run("list body stalls", func(t *testing.T) {
		proxy.Queue(s3test.Stall)
		var objs []prefetch.Object
		err := within(t, "List", func() (err error) { objs, err = src.List(ctx, "s3://bkt/"); return err })
		if err != nil || len(objs) != 2 {
			t.Fatalf("List = %d objects, %v; want 2", len(objs), err)
		}
		if n := proxy.Injected()[s3test.Stall]; n == 0 {
			t.Fatal("no stall was injected")
		}
	})
}

// A store that sends no ETags still gets every object pinned to a
// version: the source's contract holds with "lm:" tokens, List and Stat
// agree on them, and a rewritten object is ErrChanged.
func TestS3WithoutETags(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "noetag")
	proxy := s3test.StartProxy(t, srv)
	proxy.StripETags(true)
	src := newS3Source(t, proxy.URL, srv, 3)
	sourcetest.Run(t, sourcetest.Harness{
		Source:  src,
		Base:    "s3://noetag/",
		Put:     func(t testing.TB, name string, data []byte) { srv.Put(t, "noetag", name, data) },
		Missing: "s3://no-such-bucket/",
		Metrics: src.Metrics,
	})

	srv.Put(t, "noetag", "v.tar", sourcetest.Data("v1", 3000))
	st, err := src.Stat(ctx, "s3://noetag/v.tar")
	if err != nil || !strings.HasPrefix(st.ETag, "lm:") || !strings.HasSuffix(st.ETag, "-3000") {
		t.Fatalf("Stat = %+v, %v; want an lm:…-3000 version", st, err)
	}
	objs, err := src.List(ctx, "s3://noetag/v.tar")
	if err != nil || len(objs) != 1 || objs[0] != st {
		t.Fatalf("List = %+v, %v; want [%+v]", objs, err, st)
	}
	p := make([]byte, 100)
	if err := src.ReadAt(ctx, st, p, 10); err != nil {
		t.Fatalf("ReadAt with an lm version: %v", err)
	}
	srv.Put(t, "noetag", "v.tar", sourcetest.Data("v2", 3001))
	if err := src.ReadAt(ctx, st, p, 10); !errors.Is(err, prefetch.ErrChanged) {
		t.Fatalf("ReadAt of a rewritten object = %v, want ErrChanged", err)
	}
}

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
	cache, err := prefetch.OpenCache(prefetch.CacheConfig{MemoryBytes: 64 << 20}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	sources := prefetch.NewSources(map[string]prefetch.Source{"s3": newS3Source(t, proxy.URL, srv, 3)})
	shards := prefetch.NewShards(prefetch.ShardsConfig{}, sources, cache, log)
	cat, err := prefetch.NewCatalog(prefetch.CatalogConfig{Dir: t.TempDir()}, sources, shards, log)
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
	src := newIdleSource(t, proxy.URL, srv, 5, 300*time.Millisecond)
	sources := prefetch.NewSources(map[string]prefetch.Source{"s3": src})
	log := slog.New(slog.DiscardHandler)

	for round := range 3 {
		cache, err := prefetch.OpenCache(prefetch.CacheConfig{MemoryBytes: 64 << 20}, log)
		if err != nil {
			t.Fatal(err)
		}
		shards := prefetch.NewShards(prefetch.ShardsConfig{MaxFetches: 3, Fetch: prefetch.FetchOptions{PartSize: 64 << 10, Parallel: 3}}, sources, cache, log)
		cat, err := prefetch.NewCatalog(prefetch.CatalogConfig{Dir: t.TempDir()}, sources, shards, log)
		if err != nil {
			t.Fatal(err)
		}
		var ds *prefetch.Dataset
		if err := within(t, "Open", func() (err error) { ds, err = cat.Open(ctx, "s3://faults/ds/", ""); return err }); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		for i := range ds.Manifest.Shards {
			o := ds.Object(i)
			var got []byte
			err := within(t, "Get", func() error {
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
		cache.Close()
	}
	inj := proxy.Injected()
	for _, f := range []s3test.Fault{s3test.SlowDown, s3test.Reset, s3test.Stall, s3test.Drop, s3test.InternalError} {
		if inj[f] == 0 {
			t.Errorf("no %v was injected", f)
		}
	}
	t.Logf("faults injected: %v", inj)
}
