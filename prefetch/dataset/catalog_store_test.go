package dataset

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stoker-data/stoker/prefetch/storage"
	"github.com/stoker-data/stoker/prefetch/wds"
)

// writeAged writes a file of n bytes modified age ago.
func writeAged(t *testing.T, path string, n int, age time.Duration) {
	t.Helper()
	if err := os.WriteFile(path, make([]byte, n), 0o644); err != nil {
		t.Fatal(err)
	}
	when := time.Now().Add(-age)
	if err := os.Chtimes(path, when, when); err != nil {
		t.Fatal(err)
	}
}

// The oldest stored files go first, by count and by bytes; the file just
// stored stays even when it alone is over the bytes; other files are left.
func TestPruneStored(t *testing.T) {
	dir := t.TempDir()
	for i := range 6 {
		writeAged(t, filepath.Join(dir, fmt.Sprintf("m%d.json", i)), 100, time.Duration(10-i)*time.Hour) // m0 oldest
	}
	writeAged(t, filepath.Join(dir, ".tmp-123"), 100, 20*time.Hour)
	keep := filepath.Join(dir, "m0.json") // oldest, but just stored
	n, _, err := pruneStored(dir, keep, 4, 1<<20, ".json")
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v; want 2", n, err)
	}
	for name, want := range map[string]bool{"m0.json": true, "m1.json": false, "m2.json": false, "m3.json": true, "m5.json": true, ".tmp-123": true} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s: present %v, want %v", name, err == nil, want)
		}
	}
	if n, left, err := pruneStored(dir, keep, 100, 250, ".json"); err != nil || n != 2 || left != 200 {
		t.Fatalf("pruned by bytes %d, %v; want 2 (400 bytes down to 200)", n, err)
	}
	if n, left, err := pruneStored(dir, keep, 100, 10, ".json"); err != nil || n != 1 || left != 100 {
		t.Fatalf("pruned %d, %v; want 1, keeping the file just stored", n, err)
	}
}

// Opening a dataset stores its manifest and prunes the oldest past the
// bound: a node's catalog no longer grows with every URL it ever opened.
func TestCatalogBoundsStoredManifests(t *testing.T) {
	dir := t.TempDir()
	if err := (wds.Synthetic{Shards: 2, PerShard: 3, SampleSize: 64, Seed: 1}).Write(filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	manifests := filepath.Join(dir, "catalog", "manifests")
	if err := os.MkdirAll(manifests, 0o755); err != nil {
		t.Fatal(err)
	}
	extra := 10
	for i := range maxStoredManifests + extra {
		writeAged(t, filepath.Join(manifests, fmt.Sprintf("old-%05d.json", i)), 16, time.Duration(100000-i)*time.Second)
	}
	log := slog.New(slog.DiscardHandler)
	sources := storage.NewSources(map[string]storage.Source{"file": storage.NewFileSource()})
	cat, err := NewCatalog(CatalogConfig{Dir: filepath.Join(dir, "catalog")}, sources, fetchShards{sources}, log)
	if err != nil {
		t.Fatal(err)
	}
	url := "file://" + filepath.Join(dir, "data") + "/"
	if _, err := cat.Open(context.Background(), url, ""); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(manifests)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != maxStoredManifests {
		t.Errorf("%d stored manifests, want the bound %d", len(entries), maxStoredManifests)
	}
	if _, err := cat.loadManifest(url); err != nil {
		t.Errorf("the manifest just stored was pruned: %v", err)
	}
	for i := range extra + 1 { // the oldest went, the new one in their place
		if _, err := os.Stat(filepath.Join(manifests, fmt.Sprintf("old-%05d.json", i))); err == nil {
			t.Errorf("old-%05d.json, among the oldest, is still there", i)
		}
	}
}

// dirBytes is the bytes of dir's regular files.
func dirBytes(t *testing.T, dir string) (int64, int) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
	}
	return n, len(entries)
}

// The index folder is counted once, then by what is written; past the
// bound the indexes used longest ago go, down to nine tenths of it, and
// the one just written stays.
func TestStoredIndexesBounded(t *testing.T) {
	dir := t.TempDir()
	for i := range 5 {
		writeAged(t, filepath.Join(dir, fmt.Sprintf("i%d.idx", i)), 100, time.Duration(10-i)*time.Hour) // i0 oldest
	}
	s := newStoredIndexes(dir, 1000)
	s.loaded(filepath.Join(dir, "i0.idx")) // used now: the newest
	writeAged(t, filepath.Join(dir, "new.idx"), 100, 0)
	if n, err := s.wrote(filepath.Join(dir, "new.idx"), 100); err != nil || n != 0 || s.total != 600 {
		t.Fatalf("first write: removed %d, %v, total %d; want 0 and 600 counted", n, err, s.total)
	}
	for i := range 5 {
		p := filepath.Join(dir, fmt.Sprintf("w%d.idx", i))
		writeAged(t, p, 100, 0)
		if _, err := s.wrote(p, 100); err != nil {
			t.Fatal(err)
		}
	}
	// 1100 bytes written past 1000: pruned down to 900, oldest first:
	// i1 and i2 (i0 was loaded).
	if got, _ := dirBytes(t, dir); got != 900 || s.total != 900 {
		t.Fatalf("folder %d bytes, counted %d; want 900", got, s.total)
	}
	for name, want := range map[string]bool{"i0.idx": true, "i1.idx": false, "i2.idx": false, "i3.idx": true, "w4.idx": true} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s: present %v, want %v", name, err == nil, want)
		}
	}
}

// A catalog whose stored shard indexes pass the bound removes the oldest
// and loads a removed one again from its shard.
func TestCatalogBoundsStoredIndexes(t *testing.T) {
	dir := t.TempDir()
	syn := wds.Synthetic{Shards: 8, PerShard: 20, SampleSize: 64, Seed: 1}
	if err := syn.Write(filepath.Join(dir, "data")); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	sources := storage.NewSources(map[string]storage.Source{"file": storage.NewFileSource()})
	open := func(limit int64) (*Catalog, *Dataset) {
		cat, err := NewCatalog(CatalogConfig{Dir: filepath.Join(dir, "catalog"), IndexDiskBytes: limit, IndexBytes: 1}, sources, fetchShards{sources}, log)
		if err != nil {
			t.Fatal(err)
		}
		ds, err := cat.Open(context.Background(), "file://"+filepath.Join(dir, "data")+"/", "")
		if err != nil {
			t.Fatal(err)
		}
		return cat, ds
	}
	cat, ds := open(1 << 30)
	for i := range syn.Shards {
		if _, err := cat.loadShardIndex(context.Background(), ds, i); err != nil {
			t.Fatal(err)
		}
	}
	index := filepath.Join(dir, "catalog", "index")
	all, files := dirBytes(t, index)
	if files != syn.Shards {
		t.Fatalf("%d stored indexes, want %d", files, syn.Shards)
	}
	limit := all / 2
	for _, f := range []string{"a", "b"} { // an older node's leftovers
		writeAged(t, filepath.Join(index, f+".idx"), int(all/8), time.Hour)
	}
	cat, ds = open(limit)
	for i := range syn.Shards {
		os.Remove(cat.shardIndexPath(ds.Key(i))) // stored again, one by one
	}
	for i := range syn.Shards {
		x, err := cat.loadShardIndex(context.Background(), ds, i)
		if err != nil || x.Len() != syn.PerShard {
			t.Fatalf("shard %d: %v samples, %v", i, x, err)
		}
		if got, _ := dirBytes(t, index); got > limit {
			t.Fatalf("after shard %d: %d bytes stored, bound %d", i, got, limit)
		}
	}
	if _, err := os.Stat(filepath.Join(index, "a.idx")); err == nil {
		t.Error("the oldest stored index is still there")
	}
	if _, err := os.Stat(cat.shardIndexPath(ds.Key(syn.Shards - 1))); err != nil {
		t.Errorf("the index just stored was removed: %v", err)
	}
	if x, err := cat.loadShardIndex(context.Background(), ds, 0); err != nil || x.Len() != syn.PerShard {
		t.Fatalf("shard 0 again (its stored index removed): %v, %v", x, err)
	}
}
