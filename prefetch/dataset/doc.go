// Package dataset turns a dataset URL into what a plan needs: URL
// resolution (a prefix, a brace pattern, an index) into shard Objects, the
// Catalog of opened Datasets with their sample counts, the manifests and
// shard indexes it stores on disk, and the indexes found beside the shards
// (IndexFinder). It reads shards it must index through a ShardReader
// (prefetch.Shards).
//
// A dataset's format is chosen once, at the open, as its Layout:
// WebDataset (layout_wds.go) or columnar (layout_columnar.go). The Layout
// says how the catalog opens and rebuilds the dataset, whether a sample
// can be read as a byte range of its shard, and whether shards have sample
// indexes; the fetch layer and the server ask it instead of telling the
// formats apart, and only Layout.Columnar does (for the wire).
//
// dataset imports storage and cache of prefetch, and the format packages
// (wds, columnar) and shuffle; it never imports prefetch, which holds the
// shard reads and the prefetcher.
package dataset
