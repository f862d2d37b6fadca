// Package storage reads objects from where datasets are stored: the Source
// interface and the Object it returns (with its version Key), the kinds of
// error every Source reports (*Error), ranged and parallel reads (Fetch,
// FetchRange), the scheme mux (Sources), allow-lists (AllowFiles, AllowS3)
// and the file:// Source. The S3 Source is in storage/s3; storagetest is
// the conformance suite every Source passes.
//
// storage imports nothing of Stoker: it knows objects and bytes, never
// shards, samples, caches or plans.
package storage
