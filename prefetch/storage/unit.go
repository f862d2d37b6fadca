package storage

import (
	"context"
	"fmt"
)

// Key is the key o's bytes are cached under: the object and its ETag,
// and for a unit its byte range, as "URL#bytes=OFFSET+LENGTH".
func (o Object) Key() Key {
	if o.Length > 0 {
		return Key{Object: fmt.Sprintf("%s#bytes=%d+%d", o.URL, o.Offset, o.Length), ETag: o.ETag}
	}
	return Key{Object: o.URL, ETag: o.ETag}
}

// Bytes is the number of bytes o's cache entry holds as stored: the unit's
// length, or the object's size.
func (o Object) Bytes() int64 {
	if o.Length > 0 {
		return o.Length
	}
	return o.Size
}

// FetchRange reads the unit o names (o.Length > 0) with Fetch's part size
// and parallelism: the bytes [o.Offset, o.Offset+o.Length) of the object.
// A unit without a version (an object stored without one) is pinned to the
// version its object has now, and its length is kept: only the version is
// taken from the Stat.
func FetchRange(ctx context.Context, src Source, o Object, opt FetchOptions) ([]byte, error) {
	if o.Offset < 0 || (o.Size > 0 && o.Offset+o.Length > o.Size) {
		return nil, &Error{Op: "fetch", Object: o.URL, Kind: ErrCorrupt, Err: fmt.Errorf("range [%d, %d) is outside the object's %d bytes", o.Offset, o.Offset+o.Length, o.Size)}
	}
	part := Object{URL: o.URL, Size: o.Length, ETag: o.ETag}
	return Fetch(ctx, unitSource{src, o.Offset, o.Length}, part, opt)
}

// unitSource reads the unit [off, off+length) of an object as if it were
// an object of its own, so Fetch's parallel ranges apply to a unit as to a
// whole object. Its Stat is the object's, with the unit's size.
type unitSource struct {
	Source
	off, length int64
}

func (s unitSource) ReadAt(ctx context.Context, obj Object, p []byte, off int64) error {
	return s.Source.ReadAt(ctx, obj, p, s.off+off)
}

func (s unitSource) Stat(ctx context.Context, url string) (Object, error) {
	o, err := s.Source.Stat(ctx, url)
	if err != nil {
		return Object{}, err
	}
	if s.off+s.length > o.Size {
		return Object{}, &Error{Op: "fetch", Object: url, Kind: ErrChanged, Err: fmt.Errorf("unit [%d, %d) is beyond the %d-byte object", s.off, s.off+s.length, o.Size)}
	}
	o.Size = s.length
	return o, nil
}
