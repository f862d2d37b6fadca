package columnar

import (
	"context"
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Row names one row: a unit (any key the caller uses) and the row's index
// in it.
type Row struct {
	Unit int32
	Row  int32
}

// Gather builds one record batch of the given rows, in order, taking them
// from the decoded units (each with schema s). Each column is copied in
// one pass from the units' buffers (gather_copy.go), nested columns too; a
// column of a type the copy path does not handle (views, unions, run-end
// encoded, extensions) is taken with arrow's Take instead
// (gather_take.go). Both give equal arrays. The caller releases the
// result.
func Gather(ctx context.Context, s *arrow.Schema, units map[int32]arrow.RecordBatch, rows []Row) (rec arrow.RecordBatch, err error) {
	mem := memory.DefaultAllocator
	// Units in order of first use; rows as spans of consecutive rows.
	slot := map[int32]int32{}
	var recs []arrow.RecordBatch
	spans := make([]span, 0, len(rows))
	for _, r := range rows {
		k, ok := slot[r.Unit]
		if !ok {
			u, ok := units[r.Unit]
			if !ok {
				return nil, fmt.Errorf("columnar: gather: unit %d not decoded", r.Unit)
			}
			k = int32(len(recs))
			slot[r.Unit] = k
			recs = append(recs, u)
		}
		if r.Row < 0 || int64(r.Row) >= recs[k].NumRows() {
			return nil, fmt.Errorf("columnar: gather: row %d of unit %d, which has %d", r.Row, r.Unit, recs[k].NumRows())
		}
		if n := len(spans); n > 0 && spans[n-1].src == k && spans[n-1].off+spans[n-1].n == int(r.Row) {
			spans[n-1].n++
			continue
		}
		spans = append(spans, span{src: k, off: int(r.Row), n: 1})
	}
	cols := make([]arrow.Array, s.NumFields())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	// The copy path checks the units' buffers against their lengths before
	// it reads them; a panic left is a bug, answered as an error all the
	// same.
	defer func() {
		if p := recover(); p != nil {
			rec, err = nil, fmt.Errorf("columnar: gather: %v", p)
		}
	}()
	var byUnit *takePlan // made when a column needs it
	for i := range cols {
		f := s.Field(i)
		col, err := copyColumn(mem, f.Type, recs, i, spans, len(rows))
		if errors.Is(err, errNoCopy) {
			if byUnit == nil {
				byUnit = newTakePlan(rows)
			}
			col, err = byUnit.column(ctx, mem, f.Type, units, i)
		}
		if err != nil {
			return nil, fmt.Errorf("columnar: column %q: %w", f.Name, err)
		}
		cols[i] = col
	}
	return array.NewRecordBatch(s, cols, int64(len(rows))), nil
}

// copyColumn copies column i of the rows the spans name from recs.
func copyColumn(mem memory.Allocator, t arrow.DataType, recs []arrow.RecordBatch, i int, spans []span, n int) (arrow.Array, error) {
	l := level{srcs: make([]arrow.ArrayData, len(recs)), spans: spans, n: n}
	for k, r := range recs {
		c := r.Column(i)
		if !arrow.TypeEqual(c.DataType(), t) {
			return nil, errNoCopy // the take path says what is wrong
		}
		l.srcs[k] = c.Data()
	}
	d, err := copyArray(mem, t, l)
	if err != nil {
		return nil, err
	}
	defer d.Release()
	return array.MakeFromData(d), nil
}

// RecordBytes is the size of rec's buffers (shared buffers of a slice are
// counted whole).
func RecordBytes(rec arrow.RecordBatch) int64 {
	n := int64(0)
	for _, c := range rec.Columns() {
		n += dataBytes(c.Data())
	}
	return n
}

func dataBytes(d arrow.ArrayData) int64 {
	n := int64(0)
	for _, b := range d.Buffers() {
		if b != nil {
			n += int64(b.Len())
		}
	}
	for _, c := range d.Children() {
		n += dataBytes(c)
	}
	if d.DataType().ID() == arrow.DICTIONARY {
		if dict, ok := d.Dictionary().(*array.Data); ok && dict != nil {
			n += dataBytes(dict)
		}
	}
	return n
}
