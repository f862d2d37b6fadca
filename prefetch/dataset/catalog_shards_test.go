package dataset

import (
	"context"

	"github.com/stoker-data/stoker/prefetch/cache"
	"github.com/stoker-data/stoker/prefetch/storage"
)

// fetchShards is a ShardReader that reads whole shards from storage, as
// prefetch.Shards does on a miss, without its cache or gunzip: the tests'
// shards are plain tar.
type fetchShards struct{ sources *storage.Sources }

func (f fetchShards) Get(ctx context.Context, o storage.Object) (*cache.Ref, error) {
	src, err := f.sources.For(o.URL)
	if err != nil {
		return nil, err
	}
	data, err := storage.Fetch(ctx, src, o, storage.FetchOptions{})
	if err != nil {
		return nil, err
	}
	return cache.HeapRef(data), nil
}
