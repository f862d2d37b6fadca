package prefetch_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/s3test"
	"github.com/stoker-data/stoker/prefetch/sourcetest"
)

// rewritingSource is an S3Source that rewrites the object after the first
// read of it completes, before the next is sent: a writer racing a fetch.
type rewritingSource struct {
	*prefetch.S3Source
	once    sync.Once
	rewrite func()
}

func (s *rewritingSource) ReadAt(ctx context.Context, obj prefetch.Object, p []byte, off int64) error {
	err := s.S3Source.ReadAt(ctx, obj, p, off)
	s.once.Do(s.rewrite)
	return err
}

// TestShardsFetchInParts reads a shard larger than the largest part from
// versitygw with the parts sized from the source's link: it comes in
// parts, byte for byte; and a shard rewritten between its parts is
// ErrChanged, not a mix of versions, and is not cached.
func TestShardsFetchInParts(t *testing.T) {
	ctx := context.Background()
	srv := s3test.Start(t)
	srv.CreateBucket(t, "parts")
	size := 2*prefetch.MaxPartSize + 123 // at least 3 parts, whatever the link
	data := sourcetest.Data("parts v1", size)
	srv.Put(t, "parts", "ds/a.tar", data)
	src := newS3Source(t, srv.Endpoint, srv, 3)
	log := slog.New(slog.DiscardHandler)
	cache, err := prefetch.OpenCache(prefetch.CacheConfig{MemoryBytes: 256 << 20}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	obj, err := src.Stat(ctx, "s3://parts/ds/a.tar")
	if err != nil {
		t.Fatal(err)
	}

	cfg := prefetch.ShardsConfig{MaxFetches: 8, MaxGets: 32, Fetch: prefetch.FetchOptions{Parallel: 4}} // 4 reads spare
	shards := prefetch.NewShards(cfg, prefetch.NewSources(map[string]prefetch.Source{"s3": src}), cache, log)
	link, _ := src.Link()
	part := prefetch.PartSize(int64(size), link, 4)
	parts := (int64(size) + part - 1) / part
	before := src.Metrics()
	r, err := shards.Get(ctx, obj)
	if err != nil {
		t.Fatal(err)
	}
	got := bytes.Clone(r.Bytes())
	r.Release()
	after := src.Metrics()
	if !bytes.Equal(got, data) {
		t.Fatalf("the shard read in parts: %d bytes, equal %v; want the %d bytes written", len(got), bytes.Equal(got, data), size)
	}
	if n := after.Requests - before.Requests; parts < 3 || n != uint64(parts) {
		t.Errorf("the shard took %d requests, want %d parts (at least 3)", n, parts)
	}
	if e, ok := src.Link(); !ok || e.FirstByte <= 0 || e.Rate <= 0 {
		t.Errorf("after the fetch the link estimates %+v (%v), want a first byte and a rate", e, ok)
	}

	// One part at a time, so the rewrite lands between two of them.
	srv.Put(t, "parts", "ds/b.tar", data)
	objB, err := src.Stat(ctx, "s3://parts/ds/b.tar")
	if err != nil {
		t.Fatal(err)
	}
	rw := &rewritingSource{S3Source: src, rewrite: func() { srv.Put(t, "parts", "ds/b.tar", sourcetest.Data("parts v2", size)) }}
	cfg.MaxGets = 1
	shards = prefetch.NewShards(cfg, prefetch.NewSources(map[string]prefetch.Source{"s3": rw}), cache, log)
	before = src.Metrics()
	_, err = shards.Get(ctx, objB)
	if !errors.Is(err, prefetch.ErrChanged) {
		t.Fatalf("a shard rewritten between its parts: %v, want ErrChanged", err)
	}
	if n := src.Metrics().Requests - before.Requests; n < 2 {
		t.Errorf("the rewritten shard took %d requests, want the rewrite between two parts", n)
	}
	if shards.Cached(objB) {
		t.Error("the shard that changed while it was read is cached")
	}
}
