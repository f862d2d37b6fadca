package server

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/stoker-data/stoker/prefetch/dataset"
	stokerv1 "github.com/stoker-data/stoker/proto/stoker/v1"
)

// startIndex runs an index-only hint on this node: every shard of ds is
// counted and indexed (an uncounted shard is read whole, once), so the
// first batch of a stream waits for no counting. It is followed like any
// hint, with this node its one part.
func (h *hints) startIndex(ds *dataset.Dataset, deadline time.Time) *stokerv1.PrefetchResponse {
	id := newHintID()
	n := len(ds.Manifest.Shards)
	r := &hintRun{state: hintRunning, shardsTotal: uint64(n)}
	for i := range n {
		r.bytesTotal += uint64(ds.Object(i).Bytes())
	}
	h.runs.Add(id, r)
	h.spread.Add(id, []hintPart{{id: id, node: h.s.selfName(), shards: n, bytes: r.bytesTotal}})
	h.wg.Go(func() {
		ctx, cancel := h.ctx, context.CancelFunc(func() {})
		if !deadline.IsZero() {
			ctx, cancel = context.WithDeadline(ctx, deadline)
		}
		defer cancel()
		g := errgroup.Group{}
		g.SetLimit(max(1, h.s.cfg.Shards.MaxFetches))
		for i := range n {
			if ctx.Err() != nil {
				break
			}
			g.Go(func() error {
				if _, counted := ds.Count(i); ds.Layout.SampleIndexes() && (!counted || !h.s.catalog.HasShardIndex(ds, i)) {
					if _, err := ds.ShardIndex(ctx, i); err != nil {
						r.fail(err)
						return nil
					}
				}
				r.bytesDone.Add(uint64(ds.Object(i).Bytes()))
				r.shardsDone.Add(1)
				return nil
			})
		}
		_ = g.Wait()
		r.finish(ctx.Err() != nil && h.ctx.Err() == nil)
	})
	h.s.log.Info("index hint", "hint", id, "url", ds.Manifest.URL, "shards", n, "counts_from", ds.CountsFrom)
	return &stokerv1.PrefetchResponse{HintId: id, ShardsTotal: uint32(n), BytesTotal: r.bytesTotal}
}
