// Package prefetch moves shard bytes toward memory: dataset URL
// resolution and the catalog of opened datasets with their shard indexes,
// the two cache tiers and their plan-aware eviction, the single-flight
// shard reads (local, peer, storage), and the prefetcher that walks an
// epoch's plan ahead of its readers. Storage itself (the Source interface,
// S3, file://, allow-lists) is prefetch/storage.
package prefetch
