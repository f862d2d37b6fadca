// Package shuffle plans epochs: the dataset manifest types, the global
// sample order of an epoch as a pure function of (manifest, seed, epoch,
// shuffle settings), its split into ranks and batches, and cursors.
//
// Nothing here does I/O, reads a clock or starts a goroutine, and it
// imports nothing of Stoker.
package shuffle

// Format names a shard format.
type Format string

const (
	// FormatWebDataset is a tar (or gzipped tar) of samples grouped by key.
	FormatWebDataset Format = "webdataset"
	// FormatParquet is a Parquet file; its units are row groups.
	FormatParquet Format = "parquet"
	// FormatArrow is an Arrow IPC file (.arrow, .feather v2); its units are
	// record batches.
	FormatArrow Format = "arrow"
	// FormatArrowStream is an Arrow IPC stream (.arrows); its units are
	// record batches.
	FormatArrowStream Format = "arrows"
)

// Columnar reports whether f is a columnar format (samples are rows, and a
// shard is one unit of an object).
func (f Format) Columnar() bool {
	return f == FormatParquet || f == FormatArrow || f == FormatArrowStream
}

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

// Shard is one object of a dataset and its index, or, in a columnar
// dataset, one unit of an object (a Parquet row group, an Arrow record
// batch): the planner shuffles and the cache holds units, not files.
type Shard struct {
	// Object is the full URL of the object (s3://bucket/key, file:///path).
	Object string `json:"object"`
	// Size is the object's size in bytes as stored.
	Size int64 `json:"size"`
	// ETag identifies the object's version; a new ETag is a new object.
	ETag string `json:"etag"`
	// Samples is the number of samples in the shard (rows of a unit).
	Samples int `json:"samples"`
	// Part is the unit's index in its object (row group or record batch);
	// Offset and Length are its byte range there. Length is 0 for a shard
	// that is a whole object.
	Part   int   `json:"part,omitempty"`
	Offset int64 `json:"offset,omitempty"`
	Length int64 `json:"length,omitempty"`
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
