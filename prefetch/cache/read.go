package cache

import (
	"fmt"
	"os"

	"github.com/stoker-data/stoker/prefetch/storage"
)

// Reading the disk tier. A caller that streams samples reads each with
// AcquireRange: from the disk tier that reads only the blocks covering
// the sample, and leaves the memory tier alone. A caller that decides a
// shard is worth holding in memory (it will be read much, soon) calls
// Promote, or Acquire when it wants the whole shard's bytes anyway: both
// read the whole file, verify every block, and admit the entry to the
// memory tier if the policy allows.

// AcquireRange returns bytes [off, off+n) of key's entry: from the memory
// tier as a pinned slice of the entry (no copy), else from the disk tier
// by reading the blocks that cover the range and verifying each against
// its checksum, into one buffer on the heap of the range rounded out to
// blocks. The entry is not promoted to the memory tier. A miss is
// (nil, TierNone, nil), and so is a damaged disk entry, which is dropped,
// logged and counted as Corrupt; a range outside a cached entry (off or n
// negative, or off+n past its end) is an *Error of kind ErrCorrupt, as a
// Source's read past an object's end is. A hit or a miss is counted as an
// Acquire's is; a failed call is counted as neither. The Ref must be
// released, once.
func (c *Cache) AcquireRange(key storage.Key, off, n int64) (*Ref, Tier, error) {
	if c.closed.Load() {
		return nil, TierNone, nil
	}
	if r, ok := c.pinMem(key, true); ok {
		if err := checkRange(key, off, n, int64(len(r.data))); err != nil {
			r.Release()
			return nil, TierNone, err
		}
		r.data = r.data[off : off+n : off+n]
		c.memHits.Add(1)
		return r, TierMemory, nil
	}
	if c.disk != nil {
		r, ok, err := c.rangeDisk(key, off, n)
		if err != nil {
			return nil, TierNone, err
		}
		if ok {
			c.diskHits.Add(1)
			return r, TierDisk, nil
		}
	}
	c.misses.Add(1)
	return nil, TierNone, nil
}

// checkRange checks that [off, off+n) lies within an entry of size bytes.
func checkRange(key storage.Key, off, n, size int64) error {
	if off < 0 || n < 0 || off > size || n > size-off {
		return &storage.Error{Op: "cache", Object: key.Object, Kind: storage.ErrCorrupt,
			Err: fmt.Errorf("range of %d bytes at offset %d is outside the entry's %d bytes", n, off, size)}
	}
	return nil
}

// rangeDisk is AcquireRange of the disk tier.
func (c *Cache) rangeDisk(key storage.Key, off, n int64) (*Ref, bool, error) {
	c.life.RLock()
	defer c.life.RUnlock()
	e, f, ok := c.pinDisk(key)
	if !ok {
		return nil, false, nil
	}
	if err := checkRange(key, off, n, e.size); err != nil {
		c.unpinDisk(e, nil, nil)
		return nil, false, err
	}
	var opened *os.File // f, when this read opened it
	if f == nil {
		var err error
		if f, err = os.Open(c.path(key)); err != nil {
			c.unpinDisk(e, err, nil)
			return nil, false, nil
		}
		opened = f
	}
	s := e.file.span(off, n)
	buf := c.bufs.get(s.bufLen())
	data, err := readRange(f, key, e.file, off, n, *buf)
	c.unpinDisk(e, err, opened)
	if err != nil {
		c.bufs.put(buf)
		return nil, false, nil
	}
	c.diskReadBytes.Add(s.end - s.start)
	return &Ref{data: data, c: c, buf: buf}, true, nil
}

// Promote reads key's entry from the disk tier into the memory tier if the
// policy admits it, and reports whether the memory tier holds key
// afterwards (true at once if it held it already). Counted neither as a
// hit nor as a miss: it is for a prefetcher that decided the shard is
// worth memory, not a read.
func (c *Cache) Promote(key storage.Key) bool {
	if c.closed.Load() {
		return false
	}
	if r, ok := c.pinMem(key, false); ok {
		r.Release()
		return true
	}
	if c.disk == nil {
		return false
	}
	r, promoted, ok := c.getDisk(key)
	if ok {
		r.Release()
	}
	return promoted
}

// getDisk reads key's whole entry from the disk tier, verifying every
// block, dropping it if it is bad, and promotes it to the memory tier if
// the policy admits it (promoted). With an Allocator the file is read
// straight into the entry's bytes in the region, and the Ref pins that
// entry; otherwise it is read to the heap.
func (c *Cache) getDisk(key storage.Key) (r *Ref, promoted, ok bool) {
	c.life.RLock()
	defer c.life.RUnlock()
	e, _, ok := c.pinDisk(key)
	if !ok {
		return nil, false, false
	}
	var filling *entry // the memory entry being read into, if any, and its bytes
	var fillBuf []byte
	data, err := readEntryInto(c.path(key), key, func(n int64) []byte {
		if c.cfg.Memory != nil && n > 0 {
			if me, buf, _, ok := c.admitMem(key, n, nil); ok && buf != nil {
				filling, fillBuf = me, buf
				return buf
			}
		}
		return make([]byte, n)
	})
	if err != nil && filling != nil {
		c.fillFailed(filling, fillBuf)
	}
	c.unpinDisk(e, err, nil)
	if err != nil {
		return nil, false, false
	}
	c.diskReadBytes.Add(int64(len(data)))
	if filling != nil {
		return c.fillDone(filling, data, true), true, true
	}
	promoted = c.putMem(key, data)
	return HeapRef(data), promoted, true
}

// pinDisk finds key's disk entry, unless it is absent or still being
// written, marks it used now and pins it: it is not evicted, nor its kept
// file (returned, or nil) closed, while read. Called with life held
// shared.
func (c *Cache) pinDisk(key storage.Key) (*entry, *os.File, bool) {
	if c.closed.Load() {
		return nil, nil, false
	}
	c.diskMu.Lock()
	defer c.diskMu.Unlock()
	e := c.disk.entries[key]
	if e == nil || !e.ready {
		return nil, nil, false
	}
	c.disk.touch(e)
	e.pins++
	return e, e.fd, true
}

// unpinDisk drops a read's pin of e. When the read failed (err) it drops
// the entry and its file, logs and counts it, once however many readers
// found it bad. opened is the file the read opened itself, if any: kept
// open for the next reads (see keepFile) or closed.
func (c *Cache) unpinDisk(e *entry, err error, opened *os.File) {
	c.diskMu.Lock()
	dropped := err != nil && c.disk.remove(e)
	if dropped {
		c.removeFile(c.path(e.key))
	}
	c.unpinDiskLocked(e)
	if opened != nil {
		if err != nil {
			opened.Close()
		} else {
			c.keepFile(e, opened)
		}
	}
	c.diskMu.Unlock()
	if dropped {
		c.log.Warn("cache: dropped disk entry", "object", e.key.Object, "etag", e.key.ETag, "err", err)
		c.count(err)
	}
}
