package columnar

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"

	"github.com/stoker-data/stoker/shuffle"
)

// IndexArrowStream indexes an Arrow IPC stream (no footer) from its bytes,
// read in one sequential pass: every record batch message is a unit; the
// schema and dictionary messages before the first batch are kept, since
// every unit needs them to decode.
func IndexArrowStream(data []byte) (*Index, error) {
	const f = shuffle.FormatArrowStream
	if bytes.HasPrefix(data, arrowMagic) {
		return nil, corrupt(f, "starts with ARROW1: an Arrow IPC file, not a stream (name it .arrow, or pass format \"arrow\")")
	}
	ix := &Index{Format: f, Size: int64(len(data))}
	off, prefixEnd, part := 0, 0, 0
	sawSchema := false
	for off < len(data) {
		typ, body, rows, head, err := parseEncapsulated(data[off:])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, corrupt(f, "message at %d: %v", off, err)
		}
		end := int64(off) + int64(head) + body
		if end > int64(len(data)) {
			return nil, corrupt(f, "message at %d: body of %d bytes runs past the end (%d bytes): truncated", off, body, len(data))
		}
		switch {
		case !sawSchema && typ != msgSchema:
			return nil, corrupt(f, "message at %d is of type %d, want a schema first: not an Arrow IPC stream", off, typ)
		case typ == msgSchema && sawSchema:
			return nil, corrupt(f, "second schema message at %d", off)
		case typ == msgSchema:
			if err := checkMessageSchema(data[off : off+head]); err != nil {
				return nil, err
			}
			sawSchema = true
			prefixEnd = int(end)
		case typ == msgDictionary && part > 0:
			return nil, corrupt(f, "dictionary message at %d after record batches: dictionary deltas and replacements are not supported", off)
		case typ == msgDictionary:
			prefixEnd = int(end)
		case typ == msgRecords:
			if rows > 0 {
				ix.Units = append(ix.Units, Unit{Part: part, Offset: int64(off), Length: end - int64(off), Rows: rows})
			}
			part++
		default:
			return nil, corrupt(f, "message at %d has unsupported type %d", off, typ)
		}
		off = int(end)
	}
	if !sawSchema {
		return nil, corrupt(f, "no schema message: not an Arrow IPC stream")
	}
	ix.Meta = []Segment{{Offset: 0, Data: bytes.Clone(data[:prefixEnd])}}
	r, err := ix.streamReader(nil)
	if err != nil {
		return nil, err
	}
	defer r.Release()
	if ix.Schema, err = SchemaBytes(r.Schema()); err != nil {
		return nil, corrupt(f, "schema: %v", err)
	}
	return ix, nil
}

// streamReader opens arrow's stream reader over the schema and dictionary
// messages, then unit (if any), then the end-of-stream marker.
func (ix *Index) streamReader(unit []byte) (r *ipc.Reader, err error) {
	defer recoverTo(&err, shuffle.FormatArrowStream, "schema")
	if len(ix.Meta) != 1 {
		return nil, corrupt(shuffle.FormatArrowStream, "stored index has %d prefix segments, want 1", len(ix.Meta))
	}
	r, err = ipc.NewReader(io.MultiReader(bytes.NewReader(ix.Meta[0].Data), bytes.NewReader(unit), bytes.NewReader(eos)),
		ipc.WithAllocator(allocFor(len(ix.Meta[0].Data)+len(unit))))
	if err != nil {
		return nil, corrupt(shuffle.FormatArrowStream, "schema: %v", err)
	}
	return r, nil
}

func (ix *Index) decodeArrowStream(u Unit, data []byte) (rec arrow.RecordBatch, err error) {
	defer recoverTo(&err, shuffle.FormatArrowStream, fmt.Sprintf("record batch %d", u.Part))
	r, err := ix.streamReader(data)
	if err != nil {
		return nil, err
	}
	defer r.Release()
	if !r.Next() {
		if r.Err() != nil {
			return nil, corrupt(shuffle.FormatArrowStream, "record batch %d: %v", u.Part, r.Err())
		}
		return nil, corrupt(shuffle.FormatArrowStream, "record batch %d: no batch in its bytes", u.Part)
	}
	rec = r.RecordBatch()
	rec.Retain()
	return rec, nil
}
