package cache

import "github.com/stoker-data/stoker/prefetch/storage"

// DistinctBytes is the shard data the cache holds, each shard once: the
// disk tier's bytes, and the memory tier's entries the disk tier does not
// hold. A shard is usually in both tiers (Put writes through), so the
// tiers' bytes added together count it twice.
//
// The tiers are read one after the other, never both locked at once, so
// the figure is a snapshot that a Put or eviction between the two reads
// moves by that entry.
func (c *Cache) DistinctBytes() int64 {
	type sized struct {
		key  storage.Key
		size int64
	}
	c.memMu.Lock()
	mem := make([]sized, 0, len(c.mem.entries))
	for k, e := range c.mem.entries {
		mem = append(mem, sized{k, e.size})
	}
	memUsed := c.mem.used
	c.memMu.Unlock()
	if c.disk == nil {
		return memUsed
	}
	c.diskMu.Lock()
	defer c.diskMu.Unlock()
	n := c.disk.used
	for _, m := range mem {
		if c.disk.entries[m.key] == nil {
			n += m.size
		}
	}
	return n
}
