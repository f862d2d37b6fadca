// Package prefetch moves shard bytes toward memory: Sources (S3 through
// aws-sdk-go-v2, file:// for local folders), dataset URL resolution, shard
// indexing, the two cache tiers and their plan-aware eviction, and the
// prefetcher that walks an epoch's plan ahead of its readers.
package prefetch
