package dataset

import (
	"context"
	"fmt"
	"sort"
	"sync"

	"golang.org/x/sync/errgroup"
)

// FieldCount is a field name of a WebDataset and how many of its samples
// have the field.
type FieldCount struct {
	Name    string
	Samples int
}

// Fields returns the union of the field names of every shard, sorted,
// each with the number of samples that have it. It loads every shard's
// index (see ShardIndex), which also counts the shards: cheap when the
// catalog or an index beside the shards has them, a read of every shard
// otherwise. A columnar dataset has columns, not fields: an error.
func (d *Dataset) Fields(ctx context.Context) ([]FieldCount, error) {
	if !d.Layout.SampleIndexes() {
		return nil, fmt.Errorf("prefetch: %s is a columnar dataset: it has columns, not fields", d.Manifest.URL)
	}
	var mu sync.Mutex // guards counts
	counts := map[string]int{}
	g, gctx := errgroup.WithContext(ctx)
	if d.cat != nil {
		g.SetLimit(d.cat.cfg.IndexParallel)
	}
	for i := range d.Manifest.Shards {
		g.Go(func() error {
			x, err := d.ShardIndex(gctx, i)
			if err != nil {
				return err
			}
			names, samples := x.FieldSamples()
			mu.Lock()
			defer mu.Unlock()
			for k, name := range names {
				counts[name] += samples[k]
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := make([]FieldCount, 0, len(counts))
	for name, n := range counts {
		out = append(out, FieldCount{Name: name, Samples: n})
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Name < out[b].Name })
	return out, nil
}
