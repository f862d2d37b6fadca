// Package shuffle plans epochs: the dataset manifest types, the global
// sample order of an epoch as a pure function of (manifest, seed, epoch,
// shuffle settings), its split into ranks and batches, and cursors.
//
// Nothing here does I/O, reads a clock or starts a goroutine.
package shuffle

// Format names a shard format.
type Format string

const (
	// FormatWebDataset is a tar (or gzipped tar) of samples grouped by key.
	FormatWebDataset Format = "webdataset"
)

// Manifest describes a resolved dataset: its shards in a fixed order.
// A Manifest is immutable once built; share it freely between goroutines.
type Manifest struct {
	// URL is the dataset URL the manifest was resolved from.
	URL string `json:"url"`
	// Format of every shard.
	Format Format `json:"format"`
	// Shards in dataset order (sorted object URLs, or brace-list order).
	Shards []Shard `json:"shards"`
}

// Shard is one object of a dataset and its index.
type Shard struct {
	// Object is the full URL of the object (s3://bucket/key, file:///path).
	Object string `json:"object"`
	// Size is the object's size in bytes as stored.
	Size int64 `json:"size"`
	// ETag identifies the object's version; a new ETag is a new object.
	ETag string `json:"etag"`
	// Samples is the number of samples in the shard.
	Samples int `json:"samples"`
}

// NumSamples is the total number of samples in the manifest.
func (m *Manifest) NumSamples() int {
	n := 0
	for _, s := range m.Shards {
		n += s.Samples
	}
	return n
}

// Counts returns the per-shard sample counts, the only part of a manifest
// that planning needs.
func (m *Manifest) Counts() []int {
	c := make([]int, len(m.Shards))
	for i, s := range m.Shards {
		c[i] = s.Samples
	}
	return c
}
