package wds

// Validate checks that every field of samples lies within a tar stream of
// size bytes: 0 <= Offset, 0 <= Size and Offset+Size <= size. Index's
// results always pass; use it on an index read back from disk before
// slicing a cached shard with it. The error is an ErrCorrupt *Error.
func Validate(samples []Sample, size int64) error {
	for _, s := range samples {
		for _, f := range s.Fields {
			if !inBounds(f, size) {
				return corrupt("", f.Offset, "sample %q field %q: bytes [%d, %d+%d) are not within the %d-byte tar",
					s.Key, f.Name, f.Offset, f.Offset, f.Size, size)
			}
		}
	}
	return nil
}

// FieldData returns the bytes of f in the decompressed tar tarBytes, as a
// sub-slice whose capacity ends with the field (appending to it copies). A
// field outside tarBytes (an index that does not belong to these bytes) is an
// ErrCorrupt *Error.
func FieldData(tarBytes []byte, f Field) ([]byte, error) {
	if !inBounds(f, int64(len(tarBytes))) {
		return nil, corrupt("", f.Offset, "field %q: bytes [%d, %d+%d) are not within the %d-byte tar",
			f.Name, f.Offset, f.Offset, f.Size, len(tarBytes))
	}
	end := f.Offset + f.Size
	return tarBytes[f.Offset:end:end], nil
}

// inBounds reports whether f lies within [0, size), without overflow.
func inBounds(f Field, size int64) bool {
	return f.Offset >= 0 && f.Size >= 0 && f.Offset <= size && f.Size <= size-f.Offset
}
