package storage

import (
	"errors"
	"fmt"
	"io"
)

// Kinds of error. An *Error wraps exactly one of them; test with errors.Is.
var (
	ErrNotFound    = errors.New("not found")
	ErrPermission  = errors.New("permission denied")
	ErrChanged     = errors.New("object changed while reading")
	ErrUnavailable = errors.New("storage unavailable")
	ErrBadURL      = errors.New("bad URL")
	ErrCorrupt     = errors.New("corrupt shard")
	ErrTooLarge    = errors.New("too large")
)

// Error says what failed (Op), on which object or URL (Object), and why.
type Error struct {
	Op     string // "stat", "list", "read", "index", "cache"
	Object string // the URL of the object, bucket or dataset
	Kind   error  // one of the Err* kinds above
	Err    error  // the underlying cause, may be nil
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s %s: %v: %v", e.Op, e.Object, e.Kind, e.Err)
	}
	return fmt.Sprintf("%s %s: %v", e.Op, e.Object, e.Kind)
}

// Unwrap lets errors.Is see both the kind and the cause.
func (e *Error) Unwrap() []error {
	if e.Err == nil {
		return []error{e.Kind}
	}
	return []error{e.Kind, e.Err}
}

// RangeError is the error a Source returns for a read of [off, off+n) that the object cannot fill.
// size is the object's size, or -1 where it is not known.
func RangeError(op, url string, off int64, n int, size int64) error {
	var cause error
	if size >= 0 {
		cause = fmt.Errorf("range [%d,%d) beyond the %d-byte object: %w", off, off+int64(n), size, io.ErrUnexpectedEOF)
	} else {
		cause = fmt.Errorf("range [%d,%d) outside the object: %w", off, off+int64(n), io.ErrUnexpectedEOF)
	}
	return &Error{Op: op, Object: url, Kind: ErrCorrupt, Err: cause}
}
