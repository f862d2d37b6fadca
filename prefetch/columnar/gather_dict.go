package columnar

import (
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// copyDictionary copies the indices of l's dictionary-encoded values and
// returns them with the dictionary they index: the sources' own when they
// all have equal ones, else their union, in the order array.Concatenate
// makes it (sources in order, each one's new values in its order), with
// the indices moved to it and null slots' indices zero. valid is the
// output's validity bitmap (nil: no nulls).
func copyDictionary(mem memory.Allocator, t *arrow.DictionaryType, l level, valid *memory.Buffer) (*memory.Buffer, arrow.ArrayData, error) {
	w := t.IndexType.(arrow.FixedWidthDataType).BitWidth() / 8
	dicts := make([]arrow.Array, len(l.srcs))
	defer func() {
		for _, d := range dicts {
			if d != nil {
				d.Release()
			}
		}
	}()
	same := true
	for k, s := range l.srcs {
		if s.Dictionary() == nil {
			return nil, nil, fmt.Errorf("dictionary-encoded array without a dictionary")
		}
		dicts[k] = array.MakeFromData(s.Dictionary())
		same = same && (s.Dictionary() == l.srcs[0].Dictionary() || array.Equal(dicts[0], dicts[k]))
	}
	idx, err := copyFixed(mem, l, w)
	if err != nil {
		return nil, nil, err
	}
	if same {
		if len(dicts) == 0 { // no rows: an empty dictionary
			d := array.MakeArrayOfNull(mem, t.ValueType, 0)
			defer d.Release()
			d.Data().Retain()
			return idx, d.Data(), nil
		}
		dicts[0].Data().Retain()
		return idx, dicts[0].Data(), nil
	}
	u, err := array.NewDictionaryUnifier(mem, t.ValueType)
	if err != nil {
		idx.Release()
		return nil, nil, err
	}
	defer u.Release()
	maps := make([][]int32, len(dicts))
	for k, d := range dicts {
		m, err := u.UnifyAndTranspose(d)
		if err != nil {
			idx.Release()
			return nil, nil, err
		}
		defer m.Release()
		maps[k] = arrow.Int32Traits.CastFromBytes(m.Bytes())
	}
	unified, err := u.GetResultWithIndexType(t.IndexType)
	if err != nil {
		idx.Release()
		return nil, nil, err
	}
	defer unified.Release()
	var vb []byte
	if valid != nil {
		vb = valid.Bytes()
	}
	switch t.IndexType.ID() {
	case arrow.INT8:
		err = transpose[int8](idx.Bytes(), vb, l.spans, maps)
	case arrow.UINT8:
		err = transpose[uint8](idx.Bytes(), vb, l.spans, maps)
	case arrow.INT16:
		err = transpose[int16](idx.Bytes(), vb, l.spans, maps)
	case arrow.UINT16:
		err = transpose[uint16](idx.Bytes(), vb, l.spans, maps)
	case arrow.INT32:
		err = transpose[int32](idx.Bytes(), vb, l.spans, maps)
	case arrow.UINT32:
		err = transpose[uint32](idx.Bytes(), vb, l.spans, maps)
	case arrow.INT64:
		err = transpose[int64](idx.Bytes(), vb, l.spans, maps)
	case arrow.UINT64:
		err = transpose[uint64](idx.Bytes(), vb, l.spans, maps)
	default:
		err = errNoCopy
	}
	if err != nil {
		idx.Release()
		return nil, nil, err
	}
	unified.Data().Retain()
	return idx, unified.Data(), nil
}

// transpose maps each valid index in b (copied from l's spans, in order)
// through its source's map, and sets null slots' indices to zero.
func transpose[T int8 | uint8 | int16 | uint16 | int32 | uint32 | int64 | uint64](b, valid []byte, spans []span, maps [][]int32) error {
	idx := asSlice[T](b)
	pos := 0
	for _, sp := range spans {
		m := maps[sp.src]
		for i := pos; i < pos+sp.n; i++ {
			if valid != nil && !bitutil.BitIsSet(valid, i) {
				idx[i] = 0
				continue
			}
			v := int64(idx[i])
			if v < 0 || v >= int64(len(m)) {
				return fmt.Errorf("dictionary index %d outside a dictionary of %d", v, len(m))
			}
			idx[i] = T(m[v])
		}
		pos += sp.n
	}
	return nil
}
