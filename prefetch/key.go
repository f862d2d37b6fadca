package prefetch

// CacheKey names a cache entry: the whole decompressed bytes of one object
// version. A changed object (new ETag) is a new entry.
type CacheKey struct {
	Object string // the object's URL
	ETag   string // the object's version
}
