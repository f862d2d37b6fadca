package dsindex

import (
	"context"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/stoker-data/stoker/prefetch/dataset"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// Finder finds datasets' indexes for the catalog: it is the
// dataset.IndexFinder that stokerd gives its Catalog. Safe for
// concurrent use.
type Finder struct {
	sources *storage.Sources
}

var _ dataset.IndexFinder = (*Finder)(nil)

// NewFinder returns a Finder reading through sources.
func NewFinder(sources *storage.Sources) *Finder { return &Finder{sources: sources} }

// IsIndexURL reports whether a dataset URL names an index (a .json).
func (f *Finder) IsIndexURL(url string) bool { return strings.HasSuffix(url, ".json") }

// Open reads the index url names and returns it with the shards it lists,
// Stat'ing those whose size or ETag it does not record.
func (f *Finder) Open(ctx context.Context, url string) (dataset.Index, []storage.Object, error) {
	src, err := f.sources.For(url)
	if err != nil {
		return nil, nil, err
	}
	x, err := Read(ctx, src, url)
	if err != nil {
		return nil, nil, err
	}
	objs := Shards(x)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i, o := range objs {
		if o.Size >= 0 && o.ETag != "" {
			continue
		}
		g.Go(func() error {
			st, err := src.Stat(gctx, o.URL)
			if err == nil {
				objs[i] = st
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	x, ok, why, err := Load(ctx, src, url, objs)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, &storage.Error{Op: "open", Object: url, Kind: storage.ErrCorrupt, Err: errorString(why)}
	}
	return &found{src: src, x: x}, objs, nil
}

// Find returns the index beside the shards objs of datasetURL, in the
// order of objs, or nil with why (for the log) when there is none usable.
func (f *Finder) Find(ctx context.Context, datasetURL string, objs []storage.Object) (dataset.Index, string, error) {
	src, err := f.sources.For(datasetURL)
	if err != nil {
		return nil, "", err
	}
	x, ok, why, err := Load(ctx, src, Locate(datasetURL, objs), objs)
	if err != nil || !ok {
		return nil, why, err
	}
	return &found{src: src, x: x}, "", nil
}

// found is an index that describes a dataset's objects, one entry each.
type found struct {
	src storage.Source
	x   *Index
}

func (d *found) URL() string { return d.x.URL }

func (d *found) Counts() []int {
	out := make([]int, len(d.x.Entries))
	for i, e := range d.x.Entries {
		out[i] = e.Samples
	}
	return out
}

func (d *found) ShardIndex(ctx context.Context, i int) (*wds.ShardIndex, error) {
	return ReadShard(ctx, d.src, d.x, i)
}

func (d *found) ShardIndexes(ctx context.Context, is []int) ([]*wds.ShardIndex, []error) {
	return ReadShards(ctx, d.src, d.x, is)
}

type errorString string

func (e errorString) Error() string { return string(e) }
