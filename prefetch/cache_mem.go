package prefetch

// PutMemory adds key's data to the memory tier alone, if the policy admits
// it: for a shard read within its window that the node does not keep, which
// the disk tier need not hold. The cache keeps data. It reports whether the
// memory tier holds key afterwards.
func (c *Cache) PutMemory(key CacheKey, data []byte) bool {
	c.life.RLock()
	defer c.life.RUnlock()
	if c.closed.Load() || int64(len(data)) > c.cfg.MemoryBytes {
		return false
	}
	return c.putMem(key, data)
}

// EntrySize returns the bytes of key's entry in either tier, and whether
// the cache holds it.
func (c *Cache) EntrySize(key CacheKey) (int64, bool) {
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
