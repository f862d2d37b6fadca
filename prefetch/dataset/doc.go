// Package dataset turns a dataset URL into what a plan needs: URL
// resolution (a prefix, a brace pattern, an index) into shard Objects, the
// Catalog of opened Datasets with their sample counts, the manifests and
// shard indexes it stores on disk, and the indexes found beside the shards
// (IndexFinder). It reads shards it must index through a ShardReader
// (prefetch.Shards).
//
// dataset imports storage and cache of prefetch, and the format packages
// (wds, columnar) and shuffle; it never imports prefetch, which holds the
// shard reads and the prefetcher.
package dataset
