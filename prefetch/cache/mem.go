package cache

import "github.com/stoker-data/stoker/prefetch/storage"

// PutMemory adds key's data to the memory tier alone, if the policy admits
// it: for a shard read within its window that the node does not keep, which
// the disk tier need not hold. The cache keeps data. It reports whether the
// memory tier holds key afterwards.
func (c *Cache) PutMemory(key storage.Key, data []byte) bool {
	c.life.RLock()
	defer c.life.RUnlock()
	if c.closed.Load() || int64(len(data)) > c.cfg.MemoryBytes {
		return false
	}
	return c.putMem(key, data)
}

// EntrySize returns the bytes of key's entry in either tier, and whether
// the cache holds it.
func (c *Cache) EntrySize(key storage.Key) (int64, bool) {
	c.memMu.Lock()
	e := c.mem.entries[key]
	c.memMu.Unlock()
	if e != nil {
		return e.size, true
	}
	if c.disk == nil {
		return 0, false
	}
	c.diskMu.Lock()
	defer c.diskMu.Unlock()
	if e := c.disk.entries[key]; e != nil && e.ready {
		return e.size, true
	}
	return 0, false
}

// memOracle is the Oracle the memory tier evicts by: an entry the disk
// tier also holds is ranked as needed by no one, so the memory tier lets
// it go before any entry only it holds (reading it again costs a disk
// read, not a fetch from storage). Called with memMu held; it takes
// diskMu, which is never held while memMu is taken.
func (c *Cache) memOracle() Oracle {
	o := c.loadOracle()
	if o == nil || c.disk == nil {
		return o
	}
	return diskBacked{o: o, c: c}
}

type diskBacked struct {
	o Oracle
	c *Cache
}

func (d diskBacked) NextUse(key storage.Key) int64 {
	d.c.diskMu.Lock()
	e := d.c.disk.entries[key]
	onDisk := e != nil && e.ready
	d.c.diskMu.Unlock()
	if onDisk {
		return -1
	}
	return d.o.NextUse(key)
}

// MemoryWouldTake reports whether the memory tier would take an entry of
// size bytes for key now: it has room, or the policy would evict entries
// needed later than key for it. A prefetcher asks before fetching ahead,
// so that it does not fetch what the tier would not keep.
func (c *Cache) MemoryWouldTake(key storage.Key, size int64) bool {
	if size > c.cfg.MemoryBytes || c.closed.Load() {
		return false
	}
	o := c.memOracle()
	c.memMu.Lock()
	defer c.memMu.Unlock()
	if c.mem.entries[key] != nil {
		return true
	}
	need := c.mem.used + size - c.mem.capacity
	if need <= 0 {
		return true
	}
	newNext := int64(-1)
	if o != nil && c.mem.policy == PolicyPlan {
		newNext = o.NextUse(key)
	}
	_, ok := c.mem.pick(need, o, newNext)
	return ok
}
