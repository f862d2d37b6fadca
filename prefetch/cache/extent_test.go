package cache

import (
	"bytes"
	"os"
	"testing"
)

// TestCacheDiskExtent reads an entry through its extent and checks that a
// pinned entry outlives the evictions around it, and goes once unpinned.
func TestCacheDiskExtent(t *testing.T) {
	const kib = 1 << 10
	c, _ := openTestCache(t, Config{DiskBytes: 3 * kib, Dir: t.TempDir(), Policy: PolicyLRU})
	if _, _, _, ok := c.DiskExtent(testKey(0)); ok {
		t.Fatal("extent of an entry never put")
	}
	data := testData(testKey(0), kib)
	mustPut(t, c, testKey(0), data)
	path, off, unpin, ok := c.DiskExtent(testKey(0))
	if !ok {
		t.Fatal("no extent for an entry on disk")
	}
	if off%4096 != 0 {
		t.Fatalf("data starts at offset %d, not on a 4 KiB boundary", off)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(data))
	if _, err := f.ReadAt(got, off); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !bytes.Equal(got, data) {
		t.Fatal("the extent does not hold the entry's bytes")
	}
	// Pinned, the oldest entry is not the LRU victim.
	for i := 1; i < 5; i++ {
		_ = c.Put(testKey(i), testData(testKey(i), kib))
	}
	if c.Contains(testKey(0)) != TierDisk {
		t.Fatal("a pinned entry was evicted")
	}
	unpin()
	unpin() // a second call does nothing
	for i := 5; i < 9; i++ {
		mustPut(t, c, testKey(i), testData(testKey(i), kib))
	}
	if c.Contains(testKey(0)) != TierNone {
		t.Fatal("an unpinned entry was never evicted")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("evicted entry's file: %v", err)
	}
}
