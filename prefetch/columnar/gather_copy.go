package columnar

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/bitutil"
	"github.com/apache/arrow-go/v18/arrow/memory"
)

// The copy path of Gather: each output array is built in one pass straight
// from the units' buffers, with no index arrays and no intermediate
// arrays. Rows are described as spans (runs of consecutive values of one
// source); a list's or struct's children are gathered the same way from
// the spans their parents' offsets name.

// errNoCopy says the copy path does not handle a type (or a case, such as
// units with different dictionaries); the caller takes the take path.
var errNoCopy = errors.New("no copy path")

// span is n consecutive values of source src, from its logical index off
// (the source's own offset not added).
type span struct {
	src int32
	off int
	n   int
}

// level is what one output array is copied from: a source per unit (all of
// one type) and the spans, in output order, n values in all.
type level struct {
	srcs  []arrow.ArrayData
	spans []span
	n     int
}

// child returns the level of child c of l's struct sources: same spans,
// shifted by each source's offset.
func (l level) child(c int) (level, error) {
	out := level{srcs: make([]arrow.ArrayData, len(l.srcs)), spans: make([]span, len(l.spans)), n: l.n}
	for k, s := range l.srcs {
		if len(s.Children()) <= c || s.Children()[c].Len() < s.Offset()+s.Len() {
			return level{}, fmt.Errorf("struct child %d shorter than its parent", c)
		}
		out.srcs[k] = s.Children()[c]
	}
	for i, sp := range l.spans {
		out.spans[i] = span{sp.src, l.srcs[sp.src].Offset() + sp.off, sp.n}
	}
	return out, nil
}

// copyArray builds the array of type t that holds l's values in order.
// It returns errNoCopy for a type it does not handle.
func copyArray(mem memory.Allocator, t arrow.DataType, l level) (arrow.ArrayData, error) {
	if t.ID() == arrow.NULL {
		return array.NewData(t, l.n, []*memory.Buffer{nil}, nil, l.n, 0), nil
	}
	var (
		bufs     = []*memory.Buffer{nil}
		children []arrow.ArrayData
		dict     arrow.ArrayData
		nulls    int
		err      error
	)
	defer func() {
		for _, b := range bufs {
			if b != nil {
				b.Release()
			}
		}
		for _, c := range children {
			c.Release()
		}
		if dict != nil {
			dict.Release()
		}
	}()
	if bufs[0], nulls, err = copyValidity(mem, l); err != nil {
		return nil, err
	}
	switch t.ID() {
	case arrow.BOOL:
		var b *memory.Buffer
		b, err = copyBits(mem, l, 1)
		bufs = append(bufs, b)
	case arrow.INT8, arrow.UINT8, arrow.INT16, arrow.UINT16, arrow.INT32, arrow.UINT32, arrow.INT64, arrow.UINT64,
		arrow.FLOAT16, arrow.FLOAT32, arrow.FLOAT64, arrow.DATE32, arrow.DATE64, arrow.TIME32, arrow.TIME64,
		arrow.TIMESTAMP, arrow.DURATION, arrow.INTERVAL_MONTHS, arrow.INTERVAL_DAY_TIME, arrow.INTERVAL_MONTH_DAY_NANO,
		arrow.DECIMAL32, arrow.DECIMAL64, arrow.DECIMAL128, arrow.DECIMAL256, arrow.FIXED_SIZE_BINARY:
		var b *memory.Buffer
		b, err = copyFixed(mem, l, t.(arrow.FixedWidthDataType).BitWidth()/8)
		bufs = append(bufs, b)
	case arrow.DICTIONARY:
		var b *memory.Buffer
		b, dict, err = copyDictionary(mem, t.(*arrow.DictionaryType), l, bufs[0])
		bufs = append(bufs, b)
	case arrow.STRING, arrow.BINARY:
		var o, d *memory.Buffer
		o, d, err = copyBinary[int32](mem, l)
		bufs = append(bufs, o, d)
	case arrow.LARGE_STRING, arrow.LARGE_BINARY:
		var o, d *memory.Buffer
		o, d, err = copyBinary[int64](mem, l)
		bufs = append(bufs, o, d)
	case arrow.LIST, arrow.MAP:
		var o *memory.Buffer
		var c arrow.ArrayData
		o, c, err = copyList[int32](mem, t.(arrow.ListLikeType).Elem(), l)
		bufs = append(bufs, o)
		if c != nil {
			children = append(children, c)
		}
	case arrow.LARGE_LIST:
		var o *memory.Buffer
		var c arrow.ArrayData
		o, c, err = copyList[int64](mem, t.(arrow.ListLikeType).Elem(), l)
		bufs = append(bufs, o)
		if c != nil {
			children = append(children, c)
		}
	case arrow.FIXED_SIZE_LIST:
		ft := t.(*arrow.FixedSizeListType)
		var c arrow.ArrayData
		c, err = copyFixedSizeList(mem, ft.Elem(), int(ft.Len()), l)
		if c != nil {
			children = append(children, c)
		}
	case arrow.STRUCT:
		st := t.(*arrow.StructType)
		for i, f := range st.Fields() {
			var cl level
			if cl, err = l.child(i); err != nil {
				break
			}
			var c arrow.ArrayData
			if c, err = copyArray(mem, f.Type, cl); err != nil {
				break
			}
			children = append(children, c)
		}
	default: // views, unions, run-end encoded, extensions
		return nil, errNoCopy
	}
	if err != nil {
		return nil, err
	}
	out := array.NewData(t, l.n, bufs, children, nulls, 0)
	if dict != nil {
		out.SetDictionary(dict)
	}
	return out, nil
}

func newBuffer(mem memory.Allocator, n int) *memory.Buffer {
	b := memory.NewResizableBuffer(mem)
	b.Resize(n)
	return b
}

// copyValidity returns the validity bitmap of l's values and the null
// count; no bitmap when no source has nulls.
func copyValidity(mem memory.Allocator, l level) (*memory.Buffer, int, error) {
	has := false
	for _, s := range l.srcs {
		if s.Buffers()[0] != nil && s.NullN() != 0 {
			has = true
			break
		}
	}
	if !has || l.n == 0 {
		return nil, 0, nil
	}
	b, err := copyBits(mem, l, 0)
	if err != nil {
		return nil, 0, err
	}
	return b, l.n - bitutil.CountSetBits(b.Bytes(), 0, l.n), nil
}

// copyBits copies bitmap buffer i (validity or boolean values) of l's
// spans; a source without that buffer counts as all set.
func copyBits(mem memory.Allocator, l level, i int) (*memory.Buffer, error) {
	out := newBuffer(mem, int(bitutil.BytesForBits(int64(l.n))))
	dst := out.Bytes()
	src := make([][]byte, len(l.srcs))
	off := make([]int, len(l.srcs))
	for k, s := range l.srcs {
		off[k] = s.Offset()
		b := s.Buffers()[i]
		if s.Len() == 0 || i == 0 && (b == nil || s.NullN() == 0) {
			continue // no nulls: all set
		}
		if b == nil || b.Len()*8 < s.Offset()+s.Len() {
			out.Release()
			return nil, fmt.Errorf("bitmap too short for %d values", s.Offset()+s.Len())
		}
		src[k] = b.Bytes()
	}
	pos := 0
	for _, sp := range l.spans {
		s := src[sp.src]
		switch {
		case s == nil:
			bitutil.SetBitsTo(dst, int64(pos), int64(sp.n), true)
		case sp.n == 1:
			bitutil.SetBitTo(dst, pos, bitutil.BitIsSet(s, off[sp.src]+sp.off))
		default:
			bitutil.CopyBitmap(s, off[sp.src]+sp.off, sp.n, dst, pos)
		}
		pos += sp.n
	}
	return out, nil
}

// copyFixed copies the values of w bytes each (buffer 1) of l's spans.
func copyFixed(mem memory.Allocator, l level, w int) (*memory.Buffer, error) {
	out := newBuffer(mem, l.n*w)
	src := make([][]byte, len(l.srcs))
	for k, s := range l.srcs {
		if s.Len() == 0 {
			continue
		}
		b := s.Buffers()[1]
		if b == nil || b.Len() < (s.Offset()+s.Len())*w {
			out.Release()
			return nil, fmt.Errorf("values buffer too short for %d values of %d bytes", s.Offset()+s.Len(), w)
		}
		src[k] = b.Bytes()[s.Offset()*w : (s.Offset()+s.Len())*w]
	}
	switch w {
	case 1:
		copyValues[uint8](out.Bytes(), src, l.spans)
	case 2:
		copyValues[uint16](out.Bytes(), src, l.spans)
	case 4:
		copyValues[uint32](out.Bytes(), src, l.spans)
	case 8:
		copyValues[uint64](out.Bytes(), src, l.spans)
	case 16:
		copyValues[[2]uint64](out.Bytes(), src, l.spans)
	default:
		dst, pos := out.Bytes(), 0
		for _, sp := range l.spans {
			pos += copy(dst[pos:], src[sp.src][sp.off*w:(sp.off+sp.n)*w])
		}
	}
	return out, nil
}

// copyValues copies l's spans of values of type T from the sources'
// bytes (each starting at its first value) to dst.
func copyValues[T any](dst []byte, srcs [][]byte, spans []span) {
	d := asSlice[T](dst)
	s := make([][]T, len(srcs))
	for k, b := range srcs {
		s[k] = asSlice[T](b)
	}
	pos := 0
	for _, sp := range spans {
		if sp.n == 1 {
			d[pos] = s[sp.src][sp.off]
			pos++
			continue
		}
		pos += copy(d[pos:pos+sp.n], s[sp.src][sp.off:sp.off+sp.n])
	}
}

// asSlice views b as a slice of T. Arrow buffers are aligned to 8 bytes
// at least, so any T here (at most 8-byte words) is aligned.
func asSlice[T any](b []byte) []T {
	var z T
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), len(b)/int(unsafe.Sizeof(z)))
}

// offsetsOf returns the offsets (buffer 1) of a binary or list source,
// Len()+1 of them from its offset; nil for an empty source.
func offsetsOf[O int32 | int64](s arrow.ArrayData) ([]O, error) {
	if s.Len() == 0 {
		return nil, nil
	}
	b := s.Buffers()[1]
	size := int(unsafe.Sizeof(O(0)))
	if b == nil || b.Len() < (s.Offset()+s.Len()+1)*size {
		return nil, fmt.Errorf("offsets buffer too short for %d values", s.Offset()+s.Len())
	}
	return asSlice[O](b.Bytes())[s.Offset() : s.Offset()+s.Len()+1], nil
}

// copyOffsets writes the output offsets of l's spans, each run of values
// rebased to follow the previous, and returns them with each span's
// [start, end) in its source's offsets (where its values are), or
// errNoCopy when the total overflows O. limit(k) is what source k's
// offsets must stay within.
func copyOffsets[O int32 | int64](mem memory.Allocator, l level, limit func(k int) int) (*memory.Buffer, [][]O, error) {
	offs := make([][]O, len(l.srcs))
	for k, s := range l.srcs {
		o, err := offsetsOf[O](s)
		if err != nil {
			return nil, nil, err
		}
		offs[k] = o
	}
	maxO := int64(math.MaxInt32)
	if unsafe.Sizeof(O(0)) == 8 {
		maxO = math.MaxInt64
	}
	total := int64(0)
	for _, sp := range l.spans {
		o := offs[sp.src]
		a, b := o[sp.off], o[sp.off+sp.n]
		if a < 0 || b < a || int64(b) > int64(limit(int(sp.src))) {
			return nil, nil, fmt.Errorf("offsets [%d, %d) outside [0, %d)", a, b, limit(int(sp.src)))
		}
		total += int64(b - a)
		if total > maxO {
			return nil, nil, errNoCopy
		}
	}
	out := newBuffer(mem, (l.n+1)*int(unsafe.Sizeof(O(0))))
	dst := asSlice[O](out.Bytes())
	pos, cur := 0, O(0)
	for _, sp := range l.spans {
		o := offs[sp.src][sp.off : sp.off+sp.n+1]
		a := o[0]
		if sp.n == 1 {
			dst[pos] = cur
			cur += o[1] - a
			pos++
			continue
		}
		for _, v := range o[:sp.n] {
			dst[pos] = v - a + cur
			pos++
		}
		cur += o[sp.n] - a
	}
	dst[pos] = cur
	return out, offs, nil
}

// copyBinary copies l's binary or string values: offsets, then the bytes.
func copyBinary[O int32 | int64](mem memory.Allocator, l level) (*memory.Buffer, *memory.Buffer, error) {
	data := make([][]byte, len(l.srcs))
	for k, s := range l.srcs {
		if b := s.Buffers()[2]; b != nil {
			data[k] = b.Bytes()
		}
	}
	obuf, offs, err := copyOffsets[O](mem, l, func(k int) int { return len(data[k]) })
	if err != nil {
		return nil, nil, err
	}
	dst := asSlice[O](obuf.Bytes())
	dbuf := newBuffer(mem, int(dst[l.n]))
	d, pos := dbuf.Bytes(), 0
	for _, sp := range l.spans {
		o := offs[sp.src]
		pos += copy(d[pos:], data[sp.src][o[sp.off]:o[sp.off+sp.n]])
	}
	return obuf, dbuf, nil
}

// copyList copies l's lists: offsets, then the child values they name.
func copyList[O int32 | int64](mem memory.Allocator, elem arrow.DataType, l level) (*memory.Buffer, arrow.ArrayData, error) {
	cl := level{srcs: make([]arrow.ArrayData, len(l.srcs))}
	for k, s := range l.srcs {
		if len(s.Children()) != 1 {
			return nil, nil, fmt.Errorf("list with %d children", len(s.Children()))
		}
		cl.srcs[k] = s.Children()[0]
	}
	obuf, offs, err := copyOffsets[O](mem, l, func(k int) int { return cl.srcs[k].Len() })
	if err != nil {
		return nil, nil, err
	}
	cl.spans = make([]span, 0, len(l.spans))
	for _, sp := range l.spans {
		o := offs[sp.src]
		a, b := int(o[sp.off]), int(o[sp.off+sp.n])
		if b > a {
			cl.spans = append(cl.spans, span{sp.src, a, b - a})
			cl.n += b - a
		}
	}
	c, err := copyArray(mem, elem, cl)
	if err != nil {
		obuf.Release()
		return nil, nil, err
	}
	return obuf, c, nil
}

// copyFixedSizeList copies the child values of l's lists of k values.
func copyFixedSizeList(mem memory.Allocator, elem arrow.DataType, k int, l level) (arrow.ArrayData, error) {
	cl := level{srcs: make([]arrow.ArrayData, len(l.srcs)), spans: make([]span, len(l.spans)), n: l.n * k}
	for j, s := range l.srcs {
		if len(s.Children()) != 1 || s.Children()[0].Len() < (s.Offset()+s.Len())*k {
			return nil, fmt.Errorf("fixed-size list child shorter than its parent")
		}
		cl.srcs[j] = s.Children()[0]
	}
	for i, sp := range l.spans {
		cl.spans[i] = span{sp.src, (l.srcs[sp.src].Offset() + sp.off) * k, sp.n * k}
	}
	return copyArray(mem, elem, cl)
}
