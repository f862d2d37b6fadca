package cache

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestCacheDiskExtent reads an entry through its extent and checks that a
// pinned entry outlives the evictions around it, and goes once unpinned.
func TestCacheDiskExtent(t *testing.T) {
	const kib = 1 << 10
	c, _ := openTestCache(t, Config{DiskBytes: 3 * kib, Dir: t.TempDir(), Policy: PolicyLRU})
	if _, _, _, _, ok := c.DiskExtent(testKey(0)); ok {
		t.Fatal("extent of an entry never put")
	}
	data := testData(testKey(0), kib)
	mustPut(t, c, testKey(0), data)
	path, off, size, unpin, ok := c.DiskExtent(testKey(0))
	if !ok {
		t.Fatal("no extent for an entry on disk")
	}
	if size != int64(len(data)) {
		t.Fatalf("extent of %d bytes, want %d", size, len(data))
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

// TestDiskExtentAfterUncleanStop: files are not synced when written, so
// after a stop that was not clean (no clean mark) DiskExtent verifies an
// entry before handing it out, once, and drops one whose bytes never
// reached the disk (zeros, as a crash leaves them); after a clean Close
// it trusts the files, and Open takes the mark away again.
func TestDiskExtentAfterUncleanStop(t *testing.T) {
	const kib = 1 << 10
	dir := t.TempDir()
	cfg := Config{DiskBytes: 64 * kib, Dir: dir, Policy: PolicyLRU}
	first, _ := openTestCache(t, cfg)
	for i := range 2 {
		mustPut(t, first, testKey(i), testData(testKey(i), 20*kib))
	}
	// A crash: no Close, and testKey(1)'s data lost.
	path, off, _, unpin, ok := first.DiskExtent(testKey(1))
	if !ok {
		t.Fatal("no extent for an entry on disk")
	}
	unpin()
	zeroData(t, path, off, 20*kib)
	if _, err := os.Stat(filepath.Join(dir, cleanMark)); !os.IsNotExist(err) {
		t.Fatalf("a clean mark while the cache is open: %v", err)
	}

	second, _ := openTestCache(t, cfg)
	before := second.Metrics().Disk.ReadBytes
	p0, off0, _, unpin0, ok := second.DiskExtent(testKey(0))
	if !ok {
		t.Fatal("an intact entry after an unclean stop has no extent")
	}
	unpin0()
	if read := second.Metrics().Disk.ReadBytes - before; read != 20*kib {
		t.Errorf("verifying the entry read %d bytes, want %d", read, 20*kib)
	}
	if got := readAt(t, p0, off0, 20*kib); !bytes.Equal(got, testData(testKey(0), 20*kib)) {
		t.Error("the verified extent does not hold the entry's bytes")
	}
	_, _, _, unpin0, _ = second.DiskExtent(testKey(0))
	unpin0()
	if read := second.Metrics().Disk.ReadBytes - before; read != 20*kib {
		t.Errorf("a verified entry was read again (%d bytes in all)", read)
	}
	if _, _, _, _, ok := second.DiskExtent(testKey(1)); ok {
		t.Fatal("an entry whose bytes are zeros was handed out as an extent")
	}
	if second.Contains(testKey(1)) != TierNone || second.Metrics().Corrupt != 1 {
		t.Errorf("the bad entry was not dropped and counted: %+v", second.Metrics())
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the bad entry's file is still there: %v", err)
	}

	// A clean Close marks the files as on disk; the next Open trusts them
	// and removes the mark, so that a crash from then on is seen.
	if err := second.Close(); err != nil {
		t.Fatal(err)
	}
	third, _ := openTestCache(t, cfg)
	if _, err := os.Stat(filepath.Join(dir, cleanMark)); !os.IsNotExist(err) {
		t.Fatalf("Open left the clean mark: %v", err)
	}
	before = third.Metrics().Disk.ReadBytes
	_, _, _, unpin0, ok = third.DiskExtent(testKey(0))
	if !ok {
		t.Fatal("no extent after a clean stop")
	}
	unpin0()
	if read := third.Metrics().Disk.ReadBytes - before; read != 0 {
		t.Errorf("after a clean stop the entry was read (%d bytes) before being handed out", read)
	}
}

// zeroData overwrites n bytes of path at off with zeros.
func zeroData(t *testing.T, path string, off int64, n int) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, n), off); err != nil {
		t.Fatal(err)
	}
}

func readAt(t *testing.T, path string, off int64, n int) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off+int64(n) > int64(len(b)) {
		t.Fatalf("%s: %d bytes, want [%d, +%d)", path, len(b), off, n)
	}
	return b[off : off+int64(n)]
}

// TestDiskExtentPathIsAbsolute: a cache opened on a relative Dir hands out
// absolute paths, which a reader in another working directory can open.
func TestDiskExtentPathIsAbsolute(t *testing.T) {
	t.Chdir(t.TempDir())
	c, _ := openTestCache(t, Config{DiskBytes: 1 << 20, Dir: "cache", Policy: PolicyLRU})
	mustPut(t, c, testKey(0), testData(testKey(0), 1000))
	path, off, size, unpin, ok := c.DiskExtent(testKey(0))
	if !ok {
		t.Fatal("no extent for an entry on disk")
	}
	defer unpin()
	if !filepath.IsAbs(path) {
		t.Fatalf("extent path %q is relative", path)
	}
	t.Chdir(t.TempDir())
	if got := readAt(t, path, off, int(size)); !bytes.Equal(got, testData(testKey(0), 1000)) {
		t.Fatal("the extent read from another directory does not hold the entry's bytes")
	}
}
