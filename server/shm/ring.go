package shm

import (
	"sync/atomic"
	"time"
	"unsafe"
)

// The release ring: with StreamBatchesRequest.shm_release_ring the first
// RingBytes of a stream's region are a single-producer ring the client
// writes released lease ids to, so a release costs the client a store in
// memory instead of a ReleaseShm call. Layout (little-endian, as the
// hosts that map it):
//
//	[0, 8)    written: ids ever written (the client's counter)
//	[8, 16)   read: ids ever read (the server's counter)
//	[16, 24)  consumed: 1 + the last step the client has whole and hands
//	          out as views that hold their leases (0: it releases each
//	          step when the next is asked for). The client's, untrusted.
//	[64, RingBytes) ringSlots slots of 8 bytes; id k is at slot k % ringSlots
//
// The client writes the slot, then stores written+1; it never gets more
// than ringSlots ahead of read (it calls ReleaseShm instead). The server
// reads the ring before it places each message and, while it waits for
// room, every ringPoll. Everything the client writes is untrusted: an id
// not held is ignored (counted), a counter more than ringSlots ahead is
// taken as ringSlots ahead.
const (
	RingBytes = 64 << 10 // 64 KiB: 8184 ids, more than a region's leases outstanding at once
	ringFirst = 64
	ringSlots = (RingBytes - ringFirst) / 8
	ringPoll  = time.Millisecond // how often a waiting stream looks at its ring
)

// ringCounter is the counter at off in the region's first page (8-aligned
// in a page-aligned mapping).
func (g *Region) ringCounter(off int) *atomic.Uint64 {
	return (*atomic.Uint64)(unsafe.Pointer(&g.mem[off]))
}

// readRingLocked takes the ids the client wrote since the last read and
// releases them; g.mu is held. It reports whether anything was freed.
func (g *Region) readRingLocked() (freed bool) {
	if g.ring == 0 || g.closed {
		return false
	}
	written, read := g.ringCounter(0).Load(), g.ringCounter(8)
	g.consumed = g.ringCounter(16).Load()
	r := read.Load()
	if written-r > ringSlots { // a client past its bound (or a torn counter): read what the ring can hold
		g.ringOverruns++
		r = written - ringSlots
	}
	if written == r {
		return false
	}
	ids := make([]uint64, 0, written-r)
	for ; r != written; r++ {
		off := ringFirst + 8*int(r%ringSlots)
		ids = append(ids, (*atomic.Uint64)(unsafe.Pointer(&g.mem[off])).Load())
	}
	read.Store(r)
	unknown, freed := g.releaseLocked(ids)
	g.ringUnknown += uint64(unknown)
	return freed
}

// waitRoom waits for room to be closed, for ctx, or (with a ring) for the
// next look at the ring.
func (g *Region) waitRoom(done <-chan struct{}, room <-chan struct{}) {
	if g.ring == 0 {
		select {
		case <-room:
		case <-done:
		}
		return
	}
	t := time.NewTimer(ringPoll)
	defer t.Stop()
	select {
	case <-room:
	case <-done:
	case <-t.C:
		g.mu.Lock()
		g.readRingLocked()
		g.mu.Unlock()
	}
}
