// Package columnar indexes and decodes columnar shards: Parquet files and
// Arrow IPC files and streams. An object is split into units (a Parquet row
// group, an Arrow record batch), each a byte range with a row count, so the
// planner can shuffle units and the cache can hold them one by one.
//
// Indexing reads only what it needs: a Parquet or Arrow IPC file's footer
// (and each record batch's message header) with ranged reads, an IPC stream
// in one sequential pass. Decoding turns one unit's bytes into an Arrow
// record batch, projected to the requested columns.
//
// Errors about the bytes are *Error values (the caller names the object);
// errors of the RangeReader come back wrapped, unchanged.
//
// Of Stoker it imports only shuffle (the formats' names); it knows no
// cache, dataset or reader, nor the WebDataset format: prefetch/dataset's
// Layout joins the formats to the catalog and the reads (internal/layout
// checks it).
package columnar

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet/metadata"

	"github.com/stoker-data/stoker/shuffle"
)

// RangeReader reads byte ranges of one object. ReadAt fills p from offset
// off or fails; it is called concurrently.
type RangeReader interface {
	ReadAt(ctx context.Context, p []byte, off int64) error
}

// Error says the bytes are not a valid file of the format.
type Error struct {
	Format shuffle.Format
	Err    error
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %v", e.Format, e.Err) }
func (e *Error) Unwrap() error { return e.Err }

func corrupt(f shuffle.Format, format string, args ...any) error {
	return &Error{Format: f, Err: fmt.Errorf(format, args...)}
}

// ErrUnknownColumn is wrapped by the error for a column not in the schema.
var ErrUnknownColumn = errors.New("unknown column")

// Unit is one row group or record batch of an object.
type Unit struct {
	// Part is the row group or record batch index in the object.
	Part int `json:"part"`
	// Offset and Length are the unit's byte range in the object.
	Offset int64 `json:"offset"`
	Length int64 `json:"length"`
	// Rows is the number of rows.
	Rows int64 `json:"rows"`
}

// Segment is a byte range of an object held in memory.
type Segment struct {
	Offset int64  `json:"offset"`
	Data   []byte `json:"data"`
}

// Index is what decoding needs of one object besides a unit's bytes. It
// is stored as JSON; once made it is immutable and safe for concurrent use.
type Index struct {
	Format shuffle.Format `json:"format"`
	// Size is the object's size in bytes.
	Size int64 `json:"size"`
	// Units lists the units that hold rows, in file order.
	Units []Unit `json:"units"`
	// Schema is the object's Arrow schema as an IPC stream (see
	// SchemaBytes).
	Schema []byte `json:"schema"`
	// Meta are the other bytes decoding needs: the Parquet footer; the
	// Arrow file's footer and dictionary blocks; the Arrow stream's schema
	// and dictionary messages.
	Meta []Segment `json:"meta"`

	once   sync.Once
	schema *arrow.Schema
	pq     *metadata.FileMetaData
	err    error
}

// Rows is the number of rows in the object.
func (ix *Index) Rows() int64 {
	n := int64(0)
	for _, u := range ix.Units {
		n += u.Rows
	}
	return n
}

// ArrowSchema returns the object's schema.
func (ix *Index) ArrowSchema() (*arrow.Schema, error) {
	ix.init()
	return ix.schema, ix.err
}

// init decodes the stored schema (and Parquet footer) once.
func (ix *Index) init() {
	ix.once.Do(func() {
		ix.schema, ix.err = ParseSchema(ix.Schema)
		if ix.err == nil && ix.Format == shuffle.FormatParquet {
			if len(ix.Meta) != 1 {
				ix.err = corrupt(ix.Format, "stored index has %d footer segments, want 1", len(ix.Meta))
				return
			}
			ix.pq, ix.err = parseFooter(ix.Meta[0].Data, ix.Meta[0].Offset)
		}
	})
}

// IndexObject reads the index of an object of the given format and size.
func IndexObject(ctx context.Context, f shuffle.Format, r RangeReader, size int64) (*Index, error) {
	switch f {
	case shuffle.FormatParquet:
		return IndexParquet(ctx, r, size)
	case shuffle.FormatArrow:
		return IndexArrowFile(ctx, r, size)
	case shuffle.FormatArrowStream:
		data := make([]byte, size)
		if size > 0 {
			if err := r.ReadAt(ctx, data, 0); err != nil {
				return nil, err
			}
		}
		return IndexArrowStream(data)
	}
	return nil, fmt.Errorf("columnar: not a columnar format: %q", f)
}

// Decode turns unit u's bytes (the object's bytes [u.Offset,
// u.Offset+u.Length)) into a record batch with the given columns, in the
// given order; no columns means all. The caller releases the result.
func (ix *Index) Decode(ctx context.Context, u Unit, data []byte, columns []string) (arrow.RecordBatch, error) {
	ix.init()
	if ix.err != nil {
		return nil, ix.err
	}
	if int64(len(data)) != u.Length {
		return nil, corrupt(ix.Format, "unit %d: got %d bytes, want %d", u.Part, len(data), u.Length)
	}
	if err := CheckColumns(ix.schema, columns); err != nil {
		return nil, err
	}
	var (
		rec arrow.RecordBatch
		err error
	)
	switch ix.Format {
	case shuffle.FormatParquet:
		rec, err = ix.decodeParquet(ctx, u, data, columns)
	case shuffle.FormatArrow:
		rec, err = ix.decodeArrowFile(u, data)
	case shuffle.FormatArrowStream:
		rec, err = ix.decodeArrowStream(u, data)
	default:
		return nil, fmt.Errorf("columnar: not a columnar format: %q", ix.Format)
	}
	if err != nil {
		return nil, err
	}
	if rec.NumRows() != u.Rows {
		rec.Release()
		return nil, corrupt(ix.Format, "unit %d: decoded %d rows, the index says %d", u.Part, rec.NumRows(), u.Rows)
	}
	out, err := Project(rec, columns)
	rec.Release()
	return out, err
}
