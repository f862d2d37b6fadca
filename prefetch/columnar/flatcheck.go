package columnar

import (
	"fmt"

	flatbuffers "github.com/google/flatbuffers/go"
)

// Arrow's flatbuffer decoder allocates slices sized by vector lengths read
// from the file before looking at the elements, so a corrupt length in a
// schema asks for gigabytes. checkSchema walks a Schema table (Schema.fbs)
// and fails when a vector does not fit in its buffer or fields nest too
// deep, before the schema is handed to arrow.

const maxFieldDepth = 64

// vector returns the length and start of table t's vector at vtable slot,
// checking that n elements of elem bytes fit in the buffer.
func vector(t *flatbuffers.Table, slot flatbuffers.VOffsetT, elem int) (int, flatbuffers.UOffsetT, error) {
	o := flatbuffers.UOffsetT(t.Offset(slot))
	if o == 0 {
		return 0, 0, nil
	}
	n, start := t.VectorLen(o), t.Vector(o)
	if n < 0 || int(start) > len(t.Bytes) || n > (len(t.Bytes)-int(start))/elem {
		return 0, 0, fmt.Errorf("vector of %d entries at %d overruns the %d-byte header", n, start, len(t.Bytes))
	}
	return n, start, nil
}

// table returns the table an offset at pos points to.
func table(buf []byte, pos flatbuffers.UOffsetT) (*flatbuffers.Table, error) {
	if int(pos)+4 > len(buf) {
		return nil, fmt.Errorf("table offset at %d is outside the %d-byte header", pos, len(buf))
	}
	p := pos + flatbuffers.GetUOffsetT(buf[pos:])
	if int(p)+4 > len(buf) {
		return nil, fmt.Errorf("table at %d is outside the %d-byte header", p, len(buf))
	}
	return &flatbuffers.Table{Bytes: buf, Pos: p}, nil
}

// checkSchema checks the Schema table that the field at slot of t points
// to (a Footer's or a Message's).
func checkSchema(t *flatbuffers.Table, slot flatbuffers.VOffsetT) error {
	o := flatbuffers.UOffsetT(t.Offset(slot))
	if o == 0 {
		return fmt.Errorf("no schema")
	}
	s, err := table(t.Bytes, t.Pos+o)
	if err != nil {
		return err
	}
	if _, _, err := vector(s, 8, 4); err != nil { // custom_metadata
		return err
	}
	if _, _, err := vector(s, 10, 8); err != nil { // features
		return err
	}
	return checkFields(s, 6, 0) // fields
}

// checkFields checks the vector of Field tables at slot of t.
func checkFields(t *flatbuffers.Table, slot flatbuffers.VOffsetT, depth int) error {
	if depth > maxFieldDepth {
		return fmt.Errorf("fields nested deeper than %d", maxFieldDepth)
	}
	n, start, err := vector(t, slot, 4)
	if err != nil {
		return err
	}
	for i := range n {
		f, err := table(t.Bytes, start+flatbuffers.UOffsetT(4*i))
		if err != nil {
			return err
		}
		if _, _, err := vector(f, 16, 4); err != nil { // custom_metadata
			return err
		}
		if f.GetByteSlot(8, 0) == 14 { // a Union type: its typeIds
			if o := flatbuffers.UOffsetT(f.Offset(10)); o != 0 {
				u, err := table(f.Bytes, f.Pos+o)
				if err != nil {
					return err
				}
				if _, _, err := vector(u, 6, 4); err != nil {
					return err
				}
			}
		}
		if err := checkFields(f, 14, depth+1); err != nil { // children
			return err
		}
	}
	return nil
}
