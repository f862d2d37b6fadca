package columnar

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	flatbuffers "github.com/google/flatbuffers/go"
	"golang.org/x/sync/errgroup"

	"github.com/stoker-data/stoker/shuffle"
)

var (
	arrowMagic = []byte("ARROW1")
	eos        = []byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0}
)

// Message header types (the MessageHeader union of Message.fbs).
const (
	msgSchema     = 1
	msgDictionary = 2
	msgRecords    = 3
)

// block is an entry of an Arrow file footer: where one message is.
type block struct {
	offset int64
	meta   int32
	body   int64
}

// headerParallel bounds the record batch headers read at once.
const headerParallel = 8

// IndexArrowFile reads an Arrow IPC file's footer with ranged reads, then
// the message header of every record batch (a few hundred bytes each, 8
// at a time) for its row count, and the dictionary blocks if any.
func IndexArrowFile(ctx context.Context, r RangeReader, size int64) (*Index, error) {
	const f = shuffle.FormatArrow
	if size < 8+10 {
		return nil, corrupt(f, "%d bytes is too small for an Arrow IPC file", size)
	}
	tail, err := readTail(ctx, r, size, tailRead)
	if err != nil {
		return nil, err
	}
	if !bytes.HasSuffix(tail, arrowMagic) {
		return nil, corrupt(f, "no Arrow magic ARROW1 at the end: not an Arrow IPC file (a stream is .arrows), or truncated")
	}
	flen := int64(int32(binary.LittleEndian.Uint32(tail[len(tail)-10:])))
	if flen <= 0 || flen > size-18 || flen > maxFooter {
		return nil, corrupt(f, "footer length %d does not fit a %d-byte file", flen, size)
	}
	footer, err := footerBytes(ctx, r, tail, size, flen, 10)
	if err != nil {
		return nil, err
	}
	footerStart := size - 10 - flen
	dicts, batches, err := parseArrowFooter(footer, footerStart)
	if err != nil {
		return nil, err
	}
	ix := &Index{Format: f, Size: size}
	trailer := Segment{Offset: footerStart, Data: append(footer[:len(footer):len(footer)], tail[len(tail)-10:]...)}
	ix.Meta = append(ix.Meta, trailer)
	for _, d := range dicts {
		seg := Segment{Offset: d.offset, Data: make([]byte, int64(d.meta)+d.body)}
		if err := r.ReadAt(ctx, seg.Data, seg.Offset); err != nil {
			return nil, err
		}
		ix.Meta = append(ix.Meta, seg)
	}
	heads := make([][]byte, len(batches))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(headerParallel)
	for i, b := range batches {
		g.Go(func() error {
			heads[i] = make([]byte, b.meta)
			return r.ReadAt(gctx, heads[i], b.offset)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i, b := range batches {
		typ, body, rows, _, err := parseEncapsulated(heads[i])
		if err != nil {
			return nil, corrupt(f, "record batch %d at %d: %v", i, b.offset, err)
		}
		if typ != msgRecords || body != b.body {
			return nil, corrupt(f, "record batch %d at %d: message type %d, body %d bytes; the footer says a record batch of %d", i, b.offset, typ, body, b.body)
		}
		if rows > 0 {
			ix.Units = append(ix.Units, Unit{Part: i, Offset: b.offset, Length: int64(b.meta) + b.body, Rows: rows})
		}
	}
	// The schema, as arrow's own reader sees it, from the bytes held.
	if err := checkFooterSchema(footer); err != nil {
		return nil, err
	}
	fr, err := ix.fileReader(nil)
	if err != nil {
		return nil, err
	}
	defer fr.Close()
	if ix.Schema, err = SchemaBytes(fr.Schema()); err != nil {
		return nil, corrupt(f, "schema: %v", err)
	}
	return ix, nil
}

// fileReader opens arrow's file reader over the footer, the dictionaries
// and the given unit bytes.
func (ix *Index) fileReader(unit *Segment) (fr *ipc.FileReader, err error) {
	defer recoverTo(&err, shuffle.FormatArrow, "footer")
	segs := ix.Meta
	if unit != nil {
		segs = append(segs[:len(segs):len(segs)], *unit)
	}
	n := 0
	for _, g := range segs {
		n += len(g.Data)
	}
	fr, err = ipc.NewFileReader(&segments{size: ix.Size, segs: segs}, ipc.WithAllocator(allocFor(n)))
	if err != nil {
		return nil, corrupt(shuffle.FormatArrow, "%v", err)
	}
	return fr, nil
}

func (ix *Index) decodeArrowFile(u Unit, data []byte) (rec arrow.RecordBatch, err error) {
	defer recoverTo(&err, shuffle.FormatArrow, fmt.Sprintf("record batch %d", u.Part))
	fr, err := ix.fileReader(&Segment{Offset: u.Offset, Data: data})
	if err != nil {
		return nil, err
	}
	defer fr.Close()
	rec, err = fr.RecordBatchAt(u.Part)
	if err != nil {
		return nil, corrupt(shuffle.FormatArrow, "record batch %d: %v", u.Part, err)
	}
	return rec, nil
}

// parseArrowFooter lists the dictionary and record batch blocks of an
// Arrow file footer (Footer table of File.fbs).
func parseArrowFooter(b []byte, footerStart int64) (dicts, batches []block, err error) {
	defer recoverTo(&err, shuffle.FormatArrow, "footer")
	if len(b) < 8 {
		return nil, nil, corrupt(shuffle.FormatArrow, "footer of %d bytes", len(b))
	}
	t := flatbuffers.Table{Bytes: b, Pos: flatbuffers.GetUOffsetT(b)}
	read := func(slot flatbuffers.VOffsetT) ([]block, error) {
		n, start, err := vector(&t, slot, 24)
		if err != nil {
			return nil, corrupt(shuffle.FormatArrow, "footer block list: %v", err)
		}
		out := make([]block, n)
		for i := range out {
			p := b[int(start)+i*24:]
			out[i] = block{offset: int64(binary.LittleEndian.Uint64(p)), meta: int32(binary.LittleEndian.Uint32(p[8:])), body: int64(binary.LittleEndian.Uint64(p[16:]))}
			blk := out[i]
			if blk.offset < 8 || blk.meta < 8 || blk.body < 0 || blk.offset+int64(blk.meta) > footerStart || blk.body > footerStart-blk.offset-int64(blk.meta) {
				return nil, corrupt(shuffle.FormatArrow, "block %d (offset %d, metadata %d, body %d) is outside the data [8, %d)", i, blk.offset, blk.meta, blk.body, footerStart)
			}
		}
		return out, nil
	}
	if dicts, err = read(8); err != nil {
		return nil, nil, err
	}
	if batches, err = read(10); err != nil {
		return nil, nil, err
	}
	return dicts, batches, nil
}

// parseEncapsulated reads an encapsulated IPC message's prefix and
// flatbuffer header from b: its type, body length, row count (record
// batches) and the length of prefix plus header. b may hold more bytes.
func parseEncapsulated(b []byte) (typ byte, body, rows int64, headLen int, err error) {
	defer recoverTo(&err, shuffle.FormatArrowStream, "message header")
	if len(b) < 4 {
		return 0, 0, 0, 0, fmt.Errorf("%d bytes: no message length", len(b))
	}
	n, pre := int64(int32(binary.LittleEndian.Uint32(b))), 4
	if uint32(n) == 0xffffffff {
		if len(b) < 8 {
			return 0, 0, 0, 0, fmt.Errorf("%d bytes: no message length", len(b))
		}
		n, pre = int64(int32(binary.LittleEndian.Uint32(b[4:]))), 8
	}
	if n == 0 {
		return 0, 0, 0, pre, io.EOF
	}
	if n < 8 || n > int64(len(b)-pre) {
		return 0, 0, 0, 0, fmt.Errorf("message header of %d bytes does not fit in %d", n, len(b)-pre)
	}
	m := b[pre : pre+int(n)]
	t := flatbuffers.Table{Bytes: m, Pos: flatbuffers.GetUOffsetT(m)}
	typ = t.GetByteSlot(6, 0)
	body = t.GetInt64Slot(10, 0)
	if body < 0 || body%8 != 0 {
		return 0, 0, 0, 0, fmt.Errorf("message body length %d", body)
	}
	if typ == msgRecords {
		o := flatbuffers.UOffsetT(t.Offset(8))
		if o == 0 {
			return 0, 0, 0, 0, fmt.Errorf("record batch message without a header")
		}
		var h flatbuffers.Table
		t.Union(&h, o)
		rows = h.GetInt64Slot(4, 0)
		if rows < 0 || rows > math.MaxInt32 {
			return 0, 0, 0, 0, fmt.Errorf("record batch of %d rows", rows)
		}
	}
	return typ, body, rows, pre + int(n), nil
}

// checkFooterSchema checks the footer's schema before arrow decodes it.
func checkFooterSchema(b []byte) (err error) {
	defer recoverTo(&err, shuffle.FormatArrow, "footer")
	t := flatbuffers.Table{Bytes: b, Pos: flatbuffers.GetUOffsetT(b)}
	if err := checkSchema(&t, 6); err != nil {
		return corrupt(shuffle.FormatArrow, "footer schema: %v", err)
	}
	return nil
}

// checkMessageSchema checks an encapsulated schema message's header before
// arrow decodes it.
func checkMessageSchema(b []byte) (err error) {
	defer recoverTo(&err, shuffle.FormatArrowStream, "schema message")
	m := b[messagePrefix(b):]
	t := flatbuffers.Table{Bytes: m, Pos: flatbuffers.GetUOffsetT(m)}
	if err := checkSchema(&t, 8); err != nil {
		return corrupt(shuffle.FormatArrowStream, "schema message: %v", err)
	}
	return nil
}

// messagePrefix is the length of an encapsulated message's prefix: the
// continuation marker (if any) and the metadata length.
func messagePrefix(b []byte) int {
	if len(b) >= 4 && b[0] == 0xff && b[1] == 0xff && b[2] == 0xff && b[3] == 0xff {
		return 8
	}
	return 4
}
