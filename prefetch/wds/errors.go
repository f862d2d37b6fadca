package wds

import (
	"errors"
	"fmt"
)

// Kinds of error. Every error about the bytes of a shard is an *Error whose
// Kind is one of these; test with errors.Is. Errors from the io.Reader given
// to Index or NewReader are returned as they are, wrapped with the offset.
var (
	// ErrCorrupt: the bytes are not a well-formed (gzipped) tar that
	// webdataset would read: truncated data or header, a bad header checksum,
	// a damaged gzip stream, a duplicate field in a sample, an index entry
	// that lies outside the shard.
	ErrCorrupt = errors.New("corrupt shard")
	// ErrUnsupported: a well-formed tar using a feature this package cannot
	// index, such as a GNU sparse member (its stored bytes are not its
	// contents, so no single byte range holds them).
	ErrUnsupported = errors.New("unsupported shard")
	// ErrTooLarge: the shard's tar bytes exceed the limit given to
	// DecompressLimit (a gzip bomb, or a shard too large for the cache).
	ErrTooLarge = errors.New("shard too large")
)

// Error says where in a shard indexing failed.
type Error struct {
	// Kind is ErrCorrupt, ErrUnsupported or ErrTooLarge.
	Kind error
	// Member is the tar member involved, or "" when the problem is not in a
	// named member (a damaged header, the gzip stream).
	Member string
	// Offset is the position in the decompressed tar stream where the
	// problem was found: the first header block of a bad or rejected member,
	// the end of the bytes of a truncated one, or, for a gzip error, how many
	// bytes had been decompressed.
	Offset int64
	// Err says what went wrong; it may wrap an archive/tar or compress/gzip
	// error.
	Err error
}

func (e *Error) Error() string {
	where := fmt.Sprintf("offset %d", e.Offset)
	if e.Member != "" {
		where = fmt.Sprintf("member %q at offset %d", e.Member, e.Offset)
	}
	return fmt.Sprintf("wds: %v: %s: %v", e.Kind, where, e.Err)
}

// Unwrap lets errors.Is see both the kind and the cause.
func (e *Error) Unwrap() []error { return []error{e.Kind, e.Err} }

// corrupt returns an ErrCorrupt *Error.
func corrupt(member string, off int64, format string, args ...any) *Error {
	return &Error{Kind: ErrCorrupt, Member: member, Offset: off, Err: fmt.Errorf(format, args...)}
}
