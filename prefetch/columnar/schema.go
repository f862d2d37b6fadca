package columnar

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/stoker-data/stoker/shuffle"
)

// SchemaBytes serialises a schema as an Arrow IPC stream with no batches
// (pyarrow reads it with pyarrow.ipc.read_schema or open_stream).
func SchemaBytes(s *arrow.Schema) ([]byte, error) {
	var buf bytes.Buffer
	w := ipc.NewWriter(&buf, ipc.WithSchema(s))
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ParseSchema reads a schema written by SchemaBytes.
func ParseSchema(b []byte) (s *arrow.Schema, err error) {
	defer recoverTo(&err, shuffle.FormatArrowStream, "stored schema")
	r, err := ipc.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("columnar: stored schema: %w", err)
	}
	defer r.Release()
	return r.Schema(), nil
}

// SameFields reports how two schemas differ in their fields (names, types,
// nullability; metadata is ignored), or "" when they do not.
func SameFields(a, b *arrow.Schema) string {
	if a.NumFields() != b.NumFields() {
		return fmt.Sprintf("%d columns (%s) vs %d (%s)", a.NumFields(), names(a), b.NumFields(), names(b))
	}
	for i := range a.NumFields() {
		fa, fb := a.Field(i), b.Field(i)
		switch {
		case fa.Name != fb.Name:
			return fmt.Sprintf("column %d is %q vs %q", i, fa.Name, fb.Name)
		case !arrow.TypeEqual(fa.Type, fb.Type):
			return fmt.Sprintf("column %q is %s vs %s", fa.Name, fa.Type, fb.Type)
		case fa.Nullable != fb.Nullable:
			return fmt.Sprintf("column %q is nullable=%v vs %v", fa.Name, fa.Nullable, fb.Nullable)
		}
	}
	return ""
}

func names(s *arrow.Schema) string {
	n := make([]string, s.NumFields())
	for i, f := range s.Fields() {
		n[i] = f.Name
	}
	return strings.Join(n, ", ")
}

// CheckColumns fails with ErrUnknownColumn naming the first column not in s,
// or a repeated one.
func CheckColumns(s *arrow.Schema, columns []string) error {
	seen := map[string]bool{}
	for _, c := range columns {
		if len(s.FieldIndices(c)) == 0 {
			return fmt.Errorf("%w %q (columns: %s)", ErrUnknownColumn, c, names(s))
		}
		if seen[c] {
			return fmt.Errorf("column %q requested twice", c)
		}
		seen[c] = true
	}
	return nil
}

// ProjectSchema is s with only the given columns, in that order; no columns
// means s itself.
func ProjectSchema(s *arrow.Schema, columns []string) (*arrow.Schema, error) {
	if len(columns) == 0 {
		return s, nil
	}
	if err := CheckColumns(s, columns); err != nil {
		return nil, err
	}
	fields := make([]arrow.Field, len(columns))
	for i, c := range columns {
		fields[i] = s.Field(s.FieldIndices(c)[0])
	}
	md := s.Metadata()
	return arrow.NewSchema(fields, &md), nil
}

// Project returns rec with only the given columns, in that order (no
// columns: rec, retained). The caller releases the result.
func Project(rec arrow.RecordBatch, columns []string) (arrow.RecordBatch, error) {
	if len(columns) == 0 {
		rec.Retain()
		return rec, nil
	}
	s, err := ProjectSchema(rec.Schema(), columns)
	if err != nil {
		return nil, err
	}
	cols := make([]arrow.Array, len(columns))
	for i, c := range columns {
		cols[i] = rec.Column(rec.Schema().FieldIndices(c)[0])
	}
	return array.NewRecordBatch(s, cols, rec.NumRows()), nil
}

// recoverTo turns a panic of a decoder fed bad bytes into an error: the
// flatbuffer and thrift readers index slices without checking them.
func recoverTo(err *error, f shuffle.Format, what string) {
	if r := recover(); r != nil {
		*err = &Error{Format: f, Err: fmt.Errorf("malformed %s: %v", what, r)}
	}
}

// segments is an object of which only some byte ranges are held: an
// io.ReaderAt and io.Seeker (what the Parquet and Arrow readers take) that
// fails on a read outside them.
type segments struct {
	size int64
	segs []Segment
	pos  int64
}

var errOutside = errors.New("read outside the bytes held")

func (s *segments) ReadAt(p []byte, off int64) (int, error) {
	end := off + int64(len(p))
	for _, g := range s.segs {
		if off >= g.Offset && end <= g.Offset+int64(len(g.Data)) {
			return copy(p, g.Data[off-g.Offset:]), nil
		}
	}
	return 0, fmt.Errorf("%w: bytes [%d, %d) of %d", errOutside, off, end, s.size)
}

func (s *segments) Read(p []byte) (int, error) {
	if s.pos >= s.size {
		return 0, io.EOF
	}
	n, err := s.ReadAt(p[:min(int64(len(p)), s.size-s.pos)], s.pos)
	s.pos += int64(n)
	return n, err
}

func (s *segments) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		off += s.pos
	case io.SeekEnd:
		off += s.size
	default:
		return 0, fmt.Errorf("seek: bad whence %d", whence)
	}
	if off < 0 {
		return 0, fmt.Errorf("seek: negative offset %d", off)
	}
	s.pos = off
	return off, nil
}
