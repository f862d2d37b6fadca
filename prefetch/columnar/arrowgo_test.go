package columnar

import (
	"context"
	"errors"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/parquet/compress"

	"github.com/stoker-data/stoker/shuffle"
)

// syntheticRecs returns batches of the given sizes with consecutive ids.
func syntheticRecs(sizes ...int) []arrow.RecordBatch {
	var recs []arrow.RecordBatch
	first := int64(0)
	for _, n := range sizes {
		recs = append(recs, Synthetic(first, n, 9))
		first += int64(n)
	}
	return recs
}

// Files written by arrow-go: every codec, units of different sizes, and
// indexing reads the footer's neighbourhood, never the whole object.
func TestArrowGoFiles(t *testing.T) {
	sizes := []int{3000, 500, 4096, 1}
	recs := syntheticRecs(sizes...)
	tbl := array.NewTableFromRecords(SyntheticSchema, recs)
	type file struct {
		name string
		f    shuffle.Format
		data []byte
	}
	var files []file
	for _, c := range []compress.Compression{compress.Codecs.Snappy, compress.Codecs.Zstd, compress.Codecs.Gzip, compress.Codecs.Uncompressed} {
		b, err := WriteParquet(recs, c)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, file{"parquet-" + c.String(), shuffle.FormatParquet, b})
	}
	b, err := WriteArrowFile(recs)
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, file{"arrow", shuffle.FormatArrow, b})
	if b, err = WriteArrowStream(recs); err != nil {
		t.Fatal(err)
	}
	files = append(files, file{"arrows", shuffle.FormatArrowStream, b})
	for _, fl := range files {
		t.Run(fl.name, func(t *testing.T) {
			r := &bytesReader{data: fl.data}
			ix, err := IndexObject(context.Background(), fl.f, r, int64(len(fl.data)))
			if err != nil {
				t.Fatal(err)
			}
			if len(ix.Units) != len(sizes) {
				t.Fatalf("%d units, want %d", len(ix.Units), len(sizes))
			}
			for i, u := range ix.Units {
				if u.Rows != int64(sizes[i]) || u.Part != i {
					t.Fatalf("unit %d: %+v, want %d rows", i, u, sizes[i])
				}
			}
			switch fl.f {
			case shuffle.FormatArrowStream: // one sequential read
				if r.reads != 1 || r.bytes != int64(len(fl.data)) {
					t.Fatalf("indexing a stream made %d reads of %d bytes, want 1 of %d", r.reads, r.bytes, len(fl.data))
				}
			case shuffle.FormatParquet: // the 64 KiB tail holds the footer
				if r.reads != 1 || r.bytes > tailRead || r.bytes*4 > int64(len(fl.data)) {
					t.Fatalf("indexing made %d reads of %d bytes of a %d-byte file", r.reads, r.bytes, len(fl.data))
				}
			default: // tail, then one header per record batch
				if r.reads != 1+len(sizes) || r.bytes > tailRead+int64(len(sizes))*4096 || r.bytes*4 > int64(len(fl.data)) {
					t.Fatalf("indexing made %d reads of %d bytes of a %d-byte file", r.reads, r.bytes, len(fl.data))
				}
			}
			_, got := decodeAll(t, fl.f, fl.data, nil)
			checkSame(t, tbl, got, nil)
			_, got = decodeAll(t, fl.f, fl.data, []string{"embedding", "id"})
			checkSame(t, tbl, got, []string{"embedding", "id"})
		})
	}
}

func TestUnknownColumn(t *testing.T) {
	data, err := WriteArrowStream(syntheticRecs(10))
	if err != nil {
		t.Fatal(err)
	}
	ix, err := IndexArrowStream(data)
	if err != nil {
		t.Fatal(err)
	}
	u := ix.Units[0]
	_, err = ix.Decode(context.Background(), u, data[u.Offset:u.Offset+u.Length], []string{"id", "nope"})
	if !errors.Is(err, ErrUnknownColumn) {
		t.Fatalf("got %v, want ErrUnknownColumn", err)
	}
}

// Gather takes rows from several units in any order.
func TestGather(t *testing.T) {
	recs := syntheticRecs(5, 7, 3)
	units := map[int32]arrow.RecordBatch{10: recs[0], 20: recs[1], 30: recs[2]}
	first := map[int32]int64{10: 0, 20: 5, 30: 12}
	rows := []Row{{20, 6}, {10, 0}, {30, 2}, {20, 0}, {10, 4}, {30, 0}, {20, 3}}
	out, err := Gather(context.Background(), SyntheticSchema, units, rows)
	if err != nil {
		t.Fatal(err)
	}
	if out.NumRows() != int64(len(rows)) {
		t.Fatalf("%d rows, want %d", out.NumRows(), len(rows))
	}
	ids := out.Column(0).(*array.Int64)
	emb := out.Column(4).(*array.FixedSizeList)
	for j, r := range rows {
		if want := first[r.Unit] + int64(r.Row); ids.Value(j) != want {
			t.Fatalf("row %d has id %d, want %d", j, ids.Value(j), want)
		}
		src := units[r.Unit].Column(4).(*array.FixedSizeList)
		a, b := array.NewSlice(emb, int64(j), int64(j+1)), array.NewSlice(src, int64(r.Row), int64(r.Row+1))
		if !array.Equal(a, b) {
			t.Fatalf("row %d: embedding %v, want %v", j, a, b)
		}
	}
	// One unit, rows in order: no reordering take, same values.
	out, err = Gather(context.Background(), SyntheticSchema, units, []Row{{30, 0}, {30, 1}, {30, 2}})
	if err != nil {
		t.Fatal(err)
	}
	if !array.RecordEqual(out, recs[2]) {
		t.Fatalf("got %v, want %v", out, recs[2])
	}
}
