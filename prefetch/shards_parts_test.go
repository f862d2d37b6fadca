package prefetch_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/storage/s3"
	"github.com/stoker-data/stoker/prefetch/storage/s3/s3test"
	"github.com/stoker-data/stoker/prefetch/storage/storagetest"
)

// rewritingSource is an S3Source that rewrites the object after the first
// read of it completes, before the next is sent: a writer racing a fetch.
type rewritingSource struct {
	*s3.Source
	once    sync.Once
	rewrite func()
}

func (s *rewritingSource) ReadAt(ctx context.Context, obj storage.Object, p []byte, off int64) error {
	err := s.Source.ReadAt(ctx, obj, p, off)
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
	size := 2*storage.MaxPartSize + 123 // at least 3 parts, whatever the link
	data := storagetest.Data("parts v1", size)
	srv.Put(t, "parts", "ds/a.tar", data)
	src := srv.Source(t, srv.Endpoint, 3, 0)
	log := slog.New(slog.DiscardHandler)
	tiers, err := cache.Open(cache.Config{MemoryBytes: 256 << 20}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer tiers.Close()
	obj, err := src.Stat(ctx, "s3://parts/ds/a.tar")
	if err != nil {
		t.Fatal(err)
	}

	cfg := prefetch.ShardsConfig{MaxFetches: 8, MaxGets: 32, Fetch: storage.FetchOptions{Parallel: 4}} // 4 reads spare
	shards := prefetch.NewShards(cfg, storage.NewSources(map[string]storage.Source{"s3": src}), tiers, log)
	link, _ := src.Link()
	part := storage.PartSize(int64(size), link, 4)
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
	rw := &rewritingSource{Source: src, rewrite: func() { srv.Put(t, "parts", "ds/b.tar", storagetest.Data("parts v2", size)) }}
	cfg.MaxGets = 1
	shards = prefetch.NewShards(cfg, storage.NewSources(map[string]storage.Source{"s3": rw}), tiers, log)
	before = src.Metrics()
	_, err = shards.Get(ctx, objB)
	if !errors.Is(err, storage.ErrChanged) {
		t.Fatalf("a shard rewritten between its parts: %v, want ErrChanged", err)
	}
	if n := src.Metrics().Requests - before.Requests; n < 2 {
		t.Errorf("the rewritten shard took %d requests, want the rewrite between two parts", n)
	}
	if shards.Cached(objB) {
		t.Error("the shard that changed while it was read is cached")
	}
}
