package columnar

import (
	"slices"
	"testing"
)

// Files written by pyarrow (testdata/make_fixtures.py): every unit decodes
// to what arrow-go reads from the whole file, with and without projection.
func TestPyarrowFixtures(t *testing.T) {
	wantRows := map[string][]int64{
		"default.parquet": {37, 100, 5, 64},
		"zstd.parquet":    {50, 50, 106},
		"gzip.parquet":    {1, 120, 85},
		"plain.parquet":   {206},
		"batches.arrow":   {60, 60, 60, 26},
		"lz4.feather":     {90, 90, 26},
		"stream.arrows":   {70, 70, 66},
	}
	for name, data := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			f := formatOf(name)
			tbl := readWhole(t, f, data)
			ix, recs := decodeAll(t, f, data, nil)
			var rows []int64
			for _, u := range ix.Units {
				rows = append(rows, u.Rows)
			}
			if want, ok := wantRows[name]; ok && !slices.Equal(rows, want) {
				t.Fatalf("units of %v rows, want %v", rows, want)
			}
			checkSame(t, tbl, recs, nil)
			cols := []string{"nested", "id", "tags", "cat"}
			_, recs = decodeAll(t, f, data, cols)
			checkSame(t, tbl, recs, cols)
		})
	}
}
