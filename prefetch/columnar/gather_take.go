package columnar

import (
	"context"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/compute"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The take path of Gather, for the columns the copy path does not handle:
// per unit, one take of that unit's rows; then one take that puts them in
// order. It is the reference the copy path is tested against.

// takePlan is a batch's rows grouped by unit.
type takePlan struct {
	order    []int32           // units in order of first use
	idx      map[int32][]int32 // each unit's rows, in order of use
	perm     []int32           // perm[j]: where row j lands in the per-unit concatenation
	identity bool              // perm is the identity
}

func newTakePlan(rows []Row) *takePlan {
	p := &takePlan{idx: map[int32][]int32{}, identity: true}
	for _, r := range rows {
		if _, ok := p.idx[r.Unit]; !ok {
			p.order = append(p.order, r.Unit)
		}
		p.idx[r.Unit] = append(p.idx[r.Unit], r.Row)
	}
	start := map[int32]int32{}
	n := int32(0)
	for _, u := range p.order {
		start[u] = n
		n += int32(len(p.idx[u]))
	}
	p.perm = make([]int32, len(rows))
	next := map[int32]int32{}
	for j, r := range rows {
		p.perm[j] = start[r.Unit] + next[r.Unit]
		next[r.Unit]++
		p.identity = p.identity && p.perm[j] == int32(j)
	}
	return p
}

// column takes column i (of type t) of the plan's rows from units.
func (p *takePlan) column(ctx context.Context, mem memory.Allocator, t arrow.DataType, units map[int32]arrow.RecordBatch, i int) (arrow.Array, error) {
	parts := make([]arrow.Array, 0, len(p.order))
	defer releaseAll(parts)
	for _, u := range p.order {
		a, err := take(ctx, mem, units[u].Column(i), p.idx[u])
		if err != nil {
			return nil, err
		}
		parts = append(parts, a)
	}
	return joinInOrder(ctx, mem, t, parts, p.perm, p.identity)
}

// gatherTake is Gather with every column on the take path.
func gatherTake(ctx context.Context, s *arrow.Schema, units map[int32]arrow.RecordBatch, rows []Row) (arrow.RecordBatch, error) {
	for _, r := range rows {
		if _, ok := units[r.Unit]; !ok {
			return nil, fmt.Errorf("columnar: gather: unit %d not decoded", r.Unit)
		}
	}
	p := newTakePlan(rows)
	cols := make([]arrow.Array, s.NumFields())
	defer func() {
		for _, c := range cols {
			if c != nil {
				c.Release()
			}
		}
	}()
	for i := range cols {
		col, err := p.column(ctx, memory.DefaultAllocator, s.Field(i).Type, units, i)
		if err != nil {
			return nil, fmt.Errorf("columnar: column %q: %w", s.Field(i).Name, err)
		}
		cols[i] = col
	}
	return array.NewRecordBatch(s, cols, int64(len(rows))), nil
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
