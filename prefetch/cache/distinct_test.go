package cache

import "testing"

// A shard in both tiers counts once; one the memory tier evicted counts
// by its disk copy; with no disk tier the figure is the memory tier's.
func TestCacheDistinctBytes(t *testing.T) {
	const size = 1000
	c, _ := openTestCache(t, Config{MemoryBytes: 2 * size, DiskBytes: 10 * size, Dir: t.TempDir()})
	for i := range 3 {
		mustPut(t, c, testKey(i), testData(testKey(i), size))
	}
	m := c.Metrics()
	if m.Memory.Bytes != 2*size || m.Disk.Bytes != 3*size {
		t.Fatalf("tiers hold %d and %d bytes, want %d in memory and %d on disk", m.Memory.Bytes, m.Disk.Bytes, 2*size, 3*size)
	}
	if got := c.DistinctBytes(); got != 3*size {
		t.Errorf("DistinctBytes %d, want %d (three shards, two of them in both tiers)", got, 3*size)
	}

	mem, _ := openTestCache(t, Config{MemoryBytes: 4 * size})
	mustPut(t, mem, testKey(0), testData(testKey(0), size))
	if got := mem.DistinctBytes(); got != size {
		t.Errorf("memory only: DistinctBytes %d, want %d", got, size)
	}
}
