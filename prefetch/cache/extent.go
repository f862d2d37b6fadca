package cache

import (
	"sync"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// DiskExtent finds key's entry in the disk tier and pins it: the file is
// neither evicted nor rewritten until unpin is called (once; more calls do
// nothing). size is the entry's bytes, which lie at [offset, offset+size)
// of the file. An entry left by a stop that was not clean is read and
// verified first (once), and dropped if bad. It returns the file and the
// offset of the shard's first byte in it, for a local reader that reads
// the file itself (cuFile) or maps it (the Python client: its mappings
// outlive the pin, which the file's write-once life allows, see
// writeEntryFile). ok is
// false when the entry is not on disk (or not yet written). Safe for
// concurrent use.
func (c *Cache) DiskExtent(key storage.Key) (path string, offset, size int64, unpin func(), ok bool) {
	c.life.RLock()
	defer c.life.RUnlock()
	if c.closed.Load() || c.disk == nil {
		return "", 0, 0, nil, false
	}
	c.diskMu.Lock()
	e := c.disk.entries[key]
	if e == nil || !e.ready {
		c.diskMu.Unlock()
		return "", 0, 0, nil, false
	}
	c.disk.touch(e) // handed out: used now
	e.pins++
	unverified := e.unverified
	if e.path == "" {
		e.path = c.path(key)
	}
	path = e.path
	c.diskMu.Unlock()
	if unverified {
		// Left by a stop that was not clean: its bytes may never have
		// reached the disk, and the reader will not check them.
		err := verifyEntryFile(path, key, e.file, &c.bufs)
		if err != nil {
			c.unpinDisk(e, err, nil) // drops the entry and its file
			return "", 0, 0, nil, false
		}
		c.diskMu.Lock()
		e.unverified = false
		c.diskMu.Unlock()
		c.diskReadBytes.Add(e.size)
	}
	var once sync.Once
	unpin = func() {
		once.Do(func() {
			c.diskMu.Lock()
			c.unpinDiskLocked(e)
			c.diskMu.Unlock()
		})
	}
	return path, e.file.dataOff, e.size, unpin, true
}

// CountDiskHit counts a read served by the disk tier that did not go
// through AcquireRange: a sample whose bytes a local client reads from
// the file DiskExtent handed out.
func (c *Cache) CountDiskHit() { c.diskHits.Add(1) }
