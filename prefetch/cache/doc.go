// Package cache holds shard bytes in two tiers: memory (on the Go heap or
// in an Allocator's region) and an optional disk tier of checksummed files
// that outlive a restart. It owns the tiers and their byte budgets, the
// Ref that keeps an entry's bytes from reuse while read, the eviction
// policy with the Oracle that ranks entries by next use, the disk file
// format, and disk extents a reader may map or send (DiskExtent).
//
// cache imports only prefetch/storage of Stoker (for Key and the error
// kinds); it knows nothing of shards, datasets, plans or streams.
package cache
