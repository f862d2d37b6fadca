package columnar

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// Row names one row: a unit (any key the caller uses) and the row's index
// in it.
type Row struct {
	Unit int32
	Row  int32
}

// Gather builds one record batch of the given rows, in order, taking them
// from the decoded units (each with schema s). It copies only the rows it
// takes: per unit, one take of that unit's rows; then one take that puts
// them in order. The caller releases the result.
func Gather(ctx context.Context, s *arrow.Schema, units map[int32]arrow.RecordBatch, rows []Row) (arrow.RecordBatch, error) {
	mem := memory.DefaultAllocator
	// Group rows by unit, units in order of first use.
	var order []int32
	idx := map[int32][]int32{}
	for _, r := range rows {
		if _, ok := units[r.Unit]; !ok {
			return nil, fmt.Errorf("columnar: gather: unit %d not decoded", r.Unit)
		}
		if _, ok := idx[r.Unit]; !ok {
			order = append(order, r.Unit)
		}
		idx[r.Unit] = append(idx[r.Unit], r.Row)
	}
	// perm[j]: where row j lands in the per-unit concatenation.
	start := map[int32]int32{}
	n := int32(0)
	for _, u := range order {
		start[u] = n
		n += int32(len(idx[u]))
	}
	perm := make([]int32, len(rows))
	identity := true
	next := map[int32]int32{}
	for j, r := range rows {
		perm[j] = start[r.Unit] + next[r.Unit]
		next[r.Unit]++
		identity = identity && perm[j] == int32(j)
	}
	cols := make([]arrow.Array, s.NumFields())
	release := func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}
	for i := range cols {
		parts := make([]arrow.Array, 0, len(order))
		for _, u := range order {
			p, err := take(ctx, mem, units[u].Column(i), idx[u])
			if err != nil {
				releaseAll(parts)
				release()
				return nil, fmt.Errorf("columnar: column %q: %w", s.Field(i).Name, err)
			}
			parts = append(parts, p)
		}
		col, err := joinInOrder(ctx, mem, s.Field(i).Type, parts, perm, identity)
		releaseAll(parts)
		if err != nil {
			release()
			return nil, fmt.Errorf("columnar: column %q: %w", s.Field(i).Name, err)
		}
		cols[i] = col
	}
	out := array.NewRecordBatch(s, cols, int64(len(rows)))
	release()
	return out, nil
}

// take returns the given rows of a.
func take(ctx context.Context, mem memory.Allocator, a arrow.Array, rows []int32) (arrow.Array, error) {
	b := array.NewInt32Builder(mem)
	defer b.Release()
	b.AppendValues(rows, nil)
	ix := b.NewArray()
	defer ix.Release()
	return compute.TakeArray(compute.WithAllocator(ctx, mem), a, ix)
}

// joinInOrder concatenates parts and puts the result in perm's order.
func joinInOrder(ctx context.Context, mem memory.Allocator, t arrow.DataType, parts []arrow.Array, perm []int32, identity bool) (arrow.Array, error) {
	var all arrow.Array
	switch len(parts) {
	case 0:
		return array.MakeArrayOfNull(mem, t, 0), nil
	case 1:
		all = parts[0]
		all.Retain()
	default:
		var err error
		if all, err = array.Concatenate(parts, mem); err != nil {
			return nil, err
		}
	}
	if identity {
		return all, nil
	}
	defer all.Release()
	return take(ctx, mem, all, perm)
}

func releaseAll(as []arrow.Array) {
	for _, a := range as {
		a.Release()
	}
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
