package dataset

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// shardIndex loads shard i's sample index, from the first place that has
// it: memory, the catalog's disk, the index beside the shards, or the
// shard itself (read whole: the cache keeps the bytes for the stream that
// asked). One load per shard version at a time.
func (c *Catalog) shardIndex(ctx context.Context, ds *Dataset, i int) (*wds.ShardIndex, error) {
	key := ds.Key(i)
	if x, ok := c.indexes.get(key); ok {
		return x, nil
	}
	if batch := c.batchOf(key); batch != nil { // read with its window's: wait for it
		select {
		case <-batch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if x, ok := c.indexes.get(key); ok {
			return x, nil
		}
	}
	ch := c.loads.DoChan(key.Object+"\x00"+key.ETag, func() (any, error) {
		return c.loadShardIndex(context.WithoutCancel(ctx), ds, i)
	})
	select {
	case r := <-ch:
		if r.Err != nil {
			return nil, r.Err
		}
		return r.Val.(*wds.ShardIndex), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (c *Catalog) loadShardIndex(ctx context.Context, ds *Dataset, i int) (*wds.ShardIndex, error) {
	key, o := ds.Key(i), ds.Object(i)
	path := c.shardIndexPath(key)
	if b, err := os.ReadFile(path); err == nil {
		if x, err := wds.UnmarshalShardIndex(b); err == nil {
			c.stored.loaded(path)
			c.indexes.add(key, x)
			return x, nil
		}
		c.log.Warn("dropping a damaged stored shard index", "object", o.URL, "file", path)
		os.Remove(path)
	}
	x, err := c.indexBeside(ctx, ds, i)
	if err != nil {
		c.log.Warn("cannot read the shard's index beside it: reading the shard", "object", o.URL, "err", err)
	}
	if x == nil {
		if x, err = c.indexByReading(ctx, o); err != nil {
			return nil, err
		}
	}
	c.keepShardIndex(key, o, x)
	return x, nil
}

// keepShardIndex stores x, the index of object o, on disk and keeps it
// decoded.
func (c *Catalog) keepShardIndex(key storage.Key, o storage.Object, x *wds.ShardIndex) {
	path := c.shardIndexPath(key)
	if b, err := x.MarshalBinary(); err == nil {
		if err := writeFile(path, b); err != nil {
			c.log.Warn("cannot store shard index", "object", o.URL, "err", err)
		} else {
			c.storedIndex(path, int64(len(b)))
		}
	}
	c.indexes.add(key, x)
}

// batchOf returns the channel closed when the batch reading key's shard
// index ends, or nil when none is.
func (c *Catalog) batchOf(key storage.Key) chan struct{} {
	c.batchMu.Lock()
	defer c.batchMu.Unlock()
	return c.batches[key]
}

// preloadShardIndexes marks the indexes of ds's shards is that are
// neither decoded nor stored on disk as being read together, and returns
// the func that reads them from the index beside the shards in a few
// joined reads (Index.ShardIndexes) and keeps them as loadShardIndex
// does; nil when there is nothing to read. A load of a marked index
// meanwhile waits for the batch. A shard whose read fails is left to its
// own load, which reports the error.
func (c *Catalog) preloadShardIndexes(ds *Dataset, is []int) func(context.Context) {
	done := make(chan struct{})
	var want []int
	c.batchMu.Lock()
	for _, i := range is {
		key := ds.Key(i)
		if _, busy := c.batches[key]; busy || c.indexes.has(key) {
			continue
		}
		if _, err := os.Stat(c.shardIndexPath(key)); err == nil {
			continue
		}
		c.batches[key] = done
		want = append(want, i)
	}
	c.batchMu.Unlock()
	if len(want) == 0 {
		return nil
	}
	return func(ctx context.Context) {
		defer func() {
			c.batchMu.Lock()
			for _, i := range want {
				delete(c.batches, ds.Key(i))
			}
			c.batchMu.Unlock()
			close(done)
		}()
		out, errs := ds.dsIndex.ShardIndexes(ctx, want)
		for j, i := range want {
			if errs[j] == nil {
				c.keepShardIndex(ds.Key(i), ds.Object(i), out[j])
			}
		}
	}
}

// indexBeside reads shard i's index from the index beside the shards, or
// returns nil when there is none.
func (c *Catalog) indexBeside(ctx context.Context, ds *Dataset, i int) (*wds.ShardIndex, error) {
	if ds.dsIndex == nil {
		return nil, nil
	}
	return ds.dsIndex.ShardIndex(ctx, i)
}

// indexByReading reads the whole shard (into the cache) and indexes it.
func (c *Catalog) indexByReading(ctx context.Context, o storage.Object) (*wds.ShardIndex, error) {
	r, err := c.shards.Get(ctx, o)
	if err != nil {
		return nil, err
	}
	defer r.Release()
	x, err := wds.IndexShard(bytes.NewReader(r.Bytes())) // keeps no slice of its input
	if err != nil {
		return nil, &storage.Error{Op: "index", Object: o.URL, Kind: storage.ErrCorrupt, Err: err}
	}
	return x, nil
}

// storedIndex counts an index of n bytes stored at path against the
// bound on stored indexes, pruning the oldest past it.
func (c *Catalog) storedIndex(path string, n int64) {
	removed, err := c.stored.wrote(path, n)
	if err != nil {
		c.log.Warn("cannot prune stored indexes", "dir", c.stored.dir, "err", err)
	}
	if removed > 0 {
		c.log.Info("removed the stored indexes used longest ago", "dir", c.stored.dir, "removed", removed,
			"max_bytes", c.stored.limit)
	}
}

func (c *Catalog) shardIndexPath(key storage.Key) string {
	return filepath.Join(c.cfg.Dir, "index", digest(key.Object+"\x00"+key.ETag)+".idx")
}

// indexPath is where a columnar object's index is stored.
func (c *Catalog) indexPath(o storage.Object) string {
	return filepath.Join(c.cfg.Dir, "index", digest(o.URL+"\x00"+o.ETag)+".json")
}

// indexCache keeps decoded shard indexes, least recently used out first,
// within a bound on their memory. Safe for concurrent use.
type indexCache struct {
	limit int64
	mu    sync.Mutex // guards lru, bytes
	lru   *lru.Cache[storage.Key, *wds.ShardIndex]
	bytes int64
}

func newIndexCache(limit int64) *indexCache {
	c := &indexCache{limit: limit}
	// The count bound is never the one reached: bytes are.
	c.lru, _ = lru.NewWithEvict[storage.Key, *wds.ShardIndex](1<<30, func(_ storage.Key, x *wds.ShardIndex) {
		c.bytes -= x.MemBytes()
	})
	return c
}

func (c *indexCache) get(key storage.Key) (*wds.ShardIndex, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Get(key)
}

// has reports whether key's index is kept, without making it recent.
func (c *indexCache) has(key storage.Key) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Contains(key)
}

func (c *indexCache) add(key storage.Key, x *wds.ShardIndex) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lru.Contains(key) {
		return
	}
	c.lru.Add(key, x)
	c.bytes += x.MemBytes()
	for c.bytes > c.limit && c.lru.Len() > 1 {
		c.lru.RemoveOldest()
	}
}

// writeFile writes b to path atomically (temporary file, then rename).
func writeFile(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// HasShardIndex reports whether shard i's index is in memory or stored on
// this node's disk (reading it then reads no shard).
func (c *Catalog) HasShardIndex(ds *Dataset, i int) bool {
	key := ds.Key(i)
	if _, ok := c.indexes.get(key); ok {
		return true
	}
	_, err := os.Stat(c.shardIndexPath(key))
	return err == nil
}
