package cache

import (
	"sync"
	"testing"
)

// PutAsync leaves the entry in the memory tier at once, and its disk
// write finishes before Close returns: a reopened cache finds every entry
// on disk. An entry the memory tier cannot hold is written before
// PutAsync returns.
func TestCachePutAsync(t *testing.T) {
	const n, kib = 8, 1 << 10
	dir := t.TempDir()
	cfg := Config{MemoryBytes: 16 * kib, DiskBytes: 64 * kib, Dir: dir}
	first, _ := openTestCache(t, cfg)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k := testKey(i)
			if err := first.PutAsync(k, testData(k, kib+i)); err != nil {
				t.Error(err)
				return
			}
			if tier := first.Contains(k); tier != TierMemory {
				t.Errorf("right after PutAsync, %s is in tier %v, want memory", k.Object, tier)
			}
		})
	}
	wg.Wait()
	big := testKey(n)
	if err := first.PutAsync(big, testData(big, 20*kib)); err != nil { // larger than the memory tier
		t.Fatal(err)
	}
	if tier := first.Contains(big); tier != TierDisk {
		t.Fatalf("an entry too big for memory is in tier %v right after PutAsync, want disk", tier)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	if err := first.PutAsync(testKey(99), []byte("x")); err == nil {
		t.Fatal("PutAsync on a closed cache succeeded")
	}

	second, _ := openTestCache(t, cfg)
	if m := second.Metrics(); m.Disk.Entries != n+1 {
		t.Fatalf("reopened cache holds %d disk entries, want %d", m.Disk.Entries, n+1)
	}
	for i := range n {
		wantGet(t, second, testKey(i), testData(testKey(i), kib+i), TierDisk)
	}
	wantGet(t, second, big, testData(big, 20*kib), TierDisk)
}
