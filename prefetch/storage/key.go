package storage

// Key names one version of an object's bytes, or of a unit's byte range
// (see Object.Key): what caches and peers hold them under. A changed
// object (new ETag) has a new Key.
type Key struct {
	Object string // the object's URL
	ETag   string // the object's version
}
