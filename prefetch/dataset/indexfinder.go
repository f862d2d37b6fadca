package dataset

import (
	"context"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// IndexFinder finds the index a dataset may have beside its shards (a
// wids-index.json that `stoker index` writes), so the catalog learns the
// sample counts without reading a shard. prefetch/dsindex implements it;
// a Catalog without one counts every dataset from its shards. Methods are
// called concurrently.
type IndexFinder interface {
	// IsIndexURL reports whether a dataset URL names an index rather than
	// shards.
	IsIndexURL(url string) bool
	// Open reads the index url names, and returns it with its shards.
	Open(ctx context.Context, url string) (Index, []storage.Object, error)
	// Find returns the index beside objs, the shards datasetURL resolved
	// to, describing them in order; nil with why (for the log) when there
	// is none, or it is stale; an error when storage failed.
	Find(ctx context.Context, datasetURL string, objs []storage.Object) (idx Index, why string, err error)
}

// Index is an index that describes a dataset's objects, one entry
// each, in the dataset's order.
type Index interface {
	// URL is where the index is.
	URL() string
	// Counts are the objects' sample counts.
	Counts() []int
	// ShardIndex reads object i's sample index.
	ShardIndex(ctx context.Context, i int) (*wds.ShardIndex, error)
	// ShardIndexes reads the sample indexes of objects is, in fewer
	// reads than one each where it can: out[j] or errs[j] is is[j]'s.
	ShardIndexes(ctx context.Context, is []int) (out []*wds.ShardIndex, errs []error)
}
