package cache

import (
	"bytes"
	"errors"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unsafe"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// openBlockCache is openTestCache for a cache that writes disk files in
// blocks of block bytes.
func openBlockCache(t *testing.T, cfg Config, block int64) (*Cache, *logBuffer) {
	t.Helper()
	c, logs := openTestCache(t, cfg)
	c.block = block
	return c, logs
}

// wantRange checks that AcquireRange(key, off, n) returns data[off:off+n]
// from tier.
func wantRange(t *testing.T, c *Cache, key storage.Key, data []byte, off, n int64, tier Tier) {
	t.Helper()
	r, got, err := c.AcquireRange(key, off, n)
	if err != nil || got != tier {
		t.Fatalf("AcquireRange(%s, %d, %d) = tier %v, %v; want tier %v", key.Object, off, n, got, err, tier)
	}
	defer r.Release()
	if !bytes.Equal(r.Bytes(), data[off:off+n]) {
		t.Fatalf("AcquireRange(%s, %d, %d) returned %d bytes that differ from the data", key.Object, off, n, len(r.Bytes()))
	}
	if int64(cap(r.Bytes())) != n {
		t.Fatalf("AcquireRange(%s, %d, %d) returned a slice of capacity %d: its caller could see other bytes", key.Object, off, n, cap(r.Bytes()))
	}
}

// wantRangeMiss checks that AcquireRange(key, off, n) is a miss.
func wantRangeMiss(t *testing.T, c *Cache, key storage.Key, off, n int64) {
	t.Helper()
	if r, tier, err := c.AcquireRange(key, off, n); r != nil || tier != TierNone || err != nil {
		t.Fatalf("AcquireRange(%s, %d, %d) = %v, tier %v, %v; want a miss", key.Object, off, n, r != nil, tier, err)
	}
}

// testRanges returns ranges [off, off+n) of an entry of size bytes in
// blocks of block bytes: those that start or end at the first and last
// bytes and around block boundaries, and random ones.
func testRanges(size, block int64, r *rand.Rand) [][2]int64 {
	var out [][2]int64
	marks := []int64{0, 1, block - 1, block, block + 1, size/2 - 1, size / 2, size - block - 1, size - block, size - 1, size}
	for _, off := range marks {
		for _, end := range marks {
			if 0 <= off && off <= end && end <= size {
				out = append(out, [2]int64{off, end - off})
			}
		}
	}
	for range 20 {
		off := r.Int64N(size + 1)
		out = append(out, [2]int64{off, r.Int64N(size - off + 1)})
	}
	return out
}

// TestCacheRangeRoundTrip reads ranges of entries of sizes around block
// boundaries from the disk tier, in three block sizes; the largest entry's
// checksums lie past the file's first page. Range reads leave the memory
// tier alone, read only the covering blocks, and count disk hits; after a
// Promote the same ranges come from memory as slices of the entry.
func TestCacheRangeRoundTrip(t *testing.T) {
	for _, block := range []int64{minBlock, 4096, defaultBlockSize} {
		sizes := []int64{0, 1, block - 1, block, block + 1, 5 * block, 5*block + 77}
		if block == minBlock {
			sizes = append(sizes, 1100*block+3) // 1101 checksums: more than a page
		}
		dir := t.TempDir()
		cfg := Config{MemoryBytes: 64 << 20, DiskBytes: 64 << 20, Dir: dir, Policy: PolicyLRU}
		first, _ := openBlockCache(t, cfg, block)
		for i, n := range sizes {
			mustPut(t, first, testKey(i), testData(testKey(i), int(n)))
		}
		first.Close()

		c, _ := openTestCache(t, cfg) // the memory tier starts empty
		r := rand.New(rand.NewPCG(uint64(block), 1))
		var reads, memReads int64
		for i, n := range sizes {
			key, data := testKey(i), testData(testKey(i), int(n))
			for _, rg := range testRanges(n, block, r) {
				wantRange(t, c, key, data, rg[0], rg[1], TierDisk)
				reads++
			}
			m := c.Metrics()
			if c.Contains(key) != TierDisk || m.Memory.Entries != i || m.Disk.Hits != reads || m.Memory.Hits != memReads || m.Misses != 0 {
				t.Fatalf("block %d, entry of %d bytes: after %d range reads, %+v; want only disk hits, and this entry not promoted", block, n, reads, m)
			}
			if n > 2*block { // one byte in the middle reads its block only
				before := c.Metrics().Disk.ReadBytes
				wantRange(t, c, key, data, block+block/2, 1, TierDisk)
				reads++
				if got := c.Metrics().Disk.ReadBytes - before; got != block {
					t.Fatalf("block %d: one byte read %d bytes of data, want one block", block, got)
				}
			}

			if !c.Promote(key) || c.Contains(key) != TierMemory {
				t.Fatalf("block %d, %d bytes: Promote did not bring the entry to memory", block, n)
			}
			whole, _, _ := c.Acquire(key)
			for _, rg := range testRanges(n, block, r) {
				wantRange(t, c, key, data, rg[0], rg[1], TierMemory)
				part, _, _ := c.AcquireRange(key, rg[0], rg[1])
				memReads += 2
				if rg[1] > 0 && unsafe.SliceData(part.Bytes()) != &whole.Bytes()[rg[0]] {
					t.Fatalf("block %d: a memory range is a copy, not a slice of the entry", block)
				}
				part.Release()
			}
			whole.Release()
			memReads++
		}
	}
}

// TestCacheRangeOutside asks for ranges outside the entry, in either tier:
// each is an *Error of kind ErrCorrupt naming the object, counted neither
// as a hit nor as a miss, and the entry stays.
func TestCacheRangeOutside(t *testing.T) {
	const size = 3000
	mem, disk := testKey(1), testKey(2)
	c, _ := openBlockCache(t, Config{MemoryBytes: 4000, DiskBytes: 1 << 20, Dir: t.TempDir(), Policy: PolicyLRU}, minBlock)
	mustPut(t, c, disk, testData(disk, size))
	mustPut(t, c, mem, testData(mem, size)) // pushes disk's entry out of memory
	if c.Contains(mem) != TierMemory || c.Contains(disk) != TierDisk {
		t.Fatal("setup: want one entry in memory, one on disk only")
	}
	for _, rg := range [][2]int64{
		{-1, 1}, {0, -1}, {-1, 0}, {size + 1, 0}, {size, 1}, {1, size}, {0, size + 1},
		{math.MaxInt64, 1}, {1, math.MaxInt64}, {math.MaxInt64, math.MaxInt64}, {math.MinInt64, 10}, {10, math.MinInt64},
	} {
		for _, key := range []storage.Key{mem, disk} {
			before := c.Metrics()
			r, tier, err := c.AcquireRange(key, rg[0], rg[1])
			var e *storage.Error
			if r != nil || tier != TierNone || !errors.Is(err, storage.ErrCorrupt) || !errors.As(err, &e) || e.Object != key.Object || e.Op != "cache" {
				t.Fatalf("AcquireRange(%s, %d, %d) = %v, tier %v, %v; want an *Error of kind ErrCorrupt naming the object",
					key.Object, rg[0], rg[1], r != nil, tier, err)
			}
			if after := c.Metrics(); after != before {
				t.Fatalf("a failed AcquireRange changed the metrics: %+v, then %+v", before, after)
			}
		}
	}
	wantRange(t, c, mem, testData(mem, size), size, 0, TierMemory)
	wantRange(t, c, disk, testData(disk, size), size, 0, TierDisk)
	wantRange(t, c, disk, testData(disk, size), 0, size, TierDisk)
	wantRangeMiss(t, c, testKey(3), -1, -1) // nothing to check the range against
	if m := c.Metrics(); m.Misses != 1 || m.Corrupt != 0 || m.Disk.Entries != 2 {
		t.Fatalf("%+v; want 1 miss, nothing corrupt, both entries kept", m)
	}
}

// A block-damaging test file: blocks of minBlock, 8 of them.
const (
	dmgBlocks = 8
	dmgSize   = dmgBlocks * minBlock
	dmgBlock  = 5 // the block the damages below hit
)

// TestCacheRangeDamage damages one part of an entry's file, then reads a
// range that does not need that part, which succeeds (a range read
// verifies the header, and only the blocks it covers), and one that does,
// which is a miss that drops the entry, removes its file, counts it
// Corrupt and logs it.
func TestCacheRangeDamage(t *testing.T) {
	key := testKey(1)
	l := fileLayout(key, dmgSize, minBlock)
	blockAt := func(i, delta int64) int64 { return l.dataOff + i*minBlock + delta }
	for _, tc := range []struct {
		name   string
		damage damage
		good   [2]int64 // a range that still reads; n 0: none does
		bad    [2]int64
	}{
		{"data byte", flipByte(func(int64) int64 { return blockAt(dmgBlock, 100) }), [2]int64{0, dmgBlock * minBlock}, [2]int64{dmgBlock*minBlock + 511, 1}},
		{"first byte of a block", flipByte(func(int64) int64 { return blockAt(dmgBlock, 0) }), [2]int64{(dmgBlock + 1) * minBlock, minBlock}, [2]int64{dmgBlock*minBlock - 1, 2}},
		{"last data byte", flipByte(func(n int64) int64 { return n - 1 }), [2]int64{0, dmgSize - minBlock}, [2]int64{dmgSize - 1, 1}},
		{"checksum", flipByte(func(int64) int64 { return l.tableOff + dmgBlock*sumSize + 2 }), [2]int64{0, dmgBlock * minBlock}, [2]int64{dmgBlock * minBlock, 1}},
		{"blocks swapped", func(t *testing.T, path string) {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			x, y := b[blockAt(2, 0):blockAt(3, 0)], b[blockAt(dmgBlock, 0):blockAt(dmgBlock+1, 0)]
			tmp := slices.Clone(x)
			copy(x, y)
			copy(y, tmp)
			copy(b[l.tableOff+2*sumSize:], b[l.tableOff+dmgBlock*sumSize:l.tableOff+(dmgBlock+1)*sumSize]) // and the checksum with it
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, [2]int64{0, 2 * minBlock}, [2]int64{2 * minBlock, 1}},
		{"truncated in the data", resize(-(dmgBlocks - dmgBlock) * minBlock), [2]int64{0, dmgBlock * minBlock}, [2]int64{dmgBlock * minBlock, 1}},
		{"magic", flipByte(func(int64) int64 { return 1 }), [2]int64{}, [2]int64{0, 1}},
		{"version", flipByte(func(int64) int64 { return 4 }), [2]int64{}, [2]int64{0, 0}},
		{"length", flipByte(func(int64) int64 { return 17 }), [2]int64{}, [2]int64{0, 1}},
		{"block size", flipByte(func(int64) int64 { return 25 }), [2]int64{}, [2]int64{dmgSize - 1, 1}},
		{"header checksum", flipByte(func(int64) int64 { return 30 }), [2]int64{}, [2]int64{0, dmgSize}},
		{"key", flipByte(func(int64) int64 { return headerSize + 3 }), [2]int64{}, [2]int64{100, 100}},
		{"truncated in the header", resize(-(l.fileSize() - 20)), [2]int64{}, [2]int64{0, 1}},
		{"empty", resize(-l.fileSize()), [2]int64{}, [2]int64{0, 1}},
		{"another entry's file", func(t *testing.T, path string) {
			other := testKey(99)
			data := testData(other, dmgSize)
			if err := os.WriteFile(path, append(encodeHead(other, data, minBlock), data...), 0o644); err != nil {
				t.Fatal(err)
			}
		}, [2]int64{}, [2]int64{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			c, logs := openBlockCache(t, Config{DiskBytes: 1 << 20, Dir: dir}, minBlock)
			data, good := testData(key, dmgSize), testKey(2)
			mustPut(t, c, key, data)
			mustPut(t, c, good, testData(good, dmgSize))
			path := filepath.Join(dir, fileName(key))
			tc.damage(t, path)

			if tc.good[1] > 0 {
				wantRange(t, c, key, data, tc.good[0], tc.good[1], TierDisk)
			}
			wantRangeMiss(t, c, key, tc.bad[0], tc.bad[1])
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("damaged file still there (stat: %v)", err)
			}
			m := c.Metrics()
			if m.Corrupt != 1 || m.Errors != 0 || m.Disk.Entries != 1 || m.Misses != 1 || c.Contains(key) != TierNone {
				t.Errorf("%+v; want 1 corrupt, 1 miss, the other entry kept", m)
			}
			if !strings.Contains(logs.String(), key.Object) || !strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("no warning naming %s in the log:\n%s", key.Object, logs)
			}
			wantRangeMiss(t, c, key, 0, 1)
			wantRange(t, c, good, testData(good, dmgSize), 0, dmgSize, TierDisk)
		})
	}
}

// TestCacheRangeDamageWholeRead damages a block that range reads have not
// touched: a whole read (Get) still verifies every block.
func TestCacheRangeDamageWholeRead(t *testing.T) {
	key := testKey(1)
	dir := t.TempDir()
	c, _ := openBlockCache(t, Config{DiskBytes: 1 << 20, Dir: dir}, minBlock)
	data := testData(key, dmgSize)
	mustPut(t, c, key, data)
	l := fileLayout(key, dmgSize, minBlock)
	flipByte(func(int64) int64 { return l.dataOff + dmgBlock*minBlock + 7 })(t, filepath.Join(dir, fileName(key)))
	wantRange(t, c, key, data, 0, minBlock, TierDisk)
	wantMiss(t, c, key)
	if m := c.Metrics(); m.Corrupt != 1 || m.Disk.Entries != 0 {
		t.Fatalf("%+v; want the entry dropped as corrupt", m)
	}
}

// TestCacheOpenDropsOldFormats finds, in Dir at open, a file of format
// version 2, one of version 3 cut short, and a leftover temporary file:
// the first two are dropped and counted as corrupt, the last removed,
// and a good file kept.
func TestCacheOpenDropsOldFormats(t *testing.T) {
	dir := t.TempDir()
	first, _ := openBlockCache(t, Config{DiskBytes: 1 << 20, Dir: dir}, minBlock)
	good, cut, old := testKey(1), testKey(2), testKey(3)
	mustPut(t, first, good, testData(good, 5000))
	mustPut(t, first, cut, testData(cut, 5000))
	first.Close()
	if err := os.Truncate(filepath.Join(dir, fileName(cut)), 5000); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{
		fileName(old):        v2File(old, testData(old, 5000)),
		"put-42" + tmpSuffix: []byte("half a shard"),
		"put-43" + tmpSuffix: append(encodeHead(old, testData(old, 5000), minBlock), testData(old, 5000)...),
		"notes" + ".txt":     []byte("not ours"),
		fileName(testKey(4)): nil, // empty
	} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	c, logs := openTestCache(t, Config{DiskBytes: 1 << 20, Dir: dir})
	want := []string{fileName(good), "notes.txt"}
	slices.Sort(want)
	if got := dirFiles(t, dir); !slices.Equal(got, want) {
		t.Errorf("files %v, want %v", got, want)
	}
	if m := c.Metrics(); m.Corrupt != 3 || m.Disk.Entries != 1 {
		t.Errorf("%+v; want the v2, the cut and the empty file counted corrupt, one entry", m)
	}
	if !strings.Contains(logs.String(), "format version 2") {
		t.Errorf("the log does not say the dropped file was of version 2:\n%s", logs)
	}
	wantRangeMiss(t, c, old, 0, 1)
	wantRange(t, c, good, testData(good, 5000), 4000, 1000, TierDisk)
}

// TestCacheRangeConcurrent runs AcquireRanges holding their Refs across
// other operations, with Puts evicting from a small disk tier, Acquires
// and Promotes filling a small region, and a Close halfway through, then
// checks every byte of every Ref at its release: a region byte freed while
// pinned reads back poisoned, a file evicted while read would fail or
// differ. Run with -race.
func TestCacheRangeConcurrent(t *testing.T) {
	_, arena := newRegion(t, 48<<10)
	dir := t.TempDir()
	c, _ := openBlockCache(t, Config{MemoryBytes: 48 << 10, Memory: arena, DiskBytes: 96 << 10, Dir: dir}, minBlock)
	c.maxFiles = 4 // fewer than the entries read at once: files are closed to make room
	c.SetOracle(hashOracle{})
	const workers, ops, keys = 12, 400, 40
	size := func(k int) int64 { return int64(300 + (k%9)*1300) }
	var halfway sync.WaitGroup
	halfway.Add(workers)
	closed := make(chan struct{})
	go func() {
		halfway.Wait()
		c.Close()
		close(closed)
	}()
	var wg sync.WaitGroup
	var hits atomic.Int64
	for w := range workers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 11))
			type held struct {
				ref    *Ref
				k      int
				off, n int64
			}
			var refs []held
			check := func() {
				for _, h := range refs {
					if want := testData(testKey(h.k), int(size(h.k)))[h.off : h.off+h.n]; !bytes.Equal(h.ref.Bytes(), want) {
						t.Errorf("key %d [%d, +%d): bytes changed while the Ref was held", h.k, h.off, h.n)
					}
					h.ref.Release()
				}
				refs = refs[:0]
			}
			for i := range ops {
				if i == ops/2 {
					halfway.Done()
				}
				k := r.IntN(keys)
				key := testKey(k)
				switch op := r.IntN(12); {
				case op < 3:
					if err := c.Put(key, testData(key, int(size(k)))); err != nil && !errors.Is(err, storage.ErrUnavailable) {
						t.Errorf("Put: %v", err)
					}
				case op == 3:
					c.Promote(key)
				case op == 4:
					if ref, _, ok := c.Acquire(key); ok {
						refs = append(refs, held{ref, k, 0, size(k)})
					}
				case op == 5:
					check()
				default:
					off := r.Int64N(size(k) + 1)
					n := r.Int64N(size(k) - off + 1)
					ref, tier, err := c.AcquireRange(key, off, n)
					if err != nil {
						t.Errorf("AcquireRange(%d, %d, %d): %v", k, off, n, err)
					}
					if tier != TierNone {
						hits.Add(1)
						refs = append(refs, held{ref, k, off, n})
					}
				}
				if len(refs) > 4 {
					check()
				}
			}
			check()
		})
	}
	wg.Wait()
	<-closed
	<-c.Drained()
	if arena.Used() != 0 {
		t.Fatalf("arena holds %d bytes after Close with no Refs", arena.Used())
	}
	m := c.Metrics()
	if m.Corrupt != 0 || m.Errors != 0 || hits.Load() == 0 || m.Disk.ReadBytes == 0 {
		t.Errorf("%+v; want no corrupt or failed reads, and some range hits", m)
	}
	if files := dirFiles(t, dir); len(files) != m.Disk.Entries {
		t.Errorf("%d files in Dir, %d disk entries", len(files), m.Disk.Entries)
	}
	if kept := keptFiles(c); len(kept) != 0 {
		t.Errorf("%d files kept open after Close", len(kept))
	}
	if r, tier, err := c.AcquireRange(testKey(0), 0, 1); r != nil || tier != TierNone || err != nil {
		t.Errorf("AcquireRange after Close = tier %v, %v; want a miss", tier, err)
	}
	t.Logf("%+v", m)
}

// keptFiles returns the files range reads keep open, by key index.
func keptFiles(c *Cache) map[storage.Key]*os.File {
	c.diskMu.Lock()
	defer c.diskMu.Unlock()
	m := map[storage.Key]*os.File{}
	for _, e := range c.open {
		m[e.key] = e.fd
	}
	return m
}

// wantClosed checks that f was closed.
func wantClosed(t *testing.T, f *os.File, what string) {
	t.Helper()
	if _, err := f.Stat(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("the kept file of %s is still open (stat: %v)", what, err)
	}
}

// TestCacheRangeKeptFiles checks the files range reads keep open: at most
// maxFiles, the least recently used closed first, and each closed when
// its entry is evicted or dropped, or at Close.
func TestCacheRangeKeptFiles(t *testing.T) {
	const size = 4 * minBlock
	dir := t.TempDir()
	c, _ := openBlockCache(t, Config{DiskBytes: 5 * size, Dir: dir, Policy: PolicyLRU}, minBlock)
	c.maxFiles = 3
	for i := range 5 {
		mustPut(t, c, testKey(i), testData(testKey(i), size))
	}
	for i := range 5 {
		wantRange(t, c, testKey(i), testData(testKey(i), size), 100, 1000, TierDisk)
	}
	kept := keptFiles(c)
	if len(kept) != 3 || kept[testKey(2)] == nil || kept[testKey(3)] == nil || kept[testKey(4)] == nil {
		t.Fatalf("kept files of %v; want those of the last 3 entries read", slices.Collect(maps.Keys(kept)))
	}
	for i := 5; i < 8; i++ { // evicts keys 0, 1, 2
		mustPut(t, c, testKey(i), testData(testKey(i), size))
	}
	if c.Contains(testKey(2)) != TierNone {
		t.Fatal("key 2 not evicted")
	}
	wantClosed(t, kept[testKey(2)], "an evicted entry")
	if got := keptFiles(c); len(got) != 2 || got[testKey(3)] != kept[testKey(3)] {
		t.Fatalf("after eviction, kept files %v", got)
	}
	wantRange(t, c, testKey(3), testData(testKey(3), size), 0, size, TierDisk) // through the kept file

	flipByte(func(n int64) int64 { return n - 1 })(t, filepath.Join(dir, fileName(testKey(4))))
	wantRangeMiss(t, c, testKey(4), size-1, 1)
	wantClosed(t, kept[testKey(4)], "a dropped entry")

	c.Close()
	wantClosed(t, kept[testKey(3)], "an entry at Close")
	if got := keptFiles(c); len(got) != 0 {
		t.Fatalf("after Close, kept files %v", got)
	}
}
