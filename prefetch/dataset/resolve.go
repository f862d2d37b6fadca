package dataset

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/shuffle"
)

// shardSuffixes are the names a prefix listing keeps, by format.
var shardSuffixes = []struct {
	suffix string
	format shuffle.Format
}{
	{".tar", shuffle.FormatWebDataset}, {".tar.gz", shuffle.FormatWebDataset}, {".tgz", shuffle.FormatWebDataset},
	{".parquet", shuffle.FormatParquet}, {".pq", shuffle.FormatParquet},
	{".arrow", shuffle.FormatArrow}, {".feather", shuffle.FormatArrow},
	{".arrows", shuffle.FormatArrowStream},
}

// FormatOf returns the format a shard's name says by its extension, or ""
// for none.
func FormatOf(name string) shuffle.Format {
	for _, s := range shardSuffixes {
		if strings.HasSuffix(name, s.suffix) {
			return s.format
		}
	}
	return ""
}

// IsShardName reports whether name ends like a shard: a WebDataset tar
// (.tar, .tar.gz, .tgz), Parquet (.parquet, .pq), an Arrow IPC file
// (.arrow, .feather) or stream (.arrows).
func IsShardName(name string) bool { return FormatOf(name) != "" }

// resolveParallel bounds the Stat calls of one brace expansion in flight.
const resolveParallel = 16

// Resolve turns a dataset URL into its shards:
//
//   - a prefix ending in "/" (s3://b/train/, file:///data/train/) lists
//     every shard (see IsShardName) under it, nested ones included,
//     sorted by URL;
//   - a URL with braces (s3://b/train-{000000..000099}.tar, see
//     ExpandBraces) expands and Stats every name, in parallel, keeping the
//     expansion's order (a name ending in "/" is listed as above);
//   - any other URL is one object, Stat'ed.
//
// Nothing found is ErrNotFound naming the URL; a malformed URL or brace is
// ErrBadURL. Other errors come from the Source as they are (a missing
// shard of a brace list is ErrNotFound naming that shard). Resolve is safe
// for concurrent use.
func Resolve(ctx context.Context, sources *storage.Sources, datasetURL string) ([]storage.Object, error) {
	src, err := sources.For(datasetURL)
	if err != nil {
		return nil, err
	}
	names := []string{datasetURL}
	if strings.ContainsAny(datasetURL, "{}") {
		if names, err = ExpandBraces(datasetURL); err != nil {
			return nil, err
		}
	}
	var objs []storage.Object
	if len(names) == 1 {
		objs, err = resolveOne(ctx, src, names[0])
	} else {
		objs, err = resolveMany(ctx, src, names)
	}
	if err != nil {
		return nil, err
	}
	if len(objs) == 0 {
		return nil, &storage.Error{Op: "resolve", Object: datasetURL, Kind: storage.ErrNotFound, Err: errors.New("no shards (.tar, .tar.gz, .tgz, .parquet, .pq, .arrow, .feather, .arrows) there")}
	}
	return objs, nil
}

// resolveMany resolves every name, at most resolveParallel at a time, and
// concatenates the results in the order of names.
func resolveMany(ctx context.Context, src storage.Source, names []string) ([]storage.Object, error) {
	parts := make([][]storage.Object, len(names))
	missing := make([]error, len(names)) // ErrNotFound per name, kept to name the first
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(resolveParallel)
	for i, name := range names {
		g.Go(func() (err error) {
			parts[i], err = resolveOne(gctx, src, name)
			if errors.Is(err, storage.ErrNotFound) {
				missing[i] = err
				return nil
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	// Name the first missing object in the URL's order, and count the rest.
	var first error
	n := 0
	for _, err := range missing {
		if err != nil {
			n++
			first = cmp.Or(first, err)
		}
	}
	if n > 1 {
		return nil, fmt.Errorf("%w (and %d more of the %d objects are missing)", first, n-1, len(names))
	}
	if first != nil {
		return nil, first
	}
	return slices.Concat(parts...), nil
}

// resolveOne lists the shards under a prefix ending in "/", or Stats one
// object.
func resolveOne(ctx context.Context, src storage.Source, name string) ([]storage.Object, error) {
	if !strings.HasSuffix(name, "/") {
		o, err := src.Stat(ctx, name)
		if err != nil {
			return nil, err
		}
		return []storage.Object{o}, nil
	}
	all, err := src.List(ctx, name)
	if err != nil {
		return nil, err
	}
	shards := all[:0]
	for _, o := range all {
		if IsShardName(o.URL) {
			shards = append(shards, o)
		}
	}
	return shards, nil
}
