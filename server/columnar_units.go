package server

import (
	"context"
	"errors"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/stoker-data/stoker/prefetch"
	"github.com/stoker-data/stoker/prefetch/columnar"
	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/shuffle"
)

// unitCacheBytes bounds one stream's decoded units. A shuffle window's
// rows are spread over its steps, so each unit of the window is used by
// many batches: decoding it once per window, not once per batch, is what
// makes columnar reads fast. Past the bound, units are decoded again.
const unitCacheBytes = 512 << 20

// unitCache holds the decoded units (projected record batches) one stream
// still needs, taken from the server's shared decodedCache. Used by the
// stream's goroutine only.
type unitCache struct {
	shared  *decodedCache
	ds      *dataset.Dataset
	col     *dataset.Columnar // ds's schema and units
	ps      *prefetch.Stream
	columns []string
	limit   int64
	recs    map[int32]arrow.RecordBatch
	sizes   map[int32]int64
	bytes   int64
}

func newUnitCache(shared *decodedCache, ds *dataset.Dataset, col *dataset.Columnar, ps *prefetch.Stream, columns []string, limit int64) *unitCache {
	return &unitCache{shared: shared, ds: ds, col: col, ps: ps, columns: columns, limit: limit, recs: map[int32]arrow.RecordBatch{}, sizes: map[int32]int64{}}
}

// get returns unit i decoded, reading its bytes through the prefetcher.
// The result stays owned by the cache.
func (c *unitCache) get(ctx context.Context, i int32) (arrow.RecordBatch, error) {
	if rec, ok := c.recs[i]; ok {
		return rec, nil
	}
	// Other streams may wait on this decode: it outlives this stream's ctx.
	dctx := context.WithoutCancel(ctx)
	rec, err := c.shared.get(ctx, decodedKey{unit: c.ds.Key(int(i)), columns: columnsKey(c.columns)}, func() (arrow.RecordBatch, error) {
		r, err := c.ps.Shard(dctx, int(i))
		if err != nil {
			return nil, err
		}
		defer r.Release() // Decode keeps no slice of its input (TestDecodeKeepsNoInput)
		return c.col.Objects[i].Decode(dctx, c.col.Units[i], r.Bytes(), c.columns)
	})
	if err != nil {
		// A read failure says what it is already; anything else is a
		// decode of bytes that are not what the index says.
		if errors.As(err, new(*storage.Error)) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, &storage.Error{Op: "read", Object: c.ds.Manifest.Shards[i].Object, Kind: storage.ErrCorrupt, Err: err}
	}
	c.recs[i] = rec
	c.sizes[i] = columnar.RecordBytes(rec)
	c.bytes += c.sizes[i]
	return rec, nil
}

// trim drops the units the plan needs no more from position pos on, then,
// while over the limit, the ones needed farthest ahead.
func (c *unitCache) trim(plan *shuffle.Plan, pos int) {
	for i := range c.recs {
		if plan.NextUse(int(i), pos) < 0 {
			c.drop(i)
		}
	}
	for c.bytes > c.limit && len(c.recs) > 0 {
		far, farUse := int32(-1), -1
		for i := range c.recs {
			if u := plan.NextUse(int(i), pos); far < 0 || u > farUse {
				far, farUse = i, u
			}
		}
		c.drop(far)
	}
}

// drop forgets unit i (the record is shared: it is not released).
func (c *unitCache) drop(i int32) {
	c.bytes -= c.sizes[i]
	delete(c.recs, i)
	delete(c.sizes, i)
}

// release drops every unit.
func (c *unitCache) release() {
	for i := range c.recs {
		c.drop(i)
	}
}
