package cache

import "os"

// Range reads keep the files of the entries read last open, so that a
// stream reading sample after sample of the same shards does not open and
// close a file for each (see BenchmarkDiskTierSample). At most
// Cache.maxFiles are open; the least recently used unread one is closed to
// make room. A kept file is shared by the reads of its entry (ReadAt is
// safe for concurrent use) and closed only when no read holds its entry
// pinned: when the entry leaves the index, when it is the one closed to
// make room, or at Close. Whole reads open the file themselves.

// defaultMaxFiles is how many files range reads keep open: a few per
// stream for some dozens of streams, far below a process's usual limit of
// 1024 descriptors.
const defaultMaxFiles = 64

// keepFile offers f, the file of e opened by a range read that held e
// pinned, to be kept open for the next reads; otherwise it is closed.
// Called with diskMu held.
func (c *Cache) keepFile(e *entry, f *os.File) {
	if e.fd != nil || c.disk.entries[e.key] != e || c.closed.Load() || !c.roomForFile() {
		f.Close()
		return
	}
	e.fd = f
	c.open = append(c.open, e)
}

// roomForFile makes room for one more open file if needed, by closing the
// least recently used file of an entry no read holds, and reports
// whether there is room. Called with diskMu held.
func (c *Cache) roomForFile() bool {
	if len(c.open) < c.maxFiles {
		return true
	}
	victim := -1
	for i, o := range c.open {
		if o.pins == 0 && (victim < 0 || o.lastUse < c.open[victim].lastUse) {
			victim = i
		}
	}
	if victim < 0 {
		return false
	}
	c.closeFile(c.open[victim])
	return true
}

// closeFile closes e's kept file, if any. Called with diskMu held, when
// no read holds e pinned.
func (c *Cache) closeFile(e *entry) {
	if e.fd == nil {
		return
	}
	e.fd.Close()
	e.fd = nil
	for i, o := range c.open {
		if o == e {
			c.open = append(c.open[:i], c.open[i+1:]...)
			break
		}
	}
}

// unpinDiskLocked drops one pin of a disk entry; an entry that has left
// the index closes its kept file with its last pin. Called with diskMu
// held.
func (c *Cache) unpinDiskLocked(e *entry) {
	e.pins--
	if e.pins == 0 && c.disk.entries[e.key] != e {
		c.closeFile(e)
	}
}

// closeFiles closes every kept file. Called by Close once no read is in
// flight.
func (c *Cache) closeFiles() {
	c.diskMu.Lock()
	defer c.diskMu.Unlock()
	for len(c.open) > 0 {
		c.closeFile(c.open[0])
	}
}
