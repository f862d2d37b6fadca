// Package prefetch moves shard bytes toward memory: the single-flight
// shard reads (Shards: the cache, else the shard's owner, else storage)
// and the Prefetcher that walks an epoch's plan ahead of its readers,
// with the streams that read samples through it and the choice of which
// shards a node keeps.
//
// Its parts live beside it: prefetch/storage (Sources: S3, file://),
// prefetch/cache (the memory and disk tiers), prefetch/dataset (URL
// resolution, the Catalog and its stored manifests and indexes), and the
// formats prefetch/wds, prefetch/columnar and prefetch/dsindex.
package prefetch
