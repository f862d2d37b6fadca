package dataset

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/parquet/compress"

	"github.com/stoker-data/stoker/prefetch/columnar"
	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
	"github.com/stoker-data/stoker/shuffle"
)

func TestLayoutOf(t *testing.T) {
	for _, tc := range []struct {
		format   shuffle.Format
		ok       bool
		want     shuffle.Format
		indexes  bool
		tarRange bool
	}{
		{"", true, shuffle.FormatWebDataset, true, true},
		{shuffle.FormatWebDataset, true, shuffle.FormatWebDataset, true, true},
		{shuffle.FormatParquet, true, shuffle.FormatParquet, false, false},
		{shuffle.FormatArrow, true, shuffle.FormatArrow, false, false},
		{shuffle.FormatArrowStream, true, shuffle.FormatArrowStream, false, false},
		{"csv", false, shuffle.FormatWebDataset, true, true},
	} {
		l, ok := layoutOf(tc.format)
		if ok != tc.ok || l.Format() != tc.want || l.SampleIndexes() != tc.indexes || l.Columnar() != nil {
			t.Errorf("layoutOf(%q) = %s (indexes %v, columnar %v), %v; want %s (indexes %v), %v",
				tc.format, l.Format(), l.SampleIndexes(), l.Columnar(), ok, tc.want, tc.indexes, tc.ok)
		}
		if got := l.SampleRanges(storage.Object{URL: "s3://b/a.tar"}); got != tc.tarRange {
			t.Errorf("layoutOf(%q).SampleRanges(a.tar) = %v, want %v", tc.format, got, tc.tarRange)
		}
	}
	wd, _ := layoutOf(shuffle.FormatWebDataset)
	for name, want := range map[string]bool{"a.tar": true, "a.tar.gz": false, "a.tgz": false, "blob": true} {
		if got := wd.SampleRanges(storage.Object{URL: "s3://b/" + name}); got != want {
			t.Errorf("WebDataset SampleRanges(%s) = %v, want %v", name, got, want)
		}
	}
}

// A dataset's layout is chosen at the open and again, the same, when a
// later catalog rebuilds it from the stored manifest with storage down; it
// answers what the callers used to branch on.
func TestCatalogLayouts(t *testing.T) {
	dir := t.TempDir()
	if err := (wds.Synthetic{Shards: 2, PerShard: 3, SampleSize: 50, Seed: 1}).Write(filepath.Join(dir, "tars")); err != nil {
		t.Fatal(err)
	}
	recs := []arrow.RecordBatch{columnar.Synthetic(0, 4, 1), columnar.Synthetic(4, 5, 1)}
	pq, err := columnar.WriteParquet(recs, compress.Codecs.Uncompressed)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "pq"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pq", "a.parquet"), pq, 0o644); err != nil {
		t.Fatal(err)
	}
	src := &outageSource{Source: storage.NewFileSource()}
	sources := storage.NewSources(map[string]storage.Source{"file": src})
	newCatalog := func() *Catalog {
		cat, err := NewCatalog(CatalogConfig{Dir: filepath.Join(dir, "catalog")}, sources, fetchShards{sources}, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		return cat
	}
	ctx := context.Background()
	tars, pqs := "file://"+filepath.Join(dir, "tars")+"/", "file://"+filepath.Join(dir, "pq")+"/"
	check := func(stage string, cat *Catalog, stored bool) {
		ds, err := cat.Open(ctx, tars, "")
		if err != nil || ds.FromStored() != stored {
			t.Fatalf("%s: %v (from the stored manifest: %v)", stage, err, ds != nil && ds.FromStored())
		}
		if l := ds.Layout; l.Format() != shuffle.FormatWebDataset || !l.SampleIndexes() || l.Columnar() != nil {
			t.Errorf("%s: tars' layout %s, indexes %v, columnar %v", stage, l.Format(), l.SampleIndexes(), l.Columnar())
		}
		if x, err := ds.ShardIndex(ctx, 1); err != nil || x.Len() != 3 {
			t.Errorf("%s: tar shard index: %v", stage, err)
		}
		ds, err = cat.Open(ctx, pqs, "")
		if err != nil || ds.FromStored() != stored {
			t.Fatalf("%s: %v (from the stored manifest: %v)", stage, err, ds != nil && ds.FromStored())
		}
		l := ds.Layout
		if l.Format() != shuffle.FormatParquet || l.SampleIndexes() || l.SampleRanges(ds.Object(0)) || ds.CountsFrom != CountsFooters {
			t.Errorf("%s: parquet's layout %s, indexes %v, counts from %s", stage, l.Format(), l.SampleIndexes(), ds.CountsFrom)
		}
		if c := l.Columnar(); c == nil || len(c.Units) != 2 || c.Units[1].Rows != 5 || c.Schema.NumFields() != columnar.SyntheticSchema.NumFields() {
			t.Fatalf("%s: parquet's columnar %+v, want 2 units, the second of 5 rows", stage, c)
		}
		if _, err := ds.ShardIndex(ctx, 0); err == nil {
			t.Errorf("%s: a columnar unit's ShardIndex did not fail", stage)
		}
		if _, err := ds.Fields(ctx); err == nil {
			t.Errorf("%s: a columnar dataset's Fields did not fail", stage)
		}
	}
	check("open", newCatalog(), false)
	src.down.Store(true)
	check("stored manifest", newCatalog(), true)
}
