package storage

import "context"

// Object is one stored object as a Source sees it.
type Object struct {
	// URL is the object's full URL (s3://bucket/key or file:///path).
	URL string `json:"url"`
	// Size in bytes.
	Size int64 `json:"size"`
	// ETag identifies the object's version (for file://, derived from size
	// and modification time).
	ETag string `json:"etag"`
	// Offset and Length, when Length > 0, name the byte range of the
	// object that a columnar unit (a Parquet row group, an Arrow record
	// batch) is: Shards fetch and cache only these bytes, under a key of
	// their own (see Key).
	Offset int64 `json:"offset,omitempty"`
	Length int64 `json:"length,omitempty"`
}

// Source reads objects from one kind of storage, named by URL scheme.
// Every method is safe to call concurrently. Errors are *Error values whose
// Kind says what went wrong (ErrNotFound, ErrPermission, ErrChanged,
// ErrUnavailable, ErrBadURL); callers branch with errors.Is.
type Source interface {
	// Stat returns the object at url.
	Stat(ctx context.Context, url string) (Object, error)
	// List returns the objects whose URL starts with prefix, sorted by URL.
	// A prefix that matches nothing returns an empty list, not an error;
	// a bucket or folder that does not exist is ErrNotFound.
	List(ctx context.Context, prefix string) ([]Object, error)
	// ReadAt fills p with the bytes of obj at offset off. If obj.ETag is set
	// and the stored object has another, it fails with ErrChanged. A short
	// object gives an error, never a partly filled p reported as success.
	ReadAt(ctx context.Context, obj Object, p []byte, off int64) error
}

// Writer is implemented by the Sources that can store objects (s3.Source,
// FileSource). Stoker reads datasets and never writes them; only `stoker
// index` writes, the dataset index it keeps beside the shards. Put is safe
// to call concurrently.
type Writer interface {
	// Put stores data as the object at url, replacing any object there
	// whole: a reader sees the old bytes or the new, never a mix. Errors
	// are *Error values like the Source's: ErrBadURL, ErrNotFound (no such
	// bucket), ErrPermission, ErrUnavailable.
	Put(ctx context.Context, url string, data []byte) error
}
