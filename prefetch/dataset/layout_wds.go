package dataset

import (
	"context"
	"strings"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/shuffle"
)

// webDataset is the Layout of WebDataset: a shard is an object, a tar or a
// gzipped tar, read through its sample index.
type webDataset struct{}

func (webDataset) Format() shuffle.Format { return shuffle.FormatWebDataset }

// SampleRanges: a sample of a tar is a byte range of it; a gzipped tar is
// inflated whole.
func (webDataset) SampleRanges(o storage.Object) bool {
	return !strings.HasSuffix(o.URL, ".gz") && !strings.HasSuffix(o.URL, ".tgz")
}

func (webDataset) SampleIndexes() bool { return true }

func (webDataset) Columnar() *Columnar { return nil }

// open takes the counts from the first place that has them all: the
// manifest an earlier open stored, or the index beside the shards (or the
// one url named); else the shards are counted as streams reach them.
func (l webDataset) open(ctx context.Context, c *Catalog, key, url string, objs []storage.Object, x Index) (*Dataset, error) {
	m := &shuffle.Manifest{URL: url, Format: shuffle.FormatWebDataset, Shards: make([]shuffle.Shard, len(objs))}
	for i, o := range objs {
		m.Shards[i] = manifestShard(o, 0, 0) // counts: see newDataset's known
	}
	ds := newDataset(m, l, false, false)
	// The same objects as the dataset opened before: keep it, and what it
	// has counted and loaded.
	if o, ok := c.opened.Get(key); ok && o.ds.ID == ds.ID && o.ds.Layout == Layout(l) {
		o.ds.stored.Store(false)
		return o.ds, nil
	}
	ds.cat = c
	switch {
	case c.countsFromManifest(ds):
		ds.CountsFrom = CountsManifest
	case c.countsFromIndex(ctx, ds, objs, x):
		ds.CountsFrom = CountsIndex // and the manifest is stored with the counts (counted)
	default:
		ds.CountsFrom = CountsCounting
		c.log.Info("dataset has no index: its shards are counted as streams reach them (run `stoker index URL` once to skip this)",
			"url", url, "shards", len(objs), "counted", ds.ShardsCounted())
		// Its objects are stored now, for opens while storage is down;
		// the counts when they are all known.
		if err := c.storeManifest(ds.withCounts()); err != nil {
			c.log.Warn("cannot store manifest", "url", url, "err", err)
		}
	}
	return ds, nil
}

// load takes the stored manifest's counts, -1 for the shards it had not
// counted: those are counted as streams reach them.
func (l webDataset) load(c *Catalog, m *shuffle.Manifest) (*Dataset, error) {
	ds := newDataset(m, l, true, true)
	ds.cat, ds.CountsFrom = c, CountsManifest
	return ds, nil
}
