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
	n, err := pruneStored(dir, keep, 4, 1<<20)
	if err != nil || n != 2 {
		t.Fatalf("pruned %d, %v; want 2", n, err)
	}
	for name, want := range map[string]bool{"m0.json": true, "m1.json": false, "m2.json": false, "m3.json": true, "m5.json": true, ".tmp-123": true} {
		if _, err := os.Stat(filepath.Join(dir, name)); (err == nil) != want {
			t.Errorf("%s: present %v, want %v", name, err == nil, want)
		}
	}
	if n, err := pruneStored(dir, keep, 100, 250); err != nil || n != 2 {
		t.Fatalf("pruned by bytes %d, %v; want 2 (400 bytes down to 200)", n, err)
	}
	if n, err := pruneStored(dir, keep, 100, 10); err != nil || n != 1 {
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
