package cache

import (
	"bytes"
	"math/rand/v2"
	"sync"
	"testing"
	"unsafe"

	"github.com/stoker-data/stoker/gpu"
	"github.com/stoker-data/stoker/gpu/gputest"
)

// newRegion maps a region of n bytes for a test, with a poisoning arena
// over it.
func newRegion(t *testing.T, n int) (*gpu.Pinned, gputest.PoisonArena) {
	return gputest.NewPoisonRegion(t, n)
}

// inRegion reports whether b lies inside region.
func inRegion(region *gpu.Pinned, b []byte) bool {
	base := region.Bytes()
	lo, hi := uintptr(unsafe.Pointer(unsafe.SliceData(base))), uintptr(unsafe.Pointer(unsafe.SliceData(base)))+uintptr(cap(base))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return p >= lo && p+uintptr(len(b)) <= hi
}

func TestCacheRegionHoldsEntries(t *testing.T) {
	region, arena := newRegion(t, 64<<10)
	c, _ := openTestCache(t, Config{MemoryBytes: 64 << 10, Memory: arena, Policy: PolicyLRU})
	const size = 10 << 10 // 3 pages each in the arena
	for i := range 3 {
		mustPut(t, c, testKey(i), testData(testKey(i), size))
	}
	if got := arena.Used(); got != 3*12<<10 {
		t.Fatalf("arena holds %d bytes, want 3 entries of 12 KiB", got)
	}
	r, tier, ok := c.Acquire(testKey(1))
	if !ok || tier != TierMemory {
		t.Fatalf("Acquire: tier %v, ok %v", tier, ok)
	}
	if !inRegion(region, r.Bytes()) || !bytes.Equal(r.Bytes(), testData(testKey(1), size)) {
		t.Fatal("Acquire's bytes are not the entry's bytes in the region")
	}
	r.Release()
	data, _, _ := c.Get(testKey(1))
	if inRegion(region, data) || !bytes.Equal(data, testData(testKey(1), size)) {
		t.Fatal("Get must return a copy of the entry, out of the region")
	}
	// Two more entries evict the least recently used, freeing their pages.
	for i := 3; i < 7; i++ {
		mustPut(t, c, testKey(i), testData(testKey(i), size))
	}
	m := c.Metrics()
	if m.Memory.Entries != 5 || m.Memory.Evictions != 2 || arena.Used() != 5*12<<10 {
		t.Fatalf("after 7 puts: %d entries, %d evictions, arena %d bytes; want 5, 2, 60 KiB", m.Memory.Entries, m.Memory.Evictions, arena.Used())
	}
	wantMiss(t, c, testKey(0))
	for _, i := range []int{1, 3, 4, 5, 6} {
		wantGet(t, c, testKey(i), testData(testKey(i), size), TierMemory)
	}
	c.Close()
	<-c.Drained()
	if arena.Used() != 0 {
		t.Fatalf("closed cache leaves %d bytes of the arena allocated", arena.Used())
	}
}

// A Ref pins its entry: the policy evicts others, and when nothing is
// evictable a new entry is bypassed rather than overwrite pinned bytes.
func TestCacheRegionRefPinsEntry(t *testing.T) {
	_, arena := newRegion(t, 32<<10)
	c, _ := openTestCache(t, Config{MemoryBytes: 32 << 10, Memory: arena, Policy: PolicyLRU})
	const size = 8 << 10
	mustPut(t, c, testKey(0), testData(testKey(0), size))
	held, _, _ := c.Acquire(testKey(0))
	for i := 1; i < 10; i++ { // oldest is key 0, but it is pinned
		mustPut(t, c, testKey(i), testData(testKey(i), size))
	}
	if !bytes.Equal(held.Bytes(), testData(testKey(0), size)) || c.Contains(testKey(0)) != TierMemory {
		t.Fatal("a pinned entry was evicted or overwritten")
	}
	var refs []*Ref
	for i := 6; i < 10; i++ {
		if c.Contains(testKey(i)) == TierMemory {
			r, _, _ := c.Acquire(testKey(i))
			refs = append(refs, r)
		}
	}
	before := c.Metrics().Memory.Bypasses
	mustPut(t, c, testKey(10), testData(testKey(10), size))
	if c.Contains(testKey(10)) != TierNone || c.Metrics().Memory.Bypasses != before+1 {
		t.Fatal("with every entry pinned, a new entry must be bypassed")
	}
	for _, r := range append(refs, held) {
		r.Release()
	}
	mustPut(t, c, testKey(10), testData(testKey(10), size))
	if c.Contains(testKey(10)) != TierMemory || c.Contains(testKey(0)) != TierNone {
		t.Fatal("once released, the oldest entry goes first")
	}
	if bytes.Equal(held.Bytes(), testData(testKey(0), size)) {
		t.Fatal("key 0's freed bytes are unchanged: the test arena cannot show a use after free")
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a second Release must panic")
		}
	}()
	held.Release()
}

// Entries round up to the arena's 4 KiB: where the index sees room the
// region may not, and the cache evicts until the entry fits.
func TestCacheRegionEvictsWhenRegionIsFull(t *testing.T) {
	_, arena := newRegion(t, 8*gpu.Align)
	c, _ := openTestCache(t, Config{MemoryBytes: 8 * gpu.Align, Memory: arena, Policy: PolicyLRU})
	for i := range 9 { // 9 bytes in the index, 9 pages wanted
		mustPut(t, c, testKey(i), []byte{byte(i)})
	}
	m := c.Metrics()
	if m.Memory.Entries != 8 || m.Memory.Evictions != 1 || m.Memory.Bypasses != 0 {
		t.Fatalf("%d entries, %d evictions, %d bypasses; want 8, 1, 0", m.Memory.Entries, m.Memory.Evictions, m.Memory.Bypasses)
	}
	wantMiss(t, c, testKey(0))
	wantGet(t, c, testKey(8), []byte{8}, TierMemory)
	// An empty entry needs no bytes of the region.
	mustPut(t, c, testKey(100), nil)
	wantGet(t, c, testKey(100), []byte{}, TierMemory)
}

func TestCacheRegionCloseWaitsForRefs(t *testing.T) {
	_, arena := newRegion(t, 16<<10)
	c, _ := openTestCache(t, Config{MemoryBytes: 16 << 10, Memory: arena})
	mustPut(t, c, testKey(0), testData(testKey(0), 5000))
	mustPut(t, c, testKey(1), testData(testKey(1), 5000))
	r, _, _ := c.Acquire(testKey(0))
	c.Close()
	select {
	case <-c.Drained():
		t.Fatal("drained while a Ref is held")
	default:
	}
	if arena.Used() != 2*gpu.Align || !bytes.Equal(r.Bytes(), testData(testKey(0), 5000)) {
		t.Fatalf("after Close the held entry must stay intact (arena %d bytes)", arena.Used())
	}
	r.Release()
	<-c.Drained()
	if arena.Used() != 0 {
		t.Fatalf("arena holds %d bytes after the last release", arena.Used())
	}
}

// TestCacheRegionConcurrent runs Puts, PutAsyncs and Acquires holding
// their Refs across other operations, against a small region with a disk
// tier behind it, checking every byte when the Ref is released. A byte
// freed while pinned reads back poisoned. Run with -race.
func TestCacheRegionConcurrent(t *testing.T) {
	_, arena := newRegion(t, 48<<10)
	c, _ := openTestCache(t, Config{MemoryBytes: 48 << 10, Memory: arena, DiskBytes: 256 << 10, Dir: t.TempDir()})
	c.SetOracle(hashOracle{})
	const workers, ops, keys = 12, 300, 40
	size := func(k int) int { return 300 + (k%9)*1100 }
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 7))
			var held []*Ref
			var heldKeys []int
			check := func() {
				for i, ref := range held {
					if !bytes.Equal(ref.Bytes(), testData(testKey(heldKeys[i]), size(heldKeys[i]))) {
						t.Errorf("key %d: bytes changed while its Ref was held", heldKeys[i])
					}
					ref.Release()
				}
				held, heldKeys = held[:0], heldKeys[:0]
			}
			for range ops {
				k := r.IntN(keys)
				key := testKey(k)
				switch op := r.IntN(10); {
				case op < 3:
					if err := c.Put(key, testData(key, size(k))); err != nil {
						t.Errorf("Put: %v", err)
					}
				case op < 5:
					if err := c.PutAsync(key, testData(key, size(k))); err != nil {
						t.Errorf("PutAsync: %v", err)
					}
				case op == 5:
					check()
				default:
					if ref, _, ok := c.Acquire(key); ok {
						held, heldKeys = append(held, ref), append(heldKeys, k)
					}
				}
				if len(held) > 3 {
					check()
				}
			}
			check()
		})
	}
	wg.Wait()
	c.Close()
	<-c.Drained()
	if arena.Used() != 0 {
		t.Fatalf("arena holds %d bytes after Close with no Refs", arena.Used())
	}
	t.Logf("%+v", c.Metrics())
}

// A disk hit is read straight into the region: the Ref is the new memory
// entry's bytes, and the next read is a memory hit. A damaged file gives
// a miss and leaves nothing allocated.
func TestCacheRegionDiskHitReadsIntoRegion(t *testing.T) {
	region, arena := newRegion(t, 16<<10)
	dir := t.TempDir()
	c, _ := openTestCache(t, Config{MemoryBytes: 16 << 10, Memory: arena, DiskBytes: 1 << 20, Dir: dir, Policy: PolicyLRU})
	const size = 6 << 10 // two fit in memory
	for i := range 4 {
		mustPut(t, c, testKey(i), testData(testKey(i), size))
	}
	if c.Contains(testKey(0)) != TierDisk {
		t.Fatal("key 0 should have left the memory tier")
	}
	r, tier, ok := c.Acquire(testKey(0))
	if !ok || tier != TierDisk {
		t.Fatalf("Acquire: tier %v, ok %v", tier, ok)
	}
	if !inRegion(region, r.Bytes()) || !bytes.Equal(r.Bytes(), testData(testKey(0), size)) {
		t.Fatal("a disk hit must come as the memory entry's bytes in the region")
	}
	r.Release()
	wantGet(t, c, testKey(0), testData(testKey(0), size), TierMemory)

	// Damage key 1's file once it is only on disk: a miss, nothing kept.
	mustPut(t, c, testKey(4), testData(testKey(4), size))
	if c.Contains(testKey(1)) != TierDisk {
		t.Fatal("key 1 should be on disk only")
	}
	flipByte(func(n int64) int64 { return n - 10 })(t, c.path(testKey(1)))
	used := arena.Used()
	if _, _, ok := c.Acquire(testKey(1)); ok {
		t.Fatal("a damaged file was returned")
	}
	if c.Contains(testKey(1)) != TierNone || c.Metrics().Corrupt != 1 {
		t.Fatalf("after a damaged read: tier %v, %+v", c.Contains(testKey(1)), c.Metrics())
	}
	if arena.Used() > used {
		t.Fatalf("the damaged read left %d bytes allocated (had %d)", arena.Used(), used)
	}
	c.Close()
	<-c.Drained()
	if arena.Used() != 0 {
		t.Fatalf("arena holds %d bytes after Close", arena.Used())
	}
}
