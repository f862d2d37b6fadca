package columnar

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/stoker-data/stoker/shuffle"
)

// bytesReader is an object in memory that counts the reads made of it.
type bytesReader struct {
	data []byte

	mu    sync.Mutex // guards reads, bytes
	reads int
	bytes int64
}

func (r *bytesReader) ReadAt(_ context.Context, p []byte, off int64) error {
	r.mu.Lock()
	r.reads++
	r.bytes += int64(len(p))
	r.mu.Unlock()
	if off < 0 || off+int64(len(p)) > int64(len(r.data)) {
		return fmt.Errorf("read [%d, %d) of %d bytes", off, off+int64(len(p)), len(r.data))
	}
	copy(p, r.data[off:])
	return nil
}

func formatOf(name string) shuffle.Format {
	switch {
	case strings.HasSuffix(name, ".parquet"):
		return shuffle.FormatParquet
	case strings.HasSuffix(name, ".arrows"):
		return shuffle.FormatArrowStream
	}
	return shuffle.FormatArrow
}

// readWhole reads a whole file with arrow-go's own readers, for reference.
func readWhole(t testing.TB, f shuffle.Format, data []byte) arrow.Table {
	t.Helper()
	var recs []arrow.RecordBatch
	var schema *arrow.Schema
	switch f {
	case shuffle.FormatParquet:
		pf, err := file.NewParquetReader(&segments{size: int64(len(data)), segs: []Segment{{0, data}}})
		if err != nil {
			t.Fatal(err)
		}
		fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		tbl, err := fr.ReadTable(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return tbl
	case shuffle.FormatArrow:
		fr, err := ipc.NewFileReader(&segments{size: int64(len(data)), segs: []Segment{{0, data}}})
		if err != nil {
			t.Fatal(err)
		}
		schema = fr.Schema()
		for i := range fr.NumRecords() {
			r, err := fr.RecordBatchAt(i)
			if err != nil {
				t.Fatal(err)
			}
			recs = append(recs, r)
		}
	case shuffle.FormatArrowStream:
		rd, err := ipc.NewReader(&segments{size: int64(len(data)), segs: []Segment{{0, data}}})
		if err != nil {
			t.Fatal(err)
		}
		schema = rd.Schema()
		for rd.Next() {
			r := rd.RecordBatch()
			r.Retain()
			recs = append(recs, r)
		}
		if rd.Err() != nil {
			t.Fatal(rd.Err())
		}
	}
	return array.NewTableFromRecords(schema, recs)
}

// decodeAll indexes an object and decodes every unit, in file order.
func decodeAll(t testing.TB, f shuffle.Format, data []byte, columns []string) (*Index, []arrow.RecordBatch) {
	t.Helper()
	ctx := context.Background()
	ix, err := IndexObject(ctx, f, &bytesReader{data: data}, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	var recs []arrow.RecordBatch
	for _, u := range ix.Units {
		rec, err := ix.Decode(ctx, u, data[u.Offset:u.Offset+u.Length], columns)
		if err != nil {
			t.Fatalf("unit %d: %v", u.Part, err)
		}
		recs = append(recs, rec)
	}
	return ix, recs
}

// checkSame fails unless recs, concatenated, equal tbl's columns named by
// columns (all when empty).
func checkSame(t testing.TB, tbl arrow.Table, recs []arrow.RecordBatch, columns []string) {
	t.Helper()
	if len(columns) == 0 {
		for _, f := range tbl.Schema().Fields() {
			columns = append(columns, f.Name)
		}
	}
	rows := int64(0)
	for _, r := range recs {
		rows += r.NumRows()
		if int(r.NumCols()) != len(columns) {
			t.Fatalf("unit has %d columns, want %d (%v)", r.NumCols(), len(columns), columns)
		}
	}
	if rows != tbl.NumRows() {
		t.Fatalf("units hold %d rows, the file %d", rows, tbl.NumRows())
	}
	for j, name := range columns {
		want := tbl.Column(tbl.Schema().FieldIndices(name)[0]).Data()
		got := make([]arrow.Array, len(recs))
		for i, r := range recs {
			if r.Schema().Field(j).Name != name {
				t.Fatalf("column %d is %q, want %q", j, r.Schema().Field(j).Name, name)
			}
			got[i] = r.Column(j)
		}
		g, err := array.Concatenate(got, memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		w, err := array.Concatenate(want.Chunks(), memory.DefaultAllocator)
		if err != nil {
			t.Fatal(err)
		}
		if !array.ApproxEqual(g, w, array.WithNaNsEqual(true), array.WithAbsTolerance(0)) {
			t.Fatalf("column %q differs:\ngot  %.300v\nwant %.300v", name, g, w)
		}
	}
}

// fixtures returns the pyarrow-written files by name.
func fixtures(t testing.TB) map[string][]byte {
	t.Helper()
	names, err := filepath.Glob("testdata/pyarrow/*.*")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, n := range names {
		if strings.HasSuffix(n, ".jsonl") {
			continue
		}
		b, err := os.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(n)] = b
	}
	if len(out) < 7 {
		t.Fatalf("found %d fixtures in testdata/pyarrow; run make_fixtures.py there", len(out))
	}
	return out
}
