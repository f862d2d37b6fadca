package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// Tier is where a cache entry was found.
type Tier int

const (
	TierNone   Tier = iota // not cached
	TierMemory             // the memory tier
	TierDisk               // the disk tier
)

// String returns "none", "memory" or "disk".
func (t Tier) String() string {
	switch t {
	case TierNone:
		return "none"
	case TierMemory:
		return "memory"
	case TierDisk:
		return "disk"
	}
	return fmt.Sprintf("Tier(%d)", int(t))
}

// Config sizes the cache tiers.
type Config struct {
	// MemoryBytes is the capacity of the memory tier, in bytes of shard
	// data. 0 disables the tier.
	MemoryBytes int64
	// DiskBytes is the capacity of the disk tier, in bytes of shard data
	// (each file adds a header, the key and a table of checksums, 4 bytes
	// per 16 KiB of data, padded to 4 KiB, not counted). 0 disables the
	// tier.
	DiskBytes int64
	// Dir holds the disk tier's files; it is created if missing and must
	// not be shared with another Cache. Required when DiskBytes > 0.
	Dir string
	// Policy chooses eviction victims in both tiers.
	Policy Policy
	// Memory, when set, supplies the memory tier's bytes (a pinned region:
	// see gpu.Arena), and entries are copied into it; it must hold at least
	// MemoryBytes. Nil keeps entries on the Go heap, as handed to Put.
	Memory Allocator
}

// Allocator hands out the memory tier's bytes. gpu.Arena, over one
// pinned, mlocked region, is the one stokerd uses.
type Allocator interface {
	// Alloc returns n bytes, or false when no free extent is big enough.
	Alloc(n int) ([]byte, bool)
	// Free returns bytes Alloc gave.
	Free(b []byte)
}

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		MemoryBytes: 8 << 30,                                     // 8 GiB: thousands of MiB-sized shards
		DiskBytes:   256 << 30,                                   // 256 GiB of local NVMe
		Dir:         filepath.Join(os.TempDir(), "stoker-cache"), // set to the NVMe mount in production
		Policy:      PolicyPlan,                                  // the plan knows the future: use it
	}
}

// TierMetrics describes one tier.
type TierMetrics struct {
	Hits      int64 // Gets answered from this tier
	Entries   int   // entries held now (disk: including writes in progress)
	Bytes     int64 // bytes of shard data held now
	Capacity  int64 // the tier's configured capacity
	Evictions int64 // entries evicted to make room, or to fit at open
	Bypasses  int64 // entries the policy did not admit (see PolicyPlan)
	// ReadBytes counts the data bytes read from the tier's files by Gets,
	// Acquires, AcquireRanges and Promotes (disk tier only): whole entries,
	// and ranges rounded out to blocks.
	ReadBytes int64
}

// Metrics is a snapshot of a Cache's counters. Every Get is counted
// once: Memory.Hits + Disk.Hits + Misses is the number of Gets.
type Metrics struct {
	Memory TierMetrics
	Disk   TierMetrics
	// Misses counts Gets answered by neither tier.
	Misses int64
	// Corrupt counts disk entries dropped because their checksum, length
	// or header was wrong.
	Corrupt int64
	// Errors counts other disk failures: writes that failed, files that
	// vanished or could not be read.
	Errors int64
}

// Cache is the two-tier shard cache: a memory tier, written through to a
// disk tier that survives restarts. Entries are whole shards; a reader may
// take a range of one (AcquireRange), which the disk tier serves by
// reading only the blocks that hold it. Eviction in both tiers follows the
// configured Policy. Safe for concurrent use.
type Cache struct {
	cfg    Config
	log    *slog.Logger
	oracle atomic.Pointer[oracleBox]

	// life is held shared by every Put and every disk read, and
	// exclusively by Close, so that Close waits for the I/O in flight.
	life   sync.RWMutex
	closed atomic.Bool

	memMu sync.Mutex // guards mem and its entries; never held during I/O
	mem   *index
	// memRefs counts Refs to memory-tier bytes not yet released; drained
	// is closed when it reaches zero after Close (see Drained).
	memRefs  int
	drained  chan struct{}
	dropOnce sync.Once

	// diskMu guards disk and its entries, and the entry files' names:
	// a file is removed only together with its index entry, under diskMu.
	// Reads and writes of file contents happen outside it, on entries
	// pinned meanwhile.
	diskMu sync.Mutex
	disk   *index // nil without a disk tier

	diskHealth diskHealth // rate-limits disk write warnings, turns writes off while they fail

	memHits, diskHits, misses   atomic.Int64
	memEvictions, diskEvictions atomic.Int64
	memBypasses, diskBypasses   atomic.Int64
	corrupt, errs               atomic.Int64
	diskReadBytes               atomic.Int64

	open     []*entry // disk entries whose file range reads keep open; guarded by diskMu
	maxFiles int      // how many files range reads keep open: defaultMaxFiles, but in benchmarks
	bufs     bufPool  // buffers of range reads from the disk tier
	block    int64    // block size of the disk files it writes: defaultBlockSize, but in tests
}

// oracleBox lets an interface value live in an atomic.Pointer.
type oracleBox struct{ o Oracle }

var errCacheClosed = errors.New("cache closed")

// Open opens a cache. With a disk tier it creates cfg.Dir, takes in
// the entries a previous Cache left there (their checksums are verified
// when read, and, when that Cache did not close cleanly, before
// DiskExtent hands them out), drops damaged files and leftover temporary
// files, and evicts the oldest entries until the tier fits cfg.DiskBytes.
// log may be nil.
func Open(cfg Config, log *slog.Logger) (*Cache, error) {
	switch {
	case cfg.MemoryBytes < 0 || cfg.DiskBytes < 0:
		return nil, fmt.Errorf("prefetch: cache capacities must not be negative (memory %d, disk %d)", cfg.MemoryBytes, cfg.DiskBytes)
	case cfg.DiskBytes > 0 && cfg.Dir == "":
		return nil, errors.New("prefetch: cache with a disk tier needs a Dir")
	case cfg.Policy != PolicyPlan && cfg.Policy != PolicyLRU:
		return nil, fmt.Errorf("prefetch: unknown cache policy %v", cfg.Policy)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.DiskBytes > 0 {
		// DiskExtent hands its paths to readers in other processes, with
		// other working directories.
		dir, err := filepath.Abs(cfg.Dir)
		if err != nil {
			return nil, &storage.Error{Op: "cache", Object: cfg.Dir, Kind: storage.ErrUnavailable, Err: err}
		}
		cfg.Dir = dir
	}
	c := &Cache{cfg: cfg, log: log, mem: newIndex(cfg.Policy, cfg.MemoryBytes), drained: make(chan struct{}),
		block: defaultBlockSize, maxFiles: defaultMaxFiles}
	if cfg.DiskBytes > 0 {
		c.disk = newIndex(cfg.Policy, cfg.DiskBytes)
		if err := c.openDisk(); err != nil {
			return nil, &storage.Error{Op: "cache", Object: cfg.Dir, Kind: storage.ErrUnavailable, Err: err}
		}
	}
	return c, nil
}

// openDisk creates Dir and loads the entries found in it.
func (c *Cache) openDisk() error {
	if err := os.MkdirAll(c.cfg.Dir, 0o755); err != nil {
		return err
	}
	clean, err := takeCleanMark(c.cfg.Dir)
	if err != nil {
		return err
	}
	found, bad, err := scanDir(c.cfg.Dir)
	if err != nil {
		return err
	}
	for name, err := range bad {
		c.log.Warn("cache: dropping unreadable disk entry", "file", filepath.Join(c.cfg.Dir, name), "err", err)
		c.dropFile(name, err)
	}
	for _, f := range found {
		e := &entry{key: f.h.key, size: f.h.dataLen, ready: true, file: f.h.layout, unverified: !clean}
		c.disk.entries[e.key] = e
		c.disk.used += e.size
		c.disk.touch(e)
	}
	victims := c.disk.trim()
	c.removeFiles(victims)
	c.diskEvictions.Add(int64(len(victims)))
	c.log.Info("cache: opened", "dir", c.cfg.Dir, "entries", len(c.disk.entries), "bytes", c.disk.used,
		"evicted", len(victims), "dropped", len(bad), "closed_cleanly", clean)
	return nil
}

// SetOracle sets the Oracle that PolicyPlan consults; nil removes it.
// Safe to call at any time, concurrently with everything else.
func (c *Cache) SetOracle(o Oracle) {
	if o == nil {
		c.oracle.Store(nil)
		return
	}
	c.oracle.Store(&oracleBox{o: o})
}

func (c *Cache) loadOracle() Oracle {
	if b := c.oracle.Load(); b != nil {
		return b.o
	}
	return nil
}

// Get returns key's data: from the memory tier, or else from the disk
// tier after verifying every block's checksum; a disk entry found damaged is removed,
// logged and reported as a miss, never returned. A disk hit is promoted to
// the memory tier if the policy admits it. The returned slice is read-only;
// it is shared with the cache and other callers when the memory tier is on
// the Go heap, and a copy when it is in an Allocator's region (whose bytes
// are reused after eviction: use Acquire to read them without a copy).
func (c *Cache) Get(key storage.Key) (data []byte, tier Tier, ok bool) {
	return c.get(key, true)
}

// Peek is Get not counted in the metrics (hits, misses): for a caller
// that looks again after a miss its own Get counted already.
func (c *Cache) Peek(key storage.Key) (data []byte, tier Tier, ok bool) {
	return c.get(key, false)
}

// get is Get, counted in the metrics or not.
func (c *Cache) get(key storage.Key, count bool) (data []byte, tier Tier, ok bool) {
	r, tier, ok := c.acquire(key, count)
	if !ok {
		return nil, TierNone, false
	}
	data = r.Bytes()
	if r.e != nil && c.cfg.Memory != nil {
		data = append([]byte(nil), data...)
	}
	r.Release()
	return data, tier, true
}

// Acquire is Get without a copy: the Ref's bytes stay valid, and its
// memory-tier entry is not evicted, until Release. Every Ref must be
// released, once.
func (c *Cache) Acquire(key storage.Key) (r *Ref, tier Tier, ok bool) {
	return c.acquire(key, true)
}

// acquire is Acquire; count says whether it counts as a hit or a miss
// (not for a second look on behalf of a Get already counted).
func (c *Cache) acquire(key storage.Key, count bool) (r *Ref, tier Tier, ok bool) {
	if c.closed.Load() {
		return nil, TierNone, false
	}
	add := func(n *atomic.Int64) {
		if count {
			n.Add(1)
		}
	}
	if r, ok := c.pinMem(key, true); ok {
		add(&c.memHits)
		return r, TierMemory, true
	}
	if c.disk != nil {
		if r, _, ok := c.getDisk(key); ok {
			add(&c.diskHits)
			return r, TierDisk, true
		}
	}
	add(&c.misses)
	return nil, TierNone, false
}

// Pin is Acquire of the memory tier alone, counted neither as a hit nor
// as a miss: for a holder that already has the entry's bytes (through
// another Ref) and hands them on.
func (c *Cache) Pin(key storage.Key) (*Ref, bool) {
	if c.closed.Load() {
		return nil, false
	}
	return c.pinMem(key, false)
}

// pinMem pins key's memory entry, unless it is absent or still filling,
// and returns a Ref to it; with touch it marks the entry used now.
func (c *Cache) pinMem(key storage.Key, touch bool) (*Ref, bool) {
	c.memMu.Lock()
	defer c.memMu.Unlock()
	e := c.mem.entries[key]
	if e == nil || e.filling {
		return nil, false
	}
	if touch {
		c.mem.touch(e)
	}
	e.pins++
	c.memRefs++
	return &Ref{data: e.data, c: c, e: e}, true
}

// Ref holds bytes read from the cache, or fetched, until Release. Its
// bytes are read-only.
type Ref struct {
	data     []byte
	c        *Cache // with e: a pinned memory-tier entry; with buf: the pool it goes back to
	e        *entry
	buf      *[]byte // a buffer of c's pool that data lies in
	released atomic.Bool
}

// HeapRef wraps bytes on the Go heap, which need no pin: its Release only
// marks it released.
func HeapRef(data []byte) *Ref { return &Ref{data: data} }

// Bytes returns the bytes; they must not be used after Release.
func (r *Ref) Bytes() []byte { return r.data }

// Release unpins the entry. A second Release panics: it would unpin
// another holder's pin.
func (r *Ref) Release() {
	if r.released.Swap(true) {
		panic("prefetch: Ref released twice")
	}
	if r.e != nil {
		r.c.unpinMem(r.e)
	}
	if r.buf != nil {
		r.c.bufs.put(r.buf)
	}
}

// unpinMem drops one pin of a memory entry.
func (c *Cache) unpinMem(e *entry) {
	c.memMu.Lock()
	defer c.memMu.Unlock()
	c.unpinLocked(e)
}

// unpinLocked drops one pin counted in memRefs; an entry dropped by Close
// is freed with its last pin. Called with memMu held.
func (c *Cache) unpinLocked(e *entry) {
	e.pins--
	c.memRefs--
	if e.pins == 0 && e.dropped {
		c.freeMem(e)
	}
	if c.memRefs == 0 && c.closed.Load() {
		c.dropOnce.Do(func() { close(c.drained) })
	}
}

// freeMem returns an entry's bytes to the Allocator, if it has one. Called
// with memMu held, for an entry no longer in the index and not pinned.
func (c *Cache) freeMem(e *entry) {
	if c.cfg.Memory != nil && e.data != nil {
		c.cfg.Memory.Free(e.data)
	}
	e.data = nil
}

// Put adds key's data to the memory tier (evicting as needed) and writes
// it through to the disk tier, when it fits each; it returns once the
// disk write is done. An entry larger than the memory tier goes to disk
// only; one larger than both is an *Error of kind ErrTooLarge. Put of a key
// already cached is a no-op, and so, for a tier, is a bypass by the policy:
// both return nil. A failed disk write is an *Error of kind ErrUnavailable
// (the memory tier may still hold the entry). The cache keeps data: the
// caller must not modify it afterwards.
func (c *Cache) Put(key storage.Key, data []byte) error {
	c.life.RLock()
	defer c.life.RUnlock()
	if c.closed.Load() {
		return &storage.Error{Op: "cache", Object: key.Object, Kind: storage.ErrUnavailable, Err: errCacheClosed}
	}
	size := int64(len(data))
	toMem := size <= c.cfg.MemoryBytes
	toDisk := c.disk != nil && size <= c.cfg.DiskBytes
	if !toMem && !toDisk {
		return &storage.Error{Op: "cache", Object: key.Object, Kind: storage.ErrTooLarge,
			Err: fmt.Errorf("%d bytes; memory tier holds %d, disk tier %d", size, c.cfg.MemoryBytes, c.cfg.DiskBytes)}
	}
	if c.has(key) {
		return nil
	}
	if toMem {
		c.putMem(key, data)
	}
	if toDisk {
		return c.putDisk(key, data)
	}
	return nil
}

// has reports whether key is in either tier, disk writes in progress
// included.
func (c *Cache) has(key storage.Key) bool {
	c.memMu.Lock()
	in := c.mem.entries[key] != nil
	c.memMu.Unlock()
	if in || c.disk == nil {
		return in
	}
	c.diskMu.Lock()
	defer c.diskMu.Unlock()
	return c.disk.entries[key] != nil
}

// putMem admits key's data to the memory tier if the policy allows, and
// reports whether the memory tier holds key afterwards. With an Allocator
// the bytes are copied into its region, outside the lock.
func (c *Cache) putMem(key storage.Key, data []byte) bool {
	e, buf, held, ok := c.admitMem(key, int64(len(data)), data)
	if held || !ok {
		return held
	}
	if buf != nil {
		copy(buf, data)
		c.fillDone(e, buf, false)
	}
	return true
}

// admitMem admits an entry of size bytes for key to the memory tier if the
// policy allows (ok), unless the tier holds key already (held). On the
// heap, or for an empty entry, the entry holds data at once. With an
// Allocator it returns buf, the entry's bytes in the region, for the caller
// to fill and then hand to fillDone (or fillFailed); meanwhile the entry
// is filling, which Acquire treats as absent, and pinned, counted as a Ref
// so that Drained waits for the writes into the region.
func (c *Cache) admitMem(key storage.Key, size int64, data []byte) (e *entry, buf []byte, held, ok bool) {
	if size > c.cfg.MemoryBytes {
		return nil, nil, false, false
	}
	o := c.memOracle()
	c.memMu.Lock()
	if c.closed.Load() || c.mem.entries[key] != nil {
		held = c.mem.entries[key] != nil
		c.memMu.Unlock()
		return nil, nil, held, false
	}
	e = &entry{key: key, size: size, data: data}
	victims, ok := c.mem.admit(e, o)
	for _, v := range victims {
		c.freeMem(v)
	}
	evicted := len(victims)
	if ok && c.cfg.Memory != nil && size > 0 {
		e.data, e.pins, e.filling = nil, 1, true
		c.memRefs++
		if buf, evicted, ok = c.allocMem(e, o, evicted); !ok {
			c.unpinLocked(e)
		}
	}
	c.memMu.Unlock()
	c.memEvictions.Add(int64(evicted))
	if !ok {
		c.memBypasses.Add(1)
	}
	return e, buf, false, ok
}

// fillDone makes an entry admitMem left filling readable, its bytes being
// buf. With keep the caller's pin becomes the returned Ref's; otherwise it
// is dropped (and the entry freed if Close came meanwhile) and fillDone
// returns nil.
func (c *Cache) fillDone(e *entry, buf []byte, keep bool) *Ref {
	c.memMu.Lock()
	defer c.memMu.Unlock()
	e.data, e.filling = buf, false
	if keep {
		return &Ref{data: buf, c: c, e: e}
	}
	c.unpinLocked(e)
	return nil
}

// fillFailed removes an entry admitMem left filling whose bytes could not
// be filled, and frees them.
func (c *Cache) fillFailed(e *entry, buf []byte) {
	c.memMu.Lock()
	defer c.memMu.Unlock()
	c.mem.remove(e)
	e.data, e.filling, e.dropped = buf, false, true
	c.unpinLocked(e)
}

// allocMem finds room for e, already admitted, in the Allocator's region:
// a region fragmented, or rounding sizes up, can lack a free extent where
// the index sees room, so it evicts more entries, in the policy's order,
// until one fits. When none does, e leaves the index (a bypass). Called
// with memMu held; evicted counts victims so far and is returned updated.
func (c *Cache) allocMem(e *entry, o Oracle, evicted int) ([]byte, int, bool) {
	newNext := int64(-1)
	if o != nil {
		newNext = o.NextUse(e.key)
	}
	for {
		if buf, ok := c.cfg.Memory.Alloc(int(e.size)); ok {
			return buf, evicted, true
		}
		v, ok := c.mem.evictOne(o, newNext)
		if !ok {
			c.mem.remove(e)
			return nil, evicted, false
		}
		c.freeMem(v)
		evicted++
	}
}

// PutAsync is Put for a caller that must not wait for the disk, such as a
// fetch that readers are waiting on. When the memory tier admits the entry,
// it holds it when PutAsync returns and the disk write goes on in the
// background (Close waits for it; its failure is logged and counted like
// Put's). Otherwise PutAsync is Put, so that a Get right after it finds
// the entry either way.
func (c *Cache) PutAsync(key storage.Key, data []byte) error {
	c.life.RLock()
	size := int64(len(data))
	if c.closed.Load() || c.disk == nil || size > c.cfg.MemoryBytes || size > c.cfg.DiskBytes || c.has(key) {
		c.life.RUnlock()
		return c.Put(key, data)
	}
	if !c.putMem(key, data) {
		c.life.RUnlock()
		return c.Put(key, data)
	}
	go func() {
		defer c.life.RUnlock() // held until the file is written: Close waits
		// A failure is logged by diskHealth, rate-limited.
		_ = c.putDisk(key, data)
	}()
	return nil
}

// putDisk reserves room for key in the disk tier, then writes its file
// outside the lock; the entry is pinned and not readable until the file
// is in place.
func (c *Cache) putDisk(key storage.Key, data []byte) error {
	if !c.diskHealth.try() {
		c.diskBypasses.Add(1) // the tier is off for writes
		return nil
	}
	e := &entry{key: key, size: int64(len(data)), pins: 1}
	o := c.loadOracle()
	c.diskMu.Lock()
	if c.disk.entries[key] != nil {
		c.diskMu.Unlock()
		return nil
	}
	victims, ok := c.disk.admit(e, o)
	c.removeFiles(victims)
	c.diskMu.Unlock()
	c.diskEvictions.Add(int64(len(victims)))
	if !ok {
		c.diskBypasses.Add(1)
		return nil
	}

	l, err := writeEntryFile(c.cfg.Dir, c.path(key), key, data, c.block)

	c.diskMu.Lock()
	c.unpinDiskLocked(e)
	if err != nil {
		c.disk.remove(e)
	} else {
		e.ready, e.file = true, l
	}
	c.diskMu.Unlock()
	if err != nil {
		c.errs.Add(1)
		c.diskHealth.failed(c.log, key.Object, err)
		return &storage.Error{Op: "cache", Object: key.Object, Kind: storage.ErrUnavailable, Err: err}
	}
	c.diskHealth.succeeded(c.log)
	return nil
}

// Contains reports the first tier holding key, without counting a Get or
// changing recency. A disk entry still being written is not counted.
func (c *Cache) Contains(key storage.Key) Tier {
	if c.closed.Load() {
		return TierNone
	}
	c.memMu.Lock()
	in := c.mem.entries[key] != nil
	c.memMu.Unlock()
	if in {
		return TierMemory
	}
	if c.disk != nil {
		c.diskMu.Lock()
		defer c.diskMu.Unlock()
		if e := c.disk.entries[key]; e != nil && e.ready {
			return TierDisk
		}
	}
	return TierNone
}

// Metrics returns a snapshot of the cache's counters.
func (c *Cache) Metrics() Metrics {
	m := Metrics{
		Memory: TierMetrics{
			Hits:      c.memHits.Load(),
			Capacity:  c.cfg.MemoryBytes,
			Evictions: c.memEvictions.Load(),
			Bypasses:  c.memBypasses.Load(),
		},
		Disk: TierMetrics{
			Hits:      c.diskHits.Load(),
			Capacity:  c.cfg.DiskBytes,
			Evictions: c.diskEvictions.Load(),
			Bypasses:  c.diskBypasses.Load(),
			ReadBytes: c.diskReadBytes.Load(),
		},
		Misses:  c.misses.Load(),
		Corrupt: c.corrupt.Load(),
		Errors:  c.errs.Load(),
	}
	c.memMu.Lock()
	m.Memory.Entries, m.Memory.Bytes = len(c.mem.entries), c.mem.used
	c.memMu.Unlock()
	if c.disk != nil {
		c.diskMu.Lock()
		m.Disk.Entries, m.Disk.Bytes = len(c.disk.entries), c.disk.used
		c.diskMu.Unlock()
	}
	return m
}

// Capacity returns the tiers' capacities, in bytes of shard data, as
// configured (0: no such tier): what a prefetcher sizes its look-ahead by.
func (c *Cache) Capacity() (memory, disk int64) { return c.cfg.MemoryBytes, c.cfg.DiskBytes }

// Close waits for the Puts and disk reads in progress, then empties the
// memory tier; the disk tier's files stay for the next Open, synced to
// disk and marked as closed cleanly. After
// Close, Get and Contains find nothing and Put fails. Entries still held
// by a Ref are freed at its Release (see Drained). Close is idempotent.
func (c *Cache) Close() error {
	if c.closed.Swap(true) {
		return nil
	}
	c.life.Lock()
	c.life.Unlock() //nolint:staticcheck // an empty critical section: waiting is the point
	if c.disk != nil {
		c.closeFiles()
		// Every write is done (life): sync them all at once and say so.
		if err := putCleanMark(c.cfg.Dir); err != nil {
			c.log.Warn("cache: cannot mark the disk tier as closed cleanly; the next start verifies its files before handing them out",
				"dir", c.cfg.Dir, "err", err)
		}
	}
	c.memMu.Lock()
	for _, e := range c.mem.entries {
		if e.pins == 0 {
			c.freeMem(e)
		} else {
			e.dropped = true
		}
	}
	clear(c.mem.entries)
	c.mem.used = 0
	if c.memRefs == 0 {
		c.dropOnce.Do(func() { close(c.drained) })
	}
	c.memMu.Unlock()
	return nil
}

// Drained is closed once the cache is closed and every Ref to its memory
// tier is released: from then on the Allocator's region is unused and may
// be unmapped.
func (c *Cache) Drained() <-chan struct{} { return c.drained }

// path is the file of key's disk entry.
func (c *Cache) path(key storage.Key) string { return filepath.Join(c.cfg.Dir, fileName(key)) }

// removeFiles removes the files of evicted disk entries, which no read
// holds, and closes them if kept open. Called with diskMu held, or before
// the cache is shared.
func (c *Cache) removeFiles(victims []*entry) {
	for _, v := range victims {
		c.closeFile(v)
		c.removeFile(c.path(v.key))
	}
}

// removeFile removes one entry file; a file already gone is fine. It
// only unlinks: clients may still map the file (see writeEntryFile), and
// their mappings keep its bytes until they go, so it is never truncated.
func (c *Cache) removeFile(path string) {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		c.log.Warn("cache: cannot remove disk entry", "file", path, "err", err)
		c.errs.Add(1)
	}
}

// dropFile removes a bad file found at open and counts it.
func (c *Cache) dropFile(name string, err error) {
	c.removeFile(filepath.Join(c.cfg.Dir, name))
	c.count(err)
}

// count counts a failed disk entry as corrupt or as another error.
func (c *Cache) count(err error) {
	if errors.Is(err, errBadFile) {
		c.corrupt.Add(1)
	} else {
		c.errs.Add(1)
	}
}
