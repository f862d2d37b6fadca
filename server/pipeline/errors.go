package pipeline

import (
	"errors"
	"fmt"
)

// Kinds of error; test with errors.Is.
var (
	// ErrSpec: the pipeline a request describes is not valid (the error
	// names the output and the op).
	ErrSpec = errors.New("invalid pipeline")
	// ErrMissingField: a sample has none of an output's fields.
	ErrMissingField = errors.New("missing field")
	// ErrDecode: a field's bytes are not what its decoder reads (a
	// corrupt JPEG, a bad .npy header, text that is not UTF-8).
	ErrDecode = errors.New("cannot decode")
	// ErrTooLarge: an image over the pixel limit, or a value over the
	// memory the pool may use at once.
	ErrTooLarge = errors.New("too large")
	// ErrShape: a sample's value does not fit the batch's shape (or the
	// output's declared shape), or an image is smaller than its crop.
	ErrShape = errors.New("shape mismatch")
)

// specError is an ErrSpec naming the output (and op) at fault.
func specError(format string, args ...any) error {
	return fmt.Errorf("pipeline: %s: %w", fmt.Sprintf(format, args...), ErrSpec)
}

// SampleError says which sample, output and field failed, and why.
type SampleError struct {
	Key      string // the sample's key
	Object   string // its shard's object
	Position int    // its position in the epoch's order
	Output   string // the pipeline output
	Field    string // the field read ("" when missing)
	Err      error  // wraps one of the kinds above
}

func (e *SampleError) Error() string {
	f := e.Field
	if f == "" {
		f = "-"
	}
	return fmt.Sprintf("pipeline: sample %q (position %d, %s): output %q, field %q: %v", e.Key, e.Position, e.Object, e.Output, f, e.Err)
}

func (e *SampleError) Unwrap() error { return e.Err }

// kindError wraps a kind with a cause.
func kindError(kind error, format string, args ...any) error {
	return fmt.Errorf("%w: %s", kind, fmt.Sprintf(format, args...))
}
