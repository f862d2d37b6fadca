package columnar

import (
	"bytes"
	"fmt"
	"math/rand/v2"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// SyntheticSchema is the schema of Synthetic's rows: an id, a label, a
// nullable caption, a token list and a fixed-size embedding.
var SyntheticSchema = arrow.NewSchema([]arrow.Field{
	{Name: "id", Type: arrow.PrimitiveTypes.Int64},
	{Name: "label", Type: arrow.PrimitiveTypes.Int32},
	{Name: "caption", Type: arrow.BinaryTypes.String, Nullable: true},
	{Name: "tokens", Type: arrow.ListOf(arrow.PrimitiveTypes.Int32), Nullable: true},
	{Name: "embedding", Type: arrow.FixedSizeListOf(int32(EmbeddingDim), arrow.PrimitiveTypes.Float32)},
}, nil)

// EmbeddingDim is the length of Synthetic's embedding column.
const EmbeddingDim = 16

// Synthetic returns n rows with ids first, first+1, …, deterministic in
// seed, for tests, the demo and benchmarks.
func Synthetic(first int64, n int, seed uint64) arrow.RecordBatch {
	r := rand.New(rand.NewPCG(seed, uint64(first)))
	b := array.NewRecordBuilder(memory.DefaultAllocator, SyntheticSchema)
	defer b.Release()
	ids := b.Field(0).(*array.Int64Builder)
	labels := b.Field(1).(*array.Int32Builder)
	caps := b.Field(2).(*array.StringBuilder)
	toks := b.Field(3).(*array.ListBuilder)
	tokv := toks.ValueBuilder().(*array.Int32Builder)
	emb := b.Field(4).(*array.FixedSizeListBuilder)
	embv := emb.ValueBuilder().(*array.Float32Builder)
	for i := range int64(n) {
		id := first + i
		ids.Append(id)
		labels.Append(int32(r.IntN(1000)))
		if id%7 == 3 {
			caps.AppendNull()
		} else {
			caps.Append(fmt.Sprintf("caption %d %x", id, r.Uint32()))
		}
		if id%11 == 5 {
			toks.AppendNull()
		} else {
			toks.Append(true)
			for range r.IntN(24) {
				tokv.Append(int32(r.IntN(50000)))
			}
		}
		emb.Append(true)
		for range EmbeddingDim {
			embv.Append(r.Float32())
		}
	}
	return b.NewRecordBatch()
}

// WriteParquet writes recs as a Parquet file with the given compression,
// one row group per record batch (arrow-go's writer, pyarrow's defaults
// otherwise: dictionary encoding, stored Arrow schema).
func WriteParquet(recs []arrow.RecordBatch, codec compress.Compression) ([]byte, error) {
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(parquet.WithCompression(codec), parquet.WithMaxRowGroupLength(1<<30))
	w, err := pqarrow.NewFileWriter(recs[0].Schema(), &buf, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return nil, err
	}
	return writeAll(w, &buf, recs) // Write makes one row group per call
}

// WriteArrowFile writes recs as an Arrow IPC file, one record batch each.
func WriteArrowFile(recs []arrow.RecordBatch) ([]byte, error) {
	var buf bytes.Buffer
	w, err := ipc.NewFileWriter(&buf, ipc.WithSchema(recs[0].Schema()))
	if err != nil {
		return nil, err
	}
	return writeAll(w, &buf, recs)
}

// WriteArrowStream writes recs as an Arrow IPC stream.
func WriteArrowStream(recs []arrow.RecordBatch) ([]byte, error) {
	var buf bytes.Buffer
	return writeAll(ipc.NewWriter(&buf, ipc.WithSchema(recs[0].Schema())), &buf, recs)
}

// recordWriter is what the Parquet and Arrow IPC writers have in common.
type recordWriter interface {
	Write(arrow.RecordBatch) error
	Close() error
}

// writeAll writes recs with w, closes it and returns what it wrote to buf.
func writeAll(w recordWriter, buf *bytes.Buffer, recs []arrow.RecordBatch) ([]byte, error) {
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
