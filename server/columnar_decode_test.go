package server

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/stoker-data/stoker/prefetch/columnar"
	"github.com/stoker-data/stoker/shuffle"
)

// memRange reads a file held in memory.
type memRange []byte

func (m memRange) ReadAt(_ context.Context, p []byte, off int64) error {
	copy(p, m[off:])
	return nil
}

// TestDecodeKeepsNoInput backs the release of a unit's cache Ref as soon
// as it is decoded (columnar_units.go): a decoded record must not point
// into the unit's bytes, which the memory tier's region reuses after
// eviction. Each fixture unit is decoded, its input overwritten, and the
// record compared with a decode of pristine bytes (NaNs count as equal).
func TestDecodeKeepsNoInput(t *testing.T) {
	ctx := context.Background()
	files, _ := filepath.Glob("../prefetch/columnar/testdata/pyarrow/*")
	formats := map[string]shuffle.Format{".parquet": shuffle.FormatParquet, ".arrow": shuffle.FormatArrow, ".feather": shuffle.FormatArrow, ".arrows": shuffle.FormatArrowStream}
	tested := map[shuffle.Format]int{}
	for _, path := range files {
		f, ok := formats[filepath.Ext(path)]
		if !ok {
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		ix, err := columnar.IndexObject(ctx, f, memRange(data), int64(len(data)))
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		for _, u := range ix.Units {
			unit := func() []byte { return append([]byte(nil), data[u.Offset:u.Offset+u.Length]...) }
			want, err := ix.Decode(ctx, u, unit(), nil)
			if err != nil {
				t.Fatalf("%s unit %d: %v", path, u.Part, err)
			}
			in := unit()
			got, err := ix.Decode(ctx, u, in, nil)
			if err != nil {
				t.Fatal(err)
			}
			for i := range in {
				in[i] = 0xDB
			}
			for c := range int(got.NumCols()) {
				if !array.ApproxEqual(got.Column(c), want.Column(c), array.WithNaNsEqual(true)) {
					t.Errorf("%s unit %d: column %q changed with the input bytes", path, u.Part, got.ColumnName(c))
				}
			}
			got.Release()
			want.Release()
			tested[f]++
		}
	}
	for _, f := range []shuffle.Format{shuffle.FormatParquet, shuffle.FormatArrow, shuffle.FormatArrowStream} {
		if tested[f] == 0 {
			t.Errorf("no %s fixture decoded", f)
		}
	}
}
