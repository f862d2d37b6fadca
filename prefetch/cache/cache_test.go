package cache

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// testKey is the key of the i-th test shard.
func testKey(i int) storage.Key {
	return storage.Key{Object: fmt.Sprintf("s3://bucket/train-%06d.tar", i), ETag: fmt.Sprintf(`"etag-%d"`, i)}
}

// testData returns n bytes determined by key and n.
func testData(key storage.Key, n int) []byte {
	r := rand.New(rand.NewPCG(uint64(crc32.ChecksumIEEE([]byte(key.Object+key.ETag))), uint64(n)))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// logBuffer collects log output; safe for concurrent use.
type logBuffer struct {
	mu sync.Mutex // guards b
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// openTestCache opens a cache that is closed when the test ends, and
// returns it with its log.
func openTestCache(t *testing.T, cfg Config) (*Cache, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	c, err := Open(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, logs
}

func mustPut(t *testing.T, c *Cache, key storage.Key, data []byte) {
	t.Helper()
	if err := c.Put(key, data); err != nil {
		t.Fatalf("Put(%s): %v", key.Object, err)
	}
}

// wantGet checks that Get(key) returns want from tier.
func wantGet(t *testing.T, c *Cache, key storage.Key, want []byte, tier Tier) {
	t.Helper()
	data, got, ok := c.Get(key)
	if !ok || got != tier {
		t.Fatalf("Get(%s) = tier %v, ok %v; want tier %v", key.Object, got, ok, tier)
	}
	if !bytes.Equal(data, want) {
		t.Fatalf("Get(%s) returned %d bytes that differ from the %d put", key.Object, len(data), len(want))
	}
}

func wantMiss(t *testing.T, c *Cache, key storage.Key) {
	t.Helper()
	if _, tier, ok := c.Get(key); ok || tier != TierNone {
		t.Fatalf("Get(%s) = tier %v, ok %v; want a miss", key.Object, tier, ok)
	}
}

// dirFiles lists the names in dir, sorted, but for the clean mark.
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		if de.Name() != cleanMark {
			names = append(names, de.Name())
		}
	}
	return names
}

func TestCacheTierAndPolicyStrings(t *testing.T) {
	for _, tc := range []struct {
		v    fmt.Stringer
		want string
	}{
		{TierNone, "none"}, {TierMemory, "memory"}, {TierDisk, "disk"}, {Tier(9), "Tier(9)"},
		{PolicyPlan, "plan"}, {PolicyLRU, "lru"}, {Policy(7), "Policy(7)"},
	} {
		if got := tc.v.String(); got != tc.want {
			t.Errorf("String() = %q, want %q", got, tc.want)
		}
	}
}

func TestCacheOpenRejectsBadConfig(t *testing.T) {
	for name, cfg := range map[string]Config{
		"negative memory":  {MemoryBytes: -1},
		"negative disk":    {DiskBytes: -1, Dir: t.TempDir()},
		"disk without dir": {DiskBytes: 1 << 20},
		"unknown policy":   {MemoryBytes: 1 << 20, Policy: Policy(5)},
	} {
		if c, err := Open(cfg, nil); err == nil {
			c.Close()
			t.Errorf("%s: Open(%+v) succeeded", name, cfg)
		}
	}
}

func TestCacheMemoryTier(t *testing.T) {
	const kib = 1 << 10
	k := []storage.Key{testKey(0), testKey(1), testKey(2), testKey(3)}
	c, _ := openTestCache(t, Config{MemoryBytes: 3 * kib, Policy: PolicyLRU})

	wantMiss(t, c, k[0])
	for _, key := range k[:3] {
		mustPut(t, c, key, testData(key, kib))
	}
	wantGet(t, c, k[0], testData(k[0], kib), TierMemory) // k[1] is now least recently used
	mustPut(t, c, k[3], testData(k[3], kib))

	for i, want := range []Tier{TierMemory, TierNone, TierMemory, TierMemory} {
		if got := c.Contains(k[i]); got != want {
			t.Errorf("Contains(%s) = %v, want %v", k[i].Object, got, want)
		}
	}
	// Put of a cached key is a no-op: the first bytes stay.
	mustPut(t, c, k[0], bytes.Repeat([]byte{1}, kib))
	wantGet(t, c, k[0], testData(k[0], kib), TierMemory)
	// A new ETag is a new entry.
	changed := storage.Key{Object: k[0].Object, ETag: `"changed"`}
	wantMiss(t, c, changed)

	m := c.Metrics()
	want := TierMetrics{Hits: 2, Entries: 3, Bytes: 3 * kib, Capacity: 3 * kib, Evictions: 1}
	if m.Memory != want || m.Misses != 2 || m.Disk != (TierMetrics{}) {
		t.Errorf("Metrics() = %+v, want memory %+v and 2 misses", m, want)
	}
}

func TestCacheDiskTier(t *testing.T) {
	const kib = 1 << 10
	dir := t.TempDir()
	c, _ := openTestCache(t, Config{MemoryBytes: 2 * kib, DiskBytes: 16 * kib, Dir: dir, Policy: PolicyLRU})
	big, small, other := testKey(0), testKey(1), testKey(2)

	// Larger than the memory tier: disk only, and not promoted.
	mustPut(t, c, big, testData(big, 4*kib))
	if got := c.Contains(big); got != TierDisk {
		t.Fatalf("Contains(big) = %v, want disk", got)
	}
	wantGet(t, c, big, testData(big, 4*kib), TierDisk)
	if got := c.Contains(big); got != TierDisk {
		t.Errorf("after Get, Contains(big) = %v, want disk (too big to promote)", got)
	}

	// Written through: in memory and on disk.
	mustPut(t, c, small, testData(small, kib))
	if _, err := os.Stat(filepath.Join(dir, fileName(small))); err != nil {
		t.Errorf("no file for a written-through entry: %v", err)
	}
	wantGet(t, c, small, testData(small, kib), TierMemory)

	// Pushed out of memory by two more, then read from disk and promoted.
	mustPut(t, c, other, testData(other, kib))
	mustPut(t, c, testKey(3), testData(testKey(3), kib))
	if got := c.Contains(small); got != TierDisk {
		t.Fatalf("Contains(small) = %v, want disk after eviction from memory", got)
	}
	wantGet(t, c, small, testData(small, kib), TierDisk)
	wantGet(t, c, small, testData(small, kib), TierMemory)

	m := c.Metrics()
	if m.Memory.Hits != 2 || m.Disk.Hits != 2 || m.Misses != 0 {
		t.Errorf("hits memory %d, disk %d, misses %d; want 2, 2, 0", m.Memory.Hits, m.Disk.Hits, m.Misses)
	}
	if m.Disk.Entries != 4 || m.Disk.Bytes != 7*kib {
		t.Errorf("disk holds %d entries, %d bytes; want 4, %d", m.Disk.Entries, m.Disk.Bytes, 7*kib)
	}
}

func TestCacheDiskEviction(t *testing.T) {
	const kib = 1 << 10
	dir := t.TempDir()
	c, _ := openTestCache(t, Config{DiskBytes: 3 * kib, Dir: dir, Policy: PolicyLRU})
	for i := range 5 {
		mustPut(t, c, testKey(i), testData(testKey(i), kib))
	}
	want := []string{fileName(testKey(2)), fileName(testKey(3)), fileName(testKey(4))}
	slices.Sort(want)
	if got := dirFiles(t, dir); !slices.Equal(got, want) {
		t.Errorf("files %v, want those of the last three entries %v", got, want)
	}
	if m := c.Metrics(); m.Disk.Evictions != 2 || m.Disk.Entries != 3 {
		t.Errorf("disk evictions %d, entries %d; want 2, 3", m.Disk.Evictions, m.Disk.Entries)
	}
}

func TestCacheRestart(t *testing.T) {
	const n, kib = 12, 1 << 10
	dir := t.TempDir()
	cfg := Config{MemoryBytes: 4 * kib, DiskBytes: 64 * kib, Dir: dir}
	first, _ := openTestCache(t, cfg)
	for i := range n {
		mustPut(t, first, testKey(i), testData(testKey(i), kib+i))
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	second, _ := openTestCache(t, cfg)
	m := second.Metrics()
	if m.Disk.Entries != n || m.Memory.Entries != 0 {
		t.Fatalf("reopened cache holds %d disk, %d memory entries; want %d, 0", m.Disk.Entries, m.Memory.Entries, n)
	}
	for i := range n {
		wantGet(t, second, testKey(i), testData(testKey(i), kib+i), TierDisk)
	}
	wantGet(t, second, testKey(n-1), testData(testKey(n-1), kib+n-1), TierMemory)
}

func TestCacheRestartTrimsOldestFirst(t *testing.T) {
	const kib = 1 << 10
	dir := t.TempDir()
	first, _ := openTestCache(t, Config{DiskBytes: 8 * kib, Dir: dir})
	base := time.Now().Add(-time.Hour)
	for i := range 8 {
		mustPut(t, first, testKey(i), testData(testKey(i), kib))
		// Written in order, but make the order unmistakable to the scan.
		mod := base.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(filepath.Join(dir, fileName(testKey(i))), mod, mod); err != nil {
			t.Fatal(err)
		}
	}
	first.Close()

	second, _ := openTestCache(t, Config{DiskBytes: 5 * kib, Dir: dir})
	for i := range 8 {
		want := TierDisk
		if i < 3 {
			want = TierNone
		}
		if got := second.Contains(testKey(i)); got != want {
			t.Errorf("entry %d: Contains = %v, want %v", i, got, want)
		}
	}
	if m := second.Metrics(); m.Disk.Evictions != 3 || m.Disk.Bytes != 5*kib {
		t.Errorf("after open: %d evictions, %d bytes; want 3, %d", m.Disk.Evictions, m.Disk.Bytes, 5*kib)
	}
	if got := len(dirFiles(t, dir)); got != 5 {
		t.Errorf("%d files left, want 5", got)
	}
}

// damage changes the entry file at path in some way a reader must notice.
type damage func(t *testing.T, path string)

func flipByte(at func(size int64) int64) damage {
	return func(t *testing.T, path string) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b[at(int64(len(b)))] ^= 0x40
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func resize(delta int64) damage {
	return func(t *testing.T, path string) {
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(path, fi.Size()+delta); err != nil {
			t.Fatal(err)
		}
	}
}

var damages = []struct {
	name string
	do   damage
}{
	{"flip last data byte", flipByte(func(n int64) int64 { return n - 1 })},
	{"flip first data byte", flipByte(func(n int64) int64 { return n - 2048 })},
	{"flip byte in key", flipByte(func(int64) int64 { return headerSize + 3 })},
	{"flip byte in length", flipByte(func(int64) int64 { return 17 })},
	{"truncate data", resize(-100)},
	{"truncate to header", func(t *testing.T, path string) {
		if err := os.Truncate(path, 10); err != nil {
			t.Fatal(err)
		}
	}},
	{"empty file", func(t *testing.T, path string) {
		if err := os.Truncate(path, 0); err != nil {
			t.Fatal(err)
		}
	}},
	{"extra bytes", resize(+1)},
	{"another entry's file", func(t *testing.T, path string) {
		other := testKey(99)
		b := append(encodeHead(other, testData(other, 2048), defaultBlockSize), testData(other, 2048)...)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}},
}

// TestCacheCorruptDiskEntry damages an entry file while the cache runs:
// Get must miss, remove the file, count it and log the object.
func TestCacheCorruptDiskEntry(t *testing.T) {
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			dir := t.TempDir()
			c, logs := openTestCache(t, Config{DiskBytes: 1 << 20, Dir: dir})
			key, good := testKey(1), testKey(2)
			mustPut(t, c, key, testData(key, 2048))
			mustPut(t, c, good, testData(good, 2048))
			path := filepath.Join(dir, fileName(key))
			d.do(t, path)

			wantMiss(t, c, key)
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("damaged file still there (stat: %v)", err)
			}
			if got := c.Contains(key); got != TierNone {
				t.Errorf("Contains = %v after the entry was dropped", got)
			}
			m := c.Metrics()
			if m.Corrupt != 1 || m.Errors != 0 || m.Disk.Entries != 1 || m.Disk.Bytes != 2048 {
				t.Errorf("corrupt %d, errors %d, disk entries %d, bytes %d; want 1, 0, 1, 2048",
					m.Corrupt, m.Errors, m.Disk.Entries, m.Disk.Bytes)
			}
			if !strings.Contains(logs.String(), key.Object) || !strings.Contains(logs.String(), "level=WARN") {
				t.Errorf("no warning naming %s in the log:\n%s", key.Object, logs)
			}
			wantGet(t, c, good, testData(good, 2048), TierDisk)
			// The key can be cached again.
			mustPut(t, c, key, testData(key, 2048))
			wantGet(t, c, key, testData(key, 2048), TierDisk)
		})
	}
}

// TestCacheCorruptDiskEntryAtOpen damages an entry file between runs: the
// header and length checks at open, or the checksum at the first Get,
// must drop it.
func TestCacheCorruptDiskEntryAtOpen(t *testing.T) {
	for _, d := range damages {
		t.Run(d.name, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{DiskBytes: 1 << 20, Dir: dir}
			first, _ := openTestCache(t, cfg)
			key, good := testKey(1), testKey(2)
			mustPut(t, first, key, testData(key, 2048))
			mustPut(t, first, good, testData(good, 2048))
			first.Close()
			d.do(t, filepath.Join(dir, fileName(key)))

			c, _ := openTestCache(t, cfg)
			wantMiss(t, c, key)
			wantGet(t, c, good, testData(good, 2048), TierDisk)
			if got, want := dirFiles(t, dir), []string{fileName(good)}; !slices.Equal(got, want) {
				t.Errorf("files %v, want %v", got, want)
			}
			if m := c.Metrics(); m.Corrupt != 1 || m.Disk.Entries != 1 {
				t.Errorf("corrupt %d, disk entries %d; want 1, 1", m.Corrupt, m.Disk.Entries)
			}
		})
	}
}

func TestCacheVanishedFileIsAMiss(t *testing.T) {
	dir := t.TempDir()
	c, logs := openTestCache(t, Config{DiskBytes: 1 << 20, Dir: dir})
	key := testKey(1)
	mustPut(t, c, key, testData(key, 100))
	if err := os.Remove(filepath.Join(dir, fileName(key))); err != nil {
		t.Fatal(err)
	}
	wantMiss(t, c, key)
	if m := c.Metrics(); m.Corrupt != 0 || m.Errors != 1 || m.Disk.Entries != 0 {
		t.Errorf("corrupt %d, errors %d, disk entries %d; want 0, 1, 0", m.Corrupt, m.Errors, m.Disk.Entries)
	}
	if !strings.Contains(logs.String(), key.Object) {
		t.Errorf("no warning naming %s:\n%s", key.Object, logs)
	}
}

func TestCacheAtomicWrite(t *testing.T) {
	dir := t.TempDir()
	// A crash left a temporary file; someone else left a file of theirs.
	for name, body := range map[string]string{"put-123" + tmpSuffix: "half a shard", "README": "not ours"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, _ := openTestCache(t, Config{MemoryBytes: 1 << 20, DiskBytes: 1 << 20, Dir: dir})
	want := []string{"README"}
	for i := range 10 {
		mustPut(t, c, testKey(i), testData(testKey(i), 1000*i))
		want = append(want, fileName(testKey(i)))
	}
	slices.Sort(want)
	if got := dirFiles(t, dir); !slices.Equal(got, want) {
		t.Errorf("files %v, want %v (no temporary files, others' files kept)", got, want)
	}
}

func TestCacheFailedDiskWrite(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	c, _ := openTestCache(t, Config{MemoryBytes: 1 << 20, DiskBytes: 1 << 20, Dir: dir})
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	key := testKey(1)
	err := c.Put(key, testData(key, 100))
	var e *storage.Error
	if !errors.Is(err, storage.ErrUnavailable) || !errors.As(err, &e) || e.Object != key.Object {
		t.Fatalf("Put into a removed Dir: %v; want an *Error of kind ErrUnavailable naming the object", err)
	}
	// The memory tier still has it; the disk tier has nothing reserved.
	wantGet(t, c, key, testData(key, 100), TierMemory)
	if m := c.Metrics(); m.Disk.Entries != 0 || m.Disk.Bytes != 0 || m.Errors != 1 {
		t.Errorf("disk entries %d, bytes %d, errors %d; want 0, 0, 1", m.Disk.Entries, m.Disk.Bytes, m.Errors)
	}
}

func TestCacheTooLarge(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cfg         Config
		size        int
		wantErr     bool
		wantContain Tier
	}{
		{"fits memory", Config{MemoryBytes: 1000}, 1000, false, TierMemory},
		{"larger than memory, no disk", Config{MemoryBytes: 1000}, 1001, true, TierNone},
		{"no tier at all", Config{}, 1, true, TierNone},
		{"larger than memory, fits disk", Config{MemoryBytes: 1000, DiskBytes: 2000}, 2000, false, TierDisk},
		{"larger than both", Config{MemoryBytes: 1000, DiskBytes: 2000}, 2001, true, TierNone},
		{"fits memory, larger than disk", Config{MemoryBytes: 3000, DiskBytes: 2000}, 2500, false, TierMemory},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.DiskBytes > 0 {
				tc.cfg.Dir = t.TempDir()
			}
			c, _ := openTestCache(t, tc.cfg)
			key := testKey(7)
			err := c.Put(key, make([]byte, tc.size))
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("Put: %v", err)
				}
			} else {
				var e *storage.Error
				if !errors.Is(err, storage.ErrTooLarge) || !errors.As(err, &e) || e.Object != key.Object || e.Op != "cache" {
					t.Fatalf("Put: %v; want an *Error of kind ErrTooLarge naming %s", err, key.Object)
				}
			}
			if got := c.Contains(key); got != tc.wantContain {
				t.Errorf("Contains = %v, want %v", got, tc.wantContain)
			}
		})
	}
}

func TestCacheClose(t *testing.T) {
	dir := t.TempDir()
	c, _ := openTestCache(t, Config{MemoryBytes: 1 << 20, DiskBytes: 1 << 20, Dir: dir})
	key := testKey(1)
	mustPut(t, c, key, testData(key, 10))
	for range 2 {
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
	}
	if _, _, ok := c.Get(key); ok {
		t.Error("Get after Close found an entry")
	}
	if got := c.Contains(key); got != TierNone {
		t.Errorf("Contains after Close = %v", got)
	}
	if err := c.Put(testKey(2), []byte("x")); !errors.Is(err, storage.ErrUnavailable) {
		t.Errorf("Put after Close: %v; want ErrUnavailable", err)
	}
	if m := c.Metrics(); m.Memory.Entries != 0 || m.Disk.Entries != 1 {
		t.Errorf("after Close: %d memory, %d disk entries; want 0, 1", m.Memory.Entries, m.Disk.Entries)
	}
	if got := dirFiles(t, dir); len(got) != 1 {
		t.Errorf("files after Close %v, want the one entry", got)
	}
	if _, err := os.Stat(filepath.Join(dir, cleanMark)); err != nil {
		t.Errorf("no clean mark after Close: %v", err)
	}
}

// hashOracle is a fixed, arbitrary oracle: some keys are not needed, the
// others at a distance derived from the key.
type hashOracle struct{}

func (hashOracle) NextUse(key storage.Key) int64 {
	return int64(crc32.ChecksumIEEE([]byte(key.Object))%50) - 10
}

// TestCacheConcurrent runs many goroutines of Get, Put, Contains, Metrics
// and SetOracle against small tiers, checking every byte returned. Run
// with -race.
func TestCacheConcurrent(t *testing.T) {
	for _, p := range []Policy{PolicyPlan, PolicyLRU} {
		t.Run(p.String(), func(t *testing.T) {
			dir := t.TempDir()
			c, _ := openTestCache(t, Config{MemoryBytes: 24 << 10, DiskBytes: 48 << 10, Dir: dir, Policy: p})
			const workers, ops, keys = 16, 400, 48
			size := func(k int) int { return 512 + (k%7)*512 }
			var gets atomic.Int64
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					r := rand.New(rand.NewPCG(uint64(w), 42))
					for range ops {
						k := r.IntN(keys)
						key := testKey(k)
						switch op := r.IntN(20); {
						case op == 0:
							c.SetOracle(nil)
						case op == 1:
							c.SetOracle(hashOracle{})
						case op == 2:
							m := c.Metrics()
							if m.Memory.Bytes > m.Memory.Capacity || m.Disk.Bytes > m.Disk.Capacity {
								t.Errorf("over capacity: %+v", m)
							}
						case op < 8:
							if err := c.Put(key, testData(key, size(k))); err != nil {
								t.Errorf("Put: %v", err)
							}
						default:
							c.Contains(key)
							gets.Add(1)
							if data, _, ok := c.Get(key); ok && !bytes.Equal(data, testData(key, size(k))) {
								t.Errorf("Get(%s) returned wrong bytes", key.Object)
							}
						}
					}
				})
			}
			wg.Wait()

			m := c.Metrics()
			if got := m.Memory.Hits + m.Disk.Hits + m.Misses; got != gets.Load() {
				t.Errorf("hits+misses = %d, want %d gets", got, gets.Load())
			}
			if m.Corrupt != 0 || m.Errors != 0 {
				t.Errorf("corrupt %d, errors %d; want none", m.Corrupt, m.Errors)
			}
			if files := dirFiles(t, dir); len(files) != m.Disk.Entries {
				t.Errorf("%d files in Dir, %d disk entries", len(files), m.Disk.Entries)
			}
			for k := range keys {
				if tier := c.Contains(testKey(k)); tier != TierNone {
					wantGet(t, c, testKey(k), testData(testKey(k), size(k)), tier)
				}
			}
			t.Logf("%s: %+v", p, m)
		})
	}
}

// TestCacheMetricsAddUp replays the same random operations against several
// configurations and checks the metrics against what the test observed
// and against the files in Dir.
func TestCacheMetricsAddUp(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"memory only, lru", Config{MemoryBytes: 20 << 10, Policy: PolicyLRU}},
		{"memory only, plan", Config{MemoryBytes: 20 << 10, Policy: PolicyPlan}},
		{"disk only", Config{DiskBytes: 30 << 10}},
		{"both tiers, lru", Config{MemoryBytes: 10 << 10, DiskBytes: 30 << 10, Policy: PolicyLRU}},
		{"both tiers, plan", Config{MemoryBytes: 10 << 10, DiskBytes: 30 << 10, Policy: PolicyPlan}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.cfg.DiskBytes > 0 {
				tc.cfg.Dir = t.TempDir()
			}
			c, _ := openTestCache(t, tc.cfg)
			c.SetOracle(hashOracle{})
			r := rand.New(rand.NewPCG(1, 2))
			var gets, hits [3]int64 // by tier
			for range 2000 {
				k := r.IntN(40)
				key := testKey(k)
				if r.IntN(3) == 0 {
					mustPut(t, c, key, testData(key, 1<<10+k))
					continue
				}
				_, tier, ok := c.Get(key)
				gets[0]++
				if ok {
					hits[tier]++
				}
			}
			m := c.Metrics()
			if m.Memory.Hits != hits[TierMemory] || m.Disk.Hits != hits[TierDisk] {
				t.Errorf("metrics count hits %d memory, %d disk; the test saw %d, %d",
					m.Memory.Hits, m.Disk.Hits, hits[TierMemory], hits[TierDisk])
			}
			if got := m.Memory.Hits + m.Disk.Hits + m.Misses; got != gets[0] {
				t.Errorf("hits+misses = %d, want %d gets", got, gets[0])
			}
			// Entries and bytes agree with what Contains and Dir show.
			var inMem int
			var memBytes int64
			for k := range 40 {
				if c.Contains(testKey(k)) == TierMemory {
					inMem++
					memBytes += int64(1<<10 + k)
				}
			}
			if m.Memory.Entries != inMem || m.Memory.Bytes != memBytes || m.Memory.Bytes > m.Memory.Capacity {
				t.Errorf("memory: %d entries, %d bytes of %d; Contains shows %d entries, %d bytes",
					m.Memory.Entries, m.Memory.Bytes, m.Memory.Capacity, inMem, memBytes)
			}
			if tc.cfg.DiskBytes > 0 {
				var diskBytes int64
				files := dirFiles(t, tc.cfg.Dir)
				for _, name := range files {
					f, h, _, err := openEntryFile(filepath.Join(tc.cfg.Dir, name), nil)
					if err != nil {
						t.Fatal(err)
					}
					f.Close()
					diskBytes += h.dataLen
				}
				if m.Disk.Entries != len(files) || m.Disk.Bytes != diskBytes || m.Disk.Bytes > m.Disk.Capacity {
					t.Errorf("disk: %d entries, %d bytes of %d; Dir has %d files, %d bytes",
						m.Disk.Entries, m.Disk.Bytes, m.Disk.Capacity, len(files), diskBytes)
				}
			}
			t.Logf("%+v", m)
		})
	}
}
