package columnar

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/metadata"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/stoker-data/stoker/shuffle"
)

// tailRead is how many bytes at the end of a file the first ranged read
// takes: the whole footer of most files, so indexing is one request.
const tailRead = 64 << 10

// decodeBatch is the most rows decoded at once: a row count from the
// footer is not trusted to size an allocation.
const decodeBatch = 64 << 10

// maxFooter bounds a footer's size; a larger length field is corrupt.
const maxFooter = 256 << 20

var (
	parquetMagic   = []byte("PAR1")
	parquetMagicEn = []byte("PARE")
)

// readTail reads the last n bytes of an object of the given size.
func readTail(ctx context.Context, r RangeReader, size, n int64) ([]byte, error) {
	n = min(n, size)
	tail := make([]byte, n)
	if err := r.ReadAt(ctx, tail, size-n); err != nil {
		return nil, err
	}
	return tail, nil
}

// footerBytes returns the flen bytes before the last trailer bytes of an
// object, from tail if it holds them, else with one more ranged read.
func footerBytes(ctx context.Context, r RangeReader, tail []byte, size, flen, trailer int64) ([]byte, error) {
	start := size - trailer - flen
	if flen+trailer <= int64(len(tail)) {
		t := int64(len(tail))
		return tail[t-trailer-flen : t-trailer], nil
	}
	b := make([]byte, flen)
	if err := r.ReadAt(ctx, b, start); err != nil {
		return nil, err
	}
	return b, nil
}

// IndexParquet reads a Parquet file's footer with ranged reads (one of up
// to 64 KiB, a second only for a larger footer) and lists its row groups.
func IndexParquet(ctx context.Context, r RangeReader, size int64) (*Index, error) {
	const f = shuffle.FormatParquet
	if size < 12 {
		return nil, corrupt(f, "%d bytes is too small for a Parquet file", size)
	}
	tail, err := readTail(ctx, r, size, tailRead)
	if err != nil {
		return nil, err
	}
	magic := tail[len(tail)-4:]
	if bytes.Equal(magic, parquetMagicEn) {
		return nil, corrupt(f, "encrypted footers are not supported")
	}
	if !bytes.Equal(magic, parquetMagic) {
		return nil, corrupt(f, "no Parquet magic PAR1 at the end: not a Parquet file, or truncated (ends in %q)", magic)
	}
	flen := int64(binary.LittleEndian.Uint32(tail[len(tail)-8:]))
	if flen == 0 || flen > size-12 || flen > maxFooter {
		return nil, corrupt(f, "footer length %d does not fit a %d-byte file", flen, size)
	}
	footer, err := footerBytes(ctx, r, tail, size, flen, 8)
	if err != nil {
		return nil, err
	}
	return indexParquetFooter(footer, size)
}

// indexParquetFooter lists the row groups of a footer read from the end
// of a file of the given size.
func indexParquetFooter(footer []byte, size int64) (*Index, error) {
	const f = shuffle.FormatParquet
	footerStart := size - 8 - int64(len(footer))
	md, err := parseFooter(footer, footerStart)
	if err != nil {
		return nil, err
	}
	s, err := parquetSchema(md)
	if err != nil {
		return nil, err
	}
	sb, err := SchemaBytes(s)
	if err != nil {
		return nil, corrupt(f, "schema: %v", err)
	}
	ix := &Index{Format: f, Size: size, Schema: sb, Meta: []Segment{{Offset: footerStart, Data: footer}}}
	pad := int64(0)
	if md.WriterVersion().LessThan(metadata.Parquet816FixedVersion) {
		pad = 100 // the reader pads old parquet-mr chunks (PARQUET-816)
	}
	for i := range md.NumRowGroups() {
		rg := md.RowGroup(i)
		if rg.NumRows() < 0 || rg.NumRows() > math.MaxInt32 {
			return nil, corrupt(f, "row group %d has %d rows", i, rg.NumRows())
		}
		if rg.NumRows() == 0 {
			continue
		}
		lo, hi := int64(-1), int64(-1)
		for j := range rg.NumColumns() {
			cc, err := rg.ColumnChunk(j)
			if err != nil {
				return nil, corrupt(f, "row group %d column %d: %v", i, j, err)
			}
			start := cc.DataPageOffset()
			if cc.HasDictionaryPage() && cc.DictionaryPageOffset() > 0 && start > cc.DictionaryPageOffset() {
				start = cc.DictionaryPageOffset()
			}
			if cc.NumValues() < rg.NumRows() {
				return nil, corrupt(f, "row group %d column %d: %d values for %d rows", i, j, cc.NumValues(), rg.NumRows())
			}
			end := start + cc.TotalCompressedSize()
			if start < 4 || cc.TotalCompressedSize() < 0 || end > footerStart {
				return nil, corrupt(f, "row group %d column %d: chunk [%d, %d) is outside the data [4, %d)", i, j, start, end, footerStart)
			}
			if lo < 0 || start < lo {
				lo = start
			}
			hi = max(hi, min(end+pad, footerStart))
		}
		if lo < 0 {
			return nil, corrupt(f, "row group %d has rows but no columns", i)
		}
		ix.Units = append(ix.Units, Unit{Part: i, Offset: lo, Length: hi - lo, Rows: rg.NumRows()})
	}
	return ix, nil
}

// parseFooter decodes a Parquet footer that starts at footerStart.
func parseFooter(footer []byte, footerStart int64) (md *metadata.FileMetaData, err error) {
	defer recoverTo(&err, shuffle.FormatParquet, "footer")
	md, err = metadata.NewFileMetaData(footer, nil)
	if err != nil {
		return nil, corrupt(shuffle.FormatParquet, "footer: %v", err)
	}
	md.SetSourceFileSize(footerStart)
	return md, nil
}

// parquetSchema is the Arrow schema pyarrow would read (the stored
// ARROW:schema when present).
func parquetSchema(md *metadata.FileMetaData) (s *arrow.Schema, err error) {
	defer recoverTo(&err, shuffle.FormatParquet, "schema")
	// The stored Arrow schema is an IPC schema message: check it before
	// arrow decodes it (see checkSchema).
	if v := md.KeyValueMetadata().FindValue("ARROW:schema"); v != nil {
		b, derr := base64.StdEncoding.DecodeString(*v)
		if derr != nil {
			b, derr = base64.RawStdEncoding.DecodeString(*v)
		}
		if derr == nil {
			if _, _, _, _, perr := parseEncapsulated(b); perr != nil {
				return nil, corrupt(shuffle.FormatParquet, "stored ARROW:schema: %v", perr)
			}
			if cerr := checkMessageSchema(b); cerr != nil {
				return nil, corrupt(shuffle.FormatParquet, "stored ARROW:schema: %v", cerr)
			}
		}
	}
	s, err = pqarrow.FromParquet(md.Schema, &pqarrow.ArrowReadProperties{}, md.KeyValueMetadata())
	if err != nil {
		return nil, corrupt(shuffle.FormatParquet, "schema: %v", err)
	}
	return s, nil
}

// decodeParquet reads row group u.Part from its bytes, only the leaf
// columns under the requested top-level columns.
func (ix *Index) decodeParquet(ctx context.Context, u Unit, data []byte, columns []string) (rec arrow.RecordBatch, err error) {
	defer recoverTo(&err, shuffle.FormatParquet, fmt.Sprintf("row group %d", u.Part))
	src := &segments{size: ix.Size, segs: []Segment{{Offset: u.Offset, Data: data}}}
	mem := allocFor(len(data))
	pf, err := file.NewParquetReader(src, file.WithMetadata(ix.pq), file.WithReadProps(parquet.NewReaderProperties(mem)))
	if err != nil {
		return nil, corrupt(shuffle.FormatParquet, "row group %d: %v", u.Part, err)
	}
	defer pf.Close()
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: min(max(u.Rows, 1), decodeBatch)}, mem)
	if err != nil {
		return nil, corrupt(shuffle.FormatParquet, "row group %d: %v", u.Part, err)
	}
	var leaves []int
	if len(columns) > 0 {
		want := map[string]bool{}
		for _, c := range columns {
			want[c] = true
		}
		for i := range ix.pq.Schema.NumColumns() {
			if p := ix.pq.Schema.Column(i).ColumnPath(); len(p) > 0 && want[p[0]] {
				leaves = append(leaves, i)
			}
		}
	}
	rr, err := fr.GetRecordReader(ctx, leaves, []int{u.Part})
	if err != nil {
		return nil, corrupt(shuffle.FormatParquet, "row group %d: %v", u.Part, err)
	}
	defer rr.Release()
	var recs []arrow.RecordBatch
	defer func() {
		for _, r := range recs {
			r.Release()
		}
	}()
	for rr.Next() {
		r := rr.RecordBatch()
		r.Retain()
		recs = append(recs, r)
	}
	if err := rr.Err(); err != nil {
		return nil, corrupt(shuffle.FormatParquet, "row group %d: %v", u.Part, err)
	}
	return concatRecords(rr.Schema(), recs)
}

// concatRecords joins record batches of one schema into one.
func concatRecords(s *arrow.Schema, recs []arrow.RecordBatch) (arrow.RecordBatch, error) {
	if len(recs) == 1 {
		recs[0].Retain()
		return recs[0], nil
	}
	cols := make([]arrow.Array, s.NumFields())
	rows := int64(0)
	for _, r := range recs {
		rows += r.NumRows()
	}
	for i := range cols {
		parts := make([]arrow.Array, len(recs))
		for j, r := range recs {
			parts[j] = r.Column(i)
		}
		if len(parts) == 0 {
			cols[i] = array.MakeArrayOfNull(memory.DefaultAllocator, s.Field(i).Type, 0)
			continue
		}
		c, err := array.Concatenate(parts, memory.DefaultAllocator)
		if err != nil {
			for _, a := range cols[:i] {
				a.Release()
			}
			return nil, err
		}
		cols[i] = c
	}
	out := array.NewRecordBatch(s, cols, rows)
	for _, c := range cols {
		c.Release()
	}
	return out, nil
}
